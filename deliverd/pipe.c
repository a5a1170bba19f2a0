/* Command delivery: fork, a new session (so the time limit kills the whole
 * pipeline), a clean environment as local(8) gives it, the message on stdin
 * and the output kept for the bounce. The parent waits on a pidfd with the
 * deadline, so nothing here depends on SIGCHLD. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/param.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "local.h"
#include "pipe.h"

#define EX_TEMPFAIL 75

static uint64_t now_usec(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ull + (uint64_t) ts.tv_nsec / 1000ull;
}

void pipe_format_output(char *buf, size_t size, int status, const char *out, size_t out_len) {
        int n = snprintf(buf, size, "Command died with status %d", status);
        size_t k;

        if (n < 0 || (size_t) n >= size)
                return;
        k = (size_t) n;
        while (out_len > 0 && (out[out_len - 1] == '\n' || out[out_len - 1] == '\r' ||
                               out[out_len - 1] == ' '))
                out_len--;
        if (out_len == 0)
                return;
        if (k + 2 < size) {
                buf[k++] = ':';
                buf[k++] = ' ';
        }
        /* Output goes into a bounce and a log line: no control characters. */
        for (size_t i = 0; i < out_len && k + 1 < size; i++)
                buf[k++] = ((unsigned char) out[i] < 0x20 || out[i] == 0x7f) ? ' ' : out[i];
        buf[k] = 0;
}

static int env_add(char **envp, size_t *n, const char *name, const char *value) {
        if (!value)
                return 0;
        if (asprintf(&envp[*n], "%s=%s", name, value) < 0)
                return -ENOMEM;
        (*n)++;
        return 0;
}

/* In the grandchild: never returns. */
_Noreturn static void pipe_exec(const char *command, const PipeEnv *e, int in, int out) {
        char *envp[16] = {};
        size_t n = 0;
        sigset_t all;

        if (setsid() < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
                _exit(EX_TEMPFAIL);
        /* What deliverd blocked or ignored must not reach the command. */
        (void) sigemptyset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);
        (void) signal(SIGPIPE, SIG_DFL);
        (void) signal(SIGALRM, SIG_DFL);
        if (env_add(envp, &n, "PATH", "/usr/bin:/bin") < 0 || env_add(envp, &n, "SENDER", e->sender) < 0 ||
            env_add(envp, &n, "RECIPIENT", e->recipient) < 0 ||
            env_add(envp, &n, "ORIGINAL_RECIPIENT", e->original_recipient) < 0 ||
            env_add(envp, &n, "USER", e->user) < 0 || env_add(envp, &n, "LOGNAME", e->user) < 0 ||
            env_add(envp, &n, "HOME", e->home) < 0 || env_add(envp, &n, "SHELL", e->shell) < 0 ||
            env_add(envp, &n, "LOCAL", e->local) < 0 || env_add(envp, &n, "EXTENSION", e->extension) < 0 ||
            env_add(envp, &n, "DOMAIN", e->domain) < 0)
                _exit(EX_TEMPFAIL);
        /* The home directory if we may enter it, as local(8) does. */
        if (isempty(e->home) || chdir(e->home) < 0)
                (void) !chdir("/");
        execve("/bin/sh", (char *const[]) { (char *) "sh", (char *) "-c", (char *) command, NULL }, envp);
        _exit(EX_TEMPFAIL);
}

