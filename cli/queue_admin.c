/* `ternctl queue show ID`, `hold|release|delete|requeue ID...|ALL` and
 * `flush [ID | --domain DOMAIN | all]`: one request per target over queued's
 * socket (IPC_QUEUE_* in common/ipc.h); queued decides who may do what. */
#include <inttypes.h>
#include <time.h>

#include "config.h"
#include "ipc.h"
#include "queue_admin.h"
#include "queue_list.h"
#include "spool.h"
#include "ternctl.h"

#define QUEUE_ADMIN_STR_MAX (64u * 1024u)

typedef struct AdminConn {
        int fd;
        IpcWriter *w;
        uint8_t *buf;
} AdminConn;

static void admin_conn_done(AdminConn *c) {
        closep(&c->fd);
        free(c->w);
        free(c->buf);
}

static int admin_conn_open(const char *socket_path, AdminConn *c) {
        int r;

        *c = (AdminConn) { .fd = -EBADF };
        c->w = malloc(sizeof(IpcWriter));
        c->buf = malloc(IPC_FRAME_MAX);
        if (!c->w || !c->buf)
                return -ENOMEM;
        c->fd = ipc_connect(socket_path);
        if (c->fd < 0)
                return c->fd;
        r = ipc_hello(c->fd, "ctl");
        return r < 0 ? r : 0;
}

static int admin_recv(AdminConn *c, IpcMsg *m) {
        ssize_t n = ipc_recv(c->fd, c->buf, IPC_FRAME_MAX, NULL);

        if (n < 0)
                return (int) n;
        if (n == 0)
                return -ECONNRESET;
        return ipc_parse(c->buf, (size_t) n, m);
}

/* Prints queued's refusal; returns the exit code 1. */
static int admin_refused(const IpcMsg *m) {
        _cleanup_free_ char *text = NULL;

        if (ipc_get_str(m, IPC_F_TEXT, 1024, &text) < 0)
                fputs("ternctl: the queue refused the request\n", stderr);
        else
                fprintf(stderr, "ternctl: %s\n", text);
        return EXIT_FAILURE;
}

static int admin_io_error(const Config *cfg, int r) {
        if (r == -ENOENT || r == -ECONNREFUSED || r == -EACCES || r == -EPROTO)
                fprintf(stderr, "ternctl: cannot connect to the tern queue (%s): %s\n",
                        cfg->queued_socket, strerror(-r));
        else
                fprintf(stderr, "ternctl: talking to the tern queue (%s) failed: %s\n",
                        cfg->queued_socket, strerror(-r));
        return EXIT_FAILURE;
}

/* One request answered by IPC_QUEUE_END {COUNT}. Returns the exit code and
 * adds the count to *count. */
static int admin_simple(const Config *cfg, uint16_t type, const char *id, bool all,
                        const char *domain, uint64_t *count) {
        AdminConn c;
        IpcMsg m;
        uint64_t n = 0;
        int r, ret;

        /* m points into c.buf: everything is read from it before c goes. */
        r = admin_conn_open(cfg->queued_socket, &c);
        if (r >= 0) {
                ipc_writer_init(c.w, type);
                ipc_put_str(c.w, IPC_F_QUEUE_ID, id);
                ipc_put_str(c.w, IPC_F_DOMAIN, domain);
                if (all)
                        ipc_put_u64(c.w, IPC_F_ALL, 1);
                r = ipc_call(c.fd, c.w, c.buf, IPC_FRAME_MAX, &m);
        }
        if (r < 0)
                ret = admin_io_error(cfg, r);
        else if (m.type == IPC_ERROR)
                ret = admin_refused(&m);
        else if (m.type != IPC_QUEUE_END)
                ret = admin_io_error(cfg, -EBADMSG);
        else {
                (void) ipc_get_u64(&m, IPC_F_COUNT, &n);
                *count += n;
                ret = EXIT_SUCCESS;
        }
        admin_conn_done(&c);
        return ret;
}

static void admin_print_time(FILE *f, uint64_t usec) {
        time_t t = (time_t) (usec / 1000000u);
        struct tm tm;
        char buf[64] = "?";

        if (localtime_r(&t, &tm))
                (void) strftime(buf, sizeof(buf), "%a %b %e %H:%M:%S %Y", &tm);
        fputs(buf, f);
}

