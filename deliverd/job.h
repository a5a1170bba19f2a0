/* One delivery job as queued hands it over (IPC_DELIVER), checked against
 * the spool file it came with. */
#pragma once

#include <systemd/sd-event.h>

#include "ipc.h"
#include "spool.h"

struct Peer;

typedef struct Job {
        uint64_t id;                    /* queued's job number */
        char queue_id[SPOOL_ID_MAX];
        SpoolFile *file;                /* mapped read-only; body points into it */
        SpoolEnvelope env;
        const uint8_t *body;
        size_t body_len;
        size_t *rcpt_index;             /* indexes into env.rcpts, distinct */
        size_t n_rcpts;

        /* server.c's bookkeeping */
        struct Peer *peer;
        pid_t pid;
        sd_event_source *child;
        struct Job *next;
} Job;

/* Parses an IPC_DELIVER frame {QUEUE_ID, JOB, RCPT_INDEX...}: every field
 * known, the id valid, 1..SPOOL_RCPT_MAX indexes. Returns 0 and a new Job, or
 * -EBADMSG (the peer is to be closed) or -ENOMEM. */
int job_parse(const IpcMsg *m, Job **ret);

/* Maps the spool file behind fd (taken over), reads its envelope and checks
 * that its id is the job's and every index is in range and distinct.
 * Returns 0, -EBADMSG, -ERANGE or another -errno: the job cannot run. */
int job_load(Job *j, int fd);

/* Frees the job's data (not its bookkeeping's peer). Returns NULL. */
Job *job_free(Job *j);
