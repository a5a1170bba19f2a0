/* `systemctl reload tern.target` for tern-deliverd: SIGHUP re-reads tern.conf;
 * jobs started afterwards use the new configuration, running workers finish
 * with the one they were forked with; an invalid file is refused with a log
 * entry and the old configuration stays. */
#pragma once

#include "config_reload.h"
#include "server.h"

/* Watches SIGHUP for s, which runs with current. Returns 0 or -errno. */
int reload_setup(sd_event *e, Server *s, const Config *current, const char *config_path,
                 ConfigReload **ret);
