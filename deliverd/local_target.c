/* What a local-delivery child does for its target, as the target's
 * account: the user's .forward (its items run as the user; addresses become
 * one new message, forward.c), else the mailbox (Maildir or mbox, with
 * Return-Path and Delivered-To); a file in mbox format; a command
 * (pipe.c); a virtual mailbox (virtual.c). */
#include <ctype.h>

#include "forward.h"
#include "local.h"
#include "local_target.h"
#include "mailbox.h"
#include "maildir.h"
#include "mbox.h"
#include "pipe.h"
#include "virtual.h"

const char *local_target_sender(const LocalCtx *ctx, const LocalTarget *t) {
        return t && t->sender ? t->sender : ctx->job->env->sender;
}

/* The message as stored: Return-Path, Delivered-To, LF line ends. */
static int local_format(const LocalCtx *ctx, const char *sender, bool mbox, char **ret, size_t *ret_len) {
        return mailbox_format(sender, ctx->rcpt, ctx->job->body, ctx->job->body_len, mbox, ret, ret_len);
}

#define LOCAL_FROM_LINE_MAX 1024u

/* The message (local_format) and the mbox "From " line that goes before it.
 * 0, or -errno with res set. */
static int local_format_with_from(const LocalCtx *ctx, const char *sender, bool mbox, char **ret,
                                  size_t *ret_len, char from[static LOCAL_FROM_LINE_MAX],
                                  DeliveryResult *res) {
        int r = local_format(ctx, sender, mbox, ret, ret_len);

        if (r < 0) {
                local_result_errno(res, r, "cannot format message");
                return r;
        }
        r = mailbox_from_line(sender, (int64_t) (ctx->job->env->arrival_usec / 1000000u), from,
                              LOCAL_FROM_LINE_MAX);
        if (r < 0) {
                local_result_errno(res, r, "cannot format mbox separator");
                return r;
        }
        return 0;
}

static void local_append_mbox(const LocalCtx *ctx, const char *sender, const char *path,
                              DeliveryResult *res) {
        _cleanup_free_ char *msg = NULL;
        char from[LOCAL_FROM_LINE_MAX];
        size_t len;

        if (local_format_with_from(ctx, sender, true, &msg, &len, from, res) < 0)
                return;
        /* Half of the time limit for the locks, the rest for writing. */
        mbox_deliver(path, from, msg, len, ctx->timeout / 2, res);
}

static void local_mailbox(const LocalCtx *ctx, const char *sender, const LocalUser *u,
                          DeliveryResult *res) {
        _cleanup_free_ char *path = NULL, *msg = NULL;
        size_t len;
        int r;

        r = mailbox_expand_path(ctx->config->mailbox_path, u->name, u->home, &path);
        if (r < 0)
                return local_result_errno(res, r, "cannot expand mailbox path \"%s\" for \"%s\"",
                                          ctx->config->mailbox_path, u->name);
        if (ctx->config->mailbox_format == MAILBOX_MBOX)
                return local_append_mbox(ctx, sender, path, res);
        r = local_format(ctx, sender, false, &msg, &len);
        if (r < 0)
                return local_result_errno(res, r, "cannot format message");
        maildir_deliver(path, ctx->hostname, msg, len, res);
}

static void local_command(const LocalCtx *ctx, const char *sender, const char *command,
                          const LocalUser *u, DeliveryResult *res) {
        _cleanup_free_ char *msg = NULL, *local = NULL;
        size_t len;
        int r;

        r = local_format(ctx, sender, false, &msg, &len);
        if (r < 0)
                return local_result_errno(res, r, "cannot format message");
        local = strdup(ctx->route->local);
        if (!local)
                return local_result_errno(res, -ENOMEM, "cannot run command");
        for (char *p = local; *p; p++)
                *p = (char) tolower((unsigned char) *p);
        PipeEnv env = {
                .sender = sender,
                .recipient = ctx->rcpt,
                .original_recipient = ctx->orcpt,
                .user = u->name,
                .home = u->home,
                .shell = u->shell,
                .local = local,
                .extension = ctx->route->extension,
                .domain = ctx->route->domain[0] ? ctx->route->domain : ctx->hostname,
        };
        /* The command gets the time left before the child's own alarm. */
        pipe_deliver(command, &env, msg, len, ctx->timeout - ctx->timeout / 10, res);
}

/* Worst first: one deferred target defers the recipient (queued retries
 * it), else one bounced target bounces it. */
static int result_rank(DeliveryStatus s) {
        return s == DELIVERY_DEFERRED ? 3 : s == DELIVERY_BOUNCED ? 2 : s == DELIVERY_DELIVERED ? 1 : 4;
}

void local_merge(DeliveryResult *total, const DeliveryResult *part, bool *first) {
        if (*first || result_rank(part->status) > result_rank(total->status)) {
                *total = *part;
                *first = false;
        }
}

/* Delivers a list of targets that all run as the current user (a
 * .forward's), in the child. Addresses become one new message. */
