/* The in-memory table of queued messages and the start-up scan that rebuilds
 * it from the spool directory. The spool is the truth: everything here can be
 * rebuilt from queue/<ID> and queue/<ID>.st after a crash. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "bounce.h"
#include "commit.h"
#include "delivery.h"
#include "log.h"
#include "queue.h"
#include "schedule.h"
#include "stats.h"

/* A directory with more entries than this is not scanned further at once;
 * the rest waits for the next start. Keeps a hostile spool from exhausting memory. */
#define QUEUE_SCAN_MAX 1000000u

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static QueueMsg *queue_msg_free(QueueMsg *m) {
        if (!m)
                return NULL;
        if (m->queue) {
                Queue *q = m->queue;
                if (q->delivery)
                        delivery_forget(q->delivery, m);
                if (m->prev)
                        m->prev->next = m->next;
                else
                        q->head = m->next;
                if (m->next)
                        m->next->prev = m->prev;
                else
                        q->tail = m->prev;
                q->n_msgs--;
        }
        schedule_cancel(m);
        free(m->sender);
        if (m->rcpts)
                for (size_t i = 0; i < m->n_rcpts; i++)
                        free(m->rcpts[i]);
        free(m->rcpts);
        free(m->status);
        free(m->in_flight);
        if (m->rcpt_dest)
                for (size_t i = 0; i < m->n_rcpts; i++)
                        free(m->rcpt_dest[i]);
        free(m->rcpt_dest);
        free(m->last_error);
        free(m->dsn_relayed);
        free(m);
        return NULL;
}

/* A new table entry for env (state NULL: every recipient pending). Not yet linked. */
static int queue_msg_new(const SpoolEnvelope *env, const SpoolState *state, uint64_t size,
                         QueueMsg **ret) {
        QueueMsg *m = new0(QueueMsg, 1);

        if (!m)
                return -ENOMEM;
        if (strlen(env->id) >= sizeof(m->id)) {
                free(m);
                return -EINVAL;
        }
        memcpy(m->id, env->id, strlen(env->id) + 1);
        m->sender = strdup(env->sender ? env->sender : "");
        m->rcpts = new0(char *, env->n_rcpts);
        m->status = new0(DeliveryStatus, env->n_rcpts);
        m->in_flight = new0(bool, env->n_rcpts);
        if (!m->sender || !m->rcpts || !m->status || !m->in_flight)
                goto oom;
        m->n_rcpts = env->n_rcpts;
        for (size_t i = 0; i < env->n_rcpts; i++) {
                m->rcpts[i] = strdup(env->rcpts[i].addr);
                if (!m->rcpts[i])
                        goto oom;
        }
        m->dsn_success = bounce_wants_success(env);
        m->size = size;
        m->arrival_usec = env->arrival_usec;
        if (state) {
                for (size_t i = 0; i < env->n_rcpts && i < state->n_rcpts; i++) {
                        m->status[i] = state->rcpts[i].status;
                        if (state->rcpts[i].status == DELIVERY_DEFERRED && state->rcpts[i].text[0]) {
                                free(m->last_error);
                                m->last_error = strdup(state->rcpts[i].text);
                        }
                }
                m->attempts = state->attempts;
                m->next_attempt_usec = state->next_attempt_usec;
                m->hold = state->hold;
        }
        *ret = m;
        return 0;
oom:
        queue_msg_free(m);
        return -ENOMEM;
}

static void queue_link(Queue *q, QueueMsg *m) {
        m->queue = q;
        m->prev = q->tail;
        if (q->tail)
                q->tail->next = m;
        else
                q->head = m;
        q->tail = m;
        q->n_msgs++;
}

bool queue_rcpt_pending(const QueueMsg *m, size_t i) {
        return m->status[i] == DELIVERY_NONE || m->status[i] == DELIVERY_DEFERRED;
}

static size_t queue_msg_n_pending(const QueueMsg *m) {
        size_t n = 0;

        for (size_t i = 0; i < m->n_rcpts; i++)
                if (queue_rcpt_pending(m, i))
                        n++;
        return n;
}

