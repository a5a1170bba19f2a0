/* The connection to tern-deliverd and the jobs in flight on it. A job is up to
 * DELIVERY_JOB_RCPTS_MAX pending recipients of one message that go to the
 * same destination (route_destination_key: the next hop from the transport
 * table, the relay host, or the recipient domain), sent as IPC_DELIVER with
 * the spool file's fd. At most DeliveryConcurrency jobs are in flight, and at
 * most DestinationConcurrency to one destination, so a destination that
 * does not answer holds only its own slots and mail elsewhere keeps flowing. Each IPC_RESULT is made durable in the
 * state file before anything else reacts to it (promise 2: a recipient
 * recorded delivered is never delivered again). */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "bounce.h"
#include "delivery.h"
#include "ipc.h"
#include "log.h"
#include "queue.h"
#include "route.h"
#include "stats.h"

#define DELIVERY_JOB_RCPTS_MAX 50u
#define DELIVERY_RETRY_MIN_USEC (1u * 1000000u)
#define DELIVERY_RETRY_MAX_USEC (30u * 1000000u)
/* deliverd answers HELLO at once; when socket activation has to start it
 * first, a few seconds. Sends only block when deliverd stops reading. */
#define DELIVERY_HELLO_TIMEOUT_SEC 10
#define DELIVERY_SEND_TIMEOUT_SEC 30

/* A destination with jobs in flight (destinations without any are not kept). */
typedef struct Dest Dest;
struct Dest {
        char *key;
        size_t jobs;
        Dest *next;
};

typedef struct Job Job;
struct Job {
        uint64_t id;
        QueueMsg *msg;
        Dest *dest;
        size_t n;
        size_t idx[DELIVERY_JOB_RCPTS_MAX];
        bool done[DELIVERY_JOB_RCPTS_MAX];      /* a result came for idx[k] */
        char *records;                          /* its state records, written at the job's end */
        size_t records_len;
        Job *prev, *next;
};

struct Delivery {
        Queue *queue;
        int fd;
        sd_event_source *io;
        sd_event_source *retry_timer;
        uint64_t retry_usec;
        bool connect_failing;                   /* logged once until it works again */
        sd_event_source *kick;                  /* deferred: on_kick starts jobs from the loop */
        QueueMsg *ready_head, *ready_tail;
        Job *jobs;
        size_t n_jobs;
        Dest *dests;
        Router *router;
        const Config *router_config;            /* the configuration router was made for */
        bool stopping;                          /* no new jobs; tell stop_done when idle */
        void (*stop_done)(void *userdata);
        void *stop_userdata;
        uint64_t next_job_id;
        IpcWriter *writer;
        uint8_t *buf;
};

/* Starting jobs is deferred to the event loop, so that no caller (a result
 * handler, a flush walking the table) sees messages vanish under it. */
static void delivery_request_kick(Delivery *d) {
        if (d->kick)
                (void) sd_event_source_set_enabled(d->kick, SD_EVENT_ONESHOT);
}

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

size_t delivery_in_flight(const Delivery *d) {
        return d->n_jobs;
}

void delivery_enqueue(Delivery *d, QueueMsg *m) {
        if (m->ready)
                return;
        m->ready = true;
        m->ready_next = NULL;
        m->ready_prev = d->ready_tail;
        if (d->ready_tail)
                d->ready_tail->ready_next = m;
        else
                d->ready_head = m;
        d->ready_tail = m;
        delivery_request_kick(d);
}

void delivery_forget(Delivery *d, QueueMsg *m) {
        if (!m->ready)
                return;
        if (m->ready_prev)
                m->ready_prev->ready_next = m->ready_next;
        else
                d->ready_head = m->ready_next;
        if (m->ready_next)
                m->ready_next->ready_prev = m->ready_prev;
        else
                d->ready_tail = m->ready_prev;
        m->ready_next = m->ready_prev = NULL;
        m->ready = false;
}

static Dest *delivery_dest_get(Delivery *d, const char *key) {
        Dest *x;

        for (x = d->dests; x; x = x->next)
                if (streq(x->key, key))
                        return x;
        x = new0(Dest, 1);
        if (!x)
                return NULL;
        x->key = strdup(key);
        if (!x->key) {
                free(x);
                return NULL;
        }
        x->next = d->dests;
        d->dests = x;
        return x;
}

