/* One message transaction from a peer: IPC_MSG_BEGIN, RCPT, DATA, END or
 * ABORT. END makes the message durable (spool_write) before QUEUED is sent. */
#pragma once

#include "server.h"

Submission *submission_free(Submission *s);

/* Handlers for server.c's table. A negative return closes the peer. */
int submission_on_begin(Peer *p, const IpcMsg *m);
int submission_on_rcpt(Peer *p, const IpcMsg *m);
int submission_on_data(Peer *p, const IpcMsg *m);
int submission_on_end(Peer *p, const IpcMsg *m);
int submission_on_abort(Peer *p, const IpcMsg *m);
