/* Counters kept in memory by queued and rendered in the Prometheus text
 * format (version 0.0.4). No log parsing: every number is counted where the
 * event is decided. Label values come from a fixed set or are checked to be
 * short and plain, so a peer cannot inject lines into the output. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <time.h>

#include "delivery.h"
#include "stats.h"

#define STATS_REJECT_KEYS_MAX 64u   /* distinct (stage, dsn) pairs; more go to "other" */
#define STATS_LABEL_MAX 16u

typedef enum StatsTransport {
        STATS_LOCAL,
        STATS_SMTP,
        STATS_LMTP,
        STATS_NONE,
        _STATS_TRANSPORT_MAX,
} StatsTransport;

static const char *const stats_transport_names[_STATS_TRANSPORT_MAX] = {
        [STATS_LOCAL] = "local",
        [STATS_SMTP] = "smtp",
        [STATS_LMTP] = "lmtp",
        [STATS_NONE] = "none",
};

/* Upper bounds in seconds: local delivery takes milliseconds, remote seconds,
 * retries minutes to days. */
static const double stats_delay_buckets[] = { 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600,
                                              14400, 86400 };
#define N_BUCKETS ELEMENTSOF(stats_delay_buckets)

typedef struct StatsReject {
        char stage[STATS_LABEL_MAX];
        char dsn[STATS_LABEL_MAX];
        uint64_t count;
} StatsReject;

static struct {
        uint64_t start_usec;
        uint64_t results[_STATS_TRANSPORT_MAX][3]; /* delivered, deferred, bounced */
        uint64_t delay_buckets[_STATS_TRANSPORT_MAX][N_BUCKETS];
        uint64_t delay_count[_STATS_TRANSPORT_MAX];
        double delay_sum[_STATS_TRANSPORT_MAX];
        StatsReject rejects[STATS_REJECT_KEYS_MAX];
        size_t n_rejects;
        uint64_t rejects_other;
        uint64_t sessions_active;
        uint64_t sessions_reported, sessions_tls;
} stats;

