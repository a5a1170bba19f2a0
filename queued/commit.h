/* Group commit: messages whose END arrived close together are made durable
 * together (their files fsynced one after the other while the first journal
 * commit carries them all, then one fsync of queue/), and only then is each
 * one acknowledged. Promise 1 is unchanged: no QUEUED before the message's
 * file and its directory entry are on stable storage. */
#pragma once

#include "server.h"
#include "spool.h"

typedef struct Commit Commit;

int commit_new(Queue *q, Commit **ret);
/* Discards what is staged (never acknowledged: removed from tmp/). */
Commit *commit_free(Commit *c);
DEFINE_POINTER_CLEANUP(Commit, commit_free);

/* Adds a staged message of peer p; takes over s and st's fd. The batch is
 * committed from the event loop once the peers that are ready have been
 * served (or at once when it is full); then submission_committed() is called
 * for each message. Returns 0 or -ENOMEM (nothing taken; caller discards). */
int commit_add(Commit *c, Peer *p, Submission *s, const SpoolStaged *st);

/* p is going away: its messages are still committed, but nobody is told. */
void commit_forget_peer(Commit *c, Peer *p);

/* Commits the batch now (shutdown). */
void commit_run(Commit *c);
