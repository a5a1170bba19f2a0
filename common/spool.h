/* The spool file format. Each queued message is one immutable tinycdb file,
 * written once under tmp/, fsynced, renamed into queue/ and the directory
 * fsynced. What changes during delivery lives beside it in an append-only
 * state file "queue/<ID>.st", fsynced at each record.
 *
 * CDB keys (all values are raw bytes, numbers in decimal ASCII):
 *   "version"       "1"
 *   "id"            queue id
 *   "sender"        envelope sender, "" for the null sender
 *   "rcpt_count"    number of recipients N
 *   "rcpt.<i>"      recipient i (0..N-1), canonical address
 *   "notify.<i>"    DSN NOTIFY of recipient i (absent: default)
 *   "orcpt.<i>"     DSN ORCPT of recipient i (absent: none)
 *   "arrival"       usec since the epoch
 *   "client_addr", "client_name", "helo", "proto", "auth_user", "submit_uid",
 *   "envid", "ret", "body_type", "smtputf8"   (absent when unknown)
 *   "size"          length of "body"
 *   "body"          the message: headers and body, CRLF line ends, exactly as
 *                   received plus the Received: header smtpd put in front.
 *
 * State file records, one per line, appended and fsynced:
 *   "R <i> <status> <usec> <dsn> <relay> <text>\n"  result for recipient i
 *        status: D delivered, B bounced (final failure), F deferred (temporary)
 *   "A <usec> <next_usec>\n"  an attempt ended; next attempt not before next_usec
 *   "H <0|1>\n"               hold off/on
 * A final record (D or B) for a recipient is never followed by another delivery
 * of that recipient. A last line without '\n' (torn write) is ignored. */
#pragma once

#include <stdint.h>
#include <sys/types.h>
#include "util.h"

#define SPOOL_VERSION "1"
#define SPOOL_RCPT_MAX 10000u
#define SPOOL_DIR_TMP "tmp"
#define SPOOL_DIR_QUEUE "queue"
#define SPOOL_DIR_CORRUPT "corrupt"
#define SPOOL_STATE_SUFFIX ".st"

typedef enum DeliveryStatus {
        DELIVERY_NONE,          /* no final result yet */
        DELIVERY_DELIVERED,     /* 'D' */
        DELIVERY_BOUNCED,       /* 'B' */
        DELIVERY_DEFERRED,      /* 'F' */
        _DELIVERY_STATUS_MAX,
        _DELIVERY_STATUS_INVALID = -EINVAL,
} DeliveryStatus;

const char *delivery_status_to_string(DeliveryStatus s); /* "sent", "bounced", "deferred" */

/* The envelope as written into / read from a spool file. Strings are
 * NUL-terminated; unknown optional fields are NULL. */
typedef struct SpoolRcpt {
        char *addr;
        char *notify;
        char *orcpt;
} SpoolRcpt;

typedef struct SpoolEnvelope {
        char *id;
        char *sender;           /* "" = null sender */
        SpoolRcpt *rcpts;
        size_t n_rcpts;
        uint64_t arrival_usec;
        char *client_addr, *client_name, *helo, *proto, *auth_user, *submit_uid;
        char *envid, *ret, *body_type;
        bool smtputf8;
} SpoolEnvelope;

void spool_envelope_done(SpoolEnvelope *e); /* frees members, zeroes */

/* Writes envelope + body as the CDB file queue/<e->id> under the spool
 * directory fd: tmp/<id> (O_EXCL|O_NOFOLLOW|O_CLOEXEC, mode 0600), write, fsync,
 * renameat2(RENAME_NOREPLACE) to queue/<id>, fsync of queue/. The state file
 * is created by the first state record.
 * Returns 0 or -errno; on error nothing is left in queue/ and tmp/ is cleaned. */
int spool_write(int spool_dirfd, const SpoolEnvelope *e, const void *body, size_t body_len);

/* Variant for group commit: write + fsync the tmp file and rename it, but do not
 * fsync queue/; the caller fsyncs the directory once for a batch
 * (spool_sync_queue_dir) before acknowledging any message of the batch. */
int spool_write_nodirsync(int spool_dirfd, const SpoolEnvelope *e, const void *body, size_t body_len);
int spool_sync_queue_dir(int spool_dirfd);

/* An open, mapped spool file. */
typedef struct SpoolFile {
        int fd;
        const uint8_t *map;     /* the whole file: read into memory, or mapped */
        size_t size;
        bool mapped;            /* map is an mmap (large files), else malloc'd */
} SpoolFile;

/* Opens and maps queue/<id> read-only (O_NOFOLLOW). Returns 0, -ENOENT, or
 * -EBADMSG when the file is not a valid tern spool file. */
int spool_open(int spool_dirfd, const char *id, SpoolFile **ret);
/* Same from an fd someone passed us (deliverd); the fd is taken over. */
int spool_open_fd(int fd, SpoolFile **ret);
SpoolFile *spool_close(SpoolFile *f);
DEFINE_POINTER_CLEANUP(SpoolFile, spool_close);