static void delivery_dest_put(Delivery *d, Dest *x) {
        if (--x->jobs > 0)
                return;
        for (Dest **l = &d->dests; *l; l = &(*l)->next)
                if (*l == x) {
                        *l = x->next;
                        break;
                }
        free(x->key);
        free(x);
}

static size_t delivery_dest_jobs(const Delivery *d, const char *key) {
        for (const Dest *x = d->dests; x; x = x->next)
                if (streq(x->key, key))
                        return x->jobs;
        return 0;
}

/* DestinationConcurrency, but never every slot while others exist: one
 * destination that does not answer must leave room for the rest. */
static size_t delivery_dest_limit(const Delivery *d) {
        const Config *c = d->queue->config;
        uint64_t global = c->delivery_concurrency ?: 1;
        uint64_t limit = c->destination_concurrency ?: 1;

        if (global > 1 && limit > global - 1)
                limit = global - 1;
        return (size_t) limit;
}

/* The destination of recipient i, computed once per message. A recipient
 * whose route cannot be decided now (a table unreadable) is grouped by its
 * domain; deliverd decides again and defers it. */
static const char *delivery_rcpt_dest(Delivery *d, QueueMsg *m, size_t i) {
        char key[ROUTE_NEXTHOP_MAX + 64];
        Route route;

        if (!m->rcpt_dest) {
                m->rcpt_dest = new0(char *, m->n_rcpts);
                if (!m->rcpt_dest)
                        return "";
        }
        if (m->rcpt_dest[i])
                return m->rcpt_dest[i];
        /* After a reload the tables named by the new configuration count. */
        if (d->router && d->router_config != d->queue->config)
                d->router = router_free(d->router);
        if (!d->router) {
                if (router_new(d->queue->config, &d->router) < 0)
                        d->router = NULL;
                d->router_config = d->queue->config;
        }
        if (!d->router || route_resolve(d->router, m->rcpts[i], &route) < 0 ||
            route_destination_key(&route, key, sizeof(key)) < 0) {
                const char *at = strrchr(m->rcpts[i], '@');
                (void) snprintf(key, sizeof(key), "domain:%s", at ? at + 1 : "");
        }
        m->rcpt_dest[i] = strdup(key);
        return m->rcpt_dest[i] ?: "";
}

/* After job j, is its message delivered to everyone, with nothing else to do
 * (no other job, no report to send)? */
static bool delivery_msg_done_clean(const Job *j) {
        const QueueMsg *m = j->msg;

        if (m->jobs != 1 || m->ready || m->deleted || m->dsn_success)
                return false;
        for (size_t i = 0; i < m->n_rcpts; i++)
                if (m->status[i] != DELIVERY_DELIVERED)
                        return false;
        return true;
}

/* The job's results go to the state file together, with one fsync, unless the
 * message is now delivered to every recipient: it is then removed, and the
 * records would only be written to be unlinked. Either way a crash before
 * this point delivers the job's recipients once more (at least once, never
 * lost); the deliveries in flight meanwhile keep the loop busy, not the disk. */
static void delivery_job_record(Delivery *d, Job *j) {
        QueueMsg *m = j->msg;
        int r;

        if (j->records_len == 0 || delivery_msg_done_clean(j))
                return;
        r = spool_state_append_records(d->queue->spool_fd, m->id, j->records, j->records_len);
        if (r < 0)
                log_error_errno(r, "%s: cannot record the delivery results, they may be delivered "
                                "again after a restart: %m", m->id);
}

/* The job ended (JOB_DONE, or the connection is gone): recipients without a
 * result were not delivered as far as we know and stay pending, unrecorded. */