void pipe_deliver(const char *command, const PipeEnv *env, const char *msg, size_t len,
                  uint64_t timeout_usec, DeliveryResult *res) {
        uint64_t deadline = now_usec() + timeout_usec;
        _cleanup_close_ int in_r = -EBADF, in_w = -EBADF, out_r = -EBADF, out_w = -EBADF,
                            pidfd = -EBADF;
        char out[PIPE_OUTPUT_MAX + 1], text[sizeof(res->text)];
        size_t out_len = 0, written = 0;
        bool timed_out = false, out_open = true;
        siginfo_t si = {};
        int fds[2];
        pid_t pid;

        if (pipe2(fds, O_CLOEXEC) < 0)
                return local_result_errno(res, -errno, "pipe");
        in_r = fds[0], in_w = fds[1];
        if (pipe2(fds, O_CLOEXEC) < 0)
                return local_result_errno(res, -errno, "pipe");
        out_r = fds[0], out_w = fds[1];
        pid = fork();
        if (pid < 0)
                return local_result_errno(res, -errno, "fork");
        if (pid == 0)
                pipe_exec(command, env, in_r, out_w);
        (void) close(TAKE_FD(in_r));
        (void) close(TAKE_FD(out_w));
        /* Without pidfd_open (an old kernel, a seccomp filter) the exit is
         * polled with waitid(WNOWAIT) every 50 ms instead. */
        pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        (void) fcntl(in_w, F_SETFL, O_NONBLOCK);
        if (len == 0)
                (void) close(TAKE_FD(in_w));

        for (;;) {
                struct pollfd p[3] = {
                        { .fd = pidfd, .events = POLLIN },
                        { .fd = out_open ? out_r : -1, .events = POLLIN },
                        { .fd = in_w, .events = POLLOUT },
                };
                uint64_t now = now_usec();
                int r;

                if (now >= deadline) {
                        timed_out = true;
                        break;
                }
                r = poll(p, 3, pidfd >= 0 ? (int) ((deadline - now + 999) / 1000)
                                          : (int) MIN((deadline - now + 999) / 1000, 50u));
                if (r < 0 && errno != EINTR)
                        break;
                if (pidfd < 0) {
                        siginfo_t probe = {};
                        if (waitid(P_PID, (id_t) pid, &probe, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                            probe.si_pid == pid)
                                p[0].revents = POLLIN;
                }
                if (r <= 0 && !p[0].revents)
                        continue;
                if (p[2].revents) {
                        ssize_t k = write(in_w, msg + written, len - written);
                        if (k > 0)
                                written += (size_t) k;
                        /* EPIPE: the command does not want (the rest of) the message. */
                        if ((k < 0 && errno != EAGAIN && errno != EINTR) || written == len ||
                            (p[2].revents & (POLLERR | POLLHUP)))
                                (void) close(TAKE_FD(in_w));
                }
                if (p[1].revents) {
                        char tmp[4096];
                        ssize_t k = read(out_r, tmp, sizeof(tmp));
                        if (k > 0) {
                                size_t c = MIN((size_t) k, PIPE_OUTPUT_MAX - out_len);
                                memcpy(out + out_len, tmp, c);
                                out_len += c;
                        } else if (k == 0 || (errno != EINTR && errno != EAGAIN))
                                out_open = false;
                }
                /* Done when the command has exited and its output is read
                 * (a background child still holding stdout is not waited for). */
                if (p[0].revents && !(p[1].revents & POLLIN))
                        break;
        }
        (void) kill(-pid, SIGKILL);
        while (waitid(P_PID, (id_t) pid, &si, WEXITED) < 0 && errno == EINTR)
                ;
        out[out_len] = 0;
        if (timed_out) {
                local_result(res, DELIVERY_BOUNCED, "5.3.0", "Command time limit exceeded: \"%.200s\"",
                             command);
                return;
        }
        if (si.si_code == CLD_EXITED && si.si_status == 0) {
                local_result(res, DELIVERY_DELIVERED, "2.0.0", "delivered to command: %.200s", command);
                return;
        }
        if (si.si_code == CLD_EXITED) {
                pipe_format_output(text, sizeof(text), si.si_status, out, out_len);
                local_result(res, si.si_status == EX_TEMPFAIL ? DELIVERY_DEFERRED : DELIVERY_BOUNCED,
                             si.si_status == EX_TEMPFAIL ? "4.3.0" : "5.3.0", "%s", text);
                return;
        }
        local_result(res, DELIVERY_DEFERRED, "4.3.0", "Command killed by signal %d", si.si_status);
}
