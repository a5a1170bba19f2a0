/* Tests the relay_host syntax of deliverd's SMTP client: "[host]:port" skips
 * the MX lookup, "host:port" and "host" do not, the port defaults to 25, and
 * anything that could smuggle a second value is refused. */
#include "smtp.h"
#include "tap.h"

static void check_ok(const char *s, const char *host, unsigned port, bool use_mx) {
        char h[256] = "unset";
        uint16_t p = 0;
        bool m = !use_mx;

        CHECK_INT(smtp_parse_relay(s, h, sizeof(h), &p, &m), 0);
        CHECK_STREQ(h, host);
        CHECK_INT(p, port);
        CHECK_INT(m, use_mx);
}

static void check_bad(const char *s) {
        char h[256];
        uint16_t p = 7;
        bool m = false;

        CHECK_INT(smtp_parse_relay(s, h, sizeof(h), &p, &m), -EINVAL);
        CHECK_INT(p, 7);
}

int main(void) {
        check_ok("[127.0.0.1]:2525", "127.0.0.1", 2525, false);
        check_ok("[relay.example.org]", "relay.example.org", 25, false);
        check_ok("[::1]:587", "::1", 587, false);
        check_ok("[IPv6:2001:db8::1]:25", "2001:db8::1", 25, false);
        check_ok("example.org", "example.org", 25, true);
        check_ok("example.org:26", "example.org", 26, true);
        check_ok("smtp.example.org:65535", "smtp.example.org", 65535, true);

        check_bad("");
        check_bad("[]");
        check_bad("[127.0.0.1");
        check_bad("[127.0.0.1]x");
        check_bad("[127.0.0.1]:");
        check_bad("example.org:0");
        check_bad("example.org:65536");
        check_bad("example.org:25x");
        check_bad("example.org:-25");
        check_bad("example.org:+25");
        check_bad(":25");
        check_bad("::1");
        check_bad("2001:db8::1:25");
        check_bad("relay example.org");
        check_bad("relay\r\nRCPT TO:<x>");
        {
                char h[4];
                uint16_t p;
                bool m;
                CHECK_INT(smtp_parse_relay("long.example", h, sizeof(h), &p, &m), -EINVAL);
        }
        return tap_finish("test-smtp");
}
