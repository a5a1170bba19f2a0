/* deliverd/mailbox.c: account names, MailboxPath expansion, CRLF -> LF conversion, mboxrd
 * "From " quoting and the mbox separator line, checked byte for byte. */
#include <errno.h>
#include <stdlib.h>

#include "mailbox.h"
#include "tap.h"

static void check_path(const char *tmpl, const char *user, const char *home, int r_exp,
                       const char *exp) {
        char *s = NULL;
        int r = mailbox_expand_path(tmpl, user, home, &s);

        CHECK_INT(r, r_exp);
        if (r_exp == 0)
                CHECK_STREQ(s, exp);
        free(s);
}

static void check_format(const char *body, bool mbox, const char *exp) {
        char *out = NULL;
        size_t n = 0;
        int r = mailbox_format("s@example.org", "u@test.example", (const uint8_t *) body,
                               strlen(body), mbox, &out, &n);

        CHECK_INT(r, 0);
        CHECK_INT(n, strlen(exp));
        if (r == 0 && (n != strlen(exp) || memcmp(out, exp, n) != 0)) {
                fprintf(stderr, "got:\n%.*s\nexpected:\n%s\n", (int) n, out, exp);
                tap_failures++;
        }
        free(out);
}

static bool dt(const char *msg, const char *rcpt) {
        return mailbox_has_delivered_to((const uint8_t *) msg, strlen(msg), rcpt);
}

/* The Delivered-To: loop check looks at header fields only, whole values,
 * without case, CRLF or LF. */
static void test_delivered_to(void) {
        CHECK(dt("Delivered-To: a@b.example\r\nSubject: x\r\n\r\nbody\r\n", "a@b.example"));
        CHECK(dt("Subject: x\nDELIVERED-TO:   A@B.example  \n\nbody\n", "a@b.example"));
        CHECK(!dt("Delivered-To: aa@b.example\r\n\r\n", "a@b.example"));
        CHECK(!dt("Delivered-To: a@b.example.org\r\n\r\n", "a@b.example"));
        CHECK(!dt("Subject: x\r\n\r\nDelivered-To: a@b.example\r\n", "a@b.example"));
        CHECK(!dt("X-Delivered-To: a@b.example\r\n\r\n", "a@b.example"));
        CHECK(!dt("", "a@b.example"));
        CHECK(dt("Delivered-To: a@b.example", "a@b.example")); /* no line end at all */
}

