/* A delivery worker: the child process that runs one job. */
#pragma once

#include "transport.h"

typedef struct WorkerJob {
        int peer_fd;                    /* the queued connection; results go straight there */
        int ctl_fd;                     /* to the parent, for connection reuse; -1: none */
        uint64_t job;
        const Config *config;
        const SpoolEnvelope *env;
        const uint8_t *body;
        size_t body_len;
        const size_t *rcpt_index;
        size_t n_rcpts;
} WorkerJob;

/* Runs in the forked child: groups the recipients by transport (local domain
 * or no domain: local; otherwise smtp), delivers, logs and sends one
 * IPC_RESULT per recipient, then IPC_JOB_DONE. With ctl_fd and an SMTP
 * connection still open it then offers itself for the next job to the same
 * destination (IPC_WORKER_IDLE) for ConnectionReuseTime. Exits 0 when every
 * frame was sent, 1 otherwise (the parent then sends IPC_JOB_DONE itself). */
_Noreturn void worker_run(const WorkerJob *w);

/* True when rcpt is delivered by the local transport. Exposed for tests. */
bool worker_is_local(const Config *c, const char *rcpt);
