/* The in-memory table of queued messages: what queued knows about each spool
 * file (recipients and their state, attempts, next attempt, hold), rebuilt
 * from the spool directory at start-up. queue.c is the central state object of
 * tern-queued; the other files hang off it. */
#pragma once

#include <systemd/sd-event.h>

#include "config.h"
#include "spool.h"

typedef struct Commit Commit;
typedef struct Delivery Delivery;
typedef struct Queue Queue;
typedef struct QueueMsg QueueMsg;

struct QueueMsg {
        Queue *queue;
        char id[SPOOL_ID_MAX];
        char *sender;                   /* "" = null sender */
        uint64_t size;
        uint64_t arrival_usec;
        size_t n_rcpts;
        char **rcpts;                   /* addresses, for listings and bounces */
        DeliveryStatus *status;         /* NONE or DEFERRED: still pending */
        bool *in_flight;                /* part of a job deliverd has now */
        char *last_error;               /* last temporary failure, for listings */
        bool *dsn_relayed;              /* bounce.c: next hop took NOTIFY; NULL: none did */
        bool dsn_success;               /* bounce.c: a recipient asked for NOTIFY=SUCCESS */
        unsigned attempts;
        uint64_t next_attempt_usec;     /* CLOCK_REALTIME usec */
        bool hold;
        bool deleted;                   /* an administrator deleted it; jobs still in flight */
        bool waiting;                   /* deferred: its timer is armed */
        bool ready;                     /* in the delivery ready list */
        bool round_deferred;            /* a recipient was deferred in this round */
        unsigned jobs;                  /* jobs in flight */
        sd_event_source *timer;
        QueueMsg *prev, *next;          /* all messages */
        QueueMsg *ready_next, *ready_prev; /* delivery.c's ready list */
        char **rcpt_dest;               /* destination key of each recipient, once computed */
};

struct Queue {
        const Config *config;
        sd_event *event;
        int spool_fd;                   /* not owned */
        QueueMsg *head, *tail;
        size_t n_msgs;
        Delivery *delivery;
        Commit *commit;                 /* arriving messages being made durable together */
        bool stopping;                  /* SIGTERM: finishing the deliveries in flight */
        uint64_t n_received, n_sent, n_bounced, n_deferred;
        size_t submission_bytes;        /* message bodies being received, all peers */
};

int queue_new(sd_event *e, const Config *c, int spool_fd, Queue **ret);
Queue *queue_free(Queue *q);
DEFINE_POINTER_CLEANUP(Queue, queue_free);

/* Rebuilds the table from queue/ at start-up: leftovers in tmp/ are removed
 * (never acknowledged), unreadable files go to corrupt/, orphan state files
 * are removed. Never fails for one bad file; returns 0 or -errno when the
 * directory cannot be read. */
int queue_scan(Queue *q);

/* Enters a message that was just written with spool_write and schedules it at
 * once. Returns 0 or -ENOMEM (the file stays and is picked up at the next start). */
int queue_add(Queue *q, const SpoolEnvelope *env, uint64_t size);

/* Removes m's files without any report and frees m (`ternctl queue delete`);
 * with jobs in flight it only marks m, which goes when they end. 0 or -errno
 * (the files could not be removed; m stays). */
int queue_msg_delete(QueueMsg *m, uid_t by);

/* m's file cannot be read (error): it goes to corrupt/ with a log entry and
 * leaves the table (at once, or when its jobs in flight end). */
void queue_msg_corrupt(QueueMsg *m, int error);

/* The message becomes due now (new, recovered, timer fired, flushed). */
void queue_msg_due(QueueMsg *m);

/* Called by delivery.c when the last job of a round ended and nothing of the
 * message is left to dispatch: removes a finished message, or records the
 * attempt and schedules the next one. */
void queue_msg_round_done(QueueMsg *m);

/* True while the recipient has no final result. */
bool queue_rcpt_pending(const QueueMsg *m, size_t i);

/* "active", "deferred" or "hold", as `ternctl queue` shows it. */
const char *queue_msg_state(const QueueMsg *m);

QueueMsg *queue_find(Queue *q, const char *id);

/* Sends STATUS= with the queue counts to the service manager:
 * "12 queued, 3 active, 2 deferred, 1 held; 3 deliveries in flight; ...". */
void queue_notify_status(Queue *q);