const char *queue_msg_state(const QueueMsg *m) {
        if (m->hold)
                return "hold";
        if (m->waiting)
                return "deferred";
        return "active";
}

QueueMsg *queue_find(Queue *q, const char *id) {
        for (QueueMsg *m = q->head; m; m = m->next)
                if (streq(m->id, id))
                        return m;
        return NULL;
}

void queue_msg_due(QueueMsg *m) {
        if (m->hold || m->deleted || m->ready || m->jobs > 0)
                return;
        schedule_cancel(m);
        m->waiting = false;
        delivery_enqueue(m->queue->delivery, m);
}

int queue_msg_delete(QueueMsg *m, uid_t by) {
        LogField f[] = {
                { "MESSAGE_ID", LOG_MID_REMOVED },
                { "TERN_QUEUE_ID", m->id },
        };
        int r;

        if (m->jobs > 0) {
                /* deliverd holds the file; the rest goes when its jobs end. */
                m->deleted = true;
                delivery_forget(m->queue->delivery, m);
                schedule_cancel(m);
                log_info("%s: deletion requested by uid %u, waiting for the deliveries under way",
                         m->id, (unsigned) by);
                return 0;
        }
        r = spool_remove(m->queue->spool_fd, m->id);
        if (r < 0 && r != -ENOENT)
                return log_error_errno(r, "%s: cannot remove the queue file: %m", m->id);
        log_fields(LOG_INFO, f, "%s: removed (deleted by an administrator)", m->id);
        queue_msg_free(m);
        return 0;
}

void queue_msg_corrupt(QueueMsg *m, int error) {
        LogField fields[] = { { "TERN_QUEUE_ID", m->id } };
        int k = spool_move_corrupt(m->queue->spool_fd, m->id);

        if (k < 0 && k != -ENOENT)
                log_fields_errno(LOG_ERR, error, fields, "%s: queue file is unreadable (%m) and "
                                 "cannot be moved to corrupt/ (%s), dropping it from the queue",
                                 m->id, strerror(-k));
        else if (k == -ENOENT)
                log_fields_errno(LOG_ERR, error, fields, "%s: queue file vanished (%m), dropping it "
                                 "from the queue", m->id);
        else
                log_fields_errno(LOG_ERR, error, fields, "%s: queue file is unreadable (%m), moved "
                                 "to corrupt/", m->id);
        m->deleted = true;
        schedule_cancel(m);
        delivery_forget(m->queue->delivery, m);
        if (m->jobs == 0)
                queue_msg_free(m);
}

/* Every recipient has a final result: notify the sender of failures, then
 * remove the files. */
static void queue_msg_finish(QueueMsg *m) {
        Queue *q = m->queue;
        LogField f[] = {
                { "MESSAGE_ID", LOG_MID_REMOVED },
                { "TERN_QUEUE_ID", m->id },
        };
        int r;

        r = bounce_maybe_send(q, m);
        if (r < 0) {
                /* A report could not be queued (a full spool): keep the
                 * message, whose results say what to report, and try again. */
                m->waiting = true;
                if (schedule_at(m, now_usec() + schedule_backoff_usec(q->config, m->attempts + 1)) >= 0)
                        return;
                m->waiting = false;
                log_error("%s: cannot arm the retry timer, the delivery status notification is lost",
                          m->id);
        }
        r = spool_remove_delivered(q->spool_fd, m->id);
        if (r < 0 && r != -ENOENT) {
                /* The files stay: a restart delivers to the recipients whose
                 * results were not recorded (delivery.c) once more. */
                log_error_errno(r, "%s: cannot remove the queue file, will retry at the next start: %m",
                                m->id);
        } else
                log_fields(LOG_INFO, f, "%s: removed", m->id);
        queue_msg_free(m);
}

