/* Unit test of common/network.c: CIDR parsing, list parsing with the bad token
 * reported, matching of IPv4, IPv6 and v4-mapped client addresses. */
#include <arpa/inet.h>

#include "network.h"
#include "tap.h"

static struct sockaddr_in sin4(const char *a) {
        struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons(25) };
        if (inet_pton(AF_INET, a, &s.sin_addr) != 1)
                abort();
        return s;
}

static struct sockaddr_in6 sin6(const char *a) {
        struct sockaddr_in6 s = { .sin6_family = AF_INET6, .sin6_port = htons(25) };
        if (inet_pton(AF_INET6, a, &s.sin6_addr) != 1)
                abort();
        return s;
}

static bool match4(const NetList *l, const char *a) {
        struct sockaddr_in s = sin4(a);
        return netlist_match(l, (struct sockaddr *) &s, sizeof(s));
}

static bool match6(const NetList *l, const char *a) {
        struct sockaddr_in6 s = sin6(a);
        return netlist_match(l, (struct sockaddr *) &s, sizeof(s));
}

/* Formats a parsed mask back as "addr/len" for exact comparisons. */
static const char *mask_string(const NetMask *m, char *buf, size_t size) {
        char a[INET6_ADDRSTRLEN];
        if (!inet_ntop(m->family, m->addr, a, sizeof(a)))
                return "(bad)";
        snprintf(buf, size, "%s/%u", a, m->prefixlen);
        return buf;
}

static void test_netmask_parse(void) {
        static const struct {
                const char *in, *out;
        } good[] = {
                { "127.0.0.0/8", "127.0.0.0/8" },
                { "10.1.2.3", "10.1.2.3/32" },
                { "10.1.2.3/16", "10.1.0.0/16" },      /* host bits cleared */
                { "192.168.77.200/27", "192.168.77.192/27" },
                { "0.0.0.0/0", "0.0.0.0/0" },
                { "[::1]/128", "::1/128" },
                { "::1/128", "::1/128" },
                { "[::1]", "::1/128" },
                { "::1", "::1/128" },
                { "[2001:db8::]/32", "2001:db8::/32" },
                { "2001:db8:ffff:1::7/33", "2001:db8:8000::/33" },
                { "::/0", "::/0" },
                { "::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104" },
        };
        static const char *const bad[] = {
                "", "/", "/8", "127.0.0.0/", "127.0.0.0/33", "127.0.0.0/-1", "127.0.0.0/+8",
                "127.0.0.0/08", "127.0.0.0/8/8", "127.0.0.0/ 8", "10.1", "256.0.0.1",
                "010.0.0.1", "[127.0.0.1]", "::1/129", "[::1", "::1]", "[]", "[::1]x/1",
                "example.org", "1.2.3.4 ", "127.0.0.0/99999999999999999999",
                "0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000/1",
        };
        char buf[64];

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                NetMask m;
                CHECK_INT(netmask_parse(good[i].in, &m), 0);
                CHECK_STREQ(mask_string(&m, buf, sizeof(buf)), good[i].out);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                NetMask m = { .family = 99 };
                int r = netmask_parse(bad[i], &m);
                if (r != -EINVAL)
                        fprintf(stderr, "accepted \"%s\"\n", bad[i]);
                CHECK_INT(r, -EINVAL);
                CHECK_INT(m.family, 99); /* untouched on error */
        }
        CHECK_INT(netmask_parse(NULL, &(NetMask) {}), -EINVAL);
}

static void test_netlist_parse(void) {
        NetList l = {};
        const char *bad = (const char *) 1;
        const char *s = "127.0.0.0/8, [::1]/128,10.0.0.0/8\t192.168.0.0/16\n";
        char buf[64];

        CHECK_INT(netlist_parse(s, &l, &bad), 0);
        CHECK(bad == NULL);
        CHECK_INT(l.n, 4);
        CHECK_STREQ(mask_string(&l.items[1], buf, sizeof(buf)), "::1/128");
        CHECK_STREQ(mask_string(&l.items[3], buf, sizeof(buf)), "192.168.0.0/16");

        /* Appends. */
        CHECK_INT(netlist_parse("172.16.0.0/12", &l, NULL), 0);
        CHECK_INT(l.n, 5);

        /* Empty and separator-only input adds nothing. */
        CHECK_INT(netlist_parse("", &l, &bad), 0);
        CHECK_INT(netlist_parse(" , ,\t", &l, &bad), 0);
        CHECK_INT(l.n, 5);

        /* A bad token is reported and the list stays as it was. */
        s = "10.0.0.0/8 10.0.0.0/33 1.2.3.4";
        CHECK_INT(netlist_parse(s, &l, &bad), -EINVAL);
        CHECK(bad == s + 11);
        CHECK_INT(l.n, 5);

        s = "1.2.3.4,,foo";
        CHECK_INT(netlist_parse(s, &l, &bad), -EINVAL);
        CHECK(bad == s + 9);
        CHECK_INT(l.n, 5);

        /* A token too long to be an address. */
        char longtok[200];
        memset(longtok, '1', sizeof(longtok) - 1);
        longtok[sizeof(longtok) - 1] = 0;
        CHECK_INT(netlist_parse(longtok, &l, &bad), -EINVAL);
        CHECK(bad == longtok);

        netlist_done(&l);
        CHECK(l.items == NULL && l.n == 0);
        netlist_done(&l); /* twice is fine */
}

