/* The local transport: for each recipient, its route (common/route.h), the
 * Delivered-To loop check, alias expansion (alias.c), then one child per
 * target that becomes the user the target belongs to (supplementary groups,
 * gid, uid, checked to be irreversible) before it touches anything: the
 * recipient for a mailbox and its .forward, the alias or :include: file's
 * owner (DefaultPrivileges instead of root) for files and commands,
 * MailboxUser for virtual mailboxes. Addresses are sent on as a new message
 * (forward.c). A child reports its DeliveryResult through a pipe; the
 * parent enforces the time limit. Run with CAP_SETUID/CAP_SETGID, in the
 * privileged local helper when deliverd is sandboxed (local_helper.c). */
#include <ctype.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

#include "alias.h"
#include "forward.h"
#include "local.h"
#include "local_helper.h"
#include "mailbox.h"
#include "maildir.h"
#include "mbox.h"
#include "pipe.h"
#include "route.h"
#include "virtual.h"

#define LOCAL_TIMEOUT_DEFAULT_USEC (300ull * 1000000ull)
/* The child's own alarm fires first; the worker's kill is the fallback. */
#define LOCAL_KILL_GRACE_USEC (2ull * 1000000ull)
#define LOCAL_GROUPS_MAX 256

typedef struct LocalUser {
        char name[LOGIN_NAME_MAX + 1];
        char home[PATH_MAX];
        char shell[PATH_MAX];
        uid_t uid;
        gid_t gid;
        gid_t extra_gid; /* group of a shared mail spool, or (gid_t) -1 */
} LocalUser;

/* One recipient being delivered, shared (read-only) with the children. */
typedef struct LocalCtx {
        const DeliveryJob *job;
        const Config *config;
        const char *rcpt;
        const char *orcpt;      /* decoded ORCPT, or rcpt */
        const Route *route;
        const char *hostname;
        uint64_t timeout;
} LocalCtx;

typedef void (*LocalChildFn)(const LocalCtx *ctx, const LocalTarget *t, const LocalUser *u,
                             DeliveryResult *res);

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

static uint64_t now_usec(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ull + (uint64_t) ts.tv_nsec / 1000ull;
}

/* Becomes u for good: groups, gid, uid, then proves root cannot come back. */
static int local_become(const LocalUser *u) {
        uid_t ru, eu, su;
        gid_t rg, eg, sg;

        if (geteuid() != 0)
                return getuid() == u->uid && geteuid() == u->uid ? 0 : -EPERM;
        if (u->uid == 0) {
                /* root's own mailbox: uid 0 stays, every capability goes, so
                 * the child cannot write what root's uid does not own. */
                cap_t caps = cap_init();
                if (!caps)
                        return -errno;
                if (setgroups(0, NULL) < 0 || setresgid(u->gid, u->gid, u->gid) < 0 ||
                    cap_set_proc(caps) < 0) {
                        int r = -errno;
                        cap_free(caps);
                        return r;
                }
                cap_free(caps);
                return 0;
        }

        if (initgroups(u->name, u->gid) < 0 && setgroups(0, NULL) < 0)
                return -errno;
        if (u->extra_gid != (gid_t) -1) {
                gid_t groups[LOCAL_GROUPS_MAX];
                int n = getgroups(LOCAL_GROUPS_MAX - 1, groups);
                if (n < 0)
                        return -errno;
                groups[n++] = u->extra_gid;
                if (setgroups((size_t) n, groups) < 0)
                        return -errno;
        }
        if (setresgid(u->gid, u->gid, u->gid) < 0)
                return -errno;
        if (setresuid(u->uid, u->uid, u->uid) < 0)
                return -errno;
        if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
                return -errno;
        if (ru != u->uid || eu != u->uid || su != u->uid || rg != u->gid || eg != u->gid ||
            sg != u->gid)
                return -EPERM;
        /* Refuse to write anything if root could be regained. */
        if (setuid(0) == 0 || seteuid(0) == 0)
                return -EPERM;
        return 0;
}

