/* The IPC client for queued. Everything queued says is checked before it can
 * reach the SMTP client: a refusal is passed through only when its code, DSN
 * and text form a valid reply; anything else counts as a broken queued. */
#include <sys/socket.h>
#include <sys/time.h>

#include "ipc.h"
#include "queue_client.h"

/* Rejections reported per session; a session with more (it is cut off after
 * HardErrorLimit anyway) reports the first ones. */
#define QUEUE_REJECTS_MAX 32u
#define QUEUE_REJECT_LEN 32u

struct QueueClient {
        int fd;
        char rejects[QUEUE_REJECTS_MAX][QUEUE_REJECT_LEN];
        size_t n_rejects;
        bool tls;
        IpcWriter w;
        uint8_t buf[IPC_FRAME_MAX];
        IpcMsg msg;
};

QueueClient *queue_client_free(QueueClient *q) {
        if (!q)
                return NULL;
        closep(&q->fd);
        free(q);
        return NULL;
}

int queue_client_new(const char *path, uint64_t timeout_usec, QueueClient **ret) {
        _cleanup_(queue_client_freep) QueueClient *q = NULL;
        struct timeval tv = {
                .tv_sec = (time_t) (timeout_usec / 1000000u),
                .tv_usec = (suseconds_t) (timeout_usec % 1000000u),
        };
        int r;

        q = malloc(sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->n_rejects = 0;
        q->tls = false;
        q->fd = ipc_connect(path);
        if (q->fd < 0)
                return q->fd;
        /* queued answers within milliseconds; a queued that hangs must not
         * hold the session beyond the client's own timeout. */
        if (timeout_usec > 0 &&
            (setsockopt(q->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
             setsockopt(q->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0))
                return negative_errno();
        r = ipc_hello(q->fd, "smtpd");
        if (r < 0)
                return r;
        *ret = TAKE_PTR(q);
        return 0;
}

static bool dsn_valid(const char *d, unsigned code) {
        /* RFC 3463: class.subject.detail, class 2/4/5 matching the reply. */
        size_t i = 0, digits;

        if (d[0] != (char) ('0' + code / 100) || d[1] != '.')
                return false;
        i = 2;
        for (int part = 0; part < 2; part++) {
                digits = 0;
                while (d[i] >= '0' && d[i] <= '9') {
                        i++;
                        digits++;
                }
                if (digits < 1 || digits > 3)
                        return false;
                if (part == 0 && d[i++] != '.')
                        return false;
        }
        return d[i] == 0;
}

static int parse_refusal(const IpcMsg *m, QueueReply *ret) {
        _cleanup_free_ char *dsn = NULL, *text = NULL;
        uint64_t code;

        if (ipc_get_u64(m, IPC_F_CODE, &code) < 0 || code < 400 || code > 599)
                return -EBADMSG;
        if (ipc_get_str(m, IPC_F_DSN, sizeof(ret->dsn) - 1, &dsn) < 0 ||
            !dsn_valid(dsn, (unsigned) code))
                return -EBADMSG;
        if (ipc_get_str(m, IPC_F_TEXT, sizeof(ret->text) - 1, &text) < 0)
                return -EBADMSG;
        for (const char *p = text; *p; p++)
                if ((unsigned char) *p < 32 || (unsigned char) *p > 126)
                        return -EBADMSG;
        ret->code = (unsigned) code;
        memcpy(ret->dsn, dsn, strlen(dsn) + 1);
        memcpy(ret->text, text, strlen(text) + 1);
        return 1;
}

/* Sends q->w and reads the answer: `ok` type or IPC_ERROR. */
static int call(QueueClient *q, uint16_t ok, QueueReply *ret_refusal) {
        int r;

        r = ipc_call(q->fd, &q->w, q->buf, sizeof(q->buf), &q->msg);
        if (r < 0)
                return r;
        if (q->msg.type == IPC_ERROR)
                return parse_refusal(&q->msg, ret_refusal);
        if (q->msg.type != ok)
                return -EBADMSG;
        return 0;
}

static int get_queue_id(const IpcMsg *m, char ret_id[QUEUE_ID_MAX]) {
        _cleanup_free_ char *id = NULL;

        if (ipc_get_str(m, IPC_F_QUEUE_ID, QUEUE_ID_MAX - 1, &id) < 0 || isempty(id))
                return -EBADMSG;
        /* The id goes into replies, headers and log lines: letters and digits only. */
        for (const char *p = id; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
                        return -EBADMSG;
        memcpy(ret_id, id, strlen(id) + 1);
        return 0;
}

int queue_client_begin(QueueClient *q, const QueueEnvelope *e, char ret_id[QUEUE_ID_MAX],
                       QueueReply *ret_refusal) {
        int r;

        ipc_writer_init(&q->w, IPC_MSG_BEGIN);
        ipc_put_str(&q->w, IPC_F_SENDER, e->sender);
        ipc_put_str(&q->w, IPC_F_CLIENT_ADDR, e->client_addr);
        ipc_put_str(&q->w, IPC_F_CLIENT_NAME, e->client_name);
        ipc_put_str(&q->w, IPC_F_HELO, e->helo);
        ipc_put_str(&q->w, IPC_F_PROTO, e->proto);
        ipc_put_str(&q->w, IPC_F_AUTH_USER, e->auth_user);
        if (e->size > 0)
                ipc_put_u64(&q->w, IPC_F_SIZE, e->size);
        ipc_put_str(&q->w, IPC_F_BODY_TYPE, e->body_type);
        ipc_put_str(&q->w, IPC_F_ENVID, e->envid);
        ipc_put_str(&q->w, IPC_F_RET, e->ret);
        if (e->smtputf8)
                ipc_put_u64(&q->w, IPC_F_SMTPUTF8, 1);
        r = call(q, IPC_MSG_BEGUN, ret_refusal);
        if (r != 0)
                return r;
        return get_queue_id(&q->msg, ret_id);
}

int queue_client_rcpt_dsn(QueueClient *q, const char *rcpt, const char *notify, const char *orcpt,
                          QueueReply *ret_refusal) {
        ipc_writer_init(&q->w, IPC_MSG_RCPT);
        ipc_put_str(&q->w, IPC_F_RCPT, rcpt);
        ipc_put_str(&q->w, IPC_F_NOTIFY, notify);
        ipc_put_str(&q->w, IPC_F_ORCPT, orcpt);
        return call(q, IPC_MSG_RCPT_OK, ret_refusal);
}

int queue_client_rcpt(QueueClient *q, const char *rcpt, QueueReply *ret_refusal) {
        return queue_client_rcpt_dsn(q, rcpt, NULL, NULL, ret_refusal);
}

int queue_client_data(QueueClient *q, const void *p, size_t n) {
        ipc_writer_init(&q->w, IPC_MSG_DATA);
        ipc_put_bytes(&q->w, IPC_F_DATA, p, n);
        return ipc_send(q->fd, &q->w, -EBADF);
}

int queue_client_end(QueueClient *q, char ret_id[QUEUE_ID_MAX], QueueReply *ret_refusal) {
        int r;

        ipc_writer_init(&q->w, IPC_MSG_END);
        r = call(q, IPC_MSG_QUEUED, ret_refusal);
        if (r != 0)
                return r;
        return get_queue_id(&q->msg, ret_id);
}

int queue_client_abort(QueueClient *q) {
        ipc_writer_init(&q->w, IPC_MSG_ABORT);
        return ipc_send(q->fd, &q->w, -EBADF);
}

void queue_client_note_reject(QueueClient *q, const char *stage, const char *text) {
        size_t n = strcspn(text, " ");

        if (!q || q->n_rejects >= QUEUE_REJECTS_MAX || n == 0 || n > 9)
                return;
        (void) snprintf(q->rejects[q->n_rejects++], QUEUE_REJECT_LEN, "%s %.*s", stage, (int) n, text);
}

void queue_client_note_tls(QueueClient *q) {
        if (q)
                q->tls = true;
}

int queue_client_report(QueueClient *q) {
        if (!q)
                return 0;
        ipc_writer_init(&q->w, IPC_STATS_SESSION);
        ipc_put_u64(&q->w, IPC_F_STATS_TLS, q->tls);
        for (size_t i = 0; i < q->n_rejects; i++)
                ipc_put_str(&q->w, IPC_F_STATS_REJECT, q->rejects[i]);
        return ipc_send(q->fd, &q->w, -EBADF);
}
