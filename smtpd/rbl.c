/* DNS blocklists (see rbl.h). All zones are asked at once over one UDP
 * socket; an unanswered query is sent again once; after RBL_TIMEOUT_USEC
 * whatever did not answer counts as not listed. */
#include <arpa/inet.h>
#include <poll.h>
#include <resolv.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "rbl.h"

#define RBL_ZONES_MAX 16u
#define RBL_TIMEOUT_USEC (5u * 1000000u)
#define RBL_RETRY_USEC (2u * 1000000u)
#define RBL_PACKET_MAX 1500u

struct Rbl {
        int fd;
        char *const *zones;
        char reversed[80];
        char client[64];
};

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* ---- pure parts */

int rbl_reverse(const char *addr, char *buf, size_t size) {
        static const char hex[] = "0123456789abcdef";
        unsigned char a[16];
        int n;

        if (inet_pton(AF_INET, addr, a) == 1) {
                n = snprintf(buf, size, "%u.%u.%u.%u", a[3], a[2], a[1], a[0]);
                return n < 0 || (size_t) n >= size ? -ENOBUFS : n;
        }
        if (inet_pton(AF_INET6, addr, a) == 1) {
                size_t l = 0;

                if (size < 64)
                        return -ENOBUFS;
                for (int i = 15; i >= 0; i--) {
                        buf[l++] = hex[a[i] & 15];
                        buf[l++] = '.';
                        buf[l++] = hex[a[i] >> 4];
                        buf[l++] = i > 0 ? '.' : 0;
                }
                return 63;
        }
        return -EAFNOSUPPORT;
}

int rbl_build_query(uint16_t id, const char *name, uint16_t type, uint8_t *buf, size_t size) {
        size_t l = 12, nl = strlen(name);

        if (nl == 0 || nl > 253 || size < 12 + nl + 2 + 4)
                return nl == 0 || nl > 253 ? -EINVAL : -ENOBUFS;
        memset(buf, 0, 12);
        buf[0] = (uint8_t) (id >> 8);
        buf[1] = (uint8_t) id;
        buf[2] = 0x01;                   /* RD */
        buf[5] = 1;                      /* QDCOUNT */
        for (const char *p = name; *p;) {
                size_t ll = strcspn(p, ".");

                if (ll == 0 || ll > 63)
                        return -EINVAL;
                buf[l++] = (uint8_t) ll;
                memcpy(buf + l, p, ll);
                l += ll;
                p += ll;
                if (*p == '.')
                        p++;
        }
        buf[l++] = 0;
        buf[l++] = (uint8_t) (type >> 8);
        buf[l++] = (uint8_t) type;
        buf[l++] = 0;
        buf[l++] = 1;                    /* IN */
        return (int) l;
}

/* Skips a (possibly compressed) name at *pos. */
static int skip_name(const uint8_t *m, size_t n, size_t *pos) {
        size_t p = *pos;

        for (unsigned labels = 0; labels < 128; labels++) {
                if (p >= n)
                        return -EBADMSG;
                if (m[p] == 0) {
                        *pos = p + 1;
                        return 0;
                }
                if ((m[p] & 0xc0) == 0xc0) {
                        if (p + 2 > n)
                                return -EBADMSG;
                        *pos = p + 2;
                        return 0;
                }
                if (m[p] & 0xc0)
                        return -EBADMSG;
                p += 1 + m[p];
        }
        return -EBADMSG;
}

static uint16_t get16(const uint8_t *p) {
        return (uint16_t) (p[0] << 8 | p[1]);
}

int rbl_parse_answer(const uint8_t *m, size_t n, RblAnswer *ret) {
        RblAnswer a = {};
        size_t pos = 12;
        unsigned qd, an;

        if (n < 12 || !(m[2] & 0x80)) /* QR: a response */
                return -EBADMSG;
        a.id = get16(m);
        a.rcode = m[3] & 15;
        qd = get16(m + 4);
        an = get16(m + 6);
        for (unsigned i = 0; i < qd; i++) {
                if (skip_name(m, n, &pos) < 0 || pos + 4 > n)
                        return -EBADMSG;
                pos += 4;
        }
        for (unsigned i = 0; i < an; i++) {
                uint16_t type, class, rdlen;

                if (skip_name(m, n, &pos) < 0 || pos + 10 > n)
                        return -EBADMSG;
                type = get16(m + pos);
                class = get16(m + pos + 2);
                rdlen = get16(m + pos + 8);
                pos += 10;
                if (pos + rdlen > n)
                        return -EBADMSG;
                if (class == 1 && type == 1 && rdlen == 4 && !a.have_a) {
                        memcpy(a.a, m + pos, 4);
                        a.have_a = true;
                } else if (class == 1 && type == 16 && rdlen > 0 && !a.txt[0]) {
                        /* character-strings: length octet + text; the first one. */
                        size_t l = m[pos], k = 0;

                        if (l + 1 > rdlen)
                                return -EBADMSG;
                        for (size_t j = 0; j < l && k < sizeof(a.txt) - 1; j++) {
                                uint8_t c = m[pos + 1 + j];

                                a.txt[k++] = c >= 32 && c < 127 ? (char) c : '?';
                        }
                        a.txt[k] = 0;
                }
                pos += rdlen;
        }
        *ret = a;
        return 0;
}

