/* When a deferred message is tried again: exponential backoff and the
 * per-message timers on CLOCK_REALTIME (next attempt times are wall-clock
 * times, as they are stored in the state file). */
#pragma once

#include "queue.h"

/* MinBackoff doubled for each attempt after the first, capped at MaxBackoff. */
uint64_t schedule_backoff_usec(const Config *c, unsigned attempts);

/* Arms m's timer for when_usec (CLOCK_REALTIME); when it fires the message
 * becomes due. A time in the past fires at once. Returns 0 or -errno. */
int schedule_at(QueueMsg *m, uint64_t when_usec);

/* Disarms m's timer, if any. */
void schedule_cancel(QueueMsg *m);
