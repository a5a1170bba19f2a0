/* deliverd's side of the queued connections: credentials check, IPC_HELLO,
 * IPC_DELIVER dispatch (checked in job.c), and a bounded set of worker processes (worker.c).
 * Workers send their results on the connection themselves; the parent only
 * sends IPC_JOB_DONE for a worker that died before it could. */
#include <assert.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "ipc.h"
#include "job.h"
#include "log.h"
#include "route.h"
#include "server.h"
#include "spool.h"
#include "worker.h"

/* Jobs waiting for a worker hold an fd and a mapping each; beyond this many
 * a new job ends at once without results (deferred) instead of exhausting
 * descriptors. */
#define SERVER_PENDING_MAX 512u

/* A stuck queued must not block a worker or the parent forever. */
#define SERVER_SEND_TIMEOUT_SEC 30

typedef struct Peer Peer;
typedef struct Worker Worker;

#define SERVER_DEST_MAX (ROUTE_NEXTHOP_MAX + 32)

/* A worker process: running a job, or idle with an SMTP connection open
 * (connection reuse) until it times out or gets the next job for its
 * destination over ctl_fd. */
struct Worker {
        Server *server;
        pid_t pid;
        int ctl_fd;                     /* -EBADF: no reuse for this worker */
        sd_event_source *child, *ctl_source;
        Job *job;                       /* running; NULL while idle */
        Peer *peer;                     /* while idle: its connection (one reference held) */
        char dest[SERVER_DEST_MAX];     /* destination of its jobs; "" none */
        Worker *next, *prev;            /* in server->idle while idle */
};

struct Peer {
        Server *server;
        int fd;
        sd_event_source *source;
        bool hello;
        bool closed;            /* EOF or error: no more reads, no more jobs */
        unsigned n_jobs;        /* jobs (pending or running) that still use fd */
        uid_t uid;
        Peer *next, *prev;
};

struct Server {
        const Config *config;
        sd_event *event;
        int listen_fd;
        sd_event_source *listen_source;
        Peer *peers;
        Job *pending_head, *pending_tail;
        size_t n_workers;               /* workers running a job */
        size_t n_pending;
        Worker *idle;                   /* idle workers with an open connection */
        size_t n_idle;
        Router *router;                 /* destination of a job, for reuse */
        bool stopping;
        uid_t queue_uid;
        bool have_queue_uid;
        uint8_t *buf;           /* IPC_FRAME_MAX */
        IpcWriter *writer;
};

static void peer_unref_job(Peer *p);

/* Frees j and releases its hold on its peer's connection. */
static void server_job_free(Job *j) {
        Peer *p = j->peer;

        job_free(j);
        if (p)
                peer_unref_job(p);
}

static Peer *peer_free(Peer *p) {
        if (!p)
                return NULL;
        if (p->server) {
                if (p->prev)
                        p->prev->next = p->next;
                else
                        p->server->peers = p->next;
                if (p->next)
                        p->next->prev = p->prev;
        }
        sd_event_source_disable_unref(p->source);
        if (p->fd >= 0)
                (void) close(p->fd);
        free(p);
        return NULL;
}

static void peer_unref_job(Peer *p) {
        assert(p->n_jobs > 0);
        if (--p->n_jobs == 0 && p->closed)
                peer_free(p);
}

/* Stops reading from p. Jobs not yet started are dropped (queued is gone or
 * misbehaved; it retries them); running workers keep the fd until they end. */
static void peer_close(Peer *p) {
        Server *s = p->server;
        Job **link = &s->pending_head;

        p->closed = true;
        p->source = sd_event_source_disable_unref(p->source);
        s->pending_tail = NULL;
        while (*link) {
                Job *j = *link;
                if (j->peer == p) {
                        *link = j->next;
                        s->n_pending--;
                        server_job_free(j);
                } else {
                        s->pending_tail = j;
                        link = &j->next;
                }
        }
        if (p->n_jobs == 0)
                peer_free(p);
}

static void server_send_job_done(Server *s, Job *j) {
        int r;

        if (j->peer->closed)
                return;
        ipc_writer_init(s->writer, IPC_JOB_DONE);
        ipc_put_u64(s->writer, IPC_F_JOB, j->id);
        r = ipc_send(j->peer->fd, s->writer, -1);
        if (r < 0)
                log_warning_errno(r, "Cannot send the end of job %" PRIu64 " to queued: %m", j->id);
}

