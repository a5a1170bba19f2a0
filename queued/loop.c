/* Counting Received: fields as a message arrives, and bouncing a message that
 * went round too often (RFC 5321 6.3: a hop count is the simple loop test). */
#include <inttypes.h>
#include <time.h>

#include "log.h"
#include "loop.h"

#define LOOP_FIELD "received:"
#define LOOP_FIELD_LEN (sizeof(LOOP_FIELD) - 1)

void loop_scan_feed(LoopScan *s, const void *p, size_t n) {
        const uint8_t *b = p;

        for (size_t i = 0; i < n && !s->in_body; i++) {
                uint8_t c = b[i];

                if (c == '\n') {
                        if (s->line_len == 0)
                                s->in_body = true;
                        s->line_len = 0;
                        continue;
                }
                if (c == '\r')
                        continue;
                if (s->line_len == 0)
                        s->line_match = true;
                if (s->line_len < LOOP_FIELD_LEN) {
                        uint8_t l = c >= 'A' && c <= 'Z' ? (uint8_t) (c - 'A' + 'a') : c;

                        if (l != (uint8_t) LOOP_FIELD[s->line_len])
                                s->line_match = false;
                        else if (s->line_match && s->line_len + 1 == LOOP_FIELD_LEN)
                                s->received++;
                }
                s->line_len++;
        }
}

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

void loop_check_queued(Queue *q, const SpoolEnvelope *env, const LoopScan *s) {
        uint64_t limit = q->config->hop_count_limit, now = now_usec();
        QueueMsg *m;
        char text[128];

        if (limit == 0 || s->received <= limit)
                return;
        (void) snprintf(text, sizeof(text), "mail forwarding loop: %" PRIu64 " Received: header fields, "
                        "more than HopCountLimit %" PRIu64, s->received, limit);
        m = queue_find(q, env->id);
        for (size_t i = 0; i < env->n_rcpts; i++) {
                LogField f[] = {
                        { "MESSAGE_ID", LOG_MID_BOUNCED },
                        { "TERN_QUEUE_ID", env->id },
                        { "TERN_RCPT", env->rcpts[i].addr },
                        { "TERN_RELAY", "none" },
                        { "TERN_DSN", "5.4.6" },
                        { "TERN_STATUS", "bounced" },
                };
                int r;

                /* Durable first, like a result from deliverd. */
                r = spool_state_append_result(q->spool_fd, env->id, i, DELIVERY_BOUNCED, now, "5.4.6",
                                              "none", text);
                if (r < 0) {
                        log_fields_errno(LOG_ERR, r, f, "%s: cannot record the loop bounce of <%s>, "
                                         "it will be delivered: %m", env->id, env->rcpts[i].addr);
                        continue;
                }
                if (m && i < m->n_rcpts) {
                        m->status[i] = DELIVERY_BOUNCED;
                        q->n_bounced++;
                }
                log_fields(LOG_INFO, f, "%s: to=<%s>, relay=none, delay=0, dsn=5.4.6, status=bounced (%s)",
                           env->id, env->rcpts[i].addr, text);
        }
}
