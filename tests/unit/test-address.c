/* Golden-file test of the RFC 5321 path parser, in the manner of Postfix's
 * smtpd_token.in/.ref: each line of address.in is "FLAGS INPUT", the result of
 * parsing INPUT is printed beside it, and the whole must equal address.ref.
 * FLAGS: any of N (ALLOW_NULL), U (ALLOW_UTF8), D (ALLOW_NO_DOMAIN),
 * B (NO_BRACKETS), X (INPUT uses \xHH escapes), or "-" for none.
 * `test-address --generate` prints the output, to review and commit as .ref. */
#include <errno.h>

#include "address.h"
#include "tap.h"

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static const char *errname(int r) {
        switch (r) {
        case -EINVAL:
                return "-EINVAL";
        case -ENAMETOOLONG:
                return "-ENAMETOOLONG";
        default:
                return "-E?";
        }
}

/* Appends the result line for one .in line to out (size bytes). */
static void run_line(const char *line, char *out, size_t size) {
        char input[2048], canon[512];
        const char *sp = strchr(line, ' ');
        const char *in = sp ? sp + 1 : "";
        size_t fl = sp ? (size_t) (sp - line) : strlen(line), n = 0;
        unsigned flags = 0;
        bool hex = false;
        Address a;
        int r;

        for (size_t i = 0; i < fl; i++)
                switch (line[i]) {
                case 'N': flags |= ADDRESS_ALLOW_NULL; break;
                case 'U': flags |= ADDRESS_ALLOW_UTF8; break;
                case 'D': flags |= ADDRESS_ALLOW_NO_DOMAIN; break;
                case 'B': flags |= ADDRESS_NO_BRACKETS; break;
                case 'X': hex = true; break;
                default: break;
                }
        for (size_t i = 0; in[i] && n < sizeof(input); i++) {
                if (hex && in[i] == '\\' && in[i + 1] == 'x' && unhex(in[i + 2]) >= 0 &&
                    unhex(in[i + 3]) >= 0) {
                        input[n++] = (char) (unhex(in[i + 2]) * 16 + unhex(in[i + 3]));
                        i += 3;
                } else
                        input[n++] = in[i];
        }

        memset(&a, 0x55, sizeof(a));
        r = address_parse_path(input, n, flags, &a);
        if (r < 0) {
                (void) snprintf(out, size, "%s => %s\n", line, errname(r));
                return;
        }
        if (address_format(&a, canon, sizeof(canon)) < 0) {
                (void) snprintf(out, size, "%s => format failed\n", line);
                return;
        }
        (void) snprintf(out, size, "%s => %s%s%s consumed=%d%s%s%s\n", line,
                        a.null ? "null" : "<", canon, a.null ? "" : ">", r,
                        a.quoted ? " quoted" : "", a.domain_literal ? " literal" : "",
                        address_has_routing_tricks(&a) ? " tricks" : "");
}

static void test_golden(bool generate) {
        _cleanup_fclose_ FILE *in = fopen("address.in", "re");
        _cleanup_fclose_ FILE *ref = generate ? NULL : fopen("address.ref", "re");
        char line[2048], out[4096], expect[4096];
        unsigned lineno = 0, cases = 0;

        if (!in || (!generate && !ref)) {
                fprintf(stderr, "address.in/.ref not found (run from tests/unit)\n");
                CHECK(false);
                return;
        }
        while (fgets(line, sizeof(line), in)) {
                size_t l = strlen(line);

                lineno++;
                if (l > 0 && line[l - 1] == '\n')
                        line[--l] = 0;
                if (l == 0 || line[0] == '#')
                        (void) snprintf(out, sizeof(out), "%s\n", line);
                else {
                        run_line(line, out, sizeof(out));
                        cases++;
                }
                if (generate) {
                        fputs(out, stdout);
                        continue;
                }
                if (!fgets(expect, sizeof(expect), ref) || !streq(expect, out)) {
                        fprintf(stderr, "address.in:%u: got      %s", lineno, out);
                        fprintf(stderr, "address.in:%u: expected %s", lineno,
                                feof(ref) ? "(end of address.ref)\n" : expect);
                        CHECK(false);
                }
        }
        if (!generate) {
                CHECK(!fgets(expect, sizeof(expect), ref)); /* nothing left in .ref */
                printf("address.in: %u cases\n", cases);
        }
}

static void test_api(void) {
        Address a;
        char buf[32];

        CHECK_INT(address_parse_path("<user@Example.ORG> SIZE=10", 26, 0, &a), 18);
        CHECK_INT(address_format(&a, buf, sizeof(buf)), 16);
        CHECK_STREQ(buf, "user@example.org");
        CHECK_INT(address_format(&a, buf, 17), 16);
        CHECK_INT(address_format(&a, buf, 16), -ENOBUFS);
        CHECK(!address_has_routing_tricks(&a));

        /* the length given is respected: no reading past n */
        CHECK_INT(address_parse_path("<a@b>", 4, 0, &a), -EINVAL);
        CHECK_INT(address_parse_path("<a@b>", 5, 0, &a), 5);
        CHECK_INT(address_parse_path(NULL, 0, ADDRESS_NO_BRACKETS | ADDRESS_ALLOW_NULL, &a), 0);
        CHECK(a.null);

        CHECK_INT(address_check_domain("example.org", 11, false), 0);
        CHECK_INT(address_check_domain("example.org.", 12, false), -EINVAL);
        CHECK_INT(address_check_domain("-a.org", 6, false), -EINVAL);
        CHECK_INT(address_check_domain("a-.org", 6, false), -EINVAL);
        CHECK_INT(address_check_domain("a_b.org", 7, false), -EINVAL);
        CHECK_INT(address_check_domain("[192.0.2.1]", 11, false), 0);
        CHECK_INT(address_check_domain("[IPv6:::1]", 10, false), 0);
        CHECK_INT(address_check_domain("[192.0.2.1]x", 12, false), -EINVAL);
        CHECK_INT(address_check_domain("[999.0.2.1]", 11, false), -EINVAL);
        CHECK_INT(address_check_domain("b\xc3\xbc" "cher.de", 9, false), -EINVAL);
        CHECK_INT(address_check_domain("b\xc3\xbc" "cher.de", 9, true), 0);
        CHECK_INT(address_check_domain("", 0, false), -EINVAL);
        {
                char d[300];

                memset(d, 'a', sizeof(d));
                for (size_t i = 63; i < sizeof(d); i += 64)
                        d[i] = '.';
                CHECK_INT(address_check_domain(d, 255, false), 0);
                CHECK_INT(address_check_domain(d, 256, false), -EINVAL);
                CHECK_INT(address_check_domain(d, 64, false), -EINVAL); /* trailing dot */
                d[63] = 'a';
                CHECK_INT(address_check_domain(d, 63, false), 0);
                CHECK_INT(address_check_domain(d, 64, false), -EINVAL); /* label of 64 */
        }
}

int main(int argc, char **argv) {
        if (argc > 1 && streq(argv[1], "--generate")) {
                test_golden(true);
                return EXIT_SUCCESS;
        }
        test_golden(false);
        test_api();
        return tap_finish("test-address");
}
