/* MX resolution for the SMTP client. The answer parser, null MX detection and
 * ordering are pure and unit-tested; mx_resolve() adds the resolver calls
 * (res_nquery for MX, getaddrinfo for addresses). */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <strings.h>
#include <sys/random.h>

#include "mx.h"

int mx_parse_answer(const uint8_t *msg, size_t len, MxHost *hosts, size_t max) {
        ns_msg handle;
        size_t n = 0;
        int count;

        if (len > NS_MAXMSG || ns_initparse(msg, (int) len, &handle) < 0)
                return -EBADMSG;
        count = ns_msg_count(handle, ns_s_an);
        for (int i = 0; i < count && n < max; i++) {
                ns_rr rr;
                char name[NS_MAXDNAME];

                if (ns_parserr(&handle, ns_s_an, i, &rr) < 0)
                        return -EBADMSG;
                /* CNAMEs and other records may precede the MX records. */
                if (ns_rr_type(rr) != ns_t_mx || ns_rr_class(rr) != ns_c_in)
                        continue;
                if (ns_rr_rdlen(rr) < 3)
                        return -EBADMSG;
                if (ns_name_uncompress(ns_msg_base(handle), ns_msg_end(handle),
                                       ns_rr_rdata(rr) + 2, name, sizeof(name)) < 0)
                        return -EBADMSG;
                if (strlen(name) >= MX_NAME_MAX)
                        return -EBADMSG;
                hosts[n].preference = ns_get16(ns_rr_rdata(rr));
                memcpy(hosts[n].name, name, strlen(name) + 1);
                n++;
        }
        return (int) n;
}

static bool name_is_root(const char *name) {
        return streq(name, ".") || streq(name, "");
}

bool mx_is_null(const MxHost *hosts, size_t n) {
        return n == 1 && hosts[0].preference == 0 && name_is_root(hosts[0].name);
}

static int host_compare(const void *a, const void *b) {
        const MxHost *x = a, *y = b;
        return (int) x->preference - (int) y->preference;
}

static uint32_t default_random(void *userdata) {
        uint32_t v;

        if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t) sizeof(v))
                v = (uint32_t) random();
        return v;
}

void mx_sort(MxHost *hosts, size_t n, uint32_t (*random_fn)(void *userdata), void *userdata) {
        if (!random_fn)
                random_fn = default_random;
        if (n > 1)
                qsort(hosts, n, sizeof(hosts[0]), host_compare);
        /* Fisher-Yates within each run of equal preference. */
        for (size_t start = 0, end; start < n; start = end) {
                for (end = start + 1; end < n && hosts[end].preference == hosts[start].preference; end++)
                        ;
                for (size_t i = end - 1; i > start; i--) {
                        size_t j = start + random_fn(userdata) % (i - start + 1);
                        MxHost t = hosts[i];
                        hosts[i] = hosts[j];
                        hosts[j] = t;
                }
        }
}

/* Parses "a.b.c.d" or "a.b.c.d:port" (IPv4 only: glibc's resolver state
 * takes IPv6 servers only through private fields). 0 or -EINVAL. */
int mx_parse_resolver(const char *s, struct sockaddr_in *ret) {
        char host[INET_ADDRSTRLEN];
        const char *colon = strchr(s, ':');
        size_t n = colon ? (size_t) (colon - s) : strlen(s);
        unsigned long port = 53;
        struct sockaddr_in sa = { .sin_family = AF_INET };

        if (n == 0 || n >= sizeof(host))
                return -EINVAL;
        memcpy(host, s, n);
        host[n] = 0;
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
                return -EINVAL;
        if (colon) {
                char *e = NULL;
                if (colon[1] < '0' || colon[1] > '9')
                        return -EINVAL;
                errno = 0;
                port = strtoul(colon + 1, &e, 10);
                if (errno != 0 || *e != 0 || port == 0 || port > 65535)
                        return -EINVAL;
        }
        sa.sin_port = htons((uint16_t) port);
        *ret = sa;
        return 0;
}

/* A resolver state for the configured server (or resolv.conf's) with
 * bounded waits: 3 s per try, 2 tries per server. 0 or -EAGAIN/-EINVAL. */
static int mx_res_init(struct __res_state *state, const char *resolver) {
        struct sockaddr_in sa;

        if (res_ninit(state) < 0)
                return -EAGAIN;
        state->retrans = 3;
        state->retry = 2;
        if (!isempty(resolver)) {
                if (mx_parse_resolver(resolver, &sa) < 0) {
                        res_nclose(state);
                        return -EINVAL;
                }
                state->nsaddr_list[0] = sa;
                state->nscount = 1;
        }
        return 0;
}

