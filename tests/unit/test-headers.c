/* Unit test of cli/headers.c: header section boundaries, missing-field
 * detection, -t recipient extraction and Bcc: ranges. */

#include "headers.h"
#include "tap.h"

static HeaderScan scan(const char *msg) {
        HeaderScan s;
        int r = headers_scan(msg, strlen(msg), &s);
        CHECK_INT(r, 0);
        if (r < 0)
                memset(&s, 0, sizeof(s));
        return s;
}

static void check_rcpts(const HeaderScan *s, const char *const *want) {
        size_t n = 0;
        while (want[n])
                n++;
        CHECK_INT(s->n_recipients, n);
        for (size_t i = 0; i < n && i < s->n_recipients; i++)
                CHECK_STREQ(s->recipients[i], want[i]);
        if (s->recipients)
                CHECK(s->recipients[s->n_recipients] == NULL);
}

static void test_plain_body(void) {
        /* `echo hi | sendmail user`: no header at all. */
        HeaderScan s = scan("hi\n");
        CHECK_INT(s.header_end, 0);
        CHECK(s.need_separator);
        CHECK(!s.has_date && !s.has_from && !s.has_message_id);
        CHECK_INT(s.n_recipients, 0);
        headers_scan_done(&s);

        s = scan("");
        CHECK_INT(s.header_end, 0);
        CHECK(s.need_separator);
        headers_scan_done(&s);
}

static void test_header_end(void) {
        const char *m = "Subject: x\r\nFrom: a@b\r\n\r\nbody\r\n";
        HeaderScan s = scan(m);
        CHECK_INT(s.header_end, strlen("Subject: x\r\nFrom: a@b\r\n"));
        CHECK(!s.need_separator);
        CHECK(s.has_from && !s.has_date && !s.has_message_id);
        headers_scan_done(&s);

        /* A body line right after the fields: the separator is missing. */
        m = "Subject: x\nthis is body\n";
        s = scan(m);
        CHECK_INT(s.header_end, strlen("Subject: x\n"));
        CHECK(s.need_separator);
        headers_scan_done(&s);

        /* Only headers, no final newline. */
        m = "Subject: x";
        s = scan(m);
        CHECK_INT(s.header_end, strlen(m));
        CHECK(s.need_separator);
        headers_scan_done(&s);

        /* "Name : value" (obsolete syntax) and case-insensitive names. */
        s = scan("DATE : today\nmessage-ID: <a@b>\n\n");
        CHECK(s.has_date && s.has_message_id && !s.has_from);
        headers_scan_done(&s);

        /* A continuation line before any field is body. */
        s = scan(" indented\nSubject: x\n\n");
        CHECK_INT(s.header_end, 0);
        CHECK(s.need_separator);
        headers_scan_done(&s);

        /* A body line containing a colon after a space is not a field. */
        s = scan("Subject: x\nnot a field: no\n");
        CHECK_INT(s.header_end, strlen("Subject: x\n"));
        headers_scan_done(&s);

        /* Fields in the body do not count. */
        s = scan("Subject: x\n\nFrom: a@b\nDate: now\n");
        CHECK(!s.has_from && !s.has_date);
        headers_scan_done(&s);
}

static void test_mbox_from_line(void) {
        const char *m = "From alice Mon Nov 23 06:58:00 2020\nSubject: x\n\nbody\n";
        HeaderScan s = scan(m);
        CHECK_INT(s.skip_prefix, strlen("From alice Mon Nov 23 06:58:00 2020\n"));
        CHECK_INT(s.header_end, strlen("From alice Mon Nov 23 06:58:00 2020\nSubject: x\n"));
        CHECK(!s.has_from);
        headers_scan_done(&s);

        s = scan("From: alice\n\n");
        CHECK_INT(s.skip_prefix, 0);
        CHECK(s.has_from);
        headers_scan_done(&s);
}

