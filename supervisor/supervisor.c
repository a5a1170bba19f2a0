/* tern-smtpd-supervisor: the alternative socket mode (docs/hardening.md).
 *
 * systemd still owns the listening sockets (Accept=no; they reach us as
 * LISTEN_FDS with their FileDescriptorName=), and every connection still gets
 * its own smtpd process, sandboxed by smtpd's own code (seccomp, no
 * capabilities) before it reads a byte from the network. What changes is who
 * makes it: PID 1 spends several milliseconds of its own CPU on each
 * Accept=yes instance (a unit, a cgroup, the unit's namespaces), which caps
 * the connection rate of the whole machine. Here the namespaces and the
 * unit's restrictions are built once, when the supervisor starts.
 *
 *   tern-smtpd-supervisor [--max-connections N] [--max-per-source N] [-c FILE]
 *   tern-smtpd-supervisor [--max-connections N] [--max-per-source N]
 *                         -- /path/tern-smtpd [ARGS...]
 *
 * The first form (pre-loaded): smtpd's code is linked in (smtpd/serve.h), the
 * configuration is loaded once (again on SIGHUP) and the seccomp filter
 * compiled once; each connection costs one fork(), and the child, named
 * tern-smtpd, runs smtpd_serve() on it and exits. The second form (exec)
 * is the original one: the child execs tern-smtpd with the connection on fd 0
 * and 1 and "--role NAME" appended; every connection then pays smtpd's whole
 * start-up (dynamic loading, configuration, filter compilation), but gets a
 * fresh address-space layout. In both, the role is the listening socket's
 * FileDescriptorName= (smtp, submission, submissions). Above a limit the
 * connection is closed at once, as systemd does with MaxConnections= and
 * MaxConnectionsPerSource=; the client retries later. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "serve.h"
#include "session.h"
#include "util.h"

#define SUPERVISOR_LISTEN_MAX 8
#define SUPERVISOR_NAME_MAX 32
#define SUPERVISOR_ARGV_MAX 64
#define SUPERVISOR_CHILDREN_MAX 4096
/* Across a re-execution (supervisor_reexec): the fd of a memfd holding the
 * live children, so that their accounting survives. */
#define SUPERVISOR_CHILDREN_ENV "TERN_SUPERVISOR_CHILDREN"

typedef struct SupervisorChild {
        pid_t pid;
        struct sockaddr_storage addr;   /* the client's address, port zeroed */
} SupervisorChild;

typedef struct Supervisor {
        int listen_fds[SUPERVISOR_LISTEN_MAX];
        char names[SUPERVISOR_LISTEN_MAX][SUPERVISOR_NAME_MAX];
        SmtpdRole roles[SUPERVISOR_LISTEN_MAX]; /* from names, pre-loaded mode */
        size_t n_listen;
        int signal_fd;
        unsigned max_connections;
        unsigned max_per_source;
        SupervisorChild *children;      /* max_connections slots; pid 0 = free */
        unsigned n_children;
        char **child_argv;              /* exec mode: program, its arguments, "--role", NAME, NULL;
                                         * NULL in pre-loaded mode */
        const char *config_path;        /* pre-loaded mode: -c, $TERN_CONFIG or the default */
        char *dropin;
        Config *config;                 /* what the next child serves with */
        char **argv;                    /* our own, for re-executing */
        bool reexec;                    /* a child crashed: re-execute (pre-loaded mode) */
        time_t refused_logged;          /* last second a refusal was logged */
        unsigned refused_unlogged;      /* refusals since then, not logged */
        size_t role_index;              /* where NAME goes */
} Supervisor;

/* The address part of a peer, for comparing sources (the port differs
 * between connections of one client). */