static void local_forward_targets(const LocalCtx *ctx, const LocalTargets *ts, const LocalUser *u,
                                  DeliveryResult *res) {
        _cleanup_free_ char **addrs = new0(char *, ts->n + 1);
        const char *sender = NULL;
        size_t n_addrs = 0;
        bool first = true;

        if (!addrs)
                return local_result_errno(res, -ENOMEM, "cannot expand .forward");
        for (size_t i = 0; i < ts->n; i++) {
                const LocalTarget *t = &ts->t[i];
                DeliveryResult part = {};

                switch (t->type) {
                case LOCAL_TARGET_MAILBOX:
                        local_mailbox(ctx, local_target_sender(ctx, t), u, &part);
                        break;
                case LOCAL_TARGET_FILE:
                        local_append_mbox(ctx, local_target_sender(ctx, t), t->value, &part);
                        break;
                case LOCAL_TARGET_COMMAND:
                        local_command(ctx, local_target_sender(ctx, t), t->value, u, &part);
                        break;
                default:
                        addrs[n_addrs++] = t->value;
                        sender = local_target_sender(ctx, t);
                        continue;
                }
                local_merge(res, &part, &first);
        }
        if (n_addrs > 0) {
                DeliveryResult part = {};
                forward_submit(ctx->config, sender, ctx->rcpt, addrs, n_addrs, ctx->job->body,
                               ctx->job->body_len, &part);
                local_merge(res, &part, &first);
        }
}

/* In the child as the recipient: its .forward, else its mailbox. */
void local_child_mailbox(const LocalCtx *ctx, const LocalTarget *t, const LocalUser *u,
                          DeliveryResult *res) {
        _cleanup_free_ char *path = NULL, *content = NULL;
        LocalTargets ts = {};
        char err[256] = "";
        int r;

        /* root's .forward is not read: its commands would run as root. */
        if (!t->no_forward && u->uid != 0 && !isempty(ctx->config->forward_path)) {
                const char *delim = ctx->config->recipient_delimiter, *ext = ctx->route->extension;

                r = mailbox_expand_path(ctx->config->forward_path, u->name, u->home, &path);
                /* user+ext: "~/.forward+ext" first, as Postfix's default
                 * forward_path; only for the recipient's own account. */
                if (r >= 0 && ext[0] && !isempty(delim) && !strchr(ext, '/') &&
                    streq(ctx->route->user, t->value)) {
                        _cleanup_free_ char *ext_path = NULL;

                        if (asprintf(&ext_path, "%s%c%s", path, delim[0], ext) < 0)
                                return local_result_errno(res, -ENOMEM, "cannot read forward file");
                        for (char *p = ext_path + strlen(path) + 1; *p; p++)
                                *p = (char) tolower((unsigned char) *p);
                        r = forward_read(ext_path, u->uid, &content);
                        if (r >= 0 && content) {
                                free(path);
                                path = TAKE_PTR(ext_path);
                        }
                }
                if (r >= 0 && !content)
                        r = forward_read(path, u->uid, &content);
                if (r == -EINVAL)
                        /* sendmail and Postfix ignore an unsafe .forward: the
                         * mail stays with the user instead of going astray. */
                        free(TAKE_PTR(content));
                else if (r < 0)
                        return local_result_errno(res, r, "cannot read \"%s\"", path ?: "forward file");
        }
        if (!content)
                return local_mailbox(ctx, local_target_sender(ctx, t), u, res);

        AliasContext a = {
                .config = ctx->config,
                .forward = true,
                .self = u->name,
                .domain = ctx->route->domain,
        };
        r = alias_expand_list(&a, content, (AliasOwner) { u->uid, u->gid }, t->sender, &ts, err,
                              sizeof(err));
        if (r == -ELOOP || r == -E2BIG)
                local_result(res, DELIVERY_BOUNCED, "5.4.6", "%s: .forward expansion too deep or too large",
                             path);
        else if (r < 0)
                local_result(res, DELIVERY_DEFERRED, "4.3.0", "bad .forward \"%s\": %s", path,
                             err[0] ? err : strerror(-r));
        else
                local_forward_targets(ctx, &ts, u, res);
        local_targets_done(&ts);
}

void local_child_file(const LocalCtx *ctx, const LocalTarget *t, const LocalUser *u,
                       DeliveryResult *res) {
        (void) u;
        local_append_mbox(ctx, local_target_sender(ctx, t), t->value, res);
        if (res->status == DELIVERY_DELIVERED)
                (void) snprintf(res->text, sizeof(res->text), "delivered to file: %.400s", t->value);
}

void local_child_command(const LocalCtx *ctx, const LocalTarget *t, const LocalUser *u,
                          DeliveryResult *res) {
        local_command(ctx, local_target_sender(ctx, t), t->value, u, res);
}

void local_child_virtual(const LocalCtx *ctx, const LocalTarget *t, const LocalUser *u,
                          DeliveryResult *res) {
        _cleanup_free_ char *msg = NULL;
        const char *sender = local_target_sender(ctx, t);
        bool maildir = virtual_is_maildir(ctx->route->nexthop);
        char from[LOCAL_FROM_LINE_MAX];
        size_t len;

        (void) u;
        if (local_format_with_from(ctx, sender, !maildir, &msg, &len, from, res) < 0)
                return;
        virtual_deliver(ctx->route->nexthop, ctx->hostname, from, msg, len, ctx->timeout / 2, res);
}

