/* The one codec for messages between tern processes, over AF_UNIX
 * SOCK_SEQPACKET sockets (one datagram = one frame, so no stream reassembly).
 *
 * Frame: u16 type, then fields; field = u16 tag, u32 length, length bytes.
 * All integers little-endian. A frame is at most IPC_FRAME_MAX bytes and holds
 * at most IPC_FIELDS_MAX fields. A file descriptor may ride along (SCM_RIGHTS).
 *
 * The first frame on every connection is IPC_HELLO {IPC_F_VERSION, IPC_F_ROLE},
 * answered by IPC_HELLO from the server. A reader that meets a malformed frame,
 * an unexpected type or a wrong version closes that peer and trusts nothing it
 * sent. */
#pragma once

#include <stdint.h>
#include <sys/types.h>
#include "util.h"

#define IPC_VERSION 1
#define IPC_FRAME_MAX (128u * 1024u)
#define IPC_DATA_CHUNK_MAX (64u * 1024u) /* body bytes per IPC_MSG_DATA frame */
#define IPC_FIELDS_MAX 64u

typedef enum IpcType {
        IPC_HELLO = 1,          /* both ways: VERSION, ROLE ("smtpd", "sendmail", "ctl", "queued", "deliverd") */
        IPC_ERROR,              /* server -> client: CODE (SMTP reply code), DSN ("4.3.0"), TEXT */

        /* submission: smtpd or sendmail -> queued */
        IPC_MSG_BEGIN = 10,     /* SENDER (may be empty: null sender), CLIENT_ADDR, CLIENT_NAME, HELO, PROTO,
                                   AUTH_USER, ENVID, RET, SIZE (declared), BODY_TYPE, SMTPUTF8 (u64 0/1)
                                   -> IPC_MSG_BEGUN {QUEUE_ID} or IPC_ERROR */
        IPC_MSG_BEGUN,
        IPC_MSG_RCPT,           /* RCPT (address), NOTIFY ("SUCCESS,FAILURE" / "NEVER"), ORCPT
                                   -> IPC_MSG_RCPT_OK or IPC_ERROR (e.g. 550 5.1.1 unknown user) */
        IPC_MSG_RCPT_OK,
        IPC_MSG_DATA,           /* DATA (raw message bytes, CRLF line ends, not dot-stuffed); no reply */
        IPC_MSG_END,            /* -> IPC_MSG_QUEUED {QUEUE_ID} once durable, or IPC_ERROR */
        IPC_MSG_QUEUED,
        IPC_MSG_ABORT,          /* discard the transaction in progress (RSET, QUIT, timeout); no reply */

        /* delivery: queued -> deliverd, with the spool file's fd (read-only) */
        IPC_DELIVER = 30,       /* QUEUE_ID, JOB (u64), RCPT_INDEX (repeated, u64, indexes into the spool file) */
        IPC_RESULT,             /* deliverd -> queued: JOB, RCPT_INDEX, STATUS, DSN, TEXT, RELAY */
        IPC_JOB_DONE,           /* deliverd -> queued: JOB; all RESULTs of the job were sent before */
        IPC_WORKER_IDLE = 33,   /* deliverd worker -> its parent, no fields: job done, SMTP connection
                                   kept open; the parent may send an IPC_DELIVER for the same destination */

        /* queue administration: ternctl/mailq -> queued */
        IPC_QUEUE_LIST = 50,    /* -> IPC_QUEUE_ENTRY* then IPC_QUEUE_END */
        IPC_QUEUE_ENTRY,        /* QUEUE_ID, STATE, SENDER, SIZE, ARRIVAL, RCPT (repeated), TEXT (last error) */
        IPC_QUEUE_END,
        IPC_QUEUE_FLUSH,        /* QUEUE_ID optional -> IPC_QUEUE_END */
        /* 54..69: further queue administration (queued). Changing the queue
         * needs root or queued's own uid; SHOW of a message needs that or
         * being its local submitter. Answers: IPC_QUEUE_END {COUNT} or IPC_ERROR. */
        IPC_QUEUE_SHOW = 54,    /* QUEUE_ID -> IPC_QUEUE_DETAIL, IPC_QUEUE_RCPT_STATE*, IPC_QUEUE_END */
        IPC_QUEUE_DETAIL,       /* QUEUE_ID, STATE, SENDER, SIZE, ARRIVAL, CLIENT_ADDR, CLIENT_NAME,
                                   HELO, PROTO, AUTH_USER, ENVID, RET, SUBMIT_UID, ATTEMPTS,
                                   NEXT_ATTEMPT, HEADERS (the header section, at most 64 KiB) */
        IPC_QUEUE_RCPT_STATE,   /* RCPT, STATUS (DeliveryStatus), DSN, RELAY, TEXT, WHEN, IN_FLIGHT */
        IPC_QUEUE_HOLD,         /* QUEUE_ID (or ALL) -> IPC_QUEUE_END {COUNT} */
        IPC_QUEUE_RELEASE,      /* QUEUE_ID (or ALL): tried at once */
        IPC_QUEUE_DELETE,       /* QUEUE_ID (also in corrupt/) or ALL; no bounce */
        IPC_QUEUE_REQUEUE,      /* QUEUE_ID or ALL: routes decided again, back-off reset, tried now */
        /* IPC_QUEUE_FLUSH (53) also takes DOMAIN, and answers IPC_QUEUE_END {COUNT}. */
        /* 70..79: statistics and metrics (operations) */
        IPC_STATS_SESSION = 70, /* smtpd -> queued at session end, no reply: STATS_TLS (u64 0/1),
                                   STATS_REJECT (repeated str "STAGE DSN", one per rejection) */
        IPC_STATS_GET,          /* ternctl/tern-metrics -> queued -> IPC_STATS_TEXT */
        IPC_STATS_TEXT,         /* queued -> client: DATA (Prometheus text exposition format) */
        /* 33..39: further delivery messages (deliverd) */

        _IPC_TYPE_MAX = 96,
} IpcType;

