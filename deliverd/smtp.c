/* The SMTP client transport: groups a job's recipients by destination, finds
 * the hosts (relay host or MX), and runs one ESMTP transaction per destination
 * with deadlines on every connect, read and write (RFC 5321 4.5.3.2).
 * Results keep the remote reply, Postfix-style, for logs and bounces. */
#include <arpa/inet.h>
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "mx.h"
#include "network.h"
#include "smtp.h"
#include "smtp_reply.h"

#define SMTP_BUF_SIZE (64u * 1024u)             /* > SMTP_REPLY_LINE_MAX * SMTP_REPLY_LINES_MAX */
#define SMTP_PIPELINE_BATCH 50u                 /* commands per write (RFC 2920 3.1: no deadlock) */
#define SMTP_CONNECT_TIMEOUT_USEC (30ull * 1000000ull)
#define SMTP_REPLY_TIMEOUT_USEC (300ull * 1000000ull)
#define SMTP_QUIT_TIMEOUT_USEC (5ull * 1000000ull)

typedef struct SmtpConn {
        int fd;
        char host[MX_NAME_MAX];
        char addr[INET6_ADDRSTRLEN];
        uint16_t port;
        char relay[MX_NAME_MAX + INET6_ADDRSTRLEN + 8]; /* "host[addr]:port" */
        uint64_t reply_timeout_usec;
        char buf[SMTP_BUF_SIZE];
        size_t len;                     /* bytes in buf */
        size_t consumed;                /* bytes of the last reply, dropped at the next read */
        bool pipelining, size, eightbitmime, smtputf8, dsn;
        uint64_t size_max;
} SmtpConn;

/* The outcome that applies when a host cannot take the message. */
typedef struct SmtpError {
        DeliveryStatus status;
        char dsn[16];
        char text[512];
} SmtpError;

/* One destination: recipients (positions in the job) going to one place. */
typedef struct SmtpDest {
        const char *domain;             /* recipient domain, NULL when relaying */
        size_t *ks;
        size_t n;
} SmtpDest;

static uint64_t now_usec(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ull + (uint64_t) ts.tv_nsec / 1000ull;
}

/* Waits for events on fd until the monotonic deadline. 0, -ETIMEDOUT, -errno. */
static int wait_fd(int fd, short events, uint64_t deadline) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                uint64_t now = now_usec();
                int r, ms;

                if (now >= deadline)
                        return -ETIMEDOUT;
                ms = (deadline - now + 999) / 1000 > INT32_MAX ? INT32_MAX
                                                                : (int) ((deadline - now + 999) / 1000);
                r = poll(&p, 1, ms);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r > 0)
                        return 0;
        }
}

static void error_set(SmtpError *e, DeliveryStatus status, const char *dsn, const char *fmt, ...)
        _printf_(4, 5);
static void error_set(SmtpError *e, DeliveryStatus status, const char *dsn, const char *fmt, ...) {
        va_list ap;

        e->status = status;
        (void) snprintf(e->dsn, sizeof(e->dsn), "%s", dsn);
        va_start(ap, fmt);
        (void) vsnprintf(e->text, sizeof(e->text), fmt, ap);
        va_end(ap);
}

static void result_set(DeliveryResult *res, const SmtpError *e, const char *relay) {
        res->status = e->status;
        (void) snprintf(res->dsn, sizeof(res->dsn), "%s", e->dsn);
        /* The relay name may be longer than the result's field: cut it, on purpose
         * (memcpy, because gcc's -Wformat-truncation rejects a cut snprintf). */
        size_t n = strnlen(relay, sizeof(res->relay) - 1);
        memcpy(res->relay, relay, n);
        res->relay[n] = 0;
        (void) snprintf(res->text, sizeof(res->text), "%s", e->text);
}

/* ---- connection I/O ---------------------------------------------------- */

static int conn_connect(SmtpConn *c, const MxTarget *t, uint64_t timeout_usec) {
        _cleanup_close_ int fd = -EBADF;
        socklen_t len = sizeof(int);
        int r, err = 0;

        fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) &t->addr, t->addr_len) < 0) {
                if (errno != EINPROGRESS)
                        return -errno;
                r = wait_fd(fd, POLLOUT, now_usec() + timeout_usec);
                if (r < 0)
                        return r;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                        return -errno;
                if (err != 0)
                        return -err;
        }
        c->fd = TAKE_FD(fd);
        return 0;
}

