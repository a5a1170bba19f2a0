/* Lookup tables: text sources compiled into tinycdb files (see table.h). */
#include <cdb.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "table.h"

#define TABLE_SOURCE_MAX (256u * 1024u * 1024u) /* a source larger than this is refused */
#define TABLE_SUFFIX ".cdb"
#define TABLE_TMP_SUFFIX ".cdb.tmp"

struct Table {
        int fd;
        struct cdb cdb;
        bool cdb_ready;
};

static const char *const table_format_table[_TABLE_FORMAT_MAX] = {
        [TABLE_MAP] = "map",
        [TABLE_ALIASES] = "aliases",
};

TableFormat table_format_from_string(const char *s) {
        for (size_t i = 0; i < ELEMENTSOF(table_format_table); i++)
                if (streq(s, table_format_table[i]))
                        return (TableFormat) i;
        return _TABLE_FORMAT_INVALID;
}

/* "path" + suffix, or NULL (ENOMEM / too long). */
static char *table_path(const char *source, const char *suffix) {
        size_t n = strlen(source), m = strlen(suffix);
        char *p;

        if (n == 0 || n + m >= PATH_MAX)
                return NULL;
        p = malloc(n + m + 1);
        if (!p)
                return NULL;
        memcpy(p, source, n);
        memcpy(p + n, suffix, m + 1);
        return p;
}

Table *table_close(Table *t) {
        if (!t)
                return NULL;
        if (t->cdb_ready)
                cdb_free(&t->cdb);
        if (t->fd >= 0)
                (void) close(t->fd);
        free(t);
        return NULL;
}

int table_open(const char *source_path, Table **ret) {
        _cleanup_(table_closep) Table *t = NULL;
        _cleanup_free_ char *path = NULL;
        struct stat st;

        if (!source_path || source_path[0] != '/')
                return -EINVAL;
        path = table_path(source_path, TABLE_SUFFIX);
        if (!path)
                return -ENOMEM;
        t = new0(Table, 1);
        if (!t)
                return -ENOMEM;
        t->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (t->fd < 0)
                return negative_errno();
        if (fstat(t->fd, &st) < 0)
                return negative_errno();
        /* tinycdb needs at least its 2048-byte table of contents. */
        if (!S_ISREG(st.st_mode) || st.st_size < 2048)
                return -EBADMSG;
        if (cdb_init(&t->cdb, t->fd) < 0)
                return errno == ENOMEM ? -ENOMEM : -EBADMSG;
        t->cdb_ready = true;
        *ret = TAKE_PTR(t);
        return 0;
}

/* Lower-cases key into buf (size TABLE_KEY_MAX + 1). -ENOENT when too long. */
static int table_fold(const char *key, char *buf) {
        size_t n = strlen(key);

        if (n == 0 || n > TABLE_KEY_MAX)
                return -ENOENT;
        for (size_t i = 0; i <= n; i++)
                buf[i] = (char) tolower((unsigned char) key[i]);
        return 0;
}

int table_lookup(Table *t, const char *key, char **ret_value) {
        char k[TABLE_KEY_MAX + 1];
        unsigned len;
        char *v;
        int r;

        r = table_fold(key, k);
        if (r < 0)
                return r;
        r = cdb_find(&t->cdb, k, (unsigned) strlen(k));
        if (r < 0)
                return -EBADMSG;
        if (r == 0)
                return -ENOENT;
        len = cdb_datalen(&t->cdb);
        if (len > TABLE_VALUE_MAX)
                return -EBADMSG;
        v = malloc((size_t) len + 1);
        if (!v)
                return -ENOMEM;
        if (cdb_read(&t->cdb, v, len, cdb_datapos(&t->cdb)) < 0) {
                free(v);
                return -EBADMSG;
        }
        v[len] = '\0';
        if (memchr(v, '\0', len)) {
                free(v);
                return -EBADMSG;
        }
        *ret_value = v;
        return 0;
}

/* Tries one candidate key; on a hit also hands back the key. */
static int table_try(Table *t, const char *key, char **ret_value, char **ret_key) {
        int r = table_lookup(t, key, ret_value);

        if (r < 0)
                return r;
        if (ret_key) {
                *ret_key = strdup(key);
                if (!*ret_key) {
                        free(*ret_value);
                        *ret_value = NULL;
                        return -ENOMEM;
                }
        }
        return 0;
}

