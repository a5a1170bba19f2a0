/* Unit test of smtpd's command tokenizer (smtpd/command.c): verbs, arguments,
 * paths and ESMTP parameters, and every refusal reason. */
#include "command.h"
#include "tap.h"

static CommandError parse(const char *s, Command *c) {
        return command_parse(s, strlen(s), c);
}

static void test_verbs(void) {
        Command c;

        CHECK_INT(parse("QUIT", &c), COMMAND_OK);
        CHECK_INT(c.verb, SMTP_VERB_QUIT);
        CHECK_INT(parse("quit", &c), COMMAND_OK);
        CHECK_INT(parse("QUIT now", &c), COMMAND_SYNTAX);
        CHECK_INT(c.verb, SMTP_VERB_QUIT);
        CHECK_INT(parse("QUIT ", &c), COMMAND_SYNTAX);
        CHECK_INT(parse("DATA", &c), COMMAND_OK);
        CHECK_INT(parse("DATA x", &c), COMMAND_SYNTAX);
        CHECK_INT(parse("RSET", &c), COMMAND_OK);
        CHECK_INT(parse("NOOP", &c), COMMAND_OK);
        CHECK_INT(parse("NOOP anything goes", &c), COMMAND_OK);
        CHECK_INT(parse("HELP", &c), COMMAND_OK);
        CHECK_INT(parse("HELP MAIL", &c), COMMAND_OK);
        CHECK_INT(parse("VRFY", &c), COMMAND_SYNTAX);
        CHECK_INT(parse("VRFY root", &c), COMMAND_OK);
        CHECK_INT(c.arg_len, 4);
        CHECK_INT(parse("", &c), COMMAND_UNKNOWN);
        CHECK_INT(c.verb, _SMTP_VERB_INVALID);
        CHECK_INT(parse("FOO", &c), COMMAND_UNKNOWN);
        CHECK_INT(parse("QUITX", &c), COMMAND_UNKNOWN);
        CHECK_INT(parse("GET / HTTP/1.0", &c), COMMAND_UNKNOWN);
        CHECK_INT(parse("STARTTLS", &c), COMMAND_OK);
        CHECK_INT(parse("STARTTLSX", &c), COMMAND_UNKNOWN);
        CHECK_INT(command_parse("QU\0T", 4, &c), COMMAND_UNKNOWN);
        CHECK_STREQ(command_verb_to_string(SMTP_VERB_EHLO), "EHLO");
        CHECK(command_verb_to_string(_SMTP_VERB_MAX) == NULL);
}

static void test_helo(void) {
        Command c;

        CHECK_INT(parse("EHLO client.example", &c), COMMAND_OK);
        CHECK_INT(c.verb, SMTP_VERB_EHLO);
        CHECK_INT(c.arg_len, strlen("client.example"));
        CHECK(memcmp(c.arg, "client.example", c.arg_len) == 0);
        CHECK_INT(parse("helo [192.0.2.1]", &c), COMMAND_OK);
        CHECK_INT(c.verb, SMTP_VERB_HELO);
        CHECK_INT(parse("EHLO", &c), COMMAND_SYNTAX);
        CHECK_INT(parse("EHLO ", &c), COMMAND_SYNTAX);
        CHECK_INT(parse("EHLO a b", &c), COMMAND_SYNTAX);
        CHECK_INT(parse("EHLO a\tb", &c), COMMAND_SYNTAX);
        CHECK_INT(command_parse("EHLO a\0b", 8, &c), COMMAND_SYNTAX);
        CHECK_INT(parse("EHLO a\rb", &c), COMMAND_SYNTAX);
}

