/* tern-queued: set-up only. Reads the configuration, opens the spool, rebuilds
 * the queue from it, takes the socket from systemd (or binds QueuedSocket
 * itself) and runs the event loop until SIGTERM. */
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "commit.h"
#include "config.h"
#include "delivery.h"
#include "ipc.h"
#include "log.h"
#include "queue.h"
#include "reload.h"
#include "server.h"

/* How long SIGTERM waits for deliveries in flight; below TimeoutStopSec=30s
 * of tern-queued.service so systemd never has to kill us. */
#define STOP_WAIT_USEC (20u * 1000000u)
/* How often STATUS= is refreshed when no watchdog asks for more. */
#define STATUS_INTERVAL_USEC (5u * 1000000u)

static const char *arg_config;

typedef struct Context {
        sd_event *event;
        Queue *queue;
        Server *server;
        uint64_t tick_usec;
        bool watchdog;
} Context;

/* The socket systemd passed (tern-queued.socket), or our own bound to
 * QueuedSocket with mode 0666: anyone may submit, queued learns who from
 * SO_PEERCRED. */
static int listen_socket(const Config *c) {
        bool from_systemd;
        int fd = ipc_listen(c->queued_socket, 0666, (uid_t) -1, (gid_t) -1, &from_systemd);

        if (fd == -EADDRINUSE)
                return log_error_errno(fd, "Another queued is listening on \"%s\"", c->queued_socket);
        if (fd < 0)
                return log_error_errno(fd, "Cannot listen on the socket from systemd or on "
                                       "QueuedSocket \"%s\": %m", c->queued_socket);
        return fd;
}

static void stop_now(void *userdata) {
        Context *ctx = userdata;

        log_info("Stopped; %zu message%s stay queued", ctx->queue->n_msgs,
                 ctx->queue->n_msgs == 1 ? "" : "s");
        (void) sd_event_exit(ctx->event, 0);
}

static int on_stop_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        Context *ctx = userdata;
        size_t n = delivery_in_flight(ctx->queue->delivery);

        /* Their recipients stay pending: deliverd may finish them, and a
         * result that was not recorded means one more delivery at most. */
        log_warning("%zu deliver%s still under way after %u s, handing %s back to the queue",
                    n, n == 1 ? "y" : "ies", (unsigned) (STOP_WAIT_USEC / 1000000u),
                    n == 1 ? "it" : "them");
        stop_now(ctx);
        return 0;
}

/* SIGTERM: stop taking messages and starting deliveries, wait a bounded time
 * for the deliveries in flight (their results are recorded as they come),
 * then exit 0. Everything not delivered stays queued for the next start. A
 * second SIGTERM exits at once. */
static int on_term(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
        Context *ctx = userdata;
        size_t n;

        if (ctx->queue->stopping) {
                log_info("Stopping now, as asked again");
                stop_now(ctx);
                return 0;
        }
        ctx->queue->stopping = true;
        n = delivery_in_flight(ctx->queue->delivery);
        log_info("Stopping: no new messages or deliveries, waiting up to %u s for %zu "
                 "deliver%s under way", (unsigned) (STOP_WAIT_USEC / 1000000u), n,
                 n == 1 ? "y" : "ies");
        (void) sd_notify(0, "STOPPING=1");
        /* Messages already staged are made durable and acknowledged. */
        commit_run(ctx->queue->commit);
        server_stop(ctx->server);
        queue_notify_status(ctx->queue);
        if (sd_event_add_time_relative(ctx->event, NULL, CLOCK_MONOTONIC, STOP_WAIT_USEC, 0,
                                       on_stop_timeout, ctx) < 0) {
                stop_now(ctx);
                return 0;
        }
        delivery_stop(ctx->queue->delivery, stop_now, ctx);
        return 0;
}

static int on_tick(sd_event_source *src, uint64_t usec, void *userdata) {
        Context *ctx = userdata;

        queue_notify_status(ctx->queue);
        if (ctx->watchdog)
                (void) sd_notify(0, "WATCHDOG=1");
        /* A time source fires once unless enabled again. */
        (void) sd_event_source_set_time(src, usec + ctx->tick_usec);
        (void) sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
        return 0;
}

int main(int argc, char *argv[]) {
        /* First: freed last, after everything that may point into its configurations. */
        _cleanup_(config_reload_freep) ConfigReload *reload = NULL;
        _cleanup_(config_freep) Config *config = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(queue_freep) Queue *queue = NULL;
        _cleanup_(server_freep) Server *server = NULL;
        _cleanup_free_ char *dropin = NULL;
        _cleanup_close_ int spool_fd = -EBADF;
        uint64_t watchdog_usec = 0, now;
        Context ctx = {};
        ConfigError error = {};
        char ebuf[1024];
        sigset_t mask;
        int fd, r;

        log_open("tern-queued");
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

        (void) sigemptyset(&mask);
        (void) sigaddset(&mask, SIGTERM);
        (void) sigaddset(&mask, SIGINT);
        (void) sigprocmask(SIG_BLOCK, &mask, NULL);
        (void) signal(SIGPIPE, SIG_IGN);

        spool_fd = open(config->spool_directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (spool_fd < 0)
                return log_error_errno(-errno, "Cannot open the spool directory \"%s\": %m",
                                       config->spool_directory), 1;
        r = spool_prepare(spool_fd);
        if (r < 0)
                return log_error_errno(r, "Cannot prepare the spool directory \"%s\": %m",
                                       config->spool_directory), 1;

        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Cannot create the event loop: %m"), 1;
        r = queue_new(event, config, spool_fd, &queue);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the queue: %m"), 1;
        r = queue_scan(queue);
        if (r < 0)
                return log_error_errno(r, "Cannot read the spool directory \"%s\": %m",
                                       config->spool_directory), 1;

        fd = listen_socket(config);
        if (fd < 0)
                return 1;
        r = server_new(queue, fd, &server);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the server: %m"), 1;

        ctx.event = event;
        ctx.queue = queue;
        ctx.server = server;
        ctx.tick_usec = STATUS_INTERVAL_USEC;
        if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
                ctx.watchdog = true;
                if (watchdog_usec / 2 < ctx.tick_usec)
                        ctx.tick_usec = watchdog_usec / 2;
        }
        r = sd_event_add_signal(event, NULL, SIGTERM, on_term, &ctx);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, on_term, &ctx);
        if (r >= 0)
                r = reload_setup(event, queue, arg_config, &reload);
        if (r >= 0)
                r = sd_event_now(event, CLOCK_MONOTONIC, &now);
        if (r >= 0)
                r = sd_event_add_time(event, NULL, CLOCK_MONOTONIC, now + ctx.tick_usec, 0, on_tick,
                                      &ctx);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the event loop: %m"), 1;

        log_info("Ready, spool \"%s\", socket %s%s%s", config->spool_directory,
                 fd == SD_LISTEN_FDS_START ? "" : "\"",
                 fd == SD_LISTEN_FDS_START ? "from systemd" : config->queued_socket,
                 fd == SD_LISTEN_FDS_START ? "" : "\"");
        (void) sd_notify(0, "READY=1");
        queue_notify_status(queue);
        r = sd_event_loop(event);
        (void) sd_notify(0, "STOPPING=1");
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m"), 1;
        return 0;
}