static const char *local_hostname(const Config *c, char *buf, size_t size) {
        if (!isempty(c->hostname))
                return c->hostname;
        if (gethostname(buf, size) < 0 || !buf[0])
                return "localhost";
        buf[size - 1] = 0;
        return buf;
}

static int local_user_fill(const struct passwd *pw, LocalUser *u) {
        if (strlen(pw->pw_name) >= sizeof(u->name) || strlen(pw->pw_dir) >= sizeof(u->home) ||
            strlen(pw->pw_shell ?: "") >= sizeof(u->shell))
                return -ENAMETOOLONG;
        memcpy(u->name, pw->pw_name, strlen(pw->pw_name) + 1);
        memcpy(u->home, pw->pw_dir, strlen(pw->pw_dir) + 1);
        (void) snprintf(u->shell, sizeof(u->shell), "%s", pw->pw_shell ?: "");
        u->uid = pw->pw_uid;
        u->gid = pw->pw_gid;
        u->extra_gid = (gid_t) -1;
        return 0;
}

/* 0, -ENOENT (no such account) or -errno (lookup failed: defer). */
static int local_user_by_name(const char *name, LocalUser *u) {
        struct passwd *pw;

        errno = 0;
        pw = getpwnam(name);
        if (!pw)
                return (errno == 0 || errno == ENOENT || errno == ESRCH || errno == EBADF ||
                        errno == EPERM)
                               ? -ENOENT
                               : -errno;
        return local_user_fill(pw, u);
}

/* The owner of an alias or :include: file; an account without a passwd
 * entry still runs with its uid and gid. */
static int local_user_by_uid(uid_t uid, gid_t gid, LocalUser *u) {
        struct passwd *pw = getpwuid(uid);

        if (pw) {
                int r = local_user_fill(pw, u);
                u->gid = gid;
                return r;
        }
        *u = (LocalUser) { .uid = uid, .gid = gid, .extra_gid = (gid_t) -1 };
        (void) snprintf(u->name, sizeof(u->name), "#%u", (unsigned) uid);
        (void) snprintf(u->home, sizeof(u->home), "/");
        (void) snprintf(u->shell, sizeof(u->shell), "/bin/sh");
        return 0;
}

static const char *target_sender(const LocalCtx *ctx, const LocalTarget *t) {
        return t && t->sender ? t->sender : ctx->job->env->sender;
}

/* The message as stored: Return-Path, Delivered-To, LF line ends. */
static int local_format(const LocalCtx *ctx, const char *sender, bool mbox, char **ret, size_t *ret_len) {
        return mailbox_format(sender, ctx->rcpt, ctx->job->body, ctx->job->body_len, mbox, ret, ret_len);
}

