/* Routing decisions (see route.h and docs/routing.md). The tables are the
 * administrator's tinycdb files; each is reopened when `ternctl map` or
 * newaliases replaced it (a new inode), so a long-running queued or a
 * deliverd worker never routes with a table that has been rebuilt. */
#include <ctype.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/stat.h>

#include "route.h"
#include "table.h"

typedef struct RouteTable {
        const char *source;     /* config string: the table's source file; NULL/"" none */
        Table *table;
        dev_t dev;
        ino_t ino;
        struct timespec mtime;
} RouteTable;

struct Router {
        const Config *config;
        RouteTable transport, valias, vmailbox, aliases;
};

static const char *const transport_names[_ROUTE_TRANSPORT_MAX] = {
        [ROUTE_LOCAL] = "local",   [ROUTE_VIRTUAL] = "virtual", [ROUTE_SMTP] = "smtp",
        [ROUTE_LMTP] = "lmtp",     [ROUTE_DISCARD] = "discard", [ROUTE_ERROR] = "error",
};

const char *route_transport_to_string(RouteTransport t) {
        if (t < 0 || t >= _ROUTE_TRANSPORT_MAX)
                return NULL;
        return transport_names[t];
}

static bool domain_in(char **list, const char *domain);

bool route_domain_is_ours(const Config *c, const char *domain) {
        if (isempty(domain))
                return false;
        return config_is_local_domain(c, domain) || domain_in(c->virtual_alias_domains, domain) ||
               domain_in(c->virtual_mailbox_domains, domain);
}

int router_new(const Config *config, Router **ret) {
        Router *r = new0(Router, 1);

        if (!r)
                return -ENOMEM;
        r->config = config;
        r->transport.source = config->transport_table;
        r->valias.source = config->virtual_alias_map;
        r->vmailbox.source = config->virtual_mailbox_map;
        r->aliases.source = config->alias_file;
        *ret = r;
        return 0;
}

static void route_table_close(RouteTable *t) {
        t->table = table_close(t->table);
}

Router *router_free(Router *r) {
        if (!r)
                return NULL;
        route_table_close(&r->transport);
        route_table_close(&r->valias);
        route_table_close(&r->vmailbox);
        route_table_close(&r->aliases);
        free(r);
        return NULL;
}

/* The table, opened or reopened when its .cdb changed. *ret NULL: none
 * configured or not compiled (an absent table is an empty one, as with
 * Postfix before postmap). 0 or -errno (unreadable, not a cdb file). */
static int route_table_get(RouteTable *t, Table **ret) {
        _cleanup_free_ char *cdb = NULL;
        struct stat st;
        int r;

        *ret = NULL;
        if (isempty(t->source))
                return 0;
        if (asprintf(&cdb, "%s.cdb", t->source) < 0) {
                cdb = NULL;
                return -ENOMEM;
        }
        if (stat(cdb, &st) < 0) {
                if (errno != ENOENT)
                        return -errno;
                route_table_close(t);
                return 0;
        }
        if (t->table && st.st_dev == t->dev && st.st_ino == t->ino &&
            st.st_mtim.tv_sec == t->mtime.tv_sec && st.st_mtim.tv_nsec == t->mtime.tv_nsec) {
                *ret = t->table;
                return 0;
        }
        route_table_close(t);
        r = table_open(t->source, &t->table);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        t->dev = st.st_dev;
        t->ino = st.st_ino;
        t->mtime = st.st_mtim;
        *ret = t->table;
        return 0;
}

Table *router_alias_table(Router *r) {
        Table *t = NULL;

        if (route_table_get(&r->aliases, &t) < 0)
                return NULL;
        return t;
}

static bool domain_in(char **list, const char *domain) {
        for (char **d = list; d && *d; d++)
                if (strcasecmp(*d, domain) == 0)
                        return true;
        return false;
}

static int copy_str(char *dst, size_t size, const char *src, size_t n) {
        if (n >= size)
                return -ENOBUFS;
        memcpy(dst, src, n);
        dst[n] = 0;
        return 0;
}

