/* DATA and BDAT: stream the message through the line machine (data.c) to
 * queued in IPC_MSG_DATA frames, behind smtpd's Received: header, and answer
 * 250 only once queued reports the message durable (DESIGN promise 1). A
 * message with a bare CR or LF (unless BareLineEnding=normalize), an
 * over-long line or too many octets is read to its real end and refused; it
 * never reaches the spool.
 *
 * BDAT (RFC 3030) chunks go through the same machine without dot-stuffing;
 * the stream lives in s->bdat from the first chunk to the LAST one. A refused
 * chunk is still read to its announced end, since the client sends it without
 * waiting for our answer. */
#include <inttypes.h>
#include <stddef.h>
#include <time.h>

#include "data.h"
#include "ipc.h"
#include "log.h"
#include "received.h"
#include "session.h"

typedef struct BdatStream {
        Session *s;
        DataParser p;
        size_t chunk_len;
        uint64_t size;            /* octets of the message incl. Received: */
        bool forward;             /* still sending to queued */
        bool too_big;
        int queue_error;          /* first failure talking to queued */
        char chunk[IPC_DATA_CHUNK_MAX]; /* last: stream_new() zeroes what precedes it */
} DataStream;

static void stream_stop(DataStream *d) {
        if (!d->forward)
                return;
        d->forward = false;
        d->chunk_len = 0;
}

static void stream_flush(DataStream *d) {
        int r;

        if (d->forward && d->chunk_len > 0) {
                r = queue_client_data(d->s->queue, d->chunk, d->chunk_len);
                if (r < 0) {
                        d->queue_error = r;
                        stream_stop(d);
                }
        }
        d->chunk_len = 0;
}

/* Accounts for out new body octets at the end of d->chunk. */
static void stream_add(DataStream *d, size_t out) {
        const Config *c = d->s->config;
        const DataParser *p = &d->p;

        d->size += out;
        if (c->message_size_limit > 0 && d->size > c->message_size_limit) {
                d->too_big = true;
                stream_stop(d);
        }
        /* Stop forwarding at the first bare CR/LF that is refused: that
         * message is refused whatever follows. */
        if (((p->bare_lf || p->bare_cr) && p->bare_mode == DATA_BARE_REJECT) || p->line_too_long)
                stream_stop(d);
        if (d->forward)
                d->chunk_len += out;
}

/* Parses n input octets at in, or fewer; returns how many were used. */
static size_t stream_feed(DataStream *d, const char *in, size_t n) {
        size_t used, out = 0;

        if (sizeof(d->chunk) - d->chunk_len < DATA_OUT_PER_IN)
                stream_flush(d);
        used = data_parse(&d->p, in, n, d->chunk + d->chunk_len, sizeof(d->chunk) - d->chunk_len, &out);
        stream_add(d, out);
        return used;
}

/* Reads the message up to the end of data. Returns 0, or the io error that
 * ended the session. */
static int stream_read(DataStream *d) {
        while (!data_parser_done(&d->p)) {
                const char *in;
                size_t n;
                int r;

                r = io_peek(&d->s->io, &in, &n);
                if (r < 0)
                        return r;
                io_consume(&d->s->io, stream_feed(d, in, n));
        }
        return 0;
}

/* Reads exactly size octets of a BDAT chunk, through d's parser, or only
 * drops them when d is NULL. Returns 0 or the io error. */
static int chunk_read(Session *s, DataStream *d, uint64_t size) {
        while (size > 0) {
                const char *in;
                size_t n;
                int r;

                r = io_peek(&s->io, &in, &n);
                if (r < 0)
                        return r;
                if (n > size)
                        n = (size_t) size;
                if (d)
                        n = stream_feed(d, in, n);
                io_consume(&s->io, n);
                size -= n;
        }
        return 0;
}

