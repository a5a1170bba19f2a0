/* queued's counters for `ternctl stats` and tern-metrics: deliveries by
 * transport and status, a delivery delay histogram, rejections and TLS use
 * reported by each smtpd session, active sessions. They count since queued
 * started (Prometheus counters reset with the process; rate() handles that);
 * the queue sizes are read from the queue table when asked. */
#pragma once

#include "server.h"
#include "spool.h"

/* One recipient's result from deliverd (or an expiry): status and the relay
 * it went to ("local", "host[addr]:port", "none"). */
void stats_note_result(const QueueMsg *m, DeliveryStatus status, const char *relay);

/* A peer said hello with role (may be NULL); smtpd peers are active sessions
 * until stats_peer_gone. */
void stats_peer_hello(Peer *p, const char *role);
void stats_peer_gone(Peer *p);

/* Handlers for server.c's table: IPC_STATS_SESSION (from a trusted smtpd
 * only), IPC_STATS_GET (anyone, like the queue listing). A negative return
 * closes the peer. */
int stats_on_session(Peer *p, const IpcMsg *m);
int stats_on_get(Peer *p, const IpcMsg *m);

/* The Prometheus text exposition of everything above plus the queue sizes,
 * as a new string. Returns 0 or -ENOMEM. */
int stats_render(Queue *q, char **ret);