int route_split_local(const char *local, const char *delimiters, char *user, size_t user_size,
                      char *ext, size_t ext_size) {
        size_t n = strlen(local), cut = n;
        int r;

        /* Postfix: the first delimiter character splits; one at the very
         * start is part of the name ("+list" stays "+list"). */
        if (!isempty(delimiters) && n > 1) {
                size_t k = strcspn(local + 1, delimiters);
                if (k + 1 < n)
                        cut = k + 1;
        }
        r = copy_str(user, user_size, local, cut);
        if (r < 0)
                return r;
        for (char *p = user; *p; p++)
                *p = (char) tolower((unsigned char) *p);
        return cut < n ? copy_str(ext, ext_size, local + cut + 1, n - cut - 1)
                       : copy_str(ext, ext_size, "", 0);
}

/* "[host]:port", "host:port", "[host]", "host" -> nexthop, port, mx. */
static int parse_hostport(const char *s, Route *route, bool allow_mx) {
        const char *colon;
        size_t n;

        route->mx = false;
        route->port = 0;
        if (s[0] == '[') {
                const char *close = strchr(s, ']');
                if (!close || close == s + 1)
                        return -EINVAL;
                n = (size_t) (close - s - 1);
                if (copy_str(route->nexthop, sizeof(route->nexthop), s + 1, n) < 0)
                        return -EINVAL;
                colon = close[1] == ':' ? close + 1 : NULL;
                if (!colon && close[1])
                        return -EINVAL;
        } else {
                colon = strrchr(s, ':');
                n = colon ? (size_t) (colon - s) : strlen(s);
                if (n == 0 || copy_str(route->nexthop, sizeof(route->nexthop), s, n) < 0)
                        return -EINVAL;
                route->mx = allow_mx;
        }
        if (colon) {
                char *end;
                unsigned long p;

                errno = 0;
                p = strtoul(colon + 1, &end, 10);
                if (errno || *end || end == colon + 1 || p == 0 || p > 65535)
                        return -EINVAL;
                route->port = (uint16_t) p;
        }
        for (const char *p = route->nexthop; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == '/' || *p == '[' || *p == ']')
                        return -EINVAL;
        return 0;
}

/* "5.1.1 text" -> dsn "5.1.1" and text; a text without a leading code gets 5.0.0. */
static void parse_error_text(const char *s, Route *route, const char *default_text) {
        if (isdigit((unsigned char) s[0]) && s[1] == '.' && (s[0] == '4' || s[0] == '5')) {
                size_t n = strcspn(s, " ");
                if (n >= 5 && n < sizeof(route->dsn)) {
                        memcpy(route->dsn, s, n);
                        route->dsn[n] = 0;
                        s += n;
                        while (*s == ' ')
                                s++;
                }
        }
        if (!route->dsn[0])
                (void) snprintf(route->dsn, sizeof(route->dsn), "5.0.0");
        (void) snprintf(route->nexthop, sizeof(route->nexthop), "%s", *s ? s : default_text);
}