static void server_maybe_exit(Server *s) {
        if (s->stopping && s->n_workers == 0)
                (void) sd_event_exit(s->event, 0);
}

static void server_start_pending(Server *s);

static void server_idle_remove(Server *s, Worker *w) {
        if (w->prev)
                w->prev->next = w->next;
        else
                s->idle = w->next;
        if (w->next)
                w->next->prev = w->prev;
        w->next = w->prev = NULL;
        s->n_idle--;
}

static void safe_close_pair(int p[2]) {
        for (int i = 0; i < 2; i++)
                if (p[i] >= 0)
                        (void) close(p[i]);
}

static Worker *worker_free(Worker *w) {
        if (!w)
                return NULL;
        sd_event_source_disable_unref(w->child);
        sd_event_source_disable_unref(w->ctl_source);
        if (w->ctl_fd >= 0)
                (void) close(w->ctl_fd);
        free(w);
        return NULL;
}

static int on_worker_exit(sd_event_source *src, const siginfo_t *si, void *userdata) {
        Worker *w = userdata;
        Server *s = w->server;
        Job *j = w->job;

        if (!j) {
                /* Idle (or done and not kept): nothing left to report. */
                if (w->peer) {
                        server_idle_remove(s, w);
                        peer_unref_job(w->peer);
                }
                worker_free(w);
                server_maybe_exit(s);
                return 0;
        }
        if (si->si_code != CLD_EXITED || si->si_status != 0) {
                const char *id = j->env.id ? j->env.id : "?";
                if (si->si_code == CLD_EXITED)
                        log_warning("%s: delivery worker %d exited with status %d, "
                                    "its unreported recipients will be retried",
                                    id, (int) w->pid, si->si_status);
                else
                        log_warning("%s: delivery worker %d was killed by signal %d, "
                                    "its unreported recipients will be retried",
                                    id, (int) w->pid, si->si_status);
                server_send_job_done(s, j);
        }
        s->n_workers--;
        server_job_free(j);
        worker_free(w);
        server_start_pending(s);
        server_maybe_exit(s);
        return 0;
}

/* The worker finished its job and keeps its SMTP connection open: the job's
 * IPC_JOB_DONE goes to queued from here, after the worker is on the idle
 * list, so queued's next job for this destination finds it. */
static int on_worker_ctl(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Worker *w = userdata;
        Server *s = w->server;
        uint8_t buf[64];
        IpcMsg m;
        ssize_t n;
        Job *j;

        n = recv(w->ctl_fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0 || ipc_parse(buf, (size_t) n, &m) < 0 || m.type != IPC_WORKER_IDLE || !w->job) {
                w->ctl_source = sd_event_source_disable_unref(w->ctl_source);
                return 0;
        }
        j = TAKE_PTR(w->job);
        s->n_workers--;
        if (!s->stopping && !isempty(w->dest) && !j->peer->closed &&
            s->n_idle < (s->config->delivery_concurrency ?: 1)) {
                w->peer = j->peer;
                w->peer->n_jobs++; /* the idle worker still holds the connection's fd */
                w->next = s->idle;
                if (s->idle)
                        s->idle->prev = w;
                s->idle = w;
                s->n_idle++;
        } else
                w->dest[0] = 0; /* not reused: it times out and exits */
        server_send_job_done(s, j);
        server_job_free(j);
        server_start_pending(s);
        return 0;
}

/* The destination key of a job whose recipients all go by SMTP to one
 * place, else "" (only such jobs are handed to an idle worker). */
static void server_job_dest(Server *s, Job *j, char *buf, size_t size) {
        char key[SERVER_DEST_MAX];
        Route *route;

        buf[0] = 0;
        if (!s->router || s->config->smtp_connection_reuse_usec == 0)
                return;
        route = new0(Route, 1);
        if (!route)
                return;
        for (size_t k = 0; k < j->n_rcpts; k++) {
                const char *a = j->env.rcpts[j->rcpt_index[k]].addr;
                if (!a || worker_is_local(s->config, a) || route_resolve(s->router, a, route) < 0 ||
                    route->transport != ROUTE_SMTP || route_destination_key(route, key, sizeof(key)) < 0 ||
                    (k > 0 && !streq(key, buf))) {
                        buf[0] = 0;
                        break;
                }
                if (k == 0)
                        (void) snprintf(buf, size, "%s", key);
        }
        free(route);
}

