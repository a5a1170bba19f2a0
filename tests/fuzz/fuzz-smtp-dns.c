/* Fuzzes smtpd's DNS blocklist codec (smtpd/rbl.c): answers from the
 * resolver are outside input. The first byte picks the check: a DNS answer
 * (every offset bounded, TXT kept printable), or a string given to the
 * resolver-address, reverse-name and query builders (a built query parses
 * back as a question with the same id once marked as a response). */
#include "fuzz.h"
#include "rbl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        RblAnswer a;

        if (size < 1 || size > 4096)
                return 0;
        if (data[0] & 1) {
                if (rbl_parse_answer(data + 1, size - 1, &a) == 0) {
                        for (const char *p = a.txt; *p; p++)
                                if (*p < 32 || *p > 126)
                                        abort();
                        if (a.rcode > 15 || strlen(a.txt) >= sizeof(a.txt))
                                abort();
                }
        } else {
                char s[300], rev[80];
                struct sockaddr_storage ss;
                socklen_t l;
                uint8_t q[600];
                size_t n = size - 1 < sizeof(s) - 1 ? size - 1 : sizeof(s) - 1;
                int k;

                memcpy(s, data + 1, n);
                s[n] = 0;
                if (rbl_parse_resolver(s, &ss, &l) == 0 && l > sizeof(ss))
                        abort();
                k = rbl_reverse(s, rev, sizeof(rev));
                if (k >= 0 && (size_t) k != strlen(rev))
                        abort();
                k = rbl_build_query(0x4242, s, 16, q, sizeof(q));
                if (k >= 0) {
                        q[2] |= 0x80;
                        if (rbl_parse_answer(q, (size_t) k, &a) != 0 || a.id != 0x4242 || a.have_a)
                                abort();
                }
        }
        return 0;
}
