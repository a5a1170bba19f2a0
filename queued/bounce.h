/* Non-delivery notifications (RFC 3464) for recipients that failed for good. */
#pragma once

#include "queue.h"

/* When recipients of m bounced and its sender is not null, queues a
 * multipart/report to the sender (from MAILER-DAEMON, null sender). Logs what it
 * did; failures are logged, never returned (the original is removed anyway). */
void bounce_maybe_send(Queue *q, QueueMsg *m);
