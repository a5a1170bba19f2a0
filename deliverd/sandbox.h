/* deliverd's privileges, stated in one place (see sandbox.c). */
#pragma once

#include "config.h"

/* Run as root: reduces the capability bounding, permitted and effective sets
 * to CAP_SETUID, CAP_SETGID and (when available) CAP_KILL. Not root: nothing
 * to drop. Returns 0 or -errno. */
int sandbox_enter(void);

/* In a worker before remote delivery: becomes an unprivileged user ("nobody"
 * when run as root) with no capabilities and no_new_privs. 0 or -errno. */
int sandbox_drop_for_remote(void);