/* Writes all n bytes; the deadline restarts with each progress, so a slow
 * but moving peer is not cut off in a long body. */
static int conn_write(SmtpConn *c, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return -errno;
                        k = wait_fd(c->fd, POLLOUT, now_usec() + c->reply_timeout_usec);
                        if (k < 0)
                                return (int) k;
                        continue;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

/* Reads one reply. The reply's lines point into c->buf until the next call.
 * 0, -ETIMEDOUT, -ECONNRESET (peer closed), -EBADMSG (malformed), -errno. */
static int conn_read_reply(SmtpConn *c, SmtpReply *reply, uint64_t timeout_usec) {
        uint64_t deadline = now_usec() + timeout_usec;

        if (c->consumed > 0) {
                memmove(c->buf, c->buf + c->consumed, c->len - c->consumed);
                c->len -= c->consumed;
                c->consumed = 0;
        }
        for (;;) {
                ssize_t k;
                int r;

                r = smtp_reply_parse(c->buf, c->len, NULL, reply);
                if (r > 0) {
                        c->consumed = (size_t) r;
                        return 0;
                }
                if (r < 0)
                        return -EBADMSG;
                if (c->len >= sizeof(c->buf))
                        return -EBADMSG;
                r = wait_fd(c->fd, POLLIN, deadline);
                if (r < 0)
                        return r;
                k = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
                if (k < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -ECONNRESET;
                c->len += (size_t) k;
        }
}

/* Describes an I/O failure while doing what: a timeout, a malformed reply
 * or a lost connection. Always a temporary failure. */
static void error_io(SmtpError *e, const SmtpConn *c, int r, const char *what) {
        if (r == -ETIMEDOUT)
                error_set(e, DELIVERY_DEFERRED, "4.4.2", "conversation with %s[%s] timed out while %s",
                          c->host, c->addr, what);
        else if (r == -EBADMSG)
                error_set(e, DELIVERY_DEFERRED, "4.4.2", "malformed reply from %s[%s] while %s",
                          c->host, c->addr, what);
        else if (r == -ENOMEM)
                error_set(e, DELIVERY_DEFERRED, "4.3.0", "out of memory while %s", what);
        else
                error_set(e, DELIVERY_DEFERRED, "4.4.2", "lost connection with %s[%s] while %s",
                          c->host, c->addr, what);
}

/* The outcome a reply gives: 2xx delivered, 4xx (and an unexpected 3xx)
 * deferred, 5xx bounced; the remote enhanced code or one derived from the
 * basic code. prefix is "" or "host[addr] said: ", suffix " (in reply to …)". */
static void error_reply(SmtpError *e, const SmtpConn *c, const SmtpReply *reply,
                        const char *prefix, const char *in_reply_to) {
        char text[512];
        DeliveryStatus status;
        const char *dsn;

        switch (reply->code / 100) {
        case 2:
                status = DELIVERY_DELIVERED;
                dsn = "2.0.0";
                break;
        case 5:
                status = DELIVERY_BOUNCED;
                dsn = "5.0.0";
                break;
        default:
                status = DELIVERY_DEFERRED;
                dsn = "4.0.0";
        }
        if (reply->enhanced[0] && reply->enhanced[0] == dsn[0])
                dsn = reply->enhanced;
        (void) smtp_reply_format(reply, c->buf, text, sizeof(text));
        if (in_reply_to)
                error_set(e, status, dsn, "%s%s (in reply to %s)", prefix, text, in_reply_to);
        else
                error_set(e, status, dsn, "%s%s", prefix, text);
}

static void error_remote(SmtpError *e, const SmtpConn *c, const SmtpReply *reply, const char *in_reply_to) {
        char prefix[MX_NAME_MAX + INET6_ADDRSTRLEN + 16];

        (void) snprintf(prefix, sizeof(prefix), "%s[%s] said: ", c->host, c->addr);
        error_reply(e, c, reply, prefix, in_reply_to);
}

/* Sends QUIT and waits briefly for the answer; the transaction is already
 * decided, so errors do not matter (RFC 5321 4.1.1.10). */
static void conn_quit(SmtpConn *c) {
        SmtpReply reply;

        if (conn_write(c, "QUIT\r\n", 6) >= 0)
                (void) conn_read_reply(c, &reply, SMTP_QUIT_TIMEOUT_USEC);
}

/* ---- the dialogue ------------------------------------------------------ */

static void parse_ehlo(SmtpConn *c, const SmtpReply *reply) {
        /* Line 0 is the server's name; each further line is "KEYWORD params". */
        for (size_t i = 1; i < reply->n_lines; i++) {
                const char *t = c->buf + reply->lines[i].offset;
                size_t n = reply->lines[i].len, kw;

                for (kw = 0; kw < n && t[kw] != ' '; kw++)
                        ;
#define IS_KW(s) (kw == strlen(s) && strncasecmp(t, s, kw) == 0)
                if (IS_KW("PIPELINING"))
                        c->pipelining = true;
                else if (IS_KW("8BITMIME"))
                        c->eightbitmime = true;
                else if (IS_KW("SMTPUTF8"))
                        c->smtputf8 = true;
                else if (IS_KW("DSN"))
                        c->dsn = true;
                else if (IS_KW("SIZE")) {
                        uint64_t v = 0;
                        c->size = true;
                        /* "SIZE" alone or "SIZE 0": no fixed limit (RFC 1870). */
                        for (size_t j = kw + 1; j < n && t[j] >= '0' && t[j] <= '9'; j++) {
                                if (v > (UINT64_MAX - 9) / 10)
                                        break;
                                v = v * 10 + (uint64_t) (t[j] - '0');
                        }
                        c->size_max = v;
                }
#undef IS_KW
        }
}

/* True for bytes that may go into a command line unchanged: no controls,
 * so that nothing from the spool can end a command early (CRLF injection). */
static bool command_safe(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

static bool is_ascii(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s >= 0x80)
                        return false;
        return true;
}

/* xtext (RFC 3461 4): printable ASCII except '+' and '=', or "+HH". Values
 * that are not valid xtext are left out rather than sent (ENVID, ORCPT). */
static bool xtext_valid(const char *s) {
        if (isempty(s))
                return false;
        for (; *s; s++) {
                if (*s == '+') {
                        static const char hex[] = "0123456789ABCDEF";
                        if (!s[1] || !strchr(hex, s[1]) || !s[2] || !strchr(hex, s[2]))
                                return false;
                        s += 2;
                } else if (*s < 0x21 || *s > 0x7e || *s == '=')
                        return false;
        }
        return true;
}

static bool notify_valid(const char *s) {
        if (isempty(s) || strlen(s) > 64) /* "SUCCESS,FAILURE,DELAY" is the longest */
                return false;
        for (; *s; s++)
                if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == ','))
                        return false;
        return true;
}

