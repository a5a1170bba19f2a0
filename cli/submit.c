/* sendmail's side of a submission to queued. Everything is blocking: sendmail
 * is one short-lived process doing one transaction, so an event loop would
 * only add code. Line ends are converted here because IPC_MSG_DATA carries
 * CRLF text (ipc.h) and local programs write LF. */

#include <errno.h>
#include <stdio.h>

#include "ipc.h"
#include "submit.h"

#define SUBMIT_ID_MAX 64u

struct Submit {
        int fd;
        bool last_cr;           /* the last byte passed in was CR */
        bool any;               /* at least one byte passed in */
        bool last_lf;           /* the last byte passed on was LF */
        uint64_t bytes;
        size_t chunk_len;
        uint8_t chunk[IPC_DATA_CHUNK_MAX];
        IpcWriter w;            /* 128 KiB each: on the heap with the Submit */
        uint8_t buf[IPC_FRAME_MAX];
};

int submit_connect(const char *path, Submit **ret) {
        _cleanup_(submit_freep) Submit *s = NULL;
        int r;

        s = new0(Submit, 1);
        if (!s)
                return -ENOMEM;
        s->fd = ipc_connect(path);
        if (s->fd < 0)
                return s->fd;
        r = ipc_hello(s->fd, "sendmail");
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

Submit *submit_free(Submit *s) {
        if (!s)
                return NULL;
        closep(&s->fd);
        free(s);
        return NULL;
}

static void submit_error_fill(const IpcMsg *m, SubmitError *error) {
        _cleanup_free_ char *dsn = NULL, *text = NULL;
        uint64_t code = 0;

        *error = (SubmitError) {};
        (void) ipc_get_u64(m, IPC_F_CODE, &code);
        error->code = code <= 999 ? (unsigned) code : 0;
        if (ipc_get_str(m, IPC_F_DSN, sizeof(error->dsn) - 1, &dsn) >= 0)
                (void) snprintf(error->dsn, sizeof(error->dsn), "%s", dsn);
        if (ipc_get_str(m, IPC_F_TEXT, IPC_FRAME_MAX, &text) >= 0)
                (void) snprintf(error->text, sizeof(error->text), "%s", text);
}

/* Sends s->w and reads the answer: want, IPC_ERROR (-EREMOTEIO) or nonsense. */
static int submit_call(Submit *s, uint16_t want, IpcMsg *ret, SubmitError *error) {
        int r;

        r = ipc_call(s->fd, &s->w, s->buf, sizeof(s->buf), ret);
        if (r < 0)
                return r;
        if (ret->type == IPC_ERROR) {
                submit_error_fill(ret, error);
                return -EREMOTEIO;
        }
        if (ret->type != want)
                return -EBADMSG;
        return 0;
}

static int submit_get_id(const IpcMsg *m, char **ret) {
        int r = ipc_get_str(m, IPC_F_QUEUE_ID, SUBMIT_ID_MAX, ret);
        return r == -ENOENT ? -EBADMSG : r;
}

int submit_begin(Submit *s, const SubmitEnvelope *env, char **ret_queue_id, SubmitError *error) {
        IpcMsg m;
        int r;

        ipc_writer_init(&s->w, IPC_MSG_BEGIN);
        ipc_put_str(&s->w, IPC_F_SENDER, env->sender);
        ipc_put_str(&s->w, IPC_F_PROTO, "local");
        if (env->size > 0)
                ipc_put_u64(&s->w, IPC_F_SIZE, env->size);
        ipc_put_str(&s->w, IPC_F_ENVID, env->envid);
        ipc_put_str(&s->w, IPC_F_RET, env->ret);
        ipc_put_str(&s->w, IPC_F_BODY_TYPE, env->body_type);
        r = submit_call(s, IPC_MSG_BEGUN, &m, error);
        if (r < 0)
                return r;
        return submit_get_id(&m, ret_queue_id);
}

int submit_rcpt(Submit *s, const char *rcpt, const char *notify, SubmitError *error) {
        IpcMsg m;

        ipc_writer_init(&s->w, IPC_MSG_RCPT);
        ipc_put_str(&s->w, IPC_F_RCPT, rcpt);
        ipc_put_str(&s->w, IPC_F_NOTIFY, notify);
        return submit_call(s, IPC_MSG_RCPT_OK, &m, error);
}

static int submit_flush(Submit *s) {
        int r;

        if (s->chunk_len == 0)
                return 0;
        ipc_writer_init(&s->w, IPC_MSG_DATA);
        ipc_put_bytes(&s->w, IPC_F_DATA, s->chunk, s->chunk_len);
        r = ipc_send(s->fd, &s->w, -EBADF);
        if (r < 0)
                return r;
        s->chunk_len = 0;
        return 0;
}

static int submit_put(Submit *s, uint8_t c) {
        int r;

        if (s->chunk_len == sizeof(s->chunk)) {
                r = submit_flush(s);
                if (r < 0)
                        return r;
        }
        s->chunk[s->chunk_len++] = c;
        s->bytes++;
        s->last_lf = c == '\n';
        return 0;
}

int submit_write(Submit *s, const void *p, size_t n) {
        const uint8_t *b = p;
        int r;

        for (size_t i = 0; i < n; i++) {
                if (b[i] == '\n' && !s->last_cr) {
                        r = submit_put(s, '\r');
                        if (r < 0)
                                return r;
                }
                r = submit_put(s, b[i]);
                if (r < 0)
                        return r;
                s->last_cr = b[i] == '\r';
                s->any = true;
        }
        return 0;
}

uint64_t submit_bytes(const Submit *s) {
        return s->bytes;
}

int submit_end(Submit *s, char **ret_queue_id, SubmitError *error) {
        IpcMsg m;
        int r;

        /* The last line ends with CRLF, as RFC 5322 2.1 and the spool expect. */
        if (s->any && !s->last_lf) {
                r = submit_write(s, "\n", 1);
                if (r < 0)
                        return r;
        }
        r = submit_flush(s);
        if (r < 0)
                return r;
        ipc_writer_init(&s->w, IPC_MSG_END);
        r = submit_call(s, IPC_MSG_QUEUED, &m, error);
        if (r < 0)
                return r;
        return submit_get_id(&m, ret_queue_id);
}

int submit_abort(Submit *s) {
        ipc_writer_init(&s->w, IPC_MSG_ABORT);
        return ipc_send(s->fd, &s->w, -EBADF);
}
