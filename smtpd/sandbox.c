/* The sandbox of tern-smtpd (DESIGN promise 5). smtpd enters it after it has
 * connected to queued and logged its first line, and before it reads a byte
 * from the network. From then on it can use the descriptors it holds (the
 * client, queued, the journal socket) and nothing else: open() and socket()
 * fail with EPERM, exec and ptrace kill the process. */
#include <errno.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "sandbox.h"
#include "util.h"

/* LeakSanitizer runs its checks from a ptrace()ing helper at exit, which the
 * filter forbids; sandboxed programs skip leak checks rather than relax the
 * production filter (STYLE.md). Only compiled in sanitizer builds. */
#if defined(__SANITIZE_ADDRESS__)
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
        return "detect_leaks=0";
}
#endif

static int drop_capabilities(void) {
        cap_t caps;
        int r = 0;

        /* The bounding set can only shrink with CAP_SETPCAP, i.e. when smtpd
         * is started as root (tests, a misconfigured unit). tern-smtp@.service
         * already empties it with CapabilityBoundingSet=, so EPERM is fine. */
        for (unsigned long c = 0; c <= CAP_LAST_CAP; c++)
                if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EPERM && errno != EINVAL)
                        return negative_errno();
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return negative_errno();

        caps = cap_init(); /* all three sets empty */
        if (!caps)
                return negative_errno();
        /* Under its unit smtpd starts with no capabilities at all; then it
         * makes no capset() call, so the unit's filter may forbid @privileged
         * (docs/hardening.md). */
        cap_t current = cap_get_proc();
        if (!current || cap_compare(current, caps) != 0)
                if (cap_set_proc(caps) < 0)
                        r = negative_errno();
        if (current)
                (void) cap_free(current);
        (void) cap_free(caps);
        return r;
}

/* The allow-list, by reason. Anything not named fails with EPERM. */
static const int allowed_syscalls[] = {
        /* Talking over the descriptors smtpd already holds: the client
         * (fd 0/1), queued's SOCK_SEQPACKET socket, the journal socket, stderr. */
        SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
        SCMP_SYS(recvfrom), SCMP_SYS(recvmsg), SCMP_SYS(sendto), SCMP_SYS(sendmsg),
        SCMP_SYS(close), SCMP_SYS(shutdown),
        /* Waiting with deadlines (io.c), and the clocks behind them. */
        SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday),
        SCMP_SYS(time),
        /* malloc: the heap and large allocations (IPC frames, the DATA chunk).
         * mmap and mprotect are allowed below, without PROT_EXEC only. */
        SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise),
        /* stdio on stderr checks what stderr is; glibc locks use futex. */
        SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(futex),
        /* Log lines carry the pid; glibc may seed malloc from getrandom. */
        SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getrandom),
        /* Leaving, signals delivered by the kernel (SIGPIPE is ignored, SIGTERM
         * from systemd), and abort() for assertions: rt_sigprocmask. */
        SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask),
        SCMP_SYS(restart_syscall),
        /* AddressSanitizer's error reports and its signal handling; without
         * these a sanitizer build could not report at all. A report may still
         * be degraded (it cannot open /proc/self/maps for symbolization). */
        SCMP_SYS(sigaltstack), SCMP_SYS(rt_sigaction), SCMP_SYS(sched_yield),
        SCMP_SYS(prctl),
};

/* Calls that only an attacker who runs code inside smtpd would make: the
 * process dies instead of getting an error it could probe with. */
static const int killed_syscalls[] = {
        SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(ptrace), SCMP_SYS(open_by_handle_at),
};

/* tgkill's own pid, in a filter built before the pid is known (a supervisor
 * prepares it once for all the children it forks): a value no pid can have
 * (PID_MAX_LIMIT is 2^22), replaced in the compiled program by the child. */
#define SANDBOX_PID_PLACEHOLDER 0x7e57ab1eu

/* The filter compiled to BPF by sandbox_prepare(); NULL until then. */
static struct sock_filter *sandbox_program;
static unsigned short sandbox_program_len;
static size_t sandbox_pid_index;   /* the instruction comparing tgkill's target */