static void admin_json_field(FILE *f, const char *name, const IpcMsg *m, uint16_t tag) {
        _cleanup_free_ char *v = NULL;

        fprintf(f, ", \"%s\": ", name);
        if (ipc_get_str(m, tag, QUEUE_ADMIN_STR_MAX, &v) < 0)
                fputs("null", f);
        else
                queue_list_json_string(f, v);
}

static void admin_human_field(FILE *f, const char *label, const IpcMsg *m, uint16_t tag) {
        _cleanup_free_ char *v = NULL;

        if (ipc_get_str(m, tag, QUEUE_ADMIN_STR_MAX, &v) >= 0 && !isempty(v))
                fprintf(f, "%-14s%s\n", label, v);
}

static void admin_print_detail(FILE *f, const IpcMsg *m, bool json) {
        const IpcField *h = ipc_find(m, IPC_F_HEADERS);
        uint64_t size = 0, arrival = 0, attempts = 0, next = 0;
        _cleanup_free_ char *sender = NULL;

        (void) ipc_get_u64(m, IPC_F_SIZE, &size);
        (void) ipc_get_u64(m, IPC_F_ARRIVAL, &arrival);
        (void) ipc_get_u64(m, IPC_F_ATTEMPTS, &attempts);
        (void) ipc_get_u64(m, IPC_F_NEXT_ATTEMPT, &next);
        if (json) {
                _cleanup_free_ char *headers = NULL;

                fputs("{", f);
                fputs("\"id\": ", f);
                {
                        _cleanup_free_ char *id = NULL;
                        (void) ipc_get_str(m, IPC_F_QUEUE_ID, 64, &id);
                        queue_list_json_string(f, id);
                }
                admin_json_field(f, "state", m, IPC_F_STATE);
                admin_json_field(f, "sender", m, IPC_F_SENDER);
                fprintf(f, ", \"size\": %" PRIu64 ", \"arrival\": %" PRIu64, size, arrival / 1000000u);
                admin_json_field(f, "client_address", m, IPC_F_CLIENT_ADDR);
                admin_json_field(f, "client_name", m, IPC_F_CLIENT_NAME);
                admin_json_field(f, "helo", m, IPC_F_HELO);
                admin_json_field(f, "protocol", m, IPC_F_PROTO);
                admin_json_field(f, "auth_user", m, IPC_F_AUTH_USER);
                admin_json_field(f, "envid", m, IPC_F_ENVID);
                admin_json_field(f, "ret", m, IPC_F_RET);
                admin_json_field(f, "submit_uid", m, IPC_F_SUBMIT_UID);
                fprintf(f, ", \"attempts\": %" PRIu64 ", \"next_attempt\": ", attempts);
                if (next)
                        fprintf(f, "%" PRIu64, next / 1000000u);
                else
                        fputs("null", f);
                fputs(", \"headers\": ", f);
                /* Header bytes may hold anything; JSON gets them as text with
                 * invalid UTF-8 replaced. */
                if (h && (headers = strndup((const char *) h->data, h->len)))
                        queue_list_json_string(f, headers);
                else
                        fputs("\"\"", f);
                fputs(", \"recipients\": [", f);
                return;
        }
        admin_human_field(f, "Queue ID:", m, IPC_F_QUEUE_ID);
        admin_human_field(f, "State:", m, IPC_F_STATE);
        (void) ipc_get_str(m, IPC_F_SENDER, QUEUE_ADMIN_STR_MAX, &sender);
        fprintf(f, "%-14s<%s>\n", "Sender:", sender ? sender : "");
        fprintf(f, "%-14s%" PRIu64 "\n", "Size:", size);
        fprintf(f, "%-14s", "Arrival:");
        admin_print_time(f, arrival);
        fputc('\n', f);
        admin_human_field(f, "Client:", m, IPC_F_CLIENT_ADDR);
        admin_human_field(f, "Client name:", m, IPC_F_CLIENT_NAME);
        admin_human_field(f, "HELO:", m, IPC_F_HELO);
        admin_human_field(f, "Protocol:", m, IPC_F_PROTO);
        admin_human_field(f, "Auth user:", m, IPC_F_AUTH_USER);
        admin_human_field(f, "Submit uid:", m, IPC_F_SUBMIT_UID);
        admin_human_field(f, "Envelope id:", m, IPC_F_ENVID);
        admin_human_field(f, "DSN RET:", m, IPC_F_RET);
        fprintf(f, "%-14s%" PRIu64, "Attempts:", attempts);
        if (next) {
                fputs(", next ", f);
                admin_print_time(f, next);
        }
        fputs("\nRecipients:\n", f);
}

