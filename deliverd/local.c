/* The local transport: for each recipient, its route (common/route.h), the
 * Delivered-To loop check, alias expansion (alias.c), then one child per
 * target that becomes the user the target belongs to (supplementary groups,
 * gid, uid, checked to be irreversible) before it touches anything: the
 * recipient for a mailbox and its .forward, the alias or :include: file's
 * owner (DefaultPrivileges instead of root) for files and commands,
 * MailboxUser for virtual mailboxes. Addresses are sent on as a new message
 * (forward.c). The children are local_run.c's, what they do is
 * local_target.c's. Run with CAP_SETUID/CAP_SETGID, in the privileged local
 * helper when deliverd is sandboxed (local_helper.c). */
#include <ctype.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "alias.h"
#include "forward.h"
#include "local.h"
#include "local_helper.h"
#include "local_run.h"
#include "local_target.h"
#include "mailbox.h"
#include "route.h"

void local_result(DeliveryResult *r, DeliveryStatus status, const char *dsn, const char *fmt, ...) {
        va_list ap;

        r->status = status;
        (void) snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
        (void) snprintf(r->relay, sizeof(r->relay), "local");
        va_start(ap, fmt);
        (void) vsnprintf(r->text, sizeof(r->text), fmt, ap);
        va_end(ap);
}

void local_result_errno(DeliveryResult *r, int error, const char *fmt, ...) {
        char what[384];
        const char *dsn = "4.2.0";
        va_list ap;

        error = abs(error);
        if (error == EDQUOT)
                dsn = "4.2.2";
        else if (error == ENOSPC)
                dsn = "4.3.0";
        va_start(ap, fmt);
        (void) vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        local_result(r, DELIVERY_DEFERRED, dsn, "%s: %s", what, strerror(error));
}

/* DefaultPrivileges: never root. */
static int local_default_privs(const Config *c, AliasOwner *ret) {
        LocalUser u;
        int r = local_user_by_name(isempty(c->default_privileges) ? "nobody" : c->default_privileges, &u);

        if (r < 0)
                return r;
        if (u.uid == 0)
                return -EPERM;
        *ret = (AliasOwner) { u.uid, u.gid };
        return 0;
}

static void local_target(const LocalCtx *ctx, const LocalTarget *t, DeliveryResult *res) {
        LocalUser u;
        const char *name = t->value;
        int r;

        switch (t->type) {
        case LOCAL_TARGET_MAILBOX:
                /* RFC 5321 4.5.1: postmaster must exist; without an alias it is root's. */
                if (streq(name, "postmaster"))
                        name = "root";
                r = local_user_by_name(name, &u);
                if (r == -ENOENT)
                        return local_result(res, DELIVERY_BOUNCED, "5.1.1", "unknown user: \"%.128s\"", name);
                if (r < 0)
                        return local_result_errno(res, r, "user lookup of \"%.128s\" failed", name);
                if (ctx->config->mailbox_format == MAILBOX_MBOX) {
                        _cleanup_free_ char *path = NULL;
                        if (mailbox_expand_path(ctx->config->mailbox_path, u.name, u.home, &path) >= 0)
                                local_spool_group(path, &u);
                }
                return local_spawn(ctx, &u, local_child_mailbox, t, res);
        case LOCAL_TARGET_FILE:
        case LOCAL_TARGET_COMMAND:
                r = local_user_by_uid(t->uid, t->gid, &u);
                if (r < 0)
                        return local_result_errno(res, r, "user lookup of uid %u failed", (unsigned) t->uid);
                return local_spawn(ctx, &u, t->type == LOCAL_TARGET_FILE ? local_child_file : local_child_command, t,
                                   res);
        default:
                return local_result(res, DELIVERY_DEFERRED, "4.3.0", "internal error: address target");
        }
}

