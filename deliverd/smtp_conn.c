/* The SMTP client's connection: deadlines on every connect, read and write
 * (RFC 5321 4.5.3.2), a bounded reply buffer, TLS once started, and the
 * texts that describe failures the way Postfix words them. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/err.h>

#include "smtp_conn.h"

uint64_t smtp_now_usec(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ull + (uint64_t) ts.tv_nsec / 1000ull;
}

/* Waits for events on fd until the monotonic deadline. 0, -ETIMEDOUT, -errno. */
static int smtp_conn_wait(int fd, short events, uint64_t deadline) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                uint64_t now = smtp_now_usec();
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

void smtp_conn_close(SmtpConn *c) {
        if (c->ssl) {
                /* One close_notify, no wait for the peer's: the session is over. */
                (void) SSL_shutdown(c->ssl);
                SSL_free(c->ssl);
                c->ssl = NULL;
        }
        closep(&c->fd);
}

void smtp_conn_reset(SmtpConn *c, const char *host, const char *addr, uint16_t port, uint64_t reply_timeout_usec) {
        bool lmtp = c->lmtp;

        smtp_conn_close(c);
        memset(c, 0, sizeof(*c));
        c->fd = -EBADF;
        c->lmtp = lmtp;
        c->reply_timeout_usec = reply_timeout_usec;
        (void) snprintf(c->host, sizeof(c->host), "%s", host);
        (void) snprintf(c->addr, sizeof(c->addr), "%s", addr);
        c->port = port;
        if (port > 0)
                (void) snprintf(c->relay, sizeof(c->relay), "%s[%s]:%u", c->host, c->addr, (unsigned) port);
        else
                (void) snprintf(c->relay, sizeof(c->relay), "%s[%s]", c->host, c->addr);
}

int smtp_conn_connect(SmtpConn *c, const struct sockaddr *addr, socklen_t len, uint64_t timeout_usec) {
        _cleanup_close_ int fd = -EBADF;
        socklen_t elen = sizeof(int);
        int r, err = 0;

        fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, addr, len) < 0) {
                if (errno != EINPROGRESS && errno != EAGAIN)
                        return -errno;
                r = smtp_conn_wait(fd, POLLOUT, smtp_now_usec() + timeout_usec);
                if (r < 0)
                        return r;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
                        return -errno;
                if (err != 0)
                        return -err;
        }
        c->fd = TAKE_FD(fd);
        return 0;
}

/* One read or write over TLS or the plain socket: > 0 bytes, 0 at EOF,
 * -EAGAIN with *ret_events what to wait for, or -errno. */
static ssize_t smtp_conn_io(SmtpConn *c, bool writing, void *p, size_t n, short *ret_events) {
        ssize_t k;

        if (c->ssl) {
                size_t done = 0;
                int ok, e;

                ERR_clear_error();
                ok = writing ? SSL_write_ex(c->ssl, p, n, &done) : SSL_read_ex(c->ssl, p, n, &done);
                if (ok == 1)
                        return (ssize_t) done;
                e = SSL_get_error(c->ssl, ok);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                        *ret_events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
                        return -EAGAIN;
                }
                if (e == SSL_ERROR_ZERO_RETURN)
                        return 0;
                return e == SSL_ERROR_SYSCALL && errno != 0 ? -errno : -ECONNRESET;
        }
        k = writing ? send(c->fd, p, n, MSG_NOSIGNAL) : recv(c->fd, p, n, 0);
        if (k >= 0)
                return k;
        if (errno == EAGAIN || errno == EINTR) {
                *ret_events = writing ? POLLOUT : POLLIN;
                return -EAGAIN;
        }
        return -errno;
}

