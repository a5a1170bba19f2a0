/* Unit test of smtpd's DATA line machine (smtpd/data.c): end of data,
 * dot-stuffing, line lengths and the bare CR / bare LF of SMTP smuggling, fed
 * whole and one byte at a time. */
#include "data.h"
#include "tap.h"

typedef struct Result {
        char body[8192];
        size_t body_len;
        size_t consumed;
        bool done, bare_lf, bare_cr, too_long;
} Result;

/* Feeds input in pieces of at most step bytes, with an output buffer of
 * out_size bytes, until the end of data or the input runs out. */
static Result feed(const char *in, size_t n, size_t step, size_t out_size) {
        Result r = {};
        DataParser p;
        char out[4096];

        data_parser_init(&p);
        while (r.consumed < n && !data_parser_done(&p)) {
                size_t k = n - r.consumed < step ? n - r.consumed : step, ol = 0, used;

                used = data_parse(&p, in + r.consumed, k, out, out_size, &ol);
                CHECK(used > 0);
                if (used == 0)
                        break;
                CHECK(ol <= out_size);
                CHECK(r.body_len + ol <= sizeof(r.body));
                memcpy(r.body + r.body_len, out, ol);
                r.body_len += ol;
                r.consumed += used;
        }
        r.done = data_parser_done(&p);
        r.bare_lf = p.bare_lf;
        r.bare_cr = p.bare_cr;
        r.too_long = p.line_too_long;
        CHECK_INT(p.body_size, r.body_len);
        return r;
}

/* Every way of feeding must give the same result. */
static Result check(const char *in, const char *body, size_t consumed, bool done) {
        static const size_t steps[] = { 1, 2, 3, 7, 4096 };
        static const size_t outs[] = { 2, 3, 5, 4096 };
        size_t n = strlen(in);
        Result first = feed(in, n, 4096, 4096);

        CHECK_INT(first.done, done);
        CHECK_INT(first.consumed, consumed);
        if (body) {
                CHECK_INT(first.body_len, strlen(body));
                CHECK(first.body_len == strlen(body) && memcmp(first.body, body, first.body_len) == 0);
        }
        for (size_t s = 0; s < ELEMENTSOF(steps); s++)
                for (size_t o = 0; o < ELEMENTSOF(outs); o++) {
                        Result r = feed(in, n, steps[s], outs[o]);

                        CHECK_INT(r.consumed, first.consumed);
                        CHECK_INT(r.done, first.done);
                        CHECK_INT(r.bare_lf, first.bare_lf);
                        CHECK_INT(r.bare_cr, first.bare_cr);
                        CHECK_INT(r.too_long, first.too_long);
                        CHECK(r.body_len == first.body_len &&
                              memcmp(r.body, first.body, r.body_len) == 0);
                }
        return first;
}

static void test_end_of_data(void) {
        Result r;

        r = check(".\r\n", "", 3, true);
        CHECK(!r.bare_lf && !r.bare_cr);
        r = check("a\r\n.\r\n", "a\r\n", 6, true);
        r = check("a\r\n.\r\nQUIT\r\n", "a\r\n", 6, true);
        r = check("Subject: x\r\n\r\nbody\r\n.\r\n", "Subject: x\r\n\r\nbody\r\n", 23, true);
        r = check("a\r\n", "a\r\n", 3, false);
        r = check("a\r\n.", "a\r\n", 4, false);
        r = check("a\r\n.\r", "a\r\n", 5, false);
}

static void test_dot_stuffing(void) {
        Result r;

        r = check("..\r\n.\r\n", ".\r\n", 7, true);
        r = check("..x\r\n.x\r\n.\r\n", ".x\r\nx\r\n", 12, true);
        r = check("a.\r\n.\r\n", "a.\r\n", 7, true);
        r = check("...\r\n.\r\n", "..\r\n", 8, true);
        CHECK(!r.bare_lf && !r.bare_cr);
}

static void test_smuggling(void) {
        Result r;

        /* ".\n" is never the end; nor is a dot line after a bare LF. */
        r = check("a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n", NULL, 25, true);
        CHECK(r.bare_lf);
        r = check("a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n", NULL, 25, true);
        CHECK(r.bare_lf);
        CHECK(!r.bare_cr);
        r = check("a\n.\nb", NULL, 5, false);
        CHECK(r.bare_lf);
        r = check("a\r.\r\nb\r\n.\r\n", NULL, 11, true);
        CHECK(r.bare_cr);
        CHECK(!r.bare_lf);
        r = check("a\r\n.\rX\r\n.\r\n", "a\r\n\rX\r\n", 11, true);
        CHECK(r.bare_cr);
        r = check("a\rb\r\n.\r\n", "a\rb\r\n", 8, true);
        CHECK(r.bare_cr);
        r = check("a\r\r\n.\r\n", "a\r\r\n", 7, true);
        CHECK(r.bare_cr);
        CHECK(!r.bare_lf);
        r = check("a\r\n.\r\r\n.\r\n", NULL, 10, true);
        CHECK(r.bare_cr);
}

static void test_line_length(void) {
        char buf[3000];
        Result r;

        /* 998 octets + CRLF = 1000: allowed. */
        memset(buf, 'x', 998);
        memcpy(buf + 998, "\r\n.\r\n", 6);
        r = check(buf, NULL, 1003, true);
        CHECK(!r.too_long);
        CHECK_INT(r.body_len, 1000);
        /* 999 + CRLF: too long. */
        memset(buf, 'x', 999);
        memcpy(buf + 999, "\r\n.\r\n", 6);
        r = check(buf, NULL, 1004, true);
        CHECK(r.too_long);
        /* A stuffed dot counts: it was sent. */
        buf[0] = '.';
        memset(buf + 1, 'x', 998);
        memcpy(buf + 999, "\r\n.\r\n", 6);
        r = check(buf, NULL, 1004, true);
        CHECK(r.too_long);
        CHECK_INT(r.body_len, 1000);
        /* Many short lines are fine. */
        for (size_t i = 0; i < 2000; i += 2)
                memcpy(buf + i, "\r\n", 2);
        memcpy(buf + 2000, ".\r\n", 4);
        r = check(buf, NULL, 2003, true);
        CHECK(!r.too_long);
}

int main(void) {
        test_end_of_data();
        test_dot_stuffing();
        test_smuggling();
        test_line_length();
        return tap_finish("test-smtp-data");
}
