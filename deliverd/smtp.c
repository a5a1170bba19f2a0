/* The SMTP client transport: groups a job's recipients by destination, finds
 * the hosts (transport table next hop, relay host or MX), applies the
 * destination's TLS policy and relay credentials, and tries the hosts in
 * order until one takes the transaction (smtp_session.c); connection I/O
 * is in smtp_conn.c. */
#include <arpa/inet.h>
#include <assert.h>
#include <strings.h>

#include "log.h"
#include "network.h"
#include "route.h"
#include "smtp.h"
#include "smtp_session.h"
#include "table.h"

/* ---- destinations ------------------------------------------------------ */

int smtp_parse_relay(const char *s, char *host, size_t size, uint16_t *ret_port, bool *ret_use_mx) {
        const char *h = s, *end, *port = NULL;
        bool bracket = false;
        unsigned long p = SMTP_PORT_DEFAULT;

        if (isempty(s))
                return -EINVAL;
        if (*s == '[') {
                end = strchr(s, ']');
                if (!end)
                        return -EINVAL;
                h = s + 1;
                bracket = true;
                if (end[1] == ':')
                        port = end + 2;
                else if (end[1] != 0)
                        return -EINVAL;
                if (strncasecmp(h, "IPv6:", 5) == 0)
                        h += 5;
        } else {
                end = strchr(s, ':');
                if (end) {
                        port = end + 1;
                        if (strchr(port, ':'))
                                return -EINVAL; /* an IPv6 address needs brackets */
                } else
                        end = s + strlen(s);
        }
        if (end == h || (size_t) (end - h) >= size)
                return -EINVAL;
        if (port) {
                char *e = NULL;
                if (*port < '0' || *port > '9')
                        return -EINVAL;
                errno = 0;
                p = strtoul(port, &e, 10);
                if (errno != 0 || *e != 0 || p == 0 || p > 65535)
                        return -EINVAL;
        }
        memcpy(host, h, (size_t) (end - h));
        host[end - h] = 0;
        if (!smtp_command_safe(host) || strchr(host, ' ') || strchr(host, '/'))
                return -EINVAL;
        *ret_port = (uint16_t) p;
        *ret_use_mx = !bracket;
        return 0;
}

/* Looks keys up in turn; the first hit is returned (free()), else NULL. */
static char *smtp_table_lookup(struct Table *t, const char *const *keys, size_t n) {
        for (size_t i = 0; t && i < n; i++) {
                char *v = NULL;
                if (!isempty(keys[i]) && table_lookup(t, keys[i], &v) >= 0)
                        return v;
        }
        return NULL;
}

/* The TLS level for a destination: the policy table by next hop as written
 * ("[relay.example]:587"), "[host]:port", host, then the recipient domain;
 * else TLSSecurityLevel. A bad table value is treated as "encrypt"'s
 * stricter sibling would be a guess: it defers instead (returns invalid). */
static TlsLevel smtp_tls_level(const DeliveryJob *job, const char *nexthop, const char *host, uint16_t port,
                               const char *domain) {
        char bracket[MX_NAME_MAX + 16];
        _cleanup_free_ char *v = NULL;

        (void) snprintf(bracket, sizeof(bracket), "[%s]:%u", host, (unsigned) port);
        v = smtp_table_lookup(job->tls_policy, (const char *const[]) { nexthop, bracket, host, domain }, 4);
        if (v) {
                /* "verify" or "verify match=..." : the first word is the level. */
                v[strcspn(v, " \t")] = 0;
                return tls_level_from_string(v);
        }
        return tls_level_from_string(job->config->smtp_tls_security_level);
}

/* Credentials for a relay: "user:password" under the next hop as written,
 * "[host]:port" or host. Returns 1 with new strings, 0 none, -ENOMEM. */
static int smtp_credentials(const DeliveryJob *job, const char *nexthop, const char *host, uint16_t port,
                            char **ret_user, char **ret_password) {
        char bracket[MX_NAME_MAX + 16];
        _cleanup_free_ char *v = NULL;
        char *colon;

        (void) snprintf(bracket, sizeof(bracket), "[%s]:%u", host, (unsigned) port);
        v = smtp_table_lookup(job->passwords, (const char *const[]) { nexthop, bracket, host }, 3);
        if (!v)
                return 0;
        colon = strchr(v, ':');
        if (!colon) {
                explicit_bzero(v, strlen(v));
                return 0;
        }
        *colon = 0;
        *ret_user = strdup(v);
        *ret_password = strdup(colon + 1);
        explicit_bzero(colon + 1, strlen(colon + 1));
        if (!*ret_user || !*ret_password) {
                free(*ret_user);
                free(*ret_password);
                return -ENOMEM;
        }
        return 1;
}

