/* Unit test of smtpd's policy helpers: access-table actions and client keys
 * (smtpd/policy.c), and the DNS blocklist codec (smtpd/rbl.c): reversed
 * names, queries, answers (including hostile ones) and resolver addresses. */
#include <arpa/inet.h>

#include "policy.h"
#include "rbl.h"
#include "tap.h"

static void test_actions(void) {
        PolicyVerdict v;

        CHECK_INT(policy_parse_action("OK", "x", "Client host", &v), 0);
        CHECK_INT(v.action, POLICY_OK);
        CHECK_INT(policy_parse_action(" ok ", "x", "Client host", &v), 0);
        CHECK_INT(v.action, POLICY_OK);
        CHECK_INT(policy_parse_action("DUNNO", "x", "Client host", &v), 0);
        CHECK_INT(v.action, POLICY_DUNNO);
        CHECK_INT(policy_parse_action("REJECT", "a@b", "Sender address", &v), 0);
        CHECK_INT(v.action, POLICY_REFUSE);
        CHECK_INT(v.code, 554);
        CHECK_STREQ(v.dsn, "5.7.1");
        CHECK_STREQ(v.text, "<a@b>: Sender address rejected: Access denied");
        CHECK_INT(policy_parse_action("reject  go  away", "a@b", "Sender address", &v), 0);
        CHECK_STREQ(v.text, "<a@b>: Sender address rejected: go  away");
        CHECK_INT(policy_parse_action("DEFER", "h", "Helo command", &v), 0);
        CHECK_INT(v.code, 450);
        CHECK_STREQ(v.dsn, "4.7.1");
        CHECK_INT(policy_parse_action("550 5.7.2 no", "r", "Recipient address", &v), 0);
        CHECK_INT(v.code, 550);
        CHECK_STREQ(v.dsn, "5.7.2");
        CHECK_STREQ(v.text, "<r>: Recipient address rejected: no");
        CHECK_INT(policy_parse_action("421 busy", "r", "Recipient address", &v), 0);
        CHECK_STREQ(v.dsn, "4.7.1");
        CHECK_STREQ(v.text, "<r>: Recipient address rejected: busy");
        CHECK_INT(policy_parse_action("553 5.123.456", "r", "Recipient address", &v), 0);
        CHECK_STREQ(v.dsn, "5.123.456");
        CHECK_STREQ(v.text, "<r>: Recipient address rejected: Access denied");
        /* Refused values: unknown words, wrong classes, 2xx/3xx, controls, "OK text". */
        CHECK_INT(policy_parse_action("FOOBAR", "x", "y", &v), -EINVAL);
        CHECK_INT(policy_parse_action("", "x", "y", &v), -EINVAL);
        CHECK_INT(policy_parse_action("250 ok", "x", "y", &v), -EINVAL);
        CHECK_INT(policy_parse_action("550 4.7.1 wrong class", "x", "y", &v), -EINVAL);
        CHECK_INT(policy_parse_action("5500 x", "x", "y", &v), -EINVAL);
        CHECK_INT(policy_parse_action("REJECT a\rb", "x", "y", &v), -EINVAL);
        CHECK_INT(policy_parse_action("OK then", "x", "y", &v), -EINVAL);
}

static void test_client_keys(void) {
        char k[40][64];

        CHECK_INT(policy_client_keys("192.0.2.1", k, 40), 4);
        CHECK_STREQ(k[0], "192.0.2.1");
        CHECK_STREQ(k[1], "192.0.2");
        CHECK_STREQ(k[2], "192.0");
        CHECK_STREQ(k[3], "192");
        CHECK_INT(policy_client_keys("2001:db8:1:2:3:4:5:6", k, 40), 8);
        CHECK_STREQ(k[1], "2001:db8:1:2:3:4:5");
        CHECK_STREQ(k[7], "2001");
        CHECK_INT(policy_client_keys("2001:db8::1", k, 40), 3);
        CHECK_STREQ(k[1], "2001:db8");
        CHECK_STREQ(k[2], "2001");
        CHECK_INT(policy_client_keys("::1", k, 40), 1);
        CHECK_INT(policy_client_keys("192.0.2.1", k, 2), 2);
        CHECK_INT(policy_client_keys("", k, 40), 0);
}

