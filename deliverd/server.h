/* deliverd's connections from queued and its job table. */
#pragma once

#include <systemd/sd-event.h>

#include "config.h"

typedef struct Server Server;

/* Takes over listen_fd (a listening SOCK_SEQPACKET socket) and starts
 * accepting on e. Returns 0 or -errno. */
int server_new(sd_event *e, const Config *c, int listen_fd, Server **ret);
Server *server_free(Server *s);
DEFINE_POINTER_CLEANUP(Server, server_free);

/* Jobs started from now on get c (a reload); c must outlive the server. */
void server_set_config(Server *s, const Config *c);

/* SIGTERM: stops accepting connections and jobs (a job that arrives now or
 * waits for a worker slot gets IPC_JOB_DONE without results, i.e. deferred),
 * lets running workers finish, then exits the event loop. */
void server_stop(Server *s);
