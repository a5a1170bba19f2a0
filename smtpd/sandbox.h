/* smtpd's privileges, stated in one place: no capabilities, no new
 * privileges, and a seccomp allow-list that permits talking over already open
 * descriptors and nothing else (no open, no socket, no exec). */
#pragma once

/* Drops every capability (effective, permitted, inheritable, ambient and, when
 * allowed, the bounding set), sets PR_SET_NO_NEW_PRIVS and loads the seccomp
 * filter. Returns 0 or -errno; on failure the caller must not go on. */
int sandbox_enter(void);

/* Compiles the filter to BPF now, so that a later sandbox_enter() in this
 * process or in a child forked from it only loads it (a prctl), instead of
 * running libseccomp's compiler (about a millisecond of CPU). The program is
 * the one sandbox_enter() would build itself; tgkill's permitted target is
 * filled in with the caller's pid at sandbox_enter(). Returns 0 or -errno;
 * on failure sandbox_enter() builds the filter as before. */
int sandbox_prepare(void);