/* Recipients still pending after MaxQueueLifetime become final failures. */
static void queue_msg_expire(QueueMsg *m, uint64_t now) {
        Queue *q = m->queue;
        uint64_t d = now > m->arrival_usec ? now - m->arrival_usec : 0;
        char text[128], delay[32];

        (void) snprintf(text, sizeof(text), "message expired after %" PRIu64 " seconds in the queue%s%s",
                        d / 1000000u, m->last_error ? ": " : "", m->last_error ? m->last_error : "");
        /* As deliverd's lines: seconds since arrival, two decimals. */
        (void) snprintf(delay, sizeof(delay), "%" PRIu64 ".%02" PRIu64, d / 1000000u,
                        (d % 1000000u) / 10000u);
        for (size_t i = 0; i < m->n_rcpts; i++) {
                LogField f[] = {
                        { "MESSAGE_ID", LOG_MID_BOUNCED },
                        { "TERN_QUEUE_ID", m->id },
                        { "TERN_RCPT", m->rcpts[i] },
                        { "TERN_DSN", "4.4.7" },
                        { "TERN_STATUS", "expired" },
                        { "TERN_DELAY", delay },
                };
                int r;

                if (!queue_rcpt_pending(m, i))
                        continue;
                r = spool_state_append_result(q->spool_fd, m->id, i, DELIVERY_BOUNCED, now, "4.4.7",
                                              "none", text);
                if (r < 0)
                        log_error_errno(r, "%s: cannot record the expiry of <%s>: %m", m->id, m->rcpts[i]);
                m->status[i] = DELIVERY_BOUNCED;
                q->n_bounced++;
                stats_note_result(m, DELIVERY_BOUNCED, "none");
                log_fields(LOG_INFO, f, "%s: to=<%s>, relay=none, delay=%s, dsn=4.4.7, status=expired, "
                           "returned to sender (%s)", m->id, m->rcpts[i], delay, text);
        }
}

void queue_msg_round_done(QueueMsg *m) {
        Queue *q = m->queue;
        uint64_t now = now_usec(), next;
        int r;

        m->round_deferred = false;
        if (m->deleted) {
                queue_msg_delete(m, 0);
                return;
        }
        if (queue_msg_n_pending(m) == 0) {
                queue_msg_finish(m);
                return;
        }
        if (bounce_queue_lifetime_usec(q, m) > 0 && now > m->arrival_usec &&
            now - m->arrival_usec >= bounce_queue_lifetime_usec(q, m)) {
                queue_msg_expire(m, now);
                queue_msg_finish(m);
                return;
        }
        /* Reports first: the attempt record marks what they covered, so one
         * that could not be queued is left out of it and tried again. */
        bool reported = bounce_round_done(q, m) >= 0;
        m->attempts++;
        next = now + schedule_backoff_usec(q->config, m->attempts);
        r = reported ? spool_state_append_attempt(q->spool_fd, m->id, now, next) : 0;
        if (r < 0)
                log_warning_errno(r, "%s: cannot record the delivery attempt, ignoring: %m", m->id);
        m->next_attempt_usec = next;
        m->waiting = true;
        r = schedule_at(m, next);
        if (r < 0) {
                log_error_errno(r, "%s: cannot arm the retry timer, retrying now: %m", m->id);
                queue_msg_due(m);
        }
}

