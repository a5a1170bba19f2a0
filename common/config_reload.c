/* SIGHUP handling shared by tern-queued and tern-deliverd: read, validate,
 * hand over or refuse. Every configuration ever loaded is kept until the
 * daemon exits, because jobs and peers may still hold pointers into an older
 * one; reloads are rare and a Config is a few KiB. */
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "config_reload.h"

struct ConfigReload {
        sd_event_source *source;
        char *path;
        char *dropin;
        const Config *current;
        Config **loaded;
        size_t n_loaded;
        ConfigReloadFunc func;
        void *userdata;
};

static void append(char *buf, size_t size, const char *word) {
        size_t l = strlen(buf);

        (void) snprintf(buf + l, size - l, "%s%s", l ? " " : "", word);
}

const char *config_restart_keys(const Config *a, const Config *b, char *buf, size_t size) {
        buf[0] = 0;
        if (!streq_ptr(a->spool_directory, b->spool_directory))
                append(buf, size, "SpoolDirectory");
        if (!streq_ptr(a->queued_socket, b->queued_socket))
                append(buf, size, "QueuedSocket");
        if (!streq_ptr(a->deliverd_socket, b->deliverd_socket))
                append(buf, size, "DeliverdSocket");
        if (!streq_ptr(a->queue_user, b->queue_user))
                append(buf, size, "QueueUser");
        if (!streq_ptr(a->smtpd_user, b->smtpd_user))
                append(buf, size, "SmtpdUser");
        return buf;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        ConfigReload *r = userdata;
        ConfigError error = {};
        Config *c = NULL, **l;
        char keys[256];
        struct timespec ts;
        int k;

        /* RELOADING=1 with MONOTONIC_USEC is what Type=notify-reload expects;
         * older systemd ignores it. */
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        (void) sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
                          (unsigned long long) ts.tv_sec * 1000000ULL + (unsigned long long) ts.tv_nsec / 1000ULL);
        k = config_load(r->path, r->dropin, &c, &error);
        if (k >= 0) {
                l = reallocarray_safe(r->loaded, r->n_loaded + 1, sizeof(Config *));
                if (!l) {
                        config_free(c);
                        c = NULL;
                        k = -ENOMEM;
                        (void) snprintf(error.message, sizeof(error.message), "out of memory");
                } else {
                        r->loaded = l;
                        r->loaded[r->n_loaded++] = c;
                }
        }
        if (k < 0)
                r->func(NULL, k, &error, "", r->userdata);
        else {
                r->func(c, 0, NULL, config_restart_keys(r->current, c, keys, sizeof(keys)), r->userdata);
                r->current = c;
        }
        (void) sd_notify(0, "READY=1");
        return 0;
}

int config_reload_new(sd_event *e, const char *path, const Config *current, ConfigReloadFunc f,
                      void *userdata, ConfigReload **ret) {
        _cleanup_(config_reload_freep) ConfigReload *r = NULL;
        sigset_t mask;
        int k;

        r = new0(ConfigReload, 1);
        if (!r)
                return -ENOMEM;
        r->path = strdup(path);
        if (!r->path || asprintf(&r->dropin, "%s.d", path) < 0) {
                r->dropin = NULL;
                return -ENOMEM;
        }
        r->current = current;
        r->func = f;
        r->userdata = userdata;
        (void) sigemptyset(&mask);
        (void) sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        k = sd_event_add_signal(e, &r->source, SIGHUP, on_sighup, r);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(r);
        return 0;
}

ConfigReload *config_reload_free(ConfigReload *r) {
        if (!r)
                return NULL;
        sd_event_source_disable_unref(r->source);
        for (size_t i = 0; i < r->n_loaded; i++)
                config_free(r->loaded[i]);
        free(r->loaded);
        free(r->path);
        free(r->dropin);
        free(r);
        return NULL;
}
