/* Routing decisions of common/route.c: transport table syntax, the order of
 * the decisions, virtual alias expansion (recursion, self-reference, loops,
 * extensions), RCPT validation and destination keys, with real tables built
 * by table_build in a temporary directory. */
#include <ftw.h>
#include <stdio.h>

#include "config.h"
#include "route.h"
#include "table.h"
#include "tap.h"

static char dir[] = "/tmp/test-route-XXXXXX";

static void write_table(const char *name, const char *text, TableFormat format) {
        char path[256];
        FILE *f;

        (void) snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "we");
        CHECK(f != NULL);
        if (!f)
                return;
        fputs(text, f);
        fclose(f);
        CHECK(table_build(path, format, stderr) >= 0);
}

static void check_parse(const char *value, int ret, RouteTransport t, const char *nexthop,
                        unsigned port, bool mx) {
        Route r = { .domain = "example.org" };

        CHECK_INT(route_parse_transport(value, &r), ret);
        if (ret < 0)
                return;
        CHECK_INT(r.transport, t);
        CHECK_STREQ(r.nexthop, nexthop);
        CHECK_INT(r.port, port);
        CHECK_INT(r.mx, mx);
}

static void test_parse_transport(void) {
        check_parse("smtp:[127.0.0.1]:2525", 0, ROUTE_SMTP, "127.0.0.1", 2525, false);
        check_parse("smtp:[mail.example]", 0, ROUTE_SMTP, "mail.example", 0, false);
        check_parse("smtp:mail.example:587", 0, ROUTE_SMTP, "mail.example", 587, true);
        check_parse("smtp:", 0, ROUTE_SMTP, "example.org", 0, true);
        check_parse("smtp", 0, ROUTE_SMTP, "example.org", 0, true);
        check_parse("lmtp:unix:/run/dovecot/lmtp", 0, ROUTE_LMTP, "/run/dovecot/lmtp", 0, false);
        check_parse("lmtp:[127.0.0.1]:24", 0, ROUTE_LMTP, "127.0.0.1", 24, false);
        check_parse("lmtp:inet:host:2424", 0, ROUTE_LMTP, "host", 2424, false);
        check_parse("local", 0, ROUTE_LOCAL, "", 0, false);
        check_parse("virtual", 0, ROUTE_VIRTUAL, "", 0, false);
        check_parse("discard", 0, ROUTE_DISCARD, "discarded", 0, false);
        check_parse("error:5.7.1 no mail here", 0, ROUTE_ERROR, "no mail here", 0, false);
        check_parse("error:gone", 0, ROUTE_ERROR, "gone", 0, false);
        check_parse("smtp:[127.0.0.1]:0", -EINVAL, 0, NULL, 0, false);
        check_parse("smtp:[127.0.0.1]:99999", -EINVAL, 0, NULL, 0, false);
        check_parse("smtp:[]", -EINVAL, 0, NULL, 0, false);
        check_parse("smtp:[host]x", -EINVAL, 0, NULL, 0, false);
        check_parse("lmtp:unix:relative", -EINVAL, 0, NULL, 0, false);
        check_parse("lmtp:", -EINVAL, 0, NULL, 0, false);
        check_parse("uucp:x", -EINVAL, 0, NULL, 0, false);
        check_parse("local:x", -EINVAL, 0, NULL, 0, false);

        Route r = {};
        CHECK_INT(route_parse_transport("error:4.2.0 later", &r), 0);
        CHECK_STREQ(r.dsn, "4.2.0");
        CHECK_INT(route_parse_transport("error", &r), 0);
        CHECK_STREQ(r.dsn, "5.0.0");
}

static void test_split(void) {
        char u[64], e[64];

        CHECK_INT(route_split_local("Alice+Tag", "+", u, sizeof(u), e, sizeof(e)), 0);
        CHECK_STREQ(u, "alice");
        CHECK_STREQ(e, "Tag");
        CHECK_INT(route_split_local("a-b+c", "+-", u, sizeof(u), e, sizeof(e)), 0);
        CHECK_STREQ(u, "a");
        CHECK_STREQ(e, "b+c");
        CHECK_INT(route_split_local("+list", "+", u, sizeof(u), e, sizeof(e)), 0);
        CHECK_STREQ(u, "+list");
        CHECK_STREQ(e, "");
        CHECK_INT(route_split_local("bob+", "+", u, sizeof(u), e, sizeof(e)), 0);
        CHECK_STREQ(u, "bob");
        CHECK_STREQ(e, "");
        CHECK_INT(route_split_local("bob+x", "", u, sizeof(u), e, sizeof(e)), 0);
        CHECK_STREQ(u, "bob+x");
        CHECK_INT(route_split_local("abcdef", NULL, u, 4, e, sizeof(e)), -ENOBUFS);
}

