/* smtpd's side of the submission protocol with queued (common/ipc.h):
 * BEGIN/BEGUN, RCPT/RCPT_OK, DATA, END/QUEUED, ABORT, and IPC_ERROR answers. */
#pragma once

#include "util.h"

#define QUEUE_ID_MAX 64u
#define QUEUE_TEXT_MAX 256u

/* A refusal from queued, already checked to be a well-formed SMTP reply. */
typedef struct QueueReply {
        unsigned code;          /* 400..599 */
        char dsn[16];           /* "5.1.1" */
        char text[QUEUE_TEXT_MAX];
} QueueReply;

typedef struct QueueEnvelope {
        const char *sender;     /* "" for the null sender */
        const char *client_addr;
        const char *client_name;
        const char *helo;
        const char *proto;      /* "SMTP", "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA" */
        const char *auth_user;  /* the AUTH user, or NULL */
        uint64_t size;          /* declared with SIZE=, 0 if none */
        const char *body_type;  /* "7BIT", "8BITMIME" or NULL */
        const char *envid;      /* DSN ENVID as received (xtext), or NULL */
        const char *ret;        /* DSN RET "FULL"/"HDRS", or NULL */
        bool smtputf8;          /* MAIL ... SMTPUTF8 (RFC 6531) */
} QueueEnvelope;

typedef struct QueueClient QueueClient;

/* Connects to queued's socket and says hello as "smtpd"; the socket gets
 * timeout_usec as send and receive timeout. Returns 0 or -errno. */
int queue_client_new(const char *path, uint64_t timeout_usec, QueueClient **ret);
QueueClient *queue_client_free(QueueClient *q);
DEFINE_POINTER_CLEANUP(QueueClient, queue_client_free);

/* Each returns 0 (accepted), 1 (refused: *ret_refusal filled) or -errno (the
 * connection to queued is broken or queued spoke nonsense; the caller answers
 * 451 4.3.0 and logs). */
int queue_client_begin(QueueClient *q, const QueueEnvelope *e, char ret_id[QUEUE_ID_MAX],
                       QueueReply *ret_refusal);
int queue_client_rcpt(QueueClient *q, const char *rcpt, QueueReply *ret_refusal);
/* The same with the DSN parameters of the recipient: notify ("NEVER",
 * "SUCCESS,FAILURE", ...) and orcpt ("rfc822;xtext"), each NULL if absent. */
int queue_client_rcpt_dsn(QueueClient *q, const char *rcpt, const char *notify, const char *orcpt,
                          QueueReply *ret_refusal);
int queue_client_end(QueueClient *q, char ret_id[QUEUE_ID_MAX], QueueReply *ret_refusal);

/* DATA frames get no answer. Returns 0 or -errno. */
int queue_client_data(QueueClient *q, const void *p, size_t n);
/* Returns 0 or -errno. */
int queue_client_abort(QueueClient *q);

/* Statistics for queued's metrics (IPC_STATS_SESSION): a rejection at stage
 * ("RCPT") whose reply text starts with its enhanced status code, and TLS in
 * use on the session. Kept here and sent once by queue_client_report at the
 * end of the session (no reply). Report returns 0 or -errno. */
void queue_client_note_reject(QueueClient *q, const char *stage, const char *text);
void queue_client_note_tls(QueueClient *q);
int queue_client_report(QueueClient *q);
