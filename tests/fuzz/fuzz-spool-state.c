/* Fuzzes spool_state_parse: the first byte is the number of recipients, the
 * rest the state file. An accepted file must give sane statuses. */
#include "fuzz.h"
#include "spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        SpoolState s = {};

        if (size < 1)
                return 0;
        if (spool_state_parse(data + 1, size - 1, data[0], &s) < 0)
                return 0;
        if (s.n_rcpts != data[0])
                abort();
        for (size_t i = 0; i < s.n_rcpts; i++) {
                const SpoolRcptState *r = &s.rcpts[i];

                if (r->status < DELIVERY_NONE || r->status >= _DELIVERY_STATUS_MAX ||
                    !delivery_status_to_string(r->status))
                        abort();
                if (strnlen(r->dsn, sizeof(r->dsn)) == sizeof(r->dsn) ||
                    strnlen(r->relay, sizeof(r->relay)) == sizeof(r->relay) ||
                    strnlen(r->text, sizeof(r->text)) == sizeof(r->text))
                        abort();
        }
        spool_state_done(&s);
        return 0;
}
