/* Bounded, deadline-limited reads and buffered replies for one SMTP client,
 * in the spirit of Postfix's smtp_stream.c. smtpd serves one connection per
 * process, so a plain poll() loop is all it needs: no event library to set up
 * per connection. */
#include <assert.h>
#include <poll.h>
#include <stdarg.h>
#include <time.h>

#include "io.h"
#include "tls.h"

uint64_t io_now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

void io_init(Io *io, int in_fd, int out_fd, uint64_t timeout_usec, uint64_t session_timeout_usec) {
        io->in_fd = in_fd;
        io->out_fd = out_fd;
        io->in_start = io->in_end = io->out_len = 0;
        io->discarding = false;
        io->write_failed = false;
        io->timeout_usec = timeout_usec;
        io->ssl = NULL;
        io->session_deadline_usec = session_timeout_usec > 0 ? io_now_usec() + session_timeout_usec : 0;
}

/* Waits for events on fd until the idle timeout or the session deadline. */
static int io_wait(Io *io, int fd, short events) {
        uint64_t now = io_now_usec(), wait = io->timeout_usec;
        struct pollfd p = { .fd = fd, .events = events };
        int r;

        if (io->session_deadline_usec > 0) {
                if (now >= io->session_deadline_usec)
                        return -ETIMEDOUT;
                if (wait == 0 || io->session_deadline_usec - now < wait)
                        wait = io->session_deadline_usec - now;
        }
        for (;;) {
                int ms = wait == 0 ? -1 : (int) ((wait + 999) / 1000 > INT32_MAX ? INT32_MAX : (wait + 999) / 1000);

                r = poll(&p, 1, ms);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return negative_errno();
                if (r == 0)
                        return -ETIMEDOUT;
                return 0;
        }
}

/* One read or write on the connection, plain or through TLS. Returns the
 * byte count, 0 at EOF (read), -EAGAIN with *events to wait for, or -errno. */
static ssize_t io_raw_read(Io *io, void *buf, size_t n, short *events) {
        ssize_t r;

        if (io->ssl)
                return tls_read(io->ssl, buf, n, events);
        r = read(io->in_fd, buf, n);
        if (r < 0) {
                *events = POLLIN;
                return negative_errno();
        }
        return r;
}

static ssize_t io_raw_write(Io *io, const void *buf, size_t n, short *events) {
        ssize_t r;

        if (io->ssl)
                return tls_write(io->ssl, buf, n, events);
        r = write(io->out_fd, buf, n);
        if (r < 0) {
                *events = POLLOUT;
                return negative_errno();
        }
        return r;
}

int io_flush(Io *io) {
        size_t done = 0;

        if (io->write_failed)
                return -EPIPE;
        while (done < io->out_len) {
                short events = POLLOUT;
                ssize_t n = io_raw_write(io, io->out + done, io->out_len - done, &events);

                if (n == -EINTR)
                        continue;
                if (n == -EAGAIN) {
                        int r = io_wait(io, events == POLLIN ? io->in_fd : io->out_fd, events);

                        if (r < 0) {
                                io->write_failed = true;
                                return r;
                        }
                        continue;
                }
                if (n <= 0) {
                        io->write_failed = true;
                        return n < 0 ? (int) n : -EPIPE;
                }
                done += (size_t) n;
        }
        io->out_len = 0;
        return 0;
}

int io_reply(Io *io, const char *fmt, ...) {
        char line[IO_REPLY_MAX];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        if ((size_t) n > sizeof(line) - 3)
                n = (int) (sizeof(line) - 3);
        line[n++] = '\r';
        line[n++] = '\n';
        if (io->out_len + (size_t) n > sizeof(io->out)) {
                int r = io_flush(io);

                if (r < 0)
                        return r;
        }
        memcpy(io->out + io->out_len, line, (size_t) n);
        io->out_len += (size_t) n;
        return 0;
}