typedef enum IpcTag {
        IPC_F_VERSION = 1,      /* u64 */
        IPC_F_ROLE,             /* str */
        IPC_F_CODE,             /* u64 SMTP reply code */
        IPC_F_DSN,              /* str "5.1.1" */
        IPC_F_TEXT,             /* str */
        IPC_F_QUEUE_ID,         /* str */
        IPC_F_SENDER,           /* str, may be empty */
        IPC_F_RCPT,             /* str */
        IPC_F_NOTIFY,           /* str */
        IPC_F_ORCPT,            /* str */
        IPC_F_ENVID,            /* str */
        IPC_F_RET,              /* str "FULL"/"HDRS" */
        IPC_F_CLIENT_ADDR,      /* str */
        IPC_F_CLIENT_NAME,      /* str */
        IPC_F_HELO,             /* str */
        IPC_F_PROTO,            /* str "SMTP"/"ESMTP"/"ESMTPS"/"ESMTPA"/"local" */
        IPC_F_AUTH_USER,        /* str */
        IPC_F_SIZE,             /* u64 */
        IPC_F_BODY_TYPE,        /* str "7BIT"/"8BITMIME" */
        IPC_F_SMTPUTF8,         /* u64 */
        IPC_F_DATA,             /* bytes */
        IPC_F_JOB,              /* u64 */
        IPC_F_RCPT_INDEX,       /* u64 */
        IPC_F_STATUS,           /* u64 DeliveryStatus (spool.h) */
        IPC_F_RELAY,            /* str "local", "mx.example.org[192.0.2.1]:25" */
        IPC_F_STATE,            /* str "active", "deferred", "hold", ... */
        IPC_F_ARRIVAL,          /* u64 usec since epoch */
        /* Reserved blocks, so that parallel work never collides:
         * 40..49 queue administration and scheduling, 50..59 delivery status
         * notifications and local submission, 60..69 smtpd, 70..79 deliverd,
         * 80..89 statistics and metrics. Give each new tag its number. */
        IPC_F_SUBMIT_UID = 40,  /* str: uid of a local submitter */
        IPC_F_ATTEMPTS,         /* u64 */
        IPC_F_NEXT_ATTEMPT,     /* u64 usec since epoch, 0 = none */
        IPC_F_HEADERS,          /* bytes: a message's header section */
        IPC_F_WHEN,             /* u64 usec since epoch */
        IPC_F_IN_FLIGHT,        /* u64 0/1: a delivery of this recipient is under way */
        IPC_F_DOMAIN,           /* str: recipient domain (FLUSH) */
        IPC_F_COUNT,            /* u64: messages affected */
        IPC_F_ALL,              /* u64 1: every message in the queue */
        IPC_F_STATS_TLS = 80,   /* u64 0/1: the session used TLS */
        IPC_F_STATS_REJECT,     /* str "RCPT 5.7.1": stage and enhanced status code */
        IPC_F_DSN_RELAYED = 50, /* u64 1 in RESULT: the next hop accepted NOTIFY and is now
                                   responsible for DSNs (RFC 3461 5.2.2); absent/0: it was not */
        _IPC_F_MAX = 128,
} IpcTag;