static bool supervisor_same_source(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
        if (a->ss_family != b->ss_family)
                return false;
        if (a->ss_family == AF_INET)
                return ((const struct sockaddr_in *) a)->sin_addr.s_addr ==
                       ((const struct sockaddr_in *) b)->sin_addr.s_addr;
        if (a->ss_family == AF_INET6)
                return memcmp(&((const struct sockaddr_in6 *) a)->sin6_addr,
                              &((const struct sockaddr_in6 *) b)->sin6_addr, sizeof(struct in6_addr)) == 0;
        return true; /* AF_UNIX and others: one source */
}

static unsigned supervisor_count_source(const SupervisorChild *children, size_t n,
                                        const struct sockaddr_storage *addr) {
        unsigned count = 0;

        for (size_t i = 0; i < n; i++)
                if (children[i].pid > 0 && supervisor_same_source(&children[i].addr, addr))
                        count++;
        return count;
}

static int supervisor_listen_fds(Supervisor *s) {
        const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
        const char *names = getenv("LISTEN_FDNAMES");
        char *end;
        long n;

        if (!pid || !fds || strtol(pid, NULL, 10) != (long) getpid())
                return -ENOENT;
        errno = 0;
        n = strtol(fds, &end, 10);
        if (errno || *end || n <= 0 || n > SUPERVISOR_LISTEN_MAX)
                return -EINVAL;
        for (long i = 0; i < n; i++) {
                int fd = 3 + (int) i;
                const char *name = "smtp";
                size_t len = strlen(name);

                /* LISTEN_FDNAMES is colon-separated, one name per fd. */
                if (names) {
                        const char *p = names, *colon;
                        for (long j = 0; j < i && p; j++) {
                                colon = strchr(p, ':');
                                p = colon ? colon + 1 : NULL;
                        }
                        if (p) {
                                colon = strchr(p, ':');
                                name = p;
                                len = colon ? (size_t) (colon - p) : strlen(p);
                        }
                }
                if (len == 0 || len >= SUPERVISOR_NAME_MAX)
                        return -EINVAL;
                memcpy(s->names[i], name, len);
                s->names[i][len] = 0;
                if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
                    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
                        return -errno;
                s->listen_fds[i] = fd;
        }
        s->n_listen = (size_t) n;
        (void) unsetenv("LISTEN_PID");
        (void) unsetenv("LISTEN_FDS");
        (void) unsetenv("LISTEN_FDNAMES");
        return 0;
}

/* In the child: the connection on 0 and 1, default signal state, exec. */
static _Noreturn void supervisor_exec_child(Supervisor *s, int conn, const char *role) {
        sigset_t none;

        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        if (dup2(conn, STDIN_FILENO) < 0 || dup2(conn, STDOUT_FILENO) < 0)
                _exit(EXIT_FAILURE);
        /* accept4() gave a non-blocking, close-on-exec fd; dup2 clears
         * close-on-exec, smtpd expects a blocking socket as inetd gives. */
        (void) fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) & ~O_NONBLOCK);
        s->child_argv[s->role_index] = (char *) role;
        execv(s->child_argv[0], s->child_argv);
        _exit(127);
}

/* In the child, pre-loaded mode: become tern-smtpd and serve the connection.
 * Nothing of the supervisor's stays reachable that an exec would have closed:
 * the listening sockets and the signalfd are closed here (everything else
 * the supervisor holds is the journal socket and stdin/stdout/stderr, as an
 * exec'd smtpd has them). */