static uint64_t stats_now(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static StatsTransport stats_transport(const char *relay) {
        if (isempty(relay) || streq(relay, "none"))
                return STATS_NONE;
        if (strncmp(relay, "local", 5) == 0)
                return STATS_LOCAL;
        if (strncmp(relay, "lmtp", 4) == 0 || strstr(relay, "lmtp:"))
                return STATS_LMTP;
        return STATS_SMTP;
}

void stats_note_result(const QueueMsg *m, DeliveryStatus status, const char *relay) {
        StatsTransport t = stats_transport(relay);
        uint64_t now = stats_now();
        double delay;

        if (stats.start_usec == 0)
                stats.start_usec = now;
        switch (status) {
        case DELIVERY_DELIVERED:
                stats.results[t][0]++;
                break;
        case DELIVERY_DEFERRED:
                stats.results[t][1]++;
                return; /* the delay histogram is of final results */
        case DELIVERY_BOUNCED:
                stats.results[t][2]++;
                break;
        default:
                return;
        }
        delay = now > m->arrival_usec ? (double) (now - m->arrival_usec) / 1e6 : 0;
        stats.delay_count[t]++;
        stats.delay_sum[t] += delay;
        for (size_t i = 0; i < N_BUCKETS; i++)
                if (delay <= stats_delay_buckets[i])
                        stats.delay_buckets[t][i]++;
}

void stats_peer_hello(Peer *p, const char *role) {
        if (role && streq(role, "smtpd") && p->trusted && !p->smtpd_session) {
                p->smtpd_session = true;
                stats.sessions_active++;
        }
}

void stats_peer_gone(Peer *p) {
        if (p->smtpd_session && stats.sessions_active > 0)
                stats.sessions_active--;
        p->smtpd_session = false;
}

/* "RCPT 5.7.1", "END-OF-MESSAGE 5.3.4": an upper-case stage and an enhanced status code. */
static bool stats_reject_parse(const char *s, char stage[STATS_LABEL_MAX], char dsn[STATS_LABEL_MAX]) {
        const char *sp = strchr(s, ' ');
        size_t n;

        if (!sp || sp == s || (size_t) (sp - s) >= STATS_LABEL_MAX)
                return false;
        for (const char *c = s; c < sp; c++)
                if (!((*c >= 'A' && *c <= 'Z') || *c == '-'))
                        return false;
        n = strlen(sp + 1);
        if (n < 5 || n >= STATS_LABEL_MAX)
                return false;
        for (const char *c = sp + 1; *c; c++)
                if (!((*c >= '0' && *c <= '9') || *c == '.'))
                        return false;
        memcpy(stage, s, (size_t) (sp - s));
        stage[sp - s] = 0;
        memcpy(dsn, sp + 1, n + 1);
        return true;
}

static void stats_note_reject(const char *stage, const char *dsn) {
        for (size_t i = 0; i < stats.n_rejects; i++)
                if (streq(stats.rejects[i].stage, stage) && streq(stats.rejects[i].dsn, dsn)) {
                        stats.rejects[i].count++;
                        return;
                }
        if (stats.n_rejects >= STATS_REJECT_KEYS_MAX) {
                stats.rejects_other++;
                return;
        }
        StatsReject *r = &stats.rejects[stats.n_rejects++];
        (void) snprintf(r->stage, sizeof(r->stage), "%s", stage);
        (void) snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
        r->count = 1;
}

int stats_on_session(Peer *p, const IpcMsg *m) {
        uint64_t tls = 0;
        int r;

        /* Only smtpd reports sessions; a local user could otherwise inflate
         * the counters. Ignored, not fatal: the numbers are advisory. */
        if (!p->trusted)
                return 0;
        r = ipc_get_u64(m, IPC_F_STATS_TLS, &tls);
        if (r < 0 && r != -ENOENT)
                return -EBADMSG;
        for (size_t i = 0; i < m->n_fields; i++) {
                _cleanup_free_ char *s = NULL;
                char stage[STATS_LABEL_MAX], dsn[STATS_LABEL_MAX];

                if (m->fields[i].tag == IPC_F_STATS_TLS)
                        continue;
                if (m->fields[i].tag != IPC_F_STATS_REJECT)
                        return -EBADMSG;
                r = ipc_field_str(&m->fields[i], 2 * STATS_LABEL_MAX, &s);
                if (r < 0)
                        return r == -ENOMEM ? r : -EBADMSG;
                if (stats_reject_parse(s, stage, dsn))
                        stats_note_reject(stage, dsn);
                else
                        stats.rejects_other++;
        }
        stats.sessions_reported++;
        if (tls)
                stats.sessions_tls++;
        return 0;
}

static size_t stats_count_corrupt(Queue *q) {
        size_t n = 0;
        DIR *d;
        int fd;

        fd = openat(q->spool_fd, SPOOL_DIR_CORRUPT, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return 0;
        d = fdopendir(fd);
        if (!d) {
                (void) close(fd);
                return 0;
        }
        for (struct dirent *de; (de = readdir(d));)
                if (spool_id_valid(de->d_name))
                        n++;
        (void) closedir(d);
        return n;
}

static void stats_header(FILE *f, const char *name, const char *type, const char *help) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int stats_render(Queue *q, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, active = 0, deferred = 0, hold = 0;
        uint64_t now = stats_now(), oldest = 0;
        FILE *f;

        if (stats.start_usec == 0)
                stats.start_usec = now;
        for (QueueMsg *m = q->head; m; m = m->next) {
                if (m->hold)
                        hold++;
                else if (m->waiting)
                        deferred++;
                else
                        active++;
                if (oldest == 0 || m->arrival_usec < oldest)
                        oldest = m->arrival_usec;
        }

        f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        stats_header(f, "tern_queued_start_time_seconds", "gauge",
                     "When tern-queued started; every counter counts since then.");
        fprintf(f, "tern_queued_start_time_seconds %" PRIu64 "\n", stats.start_usec / 1000000u);

        stats_header(f, "tern_messages_received_total", "counter",
                     "Messages written to the queue (SMTP, sendmail and bounces).");
        fprintf(f, "tern_messages_received_total %" PRIu64 "\n", q->n_received);

        stats_header(f, "tern_messages_rejected_total", "counter",
                     "SMTP commands rejected by tern-smtpd, by stage and enhanced status code.");
        for (size_t i = 0; i < stats.n_rejects; i++)
                fprintf(f, "tern_messages_rejected_total{stage=\"%s\",dsn=\"%s\"} %" PRIu64 "\n",
                        stats.rejects[i].stage, stats.rejects[i].dsn, stats.rejects[i].count);
        if (stats.rejects_other > 0)
                fprintf(f, "tern_messages_rejected_total{stage=\"other\",dsn=\"other\"} %" PRIu64 "\n",
                        stats.rejects_other);

        stats_header(f, "tern_deliveries_total", "counter",
                     "Recipient delivery results, by transport and status.");
        for (size_t t = 0; t < _STATS_TRANSPORT_MAX; t++) {
                static const char *const st[3] = { "delivered", "deferred", "bounced" };

                for (size_t k = 0; k < 3; k++)
                        fprintf(f, "tern_deliveries_total{transport=\"%s\",status=\"%s\"} %" PRIu64 "\n",
                                stats_transport_names[t], st[k], stats.results[t][k]);
        }

        stats_header(f, "tern_queue_messages", "gauge", "Messages in the queue, by state.");
        fprintf(f, "tern_queue_messages{state=\"active\"} %zu\n", active);
        fprintf(f, "tern_queue_messages{state=\"deferred\"} %zu\n", deferred);
        fprintf(f, "tern_queue_messages{state=\"hold\"} %zu\n", hold);
        fprintf(f, "tern_queue_messages{state=\"corrupt\"} %zu\n", stats_count_corrupt(q));

        stats_header(f, "tern_queue_oldest_message_age_seconds", "gauge",
                     "Age of the oldest message in the queue; 0 when it is empty.");
        fprintf(f, "tern_queue_oldest_message_age_seconds %" PRIu64 "\n",
                oldest && now > oldest ? (now - oldest) / 1000000u : 0);

        stats_header(f, "tern_deliveries_in_flight", "gauge", "Delivery jobs tern-deliverd has now.");
        fprintf(f, "tern_deliveries_in_flight %zu\n", q->delivery ? delivery_in_flight(q->delivery) : 0);

        stats_header(f, "tern_smtpd_sessions_active", "gauge",
                     "SMTP sessions connected to tern-queued now.");
        fprintf(f, "tern_smtpd_sessions_active %" PRIu64 "\n", stats.sessions_active);

        stats_header(f, "tern_smtpd_sessions_total", "counter",
                     "Finished SMTP sessions, by whether they used TLS.");
        fprintf(f, "tern_smtpd_sessions_total{tls=\"yes\"} %" PRIu64 "\n", stats.sessions_tls);
        fprintf(f, "tern_smtpd_sessions_total{tls=\"no\"} %" PRIu64 "\n",
                stats.sessions_reported - stats.sessions_tls);

        stats_header(f, "tern_delivery_delay_seconds", "histogram",
                     "Time from arrival to the final result of each recipient, by transport.");
        for (size_t t = 0; t < _STATS_TRANSPORT_MAX; t++) {
                for (size_t i = 0; i < N_BUCKETS; i++)
                        fprintf(f, "tern_delivery_delay_seconds_bucket{transport=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                                stats_transport_names[t], stats_delay_buckets[i],
                                stats.delay_buckets[t][i]);
                fprintf(f, "tern_delivery_delay_seconds_bucket{transport=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
                        stats_transport_names[t], stats.delay_count[t]);
                fprintf(f, "tern_delivery_delay_seconds_sum{transport=\"%s\"} %.6f\n",
                        stats_transport_names[t], stats.delay_sum[t]);
                fprintf(f, "tern_delivery_delay_seconds_count{transport=\"%s\"} %" PRIu64 "\n",
                        stats_transport_names[t], stats.delay_count[t]);
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}

int stats_on_get(Peer *p, const IpcMsg *m) {
        _cleanup_free_ char *text = NULL;
        size_t n;
        int r;

        if (m->n_fields != 0)
                return -EBADMSG;
        r = stats_render(p->queue, &text);
        if (r < 0)
                return peer_send_error(p, 451, "4.3.0", "out of memory");
        /* The output is a few KiB; the frame bound is far above it. */
        n = strlen(text);
        if (n > IPC_FRAME_MAX - 64)
                n = IPC_FRAME_MAX - 64;
        ipc_writer_init(p->writer, IPC_STATS_TEXT);
        ipc_put_bytes(p->writer, IPC_F_DATA, text, n);
        return peer_send(p);
}
