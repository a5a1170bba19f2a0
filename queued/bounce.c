/* Non-delivery notifications (RFC 3464): when a message leaves the queue with
 * recipients that failed for good, its sender gets one multipart/report from
 * MAILER-DAEMON with the null sender (so a bounce never causes another), the
 * reasons from the state file and the original headers (RFC 3462
 * text/rfc822-headers). It is queued like any message, with spool_write. */
#include <inttypes.h>
#include <time.h>

#include "bounce.h"
#include "log.h"

/* Only the headers of the original go back: enough to identify it, bounded. */
#define BOUNCE_HEADERS_MAX (64u * 1024u)

static void bounce_date(uint64_t usec, char *buf, size_t size) {
        time_t t = (time_t) (usec / 1000000u);
        struct tm tm;

        if (!localtime_r(&t, &tm) || strftime(buf, size, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
                (void) snprintf(buf, size, "Thu, 01 Jan 1970 00:00:00 +0000");
}

/* The header section of body (up to and including the empty line), bounded. */
static size_t bounce_headers_len(const uint8_t *body, size_t len) {
        if (len > BOUNCE_HEADERS_MAX)
                len = BOUNCE_HEADERS_MAX;
        for (size_t i = 0; i + 3 < len; i++)
                if (memcmp(body + i, "\r\n\r\n", 4) == 0)
                        return i + 2;
        /* No empty line within the bound: cut at the last complete line. */
        while (len > 0 && body[len - 1] != '\n')
                len--;
        return len;
}

static int bounce_write(FILE *f, Queue *q, QueueMsg *m, const SpoolState *st,
                        const uint8_t *body, size_t body_len) {
        const char *host = q->config->hostname ?: "localhost";
        char date[64], arrival[64];
        uint64_t now;
        struct timespec ts;
        size_t hlen;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        now = (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
        bounce_date(now, date, sizeof(date));
        bounce_date(m->arrival_usec, arrival, sizeof(arrival));

        fprintf(f, "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n", host);
        fprintf(f, "To: <%s>\r\n", m->sender);
        fprintf(f, "Subject: Undelivered Mail Returned to Sender\r\n");
        fprintf(f, "Date: %s\r\n", date);
        fprintf(f, "Message-ID: <%s.bounce@%s>\r\n", m->id, host);
        fprintf(f, "Auto-Submitted: auto-replied\r\n");
        fprintf(f, "MIME-Version: 1.0\r\n");
        fprintf(f, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                   "\tboundary=\"%s/%s\"\r\n", m->id, host);
        fprintf(f, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

        fprintf(f, "--%s/%s\r\n", m->id, host);
        fprintf(f, "Content-Description: Notification\r\n"
                   "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
        fprintf(f, "This is the mail system at host %s.\r\n\r\n"
                   "I'm sorry to have to inform you that your message could not\r\n"
                   "be delivered to one or more recipients. The headers of your\r\n"
                   "message are attached below.\r\n\r\n", host);
        for (size_t i = 0; i < m->n_rcpts; i++)
                if (m->status[i] == DELIVERY_BOUNCED)
                        fprintf(f, "<%s>: %s\r\n\r\n", m->rcpts[i],
                                i < st->n_rcpts && st->rcpts[i].text[0] ? st->rcpts[i].text
                                                                        : "delivery failed");

        fprintf(f, "--%s/%s\r\n", m->id, host);
        fprintf(f, "Content-Description: Delivery report\r\n"
                   "Content-Type: message/delivery-status\r\n\r\n");
        fprintf(f, "Reporting-MTA: dns; %s\r\nX-Tern-Queue-ID: %s\r\nArrival-Date: %s\r\n",
                host, m->id, arrival);
        for (size_t i = 0; i < m->n_rcpts; i++) {
                const SpoolRcptState *r = i < st->n_rcpts ? &st->rcpts[i] : NULL;

                if (m->status[i] != DELIVERY_BOUNCED)
                        continue;
                fprintf(f, "\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: %s\r\n",
                        m->rcpts[i], r && r->dsn[0] ? r->dsn : "5.0.0");
                if (r && r->relay[0] && !streq(r->relay, "none") && !streq(r->relay, "-") &&
                    !streq(r->relay, "local"))
                        fprintf(f, "Remote-MTA: dns; %s\r\n", r->relay);
                if (r && r->text[0])
                        fprintf(f, "Diagnostic-Code: X-Tern; %s\r\n", r->text);
        }
        fprintf(f, "\r\n--%s/%s\r\n", m->id, host);
        fprintf(f, "Content-Description: Undelivered Message Headers\r\n"
                   "Content-Type: text/rfc822-headers\r\n\r\n");
        hlen = body ? bounce_headers_len(body, body_len) : 0;
        if (hlen > 0)
                (void) fwrite(body, 1, hlen, f);
        fprintf(f, "\r\n--%s/%s--\r\n", m->id, host);
        return fflush(f) == 0 && !ferror(f) ? 0 : -ENOMEM;
}

static int bounce_queue(Queue *q, QueueMsg *m, char ret_id[static SPOOL_ID_MAX]) {
        _cleanup_(spool_closep) SpoolFile *file = NULL;
        _cleanup_(spool_state_done) SpoolState st = {};
        _cleanup_free_ char *text = NULL;
        const uint8_t *body = NULL;
        size_t body_len = 0, text_len = 0;
        SpoolRcpt rcpt = { .addr = m->sender };
        SpoolEnvelope env = {
                .sender = (char *) "",
                .rcpts = &rcpt,
                .n_rcpts = 1,
                .proto = (char *) "local",
        };
        FILE *f;
        int r;

        r = spool_state_load(q->spool_fd, m->id, m->n_rcpts, &st);
        if (r < 0)
                return r;
        /* Without the original the report still says who failed and why. */
        if (spool_open(q->spool_fd, m->id, &file) >= 0)
                (void) spool_get_body(file, &body, &body_len);

        f = open_memstream(&text, &text_len);
        if (!f)
                return -ENOMEM;
        r = bounce_write(f, q, m, &st, body, body_len);
        if (fclose(f) != 0 && r == 0)
                r = -ENOMEM;
        if (r < 0)
                return r;

        spool_new_id(ret_id);
        env.id = ret_id;
        {
                struct timespec ts;
                (void) clock_gettime(CLOCK_REALTIME, &ts);
                env.arrival_usec = (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
        }
        r = spool_write(q->spool_fd, &env, text, text_len);
        if (r < 0)
                return r;
        {
                LogField g[] = {
                        { "MESSAGE_ID", LOG_MID_QUEUED },
                        { "TERN_QUEUE_ID", ret_id },
                        { "TERN_FROM", "" },
                };
                log_fields(LOG_INFO, g, "%s: from=<>, size=%zu, nrcpt=1 (queue active)", ret_id, text_len);
        }
        return queue_add(q, &env, text_len);
}

void bounce_maybe_send(Queue *q, QueueMsg *m) {
        LogField f[] = { { "TERN_QUEUE_ID", m->id } };
        char id[SPOOL_ID_MAX];
        bool bounced = false;
        int r;

        for (size_t i = 0; i < m->n_rcpts && !bounced; i++)
                bounced = m->status[i] == DELIVERY_BOUNCED;
        if (!bounced)
                return;
        if (isempty(m->sender)) {
                /* RFC 5321 4.5.5: never answer the null sender. */
                log_fields(LOG_INFO, f, "%s: no non-delivery notification to the null sender", m->id);
                return;
        }
        r = bounce_queue(q, m, id);
        if (r < 0) {
                log_fields_errno(LOG_ERR, r, f, "%s: cannot queue the sender non-delivery "
                                 "notification, it is lost: %m", m->id);
                return;
        }
        log_fields(LOG_INFO, f, "%s: sender non-delivery notification: %s", m->id, id);
}
