/* Delivery status notifications for queued messages (RFC 3461/3464): which
 * recipients are reported to whom and when. Failures and successes are
 * reported at the end of each delivery round for the recipients that ended in
 * it, gathered into one report per kind; a delay warning goes out once per
 * message after DelayWarningTime. The null sender never gets a report; a
 * report of ours that cannot be delivered goes to postmaster once. dsn.c
 * writes the text. */
#pragma once

#include "queue.h"

/* Envelope "proto" values that mark reports tern generated, so that a failed
 * one is recognised as a bounce of a bounce. */
#define BOUNCE_PROTO "tern-dsn"
#define BOUNCE_PROTO_POSTMASTER "tern-dsn-postmaster"

/* deliverd said the next hop accepted the DSN request for recipient i (it
 * will send any success notice itself; RFC 3461 5.2.2). */
void bounce_note_relayed(QueueMsg *m, size_t i);

/* Whether a recipient of env asked for a success report (kept in the
 * QueueMsg, so that a delivered message needs no file read to know). */
bool bounce_wants_success(const SpoolEnvelope *env);

/* A round ended with recipients still pending, before its attempt record is
 * written: reports the recipients that failed or succeeded in this round and
 * the delay warning when it is due. Returns 0, or -errno (logged) when a
 * report could not be queued: the caller then leaves the attempt record out,
 * so that the next round reports again. */
int bounce_round_done(Queue *q, QueueMsg *m);

/* Every recipient of m is final (before its files are removed): reports the
 * recipients not yet reported. Returns 0, or -errno (logged) when a report
 * could not be queued: the caller keeps the message and calls again later. */
int bounce_maybe_send(Queue *q, QueueMsg *m);

/* How long m may stay in the queue: BounceQueueLifetime for mail with the
 * null sender (reports), MaxQueueLifetime for the rest, as Postfix does. */
uint64_t bounce_queue_lifetime_usec(const Queue *q, const QueueMsg *m);