int smtp_conn_write(SmtpConn *c, const char *p, size_t n) {
        while (n > 0) {
                short events = POLLOUT;
                ssize_t k = smtp_conn_io(c, true, (void *) p, n, &events);

                if (k == -EAGAIN) {
                        int r = smtp_conn_wait(c->fd, events, smtp_now_usec() + c->reply_timeout_usec);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (k < 0)
                        return (int) k;
                if (k == 0)
                        return -ECONNRESET;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

int smtp_conn_read_reply(SmtpConn *c, SmtpReply *reply, uint64_t timeout_usec) {
        uint64_t deadline = smtp_now_usec() + timeout_usec;

        if (c->consumed > 0) {
                memmove(c->buf, c->buf + c->consumed, c->len - c->consumed);
                c->len -= c->consumed;
                c->consumed = 0;
        }
        for (;;) {
                short events = POLLIN;
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
                /* TLS may hold decrypted bytes that poll() cannot see. */
                if (!c->ssl || SSL_pending(c->ssl) == 0) {
                        r = smtp_conn_wait(c->fd, POLLIN, deadline);
                        if (r < 0)
                                return r;
                }
                k = smtp_conn_io(c, false, c->buf + c->len, sizeof(c->buf) - c->len, &events);
                if (k == -EAGAIN) {
                        if (events == POLLOUT) {
                                r = smtp_conn_wait(c->fd, POLLOUT, deadline);
                                if (r < 0)
                                        return r;
                        }
                        continue;
                }
                if (k < 0)
                        return (int) k;
                if (k == 0)
                        return -ECONNRESET;
                c->len += (size_t) k;
        }
}

bool smtp_conn_has_unread(const SmtpConn *c) {
        return c->len > c->consumed;
}

void smtp_conn_quit(SmtpConn *c) {
        SmtpReply reply;

        /* RFC 5321 4.1.1.10; the transaction is decided, errors do not matter. */
        if (c->fd >= 0 && smtp_conn_write(c, "QUIT\r\n", 6) >= 0)
                (void) smtp_conn_read_reply(c, &reply, SMTP_QUIT_TIMEOUT_USEC);
        smtp_conn_close(c);
}

void smtp_error_set(SmtpError *e, DeliveryStatus status, const char *dsn, const char *fmt, ...) {
        va_list ap;

        e->status = status;
        (void) snprintf(e->dsn, sizeof(e->dsn), "%s", dsn);
        va_start(ap, fmt);
        (void) vsnprintf(e->text, sizeof(e->text), fmt, ap);
        va_end(ap);
}

void smtp_result_set(DeliveryResult *res, const SmtpError *e, const char *relay) {
        res->status = e->status;
        (void) snprintf(res->dsn, sizeof(res->dsn), "%s", e->dsn);
        /* The relay name may be longer than the result's field: cut it, on purpose
         * (memcpy, because gcc's -Wformat-truncation rejects a cut snprintf). */
        size_t n = strnlen(relay, sizeof(res->relay) - 1);
        memcpy(res->relay, relay, n);
        res->relay[n] = 0;
        (void) snprintf(res->text, sizeof(res->text), "%s", e->text);
}

void smtp_error_io(SmtpError *e, const SmtpConn *c, int r, const char *what) {
        if (r == -ETIMEDOUT)
                smtp_error_set(e, DELIVERY_DEFERRED, "4.4.2", "conversation with %s[%s] timed out while %s",
                               c->host, c->addr, what);
        else if (r == -EBADMSG)
                smtp_error_set(e, DELIVERY_DEFERRED, "4.4.2", "malformed reply from %s[%s] while %s",
                               c->host, c->addr, what);
        else if (r == -ENOMEM)
                smtp_error_set(e, DELIVERY_DEFERRED, "4.3.0", "out of memory while %s", what);
        else
                smtp_error_set(e, DELIVERY_DEFERRED, "4.4.2", "lost connection with %s[%s] while %s",
                               c->host, c->addr, what);
}

void smtp_error_reply(SmtpError *e, const SmtpConn *c, const SmtpReply *reply, const char *prefix,
                      const char *in_reply_to) {
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
                smtp_error_set(e, status, dsn, "%s%s (in reply to %s)", prefix, text, in_reply_to);
        else
                smtp_error_set(e, status, dsn, "%s%s", prefix, text);
}

void smtp_error_remote(SmtpError *e, const SmtpConn *c, const SmtpReply *reply, const char *in_reply_to) {
        char prefix[MX_NAME_MAX + INET6_ADDRSTRLEN + 16];

        (void) snprintf(prefix, sizeof(prefix), "host %s[%s] said: ", c->host, c->addr);
        smtp_error_reply(e, c, reply, prefix, in_reply_to);
}
