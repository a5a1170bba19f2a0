/* CIDR networks for TrustedNetworks and the matching of client addresses
 * against them. Pure functions: no I/O, no logging, no global state. */
#include <arpa/inet.h>

#include "network.h"

/* Longest token worth looking at: "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]/128". */
#define NETMASK_TEXT_MAX 64

static void netmask_clear_host_bits(NetMask *m) {
        size_t bytes = m->family == AF_INET ? 4 : 16;

        for (size_t i = 0; i < bytes; i++) {
                unsigned bit = (unsigned) i * 8;

                if (bit >= m->prefixlen)
                        m->addr[i] = 0;
                else if (bit + 8 > m->prefixlen)
                        m->addr[i] &= (uint8_t) (0xff << (8 - (m->prefixlen - bit)));
        }
}

/* Parses a decimal prefix length without sign, spaces or leading zeros. */
static int netmask_parse_prefix(const char *s, unsigned max, unsigned *ret) {
        unsigned v = 0;

        if (!*s || (s[0] == '0' && s[1]))
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned) (*s - '0');
                if (v > max)
                        return -EINVAL;
        }
        *ret = v;
        return 0;
}

int netmask_parse(const char *s, NetMask *ret) {
        char buf[NETMASK_TEXT_MAX];
        const char *prefix = NULL;
        char *host = buf, *slash;
        bool bracketed = false;
        NetMask m = {};
        size_t n;

        if (!s)
                return -EINVAL;
        n = strlen(s);
        if (n == 0 || n >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, n + 1);

        slash = strchr(buf, '/');
        if (slash) {
                *slash = 0;
                prefix = slash + 1;
        }
        if (host[0] == '[') {
                size_t hl = strlen(host);
                if (hl < 2 || host[hl - 1] != ']')
                        return -EINVAL;
                host[hl - 1] = 0;
                host++;
                bracketed = true;
        }

        /* inet_pton() accepts only the strict dotted-quad form for AF_INET,
         * so "10.1" or "010.0.0.1" are refused rather than guessed at. */
        if (!bracketed && inet_pton(AF_INET, host, m.addr) == 1) {
                m.family = AF_INET;
                m.prefixlen = 32;
        } else if (inet_pton(AF_INET6, host, m.addr) == 1) {
                m.family = AF_INET6;
                m.prefixlen = 128;
        } else
                return -EINVAL;

        if (prefix && netmask_parse_prefix(prefix, m.prefixlen, &m.prefixlen) < 0)
                return -EINVAL;

        netmask_clear_host_bits(&m);
        *ret = m;
        return 0;
}

static bool netlist_is_separator(char c) {
        return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int netlist_parse(const char *s, NetList *list, const char **ret_bad) {
        _cleanup_free_ NetMask *items = NULL;
        size_t n = 0;

        if (ret_bad)
                *ret_bad = NULL;
        if (!s || !list)
                return -EINVAL;

        /* Parse everything first, then append: a bad token leaves list as it was. */
        for (const char *p = s;;) {
                char token[NETMASK_TEXT_MAX];
                const char *start;
                size_t len;
                NetMask m;

                while (*p && netlist_is_separator(*p))
                        p++;
                if (!*p)
                        break;
                start = p;
                while (*p && !netlist_is_separator(*p))
                        p++;
                len = (size_t) (p - start);
                if (len >= sizeof(token)) {
                        if (ret_bad)
                                *ret_bad = start;
                        return -EINVAL;
                }
                memcpy(token, start, len);
                token[len] = 0;
                if (netmask_parse(token, &m) < 0) {
                        if (ret_bad)
                                *ret_bad = start;
                        return -EINVAL;
                }

                NetMask *t = reallocarray_safe(items, n + 1, sizeof(NetMask));
                if (!t)
                        return -ENOMEM;
                items = t;
                items[n++] = m;
        }

        if (n == 0)
                return 0;
        NetMask *t = reallocarray_safe(list->items, list->n + n, sizeof(NetMask));
        if (!t)
                return -ENOMEM;
        memcpy(t + list->n, items, n * sizeof(NetMask));
        list->items = t;
        list->n += n;
        return 0;
}

void netlist_done(NetList *list) {
        if (!list)
                return;
        free(list->items);
        *list = (NetList) {};
}

static bool netmask_match(const NetMask *m, int family, const uint8_t *addr) {
        unsigned full, rest;

        if (m->family != family)
                return false;
        full = m->prefixlen / 8;
        rest = m->prefixlen % 8;
        if (memcmp(m->addr, addr, full) != 0)
                return false;
        if (rest == 0)
                return true;
        return ((addr[full] ^ m->addr[full]) & (uint8_t) (0xff << (8 - rest))) == 0;
}

bool netlist_match(const NetList *list, const struct sockaddr *sa, socklen_t len) {
        const uint8_t *addr, *v4 = NULL;
        int family;

        if (!list || !sa)
                return false;
        if (sa->sa_family == AF_INET && len >= (socklen_t) sizeof(struct sockaddr_in)) {
                family = AF_INET;
                addr = (const uint8_t *) &((const struct sockaddr_in *) sa)->sin_addr;
        } else if (sa->sa_family == AF_INET6 && len >= (socklen_t) sizeof(struct sockaddr_in6)) {
                const struct in6_addr *a6 = &((const struct sockaddr_in6 *) sa)->sin6_addr;
                family = AF_INET6;
                addr = a6->s6_addr;
                /* A dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d; they
                 * belong to the IPv4 networks an administrator wrote. */
                if (IN6_IS_ADDR_V4MAPPED(a6))
                        v4 = a6->s6_addr + 12;
        } else
                return false;

        for (size_t i = 0; i < list->n; i++) {
                if (netmask_match(&list->items[i], family, addr))
                        return true;
                if (v4 && netmask_match(&list->items[i], AF_INET, v4))
                        return true;
        }
        return false;
}

int sockaddr_to_string(const struct sockaddr *sa, socklen_t len, char *buf, size_t size) {
        const void *addr;
        int family;

        if (!sa || !buf)
                return -EINVAL;
        if (sa->sa_family == AF_INET && len >= (socklen_t) sizeof(struct sockaddr_in)) {
                family = AF_INET;
                addr = &((const struct sockaddr_in *) sa)->sin_addr;
        } else if (sa->sa_family == AF_INET6 && len >= (socklen_t) sizeof(struct sockaddr_in6)) {
                const struct in6_addr *a6 = &((const struct sockaddr_in6 *) sa)->sin6_addr;
                /* Shown as the IPv4 address it is, as Postfix does, so logs and
                 * lookups see one form per client. */
                if (IN6_IS_ADDR_V4MAPPED(a6)) {
                        family = AF_INET;
                        addr = a6->s6_addr + 12;
                } else {
                        family = AF_INET6;
                        addr = a6;
                }
        } else
                return -EAFNOSUPPORT;

        if (size > (socklen_t) -1)
                size = (socklen_t) -1;
        if (!inet_ntop(family, addr, buf, (socklen_t) size))
                return negative_errno();
        return 0;
}
