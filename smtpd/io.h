/* smtpd's connection I/O: a bounded line reader with deadlines and a reply
 * buffer that is flushed only before blocking on input (RFC 2920 pipelining),
 * over the client connection on fd 0 (read) and fd 1 (write), in plain text
 * or, after io_start_tls(), through TLS (tls.c). */
#pragma once

#include <openssl/types.h>
#include "util.h"

#define IO_IN_MAX (16u * 1024u)  /* must exceed COMMAND_LINE_MAX */
#define IO_OUT_MAX (4u * 1024u)
#define IO_REPLY_MAX 512u        /* RFC 5321 4.5.3.1.5: reply line incl. CRLF */

typedef struct Io {
        int in_fd, out_fd;
        char in[IO_IN_MAX];
        size_t in_start, in_end;
        char out[IO_OUT_MAX];
        size_t out_len;
        bool discarding;               /* inside an over-long line, skipping to LF */
        uint64_t timeout_usec;         /* idle limit for each read and write */
        uint64_t session_deadline_usec;/* CLOCK_MONOTONIC; 0 = none */
        bool write_failed;
        SSL *ssl;                      /* set once TLS is up; owned */
} Io;

/* CLOCK_MONOTONIC in microseconds. */
uint64_t io_now_usec(void);

/* in_fd and out_fd should be non-blocking; both stay owned by the caller. */
void io_init(Io *io, int in_fd, int out_fd, uint64_t timeout_usec, uint64_t session_timeout_usec);

/* Returns the next command line without its line end (pointer into io->in,
 * valid until the next io call). Flushes buffered replies before it waits.
 * Returns 0, -E2BIG (line over limit octets incl. CRLF; it was discarded up to
 * its LF), -ETIMEDOUT (idle timeout or session deadline), -ECONNRESET (the
 * client closed) or another -errno. */
int io_read_line(Io *io, size_t limit, const char **ret, size_t *ret_len);

/* Raw access for DATA: at least one buffered byte, reading (after a flush) if
 * none is buffered. Same errors as io_read_line. io_consume drops n of them. */
int io_peek(Io *io, const char **ret, size_t *ret_len);
void io_consume(Io *io, size_t n);

/* Appends one reply line (CRLF added; cut at IO_REPLY_MAX). Flushes first
 * when the buffer is full. Returns 0 or -errno of a failed flush. */
int io_reply(Io *io, const char *fmt, ...) _printf_(2, 3);

/* Writes every buffered reply. Returns 0, -ETIMEDOUT or -errno. */
int io_flush(Io *io);

/* Starts TLS as the server: flushes the replies, then DISCARDS every byte the
 * client sent before the handshake (a command pipelined after STARTTLS must
 * not be executed as if it had come over TLS: CVE-2011-0411), and runs the
 * handshake within the idle timeout. *ret_discarded says how many bytes were
 * dropped. Returns 0, -ETIMEDOUT, -ECONNRESET, -EPROTO (handshake failed) or
 * -errno. After a failure the connection is unusable. */
int io_start_tls(Io *io, SSL_CTX *ctx, size_t *ret_discarded);

/* Closes TLS (close_notify) and frees it, if it is up. */
void io_done(Io *io);