static int add_received(DataStream *d) {
        Session *s = d->s;
        int n;

        n = received_format(&(ReceivedInfo) {
                                    .helo = s->helo,
                                    .client_name = s->client_name,
                                    .client_addr = s->client_addr,
                                    .hostname = s->config->hostname,
                                    .proto = session_proto(s),
                                    .auth_user = s->auth_user[0] ? s->auth_user : NULL,
                                    .smtputf8 = s->smtputf8,
                                    .queue_id = s->queue_id,
                                    .rcpt = s->n_rcpt == 1 ? s->first_rcpt : NULL,
                            },
                            time(NULL), d->chunk, sizeof(d->chunk));
        if (n < 0)
                return n;
        d->chunk_len = (size_t) n;
        d->size = (uint64_t) n;
        return 0;
}

static DataStream *stream_new(Session *s, bool bdat) {
        DataStream *d;
        int r;

        d = malloc(sizeof(*d));
        if (!d) {
                (void) log_error_errno(-ENOMEM, "%s: cannot buffer the message: %m", s->queue_id);
                return NULL;
        }
        /* Not chunk[]: zeroing it would fault in 64 KiB of fresh pages for
         * every message. */
        memset(d, 0, offsetof(DataStream, chunk));
        d->s = s;
        d->forward = true;
        data_parser_init_mode(&d->p,
                              streq_ptr(s->config->bare_line_ending, "normalize") ? DATA_BARE_NORMALIZE
                                                                                 : DATA_BARE_REJECT,
                              bdat);
        r = add_received(d);
        if (r < 0) {
                (void) log_error_errno(r, "%s: cannot format the Received: header: %m", s->queue_id);
                free(d);
                return NULL;
        }
        return d;
}

/* The refusal of a message that was read to its end, or 0 if it may go to
 * queued. Checked in this order: smuggling first, since that message must be
 * refused with a reason that names it. */
static int stream_refuse(Session *s, DataStream *d) {
        const DataParser *p = &d->p;

        if (p->bare_mode == DATA_BARE_REJECT) {
                if (p->bare_lf)
                        return session_reject(s, "END-OF-MESSAGE", NULL, 550, "5.5.2 Error: bare <LF> received"), 1;
                if (p->bare_cr)
                        return session_reject(s, "END-OF-MESSAGE", NULL, 550, "5.5.2 Error: bare <CR> received"), 1;
        }
        if (d->too_big)
                return session_reject(s, "END-OF-MESSAGE", NULL, 552, "5.3.4 Error: message file too big"), 1;
        /* RFC 5321 4.5.3.1.6 limits text lines to 1000 octets and 4.5.3.1.10
         * names "500 Line too long" as the reply. Postfix would accept and
         * re-wrap such lines; we refuse the message instead, so that no
         * later hop has to cut it. */
        if (p->line_too_long)
                return session_reject(s, "END-OF-MESSAGE", NULL, 500, "5.5.0 Error: line too long"), 1;
        if (d->queue_error < 0) {
                session_queue_failed(s, d->queue_error, "DATA");
                return session_reply(s, 451, "4.3.0 Error: queue file write error"), 1;
        }
        return 0;
}

/* Tells queued to drop a message that is refused (unless queued failed). */
static void stream_abort(Session *s, DataStream *d) {
        int r;

        if (d->queue_error < 0 || s->queue_broken)
                return;
        r = queue_client_abort(s->queue);
        if (r < 0)
                session_queue_failed(s, r, "abort");
}

static int data_finish(Session *s, DataStream *d) {
        char id[QUEUE_ID_MAX];
        QueueReply refusal;
        int r;

        if (stream_refuse(s, d) != 0) {
                stream_abort(s, d);
                return 0;
        }
        stream_flush(d);
        if (d->queue_error < 0) {
                session_queue_failed(s, d->queue_error, "DATA");
                return session_reply(s, 451, "4.3.0 Error: queue file write error");
        }
        r = queue_client_end(s->queue, id, &refusal);
        if (r < 0) {
                session_queue_failed(s, r, "END");
                return session_reply(s, 451, "4.3.0 Error: queue file write error");
        }
        if (r > 0)
                return session_reject(s, "END-OF-MESSAGE", NULL, refusal.code, "%s %s", refusal.dsn,
                                      refusal.text);
        if (!streq(id, s->queue_id))
                log_warning("%s: queued answered with queue id %s, reporting that one", s->queue_id, id);
        return session_reply(s, 250, "2.0.0 Ok: queued as %s", id);
}

