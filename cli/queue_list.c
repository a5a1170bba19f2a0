/* `ternctl queue`, `mailq`: the queue as queued sees it, streamed entry by
 * entry so a large queue needs no memory here. The human format keeps the
 * columns of Postfix's mailq, which administrators and scripts already read. */

#include <inttypes.h>
#include <time.h>

#include "ipc.h"
#include "queue_list.h"

#define QUEUE_LIST_STR_MAX 4096u

typedef struct QueueEntry {
        char *id;
        char *state;
        char *sender;
        char *error;
        uint64_t size;
        uint64_t arrival_usec;
        char **rcpts;
        size_t n_rcpts;
} QueueEntry;

static void queue_entry_done(QueueEntry *e) {
        free(e->id);
        free(e->state);
        free(e->sender);
        free(e->error);
        strv_free(e->rcpts);
        *e = (QueueEntry) {};
}

static int queue_entry_parse(const IpcMsg *m, QueueEntry *e) {
        int r;

        *e = (QueueEntry) {};
        r = ipc_get_str(m, IPC_F_QUEUE_ID, QUEUE_LIST_STR_MAX, &e->id);
        if (r < 0)
                return r == -ENOENT ? -EBADMSG : r;
        r = ipc_get_str(m, IPC_F_STATE, QUEUE_LIST_STR_MAX, &e->state);
        if (r < 0 && r != -ENOENT)
                return r;
        r = ipc_get_str(m, IPC_F_SENDER, QUEUE_LIST_STR_MAX, &e->sender);
        if (r < 0 && r != -ENOENT)
                return r;
        r = ipc_get_str(m, IPC_F_TEXT, QUEUE_LIST_STR_MAX, &e->error);
        if (r < 0 && r != -ENOENT)
                return r;
        r = ipc_get_u64(m, IPC_F_SIZE, &e->size);
        if (r < 0 && r != -ENOENT)
                return r;
        r = ipc_get_u64(m, IPC_F_ARRIVAL, &e->arrival_usec);
        if (r < 0 && r != -ENOENT)
                return r;
        for (size_t i = 0; i < m->n_fields; i++) {
                if (m->fields[i].tag != IPC_F_RCPT)
                        continue;
                char **l = reallocarray_safe(e->rcpts, e->n_rcpts + 2, sizeof(char *));
                if (!l)
                        return -ENOMEM;
                e->rcpts = l;
                l[e->n_rcpts] = NULL;
                r = ipc_field_str(&m->fields[i], QUEUE_LIST_STR_MAX, &l[e->n_rcpts]);
                if (r < 0)
                        return r;
                l[++e->n_rcpts] = NULL;
        }
        return 0;
}

static int queue_list_error(const IpcMsg *m, char **ret_error) {
        _cleanup_free_ char *text = NULL;

        if (ipc_get_str(m, IPC_F_TEXT, QUEUE_LIST_STR_MAX, &text) < 0) {
                uint64_t code = 0;
                (void) ipc_get_u64(m, IPC_F_CODE, &code);
                if (asprintf(&text, "error %" PRIu64, code) < 0)
                        return -ENOMEM;
        }
        if (ret_error)
                *ret_error = TAKE_PTR(text);
        return -EREMOTEIO;
}

typedef struct QueuePrinter {
        FILE *f;
        QueueListFormat format;
        size_t n;
        uint64_t bytes;
} QueuePrinter;

/* Column of the sender and recipients: ID and flag (14), size (8), arrival (19). */
#define QUEUE_LIST_INDENT 45

static void queue_print_human(QueuePrinter *p, const QueueEntry *e) {
        char when[64] = "";
        time_t t = (time_t) (e->arrival_usec / 1000000u);
        struct tm tm;
        char flag = ' ';

        if (p->n == 0)
                fprintf(p->f, "%-14s %8s %-20s %s\n", "-Queue ID-", "--Size--",
                        "----Arrival Time----", "-Sender/Recipient-------");
        /* incoming and corrupt entries come without envelope: no time. */
        if (e->arrival_usec > 0 && localtime_r(&t, &tm))
                (void) strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm);
        /* Postfix's marks: '*' being delivered, '!' on hold. */
        if (streq_ptr(e->state, "active"))
                flag = '*';
        else if (streq_ptr(e->state, "hold"))
                flag = '!';
        if (streq_ptr(e->state, "incoming") || streq_ptr(e->state, "corrupt")) {
                fprintf(p->f, "%-13s%c %8" PRIu64 " %-19.19s  (%s)\n", e->id, flag, e->size, when,
                        e->state);
                fputc('\n', p->f);
                return;
        }
        fprintf(p->f, "%-13s%c %8" PRIu64 " %-19.19s  %s\n", e->id, flag, e->size, when,
                isempty(e->sender) ? "MAILER-DAEMON" : e->sender);
        if (!isempty(e->error))
                fprintf(p->f, "%*s(%s)\n", QUEUE_LIST_INDENT, "", e->error);
        for (size_t i = 0; i < e->n_rcpts; i++)
                fprintf(p->f, "%*s%s\n", QUEUE_LIST_INDENT, "", e->rcpts[i]);
        fputc('\n', p->f);
}