static void test_recipients(void) {
        const char *m =
                "From: Me <me@example.org>\r\n"
                "To: Alice <alice@example.org>, bob,\r\n"
                "\t\"Doe, John\" <john@example.org>\r\n"
                "Cc: carol@example.org (Carol), undisclosed-recipients:;\r\n"
                "Subject: Bcc: not@this.one\r\n"
                "bcc: dave@example.org,\r\n"
                " Team: erin@example.org, <frank@example.org>;\r\n"
                "\r\n"
                "To: body@example.org\r\n";
        HeaderScan s = scan(m);
        check_rcpts(&s, (const char *const[]) {
                "alice@example.org", "bob", "john@example.org", "carol@example.org",
                "dave@example.org", "erin@example.org", "frank@example.org", NULL });
        CHECK_INT(s.n_bcc, 1);
        if (s.n_bcc == 1) {
                const char *b = strstr(m, "bcc: ");
                CHECK_INT(s.bcc[0].start, b - m);
                CHECK_INT(s.bcc[0].end, strstr(m, "\r\n\r\n") + 2 - m);
        }
        headers_scan_done(&s);
}

static void test_resent(void) {
        HeaderScan s = scan("To: old@example.org\n"
                            "Resent-To: new@example.org\n"
                            "Resent-Bcc: hidden@example.org\n"
                            "\n");
        check_rcpts(&s, (const char *const[]) { "new@example.org", "hidden@example.org", NULL });
        CHECK_INT(s.n_bcc, 1);
        headers_scan_done(&s);
}

static void test_address_list(void) {
        char **l = NULL;
        size_t n = 0;
        const char *v = "  <@relay.example:u@d.example>, \"quoted local\"@example.org, "
                        "x@y (comment (nested) \\) ), <>, ,Name <a@b> <c@d>";
        CHECK_INT(headers_parse_address_list(v, strlen(v), &l, &n), 0);
        CHECK_INT(n, 4);
        if (n == 4) {
                CHECK_STREQ(l[0], "@relay.example:u@d.example");
                CHECK_STREQ(l[1], "\"quoted local\"@example.org");
                CHECK_STREQ(l[2], "x@y");
                CHECK_STREQ(l[3], "c@d");
        }
        strv_free(l);

        /* Too long: refused, not cut. */
        char big[HEADERS_ADDRESS_MAX + 10];
        memset(big, 'a', sizeof(big));
        l = NULL;
        n = 0;
        CHECK_INT(headers_parse_address_list(big, sizeof(big), &l, &n), -EINVAL);
        strv_free(l);

        /* A long display name is fine when an angle-addr follows. */
        char named[HEADERS_ADDRESS_MAX + 40];
        memset(named, 'N', HEADERS_ADDRESS_MAX + 10);
        memcpy(named + HEADERS_ADDRESS_MAX + 10, " <a@b>", 7);
        l = NULL;
        n = 0;
        CHECK_INT(headers_parse_address_list(named, strlen(named), &l, &n), 0);
        CHECK_INT(n, 1);
        if (n == 1)
                CHECK_STREQ(l[0], "a@b");
        strv_free(l);
}

static void test_recipient_limit(void) {
        size_t per = 5, lines = HEADERS_RCPT_MAX / per + 1;
        size_t size = lines * 64 + 16, len = 0;
        char *m = malloc(size);
        CHECK(m != NULL);
        if (!m)
                return;
        for (size_t i = 0; i < lines; i++)
                len += (size_t) snprintf(m + len, size - len, "To: a@b, c@d, e@f, g@h, i@j\n");
        HeaderScan s;
        CHECK_INT(headers_scan(m, len, &s), -E2BIG);
        free(m);
}

int main(void) {
        test_plain_body();
        test_header_end();
        test_mbox_from_line();
        test_recipients();
        test_resent();
        test_address_list();
        test_recipient_limit();
        return tap_finish("test-headers");
}