typedef struct Buf {
        char *p;
        size_t len, size;
} Buf;

static int buf_printf(Buf *b, const char *fmt, ...) _printf_(2, 3);
static int buf_printf(Buf *b, const char *fmt, ...) {
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vsnprintf(b->p + b->len, b->size - b->len, fmt, ap);
        va_end(ap);
        if (k < 0 || (size_t) k >= b->size - b->len)
                return -ENOBUFS;
        b->len += (size_t) k;
        return 0;
}

/* Appends command i of the transaction: 0 MAIL, 1..n RCPT, n+1 DATA. */
static int build_command(Buf *b, const SmtpConn *c, const DeliveryJob *job, const SmtpDest *d, size_t i) {
        const SpoolEnvelope *env = job->env;
        int r;

        if (i == 0) {
                r = buf_printf(b, "MAIL FROM:<%s>", env->sender ? env->sender : "");
                if (r >= 0 && c->size)
                        r = buf_printf(b, " SIZE=%zu", job->body_len);
                if (r >= 0 && c->eightbitmime && env->body_type && strcasecmp(env->body_type, "8BITMIME") == 0)
                        r = buf_printf(b, " BODY=8BITMIME");
                if (r >= 0 && c->smtputf8 && env->smtputf8)
                        r = buf_printf(b, " SMTPUTF8");
                if (r >= 0 && c->dsn && env->ret &&
                    (strcasecmp(env->ret, "FULL") == 0 || strcasecmp(env->ret, "HDRS") == 0))
                        r = buf_printf(b, " RET=%s", env->ret);
                if (r >= 0 && c->dsn && xtext_valid(env->envid) && strlen(env->envid) <= 100)
                        r = buf_printf(b, " ENVID=%s", env->envid);
        } else if (i <= d->n) {
                const SpoolRcpt *rc = &env->rcpts[job->rcpt_index[d->ks[i - 1]]];

                r = buf_printf(b, "RCPT TO:<%s>", rc->addr);
                if (r >= 0 && c->dsn && notify_valid(rc->notify))
                        r = buf_printf(b, " NOTIFY=%s", rc->notify);
                if (r >= 0 && c->dsn && xtext_valid(rc->orcpt) && strlen(rc->orcpt) <= 500)
                        r = buf_printf(b, " ORCPT=%s", rc->orcpt);
        } else
                r = buf_printf(b, "DATA");
        if (r >= 0)
                r = buf_printf(b, "\r\n");
        return r;
}

