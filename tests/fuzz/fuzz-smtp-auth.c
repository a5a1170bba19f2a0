/* Fuzzes smtpd's AUTH decoder (smtpd/auth.c) as a client drives it: the
 * argument of "AUTH mech [initial-response]", then response lines. Checks that
 * strict base64 round-trips exactly (one encoding per octet string), that
 * pointers stay inside the input, and that PLAIN parts fit their limits. */
#include "auth.h"
#include "fuzz.h"

static void check_response(const char *p, size_t n) {
        char out[AUTH_LINE_MAX], again[AUTH_LINE_MAX + 4], user[AUTH_USER_MAX], pass[AUTH_PASSWORD_MAX];
        int r, e;

        r = auth_base64_decode(p, n, out, sizeof(out));
        if (r < 0)
                return;
        if ((size_t) r >= sizeof(out) || out[r] != 0)
                abort();
        /* Canonical: encoding the result gives back exactly the input. */
        e = auth_base64_encode(out, (size_t) r, again, sizeof(again));
        if (e < 0 || (size_t) e != n || memcmp(again, p, n) != 0)
                abort();
        if (auth_plain_parse(out, (size_t) r, user, pass) == 0) {
                size_t ul = strlen(user), pl = strlen(pass);

                if (ul == 0 || pl == 0 || ul >= AUTH_USER_MAX || pl >= AUTH_PASSWORD_MAX)
                        abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *buf = (const char *) data;
        size_t pos = 0;
        bool first = true;

        while (pos < size) {
                const char *lf = memchr(buf + pos, '\n', size - pos);
                size_t len = lf ? (size_t) (lf - (buf + pos)) : size - pos, n = len;

                if (n > 0 && buf[pos + n - 1] == '\r')
                        n--;
                if (n <= AUTH_LINE_MAX) {
                        if (first) {
                                AuthMechanism m;
                                const char *ir;
                                size_t ir_len;

                                if (auth_parse_command(buf + pos, n, &m, &ir, &ir_len) == 0) {
                                        if (m < 0 || m >= _AUTH_MECH_MAX || !auth_mechanism_to_string(m))
                                                abort();
                                        if (ir && (ir < buf + pos || ir + ir_len > buf + pos + n || ir_len == 0))
                                                abort();
                                        if (ir)
                                                check_response(ir, ir_len);
                                }
                        } else
                                check_response(buf + pos, n);
                }
                first = false;
                pos += lf ? len + 1 : len;
        }
        /* The whole input as a decoded PLAIN message, too. */
        if (size < AUTH_LINE_MAX) {
                char user[AUTH_USER_MAX], pass[AUTH_PASSWORD_MAX];

                (void) auth_plain_parse(buf, size, user, pass);
        }
        return 0;
}