static _Noreturn void supervisor_serve_child(Supervisor *s, int conn, size_t k) {
        sigset_t none;
        int r;

        /* ps, pgrep -x, journald's _COMM and the benchmark's memory sampler
         * know smtpd processes by this name. */
        (void) prctl(PR_SET_NAME, "tern-smtpd", 0, 0, 0);
        for (size_t i = 0; i < s->n_listen; i++)
                (void) close(s->listen_fds[i]);
        (void) close(s->signal_fd);
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        /* Its entries are smtpd's (SYSLOG_IDENTIFIER=tern-smtpd). */
        log_open("tern-smtpd");
        r = smtpd_serve(s->config, s->roles[k], conn, conn);
        /* _exit: the supervisor's atexit handlers (OpenSSL's among them)
         * are not the child's to run, and smtpd_serve freed its own. */
        _exit(r < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
}

static SupervisorChild *supervisor_free_slot(Supervisor *s) {
        for (unsigned i = 0; i < s->max_connections; i++)
                if (s->children[i].pid == 0)
                        return &s->children[i];
        return NULL;
}

/* A flood of connections over a limit must not become a flood of log
 * entries: at most one per second, saying how many were not logged. */
static void supervisor_log_refusal(Supervisor *s, const char *name, const char *why) {
        time_t now = time(NULL);

        if (now == s->refused_logged) {
                s->refused_unlogged++;
                return;
        }
        log_warning("%s: connection refused: %s (and %u more refusals not logged)", name, why,
                    s->refused_unlogged);
        s->refused_logged = now;
        s->refused_unlogged = 0;
}

static void supervisor_accept(Supervisor *s, size_t k) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof(addr);
        _cleanup_close_ int conn = -EBADF;
        SupervisorChild *slot;
        pid_t pid;

        conn = accept4(s->listen_fds[k], (struct sockaddr *) &addr, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (conn < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(-errno, "accept on the %s socket failed: %m", s->names[k]);
                return;
        }
        slot = s->n_children < s->max_connections ? supervisor_free_slot(s) : NULL;
        if (!slot) {
                supervisor_log_refusal(s, s->names[k], "at the connection limit");
                return;
        }
        if (s->max_per_source > 0 &&
            supervisor_count_source(s->children, s->max_connections, &addr) >= s->max_per_source) {
                supervisor_log_refusal(s, s->names[k], "the client is at the per-source limit");
                return;
        }
        pid = fork();
        if (pid < 0) {
                log_error_errno(-errno, "fork failed: %m");
                return;
        }
        if (pid == 0) {
                if (s->child_argv)
                        supervisor_exec_child(s, conn, s->names[k]);
                supervisor_serve_child(s, conn, k);
        }
        slot->pid = pid;
        slot->addr = addr;
        s->n_children++;
}

/* Signals that mean a session crashed rather than was stopped: what an
 * attacker probing the address-space layout or the stack canary causes. */
static bool supervisor_crash_signal(int sig) {
        return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGABRT ||
               sig == SIGSYS || sig == SIGTRAP;
}

static void supervisor_reap(Supervisor *s) {
        int status;
        pid_t pid;

        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                for (unsigned i = 0; i < s->max_connections; i++) {
                        if (s->children[i].pid != pid)
                                continue;
                        s->children[i].pid = 0;
                        s->n_children--;
                        break;
                }
                if (WIFSIGNALED(status)) {
                        log_warning("smtpd %d killed by signal %d", (int) pid, WTERMSIG(status));
                        if (!s->child_argv && supervisor_crash_signal(WTERMSIG(status)))
                                s->reexec = true;
                } else if (s->child_argv && WIFEXITED(status) && WEXITSTATUS(status) == 127)
                        log_error("smtpd %d: could not execute %s", (int) pid, s->child_argv[0]);
        }
}

/* Pre-loaded mode: every child is a fork of this process, so all of them
 * share its address-space layout and stack canary, and a crash does not
 * change them, whereas an exec'd smtpd gets new ones. A client that can crash
 * sessions could otherwise guess them a little more with each crash. So
 * after a crashed child the supervisor executes itself again (same pid, same
 * listening sockets, its children and their accounting handed over in a
 * memfd): the next sessions get a fresh layout and canary, for the price of
 * one start-up (a few milliseconds). Connections meanwhile wait in the
 * socket's backlog. On any failure it logs and carries on as it was. */