/* Sends the body with CRLF line ends and dot-stuffing (RFC 5321 4.5.2), then
 * the end of data. Every CR, LF or CRLF becomes CRLF: a bare CR or LF must
 * never reach the next server, where it could end the data early (SMTP
 * smuggling). */
static int send_body(SmtpConn *c, const uint8_t *body, size_t len) {
        _cleanup_free_ char *out = malloc(SMTP_BUF_SIZE);
        bool line_start = true;
        size_t n = 0;
        int r;

        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                uint8_t ch = body[i];

                if (n > SMTP_BUF_SIZE - 8) {
                        r = conn_write(c, out, n);
                        if (r < 0)
                                return r;
                        n = 0;
                }
                if (line_start && ch == '.')
                        out[n++] = '.';
                if (ch == '\r' || ch == '\n') {
                        if (ch == '\r' && i + 1 < len && body[i + 1] == '\n')
                                i++;
                        out[n++] = '\r';
                        out[n++] = '\n';
                        line_start = true;
                } else {
                        out[n++] = (char) ch;
                        line_start = false;
                }
        }
        if (!line_start) {
                out[n++] = '\r';
                out[n++] = '\n';
        }
        memcpy(out + n, ".\r\n", 3);
        n += 3;
        return conn_write(c, out, n);
}

/* Sets results of the recipients not final yet (pending or accepted). */
static void results_rest(const SmtpDest *d, DeliveryResult *results, const SmtpError *e, const char *relay) {
        for (size_t k = 0; k < d->n; k++) {
                DeliveryResult *res = &results[d->ks[k]];
                if (res->status == DELIVERY_NONE || res->status == DELIVERY_DELIVERED)
                        result_set(res, e, relay);
        }
}

/* Runs the transaction after the greeting and EHLO. Fills the results of
 * every recipient of d. "Accepted" recipients carry DELIVERY_DELIVERED as a
 * provisional mark until the end of data decides. */