static const char *rcpt_domain(const DeliveryJob *job, size_t k) {
        const char *a = job->env->rcpts[job->rcpt_index[k]].addr, *at = a ? strrchr(a, '@') : NULL;
        return at ? at + 1 : "";
}

/* True when route says no more than "the MX of the recipient's domain":
 * then the domain's own rules apply (an unknown domain bounces). */
static bool smtp_route_is_own_mx(const Route *route, const char *domain) {
        return route->transport != ROUTE_SMTP || isempty(route->nexthop) ||
               (route->mx && !route->port && strcasecmp(route->nexthop, domain) == 0);
}

/* The connection kept open after the last message, for the next message
 * to the same destination in this worker (connection reuse). */
static SmtpConn *smtp_cached;
static char smtp_cached_key[MX_NAME_MAX + ROUTE_NEXTHOP_MAX + 64];

bool transport_smtp_has_cached(void) {
        return smtp_cached && smtp_cached->fd >= 0;
}

void transport_smtp_close_cached(void) {
        if (!smtp_cached)
                return;
        smtp_conn_quit(smtp_cached);
        free(smtp_cached);
        smtp_cached = NULL;
        smtp_cached_key[0] = 0;
}

static void smtp_deliver_dest(const DeliveryJob *job, const SmtpDest *d, DeliveryResult *results) {
        const Config *cfg = job->config;
        _cleanup_free_ MxTarget *targets = NULL;
        _cleanup_free_ SmtpConn *c = NULL;
        _cleanup_free_ char *user = NULL, *password = NULL;
        char host[MX_NAME_MAX], nexthop[ROUTE_NEXTHOP_MAX + 16] = "";
        char key[sizeof(smtp_cached_key)];
        bool spoke = false;
        uint16_t port = SMTP_PORT_DEFAULT;
        bool use_mx = true;
        SmtpSessionParams p = {
                .helo = cfg->hostname && smtp_command_safe(cfg->hostname) && !isempty(cfg->hostname)
                                ? cfg->hostname : "localhost",
        };
        uint64_t ct = cfg->smtp_connect_timeout_usec ?: SMTP_CONNECT_TIMEOUT_USEC;
        uint64_t rt = cfg->smtp_reply_timeout_usec ?: SMTP_REPLY_TIMEOUT_USEC;
        SmtpError err;
        int r, n;

        if (job->route && !(d->domain && smtp_route_is_own_mx(job->route, d->domain))) {
                const Route *rt_ = job->route;
                const char *h = isempty(rt_->nexthop) ? (d->domain ?: "") : rt_->nexthop;
                if (strlen(h) >= sizeof(host)) {
                        smtp_error_set(&err, DELIVERY_DEFERRED, "4.3.5", "next hop name too long");
                        smtp_session_results_rest(d, results, &err, "none");
                        return;
                }
                memcpy(host, h, strlen(h) + 1);
                port = rt_->port ?: SMTP_PORT_DEFAULT;
                use_mx = rt_->mx;
                if (use_mx)
                        (void) snprintf(nexthop, sizeof(nexthop), "%s", host);
                else
                        (void) snprintf(nexthop, sizeof(nexthop), "[%s]:%u", host, (unsigned) port);
        } else if (!d->domain) {
                if (smtp_parse_relay(cfg->relay_host, host, sizeof(host), &port, &use_mx) < 0) {
                        smtp_error_set(&err, DELIVERY_DEFERRED, "4.3.5", "invalid relay_host \"%s\"", cfg->relay_host);
                        smtp_session_results_rest(d, results, &err, "none");
                        return;
                }
                (void) snprintf(nexthop, sizeof(nexthop), "%s", cfg->relay_host);
        } else if (d->domain[0] == '[') {
                /* An address literal (RFC 5321 4.1.3): that host, no MX. */
                r = smtp_parse_relay(d->domain, host, sizeof(host), &port, &use_mx);
                if (r < 0 || inet_pton(strchr(host, ':') ? AF_INET6 : AF_INET, host, &(struct in6_addr) {}) != 1) {
                        smtp_error_set(&err, DELIVERY_BOUNCED, "5.1.2", "bad address literal %s", d->domain);
                        smtp_session_results_rest(d, results, &err, "none");
                        return;
                }
                port = SMTP_PORT_DEFAULT;
        } else
                (void) snprintf(host, sizeof(host), "%s", d->domain);

        p.tls_level = smtp_tls_level(job, nexthop, host, port, d->domain);
        if (p.tls_level < 0) {
                smtp_error_set(&err, DELIVERY_DEFERRED, "4.3.5", "invalid TLS policy for %s", host);
                smtp_session_results_rest(d, results, &err, "none");
                return;
        }
        /* Credentials go only to a relay the administrator named, never to
         * an MX found in the DNS. */
        if (!isempty(nexthop)) {
                r = smtp_credentials(job, nexthop, host, port, &user, &password);
                if (r < 0) {
                        smtp_error_set(&err, DELIVERY_DEFERRED, "4.3.0", "out of memory");
                        smtp_session_results_rest(d, results, &err, "none");
                        return;
                }
                p.auth_user = user;
                p.auth_password = password;
        }

        p.keep = cfg->smtp_connection_reuse_usec > 0;
        (void) snprintf(key, sizeof(key), "%s|%s|%u|%d|%s", host, nexthop, (unsigned) port, (int) p.tls_level,
                        user ?: "");
        if (smtp_cached && streq(key, smtp_cached_key)) {
                SmtpConn *cc = TAKE_PTR(smtp_cached);

                smtp_cached_key[0] = 0;
                cc->reused = true;
                r = smtp_session_mail(cc, &p, job, d, results);
                if (r != SMTP_SESSION_STALE) {
                        log_debug("%s: reused the connection to %s", job->env->id, cc->relay);
                        if (r < 0) {
                                smtp_error_set(&err, DELIVERY_DEFERRED, "4.3.0", "%s", strerror(-r));
                                smtp_session_results_rest(d, results, &err, cc->relay);
                        }
                        if (cc->fd >= 0) {
                                cc->reused = false;
                                smtp_cached = cc;
                                memcpy(smtp_cached_key, key, sizeof(key));
                        } else
                                free(cc);
                        goto finish;
                }
                smtp_conn_close(cc);
                free(cc);
        }
        transport_smtp_close_cached(); /* another destination: no use keeping it */

        n = mx_resolve(host, use_mx, port, cfg->dns_resolver, &targets);
        if (n < 0) {
                const char *type = use_mx ? "MX" : "A";
                if (n == -EPERM)
                        smtp_error_set(&err, DELIVERY_BOUNCED, "5.1.10",
                                       "Domain %s does not accept mail (nullMX)", host);
                else if (n == -ENXIO && d->domain)
                        smtp_error_set(&err, DELIVERY_BOUNCED, "5.1.2",
                                       "Host or domain name not found. Name service error for name=%s type=%s: Host not found",
                                       host, type);
                else if (n == -ENXIO)
                        /* The relay host is the administrator's to fix: keep the mail. */
                        smtp_error_set(&err, DELIVERY_DEFERRED, "4.3.5",
                                       "Host or domain name not found. Name service error for name=%s type=%s: Host not found",
                                       host, type);
                else
                        smtp_error_set(&err, DELIVERY_DEFERRED, "4.4.3",
                                       "Host or domain name not found. Name service error for name=%s type=%s: Host not found, try again",
                                       host, type);
                smtp_session_results_rest(d, results, &err, "none");
                goto finish;
        }

        c = new0(SmtpConn, 1);
        if (!c) {
                smtp_error_set(&err, DELIVERY_DEFERRED, "4.3.0", "out of memory");
                smtp_session_results_rest(d, results, &err, "none");
                goto finish;
        }
        c->fd = -EBADF;
        smtp_error_set(&err, DELIVERY_DEFERRED, "4.4.1", "no host to connect to");
        for (int i = 0; i < n; i++) {
                const MxTarget *t = &targets[i];
                char addr[INET6_ADDRSTRLEN];
                SmtpSessionParams tp = p;

                if (sockaddr_to_string((const struct sockaddr *) &t->addr, t->addr_len, addr, sizeof(addr)) < 0)
                        (void) snprintf(addr, sizeof(addr), "?");
                /* "verify" checks the certificate against the MX host name
                 * (or the relay host's), as Postfix's default matching does. */
                tp.tls_name = t->host;
                for (int attempt = 0; attempt < 2; attempt++) {
                        smtp_conn_reset(c, t->host, addr, port, rt);
                        r = smtp_conn_connect(c, (const struct sockaddr *) &t->addr, t->addr_len, ct);
                        if (r < 0) {
                                /* What a server said earlier explains more than a
                                 * later address that refused the connection. */
                                if (!spoke)
                                        smtp_error_set(&err, DELIVERY_DEFERRED, "4.4.1", "connect to %s[%s]:%u: %s",
                                                       c->host, c->addr, (unsigned) port,
                                                       r == -ETIMEDOUT ? "Connection timed out" : strerror(-r));
                                break;
                        }
                        spoke = true;
                        r = smtp_session_run(c, &tp, job, d, results, &err);
                        if (r == SMTP_SESSION_RETRY_PLAIN) {
                                /* Postfix's way for "may": the same host again, without TLS. */
                                log_info("%s: %s, trying %s again without TLS", job->env->id, err.text, c->relay);
                                tp.tls_level = TLS_NONE;
                                continue;
                        }
                        if (r < 0) {
                                smtp_error_set(&err, DELIVERY_DEFERRED, "4.3.0", "%s", strerror(-r));
                                smtp_session_results_rest(d, results, &err, c->relay);
                        }
                        if (r == SMTP_SESSION_DONE && c->fd >= 0) {
                                /* Kept open for the next message to this destination. */
                                smtp_cached = TAKE_PTR(c);
                                memcpy(smtp_cached_key, key, sizeof(key));
                        }
                        if (r != SMTP_SESSION_NEXT_HOST)
                                goto finish;
                        break;
                }
                if (i + 1 < n)
                        log_debug("%s, trying the next host", err.text);
        }
        smtp_session_results_rest(d, results, &err, "none");
finish:
        if (c)
                smtp_conn_close(c);
        if (password)
                explicit_bzero(password, strlen(password));
}

