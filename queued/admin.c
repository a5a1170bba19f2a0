/* Queue administration for ternctl and mailq. Anyone may list the queue and
 * flush it, as with Postfix's showq and postqueue -f by default; changing it
 * (hold, release, delete, requeue) needs root or queued's own uid, like
 * postsuper; showing one message needs that or being its local submitter,
 * since it reveals headers. The states: incoming (tmp/ and the group commit),
 * active, deferred, hold (queue.c) and corrupt (corrupt/). */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <strings.h>
#include <unistd.h>

#include "admin.h"
#include "delivery.h"
#include "log.h"
#include "queue.h"
#include "schedule.h"

/* Room left in an entry frame for the fields after the recipients. */
#define ADMIN_FRAME_RESERVE 1024u
/* The header section shown by `queue show`. */
#define ADMIN_HEADERS_MAX (64u * 1024u)

static bool admin_may_change(const Peer *p) {
        return p->uid == 0 || p->uid == geteuid();
}

static int admin_send_msg(Peer *p, const QueueMsg *m) {
        IpcWriter *w = p->writer;

        ipc_writer_init(w, IPC_QUEUE_ENTRY);
        ipc_put_str(w, IPC_F_QUEUE_ID, m->id);
        ipc_put_str(w, IPC_F_STATE, queue_msg_state(m));
        ipc_put_str(w, IPC_F_SENDER, m->sender);
        ipc_put_u64(w, IPC_F_SIZE, m->size);
        ipc_put_u64(w, IPC_F_ARRIVAL, m->arrival_usec);
        if (m->last_error)
                ipc_put_str(w, IPC_F_TEXT, m->last_error);
        /* A frame is bounded (size and field count): a message with more
         * pending recipients than fit is listed with the first ones. */
        for (size_t i = 0; i < m->n_rcpts; i++) {
                size_t len = strlen(m->rcpts[i]);

                if (!queue_rcpt_pending(m, i))
                        continue;
                if (w->n_fields >= IPC_FIELDS_MAX || w->len + 6 + len > IPC_FRAME_MAX - ADMIN_FRAME_RESERVE)
                        break;
                ipc_put_str(w, IPC_F_RCPT, m->rcpts[i]);
        }
        return peer_send(p);
}

/* Files in tmp/ (being received or committed) and corrupt/ are listed by
 * name so that an administrator sees them. */
