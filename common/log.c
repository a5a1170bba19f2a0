/* Logging for every tern process: one entry per event, sent to journald with
 * structured fields, or one line on stderr when there is no journal. All
 * buffers are fixed-size: a log call never allocates, so it works when memory
 * is short and cannot be made to grow by a long client string. */
#include <endian.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "log.h"

#define LOG_IDENT_MAX 64
#define LOG_MESSAGE_MAX 4096   /* bytes of the formatted MESSAGE= text */
#define LOG_VALUE_MAX 2048     /* bytes of one field value after escaping */
#define LOG_KEY_MAX 64         /* journald's own limit on field names */
#define LOG_CONTEXT_MAX 16     /* process-wide context fields */
#define LOG_FIELDS_MAX 48      /* fields of one entry, all kinds together */
#define LOG_ENTRY_MAX 32768    /* bytes of one entry's "KEY=value" texts */

typedef struct LogContext {
        char *key;
        char *value;
} LogContext;

static char log_ident[LOG_IDENT_MAX] = "tern";
static bool log_to_journal;
static int log_max_level = LOG_INFO;
static LogContext log_context[LOG_CONTEXT_MAX];
/* journald's native protocol is spoken here rather than through libsystemd's
 * sd_journal_sendv(): smtpd starts once per connection, and loading
 * libsystemd with the libraries it pulls in (libgcrypt, liblzma, libzstd,
 * liblz4) cost it milliseconds of CPU at every start (bench/README.md). The
 * socket is made in log_open(), before any sandbox: a process under a
 * seccomp allow-list then needs only sendmsg(). */
static int log_journal_fd = -EBADF;
#define LOG_JOURNAL_SOCKET "/run/systemd/journal/socket"

void log_open(const char *ident) {
        const char *e;

        if (ident)
                (void) snprintf(log_ident, sizeof(log_ident), "%s", ident);

        e = getenv("TERN_LOG");
        if (e && streq(e, "stderr"))
                log_to_journal = false;
        else if (e && streq(e, "journal"))
                log_to_journal = true;
        else
                log_to_journal = getenv("JOURNAL_STREAM") || getenv("INVOCATION_ID");
        if (log_to_journal && log_journal_fd < 0)
                log_journal_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        e = getenv("TERN_DEBUG");
        if (e && streq(e, "1"))
                log_max_level = LOG_DEBUG;
}

void log_set_max_level(int level) {
        log_max_level = level;
}

/* journald accepts field names of upper-case letters, digits and '_', not
 * starting with '_' (those are trusted fields it sets itself) or a digit. */
static bool log_key_valid(const char *key) {
        size_t n = 0;

        if (!key || !*key || *key == '_' || (*key >= '0' && *key <= '9'))
                return false;
        for (const char *p = key; *p; p++, n++) {
                if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
                        return false;
                if (n >= LOG_KEY_MAX)
                        return false;
        }
        return true;
}

int log_context_set(const char *key, const char *value) {
        LogContext *free_slot = NULL;

        if (!log_key_valid(key))
                return -EINVAL;

        for (size_t i = 0; i < LOG_CONTEXT_MAX; i++) {
                LogContext *c = &log_context[i];

                if (!c->key) {
                        if (!free_slot)
                                free_slot = c;
                        continue;
                }
                if (!streq(c->key, key))
                        continue;
                if (!value) {
                        free(c->key);
                        free(c->value);
                        *c = (LogContext) {};
                        return 0;
                }
                char *v = strdup(value);
                if (!v)
                        return -ENOMEM;
                free(c->value);
                c->value = v;
                return 0;
        }

        if (!value)
                return 0;
        if (!free_slot)
                return -ENOSPC;

        _cleanup_free_ char *k = strdup(key), *v = strdup(value);
        if (!k || !v)
                return -ENOMEM;
        free_slot->key = TAKE_PTR(k);
        free_slot->value = TAKE_PTR(v);
        return 0;
}

/* Appends value to buf[*pos..size) with control characters escaped as \xHH
 * (newline too unless keep_newline: journald stores multi-line values, a
 * stderr line must stay one line). Truncates at max bytes of output. */
