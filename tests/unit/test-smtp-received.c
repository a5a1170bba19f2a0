/* Unit test of smtpd's Received: header (smtpd/received.c): the exact lines
 * with one recipient ("for <...>") and with several (none named), the RFC 5322
 * date, and a buffer that is too small. */
#include <stdlib.h>

#include "received.h"
#include "tap.h"

int main(void) {
        ReceivedInfo info = {
                .helo = "client.test", .client_name = "unknown", .client_addr = "192.0.2.1",
                .hostname = "mx.test.example", .proto = "ESMTP", .queue_id = "ABC123",
                .rcpt = "u@test.example",
        };
        char buf[512], small[40];
        time_t t = 1795418492; /* Mon, 23 Nov 2026 07:21:32 UTC */
        int n;

        (void) setenv("TZ", "UTC", 1);
        tzset();
        n = received_format(&info, t, buf, sizeof(buf));
        CHECK_STREQ(buf, "Received: from client.test (unknown [192.0.2.1])\r\n"
                         "\tby mx.test.example (tern) with ESMTP id ABC123\r\n"
                         "\tfor <u@test.example>; Mon, 23 Nov 2026 07:21:32 +0000\r\n");
        CHECK_INT(n, strlen(buf));

        info.rcpt = NULL;
        info.proto = "SMTP";
        n = received_format(&info, t, buf, sizeof(buf));
        CHECK_STREQ(buf, "Received: from client.test (unknown [192.0.2.1])\r\n"
                         "\tby mx.test.example (tern) with SMTP id ABC123;\r\n"
                         "\tMon, 23 Nov 2026 07:21:32 +0000\r\n");
        CHECK_INT(n, strlen(buf));

        CHECK_INT(received_format(&info, t, small, sizeof(small)), -ENOBUFS);

        (void) setenv("TZ", "CET-1", 1);
        tzset();
        CHECK(received_date(t, buf, sizeof(buf)) > 0);
        CHECK_STREQ(buf, "Mon, 23 Nov 2026 08:21:32 +0100");
        return tap_finish("test-smtp-received");
}