/* Reads more input, after flushing the replies the client may be waiting for. */
static int io_fill(Io *io) {
        int r;

        r = io_flush(io);
        if (r < 0)
                return r;
        if (io->in_start > 0) {
                memmove(io->in, io->in + io->in_start, io->in_end - io->in_start);
                io->in_end -= io->in_start;
                io->in_start = 0;
        }
        if (io->in_end >= sizeof(io->in))
                return -ENOBUFS; /* callers never let this happen */
        for (;;) {
                short events = POLLIN;
                ssize_t n = io_raw_read(io, io->in + io->in_end, sizeof(io->in) - io->in_end, &events);

                if (n == -EINTR)
                        continue;
                if (n == -EAGAIN) {
                        r = io_wait(io, events == POLLOUT ? io->out_fd : io->in_fd, events);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        return -ECONNRESET;
                io->in_end += (size_t) n;
                return 0;
        }
}

int io_read_line(Io *io, size_t limit, const char **ret, size_t *ret_len) {
        for (;;) {
                char *start = io->in + io->in_start;
                size_t avail = io->in_end - io->in_start;
                char *lf = memchr(start, '\n', avail);
                int r;

                if (lf) {
                        size_t len = (size_t) (lf - start) + 1;

                        io->in_start += len;
                        if (io->discarding || len > limit) {
                                io->discarding = false;
                                return -E2BIG;
                        }
                        /* Commands end in CRLF (RFC 5321 2.3.8); a bare LF is
                         * tolerated here as Postfix does, since a command line
                         * cannot smuggle anything. DATA is strict (data.c). */
                        len--;
                        if (len > 0 && start[len - 1] == '\r')
                                len--;
                        *ret = start;
                        *ret_len = len;
                        return 0;
                }
                if (avail >= limit) {
                        /* Over the limit with no end in sight: forget it now,
                         * so no buffer grows with the client's line. */
                        io->discarding = true;
                        io->in_start = io->in_end = 0;
                }
                r = io_fill(io);
                if (r < 0)
                        return r;
        }
}

int io_peek(Io *io, const char **ret, size_t *ret_len) {
        if (io->in_start == io->in_end) {
                int r = io_fill(io);

                if (r < 0)
                        return r;
        }
        *ret = io->in + io->in_start;
        *ret_len = io->in_end - io->in_start;
        return 0;
}

void io_consume(Io *io, size_t n) {
        if (n > io->in_end - io->in_start)
                n = io->in_end - io->in_start;
        io->in_start += n;
}

int io_start_tls(Io *io, SSL_CTX *ctx, size_t *ret_discarded) {
        size_t discarded;
        int r;

        assert(!io->ssl);
        r = io_flush(io);
        if (r < 0)
                return r;
        /* CVE-2011-0411: what is buffered now came in plain text before the
         * handshake. The client may not pipeline after STARTTLS (RFC 3207 4.2),
         * so nothing legitimate is lost. Bytes still in the kernel's buffer are
         * not read as commands either: the handshake takes them as TLS records
         * and fails. */
        discarded = io->in_end - io->in_start;
        io->in_start = io->in_end = 0;
        io->discarding = false;
        if (ret_discarded)
                *ret_discarded = discarded;

        r = tls_connection_new(ctx, io->in_fd, io->out_fd, &io->ssl);
        if (r < 0)
                return r;
        for (;;) {
                short events = POLLIN;

                r = tls_accept(io->ssl, &events);
                if (r == 0)
                        return 0;
                if (r != -EAGAIN)
                        break;
                r = io_wait(io, events == POLLOUT ? io->out_fd : io->in_fd, events);
                if (r < 0)
                        break;
        }
        /* Nothing more may go over this connection, not even a 421 in clear. */
        io->write_failed = true;
        return r;
}

void io_done(Io *io) {
        if (!io->ssl)
                return;
        if (!io->write_failed)
                tls_shutdown(io->ssl);
        io->ssl = tls_connection_free(io->ssl);
}
