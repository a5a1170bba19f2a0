/* Retry timing: exponential backoff between MinBackoff and MaxBackoff, and one
 * CLOCK_REALTIME timer per deferred message (next attempt times are stored as
 * wall-clock times in the state file, so they survive a restart). */
#include "log.h"
#include "queue.h"
#include "schedule.h"

uint64_t schedule_backoff_usec(const Config *c, unsigned attempts) {
        uint64_t min = c->min_backoff_usec ?: 1000000u;
        uint64_t max = c->max_backoff_usec > min ? c->max_backoff_usec : min;
        uint64_t t = min;

        /* Attempt 1 waits MinBackoff, each further attempt twice as long. */
        for (unsigned i = 1; i < attempts && t < max; i++)
                t = t > max / 2 ? max : t * 2;
        return t < max ? t : max;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        QueueMsg *m = userdata;

        m->timer = sd_event_source_disable_unref(m->timer);
        queue_msg_due(m);
        return 0;
}

int schedule_at(QueueMsg *m, uint64_t when_usec) {
        int r;

        schedule_cancel(m);
        /* Accuracy of a second: retries need no precision, and coalesced
         * wake-ups are cheaper with a big queue. */
        r = sd_event_add_time(m->queue->event, &m->timer, CLOCK_REALTIME, when_usec ?: 1,
                              1000000u, on_timer, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(m->timer, "retry");
        return 0;
}

void schedule_cancel(QueueMsg *m) {
        m->timer = sd_event_source_disable_unref(m->timer);
}
