/* smtpd's privileges, stated in one place: no capabilities, no new
 * privileges, and a seccomp allow-list that permits talking over already open
 * descriptors and nothing else (no open, no socket, no exec). */
#pragma once

/* Drops every capability (effective, permitted, inheritable, ambient and, when
 * allowed, the bounding set), sets PR_SET_NO_NEW_PRIVS and loads the seccomp
 * filter. Returns 0 or -errno; on failure the caller must not go on. */
int sandbox_enter(void);
