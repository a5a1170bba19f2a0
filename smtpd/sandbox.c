/* The sandbox of tern-smtpd (DESIGN promise 5). smtpd enters it after it has
 * connected to queued and logged its first line, and before it reads a byte
 * from the network. From then on it can use the descriptors it holds (the
 * client, queued, the journal socket) and nothing else: open() and socket()
 * fail with EPERM, exec and ptrace kill the process. */
#include <errno.h>
#include <linux/capability.h>
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

static int load_filter(void) {
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
                        goto out;
        }
        /* Memory may be mapped, never made executable: code injected into a
         * buffer stays data (W^X, as MemoryDenyWriteExecute= in the unit). */
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                             SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
        if (r < 0)
                goto out;
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                             SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
        if (r < 0)
                goto out;
        /* abort() raises SIGABRT with tgkill on itself; no other target. */
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                             SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t) getpid()));
        if (r < 0)
                goto out;
        for (size_t i = 0; i < ELEMENTSOF(killed_syscalls); i++) {
                if (killed_syscalls[i] < 0)
                        continue;
                r = seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, killed_syscalls[i], 0);
                if (r < 0)
                        goto out;
        }
        r = seccomp_load(ctx);
out:
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