static void supervisor_reexec(Supervisor *s) {
        LogField fields[] = { { "MESSAGE_ID", LOG_MID_CONFIG_ERROR } };
        _cleanup_close_ int fd = -EBADF;
        char names[SUPERVISOR_LISTEN_MAX * SUPERVISOR_NAME_MAX] = "", buf[1024];
        ConfigError cerr = {};
        Config *c = NULL;
        size_t pos = 0;
        int r;

        s->reexec = false;
        /* A configuration file broken since the last reload would stop the
         * new process from starting at all: stay as we are instead. */
        r = config_load(s->config_path, s->dropin, &c, &cerr);
        config_free(c);
        if (r < 0) {
                (void) log_fields_errno(LOG_ERR, r, fields, "Not re-executing after a crashed session, "
                                        "the configuration would not load: %s",
                                        config_error_string(&cerr, buf, sizeof(buf)));
                return;
        }
        /* Not close-on-exec: the new process reads it. */
        fd = memfd_create("tern-supervisor-children", 0);
        if (fd < 0) {
                r = -errno;
                goto fail;
        }
        for (unsigned i = 0; i < s->max_connections; i++) {
                if (s->children[i].pid <= 0)
                        continue;
                if (write(fd, &s->children[i], sizeof(s->children[i])) != sizeof(s->children[i])) {
                        r = -EIO;
                        goto fail;
                }
        }
        for (size_t i = 0; i < s->n_listen; i++) {
                int n = snprintf(names + pos, sizeof(names) - pos, "%s%s", i ? ":" : "", s->names[i]);

                if (n < 0 || (size_t) n >= sizeof(names) - pos) {
                        r = -ENAMETOOLONG;
                        goto fail;
                }
                pos += (size_t) n;
        }
        (void) snprintf(buf, sizeof(buf), "%d", (int) getpid());
        if (setenv("LISTEN_PID", buf, 1) < 0 || setenv("LISTEN_FDNAMES", names, 1) < 0) {
                r = -ENOMEM;
                goto fail;
        }
        (void) snprintf(buf, sizeof(buf), "%zu", s->n_listen);
        if (setenv("LISTEN_FDS", buf, 1) < 0) {
                r = -ENOMEM;
                goto fail;
        }
        (void) snprintf(buf, sizeof(buf), "%d", fd);
        if (setenv(SUPERVISOR_CHILDREN_ENV, buf, 1) < 0) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < s->n_listen; i++)
                if (fcntl(s->listen_fds[i], F_SETFD, 0) < 0) {
                        r = -errno;
                        goto fail;
                }
        log_notice("A session crashed: re-executing, so that the next sessions get a fresh "
                   "address-space layout and stack canary (%u session(s) carry on)", s->n_children);
        /* The signals we block stay blocked and pending across execve, so
         * no SIGCHLD, SIGHUP or SIGTERM is lost. */
        (void) execv("/proc/self/exe", s->argv);
        r = -errno;
fail:
        for (size_t i = 0; i < s->n_listen; i++)
                (void) fcntl(s->listen_fds[i], F_SETFD, FD_CLOEXEC);
        (void) unsetenv("LISTEN_PID");
        (void) unsetenv("LISTEN_FDS");
        (void) unsetenv("LISTEN_FDNAMES");
        (void) unsetenv(SUPERVISOR_CHILDREN_ENV);
        log_error_errno(r, "Cannot re-execute after a crashed session, new sessions keep this "
                        "address-space layout: %m");
}

/* After a re-execution: the children of the previous image are ours (same
 * pid), and count against the limits until they are reaped. */
static void supervisor_restore_children(Supervisor *s) {
        const char *e = getenv(SUPERVISOR_CHILDREN_ENV);
        _cleanup_close_ int fd = -EBADF;
        SupervisorChild child;
        unsigned restored = 0;
        off_t offset = 0;
        char *end;
        long v;

        if (!e)
                return;
        errno = 0;
        v = strtol(e, &end, 10);
        (void) unsetenv(SUPERVISOR_CHILDREN_ENV);
        if (errno || *end || v < 3 || v > INT_MAX || (v >= 3 && (size_t) v < 3 + s->n_listen))
                return;
        fd = (int) v;
        while (pread(fd, &child, sizeof(child), offset) == sizeof(child)) {
                SupervisorChild *slot = supervisor_free_slot(s);

                offset += (off_t) sizeof(child);
                if (!slot || child.pid <= 0)
                        continue;
                *slot = child;
                s->n_children++;
                restored++;
        }
        log_info("re-executed: %u session(s) of the previous image carry on", restored);
}

