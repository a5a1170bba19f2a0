/* deliverd/alias.c's list splitting (aliases, .forward, :include:) and
 * pipe.c's bounce text, both pure. */
#include "alias.h"
#include "pipe.h"
#include "tap.h"

static void check_split(const char *value, int ret, const char *joined) {
        _cleanup_strv_free_ char **l = NULL;
        char buf[512] = "";
        size_t n = 0;

        CHECK_INT(alias_split(value, &l), ret);
        if (ret < 0)
                return;
        for (char **p = l; *p; p++)
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "%s[%s]", n ? " " : "", *p);
        CHECK_STREQ(buf, joined);
}

int main(void) {
        char buf[128];

        check_split("alice", 0, "[alice]");
        check_split(" alice ,bob,, carol@example.org ", 0, "[alice] [bob] [carol@example.org]");
        check_split("a\nb\r\n,c", 0, "[a] [b] [c]");
        check_split("\"|/usr/bin/cmd -a, -b\", /var/log/x", 0, "[|/usr/bin/cmd -a, -b] [/var/log/x]");
        check_split("|cmd with spaces", 0, "[|cmd with spaces]");
        check_split(":include:/etc/list", 0, "[:include:/etc/list]");
        check_split("\\\\alice, x", 0, "[\\\\alice] [x]");
        check_split("", 0, "");
        check_split(" , ,", 0, "");
        check_split("\"unterminated", -EINVAL, NULL);

        pipe_format_output(buf, sizeof(buf), 1, "", 0);
        CHECK_STREQ(buf, "Command died with status 1");
        pipe_format_output(buf, sizeof(buf), 67, "no such user\n", 13);
        CHECK_STREQ(buf, "Command died with status 67: no such user");
        pipe_format_output(buf, sizeof(buf), 2, "a\tb\x1b[1m\n", 8);
        CHECK_STREQ(buf, "Command died with status 2: a b [1m");
        pipe_format_output(buf, 30, 2, "0123456789012345678901234567890", 31);
        CHECK_STREQ(buf, "Command died with status 2: 0");
        return tap_failures ? 1 : 0;
}