static int session_transaction(SmtpConn *c, const DeliveryJob *job, const SmtpDest *d, DeliveryResult *results) {
        _cleanup_free_ char *cmd = NULL;
        size_t n_cmds = d->n + 2, next_send = 0, next_read = 0, accepted = 0;
        bool mail_ok = false;
        unsigned data_code = 0;
        SmtpReply reply;
        SmtpError e;
        int r;

        cmd = malloc(SMTP_PIPELINE_BATCH * 1024);
        if (!cmd)
                return -ENOMEM;

        while (next_read < n_cmds) {
                if (next_send == next_read) {
                        size_t limit = c->pipelining ? SMTP_PIPELINE_BATCH : 1;
                        Buf b = { cmd, 0, SMTP_PIPELINE_BATCH * 1024 };

                        if (next_send > 0 && !mail_ok)
                                break;
                        if (next_send == n_cmds - 1 && accepted == 0)
                                break;
                        /* Each command fits in 1024 bytes: addresses <= 256, parameters
                         * bounded in build_command(); -ENOBUFS would be a bug. */
                        for (size_t i = next_send; i < n_cmds && i < next_send + limit; i++) {
                                r = build_command(&b, c, job, d, i);
                                if (r < 0) {
                                        error_set(&e, DELIVERY_DEFERRED, "4.3.0", "internal error: command too long");
                                        results_rest(d, results, &e, c->relay);
                                        return 0;
                                }
                        }
                        next_send = next_send + limit < n_cmds ? next_send + limit : n_cmds;
                        r = conn_write(c, b.p, b.len);
                        if (r < 0) {
                                error_io(&e, c, r, next_read == 0 ? "sending MAIL FROM" : "sending RCPT TO");
                                results_rest(d, results, &e, c->relay);
                                return 0;
                        }
                }
                r = conn_read_reply(c, &reply, c->reply_timeout_usec);
                if (r < 0) {
                        error_io(&e, c, r,
                                 next_read == 0 ? "sending MAIL FROM" :
                                 next_read < n_cmds - 1 ? "sending RCPT TO" : "sending DATA command");
                        results_rest(d, results, &e, c->relay);
                        return 0;
                }
                if (next_read == 0) {
                        if (reply.code / 100 == 2)
                                mail_ok = true;
                        else {
                                error_remote(&e, c, &reply, "MAIL FROM command");
                                results_rest(d, results, &e, c->relay);
                        }
                } else if (next_read < n_cmds - 1) {
                        DeliveryResult *res = &results[d->ks[next_read - 1]];
                        if (mail_ok) {
                                error_remote(&e, c, &reply, "RCPT TO command");
                                result_set(res, &e, c->relay);
                                if (e.status == DELIVERY_DELIVERED)
                                        accepted++;
                        }
                } else
                        data_code = reply.code;
                next_read++;
        }

        if (data_code == 354 && (!mail_ok || accepted == 0)) {
                /* A pipelined DATA the server accepted although no RCPT was
                 * (RFC 2920 3.1): send an empty message end and drop it. */
                if (conn_write(c, ".\r\n", 3) >= 0)
                        (void) conn_read_reply(c, &reply, c->reply_timeout_usec);
        }
        if (!mail_ok || accepted == 0) {
                conn_quit(c);
                return 0;
        }
        if (data_code != 354) {
                error_remote(&e, c, &reply, "DATA command");
                if (e.status == DELIVERY_DELIVERED) /* 2xx to DATA: a broken server */
                        error_set(&e, DELIVERY_DEFERRED, "4.5.0", "%s", e.text);
                results_rest(d, results, &e, c->relay);
                conn_quit(c);
                return 0;
        }

        r = send_body(c, job->body, job->body_len);
        if (r < 0) {
                error_io(&e, c, r, "sending message body");
                results_rest(d, results, &e, c->relay);
                return 0;
        }
        r = conn_read_reply(c, &reply, c->reply_timeout_usec);
        if (r < 0) {
                /* The server may have the message: a retry can duplicate it
                 * (RFC 1047), which is better than losing it. */
                error_io(&e, c, r, "sending end of data -- message may be sent more than once");
                results_rest(d, results, &e, c->relay);
                return 0;
        }
        if (reply.code / 100 == 2)
                error_reply(&e, c, &reply, "", NULL);
        else
                error_remote(&e, c, &reply, "end of DATA command");
        results_rest(d, results, &e, c->relay);
        conn_quit(c);
        return 0;
}

/* Greeting and EHLO/HELO. Returns 1 when the results of d are filled, 0
 * when this host cannot be used (*err says why; try the next host), -errno. */