/* Hands j to an idle worker of its destination. true when one took it. */
static bool server_hand_to_idle(Server *s, Job *j, const char *dest) {
        if (isempty(dest))
                return false;
        for (Worker *w = s->idle; w; w = w->next) {
                int r;

                if (isempty(w->dest) || !streq(w->dest, dest) || w->peer != j->peer)
                        continue;
                ipc_writer_init(s->writer, IPC_DELIVER);
                ipc_put_str(s->writer, IPC_F_QUEUE_ID, j->queue_id);
                ipc_put_u64(s->writer, IPC_F_JOB, j->id);
                for (size_t k = 0; k < j->n_rcpts; k++)
                        ipc_put_u64(s->writer, IPC_F_RCPT_INDEX, j->rcpt_index[k]);
                r = ipc_send(w->ctl_fd, s->writer, j->file->fd);
                server_idle_remove(s, w);
                peer_unref_job(w->peer);
                w->peer = NULL;
                if (r < 0) {
                        /* It stopped waiting (its time was up): it exits on its own. */
                        w->dest[0] = 0;
                        return false;
                }
                log_debug("%s: job %" PRIu64 " handed to worker %d, which has a connection to %s open",
                          j->queue_id, j->id, (int) w->pid, dest);
                w->job = j;
                s->n_workers++;
                return true;
        }
        return false;
}

static int server_fork_worker(Server *s, Job *j) {
        int ctl[2] = { -EBADF, -EBADF };
        Worker *w;
        pid_t pid;
        int r;

        w = new0(Worker, 1);
        if (!w)
                return -ENOMEM;
        w->server = s;
        w->ctl_fd = -EBADF;
        server_job_dest(s, j, w->dest, sizeof(w->dest));
        if (!isempty(w->dest) && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0)
                w->dest[0] = 0;

        pid = fork();
        if (pid < 0) {
                r = -errno;
                safe_close_pair(ctl);
                worker_free(w);
                return r;
        }
        if (pid == 0) {
                WorkerJob wj = {
                        .peer_fd = j->peer->fd,
                        .ctl_fd = ctl[1],
                        .job = j->id,
                        .config = s->config,
                        .env = &j->env,
                        .body = j->body,
                        .body_len = j->body_len,
                        .rcpt_index = j->rcpt_index,
                        .n_rcpts = j->n_rcpts,
                };
                if (s->listen_fd >= 0)
                        (void) close(s->listen_fd);
                if (ctl[0] >= 0)
                        (void) close(ctl[0]);
                worker_run(&wj);
        }
        if (ctl[1] >= 0)
                (void) close(ctl[1]);
        w->pid = pid;
        w->job = j;
        if (ctl[0] >= 0) {
                w->ctl_fd = ctl[0];
                if (sd_event_add_io(s->event, &w->ctl_source, w->ctl_fd, EPOLLIN, on_worker_ctl, w) < 0)
                        w->dest[0] = 0;
        }
        r = sd_event_add_child(s->event, &w->child, pid, WEXITED, on_worker_exit, w);
        if (r < 0) {
                /* Cannot watch it: kill and reap it now, the job is deferred. */
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                worker_free(w);
                return r;
        }
        s->n_workers++;
        return 0;
}

static void server_start_job(Server *s, Job *j) {
        int r;

        if (s->stopping) {
                server_send_job_done(s, j);
                server_job_free(j);
                return;
        }
        if (s->idle) {
                char dest[SERVER_DEST_MAX];
                server_job_dest(s, j, dest, sizeof(dest));
                if (server_hand_to_idle(s, j, dest))
                        return;
        }
        r = server_fork_worker(s, j);
        if (r < 0) {
                log_error_errno(r, "%s: cannot start a delivery worker, will retry: %m", j->env.id);
                server_send_job_done(s, j);
                server_job_free(j);
        }
}

static void server_start_pending(Server *s) {
        uint64_t max = s->config->delivery_concurrency ?: 1;

        while (s->pending_head && (s->stopping || s->n_workers < max)) {
                Job *j = s->pending_head;
                s->pending_head = j->next;
                if (!s->pending_head)
                        s->pending_tail = NULL;
                j->next = NULL;
                s->n_pending--;
                server_start_job(s, j);
        }
}