int table_lookup_address(Table *t, const char *addr, const char *delimiters, unsigned flags,
                         char **ret_value, char **ret_key) {
        char buf[TABLE_KEY_MAX + 2];
        const char *at = strrchr(addr, '@');
        const char *domain = at ? at + 1 : NULL;
        size_t local_len = at ? (size_t) (at - addr) : strlen(addr);
        size_t base_len = local_len;
        int r;

        if (strlen(addr) > TABLE_KEY_MAX)
                return -ENOENT;
        /* The user name without the extension: up to the first delimiter. */
        if (!isempty(delimiters)) {
                size_t n = strcspn(addr, delimiters);
                if (n > 0 && n < local_len)
                        base_len = n;
        }

#define TRY(...)                                                                     \
        do {                                                                         \
                (void) snprintf(buf, sizeof(buf), __VA_ARGS__);                      \
                r = table_try(t, buf, ret_value, ret_key);                           \
                if (r != -ENOENT)                                                    \
                        return r;                                                    \
        } while (0)

        if (!domain) {
                TRY("%s", addr);
                if (base_len < local_len)
                        TRY("%.*s", (int) base_len, addr);
                return -ENOENT;
        }

        TRY("%s", addr);
        if (base_len < local_len)
                TRY("%.*s@%s", (int) base_len, addr, domain);
        if (flags & TABLE_ADDR_LOCALPART) {
                TRY("%.*s@", (int) local_len, addr);
                if (base_len < local_len)
                        TRY("%.*s@", (int) base_len, addr);
        }
        if (flags & TABLE_ADDR_AT_DOMAIN)
                TRY("@%s", domain);
        if (flags & TABLE_ADDR_DOMAIN)
                for (const char *d = domain; d && *d; d = strchr(d, '.') ? strchr(d, '.') + 1 : NULL)
                        TRY("%s", d);
#undef TRY
        return -ENOENT;
}

/* ---- building ---- */

typedef struct TableBuilder {
        const char *source;
        TableFormat format;
        FILE *err;
        struct cdb_make cm;
        char key[TABLE_KEY_MAX + 1];
        char *value;            /* the entry being collected */
        size_t value_len;
        unsigned key_line;      /* line of the entry being collected, 0: none */
        int n_entries;
} TableBuilder;

static void table_report(TableBuilder *b, unsigned line, const char *what, const char *msg) {
        if (b->err)
                fprintf(b->err, "%s:%u: %s: %s\n", b->source, line, what, msg);
}

/* Adds the collected entry, if any. */
static int table_flush(TableBuilder *b) {
        int r;

        if (b->key_line == 0)
                return 0;
        if (b->value_len > TABLE_VALUE_MAX) {
                table_report(b, b->key_line, "error", "value is too long");
                return -EINVAL;
        }
        r = cdb_make_put(&b->cm, b->key, (unsigned) strlen(b->key), b->value ?: "",
                         (unsigned) b->value_len, CDB_PUT_INSERT);
        if (r < 0)
                return negative_errno();
        if (r > 0) {
                char msg[TABLE_KEY_MAX + 64];
                (void) snprintf(msg, sizeof(msg), "duplicate entry for \"%s\" ignored",
                                b->key);
                table_report(b, b->key_line, "warning", msg);
        } else
                b->n_entries++;
        free(b->value);
        b->value = NULL;
        b->value_len = 0;
        b->key_line = 0;
        return 0;
}

static int table_append_value(TableBuilder *b, const char *s, size_t n) {
        size_t extra = b->value_len > 0 ? 1 : 0;
        char *v;

        if (n == 0)
                return 0;
        if (b->value_len + extra + n > TABLE_VALUE_MAX)
                return -E2BIG;
        v = realloc(b->value, b->value_len + extra + n + 1);
        if (!v)
                return -ENOMEM;
        if (extra)
                v[b->value_len++] = ' ';
        memcpy(v + b->value_len, s, n);
        b->value_len += n;
        v[b->value_len] = '\0';
        b->value = v;
        return 0;
}

static size_t table_trim_end(const char *s, size_t n) {
        while (n > 0 && isspace((unsigned char) s[n - 1]))
                n--;
        return n;
}

static int table_parse_line(TableBuilder *b, unsigned line, const char *l, size_t n) {
        size_t i = 0, klen;
        int r;

        n = table_trim_end(l, n);
        if (memchr(l, '\0', n)) {
                table_report(b, line, "error", "line contains a NUL byte");
                return -EINVAL;
        }
        while (i < n && isspace((unsigned char) l[i]))
                i++;
        if (i == n || l[i] == '#')
                return 0; /* blank or comment; does not end an entry */

        if (i > 0) {
                /* Continuation of the previous entry's value. */
                if (b->key_line == 0) {
                        table_report(b, line, "error",
                                     "continuation line (starting with white space) without "
                                     "an entry before it");
                        return -EINVAL;
                }
                r = table_append_value(b, l + i, n - i);
                if (r == -E2BIG) {
                        table_report(b, line, "error", "value is too long");
                        return -EINVAL;
                }
                return r;
        }

        r = table_flush(b);
        if (r < 0)
                return r;

        size_t kstart = 0;
        if (b->format == TABLE_ALIASES) {
                const char *colon = memchr(l, ':', n);
                if (!colon) {
                        table_report(b, line, "error", "expected \"name: value\"");
                        return -EINVAL;
                }
                klen = table_trim_end(l, (size_t) (colon - l));
                i = (size_t) (colon - l) + 1;
                /* A quoted name keeps its quotes out of the key. */
                if (klen >= 2 && l[0] == '"' && l[klen - 1] == '"') {
                        kstart = 1;
                        klen -= 2;
                }
        } else {
                klen = 0;
                while (klen < n && !isspace((unsigned char) l[klen]))
                        klen++;
                i = klen;
        }
        if (klen == 0) {
                table_report(b, line, "error", "empty key");
                return -EINVAL;
        }
        if (klen > TABLE_KEY_MAX) {
                table_report(b, line, "error", "key is too long");
                return -EINVAL;
        }
        for (size_t j = 0; j < klen; j++)
                b->key[j] = (char) tolower((unsigned char) l[kstart + j]);
        b->key[klen] = '\0';

        while (i < n && isspace((unsigned char) l[i]))
                i++;
        if (i == n && b->format == TABLE_MAP) {
                table_report(b, line, "error", "expected \"key value\"");
                return -EINVAL;
        }
        b->key_line = line;
        r = table_append_value(b, l + i, n - i);
        if (r == -E2BIG) {
                table_report(b, line, "error", "value is too long");
                return -EINVAL;
        }
        return r;
}

