/* Tests the SMTP reply parser of deliverd: single and multi-line replies,
 * enhanced status codes, incomplete input, malformed replies and limits. */
#include "smtp_reply.h"
#include "tap.h"

static int parse(const char *s, SmtpReply *r) {
        return smtp_reply_parse(s, strlen(s), NULL, r);
}

static void check_format(const char *s, const char *expected) {
        SmtpReply r;
        char out[512];

        CHECK_INT(parse(s, &r), (int) strlen(s));
        smtp_reply_format(&r, s, out, sizeof(out));
        CHECK_STREQ(out, expected);
}

static void test_simple(void) {
        const char *s = "220 mx.example.org ESMTP ready\r\n";
        SmtpReply r;

        CHECK_INT(parse(s, &r), strlen(s));
        CHECK_INT(r.code, 220);
        CHECK_STREQ(r.enhanced, "");
        CHECK_INT(r.n_lines, 1);
        CHECK_INT(r.lines[0].offset, 4);
        CHECK_INT(r.lines[0].len, strlen("mx.example.org ESMTP ready"));

        s = "354\r\n";
        CHECK_INT(parse(s, &r), 5);
        CHECK_INT(r.code, 354);
        CHECK_INT(r.n_lines, 1);
        CHECK_INT(r.lines[0].len, 0);

        /* Only the first reply is consumed; pipelined replies follow. */
        s = "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n";
        CHECK_INT(parse(s, &r), 14);
        CHECK_STREQ(r.enhanced, "2.1.0");
}

static void test_multiline(void) {
        const char *s = "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
                        "250-8BITMIME\r\n250 SMTPUTF8\r\n";
        SmtpReply r;

        CHECK_INT(parse(s, &r), strlen(s));
        CHECK_INT(r.code, 250);
        CHECK_INT(r.n_lines, 5);
        CHECK(r.lines[2].len == 13 && memcmp(s + r.lines[2].offset, "SIZE 10240000", 13) == 0);
        CHECK(r.lines[4].len == 8 && memcmp(s + r.lines[4].offset, "SMTPUTF8", 8) == 0);

        check_format("550-5.1.1 The account does not exist.\r\n"
                     "550 5.1.1 Please check the address.\r\n",
                     "550 5.1.1 The account does not exist. Please check the address.");
        check_format("250 2.0.0 Ok: queued as 3A1B2C\r\n", "250 2.0.0 Ok: queued as 3A1B2C");
        check_format("451 Try later\r\n", "451 Try later");
        check_format("250-\r\n250 \r\n", "250");
        check_format("451 4.3.0 caf\xc3\xa9 \xc3 \xff\xe2\x82\r\n", "451 4.3.0 caf\xc3\xa9 ? ???");
}

static void test_enhanced(void) {
        SmtpReply r;

        CHECK_INT(parse("550 5.7.1\r\n", &r), 11);
        CHECK_STREQ(r.enhanced, "5.7.1");
        CHECK_INT(parse("452 4.5.3 Too many recipients\r\n", &r), 31);
        CHECK_STREQ(r.enhanced, "4.5.3");
        CHECK_INT(parse("550 5.123.999 x\r\n", &r), 17);
        CHECK_STREQ(r.enhanced, "5.123.999");
        /* The class must match the reply code (RFC 2034 3). */
        CHECK_INT(parse("550 4.1.1 x\r\n", &r), 13);
        CHECK_STREQ(r.enhanced, "");
        /* Not a status code: leading zero, four digits, no space after. */
        CHECK_INT(parse("550 5.01.1 x\r\n", &r), 14);
        CHECK_STREQ(r.enhanced, "");
        CHECK_INT(parse("550 5.1.1234 x\r\n", &r), 16);
        CHECK_STREQ(r.enhanced, "");
        CHECK_INT(parse("550 5.1.1: x\r\n", &r), 14);
        CHECK_STREQ(r.enhanced, "");
        CHECK_INT(parse("550 5.1 x\r\n", &r), 11);
        CHECK_STREQ(r.enhanced, "");
}

static void test_incomplete(void) {
        SmtpReply r;

        CHECK_INT(parse("", &r), 0);
        CHECK_INT(parse("22", &r), 0);
        CHECK_INT(parse("220 ready\r", &r), 0);
        CHECK_INT(parse("250-first\r\n", &r), 0);
        CHECK_INT(parse("250-first\r\n250 sec", &r), 0);
}