int main(void) {
        char buf[128];
        int r;

        test_delivered_to();

        check_path("~/Maildir/", "alice", "/home/alice", 0, "/home/alice/Maildir/");
        check_path("~", "alice", "/home/alice", 0, "/home/alice");
        check_path("~/Maildir/", "root", "/", 0, "/Maildir/");
        check_path("/var/mail/%u", "bob", NULL, 0, "/var/mail/bob");
        check_path("/srv/%u/%u.mbox", "bob", NULL, 0, "/srv/bob/bob.mbox");
        check_path("/srv/100%%/%u", "bob", NULL, 0, "/srv/100%/bob");
        check_path("/x/~/%x", "bob", "/h", 0, "/x/~/%x");
        check_path("~/Maildir/", "alice", NULL, -EINVAL, NULL);
        check_path("~alice/Maildir/", "alice", "/h", 0, "~alice/Maildir/");
        check_path("/var/mail/%u", "../etc", NULL, -EINVAL, NULL);
        check_path("/var/mail/%u", "..", NULL, -EINVAL, NULL);

        /* Maildir: CRLF -> LF, lone CR kept, no quoting, no trailing line. */
        check_format("Subject: x\r\n\r\nFrom here\r\nbare\rcr\r\nend\r\n", false,
                     "Return-Path: <s@example.org>\nDelivered-To: u@test.example\n"
                     "Subject: x\n\nFrom here\nbare\rcr\nend\n");
        /* No final line end: kept as is in Maildir. */
        check_format("a\r\nb", false,
                     "Return-Path: <s@example.org>\nDelivered-To: u@test.example\na\nb");
        /* mbox: mboxrd quoting of /^>*From /, not of "From:" or " From ". */
        check_format("From: a\r\n\r\nFrom me\r\n>From you\r\n>>From them\r\n From x\r\n"
                     "Fromage\r\nFrom\r\n",
                     true,
                     "Return-Path: <s@example.org>\nDelivered-To: u@test.example\n"
                     "From: a\n\n>From me\n>>From you\n>>>From them\n From x\nFromage\nFrom\n\n");
        /* mbox: a message without a final line end still ends with "\n\n". */
        check_format("x\r\nFrom y", true,
                     "Return-Path: <s@example.org>\nDelivered-To: u@test.example\nx\n>From y\n\n");
        check_format("", true, "Return-Path: <s@example.org>\nDelivered-To: u@test.example\n\n");

        /* Control characters in envelope addresses cannot add header lines. */
        {
                char *out = NULL;
                size_t n = 0;
                CHECK_INT(mailbox_format("a\nX-Evil: 1", "r\r", (const uint8_t *) "", 0, false,
                                         &out, &n), 0);
                CHECK(n == strlen("Return-Path: <a?X-Evil: 1>\nDelivered-To: r?\n"));
                CHECK(out && memcmp(out, "Return-Path: <a?X-Evil: 1>\nDelivered-To: r?\n", n) == 0);
                free(out);
        }
        /* Null sender. */
        check_format("x\r\n", false, "Return-Path: <s@example.org>\nDelivered-To: u@test.example\nx\n");

        /* Account names of local recipients. */
        CHECK_INT(mailbox_user_name("Alice@Test.Example", buf, sizeof(buf)), 0);
        CHECK_STREQ(buf, "alice");
        CHECK_INT(mailbox_user_name("bob", buf, sizeof(buf)), 0);
        CHECK_STREQ(buf, "bob");
        CHECK_INT(mailbox_user_name("PostMaster@x", buf, sizeof(buf)), 0);
        CHECK_STREQ(buf, "root");
        CHECK_INT(mailbox_user_name("postmaster", buf, sizeof(buf)), 0);
        CHECK_STREQ(buf, "root");
        CHECK_INT(mailbox_user_name("\"a@b\"@x", buf, sizeof(buf)), 0);
        CHECK_STREQ(buf, "\"a@b\"");
        CHECK_INT(mailbox_user_name("@x", buf, sizeof(buf)), -EINVAL);
        CHECK_INT(mailbox_user_name("", buf, sizeof(buf)), -EINVAL);
        CHECK_INT(mailbox_user_name("abcdef@x", buf, 6), -EINVAL);
        CHECK_INT(mailbox_user_name("abcde@x", buf, 6), 0);
        CHECK_STREQ(buf, "abcde");

        setenv("TZ", "UTC", 1);
        r = mailbox_from_line("s@example.org", 1700000000, buf, sizeof(buf));
        CHECK_INT(r, (int) strlen("From s@example.org Tue Nov 14 22:13:20 2023\n"));
        CHECK_STREQ(buf, "From s@example.org Tue Nov 14 22:13:20 2023\n");
        r = mailbox_from_line("", 1699000000, buf, sizeof(buf));
        CHECK_STREQ(buf, "From MAILER-DAEMON Fri Nov  3 08:26:40 2023\n");
        r = mailbox_from_line("a b@x", 1699000000, buf, sizeof(buf));
        CHECK_STREQ(buf, "From MAILER-DAEMON Fri Nov  3 08:26:40 2023\n");
        CHECK_INT(mailbox_from_line("s@example.org", 0, buf, 10), -ENOBUFS);

        if (tap_failures)
                fprintf(stderr, "%d check(s) failed\n", tap_failures);
        return tap_failures ? 1 : 0;
}
