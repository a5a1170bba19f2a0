/* Fuzzes address_parse_path: the first byte selects the AddressFlags, the rest
 * is the path. An accepted path must format, and its canonical form must parse
 * back to itself. */
#include <stdio.h>

#include "address.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char canon[512], again[512], wrapped[520];
        Address a, b;
        unsigned flags;
        int r, l;

        if (size < 1)
                return 0;
        flags = data[0] & 0x0f;
        r = address_parse_path((const char *) data + 1, size - 1, flags, &a);
        if (r < 0)
                return 0;
        if ((size_t) r > size - 1)
                abort();
        l = address_format(&a, canon, sizeof(canon));
        if (l < 0)
                abort();
        (void) address_has_routing_tricks(&a);
        if (a.null)
                return 0;

        /* Canonical form is a fixed point. A literal may grow when normalised
         * ("[IPv6:::ffff:c000:201]" -> "[IPv6:::ffff:192.0.2.1]") and then
         * exceed a limit: the only tolerated difference. */
        l = snprintf(wrapped, sizeof(wrapped), "<%s>", canon);
        if (l < 0 || (size_t) l >= sizeof(wrapped))
                abort();
        r = address_parse_path(wrapped, (size_t) l, flags & ~ADDRESS_NO_BRACKETS, &b);
        if (r == -ENAMETOOLONG && a.domain_literal)
                return 0;
        if (r != l)
                abort();
        if (address_format(&b, again, sizeof(again)) < 0 || !streq(canon, again))
                abort();
        return 0;
}