static void test_netlist_match(void) {
        NetList l = {};

        CHECK_INT(netlist_parse("127.0.0.0/8 192.0.2.0/25 [::1]/128 2001:db8:1::/48", &l, NULL), 0);

        CHECK(match4(&l, "127.0.0.1"));
        CHECK(match4(&l, "127.255.255.255"));
        CHECK(!match4(&l, "128.0.0.1"));
        CHECK(match4(&l, "192.0.2.0"));
        CHECK(match4(&l, "192.0.2.127"));
        CHECK(!match4(&l, "192.0.2.128"));
        CHECK(!match4(&l, "10.0.0.1"));

        CHECK(match6(&l, "::1"));
        CHECK(!match6(&l, "::2"));
        CHECK(match6(&l, "2001:db8:1::25"));
        CHECK(match6(&l, "2001:db8:1:ffff:ffff:ffff:ffff:ffff"));
        CHECK(!match6(&l, "2001:db8:2::1"));

        /* v4-mapped addresses match IPv4 networks. */
        CHECK(match6(&l, "::ffff:127.0.0.1"));
        CHECK(match6(&l, "::ffff:192.0.2.5"));
        CHECK(!match6(&l, "::ffff:192.0.2.200"));
        CHECK(!match6(&l, "::ffff:10.0.0.1"));
        /* ... but an IPv4-compatible or NAT64 address is not IPv4. */
        CHECK(!match6(&l, "::127.0.0.1"));
        CHECK(!match6(&l, "64:ff9b::127.0.0.1"));

        /* Too short a length, another family, NULL: no match. */
        struct sockaddr_in s = sin4("127.0.0.1");
        CHECK(!netlist_match(&l, (struct sockaddr *) &s, sizeof(s) - 1));
        struct sockaddr_in6 s6 = sin6("::1");
        CHECK(!netlist_match(&l, (struct sockaddr *) &s6, sizeof(struct sockaddr_in)));
        struct sockaddr un = { .sa_family = AF_UNIX };
        CHECK(!netlist_match(&l, &un, sizeof(un)));
        CHECK(!netlist_match(NULL, (struct sockaddr *) &s, sizeof(s)));
        netlist_done(&l);

        /* Prefix lengths that are not multiples of 8, and /0. */
        CHECK_INT(netlist_parse("10.0.0.0/9 2001:db8::/31", &l, NULL), 0);
        CHECK(match4(&l, "10.127.1.1"));
        CHECK(!match4(&l, "10.128.0.0"));
        CHECK(match6(&l, "2001:db9::1"));
        CHECK(!match6(&l, "2001:dba::1"));
        netlist_done(&l);

        CHECK_INT(netlist_parse("0.0.0.0/0", &l, NULL), 0);
        CHECK(match4(&l, "203.0.113.9"));
        CHECK(match6(&l, "::ffff:203.0.113.9"));
        CHECK(!match6(&l, "2001:db8::1"));
        netlist_done(&l);

        /* An empty list matches nothing. */
        CHECK(!match4(&l, "127.0.0.1"));
}

static void test_sockaddr_to_string(void) {
        char buf[INET6_ADDRSTRLEN];
        struct sockaddr_in s = sin4("192.0.2.1");
        struct sockaddr_in6 s6 = sin6("2001:db8::1");
        struct sockaddr_in6 m6 = sin6("::ffff:192.0.2.7");
        struct sockaddr un = { .sa_family = AF_UNIX };

        CHECK_INT(sockaddr_to_string((struct sockaddr *) &s, sizeof(s), buf, sizeof(buf)), 0);
        CHECK_STREQ(buf, "192.0.2.1");
        CHECK_INT(sockaddr_to_string((struct sockaddr *) &s6, sizeof(s6), buf, sizeof(buf)), 0);
        CHECK_STREQ(buf, "2001:db8::1");
        CHECK_INT(sockaddr_to_string((struct sockaddr *) &m6, sizeof(m6), buf, sizeof(buf)), 0);
        CHECK_STREQ(buf, "192.0.2.7");
        CHECK_INT(sockaddr_to_string(&un, sizeof(un), buf, sizeof(buf)), -EAFNOSUPPORT);
        CHECK_INT(sockaddr_to_string((struct sockaddr *) &s, 4, buf, sizeof(buf)), -EAFNOSUPPORT);
        CHECK_INT(sockaddr_to_string((struct sockaddr *) &s6, sizeof(s6), buf, 4), -ENOSPC);
}

int main(void) {
        test_netmask_parse();
        test_netlist_parse();
        test_netlist_match();
        test_sockaddr_to_string();
        return tap_finish("test-network");
}