/* Length of the valid UTF-8 sequence at s, or 0. */
static size_t queue_list_utf8_len(const unsigned char *s) {
        unsigned char c = s[0];
        size_t n;
        uint32_t cp;

        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf)
                n = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
                n = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
                n = 4, cp = c & 0x07;
        else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80) /* also stops at the NUL */
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        /* Overlong forms, surrogates and values above U+10FFFF are invalid. */
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return n;
}

void queue_list_json_string(FILE *f, const char *s) {
        const unsigned char *u = (const unsigned char *) (s ? s : "");

        fputc('"', f);
        while (*u) {
                size_t n = queue_list_utf8_len(u);
                if (n == 0) {
                        fputs("\\ufffd", f);
                        u++;
                        continue;
                }
                if (n > 1) {
                        fwrite(u, 1, n, f);
                        u += n;
                        continue;
                }
                if (*u == '"' || *u == '\\')
                        fprintf(f, "\\%c", *u);
                else if (*u < 0x20 || *u == 0x7f)
                        fprintf(f, "\\u%04x", *u);
                else
                        fputc(*u, f);
                u++;
        }
        fputc('"', f);
}

static void queue_print_json(QueuePrinter *p, const QueueEntry *e) {
        fputs(p->n == 0 ? "[\n" : ",\n", p->f);
        fputs("{\"id\": ", p->f);
        queue_list_json_string(p->f, e->id);
        fputs(", \"state\": ", p->f);
        queue_list_json_string(p->f, e->state);
        fputs(", \"sender\": ", p->f);
        queue_list_json_string(p->f, e->sender);
        fprintf(p->f, ", \"size\": %" PRIu64 ", \"arrival\": %" PRIu64 ", \"recipients\": [",
                e->size, e->arrival_usec / 1000000u);
        for (size_t i = 0; i < e->n_rcpts; i++) {
                if (i > 0)
                        fputs(", ", p->f);
                queue_list_json_string(p->f, e->rcpts[i]);
        }
        fputs("], \"error\": ", p->f);
        if (isempty(e->error))
                fputs("null", p->f);
        else
                queue_list_json_string(p->f, e->error);
        fputc('}', p->f);
}

static void queue_print_finish(QueuePrinter *p) {
        if (p->format == QUEUE_LIST_JSON) {
                fputs(p->n == 0 ? "[]\n" : "\n]\n", p->f);
                return;
        }
        if (p->n == 0) {
                fputs("Mail queue is empty\n", p->f);
                return;
        }
        fprintf(p->f, "-- %" PRIu64 " Kbytes in %zu Request%s.\n", (p->bytes + 1023) / 1024,
                p->n, p->n == 1 ? "" : "s");
}

static int queue_list_connect(const char *path) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        fd = ipc_connect(path);
        if (fd < 0)
                return fd;
        r = ipc_hello(fd, "ctl");
        if (r < 0)
                return r;
        return TAKE_FD(fd);
}

int queue_list_print(const char *path, QueueListFormat format, FILE *f, char **ret_error) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ IpcWriter *w = malloc(sizeof(IpcWriter));
        _cleanup_free_ uint8_t *buf = malloc(IPC_FRAME_MAX);
        QueuePrinter p = { .f = f, .format = format };
        IpcMsg m;
        int r;

        if (!w || !buf)
                return -ENOMEM;
        fd = queue_list_connect(path);
        if (fd < 0)
                return fd;
        ipc_writer_init(w, IPC_QUEUE_LIST);
        r = ipc_send(fd, w, -EBADF);
        if (r < 0)
                return r;
        for (;;) {
                QueueEntry e;
                ssize_t n = ipc_recv(fd, buf, IPC_FRAME_MAX, NULL);
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        return -ECONNRESET;
                r = ipc_parse(buf, (size_t) n, &m);
                if (r < 0)
                        return r;
                if (m.type == IPC_QUEUE_END)
                        break;
                if (m.type == IPC_ERROR)
                        return queue_list_error(&m, ret_error);
                if (m.type != IPC_QUEUE_ENTRY)
                        return -EBADMSG;
                r = queue_entry_parse(&m, &e);
                if (r >= 0) {
                        if (format == QUEUE_LIST_JSON)
                                queue_print_json(&p, &e);
                        else
                                queue_print_human(&p, &e);
                        p.n++;
                        p.bytes += e.size;
                }
                queue_entry_done(&e);
                if (r < 0)
                        return r;
        }
        queue_print_finish(&p);
        return fflush(f) == 0 ? 0 : negative_errno();
}

int queue_list_flush(const char *path, const char *id, char **ret_error) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ IpcWriter *w = malloc(sizeof(IpcWriter));
        _cleanup_free_ uint8_t *buf = malloc(IPC_FRAME_MAX);
        IpcMsg m;
        int r;

        if (!w || !buf)
                return -ENOMEM;
        fd = queue_list_connect(path);
        if (fd < 0)
                return fd;
        ipc_writer_init(w, IPC_QUEUE_FLUSH);
        ipc_put_str(w, IPC_F_QUEUE_ID, id);
        r = ipc_call(fd, w, buf, IPC_FRAME_MAX, &m);
        if (r < 0)
                return r;
        if (m.type == IPC_ERROR)
                return queue_list_error(&m, ret_error);
        if (m.type != IPC_QUEUE_END)
                return -EBADMSG;
        return 0;
}