static void admin_print_rcpt(FILE *f, const IpcMsg *m, bool json, bool first) {
        _cleanup_free_ char *rcpt = NULL, *dsn = NULL, *relay = NULL, *text = NULL;
        uint64_t status = 0, when = 0, in_flight = 0;
        const char *st;

        (void) ipc_get_str(m, IPC_F_RCPT, QUEUE_ADMIN_STR_MAX, &rcpt);
        (void) ipc_get_str(m, IPC_F_DSN, 64, &dsn);
        (void) ipc_get_str(m, IPC_F_RELAY, QUEUE_ADMIN_STR_MAX, &relay);
        (void) ipc_get_str(m, IPC_F_TEXT, QUEUE_ADMIN_STR_MAX, &text);
        (void) ipc_get_u64(m, IPC_F_STATUS, &status);
        (void) ipc_get_u64(m, IPC_F_WHEN, &when);
        (void) ipc_get_u64(m, IPC_F_IN_FLIGHT, &in_flight);
        st = status < _DELIVERY_STATUS_MAX ? delivery_status_to_string((DeliveryStatus) status) : "?";
        if (in_flight)
                st = "active";
        if (json) {
                fputs(first ? "" : ", ", f);
                fputs("{\"address\": ", f);
                queue_list_json_string(f, rcpt);
                fputs(", \"status\": ", f);
                queue_list_json_string(f, st);
                fputs(", \"dsn\": ", f);
                if (dsn)
                        queue_list_json_string(f, dsn);
                else
                        fputs("null", f);
                fputs(", \"relay\": ", f);
                if (relay)
                        queue_list_json_string(f, relay);
                else
                        fputs("null", f);
                fputs(", \"last_error\": ", f);
                if (text)
                        queue_list_json_string(f, text);
                else
                        fputs("null", f);
                fputs(", \"when\": ", f);
                if (when)
                        fprintf(f, "%" PRIu64, when / 1000000u);
                else
                        fputs("null", f);
                fputs("}", f);
                return;
        }
        fprintf(f, "  <%s> %s", rcpt ? rcpt : "", st);
        if (dsn)
                fprintf(f, " dsn=%s", dsn);
        if (relay)
                fprintf(f, " relay=%s", relay);
        if (when) {
                fputs(" at ", f);
                admin_print_time(f, when);
        }
        if (!isempty(text))
                fprintf(f, " (%s)", text);
        fputc('\n', f);
}

/* Human format: envelope, recipients, then the header section. */
static int admin_show(const Config *cfg, const char *id, bool json) {
        _cleanup_free_ uint8_t *headers = NULL;
        size_t headers_len = 0;
        AdminConn c;
        IpcMsg m;
        bool detail = false, first = true;
        int r, ret = EXIT_SUCCESS;

        r = admin_conn_open(cfg->queued_socket, &c);
        if (r >= 0) {
                ipc_writer_init(c.w, IPC_QUEUE_SHOW);
                ipc_put_str(c.w, IPC_F_QUEUE_ID, id);
                r = ipc_send(c.fd, c.w, -EBADF);
        }
        while (r >= 0) {
                r = admin_recv(&c, &m);
                if (r < 0)
                        break;
                if (m.type == IPC_ERROR) {
                        ret = admin_refused(&m);
                        break;
                }
                if (m.type == IPC_QUEUE_END && detail)
                        break;
                if (m.type == IPC_QUEUE_DETAIL && !detail) {
                        const IpcField *h = ipc_find(&m, IPC_F_HEADERS);

                        admin_print_detail(stdout, &m, json);
                        detail = true;
                        if (h && h->len > 0 && !json) {
                                headers = malloc(h->len);
                                if (headers) {
                                        memcpy(headers, h->data, h->len);
                                        headers_len = h->len;
                                }
                        }
                } else if (m.type == IPC_QUEUE_RCPT_STATE && detail) {
                        admin_print_rcpt(stdout, &m, json, first);
                        first = false;
                } else
                        r = -EBADMSG;
        }
        if (r >= 0 && detail && ret == EXIT_SUCCESS) {
                if (json)
                        fputs("]}\n", stdout);
                else {
                        fputs("Headers:\n", stdout);
                        /* Header bytes come from the network: no escape
                         * sequences reach the administrator's terminal. */
                        for (size_t i = 0; i < headers_len; i++) {
                                uint8_t ch = headers[i];
                                fputc(ch < 32 && ch != '\t' && ch != '\r' && ch != '\n' ? '?' :
                                      ch == 127 ? '?' : ch, stdout);
                        }
                }
        }
        admin_conn_done(&c);
        if (r < 0)
                return admin_io_error(cfg, r);
        return ret;
}