static void log_append_escaped(char *buf, size_t size, size_t *pos, const char *value,
                               size_t max, bool keep_newline) {
        static const char hex[] = "0123456789abcdef";
        size_t start = *pos;

        for (const unsigned char *p = (const unsigned char *) value; *p; p++) {
                bool plain = (*p >= 0x20 && *p != 0x7f) || (*p == '\n' && keep_newline);
                size_t need = plain ? 1 : (*p == '\n' ? 2 : 4);

                if (*pos + need >= size || *pos - start + need > max)
                        break;
                if (plain)
                        buf[(*pos)++] = (char) *p;
                else if (*p == '\n') {
                        buf[(*pos)++] = '\\';
                        buf[(*pos)++] = 'n';
                } else {
                        buf[(*pos)++] = '\\';
                        buf[(*pos)++] = 'x';
                        buf[(*pos)++] = hex[*p >> 4];
                        buf[(*pos)++] = hex[*p & 15];
                }
        }
        buf[*pos] = 0;
}

static void log_append(char *buf, size_t size, size_t *pos, const char *s) {
        size_t n = strlen(s);

        if (*pos + n >= size)
                n = size - *pos - 1;
        memcpy(buf + *pos, s, n);
        *pos += n;
        buf[*pos] = 0;
}

typedef struct LogEntry {
        struct iovec iov[LOG_FIELDS_MAX];
        size_t n_iov;
        char text[LOG_ENTRY_MAX];
        size_t used;
} LogEntry;

/* Adds "KEY=value" as one iovec, escaping value; drops the field when the
 * entry is full rather than failing the whole entry. */
static void log_entry_add(LogEntry *e, const char *key, const char *value, size_t max) {
        size_t start = e->used, pos = e->used;

        if (!value || !log_key_valid(key) || e->n_iov >= LOG_FIELDS_MAX)
                return;
        if (e->used + strlen(key) + 2 >= sizeof(e->text))
                return;
        log_append(e->text, sizeof(e->text), &pos, key);
        log_append(e->text, sizeof(e->text), &pos, "=");
        log_append_escaped(e->text, sizeof(e->text), &pos, value, max, true);
        e->iov[e->n_iov++] = (struct iovec) { .iov_base = e->text + start, .iov_len = pos - start };
        e->used = pos + 1; /* keep the NUL */
}

/* One datagram in journald's native protocol: "KEY=value\n" per field, or,
 * when the value holds a newline, "KEY\n", its length as 64-bit little
 * endian, the value and "\n". Each entry's texts are "KEY=value". Nothing
 * sensible to do when the journal is gone: the entry is lost, as a syslog
 * line would be. */
static void log_journal_send(const LogEntry *e) {
        static const struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = LOG_JOURNAL_SOCKET };
        struct iovec iov[LOG_FIELDS_MAX * 5];
        uint64_t lens[LOG_FIELDS_MAX];
        size_t n = 0;
        struct msghdr mh = {
                .msg_name = (void *) &sa,
                .msg_namelen = offsetof(struct sockaddr_un, sun_path) + sizeof(LOG_JOURNAL_SOCKET),
                .msg_iov = iov,
        };

        if (log_journal_fd < 0)
                log_journal_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (log_journal_fd < 0)
                return;
        for (size_t i = 0; i < e->n_iov; i++) {
                char *text = e->iov[i].iov_base, *eq = memchr(text, '=', e->iov[i].iov_len);
                size_t klen = (size_t) (eq - text), vlen = e->iov[i].iov_len - klen - 1;

                if (!memchr(eq + 1, '\n', vlen)) {
                        iov[n++] = e->iov[i];
                } else {
                        lens[i] = htole64((uint64_t) vlen);
                        iov[n++] = (struct iovec) { .iov_base = text, .iov_len = klen };
                        iov[n++] = (struct iovec) { .iov_base = (char *) "\n", .iov_len = 1 };
                        iov[n++] = (struct iovec) { .iov_base = &lens[i], .iov_len = sizeof(lens[i]) };
                        iov[n++] = (struct iovec) { .iov_base = eq + 1, .iov_len = vlen };
                }
                iov[n++] = (struct iovec) { .iov_base = (char *) "\n", .iov_len = 1 };
        }
        mh.msg_iovlen = n;
        (void) sendmsg(log_journal_fd, &mh, MSG_NOSIGNAL);
}