int route_parse_transport(const char *value, Route *route) {
        const char *colon = strchr(value, ':');
        size_t n = colon ? (size_t) (colon - value) : strlen(value);
        const char *arg = colon ? colon + 1 : "";

        while (*arg == ' ')
                arg++;
        route->dsn[0] = 0;
        route->unix_socket = false;
        route->mx = false;
        route->port = 0;
        if (n == 5 && strncmp(value, "local", 5) == 0 && !*arg) {
                route->transport = ROUTE_LOCAL;
                route->nexthop[0] = 0;
                return 0;
        }
        if (n == 7 && strncmp(value, "virtual", 7) == 0 && !*arg) {
                route->transport = ROUTE_VIRTUAL;
                route->nexthop[0] = 0;
                return 0;
        }
        if (n == 7 && strncmp(value, "discard", 7) == 0) {
                route->transport = ROUTE_DISCARD;
                (void) snprintf(route->nexthop, sizeof(route->nexthop), "%s",
                                *arg ? arg : "discarded");
                return 0;
        }
        if (n == 5 && strncmp(value, "error", 5) == 0) {
                route->transport = ROUTE_ERROR;
                parse_error_text(arg, route, "mail for this address is not deliverable");
                return 0;
        }
        if (n == 4 && strncmp(value, "smtp", 4) == 0) {
                route->transport = ROUTE_SMTP;
                if (!*arg) {
                        /* "smtp:" or "smtp": the MX of the recipient domain. */
                        if (!route->domain[0])
                                return -EINVAL;
                        (void) snprintf(route->nexthop, sizeof(route->nexthop), "%s", route->domain);
                        route->mx = true;
                        return 0;
                }
                return parse_hostport(arg, route, true);
        }
        if (n == 4 && strncmp(value, "lmtp", 4) == 0) {
                route->transport = ROUTE_LMTP;
                if (strncmp(arg, "unix:", 5) == 0) {
                        if (arg[5] != '/' ||
                            copy_str(route->nexthop, sizeof(route->nexthop), arg + 5, strlen(arg + 5)) < 0)
                                return -EINVAL;
                        route->unix_socket = true;
                        return 0;
                }
                if (strncmp(arg, "inet:", 5) == 0)
                        arg += 5;
                if (!*arg)
                        return -EINVAL;
                /* LMTP never looks up MX records (RFC 2033 4). */
                return parse_hostport(arg, route, false);
        }
        return -EINVAL;
}

static int route_parse_address(const Config *c, const char *addr, Route *route) {
        Address a;
        size_t n = strlen(addr);
        int r;

        *route = (Route) {};
        r = address_parse_path(addr, n, ADDRESS_NO_BRACKETS | ADDRESS_ALLOW_NO_DOMAIN |
                               ADDRESS_ALLOW_UTF8, &a);
        if (r < 0 || (size_t) r != n || a.null)
                return -EINVAL;
        if (address_format(&a, route->address, sizeof(route->address)) < 0)
                return -EINVAL;
        (void) snprintf(route->local, sizeof(route->local), "%s", a.local);
        (void) snprintf(route->domain, sizeof(route->domain), "%s", a.domain);
        r = route_split_local(a.local, c->recipient_delimiter, route->user, sizeof(route->user),
                              route->extension, sizeof(route->extension));
        if (r < 0)
                return -EINVAL;
        return 0;
}