static int peer_on_hello(Peer *p, const IpcMsg *m, int *fd) {
        _cleanup_free_ char *role = NULL;
        uint64_t version;
        int r;

        if (p->hello || *fd >= 0)
                return -EBADMSG;
        r = ipc_get_u64(m, IPC_F_VERSION, &version);
        if (r < 0)
                return -EBADMSG;
        r = ipc_get_str(m, IPC_F_ROLE, 32, &role);
        if (r < 0)
                return -EBADMSG;
        if (version != IPC_VERSION || !streq(role, "queued")) {
                log_warning("Refusing peer uid %u: IPC version %" PRIu64 ", role \"%s\"",
                            (unsigned) p->uid, version, role);
                return -EPROTO;
        }
        ipc_writer_init(p->server->writer, IPC_HELLO);
        ipc_put_u64(p->server->writer, IPC_F_VERSION, IPC_VERSION);
        ipc_put_str(p->server->writer, IPC_F_ROLE, "deliverd");
        r = ipc_send(p->fd, p->server->writer, -1);
        if (r < 0)
                return r;
        p->hello = true;
        return 0;
}

static int peer_on_deliver(Peer *p, const IpcMsg *m, int *fd) {
        Server *s = p->server;
        Job *j;
        int r;

        if (!p->hello || *fd < 0)
                return -EBADMSG;
        r = job_parse(m, &j);
        if (r < 0)
                return r;
        j->peer = p;
        p->n_jobs++;
        r = job_load(j, TAKE_FD(*fd));
        if (r < 0) {
                log_error_errno(r, "%s: cannot deliver job %" PRIu64 ", the spool file or its "
                                "recipient indexes are invalid: %m", j->queue_id, j->id);
                server_send_job_done(s, j);
                server_job_free(j);
                return 0;
        }
        if (s->stopping || s->n_pending >= SERVER_PENDING_MAX) {
                if (!s->stopping)
                        log_warning("%s: %zu jobs already wait for a worker, deferring job %" PRIu64,
                                    j->queue_id, s->n_pending, j->id);
                server_send_job_done(s, j);
                server_job_free(j);
                return 0;
        }
        s->n_pending++;
        if (s->pending_tail)
                s->pending_tail->next = j;
        else
                s->pending_head = j;
        s->pending_tail = j;
        server_start_pending(s);
        return 0;
}

/* A handler takes the passed fd (-EBADF if none) from *fd when it keeps it;
 * otherwise the caller closes it. */
typedef int (*PeerHandler)(Peer *p, const IpcMsg *m, int *fd);

static const PeerHandler peer_handlers[_IPC_TYPE_MAX] = {
        [IPC_HELLO] = peer_on_hello,
        [IPC_DELIVER] = peer_on_deliver,
};

static int on_peer_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Peer *p = userdata;
        Server *s = p->server;
        _cleanup_close_ int passed = -EBADF;
        IpcMsg m;
        ssize_t n;
        int r;

        n = ipc_recv(p->fd, s->buf, IPC_FRAME_MAX, &passed);
        if (n == -EAGAIN || n == -EINTR)
                return 0;
        if (n == 0) {
                log_debug("queued (uid %u) disconnected", (unsigned) p->uid);
                peer_close(p);
                return 0;
        }
        if (n < 0) {
                log_warning_errno((int) n, "Closing queued connection (uid %u): %m", (unsigned) p->uid);
                peer_close(p);
                return 0;
        }
        r = ipc_parse(s->buf, (size_t) n, &m);
        if (r >= 0)
                r = m.type < _IPC_TYPE_MAX && peer_handlers[m.type]
                            ? peer_handlers[m.type](p, &m, &passed)
                            : -EBADMSG;
        if (r < 0) {
                log_warning_errno(r, "Closing queued connection (uid %u) after a bad "
                                  "message, trusting nothing it sent: %m", (unsigned) p->uid);
                peer_close(p);
        }
        return 0;
}

