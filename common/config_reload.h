/* Configuration reload on SIGHUP for the long-running daemons (queued,
 * deliverd): `systemctl reload` sends SIGHUP (ExecReload=), the file and its
 * drop-ins are read again and validated; only a valid configuration is handed
 * to the daemon. Nothing is closed or restarted, so no connection or message
 * is dropped. Like every common/ module it does not log: the daemon's callback
 * says what happened. */
#pragma once

#include <systemd/sd-event.h>

#include "config.h"

typedef struct ConfigReload ConfigReload;

/* Called once per SIGHUP. On success c is the new configuration, r is 0 and
 * restart_keys names the keys (space-separated, "" if none) whose new value
 * only takes effect at the next start; c stays valid until
 * config_reload_free, so pointers into the previous one stay valid too. On
 * failure c is NULL, r < 0 and e says file, line and key: the caller keeps
 * its running configuration. */
typedef void (*ConfigReloadFunc)(const Config *c, int r, const ConfigError *e,
                                 const char *restart_keys, void *userdata);

/* Blocks SIGHUP and watches it on e. current is the configuration in use (not
 * owned). Returns 0 or -errno. */
int config_reload_new(sd_event *e, const char *path, const Config *current, ConfigReloadFunc f,
                      void *userdata, ConfigReload **ret);
/* Frees every configuration loaded by reloads. */
ConfigReload *config_reload_free(ConfigReload *r);
DEFINE_POINTER_CLEANUP(ConfigReload, config_reload_free);

/* Keys whose values differ between a and b and are read only at start-up
 * (spool, sockets, users), written space-separated into buf. */
const char *config_restart_keys(const Config *a, const Config *b, char *buf, size_t size);