/* An I/O error while reading a message ends the session. */
static void read_failed(Session *s, int r) {
        s->quit = true;
        if (r == -ETIMEDOUT) {
                s->why = "timeout";
                (void) io_reply(&s->io, "421 4.4.2 %s Error: timeout exceeded", s->config->hostname);
        } else
                s->why = "lost connection";
}

int session_data(Session *s, const Command *c) {
        _cleanup_free_ DataStream *d = NULL;
        int r;

        if (s->queue_broken)
                return session_reply(s, 451, "4.3.0 Error: queue file write error");
        d = stream_new(s, false);
        if (!d)
                return session_reply(s, 451, "4.3.0 Error: insufficient system resources");

        r = session_reply(s, 354, "End data with <CR><LF>.<CR><LF>");
        if (r < 0)
                return r;
        r = stream_read(d);
        if (r < 0)
                read_failed(s, r);
        else {
                (void) data_finish(s, d);
                /* RFC 5321 4.1.1.4: the transaction ends with the end of data,
                 * whatever the reply; queued closed it on END or ABORT. */
                s->in_transaction = false;
        }
        session_transaction_reset(s);
        return 0;
}

void session_bdat_reset(Session *s) {
        free(s->bdat);
        s->bdat = NULL;
}

void session_bdat_skip(Session *s, uint64_t n) {
        int r = chunk_read(s, NULL, n);

        if (r < 0)
                read_failed(s, r);
}

/* Reads and drops a chunk that is refused, then replies. */
static int bdat_refuse(Session *s, const Command *c, unsigned code, const char *text) {
        int r;

        r = chunk_read(s, NULL, c->bdat_size);
        if (r < 0) {
                read_failed(s, r);
                return 0;
        }
        return session_reply(s, code, "%s", text);
}

int session_bdat(Session *s, const Command *c) {
        DataStream *d;
        uint64_t limit = s->config->message_size_limit;
        int r;

        if (!s->have_helo)
                return bdat_refuse(s, c, 503, "5.5.1 Error: send HELO/EHLO first");
        if (!s->in_transaction)
                return bdat_refuse(s, c, 503, "5.5.1 Error: need MAIL command");
        if (s->n_rcpt == 0)
                return bdat_refuse(s, c, 503, "5.5.1 Error: need RCPT command");
        if (s->queue_broken)
                return bdat_refuse(s, c, 451, "4.3.0 Error: queue file write error");
        if (!s->bdat) {
                s->bdat = stream_new(s, true);
                if (!s->bdat)
                        return bdat_refuse(s, c, 451, "4.3.0 Error: insufficient system resources");
        }
        d = s->bdat;
        /* A chunk announced beyond the limit is refused before it is read;
         * the rest of the message is then refused too (RFC 3030 2). */
        if (limit > 0 && (c->bdat_size > limit || d->size + c->bdat_size > limit)) {
                d->too_big = true;
                stream_stop(d);
                r = chunk_read(s, NULL, c->bdat_size);
        } else
                r = chunk_read(s, d, c->bdat_size);
        if (r < 0) {
                read_failed(s, r);
                session_transaction_reset(s);
                return 0;
        }
        if (c->bdat_last) {
                size_t out;

                if (sizeof(d->chunk) - d->chunk_len < 2)
                        stream_flush(d);
                out = data_parser_finish(&d->p, d->chunk + d->chunk_len, sizeof(d->chunk) - d->chunk_len);
                stream_add(d, out);
                (void) data_finish(s, d);
                s->in_transaction = false;
                session_transaction_reset(s);
                return 0;
        }
        /* A chunk that already dooms the message: say so now and end the
         * transaction; later chunks get 503 (no MAIL). */
        if (stream_refuse(s, d) != 0) {
                stream_abort(s, d);
                s->in_transaction = false;
                session_transaction_reset(s);
                return 0;
        }
        stream_flush(d);
        return session_reply(s, 250, "2.0.0 Ok: %" PRIu64 " octets", c->bdat_size);
}
