/* queued's listening socket and its peers. Credentials come from SO_PEERCRED
 * only; each peer says IPC_HELLO first; later frames go through a table of
 * handlers by type. A malformed frame or an unexpected message closes that one
 * peer, trusting nothing it sent; it never takes queued down. */
#include <inttypes.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "admin.h"
#include "commit.h"
#include "ipc.h"
#include "log.h"
#include "server.h"
#include "stats.h"
#include "submission.h"

/* A peer that does not read its replies must not stall queued. */
#define PEER_SEND_TIMEOUT_SEC 5
/* Each peer costs a little memory and an fd; smtpd needs one per session. */
#define SERVER_PEERS_MAX 4096u

struct Server {
        Queue *queue;
        int listen_fd;
        sd_event_source *listen_source;
        Peer *peers;
        size_t n_peers;
        uid_t smtpd_uid;
        bool have_smtpd_uid;
        IpcWriter *writer;
        uint8_t *buf;
};

static Peer *peer_free(Peer *p) {
        if (!p)
                return NULL;
        stats_peer_gone(p);
        if (p->server) {
                if (p->prev)
                        p->prev->next = p->next;
                else
                        p->server->peers = p->next;
                if (p->next)
                        p->next->prev = p->prev;
                p->server->n_peers--;
                commit_forget_peer(p->queue->commit, p);
        }
        submission_free(p->submission);
        sd_event_source_disable_unref(p->source);
        closep(&p->fd);
        free(p->user);
        free(p);
        return NULL;
}

void peer_close(Peer *p) {
        peer_free(p);
}

int peer_send(Peer *p) {
        return ipc_send(p->fd, p->writer, -EBADF);
}

int peer_send_error(Peer *p, unsigned code, const char *dsn, const char *text) {
        ipc_writer_init(p->writer, IPC_ERROR);
        ipc_put_u64(p->writer, IPC_F_CODE, code);
        ipc_put_str(p->writer, IPC_F_DSN, dsn);
        ipc_put_str(p->writer, IPC_F_TEXT, text);
        return peer_send(p);
}

static int peer_on_hello(Peer *p, const IpcMsg *m) {
        _cleanup_free_ char *role = NULL;
        uint64_t version;
        int r;

        if (p->hello)
                return -EBADMSG;
        if (ipc_get_u64(m, IPC_F_VERSION, &version) < 0)
                return -EBADMSG;
        r = ipc_get_str(m, IPC_F_ROLE, 32, &role);
        if (r < 0 && r != -ENOENT)
                return -EBADMSG;
        if (version != IPC_VERSION) {
                log_warning("Refusing peer uid %u (pid %d): IPC version %" PRIu64 ", expected %u",
                            (unsigned) p->uid, (int) p->pid, version, IPC_VERSION);
                return -EPROTO;
        }
        ipc_writer_init(p->writer, IPC_HELLO);
        ipc_put_u64(p->writer, IPC_F_VERSION, IPC_VERSION);
        ipc_put_str(p->writer, IPC_F_ROLE, "queued");
        r = peer_send(p);
        if (r < 0)
                return r;
        p->hello = true;
        stats_peer_hello(p, role);
        return 0;
}

typedef int (*PeerHandler)(Peer *p, const IpcMsg *m);

static const PeerHandler peer_handlers[_IPC_TYPE_MAX] = {
        [IPC_HELLO] = peer_on_hello,
        [IPC_MSG_BEGIN] = submission_on_begin,
        [IPC_MSG_RCPT] = submission_on_rcpt,
        [IPC_MSG_DATA] = submission_on_data,
        [IPC_MSG_END] = submission_on_end,
        [IPC_MSG_ABORT] = submission_on_abort,
        [IPC_QUEUE_LIST] = admin_on_list,
        [IPC_QUEUE_FLUSH] = admin_on_flush,
        [IPC_QUEUE_SHOW] = admin_on_show,
        [IPC_QUEUE_HOLD] = admin_on_hold,
        [IPC_QUEUE_RELEASE] = admin_on_release,
        [IPC_QUEUE_DELETE] = admin_on_delete,
        [IPC_QUEUE_REQUEUE] = admin_on_requeue,
        [IPC_STATS_SESSION] = stats_on_session,
        [IPC_STATS_GET] = stats_on_get,
};

