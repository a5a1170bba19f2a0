/* The spool file format: one immutable tinycdb file per message, written
 * durably (tmp + fsync + rename + directory fsync), plus an append-only state
 * file of per-recipient results. See spool.h for the keys and records. */
#include <cdb.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "spool.h"

/* Longest envelope string we write or accept (HELO, ORCPT, client name...):
 * far above what SMTP allows, low enough to bound what a reader allocates. */
#define SPOOL_FIELD_MAX 4096u
/* tinycdb stores offsets as u32 and refuses files of 4 GiB or more; each
 * record costs 8 bytes of header plus 16 of hash table. */
#define SPOOL_CDB_HEADER 2048u
#define SPOOL_CDB_RECORD_OVERHEAD 24u
#define SPOOL_CDB_SIZE_MAX 0xfffffff0ull
/* A state file holds a few lines per attempt; anything bigger is not ours. */
#define SPOOL_STATE_FILE_MAX (64u * 1024u * 1024u)
/* "R <i> <status> <usec> <dsn> <relay> <text>\n" with every field at its maximum. */

const char *delivery_status_to_string(DeliveryStatus s) {
        switch (s) {
        case DELIVERY_NONE:
                return "pending";
        case DELIVERY_DELIVERED:
                return "sent";
        case DELIVERY_BOUNCED:
                return "bounced";
        case DELIVERY_DEFERRED:
                return "deferred";
        default:
                return NULL;
        }
}

void spool_envelope_done(SpoolEnvelope *e) {
        if (!e)
                return;
        free(e->id);
        free(e->sender);
        for (size_t i = 0; e->rcpts && i < e->n_rcpts; i++) {
                free(e->rcpts[i].addr);
                free(e->rcpts[i].notify);
                free(e->rcpts[i].orcpt);
        }
        free(e->rcpts);
        free(e->client_addr);
        free(e->client_name);
        free(e->helo);
        free(e->proto);
        free(e->auth_user);
        free(e->submit_uid);
        free(e->envid);
        free(e->ret);
        free(e->body_type);
        *e = (SpoolEnvelope) {};
}

/* Strict unsigned decimal: digits only, no sign, no leading zero, no overflow. */
static int parse_u64(const char *p, size_t n, uint64_t *ret) {
        uint64_t v = 0;

        if (n == 0 || (n > 1 && p[0] == '0'))
                return -EBADMSG;
        for (size_t i = 0; i < n; i++) {
                if (p[i] < '0' || p[i] > '9')
                        return -EBADMSG;
                if (v > (UINT64_MAX - (uint64_t) (p[i] - '0')) / 10)
                        return -EBADMSG;
                v = v * 10 + (uint64_t) (p[i] - '0');
        }
        *ret = v;
        return 0;
}

static int path_join(char *buf, size_t size, const char *dir, const char *id, const char *suffix) {
        int l = snprintf(buf, size, "%s/%s%s", dir, id, suffix);

        if (l < 0 || (size_t) l >= size)
                return -ENAMETOOLONG;
        return 0;
}

/* ---- writing ---- */

typedef struct CdbField {
        char key[32];
        const void *val;
        size_t len;
} CdbField;

typedef struct CdbFields {
        CdbField *v;
        size_t n, allocated;
} CdbFields;

static int fields_add(CdbFields *f, const char *key, const void *val, size_t len) {
        CdbField *x;
        int l;

        if (f->n >= f->allocated) {
                size_t a = f->allocated ? f->allocated * 2 : 32;
                CdbField *v = reallocarray_safe(f->v, a, sizeof(CdbField));

                if (!v)
                        return -ENOMEM;
                f->v = v;
                f->allocated = a;
        }
        x = &f->v[f->n];
        l = snprintf(x->key, sizeof(x->key), "%s", key);
        if (l < 0 || (size_t) l >= sizeof(x->key))
                return -EINVAL;
        x->val = val;
        x->len = len;
        f->n++;
        return 0;
}

/* Adds a string field; NULL means absent (unless required). */
static int fields_add_str(CdbFields *f, const char *key, const char *s, bool required) {
        size_t l;

        if (!s)
                return required ? -EINVAL : 0;
        l = strlen(s);
        if (l > SPOOL_FIELD_MAX)
                return -EINVAL;
        return fields_add(f, key, s, l);
}

static int fields_add_indexed(CdbFields *f, const char *prefix, size_t i, const char *s,
                              bool required) {
        char key[32];
        int l = snprintf(key, sizeof(key), "%s.%zu", prefix, i);

        if (l < 0 || (size_t) l >= sizeof(key))
                return -EINVAL;
        return fields_add_str(f, key, s, required);
}