static int session_run(SmtpConn *c, const DeliveryJob *job, const SmtpDest *d, DeliveryResult *results,
                       SmtpError *err) {
        const Config *cfg = job->config;
        const char *helo = cfg->hostname && command_safe(cfg->hostname) && !isempty(cfg->hostname)
                                   ? cfg->hostname : "localhost";
        char line[MX_NAME_MAX + 16];
        SmtpReply reply;
        SmtpError e;
        int r;

        r = conn_read_reply(c, &reply, c->reply_timeout_usec);
        if (r < 0) {
                error_io(err, c, r, "receiving the initial server greeting");
                return 0;
        }
        if (reply.code / 100 != 2) {
                char prefix[MX_NAME_MAX + INET6_ADDRSTRLEN + 40];
                (void) snprintf(prefix, sizeof(prefix), "host %s[%s] refused to talk to me: ", c->host, c->addr);
                error_reply(err, c, &reply, prefix, NULL);
                conn_quit(c); /* RFC 5321 3.1: a 554 greeting still expects QUIT */
                return 0;
        }

        (void) snprintf(line, sizeof(line), "EHLO %s\r\n", helo);
        r = conn_write(c, line, strlen(line));
        if (r >= 0)
                r = conn_read_reply(c, &reply, c->reply_timeout_usec);
        if (r < 0) {
                error_io(err, c, r, "performing the EHLO handshake");
                return 0;
        }
        if (reply.code / 100 == 2)
                parse_ehlo(c, &reply);
        else if (reply.code / 100 == 5) {
                /* An old server without ESMTP (RFC 5321 3.2). */
                (void) snprintf(line, sizeof(line), "HELO %s\r\n", helo);
                r = conn_write(c, line, strlen(line));
                if (r >= 0)
                        r = conn_read_reply(c, &reply, c->reply_timeout_usec);
                if (r < 0) {
                        error_io(err, c, r, "performing the HELO handshake");
                        return 0;
                }
                if (reply.code / 100 != 2) {
                        error_remote(err, c, &reply, "HELO command");
                        conn_quit(c);
                        return 0;
                }
        } else {
                error_remote(err, c, &reply, "EHLO command");
                conn_quit(c);
                return 0;
        }

        /* Refusals decided here before any transaction: they apply to all. */
        if (c->size && c->size_max > 0 && job->body_len > c->size_max) {
                error_set(&e, DELIVERY_BOUNCED, "5.3.4",
                          "message size %zu exceeds size limit %" PRIu64 " of server %s[%s]",
                          job->body_len, c->size_max, c->host, c->addr);
                results_rest(d, results, &e, c->relay);
                conn_quit(c);
                return 1;
        }
        if (!c->smtputf8) {
                bool needed = !is_ascii(job->env->sender ? job->env->sender : "");
                for (size_t k = 0; k < d->n && !needed; k++)
                        needed = !is_ascii(job->env->rcpts[job->rcpt_index[d->ks[k]]].addr);
                if (needed) {
                        error_set(&e, DELIVERY_BOUNCED, "5.6.7",
                                  "SMTPUTF8 is required, but was not offered by host %s[%s]",
                                  c->host, c->addr);
                        results_rest(d, results, &e, c->relay);
                        conn_quit(c);
                        return 1;
                }
        }

        r = session_transaction(c, job, d, results);
        return r < 0 ? r : 1;
}

/* ---- destinations ------------------------------------------------------ */

int smtp_parse_relay(const char *s, char *host, size_t size, uint16_t *ret_port, bool *ret_use_mx) {
        const char *h = s, *end, *port = NULL;
        bool bracket = false;
        unsigned long p = SMTP_PORT_DEFAULT;

        if (isempty(s))
                return -EINVAL;
        if (*s == '[') {
                end = strchr(s, ']');
                if (!end)
                        return -EINVAL;
                h = s + 1;
                bracket = true;
                if (end[1] == ':')
                        port = end + 2;
                else if (end[1] != 0)
                        return -EINVAL;
                if (strncasecmp(h, "IPv6:", 5) == 0)
                        h += 5;
        } else {
                end = strchr(s, ':');
                if (end) {
                        port = end + 1;
                        if (strchr(port, ':'))
                                return -EINVAL; /* an IPv6 address needs brackets */
                } else
                        end = s + strlen(s);
        }
        if (end == h || (size_t) (end - h) >= size)
                return -EINVAL;
        if (port) {
                char *e = NULL;
                if (*port < '0' || *port > '9')
                        return -EINVAL;
                errno = 0;
                p = strtoul(port, &e, 10);
                if (errno != 0 || *e != 0 || p == 0 || p > 65535)
                        return -EINVAL;
        }
        memcpy(host, h, (size_t) (end - h));
        host[end - h] = 0;
        if (!command_safe(host) || strchr(host, ' ') || strchr(host, '/'))
                return -EINVAL;
        *ret_port = (uint16_t) p;
        *ret_use_mx = !bracket;
        return 0;
}