static bool server_uid_allowed(Server *s, uid_t uid) {
        return uid == 0 || uid == getuid() || (s->have_queue_uid && uid == s->queue_uid);
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Server *s = userdata;
        _cleanup_close_ int cfd = -EBADF;
        struct ucred cred;
        socklen_t len = sizeof(cred);
        struct timeval tv = { .tv_sec = SERVER_SEND_TIMEOUT_SEC };
        Peer *p;
        int r;

        cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(-errno, "accept() on the deliverd socket failed, ignoring: %m");
                return 0;
        }
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return log_warning_errno(-errno, "Cannot read peer credentials, closing: %m"), 0;
        if (!server_uid_allowed(s, cred.uid)) {
                log_warning("Refusing connection from uid %u (pid %d): only root and the "
                            "queue user may hand over jobs", (unsigned) cred.uid, (int) cred.pid);
                return 0;
        }
        /* Blocking with a send timeout: workers share this socket and must
         * not see EAGAIN; the parent only reads when epoll says so. */
        (void) setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

        p = new0(Peer, 1);
        if (!p)
                return log_error_errno(-ENOMEM, "Out of memory accepting a connection"), 0;
        p->server = s;
        p->uid = cred.uid;
        p->fd = TAKE_FD(cfd);
        p->next = s->peers;
        if (s->peers)
                s->peers->prev = p;
        s->peers = p;
        r = sd_event_add_io(s->event, &p->source, p->fd, EPOLLIN, on_peer_io, p);
        if (r < 0) {
                log_error_errno(r, "Cannot watch a queued connection: %m");
                peer_free(p);
        }
        return 0;
}

int server_new(sd_event *e, const Config *c, int listen_fd, Server **ret) {
        _cleanup_(server_freep) Server *s = new0(Server, 1);
        int r;

        if (!s) {
                (void) close(listen_fd);
                return -ENOMEM;
        }
        s->config = c;
        s->event = sd_event_ref(e);
        s->listen_fd = listen_fd;
        s->buf = malloc(IPC_FRAME_MAX);
        s->writer = malloc(sizeof(IpcWriter));
        if (!s->buf || !s->writer)
                return -ENOMEM;
        if (!isempty(c->queue_user)) {
                struct passwd *pw = getpwnam(c->queue_user);
                if (pw) {
                        s->queue_uid = pw->pw_uid;
                        s->have_queue_uid = true;
                } else
                        log_warning("Queue user \"%s\" does not exist, accepting only root and "
                                    "uid %u", c->queue_user, (unsigned) getuid());
        }
        if (c->smtp_connection_reuse_usec > 0) {
                r = router_new(c, &s->router);
                if (r < 0)
                        return r;
        }
        r = sd_event_add_io(e, &s->listen_source, listen_fd, EPOLLIN, on_accept, s);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

void server_stop(Server *s) {
        if (s->stopping)
                return;
        s->stopping = true;
        s->listen_source = sd_event_source_disable_unref(s->listen_source);
        /* Idle workers wake up, QUIT their connections and exit. */
        for (Worker *w = s->idle; w; w = w->next)
                (void) shutdown(w->ctl_fd, SHUT_RDWR);
        server_start_pending(s); /* with stopping set: JOB_DONE for each */
        server_maybe_exit(s);
}

Server *server_free(Server *s) {
        if (!s)
                return NULL;
        while (s->pending_head) {
                Job *j = s->pending_head;
                s->pending_head = j->next;
                server_job_free(j);
        }
        /* Running jobs belong to their peers' lifetime: the loop has ended,
         * so only the parent's bookkeeping is released here. */
        for (Peer *p = s->peers, *next; p; p = next) {
                next = p->next;
                p->server = NULL;
                p->prev = p->next = NULL;
                sd_event_source_disable_unref(p->source);
                p->source = NULL;
                if (p->n_jobs == 0) {
                        (void) close(p->fd);
                        free(p);
                } else
                        p->closed = true;
        }
        router_free(s->router);
        sd_event_source_disable_unref(s->listen_source);
        if (s->listen_fd >= 0)
                (void) close(s->listen_fd);
        sd_event_unref(s->event);
        free(s->buf);
        free(s->writer);
        free(s);
        return NULL;
}

void server_set_config(Server *s, const Config *c) {
        s->config = c;
        /* The router points at the configuration it was made for. Without
         * one, jobs are simply not handed to idle workers. */
        s->router = router_free(s->router);
        if (c->smtp_connection_reuse_usec > 0 && router_new(c, &s->router) < 0)
                log_warning("Cannot set up routing for connection reuse, new connections for every job");
}