/* "rfc822;a+2Bb@x" -> "a+b@x" (RFC 3461 4.2 xtext); NULL when absent or not rfc822. */
static char *local_orcpt_decode(const char *orcpt) {
        const char *p;
        char *out, *q;

        if (!orcpt || strncasecmp(orcpt, "rfc822;", 7) != 0)
                return NULL;
        p = orcpt + 7;
        out = q = malloc(strlen(p) + 1);
        if (!out)
                return NULL;
        for (; *p; p++) {
                unsigned v;
                if (p[0] == '+' && sscanf(p + 1, "%2x", &v) == 1 && isxdigit((unsigned char) p[1]) &&
                    isxdigit((unsigned char) p[2])) {
                        *q++ = (char) (v >= 0x20 && v < 0x7f ? v : '?');
                        p += 2;
                } else
                        *q++ = *p;
        }
        *q = 0;
        return out;
}

/* ROUTE_LOCAL: aliases, then the targets. */
static void local_deliver_local(const LocalCtx *ctx, Router *router, DeliveryResult *res) {
        const Config *c = ctx->config;
        _cleanup_free_ char *alias_cdb = NULL;
        char local[sizeof(ctx->route->local)], err[256] = "";
        LocalTargets ts = {};
        AliasContext a = {
                .config = c,
                .aliases = router_alias_table(router),
                .domain = ctx->route->domain,
        };
        struct stat st;
        bool first = true;
        char **addrs = NULL;
        size_t n_addrs = 0;
        const char *fwd_sender = NULL;
        int r;

        if (ctx->route->local[0] == '"')
                return local_result(res, DELIVERY_BOUNCED, "5.1.1", "unknown user: \"%.128s\"",
                                    ctx->route->local);
        for (size_t i = 0; i < sizeof(local); i++) {
                local[i] = (char) tolower((unsigned char) ctx->route->local[i]);
                if (!local[i])
                        break;
        }
        r = local_default_privs(c, &a.default_privs);
        if (r < 0)
                return local_result(res, DELIVERY_DEFERRED, "4.3.5",
                                    "DefaultPrivileges \"%s\" is unusable (unknown, or root)",
                                    c->default_privileges);
        /* Files and commands of the alias file run as its owner (newaliases
         * gives the .cdb the source's owner), or DefaultPrivileges for root. */
        a.owner = a.default_privs;
        if (a.aliases && asprintf(&alias_cdb, "%s.cdb", c->alias_file) >= 0 && stat(alias_cdb, &st) == 0 &&
            st.st_uid != 0)
                a.owner = (AliasOwner) { st.st_uid, st.st_gid };

        r = alias_expand(&a, local, ctx->route->user, &ts, err, sizeof(err));
        if (r == 0)
                r = local_targets_add_mailbox(&ts, ctx->route->user);
        if (r == -ELOOP)
                local_result(res, DELIVERY_BOUNCED, "5.4.6", "alias expansion of \"%s\" too deep (loop?)",
                             local);
        else if (r == -E2BIG)
                local_result(res, DELIVERY_BOUNCED, "5.3.0", "alias expansion of \"%s\" too large", local);
        else if (r < 0)
                local_result(res, DELIVERY_DEFERRED, "4.3.0", "alias expansion of \"%s\" failed: %s", local,
                             err[0] ? err : strerror(-r));
        if (r < 0)
                goto out;

        addrs = new0(char *, ts.n + 1);
        if (!addrs) {
                local_result_errno(res, -ENOMEM, "alias expansion");
                goto out;
        }
        for (size_t i = 0; i < ts.n; i++) {
                DeliveryResult part = {};

                if (ts.t[i].type == LOCAL_TARGET_ADDRESS) {
                        addrs[n_addrs++] = ts.t[i].value;
                        fwd_sender = local_target_sender(ctx, &ts.t[i]);
                        continue;
                }
                local_target(ctx, &ts.t[i], &part);
                local_merge(res, &part, &first);
        }
        if (n_addrs > 0) {
                DeliveryResult part = {};
                forward_submit(c, fwd_sender, ctx->rcpt, addrs, n_addrs, ctx->job->body,
                               ctx->job->body_len, &part);
                local_merge(res, &part, &first);
        }
        if (first)
                local_result(res, DELIVERY_BOUNCED, "5.1.1", "alias \"%s\" has no members", local);
out:
        free(addrs);
        local_targets_done(&ts);
}