static void deliver_dest(const DeliveryJob *job, const SmtpDest *d, DeliveryResult *results) {
        const Config *cfg = job->config;
        _cleanup_free_ MxTarget *targets = NULL;
        _cleanup_free_ SmtpConn *c = NULL;
        char host[MX_NAME_MAX];
        uint16_t port = SMTP_PORT_DEFAULT;
        bool use_mx = true;
        SmtpError err;
        int r, n;

        if (!d->domain) {
                if (smtp_parse_relay(cfg->relay_host, host, sizeof(host), &port, &use_mx) < 0) {
                        error_set(&err, DELIVERY_DEFERRED, "4.3.5", "invalid relay_host \"%s\"", cfg->relay_host);
                        results_rest(d, results, &err, "none");
                        return;
                }
        } else if (d->domain[0] == '[') {
                /* An address literal (RFC 5321 4.1.3): that host, no MX. */
                r = smtp_parse_relay(d->domain, host, sizeof(host), &port, &use_mx);
                if (r < 0 || inet_pton(strchr(host, ':') ? AF_INET6 : AF_INET, host, &(struct in6_addr) {}) != 1) {
                        error_set(&err, DELIVERY_BOUNCED, "5.1.2", "bad address literal %s", d->domain);
                        results_rest(d, results, &err, "none");
                        return;
                }
                port = SMTP_PORT_DEFAULT;
        } else
                (void) snprintf(host, sizeof(host), "%s", d->domain);

        n = mx_resolve(host, use_mx, port, &targets);
        if (n < 0) {
                const char *type = use_mx ? "MX" : "A";
                if (n == -EPERM)
                        error_set(&err, DELIVERY_BOUNCED, "5.1.10", "Domain %s does not accept mail (nullMX)", host);
                else if (n == -ENXIO && d->domain)
                        error_set(&err, DELIVERY_BOUNCED, "5.1.2",
                                  "Host or domain name not found. Name service error for name=%s type=%s: Host not found",
                                  host, type);
                else if (n == -ENXIO)
                        /* The relay host is the administrator's to fix: keep the mail. */
                        error_set(&err, DELIVERY_DEFERRED, "4.3.5",
                                  "Host or domain name not found. Name service error for name=%s type=%s: Host not found",
                                  host, type);
                else
                        error_set(&err, DELIVERY_DEFERRED, "4.4.3",
                                  "Host or domain name not found. Name service error for name=%s type=%s: Host not found, try again",
                                  host, type);
                results_rest(d, results, &err, "none");
                return;
        }

        c = new0(SmtpConn, 1);
        if (!c) {
                error_set(&err, DELIVERY_DEFERRED, "4.3.0", "out of memory");
                results_rest(d, results, &err, "none");
                return;
        }
        error_set(&err, DELIVERY_DEFERRED, "4.4.1", "no host to connect to");
        for (int i = 0; i < n; i++) {
                const MxTarget *t = &targets[i];
                uint64_t ct = cfg->smtp_connect_timeout_usec ? cfg->smtp_connect_timeout_usec
                                                              : SMTP_CONNECT_TIMEOUT_USEC;

                memset(c, 0, sizeof(*c));
                c->fd = -EBADF;
                c->reply_timeout_usec = cfg->smtp_reply_timeout_usec ? cfg->smtp_reply_timeout_usec
                                                                     : SMTP_REPLY_TIMEOUT_USEC;
                (void) snprintf(c->host, sizeof(c->host), "%s", t->host);
                if (sockaddr_to_string((const struct sockaddr *) &t->addr, t->addr_len, c->addr, sizeof(c->addr)) < 0)
                        (void) snprintf(c->addr, sizeof(c->addr), "?");
                c->port = port;
                (void) snprintf(c->relay, sizeof(c->relay), "%s[%s]:%u", c->host, c->addr, (unsigned) port);

                r = conn_connect(c, t, ct);
                if (r < 0) {
                        error_set(&err, DELIVERY_DEFERRED, "4.4.1", "connect to %s[%s]:%u: %s", c->host, c->addr,
                                  (unsigned) port, r == -ETIMEDOUT ? "Connection timed out" : strerror(-r));
                        if (i + 1 < n)
                                log_debug("%s, trying the next host", err.text);
                        continue;
                }
                r = session_run(c, job, d, results, &err);
                closep(&c->fd);
                if (r != 0) {
                        if (r < 0) {
                                error_set(&err, DELIVERY_DEFERRED, "4.3.0", "%s", strerror(-r));
                                results_rest(d, results, &err, c->relay);
                        }
                        return;
                }
                if (i + 1 < n)
                        log_debug("%s, trying the next host", err.text);
        }
        results_rest(d, results, &err, "none");
}

