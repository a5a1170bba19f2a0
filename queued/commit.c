/* Group commit of arriving messages, off the event loop.
 *
 * At END queued only writes tmp/<id> and starts its write-back; the message
 * joins the open batch. A low-priority event source closes the batch once
 * every peer with input ready has been served (a timer bounds the wait behind
 * busy peers) and hands it to the commit thread, which makes it durable
 * (spool_commit: fsync each file, rename into queue/, one fsync of queue/)
 * and wakes the loop through an eventfd; the loop then answers each peer.
 *
 * While one batch is being committed the loop goes on: it serves the other
 * peers, sends deliveries and records their results, and the messages that
 * arrive meanwhile gather in the next batch, which is handed over as soon as
 * the thread is free. So batches grow with the load by themselves, and the
 * loop never waits for the disk.
 *
 * Within a batch the files are fsynced at the same time by a small pool of
 * threads that live as long as queued: the file system then folds them into
 * one journal commit and one cache flush, where one fsync after another costs
 * a flush each. The threads only ever call fsync(2) on fds the commit thread
 * hands them, and touch no other state. */
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>

#include "commit.h"
#include "log.h"
#include "submission.h"

/* A batch this big is closed at once. */
#define COMMIT_BATCH_MAX 256u
/* Threads fsyncing one batch, the commit thread included. */
#define COMMIT_SYNC_THREADS 8u
/* Longest a staged message waits for the batch to close when other peers keep
 * the event loop busy. */
#define COMMIT_DELAY_MAX_USEC (5u * 1000u)

typedef struct CommitItem {
        Peer *peer;             /* NULL once the peer went away */
        Submission *submission;
} CommitItem;

typedef struct CommitBatch {
        size_t n;
        CommitItem items[COMMIT_BATCH_MAX];
        SpoolStaged staged[COMMIT_BATCH_MAX];
} CommitBatch;

/* Shared with the threads; every field is under lock. */
typedef struct CommitShared {
        pthread_mutex_t lock;
        pthread_cond_t wake;            /* commit thread: work or stop */
        pthread_cond_t sync_wake;       /* fsync pool: a new generation */
        pthread_cond_t sync_done;       /* commit thread: the pool finished */
        pthread_cond_t done;            /* loop (shutdown): the batch is committed */
        CommitBatch *todo;              /* handed over, not yet taken */
        bool busy;                      /* a batch is being committed */
        bool stop;
        /* The batch being fsynced by the pool. */
        SpoolStaged *sync_v;
        size_t sync_n, sync_next, sync_active;
        uint64_t sync_generation;
} CommitShared;

struct Commit {
        Queue *queue;
        sd_event_source *defer;
        sd_event_source *timer;
        sd_event_source *done_source;
        int efd;
        CommitBatch *open;              /* gathering */
        CommitBatch *flight;            /* handed to the commit thread, or NULL */
        CommitBatch batches[2];
        CommitShared shared;
        pthread_t thread;
        pthread_t pool[COMMIT_SYNC_THREADS - 1];
        size_t n_pool;
        bool threaded;                  /* the commit thread runs */
};

/* Takes the next file of the current generation and fsyncs it; returns false
 * when none is left. Called with the lock held, returns with it held. */
static bool commit_sync_one(CommitShared *sh) {
        SpoolStaged *s;

        if (!sh->sync_v || sh->sync_next >= sh->sync_n)
                return false;
        s = &sh->sync_v[sh->sync_next++];
        sh->sync_active++;
        (void) pthread_mutex_unlock(&sh->lock);
        if (s->fd >= 0) {
                s->result = fsync(s->fd) < 0 ? -errno : 0;
                s->synced = true;
        }
        (void) pthread_mutex_lock(&sh->lock);
        sh->sync_active--;
        return true;
}

static void *commit_pool_thread(void *userdata) {
        CommitShared *sh = userdata;
        uint64_t seen = 0;

        (void) pthread_mutex_lock(&sh->lock);
        for (;;) {
                while (!sh->stop && sh->sync_generation == seen)
                        (void) pthread_cond_wait(&sh->sync_wake, &sh->lock);
                if (sh->stop)
                        break;
                seen = sh->sync_generation;
                while (commit_sync_one(sh))
                        ;
                if (sh->sync_active == 0)
                        (void) pthread_cond_signal(&sh->sync_done);
        }
        (void) pthread_mutex_unlock(&sh->lock);
        return NULL;
}

/* fsyncs v[0..n) with the pool; each gets synced = true and result 0 or
 * -errno. Called with the lock held. */
static void commit_sync_parallel(CommitShared *sh, SpoolStaged *v, size_t n) {
        sh->sync_v = v;
        sh->sync_n = n;
        sh->sync_next = 0;
        sh->sync_generation++;
        /* As many helpers as there are files beyond the one this thread
         * takes: a broadcast would wake the whole pool for two files. */
        for (size_t i = 1; i < n && i <= COMMIT_SYNC_THREADS - 1; i++)
                (void) pthread_cond_signal(&sh->sync_wake);
        while (commit_sync_one(sh))
                ;
        while (sh->sync_active > 0)
                (void) pthread_cond_wait(&sh->sync_done, &sh->lock);
        sh->sync_v = NULL;
}

