/* The LMTP client transport (RFC 2033): all recipients of the job in one
 * transaction to the mailbox server named by the route, over a UNIX socket
 * ("lmtp:unix:/path") or TCP ("lmtp:[host]:port", port 24 by default), with
 * one reply per recipient after the message. The dialogue is the SMTP
 * client's (smtp_session.c) with LHLO and the per-recipient replies. */
#include <assert.h>
#include <sys/un.h>

#include "lmtp.h"
#include "log.h"
#include "network.h"
#include "route.h"
#include "smtp_session.h"

#define LMTP_PORT_DEFAULT 24u

int transport_lmtp_deliver(const DeliveryJob *job, DeliveryResult *results) {
        const Config *cfg = job->config;
        const Route *route = job->route;
        _cleanup_free_ SmtpConn *c = NULL;
        _cleanup_free_ MxTarget *targets = NULL;
        _cleanup_free_ size_t *ks = NULL;
        uint64_t ct = cfg->smtp_connect_timeout_usec ?: SMTP_CONNECT_TIMEOUT_USEC;
        uint64_t rt = cfg->smtp_reply_timeout_usec ?: SMTP_REPLY_TIMEOUT_USEC;
        SmtpSessionParams p = {
                .helo = cfg->hostname && smtp_command_safe(cfg->hostname) && !isempty(cfg->hostname)
                                ? cfg->hostname : "localhost",
                .tls_level = TLS_NONE, /* a mailbox server next door: no STARTTLS (Postfix lmtp default) */
        };
        SmtpDest d = {};
        SmtpError err;
        int r, n;

        assert(job && results);
        for (size_t k = 0; k < job->n_rcpts; k++)
                results[k] = (DeliveryResult) { .status = DELIVERY_NONE };
        if (job->n_rcpts == 0)
                return 0;
        ks = new0(size_t, job->n_rcpts);
        c = new0(SmtpConn, 1);
        if (!ks || !c)
                return -ENOMEM;
        c->fd = -EBADF;
        c->lmtp = true;
        d.ks = ks;

        if (!route || route->transport != ROUTE_LMTP || isempty(route->nexthop)) {
                smtp_error_set(&err, DELIVERY_DEFERRED, "4.3.5", "no LMTP server configured for this recipient");
                for (size_t k = 0; k < job->n_rcpts; k++)
                        smtp_result_set(&results[k], &err, "none");
                return 0;
        }
        for (size_t k = 0; k < job->n_rcpts; k++) {
                const char *a = job->env->rcpts[job->rcpt_index[k]].addr;
                if (!a || !smtp_command_safe(a) || strlen(a) > 256) {
                        smtp_error_set(&err, DELIVERY_BOUNCED, "5.1.3", "bad recipient address syntax");
                        smtp_result_set(&results[k], &err, "none");
                } else
                        ks[d.n++] = k;
        }
        if (!smtp_command_safe(job->env->sender ?: "") || strlen(job->env->sender ?: "") > 256) {
                smtp_error_set(&err, DELIVERY_BOUNCED, "5.1.7", "bad sender address syntax");
                smtp_session_results_rest(&d, results, &err, "none");
                return 0;
        }
        if (d.n == 0)
                return 0;

        if (route->unix_socket) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                size_t len = strlen(route->nexthop);

                if (len >= sizeof(sa.sun_path)) {
                        smtp_error_set(&err, DELIVERY_DEFERRED, "4.3.5", "LMTP socket path too long");
                        smtp_session_results_rest(&d, results, &err, "none");
                        return 0;
                }
                memcpy(sa.sun_path, route->nexthop, len + 1);
                smtp_conn_reset(c, route->nexthop, "unix", 0, rt);
                /* Postfix writes relay=HOST[PATH] for a UNIX socket. */
                (void) snprintf(c->relay, sizeof(c->relay), "%s", route->nexthop);
                n = 1;
                r = smtp_conn_connect(c, (const struct sockaddr *) &sa, sizeof(sa), ct);
                if (r < 0) {
                        smtp_error_set(&err, DELIVERY_DEFERRED, "4.4.1", "connect to %s: %s", route->nexthop,
                                       r == -ETIMEDOUT ? "Connection timed out" : strerror(-r));
                        smtp_session_results_rest(&d, results, &err, c->relay);
                        return 0;
                }
                r = smtp_session_run(c, &p, job, &d, results, &err);
                if (r < 0)
                        return r;
                if (r != SMTP_SESSION_DONE)
                        smtp_session_results_rest(&d, results, &err, c->relay);
                return 0;
        }

        n = mx_resolve(route->nexthop, false, route->port ?: LMTP_PORT_DEFAULT, cfg->dns_resolver, &targets);
        if (n < 0) {
                smtp_error_set(&err, DELIVERY_DEFERRED, n == -ENXIO ? "4.3.5" : "4.4.3",
                               "Host or domain name not found. Name service error for name=%s type=A: Host not found%s",
                               route->nexthop, n == -ENXIO ? "" : ", try again");
                smtp_session_results_rest(&d, results, &err, "none");
                return 0;
        }
        smtp_error_set(&err, DELIVERY_DEFERRED, "4.4.1", "no host to connect to");
        for (int i = 0; i < n; i++) {
                char addr[INET6_ADDRSTRLEN];

                if (sockaddr_to_string((const struct sockaddr *) &targets[i].addr, targets[i].addr_len, addr,
                                       sizeof(addr)) < 0)
                        (void) snprintf(addr, sizeof(addr), "?");
                smtp_conn_reset(c, targets[i].host, addr, route->port ?: LMTP_PORT_DEFAULT, rt);
                r = smtp_conn_connect(c, (const struct sockaddr *) &targets[i].addr, targets[i].addr_len, ct);
                if (r < 0) {
                        smtp_error_set(&err, DELIVERY_DEFERRED, "4.4.1", "connect to %s: %s", c->relay,
                                       r == -ETIMEDOUT ? "Connection timed out" : strerror(-r));
                        continue;
                }
                r = smtp_session_run(c, &p, job, &d, results, &err);
                if (r < 0)
                        return r;
                if (r == SMTP_SESSION_DONE)
                        return 0;
        }
        smtp_session_results_rest(&d, results, &err, "none");
        return 0;
}
