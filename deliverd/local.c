/* The local transport: one child per recipient that becomes the recipient
 * (supplementary groups, gid, uid, checked to be irreversible) before it
 * touches any mailbox, so deliverd itself never needs CAP_DAC_OVERRIDE. The
 * child reports its DeliveryResult through a pipe; the worker enforces the
 * time limit. */
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

#include "local.h"
#include "mailbox.h"
#include "maildir.h"
#include "mbox.h"

#define LOCAL_TIMEOUT_DEFAULT_USEC (300ull * 1000000ull)
/* The child's own alarm fires first; the worker's kill is the fallback. */
#define LOCAL_KILL_GRACE_USEC (2ull * 1000000ull)
#define LOCAL_GROUPS_MAX 256

typedef struct LocalUser {
        char name[LOGIN_NAME_MAX + 1];
        char home[PATH_MAX];
        uid_t uid;
        gid_t gid;
        gid_t extra_gid; /* group of a shared mail spool, or (gid_t) -1 */
} LocalUser;

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

        if (initgroups(u->name, u->gid) < 0)
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
        if (u->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
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

/* Runs in the child: never returns. */
_Noreturn static void local_child(const DeliveryJob *job, const char *rcpt, const LocalUser *u,
                                  const char *path, int pipefd, pid_t parent) {
        const Config *c = job->config;
        uint64_t timeout = c->local_delivery_timeout_usec ?: LOCAL_TIMEOUT_DEFAULT_USEC;
        struct itimerval it = {
                .it_value = { .tv_sec = (time_t) (timeout / 1000000u),
                              .tv_usec = (suseconds_t) (timeout % 1000000u) },
        };
        DeliveryResult res = {};
        _cleanup_free_ char *msg = NULL;
        size_t len = 0;
        sigset_t all;
        bool mbox = c->mailbox_format == MAILBOX_MBOX;
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
        r = mailbox_format(job->env->sender, rcpt, job->body, job->body_len, mbox, &msg, &len);
        if (r < 0) {
                local_result_errno(&res, r, "cannot format message");
                goto out;
        }
        if (mbox) {
                char from[1024];
                r = mailbox_from_line(job->env->sender, (int64_t) (job->env->arrival_usec / 1000000u),
                                      from, sizeof(from));
                if (r < 0) {
                        local_result_errno(&res, r, "cannot format mbox separator");
                        goto out;
                }
                /* Half of the time limit for the locks, the rest for writing. */
                mbox_deliver(path, from, msg, len, timeout / 2, &res);
        } else {
                char host[256];
                maildir_deliver(path, local_hostname(c, host, sizeof(host)), msg, len, &res);
        }
out:
        /* One write below PIPE_BUF is atomic; a failure leaves the worker
         * with no result, which it reports as a failed process. */
        _exit(write(pipefd, &res, sizeof(res)) == (ssize_t) sizeof(res) ? 0 : 1);
}

/* Looks up the account for rcpt. Fills u, or a final result in res. */
static bool local_lookup(const char *rcpt, LocalUser *u, DeliveryResult *res) {
        char name[LOGIN_NAME_MAX + 1];
        struct passwd *pw;

        if (mailbox_user_name(rcpt, name, sizeof(name)) < 0) {
                local_result(res, DELIVERY_BOUNCED, "5.1.1", "unknown user: \"%.128s\"", rcpt);
                return false;
        }
        errno = 0;
        pw = getpwnam(name);
        if (!pw) {
                if (errno == 0 || errno == ENOENT || errno == ESRCH || errno == EBADF || errno == EPERM)
                        local_result(res, DELIVERY_BOUNCED, "5.1.1", "unknown user: \"%s\"", name);
                else
                        local_result(res, DELIVERY_DEFERRED, "4.3.0", "user lookup of \"%s\" failed: %s",
                                     name, strerror(errno));
                return false;
        }
        if (strlen(pw->pw_name) >= sizeof(u->name) || strlen(pw->pw_dir) >= sizeof(u->home)) {
                local_result(res, DELIVERY_DEFERRED, "4.3.0", "account \"%s\" has too long a name or home",
                             name);
                return false;
        }
        memcpy(u->name, pw->pw_name, strlen(pw->pw_name) + 1);
        memcpy(u->home, pw->pw_dir, strlen(pw->pw_dir) + 1);
        u->uid = pw->pw_uid;
        u->gid = pw->pw_gid;
        u->extra_gid = (gid_t) -1;
        return true;
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

static void local_deliver_one(const DeliveryJob *job, const char *rcpt, DeliveryResult *res) {
        const Config *c = job->config;
        uint64_t timeout = c->local_delivery_timeout_usec ?: LOCAL_TIMEOUT_DEFAULT_USEC;
        uint64_t deadline = now_usec() + timeout + LOCAL_KILL_GRACE_USEC;
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int rfd = -EBADF, wfd = -EBADF;
        DeliveryResult child = {};
        LocalUser u;
        size_t got = 0;
        int fds[2], r, status;
        bool timed_out = false;
        pid_t pid, worker = getpid();

        if (!local_lookup(rcpt, &u, res))
                return;
        if (geteuid() != 0 && u.uid != geteuid()) {
                local_result(res, DELIVERY_DEFERRED, "4.3.0",
                             "cannot change to user \"%s\" (not running as root)", u.name);
                return;
        }
        r = mailbox_expand_path(c->mailbox_path, u.name, u.home, &path);
        if (r < 0) {
                local_result_errno(res, r, "cannot expand mailbox path \"%s\" for \"%s\"",
                                   c->mailbox_path, u.name);
                return;
        }
        if (c->mailbox_format == MAILBOX_MBOX)
                local_spool_group(path, &u);

        if (pipe2(fds, O_CLOEXEC) < 0) {
                local_result_errno(res, -errno, "pipe");
                return;
        }
        rfd = fds[0], wfd = fds[1];
        pid = fork();
        if (pid < 0) {
                local_result_errno(res, -errno, "fork");
                return;
        }
        if (pid == 0) {
                local_child(job, rcpt, &u, path, wfd, worker);
        }
        (void) close(TAKE_FD(wfd));

        while (got < sizeof(child)) {
                struct pollfd p = { .fd = rfd, .events = POLLIN };
                uint64_t now = now_usec();
                ssize_t n;

                if (now >= deadline) {
                        timed_out = true;
                        break;
                }
                r = poll(&p, 1, (int) ((deadline - now + 999) / 1000));
                if (r < 0 && errno != EINTR)
                        break;
                if (r <= 0)
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
                local_result(res, DELIVERY_DEFERRED, "4.3.0", "delivery timed out");
                return;
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (got == sizeof(child) &&
            (child.status == DELIVERY_DELIVERED || child.status == DELIVERY_BOUNCED ||
             child.status == DELIVERY_DEFERRED)) {
                /* The child ran as the user: trust nothing but the shape. */
                child.dsn[sizeof(child.dsn) - 1] = 0;
                child.text[sizeof(child.text) - 1] = 0;
                local_result(res, child.status, child.dsn, "%s", child.text);
                return;
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

int transport_local_deliver(const DeliveryJob *job, DeliveryResult *results) {
        for (size_t k = 0; k < job->n_rcpts; k++)
                local_deliver_one(job, job->env->rcpts[job->rcpt_index[k]].addr, &results[k]);
        return 0;
}
