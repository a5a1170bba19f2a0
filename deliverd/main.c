/* tern-deliverd: set-up only. Reads the configuration, takes the socket from
 * systemd (or binds DeliverdSocket itself), enters the sandbox, and runs the
 * event loop of server.c until SIGTERM and the last worker are done. */
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "ipc.h"
#include "local_helper.h"
#include "log.h"
#include "sandbox.h"
#include "reload.h"
#include "server.h"

static const char *arg_config;

/* The socket systemd passed (tern-deliverd.socket), or our own bound to
 * DeliverdSocket with mode 0600, owned by the queue user (when we are root) so
 * that queued can connect. */
static int listen_socket(const Config *c) {
        uid_t uid = (uid_t) -1;
        gid_t gid = (gid_t) -1;
        bool from_systemd;
        int fd;

        if (geteuid() == 0 && !isempty(c->queue_user)) {
                struct passwd *pw = getpwnam(c->queue_user);
                if (pw) {
                        uid = pw->pw_uid;
                        gid = pw->pw_gid;
                }
        }
        fd = ipc_listen(c->deliverd_socket, 0600, uid, gid, &from_systemd);
        if (fd == -EADDRINUSE)
                return log_error_errno(fd, "Another deliverd is listening on \"%s\"",
                                       c->deliverd_socket);
        if (fd < 0)
                return log_error_errno(fd, "Cannot listen on the socket from systemd or on "
                                       "DeliverdSocket \"%s\": %m", c->deliverd_socket);
        return fd;
}

static int on_term(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
        Server *s = userdata;

        log_info("Stopping: no new jobs, waiting for running workers");
        (void) sd_notify(0, "STOPPING=1");
        server_stop(s);
        return 0;
}

int main(int argc, char *argv[]) {
        /* First: freed last, after everything that may point into its configurations. */
        _cleanup_(config_reload_freep) ConfigReload *reload = NULL;
        _cleanup_(config_freep) Config *config = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(server_freep) Server *server = NULL;
        _cleanup_free_ char *dropin = NULL;
        ConfigError error = {};
        char ebuf[1024];
        sigset_t mask;
        int fd, r;

        log_open("tern-deliverd");
        r = config_parse_daemon_argv(argc, argv, &arg_config);
        if (r > 0)
                return 0;
        if (r < 0) {
                fprintf(stderr, "Usage: %s [-c FILE|--config FILE]\n", argv[0]);
                return 2;
        }
        if (asprintf(&dropin, "%s.d", arg_config) < 0)
                return 1;
        r = config_load(arg_config, dropin, &config, &error);
        if (r < 0) {
                LogField f[] = { { "MESSAGE_ID", LOG_MID_CONFIG_ERROR } };
                log_fields_errno(LOG_ERR, r, f, "Bad configuration: %s",
                                 config_error_string(&error, ebuf, sizeof(ebuf)));
                return 1;
        }

        /* Blocked for sd-event; workers inherit the mask, so SIGTERM sent to
         * the whole cgroup lets them finish their job. */
        (void) sigemptyset(&mask);
        (void) sigaddset(&mask, SIGTERM);
        (void) sigaddset(&mask, SIGINT);
        (void) sigaddset(&mask, SIGCHLD);
        (void) sigprocmask(SIG_BLOCK, &mask, NULL);
        (void) signal(SIGPIPE, SIG_IGN);

        fd = listen_socket(config);
        if (fd < 0)
                return 1;
        r = sandbox_enter(config, arg_config);
        if (r < 0) {
                (void) close(fd);
                return log_error_errno(r, "Cannot reduce capabilities: %m"), 1;
        }

        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Cannot create the event loop: %m"), 1;
        r = local_helper_watch(event);
        if (r < 0)
                return log_error_errno(r, "Cannot watch the local-delivery helper: %m"), 1;
        r = server_new(event, config, fd, &server);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the server: %m"), 1;
        r = sd_event_add_signal(event, NULL, SIGTERM, on_term, server);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, on_term, server);
        if (r >= 0)
                r = reload_setup(event, server, config, arg_config, &reload);
        if (r < 0)
                return log_error_errno(r, "Cannot watch signals: %m"), 1;

        log_info("Ready, delivering with up to %" PRIu64 " workers",
                 config->delivery_concurrency ?: 1);
        (void) sd_notify(0, "READY=1");
        r = sd_event_loop(event);
        (void) sd_notify(0, "STOPPING=1");
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m"), 1;
        return 0;
}