int route_resolve(Router *rt, const char *addr, Route *ret) {
        const Config *c = rt->config;
        _cleanup_free_ char *value = NULL;
        Route route;
        Table *t;
        int r;

        r = route_parse_address(c, addr, &route);
        if (r < 0)
                return r;

        /* 1. The transport table overrides every other decision (transport_maps). */
        r = route_table_get(&rt->transport, &t);
        if (r < 0)
                return r;
        if (t && route.domain[0]) {
                r = table_lookup_address(t, route.address, c->recipient_delimiter,
                                         TABLE_ADDR_DOMAIN, &value, NULL);
                if (r < 0 && r != -ENOENT)
                        return r;
                if (r >= 0) {
                        if (route_parse_transport(value, &route) < 0) {
                                /* A bad entry is the administrator's to fix; the
                                 * mail waits for it instead of going elsewhere. */
                                route.transport = ROUTE_ERROR;
                                (void) snprintf(route.dsn, sizeof(route.dsn), "4.3.5");
                                (void) snprintf(route.nexthop, sizeof(route.nexthop),
                                                "bad transport table entry \"%.200s\"", value);
                        }
                        route.reason = "transport table";
                        if (route.transport != ROUTE_VIRTUAL)
                                goto done;
                }
        }

        /* 2. An address of a virtual alias domain exists only through AliasMap,
         * and was expanded at submission. */
        if (route.domain[0] && route.transport != ROUTE_VIRTUAL &&
            domain_in(c->virtual_alias_domains, route.domain)) {
                route.transport = ROUTE_ERROR;
                (void) snprintf(route.dsn, sizeof(route.dsn), "5.1.1");
                (void) snprintf(route.nexthop, sizeof(route.nexthop),
                                "User unknown in virtual alias table");
                route.reason = "virtual alias domain";
                goto done;
        }

        /* 3. Local domains (and addresses without a domain): local(8). */
        if (route.transport != ROUTE_VIRTUAL &&
            (!route.domain[0] || config_is_local_domain(c, route.domain))) {
                route.transport = ROUTE_LOCAL;
                route.reason = route.domain[0] ? "local domain" : "no domain";
                goto done;
        }

        /* 4. Virtual mailbox domains: the mailbox path from MailboxMap. */
        if (route.transport == ROUTE_VIRTUAL || domain_in(c->virtual_mailbox_domains, route.domain)) {
                if (!route.reason)
                        route.reason = "virtual mailbox domain";
                route.transport = ROUTE_VIRTUAL;
                r = route_table_get(&rt->vmailbox, &t);
                if (r < 0)
                        return r;
                free(TAKE_PTR(value));
                r = t ? table_lookup_address(t, route.address, c->recipient_delimiter, 0, &value,
                                             NULL)
                      : -ENOENT;
                if (r < 0 && r != -ENOENT)
                        return r;
                /* A path that climbs out of MailboxBase is refused like an unknown user. */
                if (r == -ENOENT || value[0] == '/' || strstr(value, "..") ||
                    snprintf(route.nexthop, sizeof(route.nexthop), "%s/%s", c->virtual_mailbox_base,
                             value) >= (int) sizeof(route.nexthop)) {
                        route.transport = ROUTE_ERROR;
                        (void) snprintf(route.dsn, sizeof(route.dsn), "5.1.1");
                        (void) snprintf(route.nexthop, sizeof(route.nexthop),
                                        "User unknown in virtual mailbox table");
                }
                goto done;
        }

        /* 5. Everything else leaves: via RelayHost, or to the domain's MX. */
        route.transport = ROUTE_SMTP;
        if (!isempty(c->relay_host)) {
                if (parse_hostport(c->relay_host, &route, true) < 0)
                        return -EINVAL;
                route.reason = "relay host";
        } else if (route.domain[0] == '[') {
                /* An address literal (RFC 5321 4.1.3) names the host itself. */
                const char *ip = route.domain + 1;
                size_t n = strlen(ip);

                if (strncasecmp(ip, "IPv6:", 5) == 0)
                        ip += 5, n -= 5;
                if (n < 2 || ip[n - 1] != ']')
                        return -EINVAL;
                (void) snprintf(route.nexthop, sizeof(route.nexthop), "%.*s", (int) (n - 1), ip);
                route.reason = "address literal";
        } else {
                (void) snprintf(route.nexthop, sizeof(route.nexthop), "%s", route.domain);
                route.mx = true;
                route.reason = "recipient domain";
        }
done:
        *ret = route;
        return 0;
}

int route_destination_key(const Route *route, char *buf, size_t size) {
        int r;

        switch (route->transport) {
        case ROUTE_SMTP:
        case ROUTE_LMTP:
                if (route->unix_socket)
                        r = snprintf(buf, size, "lmtp:unix:%s", route->nexthop);
                else if (route->mx && !route->port)
                        r = snprintf(buf, size, "%s:%s", transport_names[route->transport],
                                     route->nexthop);
                else if (route->mx)
                        r = snprintf(buf, size, "%s:%s:%u", transport_names[route->transport],
                                     route->nexthop, route->port);
                else
                        r = snprintf(buf, size, "%s:[%s]:%u", transport_names[route->transport],
                                     route->nexthop,
                                     route->port ?: (route->transport == ROUTE_LMTP ? 24 : 25));
                break;
        default:
                r = snprintf(buf, size, "%s", transport_names[route->transport]);
        }
        if (r < 0 || (size_t) r >= size)
                return -ENOBUFS;
        return r;
}

