/* Delivery status notifications (RFC 3464): the text of one multipart/report
 * (failure, delay, success, or the postmaster's copy of an undeliverable
 * bounce) and the DSN parameters it honours (RFC 3461 NOTIFY, RET, ENVID,
 * ORCPT). Pure: writes to a FILE the caller owns, reads nothing else. */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "util.h"

/* Bits of NOTIFY (RFC 3461 4.1). */
enum {
        DSN_NOTIFY_SUCCESS = 1 << 0,
        DSN_NOTIFY_FAILURE = 1 << 1,
        DSN_NOTIFY_DELAY = 1 << 2,
};

/* NOTIFY as stored in the spool ("SUCCESS,FAILURE", "NEVER"; NULL or "" =
 * not given) -> bits. Not given means FAILURE,DELAY (RFC 3461 4.1, as
 * Postfix does); NEVER and anything unreadable mean 0 and FAILURE. */
unsigned dsn_notify_parse(const char *notify);

typedef enum DsnKind {
        DSN_KIND_FAILURE,       /* "Undelivered Mail Returned to Sender" */
        DSN_KIND_DELAY,         /* "Delayed Mail (still being retried)" */
        DSN_KIND_SUCCESS,       /* "Successful Mail Delivery Report" */
        DSN_KIND_POSTMASTER,    /* a bounce that could not be delivered, to postmaster */
        _DSN_KIND_MAX,
        _DSN_KIND_INVALID = -EINVAL,
} DsnKind;

typedef enum DsnAction {
        DSN_ACTION_FAILED,
        DSN_ACTION_DELAYED,
        DSN_ACTION_DELIVERED,   /* into a mailbox (local, LMTP) */
        DSN_ACTION_RELAYED,     /* to a next hop that did not take the DSN request */
        _DSN_ACTION_MAX,
        _DSN_ACTION_INVALID = -EINVAL,
} DsnAction;

const char *dsn_action_to_string(DsnAction a);

typedef struct DsnRcpt {
        const char *addr;       /* Final-Recipient */
        const char *orcpt;      /* ORCPT as received ("rfc822;a+2Bb@c", xtext), or NULL */
        DsnAction action;
        const char *status;     /* "5.1.1"; "" or NULL: derived from the action */
        const char *relay;      /* as recorded: "local", "mx.example.org[192.0.2.1]:25", "none" */
        const char *text;       /* the recorded reason or reply */
        uint64_t when_usec;     /* Last-Attempt-Date; 0: none */
} DsnRcpt;

typedef struct DsnReport {
        DsnKind kind;
        const char *hostname;           /* Reporting-MTA and MAILER-DAEMON@hostname */
        const char *queue_id;           /* the original's */
        const char *report_id;          /* the report's own queue id (Message-ID, boundary) */
        const char *sender;             /* the original's envelope sender */
        const char *to;                 /* To: of the report */
        const char *envid;              /* ENVID as received (xtext), or NULL */
        uint64_t arrival_usec;
        uint64_t now_usec;
        uint64_t retry_until_usec;      /* delay reports: Will-Retry-Until; 0: none */
        const DsnRcpt *rcpts;
        size_t n_rcpts;
        const uint8_t *body;            /* the original message (CRLF), NULL when unreadable */
        size_t body_len;
        bool full;                      /* return it whole (message/rfc822), else headers only */
} DsnReport;

/* Originals up to this size are returned whole when RET allows it, larger ones
 * as headers only (Postfix's bounce_size_limit). */
#define DSN_FULL_MAX (50u * 1000u)
/* The headers returned are cut at a line end past this. */
#define DSN_HEADERS_MAX (64u * 1024u)

/* Writes the report (headers and MIME body, CRLF) to f. Returns 0, or -EIO
 * when f failed. */
int dsn_report_write(FILE *f, const DsnReport *r);

/* Decodes RFC 3461 xtext ("a+2Bb" -> "a+b") into buf; malformed escapes are
 * kept as written, control characters become '?'. Returns buf. */
char *dsn_xtext_decode(const char *s, char *buf, size_t size);

/* The length of the header section of a message (through the empty line),
 * at most max bytes, cut at a line end. */
size_t dsn_headers_len(const uint8_t *body, size_t len, size_t max);
