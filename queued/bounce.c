/* Non-delivery notifications. Not generated yet: the failure is logged so that
 * an administrator can tell the sender. */
#include "bounce.h"
#include "log.h"

void bounce_maybe_send(Queue *q, QueueMsg *m) {
        LogField f[] = { { "TERN_QUEUE_ID", m->id } };
        bool bounced = false;

        for (size_t i = 0; i < m->n_rcpts && !bounced; i++)
                bounced = m->status[i] == DELIVERY_BOUNCED;
        if (!bounced || isempty(m->sender))
                return;
        log_fields(LOG_WARNING, f, "%s: sender non-delivery notification not yet generated", m->id);
}
