/* deliverd's privileges. It starts as root (tern-deliverd.service) and
 * splits in two before it reads anything from queued:
 *   - the local-delivery helper (local_helper.c), forked first, keeps only
 *       CAP_SETUID, CAP_SETGID  setresuid/setresgid/initgroups/setgroups in
 *                               the child that becomes the recipient;
 *       CAP_KILL (optional)     SIGKILL for a timed-out child that already
 *                               became the recipient (else its own alarm);
 *     and does nothing but local delivery;
 *   - everything else (the main loop, the workers, the SMTP/LMTP client)
 *     keeps no capability at all: empty permitted and effective sets,
 *     no_new_privs, real and effective uid 0 without capabilities (a
 *     worker can still open root's 0600 tables, such as relay passwords)
 *     and saved uid/gid "nobody", which a worker becomes for good before
 *     remote delivery without needing CAP_SETUID.
 * No CAP_DAC_OVERRIDE, CAP_CHOWN or CAP_FOWNER anywhere: mailboxes are
 * created and written by the child as their owner. */
#include <grp.h>
#include <pwd.h>
#include <sys/capability.h>
#include <signal.h>
#include <sys/prctl.h>

#include "local_helper.h"
#include "sandbox.h"

static const cap_value_t sandbox_keep[] = { CAP_SETUID, CAP_SETGID, CAP_KILL };

static bool sandbox_kept(cap_value_t c) {
        for (size_t i = 0; i < ELEMENTSOF(sandbox_keep); i++)
                if (sandbox_keep[i] == c)
                        return true;
        return false;
}

static void sandbox_nobody(uid_t *uid, gid_t *gid) {
        struct passwd *pw = getpwnam("nobody");

        *uid = pw ? pw->pw_uid : 65534;
        *gid = pw ? pw->pw_gid : 65534;
}

/* Sets permitted = effective = the kept capabilities we hold now. */
static int sandbox_keep_only(void) {
        cap_t caps = cap_get_proc();
        cap_value_t have[ELEMENTSOF(sandbox_keep)];
        size_t n = 0;
        int r = 0;

        if (!caps)
                return -errno;
        for (size_t i = 0; i < ELEMENTSOF(sandbox_keep); i++) {
                cap_flag_value_t v = CAP_CLEAR;
                if (cap_get_flag(caps, sandbox_keep[i], CAP_PERMITTED, &v) == 0 && v == CAP_SET)
                        have[n++] = sandbox_keep[i];
        }
        if (cap_clear(caps) < 0 ||
            (n > 0 && (cap_set_flag(caps, CAP_PERMITTED, (int) n, have, CAP_SET) < 0 ||
                       cap_set_flag(caps, CAP_EFFECTIVE, (int) n, have, CAP_SET) < 0)) ||
            cap_set_proc(caps) < 0)
                r = -errno;
        cap_free(caps);
        return r;
}

int sandbox_enter(const Config *c, const char *config_path) {
        cap_t none = NULL;
        uid_t uid;
        gid_t gid;
        int r;

        if (geteuid() != 0)
                return 0;
        /* The bounding set first, for the helper and us: only what is still
         * in it (under the unit CAP_SETPCAP, which dropping needs, is gone). */
        for (cap_value_t v = 0; v <= CAP_LAST_CAP; v++) {
                if (sandbox_kept(v) || !CAP_IS_SUPPORTED(v) || cap_get_bound(v) <= 0)
                        continue;
                if (cap_drop_bound(v) < 0 && errno != EINVAL && errno != EPERM)
                        return -errno;
        }
        r = sandbox_keep_only();
        if (r < 0)
                return r;
        r = local_helper_start(c, config_path);
        if (r < 0)
                return r;

        /* The rest of deliverd: no capability, ever again. */
        sandbox_nobody(&uid, &gid);
        if (setgroups(0, NULL) < 0 || setresgid(0, 0, gid) < 0 || setresuid(0, 0, uid) < 0)
                return -errno;
        none = cap_init();
        if (!none)
                return -errno;
        r = cap_set_proc(none) < 0 ? -errno : 0;
        cap_free(none);
        if (r < 0)
                return r;
        /* execve() by uid 0 would otherwise refill the sets from the bounding set. */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;
        return 0;
}

int sandbox_drop_for_remote(void) {
        if (geteuid() == 0 || getuid() == 0) {
                uid_t uid;
                gid_t gid;

                uid_t ru, eu, su;
                gid_t rg, eg, sg;

                if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
                        return -errno;
                if (su != 0) {
                        /* Sandboxed by sandbox_enter: the saved ids are
                         * already "nobody", which needs no capability to
                         * become. */
                        if (setresgid(sg, sg, sg) < 0 || setresuid(su, su, su) < 0)
                                return -errno;
                } else {
                        sandbox_nobody(&uid, &gid);
                        if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
                            setresuid(uid, uid, uid) < 0)
                                return -errno;
                }
        }
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;
        /* A worker must not outlive deliverd: its results could no longer be
         * recorded, so a delivery it finished would be repeated after the
         * restart. Set after the uid change, which clears the death signal;
         * a parent already gone left us to PID 1 (or a subreaper). */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                return -errno;
        if (getppid() == 1)
                return -ESRCH;
        return 0;
}
