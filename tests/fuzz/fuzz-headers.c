/* Fuzzes headers_scan (sendmail's header scanner): whatever a local program
 * writes, the ranges it returns stay inside the message and in order, and
 * every extracted address is a bounded, non-empty string. */
#include <stdlib.h>

#include "fuzz.h"
#include "headers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        HeaderScan s;
        size_t prev;

        if (headers_scan((const char *) data, size, &s) < 0)
                return 0;
        if (s.skip_prefix > size || s.header_end > size || s.skip_prefix > s.header_end)
                abort();
        prev = s.skip_prefix;
        for (size_t i = 0; i < s.n_bcc; i++) {
                if (s.bcc[i].start < prev || s.bcc[i].end <= s.bcc[i].start ||
                    s.bcc[i].end > s.header_end)
                        abort();
                prev = s.bcc[i].end;
        }
        if (s.n_recipients > HEADERS_RCPT_MAX || (s.recipients && s.recipients[s.n_recipients]))
                abort();
        for (size_t i = 0; i < s.n_recipients; i++) {
                size_t n = strlen(s.recipients[i]);
                if (n == 0 || n > HEADERS_ADDRESS_MAX)
                        abort();
        }
        headers_scan_done(&s);
        return 0;
}
