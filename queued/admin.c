/* `ternctl queue`, `mailq` and `ternctl flush`: IPC_QUEUE_LIST streams one
 * IPC_QUEUE_ENTRY per message (then the files in corrupt/), IPC_QUEUE_FLUSH
 * makes deferred mail due now. Anyone may ask, as with Postfix's showq and
 * postqueue -f by default. */
#include <dirent.h>
#include <fcntl.h>

#include "admin.h"
#include "log.h"
#include "queue.h"

/* Room left in an entry frame for the fields after the recipients. */
#define ADMIN_FRAME_RESERVE 1024u

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

/* Files in corrupt/ are listed by name so that an administrator sees them. */
static int admin_send_corrupt(Peer *p) {
        DIR *d;
        int fd, r = 0;

        fd = openat(p->queue->spool_fd, SPOOL_DIR_CORRUPT, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
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
                ipc_put_str(p->writer, IPC_F_STATE, "corrupt");
                r = peer_send(p);
        }
        (void) closedir(d);
        return r;
}

int admin_on_list(Peer *p, const IpcMsg *m) {
        int r;

        if (m->n_fields != 0)
                return -EBADMSG;
        for (const QueueMsg *q = p->queue->head; q; q = q->next) {
                r = admin_send_msg(p, q);
                if (r < 0)
                        return r;
        }
        r = admin_send_corrupt(p);
        if (r < 0)
                return r;
        ipc_writer_init(p->writer, IPC_QUEUE_END);
        return peer_send(p);
}

int admin_on_flush(Peer *p, const IpcMsg *m) {
        _cleanup_free_ char *id = NULL;
        size_t n = 0;
        int r;

        for (size_t i = 0; i < m->n_fields; i++)
                if (m->fields[i].tag != IPC_F_QUEUE_ID)
                        return -EBADMSG;
        r = ipc_get_str(m, IPC_F_QUEUE_ID, SPOOL_ID_MAX - 1, &id);
        if (r < 0 && r != -ENOENT)
                return r == -ENOMEM ? r : -EBADMSG;
        if (id) {
                QueueMsg *q = spool_id_valid(id) ? queue_find(p->queue, id) : NULL;
                char text[SPOOL_ID_MAX + 64];

                if (!q) {
                        (void) snprintf(text, sizeof(text), "%s: no such message in the queue",
                                        spool_id_valid(id) ? id : "(invalid id)");
                        return peer_send_error(p, 550, "5.0.0", text);
                }
                if (q->waiting) {
                        queue_msg_due(q);
                        n++;
                }
        } else {
                /* queue_msg_due never frees a message, so the walk is safe. */
                for (QueueMsg *q = p->queue->head; q; q = q->next)
                        if (q->waiting) {
                                queue_msg_due(q);
                                n++;
                        }
        }
        log_info("Flush requested by uid %u: %zu deferred message%s due now", (unsigned) p->uid, n,
                 n == 1 ? "" : "s");
        ipc_writer_init(p->writer, IPC_QUEUE_END);
        return peer_send(p);
}