static void local_deliver_virtual(const LocalCtx *ctx, DeliveryResult *res) {
        LocalUser u;
        int r;

        r = local_user_by_name(ctx->config->virtual_mailbox_user, &u);
        if (r < 0 || u.uid == 0)
                return local_result(res, DELIVERY_DEFERRED, "4.3.5",
                                    "MailboxUser \"%s\" is unusable (unknown, or root)",
                                    ctx->config->virtual_mailbox_user);
        local_spawn(ctx, &u, local_child_virtual, &(LocalTarget) {}, res);
        (void) snprintf(res->relay, sizeof(res->relay), "virtual");
}

static void local_deliver_one(const DeliveryJob *job, Router *router, size_t index,
                              DeliveryResult *res) {
        const SpoolRcpt *rc = &job->env->rcpts[index];
        const Config *c = job->config;
        _cleanup_free_ char *orcpt = local_orcpt_decode(rc->orcpt);
        char host[256];
        Route route;
        int r;

        r = route_resolve(router, rc->addr, &route);
        if (r == -EINVAL)
                return local_result(res, DELIVERY_BOUNCED, "5.1.3", "bad address syntax");
        if (r < 0)
                return local_result_errno(res, r, "cannot route \"%.200s\"", rc->addr);

        LocalCtx ctx = {
                .job = job,
                .config = c,
                .rcpt = rc->addr,
                .orcpt = orcpt ?: rc->addr,
                .route = &route,
                .hostname = local_hostname(c, host, sizeof(host)),
                .timeout = c->local_delivery_timeout_usec ?: LOCAL_TIMEOUT_DEFAULT_USEC,
        };

        switch (route.transport) {
        case ROUTE_DISCARD:
                local_result(res, DELIVERY_DELIVERED, "2.0.0", "%s", route.nexthop);
                (void) snprintf(res->relay, sizeof(res->relay), "discard");
                return;
        case ROUTE_ERROR:
                local_result(res, route.dsn[0] == '4' ? DELIVERY_DEFERRED : DELIVERY_BOUNCED, route.dsn,
                             "%s", route.nexthop);
                (void) snprintf(res->relay, sizeof(res->relay), "error");
                return;
        case ROUTE_LOCAL:
        case ROUTE_VIRTUAL:
                break;
        default:
                return local_result(res, DELIVERY_DEFERRED, "4.3.0", "%s is not a local transport",
                                    route_transport_to_string(route.transport));
        }
        /* RFC 5321 6.3 / Postfix: a message that already went through this
         * recipient is looping between aliases or forward files. */
        if (mailbox_has_delivered_to(job->body, job->body_len, rc->addr))
                return local_result(res, DELIVERY_BOUNCED, "5.4.6", "mail forwarding loop for %s",
                                    rc->addr);
        if (route.transport == ROUTE_VIRTUAL)
                return local_deliver_virtual(&ctx, res);
        local_deliver_local(&ctx, router, res);
}

bool local_handles(const Config *c, const char *rcpt) {
        _cleanup_(router_freep) Router *router = NULL;
        Route route;

        if (router_new(c, &router) < 0 || route_resolve(router, rcpt, &route) < 0)
                return true; /* the local transport reports the error */
        return route.transport != ROUTE_SMTP && route.transport != ROUTE_LMTP;
}

int local_deliver_direct(const DeliveryJob *job, DeliveryResult *results) {
        _cleanup_(router_freep) Router *router = NULL;
        int r;

        r = router_new(job->config, &router);
        if (r < 0)
                return r;
        for (size_t k = 0; k < job->n_rcpts; k++)
                local_deliver_one(job, router, job->rcpt_index[k], &results[k]);
        return 0;
}

int transport_local_deliver(const DeliveryJob *job, DeliveryResult *results) {
        /* Sandboxed deliverd: the helper that kept CAP_SETUID/CAP_SETGID does it. */
        if (local_helper_active())
                return local_helper_deliver(job, results);
        return local_deliver_direct(job, results);
}

