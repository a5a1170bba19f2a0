/* Fetches queued's metrics text (IPC_STATS_GET) for ternctl and tern-metrics. */
#pragma once

#include "util.h"

/* Connects to queued at socket_path (role "ctl") and returns its metrics text
 * as a new string. Returns 0, -ENOENT/-ECONNREFUSED/... when queued is
 * unreachable, -EBADMSG when it answered nonsense. */
int stats_fetch(const char *socket_path, char **ret);