static void *commit_thread(void *userdata) {
        Commit *c = userdata;
        CommitShared *sh = &c->shared;
        const uint64_t one = 1;

        (void) pthread_mutex_lock(&sh->lock);
        for (;;) {
                while (!sh->stop && !sh->todo)
                        (void) pthread_cond_wait(&sh->wake, &sh->lock);
                if (!sh->todo)
                        break; /* stopping, nothing handed over */
                CommitBatch *b = TAKE_PTR(sh->todo);

                /* The pool's fsyncs run with the lock released; spool_commit
                 * touches only the batch, which the loop leaves alone. */
                commit_sync_parallel(sh, b->staged, b->n);
                (void) pthread_mutex_unlock(&sh->lock);
                (void) spool_commit(c->queue->spool_fd, b->staged, b->n);
                (void) pthread_mutex_lock(&sh->lock);
                sh->busy = false;
                (void) pthread_cond_broadcast(&sh->done);
                /* A failed write leaves the counter set: the loop still
                 * wakes for the next batch. */
                if (write(c->efd, &one, sizeof(one)) < 0) {
                        /* EAGAIN only: the counter is at its maximum. */
                }
        }
        (void) pthread_mutex_unlock(&sh->lock);
        return NULL;
}

/* Answers everyone in the committed batch b and empties it. */
static void commit_complete(Commit *c, CommitBatch *b) {
        size_t n = b->n;

        /* The batch is emptied before anyone is answered: a reply handler
         * never sees half a batch. */
        b->n = 0;
        for (size_t i = 0; i < n; i++) {
                Peer *p = b->items[i].peer;

                if (p)
                        p->committing = false;
                submission_committed(c->queue, p, b->items[i].submission, b->staged[i].result);
        }
}

/* Hands the open batch to the commit thread (the loop must not have one in
 * flight), or commits it here when there is no thread. */
static void commit_dispatch(Commit *c) {
        CommitBatch *b = c->open;

        if (b->n == 0)
                return;
        (void) sd_event_source_set_enabled(c->defer, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
        c->open = b == &c->batches[0] ? &c->batches[1] : &c->batches[0];
        if (!c->threaded) {
                (void) spool_commit(c->queue->spool_fd, b->staged, b->n);
                commit_complete(c, b);
                return;
        }
        c->flight = b;
        (void) pthread_mutex_lock(&c->shared.lock);
        c->shared.todo = b;
        c->shared.busy = true;
        (void) pthread_cond_signal(&c->shared.wake);
        (void) pthread_mutex_unlock(&c->shared.lock);
}

/* Waits until the batch in flight is committed, and answers it. */
static void commit_wait_flight(Commit *c) {
        if (!c->flight)
                return;
        (void) pthread_mutex_lock(&c->shared.lock);
        while (c->shared.busy)
                (void) pthread_cond_wait(&c->shared.done, &c->shared.lock);
        (void) pthread_mutex_unlock(&c->shared.lock);
        commit_complete(c, TAKE_PTR(c->flight));
}

void commit_run(Commit *c) {
        commit_wait_flight(c);
        commit_dispatch(c);
        commit_wait_flight(c);
}

/* The open batch may close: commit it now, or as soon as the one in flight
 * is done. */
static void commit_close(Commit *c) {
        if (!c->flight)
                commit_dispatch(c);
}

static int on_defer(sd_event_source *s, void *userdata) {
        commit_close(userdata);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        commit_close(userdata);
        return 0;
}

static int on_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Commit *c = userdata;
        uint64_t v;
        bool busy;

        if (read(fd, &v, sizeof(v)) < 0) {
                /* EAGAIN: woken by an earlier write, already seen. */
        }
        (void) pthread_mutex_lock(&c->shared.lock);
        busy = c->shared.busy;
        (void) pthread_mutex_unlock(&c->shared.lock);
        if (busy || !c->flight)
                return 0;
        commit_complete(c, TAKE_PTR(c->flight));
        /* What gathered meanwhile goes at once: its peers have waited long
         * enough, and the thread is free. */
        commit_dispatch(c);
        return 0;
}

int commit_add(Commit *c, Peer *p, Submission *s, const SpoolStaged *st) {
        CommitBatch *b = c->open;
        uint64_t now;

        if (b->n >= COMMIT_BATCH_MAX) {
                commit_wait_flight(c);
                commit_dispatch(c);
                b = c->open;
        }
        if (b->n == 0 && sd_event_now(c->queue->event, CLOCK_MONOTONIC, &now) >= 0) {
                (void) sd_event_source_set_time(c->timer, now + COMMIT_DELAY_MAX_USEC);
                (void) sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        }
        b->items[b->n] = (CommitItem) { .peer = p, .submission = s };
        b->staged[b->n] = *st;
        b->n++;
        p->committing = true;
        (void) sd_event_source_set_enabled(c->defer, SD_EVENT_ONESHOT);
        if (b->n >= COMMIT_BATCH_MAX && !c->flight)
                commit_dispatch(c);
        return 0;
}

