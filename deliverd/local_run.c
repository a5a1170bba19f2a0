/* Local delivery's processes: the accounts targets run as, and one child
 * per target that becomes its account (supplementary groups, gid, uid,
 * checked to be irreversible; root's own mailbox as uid 0 with every
 * capability dropped) before it touches anything. The child reports its
 * DeliveryResult through a pipe; the parent enforces the time limit. */
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

#include "local.h"
#include "local_helper.h"
#include "local_run.h"

/* The child's own alarm fires first; the parent's kill is the fallback. */
#define LOCAL_KILL_GRACE_USEC (2ull * 1000000ull)
#define LOCAL_GROUPS_MAX 256

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

const char *local_hostname(const Config *c, char *buf, size_t size) {
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
int local_user_by_name(const char *name, LocalUser *u) {
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
int local_user_by_uid(uid_t uid, gid_t gid, LocalUser *u) {
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
void local_spawn(const LocalCtx *ctx, const LocalUser *u, LocalChildFn fn, const LocalTarget *t,
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
void local_spool_group(const char *path, LocalUser *u) {
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