typedef struct IpcField {
        uint16_t tag;
        uint32_t len;
        const uint8_t *data; /* points into the frame buffer */
} IpcField;

typedef struct IpcMsg {
        uint16_t type;
        size_t n_fields;
        IpcField fields[IPC_FIELDS_MAX];
} IpcMsg;

/* Builds one frame in a fixed buffer. Errors are sticky: the first failure
 * (frame too large, too many fields) is returned by ipc_send. */
typedef struct IpcWriter {
        uint8_t buf[IPC_FRAME_MAX];
        size_t len;
        size_t n_fields;
        int error;
} IpcWriter;

void ipc_writer_init(IpcWriter *w, uint16_t type);
void ipc_put_bytes(IpcWriter *w, uint16_t tag, const void *p, size_t n);
void ipc_put_str(IpcWriter *w, uint16_t tag, const char *s); /* NULL: field omitted */
void ipc_put_u64(IpcWriter *w, uint16_t tag, uint64_t v);

/* Parses a frame (pure: no I/O, no allocation). Checks every length and that
 * nothing is left over. Returns 0 or -EBADMSG. Fields point into buf. */
int ipc_parse(const void *buf, size_t len, IpcMsg *ret);

/* First field with this tag, or NULL. */
const IpcField *ipc_find(const IpcMsg *m, uint16_t tag);
/* Returns 0, -ENOENT (absent) or -EBADMSG (not 8 bytes). */
int ipc_get_u64(const IpcMsg *m, uint16_t tag, uint64_t *ret);
/* A newly allocated C string of the field; -ENOENT, -EBADMSG (contains NUL or
 * longer than max), -ENOMEM. */
int ipc_get_str(const IpcMsg *m, uint16_t tag, size_t max, char **ret);
int ipc_field_str(const IpcField *f, size_t max, char **ret);
int ipc_field_u64(const IpcField *f, uint64_t *ret);

/* Sends w's frame as one datagram, with fd_to_pass (>= 0) as SCM_RIGHTS.
 * Retries EINTR; on a non-blocking socket returns -EAGAIN. Returns 0 or -errno
 * (w->error first). */
int ipc_send(int sockfd, const IpcWriter *w, int fd_to_pass);

/* Receives one datagram into buf (size >= IPC_FRAME_MAX). Returns its length,
 * 0 on EOF, or -errno (-EMSGSIZE if truncated, -EBADMSG if more than one fd
 * or unexpected control data came). A received fd is stored in *ret_fd
 * (O_CLOEXEC), or -EBADF if none; ret_fd NULL means any passed fd is closed. */
ssize_t ipc_recv(int sockfd, void *buf, size_t size, int *ret_fd);

/* Blocking helpers for simple clients (sendmail, ternctl, tests): send w, then
 * receive one reply frame into buf and parse it into *ret. */
int ipc_call(int sockfd, const IpcWriter *w, void *buf, size_t size, IpcMsg *ret);

/* A daemon's listening socket, non-blocking: the one systemd passed
 * (sd_listen_fds; *ret_from_systemd = true), or a new SOCK_SEQPACKET socket
 * bound to path with the given mode and, when owner is not (uid_t) -1, chowned
 * to owner:group. A stale socket file is replaced; one that still accepts
 * connections gives -EADDRINUSE (another daemon owns it). Returns the fd, or
 * -EINVAL (several or wrong sockets from systemd, bad path) or another -errno. */
int ipc_listen(const char *path, mode_t mode, uid_t owner, gid_t group, bool *ret_from_systemd);

/* Connects a SOCK_SEQPACKET|SOCK_CLOEXEC socket to path. Returns fd or -errno. */
int ipc_connect(const char *path);

/* Sends IPC_HELLO with role, expects IPC_HELLO back with IPC_VERSION.
 * Returns 0, -EPROTO (wrong version/answer) or -errno. */
int ipc_hello(int sockfd, const char *role);
