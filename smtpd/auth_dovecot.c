/* Dovecot's auth client protocol (doc.dovecot.org, "Authentication
 * Protocol"): tab-separated lines. We send VERSION and CPID at connect, read
 * the server's VERSION ... DONE handshake at the first AUTH, and send every
 * credential as PLAIN with its initial response (LOGIN is converted: the
 * client's mechanism matters only to us). The socket is connected before the
 * sandbox, which forbids socket() and connect(). */
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth_dovecot.h"

#define DOVECOT_LINE_MAX 8192u

typedef struct AuthDovecot {
        AuthBackend backend;
        int fd;
        bool handshake_done;
        unsigned next_id;
        char buf[DOVECOT_LINE_MAX];
        size_t len;             /* bytes in buf */
} AuthDovecot;

static int dovecot_write(AuthDovecot *d, const char *p, size_t n) {
        while (n > 0) {
                ssize_t w = write(d->fd, p, n);

                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0)
                        return errno == EAGAIN ? -ETIMEDOUT : negative_errno();
                p += w;
                n -= (size_t) w;
        }
        return 0;
}

/* Reads the next line (without LF) into line. Returns 0 or -errno. */
static int dovecot_read_line(AuthDovecot *d, char *line, size_t size) {
        for (;;) {
                char *lf = memchr(d->buf, '\n', d->len);
                ssize_t n;

                if (lf) {
                        size_t l = (size_t) (lf - d->buf);

                        if (l >= size)
                                return -EBADMSG;
                        memcpy(line, d->buf, l);
                        line[l] = 0;
                        memmove(d->buf, lf + 1, d->len - l - 1);
                        d->len -= l + 1;
                        return 0;
                }
                if (d->len == sizeof(d->buf))
                        return -EBADMSG;
                n = read(d->fd, d->buf + d->len, sizeof(d->buf) - d->len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return errno == EAGAIN ? -ETIMEDOUT : negative_errno();
                if (n == 0)
                        return -ECONNRESET;
                d->len += (size_t) n;
        }
}

static int dovecot_handshake(AuthDovecot *d) {
        char line[DOVECOT_LINE_MAX];
        bool version_ok = false, plain = false;
        int r;

        for (;;) {
                r = dovecot_read_line(d, line, sizeof(line));
                if (r < 0)
                        return r;
                if (strncmp(line, "VERSION\t1\t", 10) == 0)
                        version_ok = true;
                else if (strncmp(line, "VERSION\t", 8) == 0)
                        return -EPROTO; /* a new major version: we cannot speak it */
                else if (strncmp(line, "MECH\tPLAIN", 10) == 0 && (line[10] == 0 || line[10] == '\t'))
                        plain = true;
                else if (streq(line, "DONE"))
                        break;
        }
        if (!version_ok || !plain)
                return -EPROTO;
        d->handshake_done = true;
        return 0;
}

/* Dovecot's tab escaping (str_tabescape): \001 '1' = \001, \001 't' = TAB, ... */
static int dovecot_unescape(const char *in, char *out, size_t size) {
        size_t o = 0;

        for (size_t i = 0; in[i]; i++) {
                char c = in[i];

                if (c == '\001') {
                        switch (in[++i]) {
                        case '1': c = '\001'; break;
                        case 't': c = '\t'; break;
                        case 'r': c = '\r'; break;
                        case 'n': c = '\n'; break;
                        case '0': c = 0; break;
                        default: return -EBADMSG;
                        }
                }
                if (c == 0 || o + 1 >= size)
                        return -EBADMSG;
                out[o++] = c;
        }
        out[o] = 0;
        return 0;
}

static int auth_dovecot_check(AuthBackend *b, const AuthRequest *req, char ret_user[AUTH_USER_MAX]) {
        AuthDovecot *d = (AuthDovecot *) b;
        char plain[AUTH_USER_MAX + AUTH_PASSWORD_MAX + 2], resp[sizeof(plain) * 4 / 3 + 8];
        char cmd[sizeof(resp) + 256], line[DOVECOT_LINE_MAX], id[16];
        size_t ul = strlen(req->user), pl = strlen(req->password);
        int n, r;

        if (!d->handshake_done) {
                r = dovecot_handshake(d);
                if (r < 0)
                        return r;
        }
        if (ul >= AUTH_USER_MAX || pl >= AUTH_PASSWORD_MAX)
                return 0;
        plain[0] = 0;
        memcpy(plain + 1, req->user, ul);
        plain[1 + ul] = 0;
        memcpy(plain + 2 + ul, req->password, pl);
        r = auth_base64_encode(plain, ul + pl + 2, resp, sizeof(resp));
        explicit_bzero(plain, sizeof(plain));
        if (r < 0)
                return r;

        (void) snprintf(id, sizeof(id), "%u", ++d->next_id);
        /* rip= lets Dovecot's own logs and auth policy see the client;
         * "secured" tells it the credentials came over TLS. Addresses we
         * print are digits, dots and colons: nothing to escape. */
        n = snprintf(cmd, sizeof(cmd), "AUTH\t%s\tPLAIN\tservice=smtp\tnologin%s%s%s\tresp=%s\n", id,
                     streq(req->client_addr, "local") ? "" : "\trip=",
                     streq(req->client_addr, "local") ? "" : req->client_addr,
                     req->tls ? "\tsecured" : "", resp);
        explicit_bzero(resp, sizeof(resp));
        if (n < 0 || (size_t) n >= sizeof(cmd)) {
                explicit_bzero(cmd, sizeof(cmd));
                return -ENOBUFS;
        }
        r = dovecot_write(d, cmd, (size_t) n);
        explicit_bzero(cmd, sizeof(cmd));
        if (r < 0)
                return r;

        for (;;) {
                size_t il = strlen(id);
                char *rest, *save = NULL;

                r = dovecot_read_line(d, line, sizeof(line));
                if (r < 0)
                        return r;
                if (strncmp(line, "OK\t", 3) == 0 && strncmp(line + 3, id, il) == 0 &&
                    (line[3 + il] == 0 || line[3 + il] == '\t')) {
                        rest = line + 3 + il;
                        (void) snprintf(ret_user, AUTH_USER_MAX, "%s", req->user);
                        /* The canonical name Dovecot reports, if any. */
                        for (char *f = strtok_r(rest, "\t", &save); f; f = strtok_r(NULL, "\t", &save))
                                if (strncmp(f, "user=", 5) == 0 &&
                                    dovecot_unescape(f + 5, ret_user, AUTH_USER_MAX) < 0)
                                        return -EBADMSG;
                        return 1;
                }
                if (strncmp(line, "FAIL\t", 5) == 0 && strncmp(line + 5, id, il) == 0 &&
                    (line[5 + il] == 0 || line[5 + il] == '\t'))
                        return 0;
                if (strncmp(line, "CONT\t", 5) == 0 && strncmp(line + 5, id, il) == 0)
                        /* PLAIN needs no second round: Dovecot disagrees with us. */
                        return -EPROTO;
                /* Anything else (a reply to another id, a notice): skip. */
        }
}

static void auth_dovecot_free(AuthBackend *b) {
        AuthDovecot *d = (AuthDovecot *) b;

        closep(&d->fd);
        free(d);
}

int auth_dovecot_open(const char *path, uint64_t timeout_usec, AuthBackend **ret,
                      char *ret_error, size_t error_size) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct timeval tv = {
                .tv_sec = (time_t) (timeout_usec / 1000000u),
                .tv_usec = (suseconds_t) (timeout_usec % 1000000u),
        };
        _cleanup_close_ int fd = -EBADF;
        char hello[64];
        AuthDovecot *d;
        int n, r;

        if (strlen(path) >= sizeof(sa.sun_path)) {
                (void) snprintf(ret_error, error_size, "DovecotSocket \"%s\" is too long", path);
                return -ENAMETOOLONG;
        }
        memcpy(sa.sun_path, path, strlen(path));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                r = negative_errno();
                (void) snprintf(ret_error, error_size, "cannot connect to Dovecot's auth socket \"%s\": %s",
                                path, strerror(-r));
                return r;
        }
        /* Every later read and write is bounded; the sandbox allows no
         * setsockopt, so it is set now. */
        if (timeout_usec > 0 &&
            (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
             setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0))
                return negative_errno();
        n = snprintf(hello, sizeof(hello), "VERSION\t1\t2\nCPID\t%d\n", (int) getpid());
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->fd = TAKE_FD(fd);
        d->backend = (AuthBackend) { .name = "dovecot", .check = auth_dovecot_check, .free = auth_dovecot_free };
        r = dovecot_write(d, hello, (size_t) n);
        if (r < 0) {
                (void) snprintf(ret_error, error_size, "cannot talk to Dovecot's auth socket \"%s\": %s",
                                path, strerror(-r));
                auth_dovecot_free(&d->backend);
                return r;
        }
        *ret = &d->backend;
        return 0;
}
