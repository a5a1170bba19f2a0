/* tern-deliverd's side of a reload: the server hands the configuration to
 * each new worker, so swapping it there is all a reload needs. */
#include "log.h"
#include "reload.h"

static void reload_apply(const Config *c, int r, const ConfigError *e, const char *restart_keys,
                         void *userdata) {
        Server *s = userdata;
        char buf[1024];

        if (!c) {
                LogField f[] = { { "MESSAGE_ID", LOG_MID_CONFIG_ERROR } };

                (void) log_fields_errno(LOG_ERR, r, f, "Reload refused, keeping the running "
                                        "configuration: %s", config_error_string(e, buf, sizeof(buf)));
                return;
        }
        server_set_config(s, c);
        {
                LogField f[] = { { "MESSAGE_ID", LOG_MID_RELOADED } };

                (void) log_fields(LOG_INFO, f, "Configuration reloaded");
        }
        if (!isempty(restart_keys))
                log_warning("Changed %s take%s effect only when tern-deliverd restarts", restart_keys,
                            strchr(restart_keys, ' ') ? "" : "s");
}

int reload_setup(sd_event *e, Server *s, const Config *current, const char *config_path,
                 ConfigReload **ret) {
        return config_reload_new(e, config_path, current, reload_apply, s, ret);
}