static int build_filter(uint32_t pid, scmp_filter_ctx *ret) {
        scmp_filter_ctx ctx;
        int r;

        ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
        if (!ctx)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(allowed_syscalls); i++) {
                /* A name unknown on this architecture is negative: skip it. */
                if (allowed_syscalls[i] < 0)
                        continue;
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed_syscalls[i], 0);
                if (r < 0)
                        goto fail;
        }
        /* Memory may be mapped, never made executable: code injected into a
         * buffer stays data (W^X, as MemoryDenyWriteExecute= in the unit). */
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                             SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
        if (r < 0)
                goto fail;
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                             SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
        if (r < 0)
                goto fail;
        /* abort() raises SIGABRT with tgkill on itself; no other target. */
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                             SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t) pid));
        if (r < 0)
                goto fail;
        for (size_t i = 0; i < ELEMENTSOF(killed_syscalls); i++) {
                if (killed_syscalls[i] < 0)
                        continue;
                r = seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, killed_syscalls[i], 0);
                if (r < 0)
                        goto fail;
        }
        *ret = ctx;
        return 0;
fail:
        seccomp_release(ctx);
        return r;
}

int sandbox_prepare(void) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ struct sock_filter *prog = NULL;
        scmp_filter_ctx ctx;
        size_t n, index = SIZE_MAX;
        off_t size;
        int r;

        if (sandbox_program)
                return 0;
        r = build_filter(SANDBOX_PID_PLACEHOLDER, &ctx);
        if (r < 0)
                return r;
        /* libseccomp 2.5 (Debian 12) can only export to a file descriptor. */
        fd = memfd_create("tern-seccomp", MFD_CLOEXEC);
        if (fd < 0)
                r = negative_errno();
        else
                r = seccomp_export_bpf(ctx, fd);
        seccomp_release(ctx);
        if (r < 0)
                return r;
        size = lseek(fd, 0, SEEK_END);
        if (size < 0)
                return negative_errno();
        if (size == 0 || (size_t) size % sizeof(struct sock_filter) != 0 ||
            (size_t) size / sizeof(struct sock_filter) > BPF_MAXINSNS)
                return -EBADMSG;
        n = (size_t) size / sizeof(struct sock_filter);
        prog = new0(struct sock_filter, n);
        if (!prog)
                return -ENOMEM;
        if (pread(fd, prog, (size_t) size, 0) != size)
                return -EIO;
        /* The placeholder must be the operand of exactly one comparison,
         * or patching it could change some other rule. */
        for (size_t i = 0; i < n; i++) {
                if (prog[i].k != SANDBOX_PID_PLACEHOLDER)
                        continue;
                if (index != SIZE_MAX || prog[i].code != (BPF_JMP | BPF_JEQ | BPF_K))
                        return -EBADMSG;
                index = i;
        }
        if (index == SIZE_MAX)
                return -EBADMSG;
        sandbox_program = TAKE_PTR(prog);
        sandbox_program_len = (unsigned short) n;
        sandbox_pid_index = index;
        return 0;
}

static int load_filter(void) {
        scmp_filter_ctx ctx;
        int r;

        if (sandbox_program) {
                /* This process's copy of the prepared program (after fork()
                 * each child has its own), completed with its pid. */
                struct sock_fprog fprog = { .len = sandbox_program_len, .filter = sandbox_program };

                sandbox_program[sandbox_pid_index].k = (uint32_t) getpid();
                if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) < 0)
                        return negative_errno();
                return 0;
        }
        r = build_filter((uint32_t) getpid(), &ctx);
        if (r < 0)
                return r;
        r = seccomp_load(ctx);
        seccomp_release(ctx);
        return r;
}

int sandbox_enter(void) {
        int r;

        /* Required for an unprivileged process to load a filter, and makes
         * sure no set-uid program could ever regain privileges for us. */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return negative_errno();
        r = drop_capabilities();
        if (r < 0)
                return r;
        return load_filter();
}