/* Looks up key; on success *ret and *ret_len point into the mapping. 0, -ENOENT, -EBADMSG. */
int spool_get(SpoolFile *f, const char *key, const uint8_t **ret, size_t *ret_len);
/* Reads the whole envelope (not the body), validating every field
 * (version, id, rcpt_count <= SPOOL_RCPT_MAX, no NUL in strings). 0, -EBADMSG, -ENOMEM. */
int spool_read_envelope(SpoolFile *f, SpoolEnvelope *ret);
/* The body, pointing into the mapping. */
int spool_get_body(SpoolFile *f, const uint8_t **ret, size_t *ret_len);

/* Per-recipient state rebuilt from the state file. */
typedef struct SpoolRcptState {
        DeliveryStatus status;  /* last record for this recipient */
        uint64_t when_usec;
        char dsn[16];
        char relay[256];
        char text[512];
} SpoolRcptState;

typedef struct SpoolState {
        size_t n_rcpts;
        SpoolRcptState *rcpts;  /* n_rcpts entries */
        unsigned attempts;
        uint64_t last_attempt_usec;
        uint64_t next_attempt_usec;
        bool hold;
} SpoolState;

/* Parses a state file's bytes for a message with n_rcpts recipients (pure).
 * Malformed lines give -EBADMSG; a torn last line is ignored. A final status
 * (D/B) is never replaced by a later record. Returns 0 or -errno. */
int spool_state_parse(const void *buf, size_t len, size_t n_rcpts, SpoolState *ret);
void spool_state_done(SpoolState *s);

/* Reads queue/<id>.st (absent = all recipients pending). */
int spool_state_load(int spool_dirfd, const char *id, size_t n_rcpts, SpoolState *ret);

/* Appends one record to queue/<id>.st (created 0600 if absent) and fsyncs it
 * (and the directory when the file was just created). text/relay are sanitised
 * (no control characters, trimmed to fit). 0 or -errno. */
int spool_state_append_result(int spool_dirfd, const char *id, size_t rcpt_index,
                              DeliveryStatus status, uint64_t when_usec,
                              const char *dsn, const char *relay, const char *text);
/* The same record, formatted into line (SPOOL_STATE_LINE_MAX bytes) for
 * spool_state_append_records. Returns its length or -errno. */
#define SPOOL_STATE_LINE_MAX 1024u
int spool_state_format_result(char line[static SPOOL_STATE_LINE_MAX], size_t rcpt_index,
                              DeliveryStatus status, uint64_t when_usec, const char *dsn,
                              const char *relay, const char *text);
/* Appends records (whole lines from spool_state_format_result) with one write
 * and one fsync. 0 or -errno. */
int spool_state_append_records(int spool_dirfd, const char *id, const char *lines, size_t len);
int spool_state_append_attempt(int spool_dirfd, const char *id, uint64_t when_usec,
                               uint64_t next_usec);
int spool_state_append_hold(int spool_dirfd, const char *id, bool hold);

/* Removes a finished message: unlinks queue/<id> then queue/<id>.st, fsyncs queue/. */
int spool_remove(int spool_dirfd, const char *id);
/* The same without the fsync of queue/, for a message that was delivered: an
 * unlink lost in a crash only makes it delivered again (as Postfix's unlink
 * after delivery), and the fsync would cost every message a disk flush. */
int spool_remove_delivered(int spool_dirfd, const char *id);
/* Moves queue/<id> (and .st) to corrupt/. */
int spool_move_corrupt(int spool_dirfd, const char *id);

/* Creates tmp/, queue/, corrupt/ under the spool directory if missing (0700). */
int spool_prepare(int spool_dirfd);

/* Queue ids: 8 hex digits of seconds + 5 of microseconds, strictly increasing
 * within a process ("65F1A2B30F4C2", 13 chars). buf must hold SPOOL_ID_MAX. */
#define SPOOL_ID_MAX 32
void spool_new_id(char buf[static SPOOL_ID_MAX]);
/* True for a syntactically valid queue id (hex digits, 13..31 chars). */
bool spool_id_valid(const char *id);

/* Group commit: spool_stage writes tmp/<id> and starts its write-back but
 * does not wait; spool_commit then fsyncs each staged file, renames it into
 * queue/ and fsyncs queue/ once for the batch. Only a message whose result is
 * 0 after spool_commit is durable and may be acknowledged. */
typedef struct SpoolStaged {
        char id[SPOOL_ID_MAX];
        int fd;         /* tmp/<id>, open until spool_commit or spool_staged_discard */
        int result;     /* set by spool_commit: 0 durable, or -errno (nothing left behind) */
        bool synced;    /* the caller already fsynced fd (result 0) or failed to (result < 0):
                           spool_commit does not fsync it again */
} SpoolStaged;

/* Returns 0 and fills *ret, or -errno (nothing is left in tmp/). */
int spool_stage(int spool_dirfd, const SpoolEnvelope *e, const void *body, size_t body_len,
                SpoolStaged *ret);
/* Commits v[0..n): sets every v[i].result and closes every fd. Returns 0, or
 * the -errno that failed the whole batch (also in each result). */
int spool_commit(int spool_dirfd, SpoolStaged *v, size_t n);
/* Drops a staged file that will not be committed (removes tmp/<id>). */
void spool_staged_discard(int spool_dirfd, SpoolStaged *s);