static int supervisor_parse_argv(Supervisor *s, int argc, char **argv) {
        static const struct option options[] = {
                { "max-connections", required_argument, NULL, 'm' },
                { "max-per-source",  required_argument, NULL, 'p' },
                { "config",          required_argument, NULL, 'c' },
                {}
        };
        const char *config = NULL;
        int c;

        s->max_connections = 200;
        s->max_per_source = 20;
        while ((c = getopt_long(argc, argv, "+c:m:p:", options, NULL)) >= 0) {
                char *end;
                unsigned long v;

                if (c == 'c') {
                        config = optarg;
                        continue;
                }
                if (c != 'm' && c != 'p')
                        return -EINVAL;
                errno = 0;
                v = strtoul(optarg, &end, 10);
                if (errno || *end || v > SUPERVISOR_CHILDREN_MAX || (c == 'm' && v == 0))
                        return -EINVAL;
                if (c == 'm')
                        s->max_connections = (unsigned) v;
                else
                        s->max_per_source = (unsigned) v;
        }
        if (optind >= argc) {
                /* Pre-loaded mode. */
                s->config_path = config_path_resolve(config);
                if (asprintf(&s->dropin, "%s.d", s->config_path) < 0) {
                        s->dropin = NULL;
                        return -ENOMEM;
                }
                return 0;
        }
        /* Exec mode: the program's own arguments say which configuration. */
        if (config || argv[optind][0] != '/' || argc - optind + 3 > SUPERVISOR_ARGV_MAX)
                return -EINVAL;
        s->child_argv = new0(char *, (size_t) (argc - optind) + 3);
        if (!s->child_argv)
                return -ENOMEM;
        for (int i = optind; i < argc; i++)
                s->child_argv[i - optind] = argv[i];
        s->child_argv[argc - optind] = (char *) "--role";
        s->role_index = (size_t) (argc - optind) + 1;
        return 0;
}

/* Pre-loaded mode: the configuration every child serves with, and what can
 * be done once for all of them (the seccomp filter, OpenSSL). At start a bad
 * configuration is fatal; on SIGHUP (ExecReload=) it is refused and the
 * running one kept, as tern-queued and tern-deliverd do. Children already
 * forked keep the configuration they were forked with: each has its own
 * copy, so the old one can be freed here at once. */
static int supervisor_load_config(Supervisor *s, bool reload) {
        LogField error_fields[] = { { "MESSAGE_ID", LOG_MID_CONFIG_ERROR } };
        LogField reloaded_fields[] = { { "MESSAGE_ID", LOG_MID_RELOADED } };
        ConfigError cerr = {};
        Config *c = NULL;
        char buf[1024];
        int r;

        r = config_load(s->config_path, s->dropin, &c, &cerr);
        if (r < 0)
                return log_fields_errno(LOG_ERR, r, error_fields, "%s: %s",
                                        reload ? "Reload refused, keeping the running configuration"
                                               : "Bad configuration, not starting",
                                        config_error_string(&cerr, buf, sizeof(buf)));
        config_free(s->config);
        s->config = c;
        r = smtpd_serve_prepare(c);
        if (r < 0)
                log_warning_errno(r, "Cannot prepare the sandbox and TLS for all sessions, "
                                  "each session will set them up itself: %m");
        if (reload)
                (void) log_fields(LOG_INFO, reloaded_fields, "Configuration reloaded");
        return 0;
}

/* Pre-loaded mode: each listening socket's name is the role of its
 * sessions; an unknown name is a unit error, found at start. */