static void test_reverse(void) {
        char b[80];

        CHECK_INT(rbl_reverse("192.0.2.99", b, sizeof(b)), 10);
        CHECK_STREQ(b, "99.2.0.192");
        CHECK_INT(rbl_reverse("2001:db8::567:89ab", b, sizeof(b)), 63);
        CHECK_STREQ(b, "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2");
        CHECK_INT(rbl_reverse("local", b, sizeof(b)), -EAFNOSUPPORT);
        CHECK_INT(rbl_reverse("192.0.2.1", b, 5), -ENOBUFS);
}

static void test_query_and_answer(void) {
        static const uint8_t answer[] = {
                0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0,
                1, '2', 1, '0', 1, '0', 3, '1', '2', '7', 2, 'b', 'l', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1,
                /* A 127.0.0.2, name compressed to the question */
                0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 2,
                /* TXT "hi\x01" */
                0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0, 4, 3, 'h', 'i', 1,
        };
        uint8_t q[512], bad[sizeof(answer)];
        RblAnswer a;
        int l;

        l = rbl_build_query(0x1234, "2.0.0.127.bl.test", 1, q, sizeof(q));
        CHECK_INT(l, 12 + 19 + 4);
        CHECK(q[0] == 0x12 && q[1] == 0x34 && q[2] == 1 && q[5] == 1);
        CHECK(memcmp(q + 12, answer + 12, 19 + 4) == 0);
        CHECK_INT(rbl_build_query(1, "a..b", 1, q, sizeof(q)), -EINVAL);
        CHECK_INT(rbl_build_query(1, "a.b", 1, q, 10), -ENOBUFS);

        CHECK_INT(rbl_parse_answer(answer, sizeof(answer), &a), 0);
        CHECK_INT(a.id, 0x1234);
        CHECK_INT(a.rcode, 0);
        CHECK(a.have_a && a.a[0] == 127 && a.a[3] == 2);
        CHECK_STREQ(a.txt, "hi?");
        /* Every truncation is refused or parsed without reading past the end. */
        for (size_t n = 0; n < sizeof(answer); n++)
                (void) rbl_parse_answer(answer, n, &a);
        CHECK_INT(rbl_parse_answer(answer, 40, &a), -EBADMSG);
        /* A query (QR clear) is not an answer; a pointer loop is refused. */
        memcpy(bad, answer, sizeof(bad));
        bad[2] = 0x01;
        CHECK_INT(rbl_parse_answer(bad, sizeof(bad), &a), -EBADMSG);
        memcpy(bad, answer, sizeof(bad));
        bad[7] = 200; /* more answers than there are */
        CHECK_INT(rbl_parse_answer(bad, sizeof(bad), &a), -EBADMSG);
}

static void test_resolver(void) {
        struct sockaddr_storage ss;
        socklen_t l;

        CHECK_INT(rbl_parse_resolver("127.0.0.1:5353", &ss, &l), 0);
        CHECK_INT(ss.ss_family, AF_INET);
        CHECK_INT(ntohs(((struct sockaddr_in *) &ss)->sin_port), 5353);
        CHECK_INT(rbl_parse_resolver("127.0.0.1", &ss, &l), 0);
        CHECK_INT(ntohs(((struct sockaddr_in *) &ss)->sin_port), 53);
        CHECK_INT(rbl_parse_resolver("::1", &ss, &l), 0);
        CHECK_INT(ss.ss_family, AF_INET6);
        CHECK_INT(rbl_parse_resolver("[::1]:54", &ss, &l), 0);
        CHECK_INT(ntohs(((struct sockaddr_in6 *) &ss)->sin6_port), 54);
        CHECK_INT(rbl_parse_resolver("127.0.0.1:0", &ss, &l), -EINVAL);
        CHECK_INT(rbl_parse_resolver("127.0.0.1:70000", &ss, &l), -EINVAL);
        CHECK_INT(rbl_parse_resolver("127.0.0.1:x", &ss, &l), -EINVAL);
        CHECK_INT(rbl_parse_resolver("resolver.example", &ss, &l), -EINVAL);
        CHECK_INT(rbl_parse_resolver("", &ss, &l), -EINVAL);
}

int main(void) {
        test_actions();
        test_client_keys();
        test_reverse();
        test_query_and_answer();
        test_resolver();
        return tap_finish("test-smtp-policy");
}