static int admin_send_dir(Peer *p, const char *dir, const char *state) {
        DIR *d;
        int fd, r = 0;

        fd = openat(p->queue->spool_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return 0;
        d = fdopendir(fd);
        if (!d) {
                (void) close(fd);
                return 0;
        }
        for (struct dirent *de; r >= 0 && (de = readdir(d));) {
                if (!spool_id_valid(de->d_name))
                        continue;
                ipc_writer_init(p->writer, IPC_QUEUE_ENTRY);
                ipc_put_str(p->writer, IPC_F_QUEUE_ID, de->d_name);
                ipc_put_str(p->writer, IPC_F_STATE, state);
                r = peer_send(p);
        }
        (void) closedir(d);
        return r;
}

int admin_on_list(Peer *p, const IpcMsg *m) {
        int r;

        if (m->n_fields != 0)
                return -EBADMSG;
        r = admin_send_dir(p, SPOOL_DIR_TMP, "incoming");
        if (r < 0)
                return r;
        for (const QueueMsg *q = p->queue->head; q; q = q->next) {
                r = admin_send_msg(p, q);
                if (r < 0)
                        return r;
        }
        r = admin_send_dir(p, SPOOL_DIR_CORRUPT, "corrupt");
        if (r < 0)
                return r;
        ipc_writer_init(p->writer, IPC_QUEUE_END);
        return peer_send(p);
}

static int admin_end(Peer *p, size_t n) {
        ipc_writer_init(p->writer, IPC_QUEUE_END);
        ipc_put_u64(p->writer, IPC_F_COUNT, n);
        return peer_send(p);
}

static int admin_no_such(Peer *p, const char *id) {
        char text[SPOOL_ID_MAX + 64];

        (void) snprintf(text, sizeof(text), "%s: no such message in the queue",
                        spool_id_valid(id) ? id : "(invalid id)");
        return peer_send_error(p, 550, "5.0.0", text);
}

/* The request's target: one id (*ret_id) or ALL. Unknown fields, or both
 * or none, are malformed. */
static int admin_target(const IpcMsg *m, const uint16_t *extra, size_t n_extra, char **ret_id,
                        bool *ret_all) {
        uint64_t all = 0;
        int r;

        for (size_t i = 0; i < m->n_fields; i++) {
                bool ok = m->fields[i].tag == IPC_F_QUEUE_ID || m->fields[i].tag == IPC_F_ALL;
                for (size_t k = 0; k < n_extra && !ok; k++)
                        ok = m->fields[i].tag == extra[k];
                if (!ok)
                        return -EBADMSG;
        }
        r = ipc_get_str(m, IPC_F_QUEUE_ID, SPOOL_ID_MAX - 1, ret_id);
        if (r < 0 && r != -ENOENT)
                return r == -ENOMEM ? r : -EBADMSG;
        r = ipc_get_u64(m, IPC_F_ALL, &all);
        if ((r < 0 && r != -ENOENT) || all > 1 || (all && *ret_id))
                return -EBADMSG;
        *ret_all = all;
        return 0;
}

static bool admin_msg_has_domain(const QueueMsg *m, const char *domain) {
        for (size_t i = 0; i < m->n_rcpts; i++) {
                const char *at = strrchr(m->rcpts[i], '@');
                if (queue_rcpt_pending(m, i) && at && strcasecmp(at + 1, domain) == 0)
                        return true;
        }
        return false;
}

int admin_on_flush(Peer *p, const IpcMsg *m) {
        static const uint16_t extra[] = { IPC_F_DOMAIN };
        _cleanup_free_ char *id = NULL, *domain = NULL;
        bool all;
        size_t n = 0;
        int r;

        r = admin_target(m, extra, ELEMENTSOF(extra), &id, &all);
        if (r < 0)
                return r;
        r = ipc_get_str(m, IPC_F_DOMAIN, 255, &domain);
        if ((r < 0 && r != -ENOENT) || (domain && id))
                return r == -ENOMEM ? r : -EBADMSG;
        if (id) {
                QueueMsg *q = spool_id_valid(id) ? queue_find(p->queue, id) : NULL;

                if (!q)
                        return admin_no_such(p, id);
                if (q->waiting) {
                        queue_msg_due(q);
                        n++;
                }
        } else {
                /* queue_msg_due never frees a message, so the walk is safe. */
                for (QueueMsg *q = p->queue->head; q; q = q->next)
                        if (q->waiting && (!domain || admin_msg_has_domain(q, domain))) {
                                queue_msg_due(q);
                                n++;
                        }
        }
        log_info("Flush requested by uid %u%s%s: %zu deferred message%s due now", (unsigned) p->uid,
                 domain ? " for domain " : "", domain ?: "", n, n == 1 ? "" : "s");
        return admin_end(p, n);
}

typedef int (*AdminAction)(Peer *p, QueueMsg *m);

static int admin_hold(Peer *p, QueueMsg *m) {
        int r;

        if (m->hold)
                return 0;
        /* Durable first: a held message must stay held after a restart. */
        r = spool_state_append_hold(p->queue->spool_fd, m->id, true);
        if (r < 0)
                return log_error_errno(r, "%s: cannot record the hold: %m", m->id);
        m->hold = true;
        m->waiting = false;
        schedule_cancel(m);
        delivery_forget(p->queue->delivery, m);
        log_info("%s: put on hold by uid %u", m->id, (unsigned) p->uid);
        return 1;
}

static int admin_release(Peer *p, QueueMsg *m) {
        int r;

        if (!m->hold)
                return 0;
        r = spool_state_append_hold(p->queue->spool_fd, m->id, false);
        if (r < 0)
                return log_error_errno(r, "%s: cannot record the release: %m", m->id);
        m->hold = false;
        log_info("%s: released from hold by uid %u", m->id, (unsigned) p->uid);
        queue_msg_due(m);
        return 1;
}

static int admin_requeue(Peer *p, QueueMsg *m) {
        int r;

        if (m->hold) {
                r = admin_release(p, m);
                if (r < 0)
                        return r;
        }
        /* Routes are decided again with the tables as they are now; the
         * back-off starts over (in memory: the state file keeps the history). */
        if (m->rcpt_dest) {
                for (size_t i = 0; i < m->n_rcpts; i++)
                        if (!m->in_flight[i]) {
                                free(m->rcpt_dest[i]);
                                m->rcpt_dest[i] = NULL;
                        }
        }
        m->attempts = 0;
        log_info("%s: requeued by uid %u", m->id, (unsigned) p->uid);
        queue_msg_due(m);
        return 1;
}

static int admin_delete(Peer *p, QueueMsg *m) {
        int r = queue_msg_delete(m, p->uid);
        return r < 0 ? r : 1;
}

/* delete ID of a file in corrupt/: it is not in the table. */
static int admin_delete_corrupt(Peer *p, const char *id) {
        char path[SPOOL_ID_MAX + 16];
        int r = 0;

        (void) snprintf(path, sizeof(path), "%s/%s", SPOOL_DIR_CORRUPT, id);
        if (unlinkat(p->queue->spool_fd, path, 0) < 0)
                r = -errno;
        (void) snprintf(path, sizeof(path), "%s/%s%s", SPOOL_DIR_CORRUPT, id, SPOOL_STATE_SUFFIX);
        if (unlinkat(p->queue->spool_fd, path, 0) >= 0 && r == -ENOENT)
                r = 0;
        if (r >= 0)
                log_info("%s: removed from corrupt/ by uid %u", id, (unsigned) p->uid);
        return r;
}

static int admin_change(Peer *p, const IpcMsg *m, AdminAction action, const char *what) {
        _cleanup_free_ char *id = NULL;
        QueueMsg *q, *next;
        bool all;
        size_t n = 0;
        int r;

        r = admin_target(m, NULL, 0, &id, &all);
        if (r < 0)
                return r;
        if (!id && !all)
                return -EBADMSG;
        if (!admin_may_change(p)) {
                log_warning("Refused to %s for uid %u: only root and the queue's owner may", what,
                            (unsigned) p->uid);
                return peer_send_error(p, 550, "5.7.1", "Permission denied: only root and the "
                                       "queue's owner may change the queue");
        }
        if (id) {
                q = spool_id_valid(id) ? queue_find(p->queue, id) : NULL;
                if (!q && action == admin_delete && spool_id_valid(id) &&
                    admin_delete_corrupt(p, id) >= 0)
                        return admin_end(p, 1);
                if (!q || q->deleted)
                        return admin_no_such(p, id);
                r = action(p, q);
                if (r < 0)
                        return peer_send_error(p, 451, "4.3.0", "Error: cannot change the queue file");
                return admin_end(p, (size_t) r);
        }
        /* An action may free the message (delete), never another one. */
        for (q = p->queue->head; q; q = next) {
                next = q->next;
                if (q->deleted)
                        continue;
                r = action(p, q);
                if (r > 0)
                        n += (size_t) r;
        }
        return admin_end(p, n);
}

int admin_on_hold(Peer *p, const IpcMsg *m) {
        return admin_change(p, m, admin_hold, "hold messages");
}

int admin_on_release(Peer *p, const IpcMsg *m) {
        return admin_change(p, m, admin_release, "release messages");
}

int admin_on_delete(Peer *p, const IpcMsg *m) {
        return admin_change(p, m, admin_delete, "delete messages");
}

int admin_on_requeue(Peer *p, const IpcMsg *m) {
        return admin_change(p, m, admin_requeue, "requeue messages");
}

/* The header section of a body: up to the first empty line, at most
 * ADMIN_HEADERS_MAX bytes. */
static size_t admin_headers_len(const uint8_t *body, size_t len) {
        size_t n = len < ADMIN_HEADERS_MAX ? len : ADMIN_HEADERS_MAX;

        for (size_t i = 0; i + 1 < n; i++) {
                if (body[i] != '\n')
                        continue;
                if (body[i + 1] == '\n')
                        return i + 1;
                if (i + 2 < n && body[i + 1] == '\r' && body[i + 2] == '\n')
                        return i + 1;
        }
        return n;
}

int admin_on_show(Peer *p, const IpcMsg *m) {
        _cleanup_(spool_closep) SpoolFile *f = NULL;
        _cleanup_(spool_envelope_done) SpoolEnvelope env = {};
        _cleanup_(spool_state_done) SpoolState state = {};
        _cleanup_free_ char *id = NULL;
        char uid[24];
        const uint8_t *body;
        size_t body_len;
        QueueMsg *q;
        bool all;
        IpcWriter *w = p->writer;
        int r;

        r = admin_target(m, NULL, 0, &id, &all);
        if (r < 0)
                return r;
        if (!id || all)
                return -EBADMSG;
        q = spool_id_valid(id) ? queue_find(p->queue, id) : NULL;
        if (!q)
                return admin_no_such(p, id);
        r = spool_open(p->queue->spool_fd, q->id, &f);
        if (r >= 0)
                r = spool_read_envelope(f, &env);
        if (r >= 0)
                r = spool_get_body(f, &body, &body_len);
        if (r >= 0)
                r = spool_state_load(p->queue->spool_fd, q->id, env.n_rcpts, &state);
        if (r < 0) {
                log_warning_errno(r, "%s: cannot read the queue file for `queue show`: %m", q->id);
                return peer_send_error(p, 451, "4.3.0", "Error: cannot read the queue file");
        }
        (void) snprintf(uid, sizeof(uid), "%u", (unsigned) p->uid);
        if (!admin_may_change(p) && !streq_ptr(env.submit_uid, uid))
                return peer_send_error(p, 550, "5.7.1", "Permission denied: only root, the queue's "
                                       "owner and the message's sender may show it");

        ipc_writer_init(w, IPC_QUEUE_DETAIL);
        ipc_put_str(w, IPC_F_QUEUE_ID, q->id);
        ipc_put_str(w, IPC_F_STATE, queue_msg_state(q));
        ipc_put_str(w, IPC_F_SENDER, env.sender);
        ipc_put_u64(w, IPC_F_SIZE, body_len);
        ipc_put_u64(w, IPC_F_ARRIVAL, env.arrival_usec);
        ipc_put_str(w, IPC_F_CLIENT_ADDR, env.client_addr);
        ipc_put_str(w, IPC_F_CLIENT_NAME, env.client_name);
        ipc_put_str(w, IPC_F_HELO, env.helo);
        ipc_put_str(w, IPC_F_PROTO, env.proto);
        ipc_put_str(w, IPC_F_AUTH_USER, env.auth_user);
        ipc_put_str(w, IPC_F_ENVID, env.envid);
        ipc_put_str(w, IPC_F_RET, env.ret);
        ipc_put_str(w, IPC_F_SUBMIT_UID, env.submit_uid);
        ipc_put_u64(w, IPC_F_ATTEMPTS, q->attempts);
        ipc_put_u64(w, IPC_F_NEXT_ATTEMPT, q->waiting ? q->next_attempt_usec : 0);
        ipc_put_bytes(w, IPC_F_HEADERS, body, admin_headers_len(body, body_len));
        r = peer_send(p);
        if (r < 0)
                return r;
        for (size_t i = 0; i < env.n_rcpts && i < q->n_rcpts; i++) {
                const SpoolRcptState *s = i < state.n_rcpts ? &state.rcpts[i] : NULL;
                /* The table is newer than the file for results being recorded. */
                DeliveryStatus st = q->status[i] != DELIVERY_NONE ? q->status[i]
                                    : s ? s->status : DELIVERY_NONE;

                ipc_writer_init(w, IPC_QUEUE_RCPT_STATE);
                ipc_put_str(w, IPC_F_RCPT, env.rcpts[i].addr);
                ipc_put_u64(w, IPC_F_STATUS, (uint64_t) st);
                if (s && s->status != DELIVERY_NONE) {
                        ipc_put_str(w, IPC_F_DSN, s->dsn);
                        ipc_put_str(w, IPC_F_RELAY, s->relay);
                        ipc_put_str(w, IPC_F_TEXT, s->text);
                        ipc_put_u64(w, IPC_F_WHEN, s->when_usec);
                }
                ipc_put_u64(w, IPC_F_IN_FLIGHT, q->in_flight[i]);
                r = peer_send(p);
                if (r < 0)
                        return r;
        }
        return admin_end(p, 1);
}