static void test_mail(void) {
        Command c;

        CHECK_INT(parse("MAIL FROM:<a@example.org>", &c), COMMAND_OK);
        CHECK_INT(c.verb, SMTP_VERB_MAIL);
        CHECK_STREQ(c.path.local, "a");
        CHECK_STREQ(c.path.domain, "example.org");
        CHECK_INT(c.n_params, 0);
        CHECK_INT(parse("mail from:<>", &c), COMMAND_OK);
        CHECK(c.path.null);
        CHECK_INT(parse("MAIL FROM: <a@example.org>", &c), COMMAND_OK);
        CHECK_INT(parse("MAIL FROM:<a@Example.ORG> SIZE=1000 BODY=8BITMIME", &c), COMMAND_OK);
        CHECK_STREQ(c.path.domain, "example.org");
        CHECK_INT(c.n_params, 2);
        CHECK(command_param_is(&c.params[0], "size"));
        CHECK_INT(c.params[0].value_len, 4);
        CHECK(memcmp(c.params[0].value, "1000", 4) == 0);
        CHECK(command_param_is(&c.params[1], "BODY"));
        CHECK(memcmp(c.params[1].value, "8BITMIME", 8) == 0);
        CHECK_INT(parse("MAIL FROM:<a@example.org> SMTPUTF8", &c), COMMAND_OK);
        CHECK_INT(c.n_params, 1);
        CHECK(c.params[0].value == NULL);
        CHECK_INT(parse("MAIL FROM:a@example.org", &c), COMMAND_SYNTAX);
        CHECK_INT(parse("MAIL TO:<a@example.org>", &c), COMMAND_SYNTAX);
        CHECK_INT(parse("MAIL FROM:", &c), COMMAND_SYNTAX);
        CHECK_INT(parse("MAIL", &c), COMMAND_SYNTAX);
        CHECK_INT(parse("MAIL FROM:<a@example.org", &c), COMMAND_BAD_PATH);
        CHECK_INT(parse("MAIL FROM:<a@example.org>x", &c), COMMAND_BAD_PATH);
        CHECK_INT(parse("MAIL FROM:<a b@example.org>", &c), COMMAND_BAD_PATH);
        CHECK_INT(parse("MAIL FROM:<a@example.org> SIZE=", &c), COMMAND_BAD_PARAM);
        CHECK_INT(parse("MAIL FROM:<a@example.org> =1", &c), COMMAND_BAD_PARAM);
        CHECK_INT(parse("MAIL FROM:<a@example.org> SIZE=1=2", &c), COMMAND_BAD_PARAM);
        CHECK_INT(parse("MAIL FROM:<a@example.org> A B C D E F G H I", &c),
                  COMMAND_TOO_MANY_PARAMS);
        CHECK_INT(parse("MAIL FROM:<a@example.org> A B C D E F G H", &c), COMMAND_OK);
        CHECK_INT(parse("MAIL FROM:<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.org>", &c),
                  COMMAND_PATH_TOO_LONG);
}

static void test_rcpt(void) {
        Command c;

        CHECK_INT(parse("RCPT TO:<u@test.example>", &c), COMMAND_OK);
        CHECK_INT(c.verb, SMTP_VERB_RCPT);
        CHECK_STREQ(c.path.local, "u");
        CHECK_INT(parse("RCPT TO:<Postmaster>", &c), COMMAND_OK);
        CHECK_STREQ(c.path.domain, "");
        CHECK_INT(parse("RCPT TO:<>", &c), COMMAND_BAD_PATH);
        CHECK_INT(parse("RCPT TO:<@relay.example:u@test.example>", &c), COMMAND_OK);
        CHECK_STREQ(c.path.domain, "test.example");
        CHECK_INT(parse("RCPT TO:<\"a@b\"@test.example>", &c), COMMAND_OK);
        CHECK(address_has_routing_tricks(&c.path));
        CHECK_INT(parse("RCPT TO:<a%b@test.example>", &c), COMMAND_OK);
        CHECK(address_has_routing_tricks(&c.path));
        CHECK_INT(parse("RCPT FROM:<u@test.example>", &c), COMMAND_SYNTAX);
        CHECK_INT(parse("RCPT TO:<u@test.example> NOTIFY=NEVER", &c), COMMAND_OK);
        CHECK_INT(c.n_params, 1);
}

static void test_bdat(void) {
        Command c;

        CHECK_INT(parse("BDAT 100", &c), COMMAND_OK);
        CHECK_INT(c.verb, SMTP_VERB_BDAT);
        CHECK_INT(c.bdat_size, 100);
        CHECK(!c.bdat_last);
        CHECK_INT(parse("bdat 0 last", &c), COMMAND_OK);
        CHECK_INT(c.bdat_size, 0);
        CHECK(c.bdat_last);
        CHECK_INT(parse("BDAT 18446744073709551615 LAST", &c), COMMAND_OK);
        CHECK(c.bdat_size == UINT64_MAX);
        CHECK_INT(parse("BDAT 18446744073709551616", &c), COMMAND_SYNTAX);
        CHECK_INT(c.verb, SMTP_VERB_BDAT);
        CHECK_INT(parse("BDAT", &c), COMMAND_SYNTAX);
        CHECK_INT(parse("BDAT ", &c), COMMAND_SYNTAX);
        CHECK_INT(parse("BDAT -1", &c), COMMAND_SYNTAX);
        CHECK_INT(parse("BDAT 1x", &c), COMMAND_SYNTAX);
        CHECK_INT(parse("BDAT 10 LASTX", &c), COMMAND_SYNTAX);
        CHECK(c.bdat_sized);
        CHECK_INT(c.bdat_size, 10);
        CHECK_INT(parse("BDAT x", &c), COMMAND_SYNTAX);
        CHECK(!c.bdat_sized);
        CHECK_INT(parse("BDAT 10  LAST", &c), COMMAND_SYNTAX);
        CHECK_INT(parse("BDAT 10 LAST ", &c), COMMAND_SYNTAX);
        CHECK_STREQ(command_verb_to_string(SMTP_VERB_BDAT), "BDAT");
}