/* Loads one queue/<id>. Unreadable files go to corrupt/. */
static void queue_load_one(Queue *q, const char *id, uint64_t now) {
        _cleanup_(spool_closep) SpoolFile *f = NULL;
        _cleanup_(spool_envelope_done) SpoolEnvelope env = {};
        _cleanup_(spool_state_done) SpoolState state = {};
        LogField fields[] = { { "TERN_QUEUE_ID", id } };
        const uint8_t *body;
        size_t body_len;
        QueueMsg *m;
        int r;

        r = spool_open(q->spool_fd, id, &f);
        if (r == -ENOENT)
                return;
        if (r >= 0)
                r = spool_read_envelope(f, &env);
        if (r >= 0 && !streq(env.id, id))
                r = -EBADMSG;
        if (r >= 0)
                r = spool_get_body(f, &body, &body_len);
        if (r >= 0)
                r = spool_state_load(q->spool_fd, id, env.n_rcpts, &state);
        if (r == -ENOMEM) {
                log_error_errno(r, "%s: out of memory loading the queue file, will retry at the next start",
                                id);
                return;
        }
        if (r < 0) {
                int k = spool_move_corrupt(q->spool_fd, id);
                if (k < 0)
                        log_fields_errno(LOG_ERR, r, fields, "%s: queue file is unreadable (%m) and cannot "
                                         "be moved to corrupt/ (%s), ignoring it", id, strerror(-k));
                else
                        log_fields_errno(LOG_ERR, r, fields, "%s: queue file is unreadable (%m), moved "
                                         "to corrupt/", id);
                return;
        }
        r = queue_msg_new(&env, &state, body_len, &m);
        if (r < 0) {
                log_error_errno(r, "%s: cannot load the queue file, will retry at the next start: %m", id);
                return;
        }
        queue_link(q, m);
        if (queue_msg_n_pending(m) == 0) {
                /* Finished before a crash, not yet removed. */
                queue_msg_finish(m);
                return;
        }
        if (m->hold)
                return;
        if (m->next_attempt_usec > now) {
                m->waiting = true;
                r = schedule_at(m, m->next_attempt_usec);
                if (r >= 0)
                        return;
                log_warning_errno(r, "%s: cannot arm the retry timer, retrying now: %m", id);
        }
        queue_msg_due(m);
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Reads the names in subdirectory dir of the spool, sorted. */
static int queue_list_dir(Queue *q, const char *dir, char ***ret, size_t *ret_n) {
        _cleanup_strv_free_ char **names = NULL;
        size_t n = 0, allocated = 0;
        DIR *d;
        int fd;

        fd = openat(q->spool_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        d = fdopendir(fd);
        if (!d) {
                int r = negative_errno();
                (void) close(fd);
                return r;
        }
        for (;;) {
                struct dirent *de;

                errno = 0;
                de = readdir(d);
                if (!de)
                        break;
                if (de->d_name[0] == '.')
                        continue;
                if (n >= QUEUE_SCAN_MAX)
                        break;
                if (n + 2 > allocated) {
                        size_t a = allocated ? allocated * 2 : 64;
                        char **l = reallocarray_safe(names, a, sizeof(char *));
                        if (!l) {
                                (void) closedir(d);
                                return -ENOMEM;
                        }
                        names = l;
                        allocated = a;
                }
                names[n] = strdup(de->d_name);
                if (!names[n]) {
                        (void) closedir(d);
                        return -ENOMEM;
                }
                names[++n] = NULL;
        }
        (void) closedir(d);
        if (names)
                qsort(names, n, sizeof(char *), name_cmp);
        *ret = TAKE_PTR(names);
        *ret_n = n;
        return 0;
}

/* tmp/ holds only files whose QUEUED was never sent: nobody was promised them. */
static void queue_clean_tmp(Queue *q) {
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t n = 0;
        int r;

        r = queue_list_dir(q, SPOOL_DIR_TMP, &names, &n);
        if (r < 0) {
                if (r != -ENOENT)
                        log_warning_errno(r, "Cannot read the spool's tmp/, ignoring: %m");
                return;
        }
        fd = openat(q->spool_fd, SPOOL_DIR_TMP, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return;
        for (size_t i = 0; i < n; i++) {
                if (unlinkat(fd, names[i], 0) < 0)
                        log_warning_errno(-errno, "Cannot remove tmp/%s, ignoring: %m", names[i]);
                else
                        log_info("Removed tmp/%s, a message that was never acknowledged", names[i]);
        }
}

static bool has_suffix(const char *s, const char *suffix, size_t *ret_prefix_len) {
        size_t a = strlen(s), b = strlen(suffix);

        if (a <= b || !streq(s + a - b, suffix))
                return false;
        *ret_prefix_len = a - b;
        return true;
}

int queue_scan(Queue *q) {
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_close_ int qfd = -EBADF;
        uint64_t now = now_usec();
        size_t n = 0, len;
        int r;

        queue_clean_tmp(q);
        r = queue_list_dir(q, SPOOL_DIR_QUEUE, &names, &n);
        if (r < 0)
                return r;
        qfd = openat(q->spool_fd, SPOOL_DIR_QUEUE, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (qfd < 0)
                return negative_errno();

        for (size_t i = 0; i < n; i++) {
                if (has_suffix(names[i], SPOOL_STATE_SUFFIX, &len))
                        continue;
                if (!spool_id_valid(names[i])) {
                        log_warning("Ignoring queue/%s: not a queue id", names[i]);
                        continue;
                }
                queue_load_one(q, names[i], now);
                /* A big queue takes a while to read: keep systemd's watchdog
                 * (WatchdogSec=) fed and say how far we are. */
                if (i % 4096 == 4095)
                        (void) sd_notifyf(0, "WATCHDOG=1\nSTATUS=Loading the queue: %zu of %zu files",
                                          i + 1, n);
        }

        /* A state file whose message is gone is left over from a removal that
         * was cut short. */
        for (size_t i = 0; i < n; i++) {
                char id[SPOOL_ID_MAX];

                if (!has_suffix(names[i], SPOOL_STATE_SUFFIX, &len) || len >= sizeof(id))
                        continue;
                memcpy(id, names[i], len);
                id[len] = 0;
                if (!spool_id_valid(id) || faccessat(qfd, id, F_OK, AT_SYMLINK_NOFOLLOW) >= 0 ||
                    errno != ENOENT)
                        continue;
                if (unlinkat(qfd, names[i], 0) < 0)
                        log_warning_errno(-errno, "Cannot remove the orphan state file queue/%s, "
                                          "ignoring: %m", names[i]);
                else
                        log_info("Removed the orphan state file queue/%s", names[i]);
        }
        log_info("Queue loaded: %zu message%s", q->n_msgs, q->n_msgs == 1 ? "" : "s");
        return 0;
}

int queue_add(Queue *q, const SpoolEnvelope *env, uint64_t size) {
        QueueMsg *m;
        int r;

        r = queue_msg_new(env, NULL, size, &m);
        if (r < 0)
                return r;
        queue_link(q, m);
        q->n_received++;
        queue_msg_due(m);
        return 0;
}

void queue_notify_status(Queue *q) {
        size_t active = 0, deferred = 0, hold = 0;

        for (QueueMsg *m = q->head; m; m = m->next) {
                if (m->hold)
                        hold++;
                else if (m->waiting)
                        deferred++;
                else
                        active++;
        }
        (void) sd_notifyf(0, "STATUS=%s%zu queued, %zu active, %zu deferred, %zu held; "
                          "%zu deliveries in flight; %" PRIu64 " received, %" PRIu64 " sent, %"
                          PRIu64 " bounced", q->stopping ? "Stopping: " : "", q->n_msgs, active,
                          deferred, hold, q->delivery ? delivery_in_flight(q->delivery) : 0,
                          q->n_received, q->n_sent, q->n_bounced);
}

int queue_new(sd_event *e, const Config *c, int spool_fd, Queue **ret) {
        Queue *q = new0(Queue, 1);
        int r;

        if (!q)
                return -ENOMEM;
        q->config = c;
        q->event = sd_event_ref(e);
        q->spool_fd = spool_fd;
        r = delivery_new(q, &q->delivery);
        if (r >= 0)
                r = commit_new(q, &q->commit);
        if (r < 0) {
                queue_free(q);
                return r;
        }
        *ret = q;
        return 0;
}

Queue *queue_free(Queue *q) {
        if (!q)
                return NULL;
        /* The delivery connection goes first: nothing may call back into a
         * half-freed table. */
        q->delivery = delivery_free(q->delivery);
        q->commit = commit_free(q->commit);
        while (q->head)
                queue_msg_free(q->head);
        sd_event_unref(q->event);
        free(q);
        return NULL;
}