static void mx_target_set(MxTarget *t, const char *host, int family, const void *addr, uint16_t port) {
        size_t n = strnlen(host, sizeof(t->host) - 1); /* callers checked the length */

        memset(t, 0, sizeof(*t));
        memcpy(t->host, host, n);
        if (family == AF_INET) {
                struct sockaddr_in *sa = (struct sockaddr_in *) &t->addr;
                sa->sin_family = AF_INET;
                sa->sin_port = htons(port);
                memcpy(&sa->sin_addr, addr, 4);
                t->addr_len = sizeof(*sa);
        } else {
                struct sockaddr_in6 *sa = (struct sockaddr_in6 *) &t->addr;
                sa->sin6_family = AF_INET6;
                sa->sin6_port = htons(port);
                memcpy(&sa->sin6_addr, addr, 16);
                t->addr_len = sizeof(*sa);
        }
}

/* The A and AAAA records of host from the configured DNS server (IPv6
 * first). Returns the number added, -ENXIO (no such name, or no address),
 * -EAGAIN, -ENOMEM. */
static int mx_query_addresses(const char *host, uint16_t port, const char *resolver, MxTarget *targets,
                              size_t *n) {
        static const ns_type types[] = { ns_t_aaaa, ns_t_a };
        struct __res_state state = {};
        _cleanup_free_ uint8_t *answer = NULL;
        int added = 0, r;

        answer = malloc(NS_MAXMSG);
        if (!answer)
                return -ENOMEM;
        r = mx_res_init(&state, resolver);
        if (r < 0)
                return r;
        for (size_t q = 0; q < ELEMENTSOF(types); q++) {
                ns_msg handle;
                int len = res_nquery(&state, host, ns_c_in, types[q], answer, NS_MAXMSG);

                if (len < 0) {
                        if (state.res_h_errno != HOST_NOT_FOUND && state.res_h_errno != NO_DATA) {
                                res_nclose(&state);
                                return -EAGAIN;
                        }
                        continue;
                }
                if (ns_initparse(answer, len, &handle) < 0)
                        continue;
                for (int i = 0; i < ns_msg_count(handle, ns_s_an) && *n < MX_TARGETS_MAX; i++) {
                        ns_rr rr;

                        if (ns_parserr(&handle, ns_s_an, i, &rr) < 0)
                                break;
                        if (ns_rr_class(rr) != ns_c_in || ns_rr_type(rr) != types[q])
                                continue; /* CNAMEs lead the way to the records */
                        if (ns_rr_rdlen(rr) != (types[q] == ns_t_a ? 4 : 16))
                                continue;
                        mx_target_set(&targets[*n], host, types[q] == ns_t_a ? AF_INET : AF_INET6,
                                      ns_rr_rdata(rr), port);
                        (*n)++;
                        added++;
                }
        }
        res_nclose(&state);
        if (added == 0)
                return -ENXIO;
        return added;
}

/* Appends the addresses of host to targets. Returns the number added, or
 * -ENXIO / -EAGAIN / -ENOMEM from getaddrinfo. */
