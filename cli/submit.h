/* The submission client of sendmail: one transaction with queued over its
 * socket (MSG_BEGIN, MSG_RCPT..., MSG_DATA..., MSG_END), blocking. */
#pragma once

#include <stdint.h>
#include "util.h"

/* What queued answered when it refused a step (IPC_ERROR). */
typedef struct SubmitError {
        unsigned code;     /* SMTP reply code, e.g. 550 */
        char dsn[16];      /* "5.1.1", may be empty */
        char text[512];    /* queued's text, may be empty */
} SubmitError;

typedef struct SubmitEnvelope {
        const char *sender;     /* "" is the null sender */
        uint64_t size;          /* expected message size in bytes, 0 if unknown */
        const char *envid;      /* -V, NULL if none */
        const char *ret;        /* -R "FULL"/"HDRS", NULL if none */
        const char *body_type;  /* -B "7BIT"/"8BITMIME", NULL if none */
} SubmitEnvelope;

typedef struct Submit Submit;

/* Connects to queued at path and greets it as role "sendmail". Returns 0 and
 * a new Submit (free with submit_free), or -errno (-EPROTO: not a tern queue
 * of this version). */
int submit_connect(const char *path, Submit **ret);

Submit *submit_free(Submit *s);
DEFINE_POINTER_CLEANUP(Submit, submit_free);

/* Each step returns 0, -EREMOTEIO when queued refused (*error filled), or
 * another -errno for a local or transport failure (-ECONNRESET: queued went
 * away, -EBADMSG: it answered nonsense). */

/* MSG_BEGIN; *ret_queue_id is the new id (caller frees). */
int submit_begin(Submit *s, const SubmitEnvelope *env, char **ret_queue_id, SubmitError *error);

/* MSG_RCPT; notify is the DSN NOTIFY list or NULL. */
int submit_rcpt(Submit *s, const char *rcpt, const char *notify, SubmitError *error);

/* Message bytes with LF or CRLF line ends, in any number of calls; bare LF
 * becomes CRLF, CRLF stays, and full IPC_DATA_CHUNK_MAX frames are sent as
 * they fill. Returns 0 or -errno. */
int submit_write(Submit *s, const void *p, size_t n);

/* Ends the message with CRLF if it does not, sends the rest and MSG_END, and
 * waits until queued says the message is durable (IPC_MSG_QUEUED). */
int submit_end(Submit *s, char **ret_queue_id, SubmitError *error);

/* Bytes passed to queued so far (after line-end conversion). */
uint64_t submit_bytes(const Submit *s);

/* MSG_ABORT: queued discards the transaction. */
int submit_abort(Submit *s);
