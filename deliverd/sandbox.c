/* deliverd's privileges. It starts as root (tern-deliverd.service) and keeps
 * only what becoming the recipient needs:
 *   CAP_SETUID, CAP_SETGID  setresuid/setresgid/initgroups/setgroups in the
 *                           local-delivery child (local.c);
 *   CAP_KILL (optional)     lets a worker SIGKILL a timed-out child that has
 *                           already become the recipient; without it the
 *                           child's own ITIMER_REAL alarm ends it.
 * No CAP_DAC_OVERRIDE, CAP_CHOWN or CAP_FOWNER: mailboxes are created and
 * written by the child as their owner. Remote delivery drops everything and
 * runs as "nobody". */
#include <grp.h>
#include <pwd.h>
#include <sys/capability.h>
#include <sys/prctl.h>

#include "sandbox.h"

static const cap_value_t sandbox_keep[] = { CAP_SETUID, CAP_SETGID, CAP_KILL };

static bool sandbox_kept(cap_value_t c) {
        for (size_t i = 0; i < ELEMENTSOF(sandbox_keep); i++)
                if (sandbox_keep[i] == c)
                        return true;
        return false;
}

int sandbox_enter(void) {
        cap_t caps = NULL;
        cap_value_t have[ELEMENTSOF(sandbox_keep)];
        size_t n = 0;
        int r = 0;

        if (geteuid() != 0)
                return 0;
        caps = cap_get_proc();
        if (!caps)
                return -errno;
        /* Keep only those of ours that we actually hold (the unit may grant
         * just CAP_SETUID and CAP_SETGID). */
        for (size_t i = 0; i < ELEMENTSOF(sandbox_keep); i++) {
                cap_flag_value_t v = CAP_CLEAR;
                if (cap_get_flag(caps, sandbox_keep[i], CAP_PERMITTED, &v) == 0 && v == CAP_SET)
                        have[n++] = sandbox_keep[i];
        }
        /* Only what is still in the bounding set: under the unit the set is
         * already CAP_SETUID CAP_SETGID and CAP_SETPCAP, which dropping needs,
         * is gone. */
        for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++) {
                if (sandbox_kept(c) || !CAP_IS_SUPPORTED(c) || cap_get_bound(c) <= 0)
                        continue;
                if (cap_drop_bound(c) < 0 && errno != EINVAL) {
                        r = -errno;
                        goto out;
                }
        }
        if (cap_clear(caps) < 0 ||
            (n > 0 && (cap_set_flag(caps, CAP_PERMITTED, (int) n, have, CAP_SET) < 0 ||
                       cap_set_flag(caps, CAP_EFFECTIVE, (int) n, have, CAP_SET) < 0)) ||
            cap_set_proc(caps) < 0) {
                r = -errno;
                goto out;
        }
out:
        cap_free(caps);
        return r;
}

int sandbox_drop_for_remote(void) {
        if (geteuid() == 0) {
                struct passwd *pw = getpwnam("nobody");
                uid_t uid = pw ? pw->pw_uid : 65534;
                gid_t gid = pw ? pw->pw_gid : 65534;

                if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
                    setresuid(uid, uid, uid) < 0)
                        return -errno;
        }
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;
        return 0;
}
