/* Unit test of cli/message.c: reading stdin within the size limit and the
 * single-dot rule, and the header fields sendmail adds. */

#include <fcntl.h>
#include <stdlib.h>

#include "message.h"
#include "tap.h"

static int read_string(const char *in, uint64_t limit, bool ignore_dots, char **ret, size_t *ret_len) {
        int p[2], r;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        CHECK_INT(write(p[1], in, strlen(in)), strlen(in));
        close(p[1]);
        r = message_read(p[0], limit, ignore_dots, ret, ret_len);
        close(p[0]);
        return r;
}

static void check_read(const char *in, bool ignore_dots, const char *want) {
        char *m = NULL;
        size_t n = 0;

        CHECK_INT(read_string(in, 0, ignore_dots, &m, &n), 0);
        CHECK_INT(n, strlen(want));
        if (m && n == strlen(want))
                CHECK(memcmp(m, want, n) == 0);
        free(m);
}

static void test_read(void) {
        char *m = NULL;
        size_t n;

        check_read("a\n.\nb\n", false, "a\n");
        check_read("a\r\n.\r\nb\r\n", false, "a\r\n");
        check_read("a\n.", false, "a\n");
        check_read("a\n..\nb\n", false, "a\n..\nb\n");
        check_read("a\n.\nb\n", true, "a\n.\nb\n");
        check_read("", false, "");

        CHECK_INT(read_string("0123456789", 10, true, &m, &n), 0);
        free(m);
        m = NULL;
        CHECK_INT(read_string("0123456789A", 10, true, &m, &n), -EFBIG);
        CHECK(m == NULL);
        /* The dot ends the message before the limit is reached. */
        CHECK_INT(read_string("0123\n.\n456789ABCDEF", 10, false, &m, &n), 0);
        CHECK_INT(n, 5);
        free(m);
}

static void test_added_fields(void) {
        HeaderScan none = {}, all = { .has_date = true, .has_from = true, .has_message_id = true };
        MessageOrigin o = {
                .full_name = "Jo \"JS\"\nSmith",
                .address = "jo@host.example",
                .queue_id = "0123456789ABC",
                .hostname = "host.example",
                .now = 1606114680,
        };
        char *s = NULL;

        setenv("TZ", "UTC", 1);
        tzset();
        CHECK_INT(message_added_fields(&none, &o, &s), 0);
        CHECK_STREQ(s, "From: \"Jo \\\"JS\\\" Smith\" <jo@host.example>\n"
                       "Date: Mon, 23 Nov 2020 06:58:00 +0000\n"
                       "Message-ID: <0123456789ABC@host.example>\n");
        free(s);

        o.full_name = "Jo Smith";
        HeaderScan date_only = { .has_from = true, .has_message_id = true };
        CHECK_INT(message_added_fields(&date_only, &o, &s), 0);
        CHECK_STREQ(s, "Date: Mon, 23 Nov 2020 06:58:00 +0000\n");
        free(s);

        HeaderScan from_only = { .has_date = true, .has_message_id = true };
        CHECK_INT(message_added_fields(&from_only, &o, &s), 0);
        CHECK_STREQ(s, "From: Jo Smith <jo@host.example>\n");
        free(s);
        o.full_name = "";
        CHECK_INT(message_added_fields(&from_only, &o, &s), 0);
        CHECK_STREQ(s, "From: jo@host.example\n");
        free(s);

        CHECK_INT(message_added_fields(&all, &o, &s), 0);
        CHECK_STREQ(s, "");
        free(s);
}

int main(void) {
        test_read();
        test_added_fields();
        return tap_finish("test-message");
}
