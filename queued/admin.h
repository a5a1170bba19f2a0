/* Queue administration for ternctl and mailq: list, show, flush, hold,
 * release, delete, requeue (IPC_QUEUE_* in common/ipc.h). */
#pragma once

#include "server.h"

/* Handlers for server.c's table. A negative return closes the peer. */
int admin_on_list(Peer *p, const IpcMsg *m);
int admin_on_flush(Peer *p, const IpcMsg *m);
int admin_on_show(Peer *p, const IpcMsg *m);
int admin_on_hold(Peer *p, const IpcMsg *m);
int admin_on_release(Peer *p, const IpcMsg *m);
int admin_on_delete(Peer *p, const IpcMsg *m);
int admin_on_requeue(Peer *p, const IpcMsg *m);
