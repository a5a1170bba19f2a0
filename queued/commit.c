/* Group commit of arriving messages. queued is single-threaded: the fsyncs of
 * one message would otherwise be paid in full by every message. Here END only
 * writes tmp/<id> and starts its write-back; a low-priority event source runs
 * once every peer with input ready has been served and commits the whole batch
 * (spool_commit: fsync each file, rename, one fsync of queue/), then answers
 * each peer. A timer bounds how long a batch can wait behind busy peers.
 *
 * The files of a batch are fsynced by short-lived threads at the same time:
 * the file system then folds them into one journal commit and one cache
 * flush, where one fsync after another costs a flush each (ext4 flushes again
 * for a file whose transaction is already committed). The threads do nothing
 * but fsync(2) on fds the loop hands them and are joined before it goes on. */
#include <pthread.h>

#include "commit.h"
#include "log.h"
#include "submission.h"

/* A batch this big is committed at once. */
#define COMMIT_BATCH_MAX 256u
/* Threads fsyncing one batch. */
#define COMMIT_SYNC_THREADS_MAX 16u
/* Longest a staged message waits for the batch to close when other peers keep
 * the event loop busy. */
#define COMMIT_DELAY_MAX_USEC (5u * 1000u)

typedef struct CommitItem {
        Peer *peer;             /* NULL once the peer went away */
        Submission *submission;
} CommitItem;

struct Commit {
        Queue *queue;
        sd_event_source *defer;
        sd_event_source *timer;
        size_t n;
        CommitItem items[COMMIT_BATCH_MAX];
        SpoolStaged staged[COMMIT_BATCH_MAX];
};

size_t commit_pending(const Commit *c) {
        return c->n;
}

typedef struct CommitSync {
        SpoolStaged *v;
        size_t n, first, stride;
} CommitSync;

static void *commit_sync_thread(void *userdata) {
        const CommitSync *t = userdata;

        for (size_t i = t->first; i < t->n; i += t->stride) {
                SpoolStaged *s = &t->v[i];

                if (s->fd < 0)
                        continue;
                s->result = fsync(s->fd) < 0 ? -errno : 0;
                s->synced = true;
        }
        return NULL;
}

/* fsyncs v[0..n) in parallel; each gets synced = true and result 0 or -errno.
 * Where a thread cannot be started its share is done here. */
static void commit_sync_parallel(SpoolStaged *v, size_t n) {
        pthread_t threads[COMMIT_SYNC_THREADS_MAX];
        CommitSync tasks[COMMIT_SYNC_THREADS_MAX];
        size_t k = n < COMMIT_SYNC_THREADS_MAX ? n : COMMIT_SYNC_THREADS_MAX, started = 0;

        static bool warned;
        int r = 0;

        for (size_t i = 0; i < k; i++) {
                tasks[i] = (CommitSync) { .v = v, .n = n, .first = i, .stride = k };
                if (started == i && (r = pthread_create(&threads[i], NULL, commit_sync_thread,
                                                        &tasks[i])) == 0)
                        started++;
        }
        if (started < k && !warned) {
                /* E.g. a seccomp filter without clone3: correct, only slower. */
                log_warning_errno(-r, "Cannot start threads to fsync arriving messages together, "
                                  "fsyncing them one after another: %m");
                warned = true;
        }
        for (size_t i = started; i < k; i++)
                (void) commit_sync_thread(&tasks[i]);
        for (size_t i = 0; i < started; i++)
                (void) pthread_join(threads[i], NULL);
}

void commit_run(Commit *c) {
        size_t n = c->n;

        if (n == 0)
                return;
        (void) sd_event_source_set_enabled(c->defer, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
        if (n > 1)
                commit_sync_parallel(c->staged, n);
        (void) spool_commit(c->queue->spool_fd, c->staged, n);
        /* The batch is emptied before anyone is answered: a reply handler
         * never sees half a batch. */
        c->n = 0;
        for (size_t i = 0; i < n; i++) {
                Peer *p = c->items[i].peer;

                if (p)
                        p->committing = false;
                submission_committed(c->queue, p, c->items[i].submission, c->staged[i].result);
        }
}

static int on_defer(sd_event_source *s, void *userdata) {
        commit_run(userdata);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        commit_run(userdata);
        return 0;
}

int commit_add(Commit *c, Peer *p, Submission *s, const SpoolStaged *st) {
        uint64_t now;

        if (c->n >= COMMIT_BATCH_MAX)
                commit_run(c);
        if (c->n == 0 && sd_event_now(c->queue->event, CLOCK_MONOTONIC, &now) >= 0) {
                (void) sd_event_source_set_time(c->timer, now + COMMIT_DELAY_MAX_USEC);
                (void) sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        }
        c->items[c->n] = (CommitItem) { .peer = p, .submission = s };
        c->staged[c->n] = *st;
        c->n++;
        p->committing = true;
        (void) sd_event_source_set_enabled(c->defer, SD_EVENT_ONESHOT);
        if (c->n >= COMMIT_BATCH_MAX)
                commit_run(c);
        return 0;
}

void commit_forget_peer(Commit *c, Peer *p) {
        for (size_t i = 0; c && i < c->n; i++)
                if (c->items[i].peer == p)
                        c->items[i].peer = NULL;
}

int commit_new(Queue *q, Commit **ret) {
        Commit *c = new0(Commit, 1);
        int r;

        if (!c)
                return -ENOMEM;
        c->queue = q;
        r = sd_event_add_defer(q->event, &c->defer, on_defer, c);
        /* Below the peers' priority: it runs when no peer with input is left. */
        if (r >= 0)
                r = sd_event_source_set_priority(c->defer, SD_EVENT_PRIORITY_NORMAL + 10);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->defer, SD_EVENT_OFF);
        if (r >= 0)
                /* Accuracy 1 ms: the default (250 ms) would defeat the bound. */
                r = sd_event_add_time(q->event, &c->timer, CLOCK_MONOTONIC, 0, 1000u, on_timer, c);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
        if (r < 0) {
                commit_free(c);
                return r;
        }
        (void) sd_event_source_set_description(c->defer, "group-commit");
        *ret = c;
        return 0;
}

Commit *commit_free(Commit *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n; i++) {
                spool_staged_discard(c->queue->spool_fd, &c->staged[i]);
                if (c->items[i].peer)
                        c->items[i].peer->committing = false;
                submission_free(c->items[i].submission);
        }
        c->defer = sd_event_source_disable_unref(c->defer);
        c->timer = sd_event_source_disable_unref(c->timer);
        free(c);
        return NULL;
}