static const struct {
        const char *name;
        uint16_t type;
        const char *done;
} admin_changes[] = {
        { "hold", IPC_QUEUE_HOLD, "put on hold" },
        { "release", IPC_QUEUE_RELEASE, "released" },
        { "delete", IPC_QUEUE_DELETE, "deleted" },
        { "requeue", IPC_QUEUE_REQUEUE, "requeued" },
};

static bool admin_is_all(const char *s) {
        return streq(s, "all") || streq(s, "ALL");
}

int queue_admin_verb(const char *config_path, char **args, size_t n, bool json) {
        _cleanup_(config_freep) Config *cfg = NULL;
        const char *cmd = args[0];
        uint64_t count = 0;
        int ret = EXIT_SUCCESS;

        if (streq(cmd, "show")) {
                if (n != 2)
                        return ternctl_usage_error("%s", "queue show takes one queue id");
                if (ternctl_load_config(config_path, &cfg) < 0)
                        return EXIT_FAILURE;
                return admin_show(cfg, args[1], json);
        }
        if (json)
                return ternctl_usage_error("%s", "--json applies to queue list and show only");
        if (streq(cmd, "flush")) {
                const char *id = NULL, *domain = NULL;

                if (n == 1 || (n == 2 && admin_is_all(args[1])))
                        ; /* every deferred message */
                else if (n == 3 && streq(args[1], "--domain"))
                        domain = args[2];
                else if (n == 2 && strncmp(args[1], "--domain=", 9) == 0)
                        domain = args[1] + 9;
                else if (n == 2 && args[1][0] != '-')
                        id = args[1];
                else
                        return ternctl_usage_error("%s", "queue flush [ID | --domain DOMAIN | all]");
                if (domain && isempty(domain))
                        return ternctl_usage_error("%s", "queue flush --domain needs a domain");
                if (ternctl_load_config(config_path, &cfg) < 0)
                        return EXIT_FAILURE;
                ret = admin_simple(cfg, IPC_QUEUE_FLUSH, id, false, domain, &count);
                if (ret == EXIT_SUCCESS)
                        printf("flush: %" PRIu64 " deferred message%s due now\n", count,
                               count == 1 ? "" : "s");
                return ret;
        }
        for (size_t k = 0; k < ELEMENTSOF(admin_changes); k++) {
                if (!streq(cmd, admin_changes[k].name))
                        continue;
                if (n < 2)
                        return ternctl_usage_error("queue %s takes queue ids or ALL", cmd);
                if (ternctl_load_config(config_path, &cfg) < 0)
                        return EXIT_FAILURE;
                for (size_t i = 1; i < n; i++) {
                        bool all = admin_is_all(args[i]);
                        if (!all && !spool_id_valid(args[i])) {
                                fprintf(stderr, "ternctl: \"%s\" is not a queue id\n", args[i]);
                                ret = EXIT_FAILURE;
                                continue;
                        }
                        if (admin_simple(cfg, admin_changes[k].type, all ? NULL : args[i], all, NULL,
                                         &count) != EXIT_SUCCESS)
                                ret = EXIT_FAILURE;
                }
                printf("%s: %" PRIu64 " message%s %s\n", cmd, count, count == 1 ? "" : "s",
                       admin_changes[k].done);
                return ret;
        }
        return ternctl_usage_error("unknown queue command \"%s\" (list, show, hold, release, delete, "
                                   "requeue, flush)", cmd);
}