static int write_cdb(int fd, const CdbFields *f) {
        struct cdb_make cm;
        int r = 0;

        if (cdb_make_start(&cm, fd) < 0)
                return negative_errno();
        for (size_t i = 0; i < f->n; i++)
                if (cdb_make_add(&cm, f->v[i].key, (unsigned) strlen(f->v[i].key), f->v[i].val,
                                 (unsigned) f->v[i].len) < 0) {
                        r = negative_errno();
                        break;
                }
        /* cdb_make_finish also frees what cdb_make_add allocated, so it runs on
         * the error path too; the file is discarded then. */
        if (cdb_make_finish(&cm) < 0 && r == 0)
                r = negative_errno();
        return r;
}

/* Builds the CDB records of e and writes them to a new tmp/<id>, then asks
 * the kernel to start writing the pages back (so that when several files are
 * fsynced one after the other, the first journal commit carries them all). */
int spool_stage(int spool_dirfd, const SpoolEnvelope *e, const void *body, size_t body_len,
                SpoolStaged *ret) {
        char nbuf[3][24];
        CdbFields f = {};
        _cleanup_close_ int tmpdir = -EBADF, fd = -EBADF;
        uint64_t total = SPOOL_CDB_HEADER;
        int r;

        if (!e || !spool_id_valid(e->id) || !e->sender || e->n_rcpts == 0 ||
            e->n_rcpts > SPOOL_RCPT_MAX || !e->rcpts || (!body && body_len > 0) || !ret)
                return -EINVAL;
        /* Checked before anything is built: the sum below must not wrap. */
        if (body_len > SPOOL_CDB_SIZE_MAX)
                return -EFBIG;

        (void) snprintf(nbuf[0], sizeof(nbuf[0]), "%zu", e->n_rcpts);
        (void) snprintf(nbuf[1], sizeof(nbuf[1]), "%" PRIu64, e->arrival_usec);
        (void) snprintf(nbuf[2], sizeof(nbuf[2]), "%zu", body_len);

        if ((r = fields_add_str(&f, "version", SPOOL_VERSION, true)) < 0 ||
            (r = fields_add_str(&f, "id", e->id, true)) < 0 ||
            (r = fields_add_str(&f, "sender", e->sender, true)) < 0 ||
            (r = fields_add_str(&f, "rcpt_count", nbuf[0], true)) < 0)
                goto out;
        for (size_t i = 0; i < e->n_rcpts; i++)
                if ((r = fields_add_indexed(&f, "rcpt", i, e->rcpts[i].addr, true)) < 0 ||
                    (r = fields_add_indexed(&f, "notify", i, e->rcpts[i].notify, false)) < 0 ||
                    (r = fields_add_indexed(&f, "orcpt", i, e->rcpts[i].orcpt, false)) < 0)
                        goto out;
        if ((r = fields_add_str(&f, "arrival", nbuf[1], true)) < 0 ||
            (r = fields_add_str(&f, "client_addr", e->client_addr, false)) < 0 ||
            (r = fields_add_str(&f, "client_name", e->client_name, false)) < 0 ||
            (r = fields_add_str(&f, "helo", e->helo, false)) < 0 ||
            (r = fields_add_str(&f, "proto", e->proto, false)) < 0 ||
            (r = fields_add_str(&f, "auth_user", e->auth_user, false)) < 0 ||
            (r = fields_add_str(&f, "submit_uid", e->submit_uid, false)) < 0 ||
            (r = fields_add_str(&f, "envid", e->envid, false)) < 0 ||
            (r = fields_add_str(&f, "ret", e->ret, false)) < 0 ||
            (r = fields_add_str(&f, "body_type", e->body_type, false)) < 0 ||
            (r = fields_add_str(&f, "smtputf8", e->smtputf8 ? "1" : "0", true)) < 0 ||
            (r = fields_add_str(&f, "size", nbuf[2], true)) < 0)
                goto out;
        /* The body last: the envelope then sits in the first pages of the file. */
        if ((r = fields_add(&f, "body", body ? body : "", body_len)) < 0)
                goto out;

        for (size_t i = 0; i < f.n; i++)
                total += SPOOL_CDB_RECORD_OVERHEAD + strlen(f.v[i].key) + f.v[i].len;
        if (total > SPOOL_CDB_SIZE_MAX) {
                r = -EFBIG;
                goto out;
        }

        tmpdir = openat(spool_dirfd, SPOOL_DIR_TMP, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (tmpdir < 0) {
                r = negative_errno();
                goto out;
        }
        fd = openat(tmpdir, e->id, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
                r = negative_errno();
                goto out;
        }
        r = write_cdb(fd, &f);
        if (r < 0) {
                (void) unlinkat(tmpdir, e->id, 0);
                goto out;
        }
        /* Only a hint: fsync in spool_commit is what makes the file durable. */
        (void) sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
        *ret = (SpoolStaged) { .fd = TAKE_FD(fd), .result = 0, .synced = false };
        memcpy(ret->id, e->id, strlen(e->id) + 1);
        r = 0;
out:
        free(f.v);
        return r;
}

void spool_staged_discard(int spool_dirfd, SpoolStaged *s) {
        char path[SPOOL_ID_MAX + 16];

        if (s->fd < 0)
                return;
        if (path_join(path, sizeof(path), SPOOL_DIR_TMP, s->id, "") >= 0)
                (void) unlinkat(spool_dirfd, path, 0);
        closep(&s->fd);
        s->fd = -EBADF;
}

static int spool_commit_full(int spool_dirfd, SpoolStaged *v, size_t n, bool dirsync) {
        _cleanup_close_ int tmpdir = -EBADF, queuedir = -EBADF;
        size_t renamed = 0;
        int r = 0;

        tmpdir = openat(spool_dirfd, SPOOL_DIR_TMP, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (tmpdir < 0)
                r = negative_errno();
        if (r >= 0) {
                queuedir = openat(spool_dirfd, SPOOL_DIR_QUEUE,
                                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (queuedir < 0)
                        r = negative_errno();
        }
        if (r < 0) {
                for (size_t i = 0; i < n; i++) {
                        spool_staged_discard(spool_dirfd, &v[i]);
                        v[i].result = r;
                }
                return r;
        }
        /* Every file is on stable storage before its name appears in queue/, so
         * a crash never leaves a truncated file there. */
        for (size_t i = 0; i < n; i++) {
                if (v[i].fd < 0) {
                        if (v[i].result >= 0)
                                v[i].result = -EBADF;
                        continue;
                }
                if (v[i].synced && v[i].result < 0)
                        (void) unlinkat(tmpdir, v[i].id, 0);
                else if ((!v[i].synced && fsync(v[i].fd) < 0) ||
                         renameat2(tmpdir, v[i].id, queuedir, v[i].id, RENAME_NOREPLACE) < 0) {
                        v[i].result = negative_errno();
                        (void) unlinkat(tmpdir, v[i].id, 0);
                } else {
                        v[i].result = 0;
                        renamed++;
                }
                closep(&v[i].fd);
                v[i].fd = -EBADF;
        }
        if (renamed == 0 || !dirsync)
                return 0;
        /* One directory fsync for the whole batch: only after it is any of
         * them acknowledged. If it fails none may appear later. */
        if (fsync(queuedir) < 0) {
                r = negative_errno();
                for (size_t i = 0; i < n; i++)
                        if (v[i].result >= 0) {
                                (void) unlinkat(queuedir, v[i].id, 0);
                                v[i].result = r;
                        }
                return r;
        }
        return 0;
}

int spool_commit(int spool_dirfd, SpoolStaged *v, size_t n) {
        return spool_commit_full(spool_dirfd, v, n, true);
}

static int spool_write_full(int spool_dirfd, const SpoolEnvelope *e, const void *body,
                            size_t body_len, bool dirsync) {
        SpoolStaged s;
        int r;

        r = spool_stage(spool_dirfd, e, body, body_len, &s);
        if (r < 0)
                return r;
        (void) spool_commit_full(spool_dirfd, &s, 1, dirsync);
        return s.result;
}

int spool_write(int spool_dirfd, const SpoolEnvelope *e, const void *body, size_t body_len) {
        return spool_write_full(spool_dirfd, e, body, body_len, true);
}

int spool_write_nodirsync(int spool_dirfd, const SpoolEnvelope *e, const void *body,
                          size_t body_len) {
        return spool_write_full(spool_dirfd, e, body, body_len, false);
}

static int fsync_subdir(int spool_dirfd, const char *name) {
        _cleanup_close_ int fd = openat(spool_dirfd, name,
                                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        if (fd < 0)
                return negative_errno();
        if (fsync(fd) < 0)
                return negative_errno();
        return 0;
}

int spool_sync_queue_dir(int spool_dirfd) {
        return fsync_subdir(spool_dirfd, SPOOL_DIR_QUEUE);
}

/* ---- reading ---- */

SpoolFile *spool_close(SpoolFile *f) {
        if (!f)
                return NULL;
        if (f->mapped)
                (void) munmap((void *) f->map, f->size);
        else
                free((void *) f->map);
        if (f->fd >= 0)
                (void) close(f->fd);
        free(f);
        return NULL;
}

/* Every lookup checks its offsets; this also rejects a file whose table of
 * contents points outside it, so a broken file is found when opened. */
static bool cdb_toc_valid(const uint8_t *map, size_t size) {
        for (unsigned i = 0; i < 256; i++) {
                uint64_t pos = cdb_unpack(map + i * 8);
                uint64_t len = cdb_unpack(map + i * 8 + 4);

                if (pos < SPOOL_CDB_HEADER || pos > size || len * 8 > size - pos)
                        return false;
        }
        return true;
}

/* Most messages are small: reading one costs less than mapping it (page
 * faults, and an unmap that flushes other CPUs' TLBs), and queued and
 * deliverd open each file at every delivery. */
#define SPOOL_READ_MAX (256u * 1024u)

static int spool_load(SpoolFile *f, size_t size) {
        uint8_t *buf;
        void *m;

        if (size > SPOOL_READ_MAX) {
                m = mmap(NULL, size, PROT_READ, MAP_SHARED, f->fd, 0);
                if (m == MAP_FAILED)
                        return errno == ENOMEM ? -ENOMEM : -EBADMSG;
                f->map = m;
                f->size = size;
                f->mapped = true;
                return 0;
        }
        buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        for (size_t done = 0; done < size;) {
                ssize_t n = pread(f->fd, buf + done, size - done, (off_t) done);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        int r = n < 0 ? negative_errno() : -EBADMSG; /* shrank under us */

                        free(buf);
                        return r;
                }
                done += (size_t) n;
        }
        f->map = buf;
        f->size = size;
        return 0;
}

/* The CDB lookup (D. J. Bernstein's format with tinycdb's hash, as
 * cdb_make wrote it) in a file whose table of contents cdb_toc_valid()
 * accepted: the first record with key, every record offset checked against
 * the file. 1 found, 0 not found, -EBADMSG for a damaged record. */
static int spool_cdb_find(const uint8_t *map, size_t size, const char *key, size_t kl,
                          size_t *ret_pos, size_t *ret_len) {
        unsigned h = cdb_hash(key, (unsigned) kl);
        uint64_t tpos = cdb_unpack(map + (h & 255u) * 8), n = cdb_unpack(map + (h & 255u) * 8 + 4);

        if (n == 0)
                return 0;
        for (uint64_t k = 0, i = (h >> 8) % n; k < n; k++, i = i + 1 == n ? 0 : i + 1) {
                const uint8_t *slot = map + tpos + i * 8;
                uint64_t rpos = cdb_unpack(slot + 4), rk, rv;

                if (rpos == 0)
                        return 0;
                if (cdb_unpack(slot) != h)
                        continue;
                if (rpos > size || size - rpos < 8)
                        return -EBADMSG;
                rk = cdb_unpack(map + rpos);
                rv = cdb_unpack(map + rpos + 4);
                if (rk > size - rpos - 8 || rv > size - rpos - 8 - rk)
                        return -EBADMSG;
                if (rk == kl && memcmp(map + rpos + 8, key, kl) == 0) {
                        *ret_pos = rpos + 8 + rk;
                        *ret_len = rv;
                        return 1;
                }
        }
        return 0;
}

static int spool_open_internal(int fd, const char *expect_id, SpoolFile **ret) {
        _cleanup_(spool_closep) SpoolFile *f = NULL;
        struct stat st;
        const uint8_t *v;
        size_t vl;
        int r;

        f = new0(SpoolFile, 1);
        if (!f) {
                (void) close(fd);
                return -ENOMEM;
        }
        f->fd = fd;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode) || st.st_size < (off_t) SPOOL_CDB_HEADER ||
            (uint64_t) st.st_size > SPOOL_CDB_SIZE_MAX)
                return -EBADMSG;

        r = spool_load(f, (size_t) st.st_size);
        if (r < 0)
                return r;
        if (!cdb_toc_valid(f->map, f->size))
                return -EBADMSG;

        r = spool_get(f, "version", &v, &vl);
        if (r < 0)
                return -EBADMSG;
        if (vl != strlen(SPOOL_VERSION) || memcmp(v, SPOOL_VERSION, vl) != 0)
                return -EBADMSG;
        r = spool_get(f, "id", &v, &vl);
        if (r < 0 || vl >= SPOOL_ID_MAX)
                return -EBADMSG;
        {
                char id[SPOOL_ID_MAX];

                memcpy(id, v, vl);
                id[vl] = 0;
                if (strlen(id) != vl || !spool_id_valid(id))
                        return -EBADMSG;
                if (expect_id && !streq(id, expect_id))
                        return -EBADMSG;
        }

        *ret = TAKE_PTR(f);
        return 0;
}

int spool_open(int spool_dirfd, const char *id, SpoolFile **ret) {
        char path[SPOOL_ID_MAX + 16];
        int fd, r;

        if (!spool_id_valid(id))
                return -EINVAL;
        r = path_join(path, sizeof(path), SPOOL_DIR_QUEUE, id, "");
        if (r < 0)
                return r;
        fd = openat(spool_dirfd, path, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                return errno == ELOOP ? -EBADMSG : negative_errno();
        return spool_open_internal(fd, id, ret);
}

int spool_open_fd(int fd, SpoolFile **ret) {
        if (fd < 0)
                return -EBADF;
        return spool_open_internal(fd, NULL, ret);
}

int spool_get(SpoolFile *f, const char *key, const uint8_t **ret, size_t *ret_len) {
        size_t kl = strlen(key), pos, len;
        int r;

        if (kl > UINT32_MAX)
                return -ENOENT;
        r = spool_cdb_find(f->map, f->size, key, kl, &pos, &len);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOENT;
        *ret = f->map + pos;
        *ret_len = len;
        return 0;
}

/* A NUL-terminated copy of key's value. -ENOENT when absent, -EBADMSG when it
 * holds a NUL byte or is too long. */
static int spool_get_str(SpoolFile *f, const char *key, char **ret) {
        const uint8_t *v;
        size_t l;
        char *s;
        int r;

        r = spool_get(f, key, &v, &l);
        if (r < 0)
                return r;
        if (l > SPOOL_FIELD_MAX || (l > 0 && memchr(v, 0, l)))
                return -EBADMSG;
        s = memdup_str(v, l);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int spool_get_opt_str(SpoolFile *f, const char *key, char **ret) {
        int r = spool_get_str(f, key, ret);

        if (r == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        return r;
}

static int spool_get_u64(SpoolFile *f, const char *key, uint64_t *ret) {
        const uint8_t *v;
        size_t l;
        int r;

        r = spool_get(f, key, &v, &l);
        if (r < 0)
                return r;
        return parse_u64((const char *) v, l, ret);
}

int spool_read_envelope(SpoolFile *f, SpoolEnvelope *ret) {
        _cleanup_(spool_envelope_done) SpoolEnvelope e = {};
        const uint8_t *v, *body;
        size_t vl, body_len;
        uint64_t n, size;
        int r;

        /* Every required field missing is a broken file, not "not found". */
#define REQUIRED(x) do { r = (x); if (r < 0) return r == -ENOMEM ? r : -EBADMSG; } while (0)
        REQUIRED(spool_get(f, "version", &v, &vl));
        if (vl != strlen(SPOOL_VERSION) || memcmp(v, SPOOL_VERSION, vl) != 0)
                return -EBADMSG;
        REQUIRED(spool_get_str(f, "id", &e.id));
        if (!spool_id_valid(e.id))
                return -EBADMSG;
        REQUIRED(spool_get_str(f, "sender", &e.sender));
        REQUIRED(spool_get_u64(f, "rcpt_count", &n));
        if (n == 0 || n > SPOOL_RCPT_MAX)
                return -EBADMSG;
        e.rcpts = new0(SpoolRcpt, n);
        if (!e.rcpts)
                return -ENOMEM;
        e.n_rcpts = n;
        for (size_t i = 0; i < n; i++) {
                char key[32];

                (void) snprintf(key, sizeof(key), "rcpt.%zu", i);
                REQUIRED(spool_get_str(f, key, &e.rcpts[i].addr));
                (void) snprintf(key, sizeof(key), "notify.%zu", i);
                REQUIRED(spool_get_opt_str(f, key, &e.rcpts[i].notify));
                (void) snprintf(key, sizeof(key), "orcpt.%zu", i);
                REQUIRED(spool_get_opt_str(f, key, &e.rcpts[i].orcpt));
        }
        REQUIRED(spool_get_u64(f, "arrival", &e.arrival_usec));
        REQUIRED(spool_get_opt_str(f, "client_addr", &e.client_addr));
        REQUIRED(spool_get_opt_str(f, "client_name", &e.client_name));
        REQUIRED(spool_get_opt_str(f, "helo", &e.helo));
        REQUIRED(spool_get_opt_str(f, "proto", &e.proto));
        REQUIRED(spool_get_opt_str(f, "auth_user", &e.auth_user));
        REQUIRED(spool_get_opt_str(f, "submit_uid", &e.submit_uid));
        REQUIRED(spool_get_opt_str(f, "envid", &e.envid));
        REQUIRED(spool_get_opt_str(f, "ret", &e.ret));
        REQUIRED(spool_get_opt_str(f, "body_type", &e.body_type));
        r = spool_get(f, "smtputf8", &v, &vl);
        if (r == 0) {
                if (vl != 1 || (v[0] != '0' && v[0] != '1'))
                        return -EBADMSG;
                e.smtputf8 = v[0] == '1';
        } else if (r != -ENOENT)
                return -EBADMSG;
        /* "size" must describe the body actually stored: a mismatch means the
         * file is not what was written. */
        REQUIRED(spool_get_u64(f, "size", &size));
        REQUIRED(spool_get_body(f, &body, &body_len));
        if (size != body_len)
                return -EBADMSG;
#undef REQUIRED

        *ret = e;
        e = (SpoolEnvelope) {};
        return 0;
}

int spool_get_body(SpoolFile *f, const uint8_t **ret, size_t *ret_len) {
        return spool_get(f, "body", ret, ret_len);
}

/* ---- state file ---- */

void spool_state_done(SpoolState *s) {
        if (!s)
                return;
        free(s->rcpts);
        *s = (SpoolState) {};
}

/* Splits the next space-separated token off [*p, end). */
static bool next_token(const char **p, const char *end, const char **ret, size_t *ret_len) {
        const char *s = *p, *sp;

        if (s >= end)
                return false;
        sp = memchr(s, ' ', (size_t) (end - s));
        if (!sp)
                sp = end;
        if (sp == s)
                return false; /* empty token: two spaces or a leading space */
        *ret = s;
        *ret_len = (size_t) (sp - s);
        *p = sp < end ? sp + 1 : end;
        return true;
}

static bool text_ok(const char *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) p[i] < 0x20 || p[i] == 0x7f)
                        return false;
        return true;
}

static int copy_field(char *dst, size_t size, const char *p, size_t n) {
        if (n >= size || !text_ok(p, n))
                return -EBADMSG;
        memcpy(dst, p, n);
        dst[n] = 0;
        return 0;
}

static int state_parse_result(const char *p, const char *end, SpoolState *s) {
        const char *t;
        size_t tl;
        uint64_t idx, when;
        DeliveryStatus st;
        SpoolRcptState *rs, tmp = {};

        if (!next_token(&p, end, &t, &tl) || parse_u64(t, tl, &idx) < 0 || idx >= s->n_rcpts)
                return -EBADMSG;
        if (!next_token(&p, end, &t, &tl) || tl != 1)
                return -EBADMSG;
        switch (t[0]) {
        case 'D':
                st = DELIVERY_DELIVERED;
                break;
        case 'B':
                st = DELIVERY_BOUNCED;
                break;
        case 'F':
                st = DELIVERY_DEFERRED;
                break;
        default:
                return -EBADMSG;
        }
        if (!next_token(&p, end, &t, &tl) || parse_u64(t, tl, &when) < 0)
                return -EBADMSG;
        if (!next_token(&p, end, &t, &tl) || copy_field(tmp.dsn, sizeof(tmp.dsn), t, tl) < 0)
                return -EBADMSG;
        if (!next_token(&p, end, &t, &tl) || copy_field(tmp.relay, sizeof(tmp.relay), t, tl) < 0)
                return -EBADMSG;
        /* The text is the rest of the line, spaces included, possibly empty. */
        if (copy_field(tmp.text, sizeof(tmp.text), p, (size_t) (end - p)) < 0)
                return -EBADMSG;
        /* "-" stands for an empty dsn or relay, which would otherwise leave an
         * empty field. */
        if (streq(tmp.dsn, "-"))
                tmp.dsn[0] = 0;
        if (streq(tmp.relay, "-"))
                tmp.relay[0] = 0;
        tmp.status = st;
        tmp.when_usec = when;

        rs = &s->rcpts[idx];
        /* Promise 2: once delivered or bounced, a recipient stays so. */
        if (rs->status == DELIVERY_DELIVERED || rs->status == DELIVERY_BOUNCED)
                return 0;
        *rs = tmp;
        return 0;
}

static int state_parse_line(const char *p, const char *end, SpoolState *s) {
        const char *t;
        size_t tl;
        uint64_t a, b;

        if (end - p < 2 || p[1] != ' ')
                return -EBADMSG;
        switch (p[0]) {
        case 'R':
                return state_parse_result(p + 2, end, s);
        case 'A':
                p += 2;
                if (!next_token(&p, end, &t, &tl) || parse_u64(t, tl, &a) < 0)
                        return -EBADMSG;
                if (!next_token(&p, end, &t, &tl) || parse_u64(t, tl, &b) < 0 || p != end)
                        return -EBADMSG;
                /* the previous token ended the line: no trailing space allowed */
                if (t + tl != end)
                        return -EBADMSG;
                s->attempts++;
                s->last_attempt_usec = a;
                s->next_attempt_usec = b;
                return 0;
        case 'H':
                if (end - p != 3 || (p[2] != '0' && p[2] != '1'))
                        return -EBADMSG;
                s->hold = p[2] == '1';
                return 0;
        default:
                return -EBADMSG;
        }
}

int spool_state_parse(const void *buf, size_t len, size_t n_rcpts, SpoolState *ret) {
        _cleanup_(spool_state_done) SpoolState s = {};
        const char *p = buf, *end = p + len;

        if (n_rcpts > SPOOL_RCPT_MAX)
                return -EINVAL;
        if (!buf && len > 0)
                return -EINVAL;
        s.rcpts = new0(SpoolRcptState, n_rcpts);
        if (!s.rcpts)
                return -ENOMEM;
        s.n_rcpts = n_rcpts;

        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                int r;

                if (!nl)
                        break; /* torn last write: the record never happened */
                r = state_parse_line(p, nl, &s);
                if (r < 0)
                        return r;
                p = nl + 1;
        }

        *ret = s;
        s = (SpoolState) {};
        return 0;
}

int spool_state_load(int spool_dirfd, const char *id, size_t n_rcpts, SpoolState *ret) {
        char path[SPOOL_ID_MAX + 16];
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, allocated = 0;
        int r;

        if (!spool_id_valid(id))
                return -EINVAL;
        r = path_join(path, sizeof(path), SPOOL_DIR_QUEUE, id, SPOOL_STATE_SUFFIX);
        if (r < 0)
                return r;
        fd = openat(spool_dirfd, path, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT)
                        return spool_state_parse(NULL, 0, n_rcpts, ret);
                return negative_errno();
        }

        for (;;) {
                ssize_t n;

                if (len == allocated) {
                        size_t a = allocated ? allocated * 2 : 4096;
                        char *nb;

                        if (allocated >= SPOOL_STATE_FILE_MAX)
                                return -EFBIG;
                        nb = realloc(buf, a);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        allocated = a;
                }
                n = read(fd, buf + len, allocated - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        return spool_state_parse(buf, len, n_rcpts, ret);
}

/* Copies s into dst (size bytes with the NUL), replacing control characters
 * (CR/LF would forge records) by spaces; "-" when empty if dash. With
 * no_spaces, spaces become '_' too, for the single-token fields. */
static void sanitise(char *dst, size_t size, const char *s, bool no_spaces, bool dash) {
        size_t i = 0;

        for (; s && s[i] && i + 1 < size; i++) {
                unsigned char c = (unsigned char) s[i];

                if (c < 0x20 || c == 0x7f)
                        c = ' ';
                if (no_spaces && c == ' ')
                        c = '_';
                dst[i] = (char) c;
        }
        dst[i] = 0;
        if (dash && i == 0 && size >= 2) {
                dst[0] = '-';
                dst[1] = 0;
        }
}

/* After a crash in the middle of a write the file may end with a partial
 * line; appending to it would glue a good record onto garbage. Cut it off. */
static int state_trim_torn(int fd) {
        char tail[2 * SPOOL_STATE_LINE_MAX];
        struct stat st;
        off_t from;
        ssize_t n;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (st.st_size == 0)
                return 0;
        from = st.st_size > (off_t) sizeof(tail) ? st.st_size - (off_t) sizeof(tail) : 0;
        n = pread(fd, tail, (size_t) (st.st_size - from), from);
        if (n < 0)
                return negative_errno();
        if (n != st.st_size - from)
                return -EIO;
        if (tail[n - 1] == '\n')
                return 0;
        for (ssize_t i = n - 1; i >= 0; i--)
                if (tail[i] == '\n') {
                        if (ftruncate(fd, from + i + 1) < 0)
                                return negative_errno();
                        return 0;
                }
        if (from > 0)
                return -EBADMSG; /* a "line" longer than any record: not ours */
        if (ftruncate(fd, 0) < 0)
                return negative_errno();
        return 0;
}

static int state_append(int spool_dirfd, const char *id, const char *line, size_t len) {
        char path[SPOOL_ID_MAX + 16];
        _cleanup_close_ int fd = -EBADF;
        bool created = false;
        ssize_t n;
        int r;

        if (!spool_id_valid(id))
                return -EINVAL;
        r = path_join(path, sizeof(path), SPOOL_DIR_QUEUE, id, SPOOL_STATE_SUFFIX);
        if (r < 0)
                return r;

        /* O_RDWR rather than O_WRONLY: state_trim_torn() reads the tail. */
        fd = openat(spool_dirfd, path, O_RDWR | O_APPEND | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
                fd = openat(spool_dirfd, path,
                            O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                created = fd >= 0;
        }
        if (fd < 0)
                return negative_errno();

        if (!created) {
                r = state_trim_torn(fd);
                if (r < 0)
                        return r;
        }
        /* One write() per record, so a record is never interleaved. */
        do
                n = write(fd, line, len);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();
        if ((size_t) n != len) {
                (void) state_trim_torn(fd);
                return -EIO;
        }
        if (fsync(fd) < 0)
                return negative_errno();
        if (created)
                return spool_sync_queue_dir(spool_dirfd);
        return 0;
}

int spool_state_format_result(char line[static SPOOL_STATE_LINE_MAX], size_t rcpt_index,
                              DeliveryStatus status, uint64_t when_usec, const char *dsn,
                              const char *relay, const char *text) {
        SpoolRcptState s;
        char c;
        int l;

        switch (status) {
        case DELIVERY_DELIVERED:
                c = 'D';
                break;
        case DELIVERY_BOUNCED:
                c = 'B';
                break;
        case DELIVERY_DEFERRED:
                c = 'F';
                break;
        default:
                return -EINVAL;
        }
        if (rcpt_index >= SPOOL_RCPT_MAX)
                return -EINVAL;
        sanitise(s.dsn, sizeof(s.dsn), dsn, true, true);
        sanitise(s.relay, sizeof(s.relay), relay, true, true);
        sanitise(s.text, sizeof(s.text), text, false, false);

        l = snprintf(line, SPOOL_STATE_LINE_MAX, "R %zu %c %" PRIu64 " %s %s %s\n", rcpt_index, c,
                     when_usec, s.dsn, s.relay, s.text);
        if (l < 0 || (size_t) l >= SPOOL_STATE_LINE_MAX)
                return -ENOBUFS;
        return l;
}

int spool_state_append_result(int spool_dirfd, const char *id, size_t rcpt_index,
                              DeliveryStatus status, uint64_t when_usec,
                              const char *dsn, const char *relay, const char *text) {
        char line[SPOOL_STATE_LINE_MAX];
        int l = spool_state_format_result(line, rcpt_index, status, when_usec, dsn, relay, text);

        if (l < 0)
                return l;
        return state_append(spool_dirfd, id, line, (size_t) l);
}

int spool_state_append_records(int spool_dirfd, const char *id, const char *lines, size_t len) {
        if (len == 0 || lines[len - 1] != '\n')
                return -EINVAL;
        return state_append(spool_dirfd, id, lines, len);
}

int spool_state_append_attempt(int spool_dirfd, const char *id, uint64_t when_usec,
                               uint64_t next_usec) {
        char line[64];
        int l = snprintf(line, sizeof(line), "A %" PRIu64 " %" PRIu64 "\n", when_usec, next_usec);

        if (l < 0 || (size_t) l >= sizeof(line))
                return -ENOBUFS;
        return state_append(spool_dirfd, id, line, (size_t) l);
}

int spool_state_append_hold(int spool_dirfd, const char *id, bool hold) {
        return state_append(spool_dirfd, id, hold ? "H 1\n" : "H 0\n", 4);
}

/* ---- queue maintenance ---- */

static int spool_remove_full(int spool_dirfd, const char *id, bool sync) {
        char path[SPOOL_ID_MAX + 16];
        int r;

        if (!spool_id_valid(id))
                return -EINVAL;
        r = path_join(path, sizeof(path), SPOOL_DIR_QUEUE, id, "");
        if (r < 0)
                return r;
        if (unlinkat(spool_dirfd, path, 0) < 0 && errno != ENOENT)
                return negative_errno();
        r = path_join(path, sizeof(path), SPOOL_DIR_QUEUE, id, SPOOL_STATE_SUFFIX);
        if (r < 0)
                return r;
        if (unlinkat(spool_dirfd, path, 0) < 0 && errno != ENOENT)
                return negative_errno();
        return sync ? spool_sync_queue_dir(spool_dirfd) : 0;
}

int spool_remove(int spool_dirfd, const char *id) {
        return spool_remove_full(spool_dirfd, id, true);
}

int spool_remove_delivered(int spool_dirfd, const char *id) {
        return spool_remove_full(spool_dirfd, id, false);
}

int spool_move_corrupt(int spool_dirfd, const char *id) {
        char from[SPOOL_ID_MAX + 16], to[SPOOL_ID_MAX + 16];
        int r;

        if (!spool_id_valid(id))
                return -EINVAL;
        if ((r = path_join(from, sizeof(from), SPOOL_DIR_QUEUE, id, "")) < 0 ||
            (r = path_join(to, sizeof(to), SPOOL_DIR_CORRUPT, id, "")) < 0)
                return r;
        if (renameat(spool_dirfd, from, spool_dirfd, to) < 0)
                return negative_errno();
        if ((r = path_join(from, sizeof(from), SPOOL_DIR_QUEUE, id, SPOOL_STATE_SUFFIX)) < 0 ||
            (r = path_join(to, sizeof(to), SPOOL_DIR_CORRUPT, id, SPOOL_STATE_SUFFIX)) < 0)
                return r;
        if (renameat(spool_dirfd, from, spool_dirfd, to) < 0 && errno != ENOENT)
                return negative_errno();
        r = fsync_subdir(spool_dirfd, SPOOL_DIR_CORRUPT);
        if (r < 0)
                return r;
        return spool_sync_queue_dir(spool_dirfd);
}

int spool_prepare(int spool_dirfd) {
        static const char *const dirs[] = { SPOOL_DIR_TMP, SPOOL_DIR_QUEUE, SPOOL_DIR_CORRUPT };

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
                if (mkdirat(spool_dirfd, dirs[i], 0700) < 0 && errno != EEXIST)
                        return negative_errno();
        return 0;
}

/* ---- queue ids ---- */

void spool_new_id(char buf[static SPOOL_ID_MAX]) {
        /* Process-wide so ids never repeat or go backwards, even if the clock
         * does; tern daemons are single-threaded. */
        static uint64_t last_sec, last_usec;
        struct timespec ts;
        uint64_t sec, usec;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        sec = (uint64_t) ts.tv_sec & 0xffffffffu;
        usec = (uint64_t) ts.tv_nsec / 1000;
        if (sec < last_sec || (sec == last_sec && usec <= last_usec)) {
                sec = last_sec;
                usec = last_usec + 1;
                if (usec >= 1000000) {
                        usec = 0;
                        sec++;
                }
        }
        last_sec = sec;
        last_usec = usec;
        (void) snprintf(buf, SPOOL_ID_MAX, "%08" PRIX64 "%05" PRIX64, sec & 0xffffffffu, usec);
}

bool spool_id_valid(const char *id) {
        size_t n;

        if (!id)
                return false;
        n = strnlen(id, SPOOL_ID_MAX);
        if (n < 13 || n > 31)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'F')))
                        return false;
        return true;
}