static void expect_route(Router *rt, const char *addr, RouteTransport t, const char *nexthop,
                         const char *key) {
        Route r;
        char k[600];

        CHECK_INT(route_resolve(rt, addr, &r), 0);
        CHECK_INT(r.transport, t);
        if (nexthop)
                CHECK_STREQ(r.nexthop, nexthop);
        CHECK(route_destination_key(&r, k, sizeof(k)) > 0);
        CHECK_STREQ(k, key);
}

static void expect_expand(Router *rt, const char *addr, int ret, const char *joined) {
        _cleanup_strv_free_ char **l = NULL;
        char buf[1024] = "";
        size_t n = 0;

        CHECK_INT(route_expand(rt, addr, &l), ret);
        if (ret < 0)
                return;
        for (char **p = l; p && *p; p++)
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? " " : "", *p);
        CHECK_STREQ(buf, joined);
}

static void expect_recipient(Router *rt, const char *addr, int ret, unsigned code, const char *dsn) {
        _cleanup_strv_free_ char **l = NULL;
        RouteReject rj = {};

        CHECK_INT(route_recipient(rt, addr, false, &l, &rj), ret);
        if (ret == 1) {
                CHECK_INT(rj.code, code);
                CHECK_STREQ(rj.dsn, dsn);
        }
}