void commit_forget_peer(Commit *c, Peer *p) {
        if (!c)
                return;
        for (size_t k = 0; k < 2; k++)
                for (size_t i = 0; i < c->batches[k].n; i++)
                        if (c->batches[k].items[i].peer == p)
                                c->batches[k].items[i].peer = NULL;
}

static void commit_threads_start(Commit *c) {
        sigset_t all, old;
        int r;

        /* Signals are the loop's (signalfd): a thread that did not block
         * one would take it, and SIGHUP's default action ends the process. */
        (void) sigfillset(&all);
        (void) pthread_sigmask(SIG_SETMASK, &all, &old);
        r = pthread_create(&c->thread, NULL, commit_thread, c);
        if (r != 0) {
                (void) pthread_sigmask(SIG_SETMASK, &old, NULL);
                /* E.g. a seccomp filter without clone3: correct, only slower. */
                log_warning_errno(-r, "Cannot start the commit thread, arriving messages are "
                                  "committed one batch at a time from the event loop: %m");
                return;
        }
        c->threaded = true;
        for (size_t i = 0; i < ELEMENTSOF(c->pool); i++) {
                r = pthread_create(&c->pool[i], NULL, commit_pool_thread, &c->shared);
                if (r != 0) {
                        log_warning_errno(-r, "Cannot start more than %zu threads to fsync arriving "
                                          "messages together: %m", c->n_pool + 1);
                        break;
                }
                c->n_pool++;
        }
        (void) pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int commit_new(Queue *q, Commit **ret) {
        Commit *c = new0(Commit, 1);
        int r;

        if (!c)
                return -ENOMEM;
        c->queue = q;
        c->open = &c->batches[0];
        c->efd = -EBADF;
        (void) pthread_mutex_init(&c->shared.lock, NULL);
        (void) pthread_cond_init(&c->shared.wake, NULL);
        (void) pthread_cond_init(&c->shared.sync_wake, NULL);
        (void) pthread_cond_init(&c->shared.sync_done, NULL);
        (void) pthread_cond_init(&c->shared.done, NULL);

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
        if (r >= 0) {
                c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (c->efd < 0)
                        r = negative_errno();
        }
        if (r >= 0)
                r = sd_event_add_io(q->event, &c->done_source, c->efd, EPOLLIN, on_done, c);
        if (r < 0) {
                commit_free(c);
                return r;
        }
        (void) sd_event_source_set_description(c->defer, "group-commit");
        (void) sd_event_source_set_description(c->done_source, "group-commit-done");
        commit_threads_start(c);
        *ret = c;
        return 0;
}

Commit *commit_free(Commit *c) {
        if (!c)
                return NULL;
        if (c->threaded) {
                /* A batch in flight is finished (its files may be in queue/
                 * already) but nobody is answered any more. */
                (void) pthread_mutex_lock(&c->shared.lock);
                while (c->shared.busy)
                        (void) pthread_cond_wait(&c->shared.done, &c->shared.lock);
                c->shared.stop = true;
                (void) pthread_cond_broadcast(&c->shared.wake);
                (void) pthread_cond_broadcast(&c->shared.sync_wake);
                (void) pthread_mutex_unlock(&c->shared.lock);
                (void) pthread_join(c->thread, NULL);
                for (size_t i = 0; i < c->n_pool; i++)
                        (void) pthread_join(c->pool[i], NULL);
        }
        if (c->flight) {
                for (size_t i = 0; i < c->flight->n; i++) {
                        if (c->flight->items[i].peer)
                                c->flight->items[i].peer->committing = false;
                        submission_free(c->flight->items[i].submission);
                }
                c->flight->n = 0;
        }
        for (size_t i = 0; i < c->open->n; i++) {
                spool_staged_discard(c->queue->spool_fd, &c->open->staged[i]);
                if (c->open->items[i].peer)
                        c->open->items[i].peer->committing = false;
                submission_free(c->open->items[i].submission);
        }
        c->defer = sd_event_source_disable_unref(c->defer);
        c->timer = sd_event_source_disable_unref(c->timer);
        c->done_source = sd_event_source_disable_unref(c->done_source);
        closep(&c->efd);
        (void) pthread_mutex_destroy(&c->shared.lock);
        (void) pthread_cond_destroy(&c->shared.wake);
        (void) pthread_cond_destroy(&c->shared.sync_wake);
        (void) pthread_cond_destroy(&c->shared.sync_done);
        (void) pthread_cond_destroy(&c->shared.done);
        free(c);
        return NULL;
}