static void test_malformed(void) {
        SmtpReply r;

        CHECK_INT(parse("hello\r\n", &r), -EBADMSG);
        CHECK_INT(parse("25 x\r\n", &r), -EBADMSG);
        CHECK_INT(parse("2500 x\r\n", &r), -EBADMSG);
        CHECK_INT(parse("650 x\r\n", &r), -EBADMSG);
        CHECK_INT(parse("160 x\r\n", &r), -EBADMSG);
        CHECK_INT(parse("270 x\r\n", &r), -EBADMSG);
        CHECK_INT(parse("250\r\n", &r), 5);
        CHECK_INT(parse("250_x\r\n", &r), -EBADMSG);
        CHECK_INT(parse("250-x\r\n251 y\r\n", &r), -EBADMSG);
        CHECK_INT(parse("250 x\n", &r), -EBADMSG);
        CHECK_INT(parse("250\n", &r), -EBADMSG);
        CHECK_INT(parse("\r\n", &r), -EBADMSG);
        CHECK_INT(parse("250 a\rb\r\n", &r), -EBADMSG);
        CHECK_INT(smtp_reply_parse("250 a\0b\r\n", 9, NULL, &r), -EBADMSG);
        CHECK_INT(parse("250 a\x1b[0m\r\n", &r), -EBADMSG);
        CHECK_INT(parse("250 tab\there \xc3\xa9t\xc3\xa9\r\n", &r), 20);
}

static void test_limits(void) {
        char big[2048];
        SmtpReplyLimits l = { .line_max = 64, .lines_max = 3 };
        SmtpReply r;

        /* 510 text octets + "250 " would be 516 with CRLF: one over 512. */
        memset(big, 'a', sizeof(big));
        memcpy(big, "250 ", 4);
        memcpy(big + 508, "\r\n", 2);
        CHECK_INT(smtp_reply_parse(big, 510, NULL, &r), 510);
        memcpy(big + 508, "aa", 2);
        memcpy(big + 510, "\r\n", 2);
        CHECK_INT(smtp_reply_parse(big, 512, NULL, &r), 512);
        memcpy(big + 510, "aa\r\n", 4);
        CHECK_INT(smtp_reply_parse(big, 514, NULL, &r), -EMSGSIZE);
        /* Without an end of line: wait until the limit, then refuse. */
        CHECK_INT(smtp_reply_parse(big, 500, NULL, &r), 0);
        CHECK_INT(smtp_reply_parse(big, 2048, NULL, &r), -EMSGSIZE);

        CHECK_INT(smtp_reply_parse("250-a\r\n250-b\r\n250 c\r\n", 21, &l, &r), 21);
        CHECK_INT(smtp_reply_parse("250-a\r\n250-b\r\n250-c\r\n250 d\r\n", 28, &l, &r), -EMSGSIZE);

        /* 101 lines with the default limits. */
        {
                char many[101 * 7 + 1];
                size_t n = 0;
                for (int i = 0; i < 101; i++) {
                        memcpy(many + n, i == 100 ? "250 x\r\n" : "250-x\r\n", 7);
                        n += 7;
                }
                CHECK_INT(smtp_reply_parse(many, n, NULL, &r), -EMSGSIZE);
                CHECK_INT(smtp_reply_parse(many + 7, n - 7, NULL, &r), (int) (n - 7));
                CHECK_INT(r.n_lines, 100);
        }
}

static void test_format_truncates(void) {
        const char *s = "550-5.1.1 aaaaaaaaaa\r\n550 5.1.1 bbbbbbbbbb\r\n";
        SmtpReply r;
        char out[16];

        CHECK_INT(parse(s, &r), strlen(s));
        CHECK_INT(smtp_reply_format(&r, s, out, sizeof(out)), 15);
        CHECK_STREQ(out, "550 5.1.1 aaaaa");
}

int main(void) {
        test_simple();
        test_multiline();
        test_enhanced();
        test_incomplete();
        test_malformed();
        test_limits();
        test_format_truncates();
        return tap_finish("test-smtp-reply");
}