static void test_router(void) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_(router_freep) Router *rt = NULL;
        char path[5][256];
        char base[300];

        CHECK_INT(config_new_default(&c), 0);
        if (!c)
                return;
        for (size_t i = 0; i < 5; i++)
                (void) snprintf(path[i], sizeof(path[i]), "%s/%s", dir,
                                (const char *[]) { "transport", "valias", "vmbox", "aliases", "x" }[i]);
        strv_free(c->local_domains);
        c->local_domains = calloc(3, sizeof(char *));
        c->local_domains[0] = strdup("test.example");
        c->local_domains[1] = strdup("localhost");
        free(c->transport_table), c->transport_table = strdup(path[0]);
        free(c->virtual_alias_map), c->virtual_alias_map = strdup(path[1]);
        free(c->virtual_mailbox_map), c->virtual_mailbox_map = strdup(path[2]);
        free(c->alias_file), c->alias_file = strdup(path[3]);
        (void) snprintf(base, sizeof(base), "%s/vhosts", dir);
        free(c->virtual_mailbox_base), c->virtual_mailbox_base = strdup(base);
        strv_free(c->virtual_alias_domains);
        c->virtual_alias_domains = calloc(2, sizeof(char *));
        c->virtual_alias_domains[0] = strdup("alias.example");
        strv_free(c->virtual_mailbox_domains);
        c->virtual_mailbox_domains = calloc(2, sizeof(char *));
        c->virtual_mailbox_domains[0] = strdup("vbox.example");
        free(c->recipient_delimiter), c->recipient_delimiter = strdup("+");

        CHECK_INT(router_new(c, &rt), 0);
        /* No table compiled yet: empty tables. */
        expect_route(rt, "u@elsewhere.example", ROUTE_SMTP, "elsewhere.example", "smtp:elsewhere.example");
        expect_route(rt, "root", ROUTE_LOCAL, NULL, "local");

        write_table("transport",
                    "lmtp.example lmtp:unix:/run/lmtp\n"
                    "bad.example error:5.7.1 go away\n"
                    "null.example discard\n"
                    "relay.example smtp:[127.0.0.1]:2525\n"
                    "special@test.example smtp:[192.0.2.1]\n"
                    "vbox2.example virtual\n"
                    "broken.example nonsense\n", TABLE_MAP);
        write_table("valias",
                    "info@alias.example root@test.example, bob@remote.example\n"
                    "list@alias.example info@alias.example carol@remote.example\n"
                    "loop1@alias.example loop2@alias.example\n"
                    "loop2@alias.example loop1@alias.example\n"
                    "keep@test.example keep@test.example, copy@remote.example\n"
                    "ext@alias.example dest@remote.example\n"
                    "@catch.example @remote.example\n", TABLE_MAP);
        write_table("vmbox", "alice@vbox.example vbox.example/alice/\n"
                             "evil@vbox.example ../../etc/\n"
                             "bob@vbox2.example vbox2/bob\n", TABLE_MAP);
        write_table("aliases", "staff: root\n", TABLE_ALIASES);

        expect_route(rt, "u@sub.lmtp.example", ROUTE_LMTP, "/run/lmtp", "lmtp:unix:/run/lmtp");
        expect_route(rt, "u@bad.example", ROUTE_ERROR, "go away", "error");
        expect_route(rt, "u@null.example", ROUTE_DISCARD, NULL, "discard");
        expect_route(rt, "u@relay.example", ROUTE_SMTP, "127.0.0.1", "smtp:[127.0.0.1]:2525");
        expect_route(rt, "special@test.example", ROUTE_SMTP, "192.0.2.1", "smtp:[192.0.2.1]:25");
        expect_route(rt, "other@test.example", ROUTE_LOCAL, NULL, "local");
        expect_route(rt, "u@broken.example", ROUTE_ERROR, NULL, "error");
        expect_route(rt, "u@alias.example", ROUTE_ERROR, "User unknown in virtual alias table", "error");
        (void) snprintf(base, sizeof(base), "%s/vhosts/vbox.example/alice/", dir);
        expect_route(rt, "Alice@VBOX.example", ROUTE_VIRTUAL, base, "virtual");
        expect_route(rt, "alice+x@vbox.example", ROUTE_VIRTUAL, base, "virtual");
        expect_route(rt, "evil@vbox.example", ROUTE_ERROR, NULL, "error");
        expect_route(rt, "nobody@vbox.example", ROUTE_ERROR, "User unknown in virtual mailbox table", "error");
        (void) snprintf(base, sizeof(base), "%s/vhosts/vbox2/bob", dir);
        expect_route(rt, "bob@vbox2.example", ROUTE_VIRTUAL, base, "virtual");

        Route r;
        CHECK_INT(route_resolve(rt, "Root+Tag@test.example", &r), 0);
        CHECK_STREQ(r.user, "root");
        CHECK_STREQ(r.extension, "Tag");
        CHECK_STREQ(r.domain, "test.example");
        CHECK_INT(route_resolve(rt, "not an address", &r), -EINVAL);

        expect_route(rt, "u@[192.0.2.7]", ROUTE_SMTP, "192.0.2.7", "smtp:[192.0.2.7]:25");
        expect_route(rt, "u@[IPv6:2001:db8::1]", ROUTE_SMTP, "2001:db8::1", "smtp:[2001:db8::1]:25");

        free(c->relay_host), c->relay_host = strdup("[smart.example]:587");
        expect_route(rt, "u@elsewhere.example", ROUTE_SMTP, "smart.example", "smtp:[smart.example]:587");
        expect_route(rt, "u@relay.example", ROUTE_SMTP, "127.0.0.1", "smtp:[127.0.0.1]:2525");
        free(c->relay_host), c->relay_host = strdup("smart.example");
        expect_route(rt, "u@elsewhere.example", ROUTE_SMTP, "smart.example", "smtp:smart.example");

        expect_expand(rt, "nothing@remote.example", 0, "nothing@remote.example");
        expect_expand(rt, "info@alias.example", 0, "root@test.example bob@remote.example");
        expect_expand(rt, "list@alias.example", 0,
                      "root@test.example bob@remote.example carol@remote.example");
        expect_expand(rt, "loop1@alias.example", -ELOOP, NULL);
        expect_expand(rt, "keep@test.example", 0, "keep@test.example copy@remote.example");
        expect_expand(rt, "ext+tag@alias.example", 0, "dest+tag@remote.example");
        expect_expand(rt, "Who@catch.example", 0, "Who@remote.example");

        expect_recipient(rt, "root@test.example", 0, 0, NULL);
        expect_recipient(rt, "staff@test.example", 0, 0, NULL);
        expect_recipient(rt, "staff+x@test.example", 0, 0, NULL);
        expect_recipient(rt, "postmaster", 0, 0, NULL);
        expect_recipient(rt, "no-such-user-xyz@test.example", 1, 550, "5.1.1");
        expect_recipient(rt, "info@alias.example", 0, 0, NULL);
        expect_recipient(rt, "zz@alias.example", 1, 550, "5.1.1");
        expect_recipient(rt, "loop2@alias.example", 1, 550, "5.4.6");
        expect_recipient(rt, "nobody@vbox.example", 1, 550, "5.1.1");
        expect_recipient(rt, "alice@vbox.example", 0, 0, NULL);
        expect_recipient(rt, "a b@x", 1, 501, "5.1.3");
        expect_recipient(rt, "anyone@remote.example", 0, 0, NULL);

        CHECK(route_domain_is_ours(c, "test.example"));
        CHECK(route_domain_is_ours(c, "VBOX.example"));
        CHECK(route_domain_is_ours(c, "alias.example"));
        CHECK(!route_domain_is_ours(c, "relay.example"));   /* a transport entry is not enough */
        CHECK(!route_domain_is_ours(c, ""));

        /* A rebuilt table is seen at the next lookup. */
        write_table("transport", "elsewhere.example discard\n", TABLE_MAP);
        expect_route(rt, "u@elsewhere.example", ROUTE_DISCARD, NULL, "discard");
        expect_route(rt, "u@null.example", ROUTE_SMTP, "smart.example", "smtp:smart.example");
}

static int rm(const char *p, const struct stat *st, int flag, struct FTW *f) {
        (void) st, (void) flag, (void) f;
        return remove(p);
}

int main(void) {
        if (!mkdtemp(dir))
                return 1;
        test_parse_transport();
        test_split();
        test_router();
        (void) nftw(dir, rm, 16, FTW_DEPTH | FTW_PHYS);
        return tap_failures ? 1 : 0;
}
