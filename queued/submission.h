/* One message transaction from a peer: IPC_MSG_BEGIN, RCPT, DATA, END or
 * ABORT. END stages the message (commit.c makes it durable with others) and
 * QUEUED is sent only once it is. */
#pragma once

#include "server.h"

Submission *submission_free(Submission *s);

/* Handlers for server.c's table. A negative return closes the peer. */
int submission_on_begin(Peer *p, const IpcMsg *m);
int submission_on_rcpt(Peer *p, const IpcMsg *m);
int submission_on_data(Peer *p, const IpcMsg *m);
int submission_on_end(Peer *p, const IpcMsg *m);
int submission_on_abort(Peer *p, const IpcMsg *m);

/* Called by commit.c when the message of s was committed (result 0) or not
 * (-errno): logs, schedules it and answers QUEUED or 451 to p (NULL when the
 * peer went away). Takes over s. */
void submission_committed(Queue *q, Peer *p, Submission *s, int result);
