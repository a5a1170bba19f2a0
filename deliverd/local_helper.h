/* The privileged local-delivery helper. deliverd forks it before it drops
 * every capability; it alone keeps CAP_SETUID, CAP_SETGID (and CAP_KILL),
 * and does nothing but local delivery: a worker hands it the local part of a
 * job over a private socket and gets one result per recipient back. */
#pragma once

#include "transport.h"

/* Forks the helper (call while still privileged). The helper closes every
 * other descriptor, dies with deliverd (PR_SET_PDEATHSIG) and forks one
 * child per request, which reads config_path (and its drop-ins) again, so
 * that `systemctl reload` reaches local delivery; when that fails it uses c,
 * the configuration deliverd started with. 0 or -errno. */
int local_helper_start(const Config *c, const char *config_path);

struct sd_event;
/* In deliverd's main process: when the helper is gone (killed, crashed), no
 * local delivery can ever succeed again and nothing unprivileged can start it
 * anew, so the event loop ends with -EPIPE and deliverd exits with a failure
 * for systemd to restart it (Restart=on-failure). No helper: nothing to do.
 * 0 or -errno. */
int local_helper_watch(struct sd_event *e);

/* True in deliverd and its workers once the helper runs. */
bool local_helper_active(void);

/* Has the helper deliver job's recipients (same contract as
 * transport_local_deliver). The message travels in a sealed memfd. */
int local_helper_deliver(const DeliveryJob *job, DeliveryResult *results);

/* In a helper child: the connection of the worker it serves, -1 elsewhere.
 * local.c watches it while a delivery runs: a worker that was killed
 * takes its delivery with it, since nobody would record the result. */
int local_helper_watch_fd(void);