static void test_dsn(void) {
        unsigned m = 0;
        char buf[32];

        CHECK(command_xtext_valid("abc", 3));
        CHECK(command_xtext_valid("a+2Bb", 5));
        CHECK(!command_xtext_valid("a+2bb", 5));
        CHECK(!command_xtext_valid("a+2", 3));
        CHECK(!command_xtext_valid("a=b", 3));
        CHECK(!command_xtext_valid("a b", 3));
        CHECK(!command_xtext_valid("", 0));
        CHECK(!command_xtext_valid("\xc3\xa9", 2));

        CHECK_INT(command_parse_notify("NEVER", 5, &m), 0);
        CHECK_INT(m, COMMAND_NOTIFY_NEVER);
        CHECK_INT(command_parse_notify("failure,success", 15, &m), 0);
        command_format_notify(m, buf, sizeof(buf));
        CHECK_STREQ(buf, "SUCCESS,FAILURE");
        CHECK_INT(command_parse_notify("SUCCESS,FAILURE,DELAY", 21, &m), 0);
        command_format_notify(m, buf, sizeof(buf));
        CHECK_STREQ(buf, "SUCCESS,FAILURE,DELAY");
        CHECK_INT(command_parse_notify("NEVER,SUCCESS", 13, &m), -EINVAL);
        CHECK_INT(command_parse_notify("SUCCESS,SUCCESS", 15, &m), -EINVAL);
        CHECK_INT(command_parse_notify("SUCCESS,", 8, &m), -EINVAL);
        CHECK_INT(command_parse_notify(",SUCCESS", 8, &m), -EINVAL);
        CHECK_INT(command_parse_notify("SOMETIMES", 9, &m), -EINVAL);
        CHECK_INT(command_parse_notify(NULL, 0, &m), -EINVAL);

        CHECK_INT(command_check_orcpt("rfc822;a@example.org", 20, false), 0);
        CHECK_INT(command_check_orcpt("rfc822;a+2Bb@example.org", 24, false), 0);
        CHECK_INT(command_check_orcpt("rfc822;", 7, false), -EINVAL);
        CHECK_INT(command_check_orcpt(";a@b", 4, false), -EINVAL);
        CHECK_INT(command_check_orcpt("a@b", 3, false), -EINVAL);
        CHECK_INT(command_check_orcpt("rfc 822;a@b", 11, false), -EINVAL);
        CHECK_INT(command_check_orcpt("utf-8;a@b", 9, false), -EINVAL);
        CHECK_INT(command_check_orcpt("utf-8;a@b", 9, true), 0);
}

static void test_utf8_paths(void) {
        Command c;

        CHECK_INT(parse("MAIL FROM:<a@example.org> SMTPUTF8", &c), COMMAND_OK);
        CHECK(!c.path_utf8);
        CHECK_INT(parse("MAIL FROM:<j\xc3\xb6" "rg@example.org> SMTPUTF8", &c), COMMAND_OK);
        CHECK(c.path_utf8);
        CHECK_INT(parse("RCPT TO:<user@b\xc3\xbc" "cher.example>", &c), COMMAND_OK);
        CHECK(c.path_utf8);
        /* Not UTF-8 at all: a syntax error whatever the parameters. */
        CHECK_INT(parse("RCPT TO:<user\xff" "@example.org>", &c), COMMAND_BAD_PATH);
        CHECK_INT(parse("RCPT TO:<user\xc3@example.org>", &c), COMMAND_BAD_PATH);
}

int main(void) {
        test_verbs();
        test_helo();
        test_mail();
        test_rcpt();
        test_bdat();
        test_dsn();
        test_utf8_paths();
        return tap_finish("test-smtp-command");
}