static void local_append_mbox(const LocalCtx *ctx, const char *sender, const char *path,
                              DeliveryResult *res) {
        _cleanup_free_ char *msg = NULL;
        char from[1024];
        size_t len;
        int r;

        r = local_format(ctx, sender, true, &msg, &len);
        if (r < 0)
                return local_result_errno(res, r, "cannot format message");
        r = mailbox_from_line(sender, (int64_t) (ctx->job->env->arrival_usec / 1000000u), from,
                              sizeof(from));
        if (r < 0)
                return local_result_errno(res, r, "cannot format mbox separator");
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

static void local_merge(DeliveryResult *total, const DeliveryResult *part, bool *first) {
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
                        local_mailbox(ctx, target_sender(ctx, t), u, &part);
                        break;
                case LOCAL_TARGET_FILE:
                        local_append_mbox(ctx, target_sender(ctx, t), t->value, &part);
                        break;
                case LOCAL_TARGET_COMMAND:
                        local_command(ctx, target_sender(ctx, t), t->value, u, &part);
                        break;
                default:
                        addrs[n_addrs++] = t->value;
                        sender = target_sender(ctx, t);
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
static void child_mailbox(const LocalCtx *ctx, const LocalTarget *t, const LocalUser *u,
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
                return local_mailbox(ctx, target_sender(ctx, t), u, res);

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

static void child_file(const LocalCtx *ctx, const LocalTarget *t, const LocalUser *u,
                       DeliveryResult *res) {
        (void) u;
        local_append_mbox(ctx, target_sender(ctx, t), t->value, res);
        if (res->status == DELIVERY_DELIVERED)
                (void) snprintf(res->text, sizeof(res->text), "delivered to file: %.400s", t->value);
}

static void child_command(const LocalCtx *ctx, const LocalTarget *t, const LocalUser *u,
                          DeliveryResult *res) {
        local_command(ctx, target_sender(ctx, t), t->value, u, res);
}

static void child_virtual(const LocalCtx *ctx, const LocalTarget *t, const LocalUser *u,
                          DeliveryResult *res) {
        _cleanup_free_ char *msg = NULL;
        const char *sender = target_sender(ctx, t);
        bool maildir = virtual_is_maildir(ctx->route->nexthop);
        char from[1024];
        size_t len;
        int r;

        (void) u;
        r = local_format(ctx, sender, !maildir, &msg, &len);
        if (r < 0)
                return local_result_errno(res, r, "cannot format message");
        r = mailbox_from_line(sender, (int64_t) (ctx->job->env->arrival_usec / 1000000u), from,
                              sizeof(from));
        if (r < 0)
                return local_result_errno(res, r, "cannot format mbox separator");
        virtual_deliver(ctx->route->nexthop, ctx->hostname, from, msg, len, ctx->timeout / 2, res);
}

/* Runs in the child: never returns. */
_Noreturn static void local_child(const LocalCtx *ctx, LocalChildFn fn, const LocalTarget *t,
                                  const LocalUser *u, int pipefd, pid_t parent) {
        struct itimerval it = {
                .it_value = { .tv_sec = (time_t) (ctx->timeout / 1000000u),
                              .tv_usec = (suseconds_t) (ctx->timeout % 1000000u) },
        };
        DeliveryResult res = {};
        sigset_t all;
        int r;

        /* The time limit is SIGALRM, which outlives setuid and needs no
         * CAP_KILL. SIGTERM stays blocked as in the worker: stopping deliverd
         * lets a delivery finish rather than cut an mbox append short. */
        (void) sigemptyset(&all);
        (void) sigaddset(&all, SIGALRM);
        (void) sigprocmask(SIG_UNBLOCK, &all, NULL);
        (void) signal(SIGALRM, SIG_DFL);
        (void) setitimer(ITIMER_REAL, &it, NULL);

        r = local_become(u);
        /* Set after the uid change, which clears it: if the worker is
         * killed, its results are lost and queued retries the recipient, so
         * this child must not go on to write a copy nobody records. */
        if (r >= 0 && (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent))
                _exit(1);
        if (r < 0) {
                local_result(&res, DELIVERY_DEFERRED, "4.3.0", "cannot change to user \"%s\": %s",
                             u->name, strerror(-r));
                goto out;
        }
        (void) umask(0077);
        if (chdir("/") < 0) {
                local_result_errno(&res, -errno, "chdir");
                goto out;
        }
        fn(ctx, t, u, &res);
out:
        /* One write below PIPE_BUF is atomic; a failure leaves the parent
         * with no result, which it reports as a failed process. */
        _exit(write(pipefd, &res, sizeof(res)) == (ssize_t) sizeof(res) ? 0 : 1);
}

/* Forks a child that becomes u and runs fn; waits for its result with the
 * time limit. */
static void local_spawn(const LocalCtx *ctx, const LocalUser *u, LocalChildFn fn, const LocalTarget *t,
                        DeliveryResult *res) {
        uint64_t deadline = now_usec() + ctx->timeout + LOCAL_KILL_GRACE_USEC;
        _cleanup_close_ int rfd = -EBADF, wfd = -EBADF;
        DeliveryResult child = {};
        size_t got = 0;
        int fds[2], r, status = 0;
        bool timed_out = false;
        pid_t pid, self = getpid();

        if (geteuid() != 0 && u->uid != geteuid())
                return local_result(res, DELIVERY_DEFERRED, "4.3.0",
                                    "cannot change to user \"%s\" (not running as root)", u->name);
        if (pipe2(fds, O_CLOEXEC) < 0)
                return local_result_errno(res, -errno, "pipe");
        rfd = fds[0], wfd = fds[1];
        pid = fork();
        if (pid < 0)
                return local_result_errno(res, -errno, "fork");
        if (pid == 0)
                local_child(ctx, fn, t, u, wfd, self);
        (void) close(TAKE_FD(wfd));

        while (got < sizeof(child)) {
                struct pollfd p[2] = {
                        { .fd = rfd, .events = POLLIN },
                        { .fd = local_helper_watch_fd(), .events = POLLIN },
                };
                uint64_t now = now_usec();
                ssize_t n;

                if (now >= deadline) {
                        timed_out = true;
                        break;
                }
                r = poll(p, 2, (int) ((deadline - now + 999) / 1000));
                if (r < 0 && errno != EINTR)
                        break;
                if (r <= 0)
                        continue;
                if (p[1].revents) {
                        /* The worker is gone (killed): its results would be
                         * lost and queued retries, so this copy must not land. */
                        (void) kill(pid, SIGKILL);
                        (void) waitpid(pid, NULL, 0);
                        _exit(1);
                }
                if (!p[0].revents)
                        continue;
                n = read(rfd, (uint8_t *) &child + got, sizeof(child) - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t) n;
        }
        if (timed_out) {
                /* Without CAP_KILL the user's process may not be killable; its
                 * own alarm ends it, and it is not waited for here. */
                if (kill(pid, SIGKILL) == 0)
                        (void) waitpid(pid, NULL, 0);
                return local_result(res, DELIVERY_DEFERRED, "4.3.0", "delivery timed out");
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (got == sizeof(child) &&
            (child.status == DELIVERY_DELIVERED || child.status == DELIVERY_BOUNCED ||
             child.status == DELIVERY_DEFERRED)) {
                /* The child ran as the user: trust nothing but the shape. */
                child.dsn[sizeof(child.dsn) - 1] = 0;
                child.text[sizeof(child.text) - 1] = 0;
                return local_result(res, child.status, child.dsn, "%s", child.text);
        }
        if ((WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) ||
            (WIFEXITED(status) && WEXITSTATUS(status) == LOCAL_EXIT_TIMEOUT))
                local_result(res, DELIVERY_DEFERRED, "4.3.0", "delivery timed out");
        else if (WIFSIGNALED(status))
                local_result(res, DELIVERY_DEFERRED, "4.3.0", "local delivery process killed by signal %d",
                             WTERMSIG(status));
        else
                local_result(res, DELIVERY_DEFERRED, "4.3.0", "local delivery process failed");
}

/* A shared mail spool such as Debian's /var/mail (root:mail 2775) is not
 * writable by the user, so neither the mailbox nor "<mbox>.lock" could be
 * created. As Postfix does with its mail group privilege, the child then gets
 * the directory's group as an extra supplementary group. Never group 0, never
 * a world-writable directory (no privilege needed there). */
static void local_spool_group(const char *path, LocalUser *u) {
        _cleanup_free_ char *dir = strdup(path);
        char *slash;
        struct stat st;

        if (!dir || geteuid() != 0)
                return;
        slash = strrchr(dir, '/');
        if (!slash)
                return;
        if (slash == dir)
                slash[1] = 0;
        else
                *slash = 0;
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return;
        if (st.st_uid != u->uid && (st.st_mode & S_IWGRP) && !(st.st_mode & S_IWOTH) &&
            st.st_gid != 0 && st.st_gid != u->gid)
                u->extra_gid = st.st_gid;
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
                return local_spawn(ctx, &u, child_mailbox, t, res);
        case LOCAL_TARGET_FILE:
        case LOCAL_TARGET_COMMAND:
                r = local_user_by_uid(t->uid, t->gid, &u);
                if (r < 0)
                        return local_result_errno(res, r, "user lookup of uid %u failed", (unsigned) t->uid);
                return local_spawn(ctx, &u, t->type == LOCAL_TARGET_FILE ? child_file : child_command, t,
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
                        fwd_sender = target_sender(ctx, &ts.t[i]);
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
        local_spawn(ctx, &u, child_virtual, &(LocalTarget) {}, res);
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