static int add_addresses(const char *host, uint16_t port, const char *resolver, MxTarget *targets,
                         size_t *n) {
        struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_STREAM,
                .ai_protocol = IPPROTO_TCP,
        };
        struct addrinfo *res = NULL;
        uint8_t literal[16];
        int r, added = 0;

        /* RFC 6761 6.3: "localhost" is the loopback address, whatever the
         * DNS or a missing hosts file (a fresh container) says. */
        if (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0) {
                static const uint8_t v4[4] = { 127, 0, 0, 1 }, v6[16] = { [15] = 1 };
                if (*n < MX_TARGETS_MAX)
                        mx_target_set(&targets[(*n)++], host, AF_INET, v4, port);
                if (*n < MX_TARGETS_MAX)
                        mx_target_set(&targets[(*n)++], host, AF_INET6, v6, port);
                return 2;
        }

        if (!isempty(resolver)) {
                /* An IP address is itself; a name is the configured server's
                 * answer alone (getaddrinfo would ask resolv.conf's). */
                if (inet_pton(AF_INET, host, literal) != 1 && inet_pton(AF_INET6, host, literal) != 1)
                        return mx_query_addresses(host, port, resolver, targets, n);
                hints.ai_flags = AI_NUMERICHOST;
                r = getaddrinfo(host, NULL, &hints, &res);
        } else
                r = getaddrinfo(host, NULL, &hints, &res);
        switch (r) {
        case 0:
                break;
        case EAI_NONAME:
        case EAI_NODATA:
        case EAI_ADDRFAMILY:
                return -ENXIO;
        case EAI_MEMORY:
                return -ENOMEM;
        default:
                return -EAGAIN;
        }
        for (struct addrinfo *ai = res; ai && *n < MX_TARGETS_MAX; ai = ai->ai_next) {
                MxTarget *t = &targets[*n];

                if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
                    ai->ai_addrlen > sizeof(t->addr))
                        continue;
                memset(t, 0, sizeof(*t));
                (void) snprintf(t->host, sizeof(t->host), "%s", host);
                memcpy(&t->addr, ai->ai_addr, ai->ai_addrlen);
                t->addr_len = ai->ai_addrlen;
                if (ai->ai_family == AF_INET)
                        ((struct sockaddr_in *) &t->addr)->sin_port = htons(port);
                else
                        ((struct sockaddr_in6 *) &t->addr)->sin6_port = htons(port);
                (*n)++;
                added++;
        }
        freeaddrinfo(res);
        return added > 0 ? added : -ENXIO;
}

/* Looks up the MX records of domain. Returns the number of hosts (0: the
 * domain exists but has no MX), -ENXIO (no such domain) or -EAGAIN. */
static int query_mx(const char *domain, const char *resolver, MxHost *hosts, size_t max) {
        struct __res_state state = {};
        _cleanup_free_ uint8_t *answer = NULL;
        int len, r;

        answer = malloc(NS_MAXMSG);
        if (!answer)
                return -ENOMEM;
        r = mx_res_init(&state, resolver);
        if (r < 0)
                return r;
        len = res_nquery(&state, domain, ns_c_in, ns_t_mx, answer, NS_MAXMSG);
        if (len < 0) {
                switch (state.res_h_errno) {
                case HOST_NOT_FOUND:
                        r = -ENXIO;
                        break;
                case NO_DATA:
                        r = 0;
                        break;
                default:
                        r = -EAGAIN;
                }
        } else
                r = mx_parse_answer(answer, (size_t) len, hosts, max);
        res_nclose(&state);
        /* A reply we cannot parse is the server's problem, maybe transient. */
        return r == -EBADMSG ? -EAGAIN : r;
}

int mx_resolve(const char *name, bool use_mx, uint16_t port, const char *resolver, MxTarget **ret) {
        _cleanup_free_ MxTarget *targets = NULL;
        MxHost hosts[64];
        size_t n = 0;
        int r, n_hosts;

        if (isempty(name) || strlen(name) >= MX_NAME_MAX)
                return -EINVAL;
        targets = new0(MxTarget, MX_TARGETS_MAX);
        if (!targets)
                return -ENOMEM;

        if (!use_mx) {
                r = add_addresses(name, port, resolver, targets, &n);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(targets);
                return (int) n;
        }

        n_hosts = query_mx(name, resolver, hosts, ELEMENTSOF(hosts));
        if (n_hosts == -ENXIO)
                /* Not in the DNS: the hosts file may still know the name, as
                 * Postfix's smtp_host_lookup = dns, native allows. */
                n_hosts = 0;
        if (n_hosts < 0)
                return n_hosts;
        if (mx_is_null(hosts, (size_t) n_hosts))
                return -EPERM;
        if (n_hosts == 0) {
                /* RFC 5321 5.1: no MX, the domain itself is the implicit MX. */
                r = add_addresses(name, port, resolver, targets, &n);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(targets);
                return (int) n;
        }

        mx_sort(hosts, (size_t) n_hosts, NULL, NULL);
        r = -EAGAIN;
        for (size_t i = 0; i < (size_t) n_hosts && i < MX_HOSTS_MAX && n < MX_TARGETS_MAX; i++) {
                /* A "." among other MX records is not a host (RFC 7505 3). */
                if (name_is_root(hosts[i].name))
                        continue;
                r = add_addresses(hosts[i].name, port, resolver, targets, &n);
                if (r == -ENOMEM)
                        return r;
        }
        if (n == 0)
                /* MX hosts without addresses: a DNS problem the domain's
                 * owner may fix, so retry rather than bounce. */
                return -EAGAIN;
        *ret = TAKE_PTR(targets);
        return (int) n;
}
