/* The pure parts of delivery status notifications and loop detection:
 * NOTIFY parsing, xtext decoding, the header section's length, the report's
 * text (golden fragments) and the Received: counter under every chunking. */
#include <stdint.h>
#include <stdio.h>

#include "dsn.h"
#include "loop.h"
#include "tap.h"

static void test_notify(void) {
        CHECK_INT(dsn_notify_parse(NULL), DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY);
        CHECK_INT(dsn_notify_parse(""), DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY);
        CHECK_INT(dsn_notify_parse("NEVER"), 0);
        CHECK_INT(dsn_notify_parse("never"), 0);
        CHECK_INT(dsn_notify_parse("SUCCESS"), DSN_NOTIFY_SUCCESS);
        CHECK_INT(dsn_notify_parse("SUCCESS,FAILURE,DELAY"),
                  DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY);
        CHECK_INT(dsn_notify_parse("delay"), DSN_NOTIFY_DELAY);
        /* Unreadable: the sender still hears of failures. */
        CHECK_INT(dsn_notify_parse("SUCCESS,BOGUS"), DSN_NOTIFY_FAILURE);
}

static void test_xtext(void) {
        char buf[32];

        CHECK_STREQ(dsn_xtext_decode("a+2Bb@c", buf, sizeof(buf)), "a+b@c");
        CHECK_STREQ(dsn_xtext_decode("plain", buf, sizeof(buf)), "plain");
        /* Malformed escapes stay as written; no control characters come out. */
        CHECK_STREQ(dsn_xtext_decode("x+zz", buf, sizeof(buf)), "x+zz");
        CHECK_STREQ(dsn_xtext_decode("x+2", buf, sizeof(buf)), "x+2");
        CHECK_STREQ(dsn_xtext_decode("a+0D+0Ab", buf, sizeof(buf)), "a??b");
        /* Truncated to the buffer. */
        CHECK_STREQ(dsn_xtext_decode("abcdefgh", buf, 4), "abc");
}

static void test_headers_len(void) {
        const uint8_t crlf[] = "A: 1\r\nB: 2\r\n\r\nbody\r\n";
        const uint8_t lf[] = "A: 1\n\nbody\n";
        const uint8_t none[] = "A: 1\r\nB: 2";

        CHECK_INT(dsn_headers_len(crlf, sizeof(crlf) - 1, 1000), 14);
        CHECK_INT(dsn_headers_len(lf, sizeof(lf) - 1, 1000), 6);
        /* No empty line: up to the last complete line. */
        CHECK_INT(dsn_headers_len(none, sizeof(none) - 1, 1000), 6);
        /* The bound cuts at a line end. */
        CHECK_INT(dsn_headers_len(crlf, sizeof(crlf) - 1, 8), 6);
}

static void test_report(void) {
        static const uint8_t body[] = "Subject: hi\r\n\r\nsecret\r\n";
        DsnRcpt rcpts[] = {
                {
                        .addr = "bob@remote.example",
                        .orcpt = "rfc822;Bob+2Bx@remote.example",
                        .action = DSN_ACTION_FAILED,
                        .status = "5.1.1",
                        .relay = "mx.remote.example[192.0.2.1]:25",
                        .text = "mx.remote.example[192.0.2.1] said: 550 5.1.1 no such user (in reply to RCPT TO command)",
                        .when_usec = 1000000,
                },
                {
                        .addr = "carol@test.example",
                        .action = DSN_ACTION_FAILED,
                        .relay = "local",
                        .text = "mailbox full",
                },
        };
        DsnReport r = {
                .kind = DSN_KIND_FAILURE,
                .hostname = "mx.test.example",
                .queue_id = "ORIGINAL00001",
                .report_id = "REPORT0000001",
                .sender = "alice@client.example",
                .to = "alice@client.example",
                .envid = "id+3D7",
                .arrival_usec = 1000000,
                .now_usec = 2000000,
                .rcpts = rcpts,
                .n_rcpts = 2,
                .body = body,
                .body_len = sizeof(body) - 1,
                .full = false,
        };
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        CHECK(f);
        if (!f)
                return;
        CHECK_INT(dsn_report_write(f, &r), 0);
        fclose(f);
        CHECK(strstr(text, "From: MAILER-DAEMON@mx.test.example (Mail Delivery System)\r\n"));
        CHECK(strstr(text, "To: <alice@client.example>\r\nSubject: Undelivered Mail Returned to Sender\r\n"));
        CHECK(strstr(text, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                           "\tboundary=\"REPORT0000001/ORIGINAL00001=_tern\"\r\n"));
        CHECK(strstr(text, "Reporting-MTA: dns; mx.test.example\r\n"));
        CHECK(strstr(text, "Original-Envelope-Id: id=7\r\n"));
        CHECK(strstr(text, "\r\n\r\nOriginal-Recipient: rfc822; Bob+x@remote.example\r\n"
                           "Final-Recipient: rfc822; bob@remote.example\r\n"
                           "Action: failed\r\nStatus: 5.1.1\r\n"
                           "Remote-MTA: dns; mx.remote.example\r\n"
                           "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"));
        /* No recorded status: derived from the action; a local relay is no MTA. */
        CHECK(strstr(text, "Final-Recipient: rfc822; carol@test.example\r\nAction: failed\r\n"
                           "Status: 5.0.0\r\nDiagnostic-Code: X-Tern; mailbox full\r\n"));
        CHECK(strstr(text, "Content-Type: text/rfc822-headers\r\n\r\nSubject: hi\r\n\r\n\r\n"
                           "--REPORT0000001/ORIGINAL00001=_tern--\r\n"));
        CHECK(!strstr(text, "secret"));
        free(text);

        /* RET=FULL: the whole message, within DSN_FULL_MAX. */
        r.full = true;
        text = NULL;
        f = open_memstream(&text, &len);
        CHECK_INT(dsn_report_write(f, &r), 0);
        fclose(f);
        CHECK(strstr(text, "Content-Type: message/rfc822\r\n\r\nSubject: hi\r\n\r\nsecret\r\n\r\n--"));
        free(text);
}

static uint64_t count(const char *msg, size_t chunk) {
        LoopScan s = {};
        size_t n = strlen(msg);

        for (size_t i = 0; i < n; i += chunk)
                loop_scan_feed(&s, msg + i, n - i < chunk ? n - i : chunk);
        return s.received;
}

static void test_loop_scan(void) {
        const char *msg = "Received: from a\r\n\tby b\r\nreceived:x\r\nRECEIVED: y\r\n"
                          "X-Received: no\r\nReceived : no (not a field name)\r\nReceive: no\r\n"
                          "Subject: Received: no\r\n\r\nReceived: in the body\r\n";

        for (size_t chunk = 1; chunk <= strlen(msg); chunk++)
                CHECK_INT(count(msg, chunk), 3);
        CHECK_INT(count("Received: a\n\nReceived: b\n", 5), 1);
        CHECK_INT(count("", 1), 0);
        /* A message that is only header fields. */
        CHECK_INT(count("Received: a\r\nReceived: b", 3), 2);
}

int main(void) {
        test_notify();
        test_xtext();
        test_headers_len();
        test_report();
        test_loop_scan();
        return tap_finish("test-queued-dsn");
}
