/* `systemctl reload tern.target` for tern-queued: SIGHUP re-reads tern.conf;
 * a valid configuration replaces the running one at once (backoff, lifetimes,
 * concurrency, bounce settings...), an invalid one is refused with a log
 * entry and the old one stays. */
#pragma once

#include "config_reload.h"
#include "queue.h"

/* Watches SIGHUP for q. Returns 0 or -errno. */
int reload_setup(sd_event *e, Queue *q, const char *config_path, ConfigReload **ret);
