/* deliverd's privileges, stated in one place (see sandbox.c). */
#pragma once

#include "config.h"

/* Run as root: reduces the bounding set to CAP_SETUID, CAP_SETGID and
 * CAP_KILL, forks the local-delivery helper (local_helper.h) with those,
 * then leaves this process with no capabilities (see sandbox.c); the helper
 * re-reads config_path for each job, so a reload reaches it too. Not root:
 * nothing to drop, no helper. Returns 0 or -errno. */
int sandbox_enter(const Config *c, const char *config_path);

/* In a worker before remote delivery: becomes an unprivileged user ("nobody"
 * when run as root) with no capabilities and no_new_privs, killed with
 * deliverd (PR_SET_PDEATHSIG). 0 or -errno (-ESRCH: deliverd is gone). */
int sandbox_drop_for_remote(void);
