/* DATA: streams the message through the line machine (data.c) to queued in
 * IPC_MSG_DATA frames, behind smtpd's Received: header, and answers 250 only
 * once queued reports the message durable (DESIGN promise 1). A message with a
 * bare CR or LF, an over-long line or too many octets is read to its real end
 * and refused; it never reaches the spool. */
#include <time.h>

#include "data.h"
#include "ipc.h"
#include "log.h"
#include "received.h"
#include "session.h"

typedef struct DataStream {
        Session *s;
        char chunk[IPC_DATA_CHUNK_MAX];
        size_t chunk_len;
        uint64_t size;            /* octets of the message incl. Received: */
        bool forward;             /* still sending to queued */
        bool too_big;
        int queue_error;          /* first failure talking to queued */
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

/* Reads the message up to the end of data. Returns 0, or the io error that
 * ended the session. */
static int stream_read(DataStream *d, DataParser *p) {
        const Config *c = d->s->config;

        while (!data_parser_done(p)) {
                const char *in;
                size_t n, used, out = 0;
                int r;

                r = io_peek(&d->s->io, &in, &n);
                if (r < 0)
                        return r;
                if (sizeof(d->chunk) - d->chunk_len < 2)
                        stream_flush(d);
                used = data_parse(p, in, n, d->chunk + d->chunk_len, sizeof(d->chunk) - d->chunk_len,
                                  &out);
                io_consume(&d->s->io, used);
                d->size += out;
                if (c->message_size_limit > 0 && d->size > c->message_size_limit) {
                        d->too_big = true;
                        stream_stop(d);
                }
                /* Stop forwarding at the first bare CR/LF: that message is
                 * refused whatever follows. */
                if (p->bare_lf || p->bare_cr || p->line_too_long)
                        stream_stop(d);
                if (d->forward)
                        d->chunk_len += out;
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
                                    .proto = s->esmtp ? "ESMTP" : "SMTP",
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

static int data_finish(Session *s, DataStream *d, const DataParser *p) {
        char id[QUEUE_ID_MAX];
        QueueReply refusal;
        int r;

        /* Checked in this order: smuggling first, since that message must be
         * refused with a reason that names it. */
        if (p->bare_lf)
                return session_reject(s, "END-OF-MESSAGE", NULL, 550, "5.5.2 Error: bare <LF> received");
        if (p->bare_cr)
                return session_reject(s, "END-OF-MESSAGE", NULL, 550, "5.5.2 Error: bare <CR> received");
        if (d->too_big)
                return session_reject(s, "END-OF-MESSAGE", NULL, 552, "5.3.4 Error: message file too big");
        /* RFC 5321 4.5.3.1.6 limits text lines to 1000 octets and 4.5.3.1.10
         * names "500 Line too long" as the reply. Postfix would accept and
         * re-wrap such lines; we refuse the message instead, so that no
         * later hop has to cut it. */
        if (p->line_too_long)
                return session_reject(s, "END-OF-MESSAGE", NULL, 500, "5.5.0 Error: line too long");

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

int session_data(Session *s, const Command *c) {
        _cleanup_free_ DataStream *d = NULL;
        DataParser p;
        int r;

        if (s->queue_broken)
                return session_reply(s, 451, "4.3.0 Error: queue file write error");
        d = malloc(sizeof(*d));
        if (!d) {
                (void) log_error_errno(-ENOMEM, "%s: cannot buffer the message: %m", s->queue_id);
                return session_reply(s, 451, "4.3.0 Error: insufficient system resources");
        }
        *d = (DataStream) { .s = s, .forward = true };
        r = add_received(d);
        if (r < 0) {
                (void) log_error_errno(r, "%s: cannot format the Received: header: %m", s->queue_id);
                return session_reply(s, 451, "4.3.0 Error: internal error");
        }

        r = session_reply(s, 354, "End data with <CR><LF>.<CR><LF>");
        if (r < 0)
                return r;
        data_parser_init(&p);
        r = stream_read(d, &p);
        if (r == -ETIMEDOUT) {
                s->why = "timeout";
                s->quit = true;
                (void) io_reply(&s->io, "421 4.4.2 %s Error: timeout exceeded", s->config->hostname);
        } else if (r < 0) {
                s->why = "lost connection";
                s->quit = true;
        } else {
                if (!d->forward && d->queue_error == 0) {
                        /* Refused below: tell queued now. */
                        r = queue_client_abort(s->queue);
                        if (r < 0)
                                session_queue_failed(s, r, "abort");
                        r = 0;
                }
                (void) data_finish(s, d, &p);
                /* RFC 5321 4.1.1.4: the transaction ends with the end of data,
                 * whatever the reply; queued closed it on END or ABORT. */
                s->in_transaction = false;
        }
        session_transaction_reset(s);
        return 0;
}
