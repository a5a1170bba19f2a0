/* tern-queued's side of a reload: swap q->config, which every part of queued
 * reads through the Queue (no copies), so the next decision uses it. */
#include "log.h"
#include "reload.h"

static void reload_apply(const Config *c, int r, const ConfigError *e, const char *restart_keys,
                         void *userdata) {
        Queue *q = userdata;
        char buf[1024];

        if (!c) {
                LogField f[] = { { "MESSAGE_ID", LOG_MID_CONFIG_ERROR } };

                (void) log_fields_errno(LOG_ERR, r, f, "Reload refused, keeping the running "
                                        "configuration: %s", config_error_string(e, buf, sizeof(buf)));
                return;
        }
        q->config = c;
        {
                LogField f[] = { { "MESSAGE_ID", LOG_MID_RELOADED } };

                (void) log_fields(LOG_INFO, f, "Configuration reloaded");
        }
        if (!isempty(restart_keys))
                log_warning("Changed %s take%s effect only when tern-queued restarts", restart_keys,
                            strchr(restart_keys, ' ') ? "" : "s");
}

int reload_setup(sd_event *e, Queue *q, const char *config_path, ConfigReload **ret) {
        return config_reload_new(e, config_path, q->config, reload_apply, q, ret);
}
