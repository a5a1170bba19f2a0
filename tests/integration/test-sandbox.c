/* Proves smtpd's sandbox (smtpd/sandbox.c), DESIGN promise 5: after
 * sandbox_enter() open() fails with EPERM, and so do socket() and executable
 * memory; the kernel reports one seccomp filter and no capabilities; execve()
 * kills the process with SIGSYS; tgkill reaches the process itself only.
 * Each check runs in forked children twice: with the filter built by
 * sandbox_enter() itself (tern-smtpd), and with the filter compiled once by
 * sandbox_prepare() in the parent and completed with each child's pid
 * (tern-smtpd-supervisor's children). Exit 0 = pass, 1 = fail. */
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "sandbox.h"
#include "util.h"

static int failures;

#define EXPECT(cond, ...)                                               \
        do {                                                            \
                if (!(cond)) {                                          \
                        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
                        fprintf(stderr, __VA_ARGS__);                   \
                        fputc('\n', stderr);                            \
                        failures++;                                     \
                }                                                       \
        } while (0)

/* True when status (text of /proc/self/status) has the line "key\tvalue". */
static bool status_has(const char *status, const char *line) {
        const char *p = status;
        size_t l = strlen(line);

        while (p && *p) {
                if (strncmp(p, line, l) == 0 && (p[l] == '\n' || p[l] == 0))
                        return true;
                p = strchr(p, '\n');
                if (p)
                        p++;
        }
        return false;
}

static void test_exec_is_killed(void) {
        pid_t pid = fork();
        int status;

        if (pid == 0) {
                char *argv[] = { (char *) "/bin/true", NULL };
                char *envp[] = { NULL };

                if (sandbox_enter() < 0)
                        _exit(2);
                (void) execve("/bin/true", argv, envp);
                _exit(3); /* execve returned: not killed */
        }
        EXPECT(pid > 0, "fork: %m");
        if (pid <= 0)
                return;
        EXPECT(waitpid(pid, &status, 0) == pid, "waitpid: %m");
        EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
               "the child that called execve was not killed by SIGSYS (status 0x%x)", status);
}

/* In a child: enter the sandbox and check it; the exit status says. */
static int sandboxed_checks(void) {
        static char status[16384];
        int fd, r;
        ssize_t n;
        size_t len = 0;

        /* The only file this process reads after the sandbox is opened before. */
        fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
        EXPECT(fd >= 0, "open /proc/self/status: %m");

        r = sandbox_enter();
        EXPECT(r == 0, "sandbox_enter: %s", strerror(-r));
        if (r < 0)
                return EXIT_FAILURE;

        errno = 0;
        EXPECT(open("/etc/hostname", O_RDONLY | O_CLOEXEC) < 0 && errno == EPERM,
               "open(/etc/hostname) was not refused with EPERM (errno %d)", errno);
        errno = 0;
        EXPECT(openat(AT_FDCWD, "/etc/passwd", O_RDONLY | O_CLOEXEC) < 0 && errno == EPERM,
               "openat(/etc/passwd) was not refused with EPERM (errno %d)", errno);
        errno = 0;
        EXPECT(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0) < 0 && errno == EPERM,
               "socket() was not refused with EPERM (errno %d)", errno);
        errno = 0;
        EXPECT(unlink("/nonexistent-tern-sandbox-test") < 0 && errno == EPERM,
               "unlink() was not refused with EPERM (errno %d)", errno);

        {
                void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

                EXPECT(m != MAP_FAILED, "mmap without PROT_EXEC failed: %m");
                errno = 0;
                EXPECT(m == MAP_FAILED || (mprotect(m, 4096, PROT_READ | PROT_EXEC) < 0 && errno == EPERM),
                       "mprotect(PROT_EXEC) was not refused with EPERM (errno %d)", errno);
                errno = 0;
                EXPECT(mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED &&
                       errno == EPERM, "mmap(PROT_EXEC) was not refused with EPERM (errno %d)", errno);
        }

        /* abort() needs tgkill on itself (signal 0: nothing is delivered);
         * the parent, another process of the same user, is out of reach. */
        EXPECT(syscall(SYS_tgkill, getpid(), gettid(), 0) == 0, "tgkill on itself was refused: %m");
        errno = 0;
        EXPECT(syscall(SYS_tgkill, getppid(), getppid(), 0) < 0 && errno == EPERM,
               "tgkill on the parent was not refused with EPERM (errno %d)", errno);

        /* /proc/self/status is generated at read time: it shows the state now. */
        while (fd >= 0 && len < sizeof(status) - 1) {
                n = read(fd, status + len, sizeof(status) - 1 - len);
                if (n <= 0)
                        break;
                len += (size_t) n;
        }
        status[len] = 0;
        EXPECT(status_has(status, "Seccomp:\t2"), "/proc/self/status has no \"Seccomp:\\t2\"");
        EXPECT(status_has(status, "Seccomp_filters:\t1"), "/proc/self/status has no \"Seccomp_filters:\\t1\"");
        EXPECT(status_has(status, "NoNewPrivs:\t1"), "/proc/self/status has no \"NoNewPrivs:\\t1\"");
        EXPECT(status_has(status, "CapInh:\t0000000000000000"), "CapInh is not empty");
        EXPECT(status_has(status, "CapPrm:\t0000000000000000"), "CapPrm is not empty");
        EXPECT(status_has(status, "CapEff:\t0000000000000000"), "CapEff is not empty");
        EXPECT(status_has(status, "CapAmb:\t0000000000000000"), "CapAmb is not empty");
        /* The bounding set can only be emptied by a privileged process. */
        if (geteuid() == 0)
                EXPECT(status_has(status, "CapBnd:\t0000000000000000"), "CapBnd is not empty");

        return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}

static void test_sandboxed_child(const char *what) {
        pid_t pid = fork();
        int status;

        if (pid == 0)
                _exit(sandboxed_checks());
        EXPECT(pid > 0, "fork: %m");
        if (pid <= 0)
                return;
        EXPECT(waitpid(pid, &status, 0) == pid, "waitpid: %m");
        EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0,
               "%s: the sandboxed child failed (status 0x%x)", what, status);
}

int main(void) {
        int r;

        test_exec_is_killed();
        test_sandboxed_child("filter built by sandbox_enter");

        r = sandbox_prepare();
        EXPECT(r == 0, "sandbox_prepare: %s", strerror(-r));
        test_exec_is_killed();
        /* Two children of one prepared parent: each gets its own pid in. */
        test_sandboxed_child("prepared filter, first child");
        test_sandboxed_child("prepared filter, second child");

        if (failures) {
                fprintf(stderr, "test-sandbox: %d check(s) failed\n", failures);
                return EXIT_FAILURE;
        }
        printf("test-sandbox: all checks passed\n");
        return EXIT_SUCCESS;
}