static int on_peer_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Peer *p = userdata;
        Server *s = p->server;
        IpcMsg m;
        ssize_t n;
        int r;

        /* Descriptors have no business here: ret_fd NULL closes any that came. */
        n = ipc_recv(p->fd, s->buf, IPC_FRAME_MAX, NULL);
        if (n == -EAGAIN || n == -EINTR)
                return 0;
        if (n == 0) {
                log_debug("Peer uid %u (pid %d) disconnected", (unsigned) p->uid, (int) p->pid);
                peer_free(p);
                return 0;
        }
        r = n < 0 ? (int) n : ipc_parse(s->buf, (size_t) n, &m);
        if (r >= 0) {
                /* A peer waiting for QUEUED has nothing to say: replies
                 * must stay in order. */
                if (m.type >= _IPC_TYPE_MAX || !peer_handlers[m.type] ||
                    (!p->hello && m.type != IPC_HELLO) || p->committing)
                        r = -EBADMSG;
                else
                        r = peer_handlers[m.type](p, &m);
        }
        if (r < 0) {
                log_warning_errno(r, "Closing the connection of uid %u (pid %d) after a bad message "
                                  "or a failed reply, trusting nothing it sent: %m",
                                  (unsigned) p->uid, (int) p->pid);
                peer_free(p);
        }
        return 0;
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Server *s = userdata;
        _cleanup_close_ int cfd = -EBADF;
        struct timeval tv = { .tv_sec = PEER_SEND_TIMEOUT_SEC };
        struct ucred cred;
        socklen_t len = sizeof(cred);
        Peer *p;
        int r;

        cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(-errno, "accept() on the queued socket failed, ignoring: %m");
                return 0;
        }
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return log_warning_errno(-errno, "Cannot read peer credentials, closing: %m"), 0;
        if (s->n_peers >= SERVER_PEERS_MAX) {
                log_warning("Refusing a connection from uid %u (pid %d): %u connections open",
                            (unsigned) cred.uid, (int) cred.pid, SERVER_PEERS_MAX);
                return 0;
        }
        (void) setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

        p = new0(Peer, 1);
        if (!p)
                return log_error_errno(-ENOMEM, "Out of memory accepting a connection"), 0;
        p->server = s;
        p->queue = s->queue;
        p->writer = s->writer;
        p->uid = cred.uid;
        p->pid = cred.pid;
        p->trusted = cred.uid == 0 || cred.uid == geteuid() ||
                     (s->have_smtpd_uid && cred.uid == s->smtpd_uid);
        if (!p->trusted) {
                struct passwd *pw = getpwuid(cred.uid);
                if (pw)
                        p->user = strdup(pw->pw_name);
                else if (asprintf(&p->user, "%u", (unsigned) cred.uid) < 0)
                        p->user = NULL;
        }
        p->fd = TAKE_FD(cfd);
        p->next = s->peers;
        if (s->peers)
                s->peers->prev = p;
        s->peers = p;
        s->n_peers++;
        r = sd_event_add_io(s->queue->event, &p->source, p->fd, EPOLLIN, on_peer_io, p);
        if (r < 0) {
                log_error_errno(r, "Cannot watch a connection: %m");
                peer_free(p);
        }
        return 0;
}

int server_new(Queue *q, int listen_fd, Server **ret) {
        Server *s = new0(Server, 1);
        int r;

        if (!s) {
                (void) close(listen_fd);
                return -ENOMEM;
        }
        s->queue = q;
        s->listen_fd = listen_fd;
        s->writer = malloc(sizeof(IpcWriter));
        s->buf = malloc(IPC_FRAME_MAX);
        if (!s->writer || !s->buf) {
                server_free(s);
                return -ENOMEM;
        }
        if (!isempty(q->config->smtpd_user)) {
                struct passwd *pw = getpwnam(q->config->smtpd_user);
                if (pw) {
                        s->smtpd_uid = pw->pw_uid;
                        s->have_smtpd_uid = true;
                } else
                        log_warning("SmtpdUser \"%s\" does not exist, trusting only root and uid %u",
                                    q->config->smtpd_user, (unsigned) geteuid());
        }
        r = sd_event_add_io(q->event, &s->listen_source, listen_fd, EPOLLIN, on_accept, s);
        if (r < 0) {
                server_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

void server_stop(Server *s) {
        s->listen_source = sd_event_source_disable_unref(s->listen_source);
        while (s->peers)
                peer_free(s->peers);
}

Server *server_free(Server *s) {
        if (!s)
                return NULL;
        server_stop(s);
        closep(&s->listen_fd);
        free(s->writer);
        free(s->buf);
        free(s);
        return NULL;
}