static const char *rcpt_domain(const DeliveryJob *job, size_t k) {
        const char *a = job->env->rcpts[job->rcpt_index[k]].addr, *at = a ? strrchr(a, '@') : NULL;
        return at ? at + 1 : "";
}

typedef struct DomainKey {
        const char *domain;
        size_t k;
} DomainKey;

static int domain_key_compare(const void *a, const void *b) {
        const DomainKey *x = a, *y = b;
        int r = strcasecmp(x->domain, y->domain);
        return r != 0 ? r : (x->k > y->k) - (x->k < y->k);
}

int transport_smtp_deliver(const DeliveryJob *job, DeliveryResult *results) {
        _cleanup_free_ DomainKey *keys = NULL;
        _cleanup_free_ size_t *ks = NULL;
        bool relay = !isempty(job->config->relay_host);
        SmtpError e;

        assert(job && results);
        for (size_t k = 0; k < job->n_rcpts; k++)
                results[k] = (DeliveryResult) { .status = DELIVERY_NONE };
        if (job->n_rcpts == 0)
                return 0;
        keys = new0(DomainKey, job->n_rcpts);
        ks = new0(size_t, job->n_rcpts);
        if (!keys || !ks)
                return -ENOMEM;

        /* Addresses go into command lines: refuse what could inject one. */
        if (!command_safe(job->env->sender ? job->env->sender : "") ||
            (job->env->sender && strlen(job->env->sender) > 256)) {
                error_set(&e, DELIVERY_BOUNCED, "5.1.7", "bad sender address syntax");
                for (size_t k = 0; k < job->n_rcpts; k++)
                        result_set(&results[k], &e, "none");
                return 0;
        }
        for (size_t k = 0; k < job->n_rcpts; k++) {
                const char *a = job->env->rcpts[job->rcpt_index[k]].addr;
                keys[k] = (DomainKey) { .domain = relay ? "" : rcpt_domain(job, k), .k = k };
                if (!a || !command_safe(a) || strlen(a) > 256) {
                        error_set(&e, DELIVERY_BOUNCED, "5.1.3", "bad recipient address syntax");
                        result_set(&results[k], &e, "none");
                } else if (!relay && isempty(keys[k].domain)) {
                        error_set(&e, DELIVERY_BOUNCED, "5.1.2", "recipient address has no domain");
                        result_set(&results[k], &e, "none");
                }
        }
        qsort(keys, job->n_rcpts, sizeof(keys[0]), domain_key_compare);

        for (size_t start = 0, end; start < job->n_rcpts; start = end) {
                SmtpDest d = { .domain = relay ? NULL : keys[start].domain, .ks = ks, .n = 0 };

                for (end = start; end < job->n_rcpts && strcasecmp(keys[end].domain, keys[start].domain) == 0;
                     end++)
                        if (results[keys[end].k].status == DELIVERY_NONE)
                                ks[d.n++] = keys[end].k;
                if (d.n > 0)
                        deliver_dest(job, &d, results);
        }

        /* Every path above fills its recipients; this only guards the promise
         * that each result is filled. */
        error_set(&e, DELIVERY_DEFERRED, "4.3.0", "internal error: no result");
        for (size_t k = 0; k < job->n_rcpts; k++)
                if (results[k].status == DELIVERY_NONE)
                        result_set(&results[k], &e, "none");
        return 0;
}