static int table_parse(TableBuilder *b, const char *text, size_t size) {
        unsigned line = 0;
        int r;

        for (size_t pos = 0; pos < size;) {
                const char *nl = memchr(text + pos, '\n', size - pos);
                size_t n = nl ? (size_t) (nl - (text + pos)) : size - pos;

                line++;
                r = table_parse_line(b, line, text + pos, n);
                if (r < 0)
                        return r;
                pos += n + (nl ? 1 : 0);
        }
        r = table_flush(b);
        if (r < 0)
                return r;
        return b->n_entries;
}

int table_build(const char *source_path, TableFormat format, FILE *err) {
        _cleanup_free_ char *cdb_path = NULL, *tmp_path = NULL;
        _cleanup_close_ int src = -EBADF, out = -EBADF;
        TableBuilder b = { .source = source_path, .format = format, .err = err };
        struct stat st;
        void *map = NULL;
        int r, n;

        if (format < 0 || format >= _TABLE_FORMAT_MAX || !source_path || source_path[0] != '/')
                return -EINVAL;
        cdb_path = table_path(source_path, TABLE_SUFFIX);
        tmp_path = table_path(source_path, TABLE_TMP_SUFFIX);
        if (!cdb_path || !tmp_path)
                return -ENOMEM;

        src = open(source_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (src < 0) {
                r = negative_errno();
                if (err)
                        fprintf(err, "%s: %s\n", source_path, strerror(-r));
                return r;
        }
        if (fstat(src, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size > TABLE_SOURCE_MAX) {
                if (err)
                        fprintf(err, "%s: not a regular file of at most %u MiB\n", source_path,
                                TABLE_SOURCE_MAX >> 20);
                return -EINVAL;
        }
        if (st.st_size > 0) {
                map = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, src, 0);
                if (map == MAP_FAILED)
                        return negative_errno();
        }

        /* O_EXCL: two builders at once fail instead of mixing their output;
         * a temporary file left by a crash is replaced. */
        (void) unlink(tmp_path);
        /* Read-write: tinycdb reads back earlier records to find duplicates. */
        out = open(tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                   st.st_mode & 07777 & ~(mode_t) 0111);
        if (out < 0) {
                r = negative_errno();
                goto finish;
        }
        /* Owner and mode of the source: a secret source stays secret. */
        if (fchown(out, st.st_uid, st.st_gid) < 0 && errno != EPERM) {
                r = negative_errno();
                goto finish;
        }
        if (fchmod(out, st.st_mode & 07777 & ~(mode_t) 0111) < 0) {
                r = negative_errno();
                goto finish;
        }
        if (cdb_make_start(&b.cm, out) < 0) {
                r = negative_errno();
                goto finish;
        }
        n = table_parse(&b, map ?: "", (size_t) st.st_size);
        free(b.value);
        /* cdb_make_finish frees what cdb_make_put allocated, so it always runs. */
        r = cdb_make_finish(&b.cm) < 0 ? negative_errno() : 0;
        if (n < 0)
                r = n;
        if (r == 0 && fsync(out) < 0)
                r = negative_errno();
        if (r == 0 && rename(tmp_path, cdb_path) < 0)
                r = negative_errno();
        if (r == 0) {
                /* The rename is durable once the directory is. */
                _cleanup_free_ char *dir = strdup(source_path);
                char *slash;
                if (!dir) {
                        r = -ENOMEM;
                        goto finish;
                }
                slash = strrchr(dir, '/');
                if (slash == dir)
                        slash[1] = '\0';
                else
                        *slash = '\0';
                _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd >= 0)
                        (void) fsync(dfd);
                r = n;
        }
finish:
        if (r < 0) {
                (void) unlink(tmp_path);
                if (err && r != -EINVAL)
                        fprintf(err, "%s: %s\n", cdb_path, strerror(-r));
        }
        if (map)
                (void) munmap(map, (size_t) st.st_size);
        return r;
}