static void log_to_journald(int level, int error, const LogField *fields, size_t n_fields,
                            const char *message) {
        LogEntry e;
        char prio[4], err[16];

        e.n_iov = 0;
        e.used = 0;
        (void) snprintf(prio, sizeof(prio), "%d", level & LOG_PRIMASK);
        /* Escaping may make the message up to 4 times longer; it is added first,
         * so it always fits. */
        log_entry_add(&e, "MESSAGE", message, 4 * LOG_MESSAGE_MAX);
        log_entry_add(&e, "PRIORITY", prio, LOG_VALUE_MAX);
        log_entry_add(&e, "SYSLOG_IDENTIFIER", log_ident, LOG_VALUE_MAX);
        if (error != 0) {
                (void) snprintf(err, sizeof(err), "%d", abs(error));
                log_entry_add(&e, "ERRNO", err, LOG_VALUE_MAX);
        }
        for (size_t i = 0; i < LOG_CONTEXT_MAX; i++)
                if (log_context[i].key)
                        log_entry_add(&e, log_context[i].key, log_context[i].value,
                                      LOG_VALUE_MAX);
        for (size_t i = 0; i < n_fields; i++)
                log_entry_add(&e, fields[i].key, fields[i].value, LOG_VALUE_MAX);

        log_journal_send(&e);
}

static void log_to_stderr(int error, const LogField *fields, size_t n_fields,
                          const char *message) {
        char line[LOG_MESSAGE_MAX * 2 + LOG_ENTRY_MAX];
        size_t pos = 0;
        char head[LOG_IDENT_MAX + 32];

        (void) snprintf(head, sizeof(head), "%s[%ld]: ", log_ident, (long) getpid());
        line[0] = 0;
        log_append(line, sizeof(line), &pos, head);
        log_append_escaped(line, sizeof(line), &pos, message, SIZE_MAX, false);

        /* The fields are for the journal; on stderr they are clutter except
         * when debugging. */
        if (log_max_level >= LOG_DEBUG) {
                if (error != 0) {
                        char err[32];
                        (void) snprintf(err, sizeof(err), " ERRNO=%d", abs(error));
                        log_append(line, sizeof(line), &pos, err);
                }
                for (size_t i = 0; i < LOG_CONTEXT_MAX + n_fields; i++) {
                        const char *key, *value;

                        if (i < LOG_CONTEXT_MAX) {
                                key = log_context[i].key;
                                value = log_context[i].value;
                        } else {
                                key = fields[i - LOG_CONTEXT_MAX].key;
                                value = fields[i - LOG_CONTEXT_MAX].value;
                        }
                        if (!key || !value || !log_key_valid(key))
                                continue;
                        log_append(line, sizeof(line), &pos, " ");
                        log_append(line, sizeof(line), &pos, key);
                        log_append(line, sizeof(line), &pos, "=");
                        log_append_escaped(line, sizeof(line), &pos, value, LOG_VALUE_MAX,
                                           false);
                }
        }
        log_append(line, sizeof(line), &pos, "\n");
        if (pos == sizeof(line) - 1)
                line[pos - 1] = '\n';
        (void) fputs(line, stderr);
        (void) fflush(stderr);
}

int log_emit(int level, int error, const LogField *fields, size_t n_fields, const char *fmt,
             ...) {
        int saved_errno = errno;
        char message[LOG_MESSAGE_MAX];
        va_list ap;

        if ((level & LOG_PRIMASK) > log_max_level)
                goto finish;

        /* glibc's printf expands %m from errno. */
        if (error != 0)
                errno = abs(error);
        va_start(ap, fmt);
        (void) vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);

        if (log_to_journal)
                log_to_journald(level, error, fields, n_fields, message);
        else
                log_to_stderr(error, fields, n_fields, message);

finish:
        errno = saved_errno;
        return error == 0 ? 0 : -abs(error);
}