int rbl_parse_resolver(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len) {
        char host[64];
        const char *colon, *port_s = NULL;
        struct sockaddr_in sin = { .sin_family = AF_INET };
        struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
        unsigned long port = 53;
        size_t hl;

        if (isempty(s))
                return -EINVAL;
        if (s[0] == '[') {
                const char *end = strchr(s, ']');

                if (!end)
                        return -EINVAL;
                hl = (size_t) (end - s - 1);
                if (hl >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s + 1, hl);
                host[hl] = 0;
                if (end[1] == ':')
                        port_s = end + 2;
                else if (end[1])
                        return -EINVAL;
        } else {
                colon = strchr(s, ':');
                /* One colon: IPv4 with a port; more: a bare IPv6 address. */
                if (colon && !strchr(colon + 1, ':')) {
                        hl = (size_t) (colon - s);
                        port_s = colon + 1;
                } else
                        hl = strlen(s);
                if (hl >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s, hl);
                host[hl] = 0;
        }
        if (port_s) {
                char *e;

                if (!*port_s || *port_s < '0' || *port_s > '9')
                        return -EINVAL;
                port = strtoul(port_s, &e, 10);
                if (*e || port == 0 || port > 65535)
                        return -EINVAL;
        }
        memset(ret, 0, sizeof(*ret));
        if (inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
                sin.sin_port = htons((uint16_t) port);
                memcpy(ret, &sin, sizeof(sin));
                *ret_len = sizeof(sin);
                return 0;
        }
        if (inet_pton(AF_INET6, host, &sin6.sin6_addr) == 1) {
                sin6.sin6_port = htons((uint16_t) port);
                memcpy(ret, &sin6, sizeof(sin6));
                *ret_len = sizeof(sin6);
                return 0;
        }
        return -EINVAL;
}

/* ---- set-up, before the sandbox */

/* resolv.conf's first nameserver, through glibc's own parser. */
static int system_resolver(struct sockaddr_storage *ret, socklen_t *ret_len) {
        struct __res_state state = {};

        if (res_ninit(&state) < 0 || state.nscount < 1) {
                res_nclose(&state);
                return -ENOENT;
        }
        memset(ret, 0, sizeof(*ret));
        memcpy(ret, &state.nsaddr_list[0], sizeof(state.nsaddr_list[0]));
        *ret_len = sizeof(state.nsaddr_list[0]);
        res_nclose(&state);
        return 0;
}

int rbl_new(const Config *c, const char *client_addr, Rbl **ret) {
        struct sockaddr_storage ss;
        socklen_t len;
        Rbl *r;
        int k;

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->fd = -EBADF;
        r->zones = c->dns_blocklists;
        k = rbl_reverse(client_addr, r->reversed, sizeof(r->reversed));
        if (k < 0)
                goto fail;
        (void) snprintf(r->client, sizeof(r->client), "%s", client_addr);
        if (!isempty(c->dns_resolver))
                k = rbl_parse_resolver(c->dns_resolver, &ss, &len);
        else
                k = system_resolver(&ss, &len);
        if (k < 0)
                goto fail;
        r->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (r->fd < 0) {
                k = negative_errno();
                goto fail;
        }
        /* connect(): only the resolver's answers reach us, and send/recv
         * need no address inside the sandbox. */
        if (connect(r->fd, (struct sockaddr *) &ss, len) < 0) {
                k = negative_errno();
                goto fail;
        }
        *ret = r;
        return 0;
fail:
        rbl_free(r);
        return k;
}

Rbl *rbl_free(Rbl *r) {
        if (!r)
                return NULL;
        if (r->fd >= 0)
                (void) close(r->fd);
        free(r);
        return NULL;
}

/* ---- lookups, inside the sandbox */

static int send_query(Rbl *r, uint16_t id, const char *name, uint16_t type) {
        uint8_t q[RBL_PACKET_MAX];
        int l = rbl_build_query(id, name, type, q, sizeof(q));

        if (l < 0)
                return l;
        if (send(r->fd, q, (size_t) l, MSG_NOSIGNAL) < 0)
                return negative_errno();
        return 0;
}

/* Waits for answers to the queries in ids[0..n) until all came or the
 * deadline. answered[i] is set and ans[i] filled for each. */