static void delivery_job_end(Delivery *d, Job *j, const char *why) {
        QueueMsg *m = j->msg;

        delivery_job_record(d, j);

        for (size_t k = 0; k < j->n; k++) {
                size_t i = j->idx[k];

                m->in_flight[i] = false;
                if (j->done[k] || !queue_rcpt_pending(m, i))
                        continue;
                m->round_deferred = true;
                if (!m->last_error)
                        m->last_error = strdup(why);
        }
        if (j->prev)
                j->prev->next = j->next;
        else
                d->jobs = j->next;
        if (j->next)
                j->next->prev = j->prev;
        d->n_jobs--;
        if (j->dest)
                delivery_dest_put(d, j->dest);
        free(j->records);
        free(j);
        delivery_request_kick(d); /* a slot is free, or the last job ended while stopping */
        if (--m->jobs == 0 && !m->ready)
                queue_msg_round_done(m); /* may free m */
}

static Job *delivery_find_job(Delivery *d, uint64_t id) {
        for (Job *j = d->jobs; j; j = j->next)
                if (j->id == id)
                        return j;
        return NULL;
}

static void delivery_disconnect(Delivery *d) {
        d->io = sd_event_source_disable_unref(d->io);
        if (d->fd >= 0)
                (void) close(TAKE_FD(d->fd));
        /* Whatever deliverd did for these jobs and did not report will be
         * tried again (once per recipient counts recorded results only). */
        while (d->jobs)
                delivery_job_end(d, d->jobs, "delivery was interrupted, will retry");
        delivery_request_kick(d);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Delivery *d = userdata;

        d->retry_timer = sd_event_source_disable_unref(d->retry_timer);
        delivery_request_kick(d);
        return 0;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static int delivery_connect(Delivery *d) {
        const Config *c = d->queue->config;
        struct timeval hello_tv = { .tv_sec = DELIVERY_HELLO_TIMEOUT_SEC };
        struct timeval send_tv = { .tv_sec = DELIVERY_SEND_TIMEOUT_SEC };
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (d->retry_timer)
                return -EAGAIN;
        fd = ipc_connect(c->deliverd_socket);
        r = fd;
        if (fd >= 0) {
                (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &hello_tv, sizeof(hello_tv));
                (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_tv, sizeof(send_tv));
                r = ipc_hello(fd, "queued");
        }
        if (fd >= 0 && r >= 0)
                r = sd_event_add_io(d->queue->event, &d->io, fd, EPOLLIN, on_io, d);
        if (r < 0) {
                d->retry_usec = d->retry_usec ? d->retry_usec * 2 : DELIVERY_RETRY_MIN_USEC;
                if (d->retry_usec > DELIVERY_RETRY_MAX_USEC)
                        d->retry_usec = DELIVERY_RETRY_MAX_USEC;
                if (!d->connect_failing)
                        log_warning_errno(r, "Cannot connect to deliverd at \"%s\", will retry: %m",
                                          c->deliverd_socket);
                d->connect_failing = true;
                if (sd_event_add_time_relative(d->queue->event, &d->retry_timer, CLOCK_MONOTONIC,
                                               d->retry_usec, 0, on_retry, d) < 0)
                        log_error("Cannot arm the deliverd reconnection timer");
                return r;
        }
        if (d->connect_failing)
                log_info("Connected to deliverd at \"%s\"", c->deliverd_socket);
        d->connect_failing = false;
        d->retry_usec = 0;
        d->fd = TAKE_FD(fd);
        return 0;
}

static bool delivery_rcpt_waiting(const QueueMsg *m, size_t i) {
        return queue_rcpt_pending(m, i) && !m->in_flight[i];
}

/* Up to DELIVERY_JOB_RCPTS_MAX recipients of m that are pending, not in
 * flight and go to the first destination that has a free slot. Returns
 * their number (0: nothing can go now) and the destination's key. */
static size_t delivery_pick(Delivery *d, QueueMsg *m, Job *j, const char **ret_key) {
        size_t limit = delivery_dest_limit(d);
        const char *key = NULL;

        j->n = 0;
        for (size_t i = 0; i < m->n_rcpts && j->n < DELIVERY_JOB_RCPTS_MAX; i++) {
                const char *k;

                if (!delivery_rcpt_waiting(m, i))
                        continue;
                k = delivery_rcpt_dest(d, m, i);
                if (!key) {
                        if (delivery_dest_jobs(d, k) >= limit)
                                continue;
                        key = k;
                } else if (!streq(k, key))
                        continue;
                j->idx[j->n++] = i;
        }
        *ret_key = key;
        return j->n;
}

static bool delivery_msg_has_more(const QueueMsg *m) {
        for (size_t i = 0; i < m->n_rcpts; i++)
                if (delivery_rcpt_waiting(m, i))
                        return true;
        return false;
}

/* The file behind fd is still the message the table knows (a valid spool
 * file with its id and recipient count): 0, -EBADMSG or -errno. */
static int delivery_check_file(const QueueMsg *m, int fd) {
        _cleanup_(spool_closep) SpoolFile *f = NULL;
        _cleanup_(spool_envelope_done) SpoolEnvelope env = {};
        int copy, r;

        copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return -errno;
        r = spool_open_fd(copy, &f);
        if (r >= 0)
                r = spool_read_envelope(f, &env);
        if (r >= 0 && (!streq(env.id, m->id) || env.n_rcpts != m->n_rcpts))
                r = -EBADMSG;
        return r == -ENOMEM ? r : r < 0 ? -EBADMSG : 0;
}

/* Sends one job for m. Returns 1 when a job was sent, 0 when none can go
 * now (nothing left, or its destinations are busy), 2 when m was taken off
 * the ready list (its file cannot be opened; m may be freed), or -errno when
 * the connection failed (it is then closed). */
static int delivery_send_job(Delivery *d, QueueMsg *m) {
        Queue *q = d->queue;
        _cleanup_close_ int file = -EBADF;
        _cleanup_free_ Job *j = NULL;
        char path[sizeof(SPOOL_DIR_QUEUE) + SPOOL_ID_MAX + 1];
        const char *key;
        int r;

        j = new0(Job, 1);
        if (!j)
                return -ENOMEM;
        if (delivery_pick(d, m, j, &key) == 0)
                return 0;
        (void) snprintf(path, sizeof(path), "%s/%s", SPOOL_DIR_QUEUE, m->id);
        file = openat(q->spool_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        r = file < 0 ? -errno : delivery_check_file(m, file);
        if (r == -ENOENT || r == -EBADMSG) {
                /* Spool files are immutable: this one was damaged or removed
                 * behind our back. It must not stop the queue. */
                queue_msg_corrupt(m, r); /* may free m */
                return 2;
        }
        if (r < 0) {
                log_error_errno(r, "%s: cannot open the queue file, will retry: %m", m->id);
                /* Nothing of it goes out in this round. */
                delivery_forget(d, m);
                m->round_deferred = true;
                if (m->jobs == 0)
                        queue_msg_round_done(m); /* may free m */
                return 2;
        }
        j->dest = delivery_dest_get(d, key);
        if (!j->dest)
                return -ENOMEM;
        j->dest->jobs++;
        j->id = ++d->next_job_id;
        j->msg = m;
        ipc_writer_init(d->writer, IPC_DELIVER);
        ipc_put_str(d->writer, IPC_F_QUEUE_ID, m->id);
        ipc_put_u64(d->writer, IPC_F_JOB, j->id);
        for (size_t k = 0; k < j->n; k++)
                ipc_put_u64(d->writer, IPC_F_RCPT_INDEX, j->idx[k]);
        r = ipc_send(d->fd, d->writer, file);
        if (r < 0) {
                delivery_dest_put(d, j->dest);
                log_warning_errno(r, "Lost the connection to deliverd, will reconnect: %m");
                delivery_disconnect(d);
                return r;
        }
        log_debug("%s: job %" PRIu64 " with %zu recipient%s to %s", m->id, j->id, j->n,
                  j->n == 1 ? "" : "s", key);
        for (size_t k = 0; k < j->n; k++)
                m->in_flight[j->idx[k]] = true;
        m->jobs++;
        j->next = d->jobs;
        if (d->jobs)
                d->jobs->prev = j;
        d->jobs = TAKE_PTR(j);
        d->n_jobs++;
        return 1;
}

/* Walks the whole ready list, not only its head: a message whose
 * destinations are all busy waits in the list while the ones behind it go. */
static int on_kick(sd_event_source *s, void *userdata) {
        Delivery *d = userdata;
        uint64_t max = d->queue->config->delivery_concurrency ?: 1;
        QueueMsg *m, *next;
        int r = 0;

        if (d->stopping) {
                if (d->n_jobs == 0 && d->stop_done) {
                        void (*done)(void *) = d->stop_done;
                        d->stop_done = NULL;
                        done(d->stop_userdata);
                }
                return 0;
        }
        for (m = d->ready_head; m && d->n_jobs < max; m = next) {
                next = m->ready_next;
                /* A message on hold waits for release, not for deliverd. */
                if (m->hold) {
                        delivery_forget(d, m);
                        continue;
                }
                if (d->fd < 0 && delivery_connect(d) < 0)
                        break;
                r = 0;
                while (d->n_jobs < max && (r = delivery_send_job(d, m)) == 1)
                        ;
                if (r < 0)
                        break; /* the connection dropped every job */
                if (r == 2)
                        continue; /* given up for this round, maybe freed */
                if (!delivery_msg_has_more(m)) {
                        delivery_forget(d, m);
                        if (m->jobs == 0)
                                queue_msg_round_done(m); /* may free m */
                }
        }
        return 0;
}

static int delivery_job_add_record(Job *j, size_t index, DeliveryStatus status, const char *dsn,
                                   const char *relay, const char *text) {
        char line[SPOOL_STATE_LINE_MAX];
        int l = spool_state_format_result(line, index, status, now_usec(), dsn ?: "", relay ?: "",
                                          text ?: "");
        char *p;

        if (l < 0)
                return l;
        p = realloc(j->records, j->records_len + (size_t) l);
        if (!p)
                return -ENOMEM;
        memcpy(p + j->records_len, line, (size_t) l);
        j->records = p;
        j->records_len += (size_t) l;
        return 0;
}

static int delivery_on_result(Delivery *d, const IpcMsg *msg) {
        _cleanup_free_ char *dsn = NULL, *text = NULL, *relay = NULL;
        uint64_t job_id, index, status, relayed;
        QueueMsg *m;
        Job *j;
        size_t k;
        int r;

        if (ipc_get_u64(msg, IPC_F_JOB, &job_id) < 0 || ipc_get_u64(msg, IPC_F_RCPT_INDEX, &index) < 0 ||
            ipc_get_u64(msg, IPC_F_STATUS, &status) < 0)
                return -EBADMSG;
        if (status != DELIVERY_DELIVERED && status != DELIVERY_BOUNCED && status != DELIVERY_DEFERRED)
                return -EBADMSG;
        r = ipc_get_str(msg, IPC_F_DSN, 15, &dsn);
        if (r < 0 && r != -ENOENT)
                return r;
        r = ipc_get_str(msg, IPC_F_TEXT, 4096, &text);
        if (r < 0 && r != -ENOENT)
                return r;
        r = ipc_get_str(msg, IPC_F_RELAY, 1024, &relay);
        if (r < 0 && r != -ENOENT)
                return r;
        j = delivery_find_job(d, job_id);
        if (!j)
                return -EBADMSG;
        for (k = 0; k < j->n; k++)
                if (j->idx[k] == index)
                        break;
        if (k == j->n || j->done[k])
                return -EBADMSG;
        m = j->msg;

        /* Recorded at the job's end (delivery_job_record). */
        r = delivery_job_add_record(j, index, (DeliveryStatus) status, dsn, relay, text);
        if (r < 0)
                log_error_errno(r, "%s: cannot record the result for <%s>, it may be delivered "
                                "again after a restart: %m", m->id, m->rcpts[index]);
        j->done[k] = true;
        switch (status) {
        case DELIVERY_DELIVERED:
                m->status[index] = DELIVERY_DELIVERED;
                d->queue->n_sent++;
                if (ipc_get_u64(msg, IPC_F_DSN_RELAYED, &relayed) >= 0 && relayed == 1)
                        bounce_note_relayed(m, index);
                break;
        case DELIVERY_BOUNCED:
                m->status[index] = DELIVERY_BOUNCED;
                d->queue->n_bounced++;
                break;
        default:
                m->status[index] = DELIVERY_DEFERRED;
                m->round_deferred = true;
                d->queue->n_deferred++;
                if (text) {
                        free(m->last_error);
                        m->last_error = TAKE_PTR(text);
                }
                break;
        }
        stats_note_result(m, (DeliveryStatus) status, relay);
        return 0;
}

static int delivery_on_job_done(Delivery *d, const IpcMsg *msg) {
        uint64_t job_id;
        Job *j;

        if (ipc_get_u64(msg, IPC_F_JOB, &job_id) < 0 || msg->n_fields != 1)
                return -EBADMSG;
        j = delivery_find_job(d, job_id);
        if (!j) {
                /* Harmless (deliverd's parent may report a worker it lost after
                 * the worker said it was done); nothing depends on it. */
                log_debug("deliverd ended job %" PRIu64 ", which is not in flight, ignoring", job_id);
                return 0;
        }
        delivery_job_end(d, j, "delivery was interrupted, will retry");
        delivery_request_kick(d);
        return 0;
}

typedef int (*DeliveryHandler)(Delivery *d, const IpcMsg *m);

static const DeliveryHandler delivery_handlers[_IPC_TYPE_MAX] = {
        [IPC_RESULT] = delivery_on_result,
        [IPC_JOB_DONE] = delivery_on_job_done,
};

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Delivery *d = userdata;
        IpcMsg m;
        ssize_t n;
        int r;

        n = ipc_recv(d->fd, d->buf, IPC_FRAME_MAX, NULL);
        if (n == -EAGAIN || n == -EINTR)
                return 0;
        if (n <= 0) {
                if (n == 0)
                        log_warning("deliverd closed the connection, jobs in flight will be retried");
                else
                        log_warning_errno((int) n, "Lost the connection to deliverd, jobs in flight "
                                          "will be retried: %m");
                delivery_disconnect(d);
                return 0;
        }
        r = ipc_parse(d->buf, (size_t) n, &m);
        if (r >= 0)
                r = m.type < _IPC_TYPE_MAX && delivery_handlers[m.type]
                            ? delivery_handlers[m.type](d, &m)
                            : -EBADMSG;
        if (r < 0) {
                log_warning_errno(r, "Closing the deliverd connection after a bad message, "
                                  "jobs in flight will be retried: %m");
                delivery_disconnect(d);
        }
        return 0;
}

void delivery_stop(Delivery *d, void (*done)(void *userdata), void *userdata) {
        d->stopping = true;
        d->stop_done = done;
        d->stop_userdata = userdata;
        d->retry_timer = sd_event_source_disable_unref(d->retry_timer);
        delivery_request_kick(d);
}

int delivery_new(Queue *q, Delivery **ret) {
        Delivery *d = new0(Delivery, 1);
        int r;

        if (!d)
                return -ENOMEM;
        d->queue = q;
        d->fd = -EBADF;
        d->writer = malloc(sizeof(IpcWriter));
        d->buf = malloc(IPC_FRAME_MAX);
        if (!d->writer || !d->buf) {
                delivery_free(d);
                return -ENOMEM;
        }
        r = sd_event_add_defer(q->event, &d->kick, on_kick, d);
        if (r >= 0)
                r = sd_event_source_set_enabled(d->kick, SD_EVENT_OFF);
        if (r < 0) {
                delivery_free(d);
                return r;
        }
        *ret = d;
        return 0;
}

Delivery *delivery_free(Delivery *d) {
        if (!d)
                return NULL;
        d->io = sd_event_source_disable_unref(d->io);
        d->retry_timer = sd_event_source_disable_unref(d->retry_timer);
        d->kick = sd_event_source_disable_unref(d->kick);
        closep(&d->fd);
        /* No callbacks into the queue: it is going away too. */
        while (d->jobs) {
                Job *j = d->jobs;
                d->jobs = j->next;
                free(j);
        }
        while (d->ready_head)
                delivery_forget(d, d->ready_head);
        while (d->dests) {
                Dest *x = d->dests;
                d->dests = x->next;
                free(x->key);
                free(x);
        }
        router_free(d->router);
        free(d->writer);
        free(d->buf);
        free(d);
        return NULL;
}
