/* Fuzzes the pure parts of common/route.c: transport table values (the
 * administrator's text, but a bad one must never overflow) and the split of a
 * local part at the recipient delimiter. */
#include "fuzz.h"
#include "route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char s[1024], user[256], ext[256], key[ROUTE_NEXTHOP_MAX + 64];
        Route r = { .domain = "example.org" };

        if (size >= sizeof(s))
                return 0;
        memcpy(s, data, size);
        s[size] = 0;
        if (strlen(s) != size)
                return 0;
        if (route_parse_transport(s, &r) == 0) {
                if (r.transport < 0 || r.transport >= _ROUTE_TRANSPORT_MAX ||
                    strnlen(r.nexthop, sizeof(r.nexthop)) >= sizeof(r.nexthop) ||
                    strnlen(r.dsn, sizeof(r.dsn)) >= sizeof(r.dsn))
                        abort();
                if (route_destination_key(&r, key, sizeof(key)) < 0)
                        abort();
        }
        if (route_split_local(s, "+-", user, sizeof(user), ext, sizeof(ext)) == 0 &&
            strlen(user) + strlen(ext) > size)
                abort();
        return 0;
}
