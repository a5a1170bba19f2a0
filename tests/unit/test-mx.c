/* Tests the pure parts of deliverd's MX resolution: parsing DNS answers built
 * here byte by byte, null MX detection (RFC 7505), preference order and the
 * random choice among equal preferences with an injected random function. */
#include <arpa/nameser.h>
#include <netinet/in.h>

#include "mx.h"
#include "tap.h"

typedef struct Packet {
        uint8_t b[1024];
        size_t n;
} Packet;

static void put8(Packet *p, uint8_t v) {
        p->b[p->n++] = v;
}
static void put16(Packet *p, uint16_t v) {
        put8(p, (uint8_t) (v >> 8));
        put8(p, (uint8_t) v);
}
static void put_name(Packet *p, const char *name) {
        while (*name) {
                const char *dot = strchr(name, '.');
                size_t l = dot ? (size_t) (dot - name) : strlen(name);
                put8(p, (uint8_t) l);
                memcpy(p->b + p->n, name, l);
                p->n += l;
                name += l + (dot ? 1 : 0);
        }
        put8(p, 0);
}

/* A response to "example.org MX" with n_an answers to add. */
static void packet_start(Packet *p, uint16_t n_an) {
        p->n = 0;
        put16(p, 0x1234);
        put16(p, 0x8180);
        put16(p, 1);
        put16(p, n_an);
        put16(p, 0);
        put16(p, 0);
        put_name(p, "example.org");
        put16(p, ns_t_mx);
        put16(p, ns_c_in);
}

static void packet_mx(Packet *p, uint16_t pref, const char *exchange) {
        size_t rdlen_at;

        put16(p, 0xc00c); /* owner: pointer to the question name */
        put16(p, ns_t_mx);
        put16(p, ns_c_in);
        put16(p, 0);
        put16(p, 300);
        rdlen_at = p->n;
        put16(p, 0);
        put16(p, pref);
        put_name(p, exchange);
        p->b[rdlen_at] = (uint8_t) ((p->n - rdlen_at - 2) >> 8);
        p->b[rdlen_at + 1] = (uint8_t) (p->n - rdlen_at - 2);
}

static void test_parse(void) {
        MxHost h[8];
        Packet p;

        packet_start(&p, 3);
        packet_mx(&p, 20, "mx2.example.org");
        packet_mx(&p, 10, "mx1.example.org");
        /* A CNAME-like record of another type is skipped. */
        put16(&p, 0xc00c);
        put16(&p, ns_t_a);
        put16(&p, ns_c_in);
        put16(&p, 0);
        put16(&p, 300);
        put16(&p, 4);
        put16(&p, 0x7f00);
        put16(&p, 0x0001);
        CHECK_INT(mx_parse_answer(p.b, p.n, h, 8), 2);
        CHECK_INT(h[0].preference, 20);
        CHECK_STREQ(h[0].name, "mx2.example.org");
        CHECK_INT(h[1].preference, 10);
        CHECK_STREQ(h[1].name, "mx1.example.org");
        CHECK(!mx_is_null(h, 2));

        /* max bounds the output. */
        CHECK_INT(mx_parse_answer(p.b, p.n, h, 1), 1);

        /* Truncated packets and short rdata are refused. */
        CHECK_INT(mx_parse_answer(p.b, p.n - 5, h, 8), -EBADMSG);
        CHECK_INT(mx_parse_answer(p.b, 7, h, 8), -EBADMSG);

        packet_start(&p, 0);
        CHECK_INT(mx_parse_answer(p.b, p.n, h, 8), 0);
}

static void test_null_mx(void) {
        MxHost h[4];
        Packet p;

        packet_start(&p, 1);
        packet_mx(&p, 0, "");
        CHECK_INT(mx_parse_answer(p.b, p.n, h, 4), 1);
        CHECK_STREQ(h[0].name, ".");
        CHECK(mx_is_null(h, 1));

        /* Preference other than 0, or beside another MX: not a null MX. */
        h[0].preference = 10;
        CHECK(!mx_is_null(h, 1));
        packet_start(&p, 2);
        packet_mx(&p, 0, "");
        packet_mx(&p, 10, "mx.example.org");
        CHECK_INT(mx_parse_answer(p.b, p.n, h, 4), 2);
        CHECK(!mx_is_null(h, 2));
        CHECK(!mx_is_null(h, 0));
}

/* Returns the values of a script in turn. */
typedef struct Script {
        const uint32_t *v;
        size_t n, i;
} Script;

static uint32_t script_random(void *userdata) {
        Script *s = userdata;
        return s->v[s->i++ % s->n];
}

static void test_sort(void) {
        MxHost h[5] = {
                { 30, "c" }, { 10, "a1" }, { 20, "b" }, { 10, "a2" }, { 10, "a3" },
        };
        uint32_t zeros[] = { 0 };
        Script s = { zeros, 1, 0 };

        /* With random always 0, Fisher-Yates rotates a run: [x,y,z] ->
         * i=2 swaps 2<->0: [z,y,x]; i=1 swaps 1<->0: [y,z,x]. */
        mx_sort(h, 5, script_random, &s);
        CHECK_INT(h[0].preference, 10);
        CHECK_INT(h[1].preference, 10);
        CHECK_INT(h[2].preference, 10);
        CHECK_INT(h[3].preference, 20);
        CHECK_STREQ(h[3].name, "b");
        CHECK_INT(h[4].preference, 30);
        CHECK_STREQ(h[4].name, "c");
        /* Two draws for a run of three, none for runs of one. */
        CHECK_INT(s.i, 2);

        /* Every host of the lowest preference comes first sometimes. */
        {
                unsigned seen[3] = {};
                for (uint32_t k = 0; k < 30; k++) {
                        MxHost g[4] = { { 5, "x" }, { 5, "y" }, { 5, "z" }, { 1, "first" } };
                        uint32_t v[2] = { k, k / 3 };
                        Script t = { v, 2, 0 };

                        mx_sort(g, 4, script_random, &t);
                        CHECK_STREQ(g[0].name, "first");
                        CHECK_INT(g[1].preference, 5);
                        seen[g[1].name[0] - 'x']++;
                }
                CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
        }

        /* The default random function keeps the order of preferences. */
        {
                MxHost g[3] = { { 2, "b" }, { 1, "a" }, { 3, "c" } };
                mx_sort(g, 3, NULL, NULL);
                CHECK_STREQ(g[0].name, "a");
                CHECK_STREQ(g[1].name, "b");
                CHECK_STREQ(g[2].name, "c");
                mx_sort(g, 0, NULL, NULL);
        }
}

static void test_resolve_literal(void) {
        _cleanup_free_ MxTarget *t = NULL;
        int r;

        /* No DNS involved: numeric addresses with use_mx false. */
        r = mx_resolve("127.0.0.1", false, 2525, NULL, &t);
        CHECK_INT(r, 1);
        if (r == 1) {
                const struct sockaddr_in *sin = (const struct sockaddr_in *) &t[0].addr;
                CHECK_INT(sin->sin_family, AF_INET);
                CHECK_INT(ntohs(sin->sin_port), 2525);
                CHECK_STREQ(t[0].host, "127.0.0.1");
        }
        CHECK_INT(mx_resolve("", true, 25, NULL, &t), -EINVAL);
}

int main(void) {
        test_parse();
        test_null_mx();
        test_sort();
        test_resolve_literal();
        return tap_finish("test-mx");
}
