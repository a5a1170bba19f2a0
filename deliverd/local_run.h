/* How local delivery runs a target: as which account (LocalUser, looked up
 * by name or uid) and in a child that becomes it for good before it touches
 * anything, under the time limit (local_run.c). Shared by local.c and
 * local_target.c. */
#pragma once

#include <limits.h>
#include <sys/types.h>

#include "alias.h"
#include "route.h"
#include "transport.h"

#define LOCAL_TIMEOUT_DEFAULT_USEC (300ull * 1000000ull)

typedef struct LocalUser {
        char name[LOGIN_NAME_MAX + 1];
        char home[PATH_MAX];
        char shell[PATH_MAX];
        uid_t uid;
        gid_t gid;
        gid_t extra_gid; /* group of a shared mail spool, or (gid_t) -1 */
} LocalUser;

/* One recipient being delivered, shared (read-only) with the children. */
typedef struct LocalCtx {
        const DeliveryJob *job;
        const Config *config;
        const char *rcpt;
        const char *orcpt;      /* decoded ORCPT, or rcpt */
        const Route *route;
        const char *hostname;
        uint64_t timeout;
} LocalCtx;

/* What a child does once it is u: fills res. */
typedef void (*LocalChildFn)(const LocalCtx *ctx, const LocalTarget *t, const LocalUser *u,
                             DeliveryResult *res);

/* The account called name: 0, -ENOENT (none) or -errno (lookup failed). */
int local_user_by_name(const char *name, LocalUser *u);

/* The account of uid (an owner of an alias or :include: file), with gid;
 * one without a passwd entry still runs with its ids. 0 or -errno. */
int local_user_by_uid(uid_t uid, gid_t gid, LocalUser *u);

/* For a mailbox in a shared spool directory (root:mail 2775), the
 * directory's group as an extra group of u. */
void local_spool_group(const char *path, LocalUser *u);

/* Forks a child that becomes u and runs fn(ctx, t, u), and waits for its
 * result with ctx->timeout (plus a grace period, then SIGKILL). A worker
 * gone while it waits (local_helper_watch_fd) ends this process. */
void local_spawn(const LocalCtx *ctx, const LocalUser *u, LocalChildFn fn, const LocalTarget *t,
                 DeliveryResult *res);

/* Config.hostname, or gethostname(), or "localhost". */
const char *local_hostname(const Config *c, char *buf, size_t size);
