/* Queue administration for ternctl and mailq: IPC_QUEUE_LIST, IPC_QUEUE_FLUSH. */
#pragma once

#include "server.h"

/* Handlers for server.c's table. A negative return closes the peer. */
int admin_on_list(Peer *p, const IpcMsg *m);
int admin_on_flush(Peer *p, const IpcMsg *m);