/* Splits a table value into addresses: separated by commas and/or white space. */
static int split_list(const char *value, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;

        for (const char *p = value; *p;) {
                size_t k;
                char **nl;

                p += strspn(p, ", \t");
                if (!*p)
                        break;
                k = strcspn(p, ", \t");
                nl = reallocarray_safe(l, n + 2, sizeof(char *));
                if (!nl)
                        return -ENOMEM;
                l = nl;
                l[n] = memdup_str(p, k);
                if (!l[n])
                        return -ENOMEM;
                l[++n] = NULL;
                p += k;
        }
        if (!l) {
                l = new0(char *, 1);
                if (!l)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static bool strv_contains(char **l, const char *s) {
        for (char **i = l; i && *i; i++)
                if (streq(*i, s))
                        return true;
        return false;
}

static int strv_push(char ***l, size_t *n, const char *s) {
        char **nl;

        if (strv_contains(*l, s))
                return 0;
        nl = reallocarray_safe(*l, *n + 2, sizeof(char *));
        if (!nl)
                return -ENOMEM;
        *l = nl;
        nl[*n] = strdup(s);
        if (!nl[*n])
                return -ENOMEM;
        nl[++*n] = NULL;
        return 0;
}

/* Expands addr into *out (deduplicated). path holds the addresses being
 * expanded above this one, for the loop check. */
static int route_expand_one(Router *rt, Table *t, const char *addr, const char **path,
                            unsigned depth, char ***out, size_t *n_out) {
        const Config *c = rt->config;
        _cleanup_free_ char *value = NULL, *key = NULL;
        _cleanup_strv_free_ char **targets = NULL;
        Route route;
        int r;

        r = route_parse_address(c, addr, &route);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < depth; i++)
                if (streq(path[i], route.address))
                        return -ELOOP;
        if (depth >= ROUTE_ALIAS_DEPTH_MAX)
                return -ELOOP;
        r = -ENOENT;
        if (route.domain[0])
                r = table_lookup_address(t, route.address, c->recipient_delimiter,
                                         TABLE_ADDR_AT_DOMAIN, &value, &key);
        if (r == -ENOENT)
                return *n_out >= ROUTE_ALIAS_RESULTS_MAX ? -E2BIG
                                                         : strv_push(out, n_out, route.address);
        if (r < 0)
                return r;
        r = split_list(value, &targets);
        if (r < 0)
                return r;
        path[depth] = route.address;
        for (char **p = targets; *p; p++) {
                char buf[ROUTE_ADDRESS_MAX];
                const char *target = *p;
                Route tr;

                /* "@domain" catch-all "@other": same local part, other domain. */
                if (target[0] == '@') {
                        if (snprintf(buf, sizeof(buf), "%s%s", route.local, target) >= (int) sizeof(buf))
                                return -EINVAL;
                        target = buf;
                } else if (route.extension[0] && key && !strchr(key, '+') &&
                           !isempty(c->recipient_delimiter) && strchr(target, '@')) {
                        /* The extension the key did not match goes along
                         * (propagate_unmatched_extensions): "a+x@d" -> "b+x@e". */
                        const char *at = strrchr(target, '@');
                        if (snprintf(buf, sizeof(buf), "%.*s%c%s%s", (int) (at - target), target,
                                     c->recipient_delimiter[0], route.extension, at) >= (int) sizeof(buf))
                                return -EINVAL;
                        target = buf;
                }
                r = route_parse_address(c, target, &tr);
                if (r < 0)
                        return r;
                if (streq(tr.address, route.address)) {
                        /* "a@d -> a@d, b@e": a keeps its own mail. */
                        if (*n_out >= ROUTE_ALIAS_RESULTS_MAX)
                                return -E2BIG;
                        r = strv_push(out, n_out, tr.address);
                } else
                        r = route_expand_one(rt, t, tr.address, path, depth + 1, out, n_out);
                if (r < 0)
                        return r;
        }
        return 0;
}

int route_expand(Router *rt, const char *addr, char ***ret) {
        _cleanup_strv_free_ char **out = NULL;
        const char *path[ROUTE_ALIAS_DEPTH_MAX + 1];
        size_t n = 0;
        Table *t;
        Route route;
        int r;

        r = route_parse_address(rt->config, addr, &route);
        if (r < 0)
                return r;
        r = route_table_get(&rt->valias, &t);
        if (r < 0)
                return r;
        if (!t)
                r = strv_push(&out, &n, route.address);
        else
                r = route_expand_one(rt, t, route.address, path, 0, &out, &n);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(out);
        return 0;
}

int route_local_user_known(Router *rt, const char *user, const char *local_with_ext) {
        _cleanup_free_ char *value = NULL;
        struct passwd *pw;
        Table *t;
        int r;

        if (streq(user, "postmaster"))
                return 1;
        r = route_table_get(&rt->aliases, &t);
        if (r < 0)
                return r;
        if (t) {
                r = table_lookup(t, local_with_ext, &value);
                if (r == -ENOENT && !streq(local_with_ext, user))
                        r = table_lookup(t, user, &value);
                if (r >= 0)
                        return 1;
                if (r != -ENOENT)
                        return r;
        }
        errno = 0;
        pw = getpwnam(user);
        if (pw)
                return 1;
        if (errno == 0 || errno == ENOENT || errno == ESRCH || errno == EBADF || errno == EPERM)
                return 0;
        return -errno;
}

static int reject(RouteReject *rj, unsigned code, const char *dsn, const char *text) {
        rj->code = code;
        (void) snprintf(rj->dsn, sizeof(rj->dsn), "%s", dsn);
        (void) snprintf(rj->text, sizeof(rj->text), "%s", text);
        return 1;
}

int route_recipient(Router *rt, const char *addr, bool utf8, char ***ret, RouteReject *rj) {
        _cleanup_strv_free_ char **list = NULL;
        Address a;
        size_t n = strlen(addr);
        int r;

        r = address_parse_path(addr, n, ADDRESS_NO_BRACKETS | ADDRESS_ALLOW_NO_DOMAIN |
                               (utf8 ? ADDRESS_ALLOW_UTF8 : 0), &a);
        if (r < 0 || (size_t) r != n || a.null)
                return reject(rj, 501, "5.1.3", "Recipient address rejected: bad address syntax");

        r = route_expand(rt, addr, &list);
        if (r == -ELOOP)
                return reject(rj, 550, "5.4.6", "Recipient address rejected: virtual alias loop");
        if (r == -E2BIG)
                return reject(rj, 550, "5.7.0",
                              "Recipient address rejected: virtual alias expansion too large");
        if (r == -EINVAL)
                return reject(rj, 451, "4.3.0",
                              "Recipient address rejected: bad address in the virtual alias table");
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return reject(rj, 451, "4.3.0", "Recipient address rejected: temporary lookup failure");

        for (char **p = list; *p; p++) {
                Route route;

                r = route_resolve(rt, *p, &route);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return reject(rj, 451, "4.3.0",
                                      "Recipient address rejected: temporary lookup failure");
                if (route.transport == ROUTE_ERROR && streq(route.dsn, "5.1.1"))
                        return reject(rj, 550, "5.1.1",
                                      streq(route.reason, "virtual alias domain")
                                              ? "Recipient address rejected: User unknown in virtual alias table"
                                              : "Recipient address rejected: User unknown in virtual mailbox table");
                if (route.transport != ROUTE_LOCAL || streq(route.reason, "transport table"))
                        continue;
                /* A quoted local part never names an account. */
                r = route.local[0] == '"' ? 0 : route_local_user_known(rt, route.user, route.local);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return reject(rj, 451, "4.3.0",
                                      "Recipient address rejected: temporary lookup failure");
                if (r == 0)
                        return reject(rj, 550, "5.1.1",
                                      "Recipient address rejected: User unknown in local recipient table");
        }
        *ret = TAKE_PTR(list);
        return 0;
}
