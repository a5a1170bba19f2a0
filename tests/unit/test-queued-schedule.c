/* queued's retry backoff: MinBackoff for the first retry, doubling, capped at
 * MaxBackoff, without overflow for any attempt count. */
#include <stdint.h>

#include "config.h"
#include "schedule.h"
#include "tap.h"

#define SEC 1000000ull

int main(void) {
        Config c = {
                .min_backoff_usec = 300 * SEC,
                .max_backoff_usec = 4000 * SEC,
        };

        CHECK_INT(schedule_backoff_usec(&c, 0), 300 * SEC);
        CHECK_INT(schedule_backoff_usec(&c, 1), 300 * SEC);
        CHECK_INT(schedule_backoff_usec(&c, 2), 600 * SEC);
        CHECK_INT(schedule_backoff_usec(&c, 3), 1200 * SEC);
        CHECK_INT(schedule_backoff_usec(&c, 4), 2400 * SEC);
        CHECK_INT(schedule_backoff_usec(&c, 5), 4000 * SEC);
        CHECK_INT(schedule_backoff_usec(&c, 1000000), 4000 * SEC);
        CHECK_INT(schedule_backoff_usec(&c, UINT32_MAX), 4000 * SEC);

        /* Max below Min: Min wins (config.c rejects it, this must not misbehave). */
        c.max_backoff_usec = 10 * SEC;
        CHECK_INT(schedule_backoff_usec(&c, 3), 300 * SEC);

        /* Huge values do not wrap. */
        c.min_backoff_usec = UINT64_MAX / 3;
        c.max_backoff_usec = UINT64_MAX;
        CHECK_INT(schedule_backoff_usec(&c, 1), UINT64_MAX / 3);
        CHECK(schedule_backoff_usec(&c, 5) >= UINT64_MAX / 3);

        /* Zero MinBackoff would retry in a loop: a second at least. */
        c.min_backoff_usec = 0;
        c.max_backoff_usec = 0;
        CHECK_INT(schedule_backoff_usec(&c, 7), 1 * SEC);

        return tap_finish("test-queued-schedule");
}