static void collect(Rbl *r, const uint16_t *ids, size_t n, const char names[][RBL_NAME_MAX], uint16_t type,
                    bool *answered, RblAnswer *ans) {
        uint64_t start = now_usec(), deadline = start + RBL_TIMEOUT_USEC;
        bool retried = false;
        size_t left = n;

        while (left > 0) {
                uint64_t now = now_usec(), until = !retried ? start + RBL_RETRY_USEC : deadline;
                struct pollfd p = { .fd = r->fd, .events = POLLIN };
                uint8_t buf[RBL_PACKET_MAX];
                RblAnswer a;
                ssize_t k;
                int pr;

                if (now >= deadline)
                        break;
                if (now >= until) {
                        /* UDP may lose a packet: ask again once. */
                        retried = true;
                        for (size_t i = 0; i < n; i++)
                                if (!answered[i])
                                        (void) send_query(r, ids[i], names[i], type);
                        continue;
                }
                pr = poll(&p, 1, (int) ((until - now + 999) / 1000));
                if (pr < 0 && errno != EINTR)
                        break;
                if (pr <= 0)
                        continue;
                k = recv(r->fd, buf, sizeof(buf), 0);
                if (k < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                continue;
                        /* ECONNREFUSED: nothing listens at the resolver. */
                        break;
                }
                if (rbl_parse_answer(buf, (size_t) k, &a) < 0)
                        continue;
                for (size_t i = 0; i < n; i++)
                        if (!answered[i] && ids[i] == a.id) {
                                answered[i] = true;
                                ans[i] = a;
                                left--;
                        }
        }
}

int rbl_check(Rbl *r, char *zone, size_t zone_size, char *txt, size_t txt_size) {
        char names[RBL_ZONES_MAX][RBL_NAME_MAX];
        uint16_t ids[RBL_ZONES_MAX] = {}, base;
        bool answered[RBL_ZONES_MAX] = {};
        RblAnswer ans[RBL_ZONES_MAX];
        size_t n = 0;
        int listed = -1;

        if (!r || !r->zones)
                return 0;
        if (getrandom(&base, sizeof(base), GRND_NONBLOCK) != sizeof(base))
                base = (uint16_t) now_usec();
        for (size_t i = 0; r->zones[i] && n < RBL_ZONES_MAX; i++) {
                int k = snprintf(names[n], RBL_NAME_MAX, "%s.%s", r->reversed, r->zones[i]);

                if (k < 0 || (size_t) k >= RBL_NAME_MAX)
                        continue;
                ids[n] = (uint16_t) (base + n);
                if (send_query(r, ids[n], names[n], 1) < 0) {
                        log_warning("DNS blocklist %s: cannot send the query for %s, not listed", r->zones[i],
                                    names[n]);
                        answered[n] = true;
                        ans[n] = (RblAnswer) { .rcode = 2 };
                }
                n++;
        }
        collect(r, ids, n, (const char (*)[RBL_NAME_MAX]) names, 1, answered, ans);

        for (size_t i = 0; i < n; i++) {
                const char *z = names[i] + strlen(r->reversed) + 1;

                if (!answered[i])
                        log_warning("DNS blocklist %s: no answer for %s, treating as not listed", z, names[i]);
                else if (ans[i].rcode != 0 && ans[i].rcode != 3)
                        log_warning("DNS blocklist %s: lookup of %s failed (rcode %u), treating as not listed",
                                    z, names[i], ans[i].rcode);
                else if (ans[i].rcode == 0 && ans[i].have_a) {
                        if (ans[i].a[0] == 127 && ans[i].a[1] == 0 && ans[i].a[2] == 0) {
                                if (listed < 0)
                                        listed = (int) i;
                        } else
                                log_warning("DNS blocklist %s: %s has the unexpected address %u.%u.%u.%u, "
                                            "treating as not listed", z, names[i], ans[i].a[0], ans[i].a[1],
                                            ans[i].a[2], ans[i].a[3]);
                }
        }
        if (listed < 0)
                return 0;

        (void) snprintf(zone, zone_size, "%s", names[listed] + strlen(r->reversed) + 1);
        txt[0] = 0;
        /* The TXT record says why (often a URL); the listing stands without it. */
        {
                uint16_t id = (uint16_t) (base + n);
                bool got = false;
                RblAnswer t;

                if (send_query(r, id, names[listed], 16) == 0) {
                        collect(r, &id, 1, (const char (*)[RBL_NAME_MAX]) &names[listed], 16, &got, &t);
                        if (got && t.rcode == 0)
                                (void) snprintf(txt, txt_size, "%s", t.txt);
                }
        }
        log_info("DNS blocklist %s lists %s (%u.%u.%u.%u)%s%s", zone, r->client, ans[listed].a[0],
                 ans[listed].a[1], ans[listed].a[2], ans[listed].a[3], txt[0] ? ": " : "", txt);
        return 1;
}
