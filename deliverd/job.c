/* IPC_DELIVER frames and the spool file that comes with them: nothing in
 * either is trusted until checked here (a malformed frame closes the peer; a
 * job that does not match its file ends without results). */
#include "job.h"

int job_parse(const IpcMsg *m, Job **ret) {
        _cleanup_free_ char *queue_id = NULL;
        Job *j;
        size_t n = 0;
        uint64_t job_id;
        int r;

        r = ipc_get_str(m, IPC_F_QUEUE_ID, SPOOL_ID_MAX - 1, &queue_id);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || !spool_id_valid(queue_id))
                return -EBADMSG;
        if (ipc_get_u64(m, IPC_F_JOB, &job_id) < 0)
                return -EBADMSG;
        for (size_t i = 0; i < m->n_fields; i++) {
                uint16_t t = m->fields[i].tag;
                if (t == IPC_F_RCPT_INDEX)
                        n++;
                else if (t != IPC_F_QUEUE_ID && t != IPC_F_JOB)
                        return -EBADMSG;
        }
        if (n == 0 || n > SPOOL_RCPT_MAX)
                return -EBADMSG;

        j = new0(Job, 1);
        if (!j)
                return -ENOMEM;
        j->id = job_id;
        memcpy(j->queue_id, queue_id, strlen(queue_id) + 1);
        j->rcpt_index = new0(size_t, n);
        if (!j->rcpt_index) {
                job_free(j);
                return -ENOMEM;
        }
        for (size_t i = 0; i < m->n_fields; i++) {
                uint64_t v;
                if (m->fields[i].tag != IPC_F_RCPT_INDEX)
                        continue;
                if (ipc_field_u64(&m->fields[i], &v) < 0) {
                        job_free(j);
                        return -EBADMSG;
                }
                j->rcpt_index[j->n_rcpts++] = (size_t) (v > SIZE_MAX ? SIZE_MAX : v);
        }
        *ret = j;
        return 0;
}

int job_load(Job *j, int fd) {
        _cleanup_free_ bool *seen = NULL;
        int r;

        r = spool_open_fd(fd, &j->file);
        if (r < 0)
                return r;
        r = spool_read_envelope(j->file, &j->env);
        if (r < 0)
                return r;
        /* queued must not hand us one message's file under another's id. */
        if (!streq(j->env.id, j->queue_id))
                return -EBADMSG;
        r = spool_get_body(j->file, &j->body, &j->body_len);
        if (r < 0)
                return r;
        seen = new0(bool, j->env.n_rcpts);
        if (!seen)
                return -ENOMEM;
        for (size_t k = 0; k < j->n_rcpts; k++) {
                size_t i = j->rcpt_index[k];
                if (i >= j->env.n_rcpts || seen[i])
                        return -ERANGE;
                seen[i] = true;
        }
        return 0;
}

Job *job_free(Job *j) {
        if (!j)
                return NULL;
        sd_event_source_unref(j->child);
        spool_envelope_done(&j->env);
        spool_close(j->file);
        free(j->rcpt_index);
        free(j);
        return NULL;
}