static int supervisor_roles(Supervisor *s) {
        for (size_t i = 0; i < s->n_listen; i++) {
                s->roles[i] = smtpd_role_from_string(s->names[i]);
                if (s->roles[i] < 0)
                        return log_error_errno(-EINVAL, "Unknown FileDescriptorName=\"%s\" of listening socket %zu "
                                               "(smtp, submission, submissions)", s->names[i], i);
        }
        return 0;
}

int main(int argc, char **argv) {
        Supervisor s = { .signal_fd = -EBADF, .argv = argv };
        struct pollfd pfd[SUPERVISOR_LISTEN_MAX + 1];
        bool stopping = false;
        sigset_t mask;
        int r, rc = 1;

        log_open("tern-smtpd-supervisor");
        if (supervisor_parse_argv(&s, argc, argv) < 0) {
                fprintf(stderr, "usage: %s [--max-connections N] [--max-per-source N] [-c FILE]\n"
                        "       %s [--max-connections N] [--max-per-source N] -- "
                        "/path/to/tern-smtpd [ARGS...]\n", argv[0], argv[0]);
                return 2;
        }
        r = supervisor_listen_fds(&s);
        if (r < 0) {
                log_error_errno(r, "no listening sockets from systemd (LISTEN_FDS): %m");
                goto out;
        }
        s.children = new0(SupervisorChild, s.max_connections);
        if (!s.children)
                goto out;
        supervisor_restore_children(&s);
        if (!s.child_argv) {
                /* Children write to clients that may be gone: EPIPE, not
                 * death (smtpd's main() does the same). */
                (void) signal(SIGPIPE, SIG_IGN);
                if (supervisor_roles(&s) < 0 || supervisor_load_config(&s, false) < 0)
                        goto out;
                /* The Received: date's time zone, read once for every child. */
                tzset();
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                goto out;
        s.signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (s.signal_fd < 0) {
                log_error_errno(-errno, "signalfd: %m");
                goto out;
        }
        if (s.child_argv)
                log_info("supervising %s on %zu socket(s), at most %u connections, %u per source",
                         s.child_argv[0], s.n_listen, s.max_connections, s.max_per_source);
        else
                log_info("serving smtpd sessions (pre-loaded, configuration %s) on %zu socket(s), "
                         "at most %u connections, %u per source",
                         s.config_path, s.n_listen, s.max_connections, s.max_per_source);

        for (;;) {
                size_t n = 0;

                pfd[n++] = (struct pollfd) { .fd = s.signal_fd, .events = POLLIN };
                /* At the connection limit, leave new connections in the
                 * kernel's backlog instead of accepting and closing them. */
                if (!stopping && s.n_children < s.max_connections)
                        for (size_t k = 0; k < s.n_listen; k++)
                                pfd[n++] = (struct pollfd) { .fd = s.listen_fds[k], .events = POLLIN };
                if (stopping && s.n_children == 0)
                        break;
                if (poll(pfd, n, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        log_error_errno(-errno, "poll: %m");
                        goto out;
                }
                if (pfd[0].revents & POLLIN) {
                        struct signalfd_siginfo si;

                        while (read(s.signal_fd, &si, sizeof(si)) == sizeof(si)) {
                                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
                                        /* Sessions in progress finish (systemd's
                                         * stop timeout bounds them). */
                                        if (!stopping)
                                                log_info("stopping: no new connections, waiting for %u session(s)",
                                                         s.n_children);
                                        stopping = true;
                                } else if (si.ssi_signo == SIGHUP) {
                                        if (s.child_argv)
                                                log_info("SIGHUP: nothing to reload, each tern-smtpd reads the configuration");
                                        else
                                                (void) supervisor_load_config(&s, true);
                                }
                        }
                        supervisor_reap(&s);
                }
                for (size_t i = 1; i < n; i++)
                        if (pfd[i].revents & POLLIN)
                                supervisor_accept(&s, i - 1);
                if (s.reexec && !stopping)
                        supervisor_reexec(&s);
        }
        rc = 0;
out:
        closep(&s.signal_fd);
        config_free(s.config);
        free(s.dropin);
        free(s.children);
        free(s.child_argv);
        return rc;
}