typedef struct DomainKey {
        const char *domain;
        size_t k;
} DomainKey;

static int domain_key_compare(const void *a, const void *b) {
        const DomainKey *x = a, *y = b;
        int r = strcasecmp(x->domain, y->domain);
        return r != 0 ? r : (x->k > y->k) - (x->k < y->k);
}

int transport_smtp_deliver(const DeliveryJob *job, DeliveryResult *results) {
        _cleanup_free_ DomainKey *keys = NULL;
        _cleanup_free_ size_t *ks = NULL;
        /* One next hop for all (relay host, or a transport table entry that
         * names one): a single destination; otherwise one per domain. */
        bool relay = job->route ? !smtp_route_is_own_mx(job->route, job->n_rcpts > 0 ? rcpt_domain(job, 0) : "")
                                : !isempty(job->config->relay_host);
        SmtpError e;

        assert(job && results);
        for (size_t k = 0; k < job->n_rcpts; k++)
                results[k] = (DeliveryResult) { .status = DELIVERY_NONE };
        if (job->n_rcpts == 0)
                return 0;
        keys = new0(DomainKey, job->n_rcpts);
        ks = new0(size_t, job->n_rcpts);
        if (!keys || !ks)
                return -ENOMEM;

        /* Addresses go into command lines: refuse what could inject one. */
        if (!smtp_command_safe(job->env->sender ? job->env->sender : "") ||
            (job->env->sender && strlen(job->env->sender) > 256)) {
                smtp_error_set(&e, DELIVERY_BOUNCED, "5.1.7", "bad sender address syntax");
                for (size_t k = 0; k < job->n_rcpts; k++)
                        smtp_result_set(&results[k], &e, "none");
                return 0;
        }
        for (size_t k = 0; k < job->n_rcpts; k++) {
                const char *a = job->env->rcpts[job->rcpt_index[k]].addr;
                keys[k] = (DomainKey) { .domain = relay ? "" : rcpt_domain(job, k), .k = k };
                if (!a || !smtp_command_safe(a) || strlen(a) > 256) {
                        smtp_error_set(&e, DELIVERY_BOUNCED, "5.1.3", "bad recipient address syntax");
                        smtp_result_set(&results[k], &e, "none");
                } else if (!relay && isempty(keys[k].domain)) {
                        smtp_error_set(&e, DELIVERY_BOUNCED, "5.1.2", "recipient address has no domain");
                        smtp_result_set(&results[k], &e, "none");
                }
        }
        qsort(keys, job->n_rcpts, sizeof(keys[0]), domain_key_compare);

        for (size_t start = 0, end; start < job->n_rcpts; start = end) {
                SmtpDest d = { .domain = relay ? NULL : keys[start].domain, .ks = ks, .n = 0 };

                for (end = start; end < job->n_rcpts && strcasecmp(keys[end].domain, keys[start].domain) == 0;
                     end++)
                        if (results[keys[end].k].status == DELIVERY_NONE)
                                ks[d.n++] = keys[end].k;
                if (d.n > 0)
                        smtp_deliver_dest(job, &d, results);
        }

        /* Every path above fills its recipients; this only guards the promise
         * that each result is filled. */
        smtp_error_set(&e, DELIVERY_DEFERRED, "4.3.0", "internal error: no result");
        for (size_t k = 0; k < job->n_rcpts; k++)
                if (results[k].status == DELIVERY_NONE)
                        smtp_result_set(&results[k], &e, "none");
        return 0;
}
