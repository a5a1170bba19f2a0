/* One SMTP session: the state of the connection and of the mail transaction,
 * and the table that dispatches each verb to its check and proceed functions
 * (session.c). The handlers live by phase in session_envelope.c (MAIL, RCPT)
 * and session_data.c (DATA). */
#pragma once

#include <netinet/in.h>

#include "address.h"
#include "auth_backend.h"
#include "command.h"
#include "config.h"
#include "io.h"
#include "queue_client.h"
#include "table.h"

typedef enum SmtpdRole {
        SMTPD_ROLE_SMTP,
        SMTPD_ROLE_SUBMISSION,
        SMTPD_ROLE_SUBMISSIONS,
        _SMTPD_ROLE_MAX,
        _SMTPD_ROLE_INVALID = -EINVAL,
} SmtpdRole;

#define SESSION_ADDR_MAX (INET6_ADDRSTRLEN + 1)
#define SESSION_NAME_MAX 256u
#define SESSION_CLIENT_MAX (SESSION_NAME_MAX + SESSION_ADDR_MAX + 3)
#define SESSION_PATH_MAX (ADDRESS_PATH_MAX + 1)

typedef struct Session {
        const Config *config;
        SmtpdRole role;
        Io io;
        QueueClient *queue;
        bool queue_broken;         /* queued failed once: no more transactions */

        char id[40];               /* TERN_SESSION */
        char client_addr[SESSION_ADDR_MAX];
        char client_name[SESSION_NAME_MAX];
        char client[SESSION_CLIENT_MAX]; /* "name[addr]" for log lines */
        bool trusted;              /* client address in TrustedNetworks */

        /* TLS and AUTH (session_tls.c, session_auth.c); set up by main.c
         * before the sandbox, owned by main.c. */
        struct TlsFiles *tls_files;/* NULL: no certificate, no STARTTLS */
        SSL_CTX *tls_ctx;          /* made from tls_files at the first STARTTLS on port 25 */
        AuthBackend *auth;         /* NULL: no AUTH offered */
        Table *sender_logins;      /* NULL: an authenticated user may use any sender */
        bool tls;                  /* TLS is up */
        char auth_user[AUTH_USER_MAX]; /* "" until AUTH succeeded */
        unsigned n_auth_failures;

        char helo[COMMAND_LINE_MAX];
        bool have_helo;
        bool esmtp;

        /* The mail transaction (RFC 5321 3.3), open from MAIL to the end of
         * DATA, RSET, HELO/EHLO or QUIT. */
        bool in_transaction;
        char queue_id[QUEUE_ID_MAX];
        char sender[SESSION_PATH_MAX];
        char first_rcpt[SESSION_PATH_MAX];
        size_t n_rcpt;
        char envid[COMMAND_ENVID_MAX + 1]; /* DSN ENVID (xtext), "" if none */
        char ret[5];               /* DSN RET "FULL"/"HDRS", "" if none */
        bool smtputf8;             /* MAIL ... SMTPUTF8 */
        struct BdatStream *bdat;   /* BDAT chunks so far (session_data.c), NULL if none */

        /* Session limits and policy (session_envelope.c, policy.c, rbl.c). */
        uint64_t n_rcpt_session;   /* accepted recipients, all transactions */
        unsigned n_junk;           /* NOOP, RSET, VRFY, HELP */
        struct Policy *policy;     /* access tables, opened before the sandbox; NULL: none */

        unsigned n_errors;         /* replies >= 400, for HardErrorLimit */
        unsigned n_ok[_SMTP_VERB_MAX], n_total[_SMTP_VERB_MAX];
        unsigned n_unknown;
        SmtpVerb last_verb;        /* for "timeout after RCPT" */
        bool quit;                 /* stop reading: QUIT, timeout, too many errors */
        const char *why;           /* why the session ended early, for the log */
} Session;

SmtpdRole smtpd_role_from_string(const char *s);
const char *smtpd_role_to_string(SmtpdRole r);

/* Sets up s for the client on in_fd/out_fd. Takes no ownership. */
void session_init(Session *s, const Config *config, SmtpdRole role, QueueClient *queue,
                  int in_fd, int out_fd);

/* Logs "connect from name[addr]" (before the sandbox: it opens the journal socket). */
void session_log_connect(Session *s);

/* Greets, runs commands until QUIT, EOF, a timeout or too many errors, logs
 * the disconnect. Returns 0 or -errno (the session ended on an I/O error). */
int session_run(Session *s);

/* Replies one line "CODE TEXT"; counts errors. */
int session_reply(Session *s, unsigned code, const char *fmt, ...) _printf_(3, 4);

/* Replies and logs a rejection in Postfix's shape:
 * "ID: reject: RCPT from name[addr]: 554 5.7.1 <x>: Relay access denied; from=<a> to=<x> proto=ESMTP helo=<h>".
 * rcpt may be NULL. */
int session_reject(Session *s, const char *stage, const char *rcpt, unsigned code,
                   const char *fmt, ...) _printf_(5, 6);

/* Ends the open transaction, telling queued to discard it. */
void session_transaction_reset(Session *s);

/* Marks queued as unusable after err and logs why. */
void session_queue_failed(Session *s, int err, const char *what);

/* "SMTP", "ESMTP", "ESMTPS", "ESMTPA" or "ESMTPSA" (RFC 3848), for queued and Received:. */
const char *session_proto(const Session *s);

/* STARTTLS and AUTH (session_tls.c, session_auth.c). */
bool session_offers_starttls(const Session *s);
bool session_offers_auth(const Session *s);
int session_starttls(Session *s, const Command *c);
int session_auth(Session *s, const Command *c);
/* Before the greeting of the submission roles: implicit TLS on port 465, and
 * on both a refusal when no certificate is loaded. Returns 0 or -errno (logged). */
int session_tls_begin(Session *s);
/* Before MAIL: TLS and AUTH as the role and SecurityLevel demand. Returns 0,
 * or 1 after replying with the refusal. */
int session_auth_check_mail(Session *s);
/* After MAIL parsed: is the authenticated user allowed this sender
 * (SenderLoginMap)? Returns 0, or 1 after replying 553 5.7.1. */
int session_auth_check_sender(Session *s, const char *sender);

/* The per-verb handlers (session_envelope.c, session_data.c). */
int session_mail(Session *s, const Command *c);
int session_rcpt(Session *s, const Command *c);
int session_data(Session *s, const Command *c);
int session_bdat(Session *s, const Command *c);
/* Frees the BDAT state of the transaction (session_data.c). */
void session_bdat_reset(Session *s);
/* Reads and drops n octets of a BDAT chunk whose command line was refused. */
void session_bdat_skip(Session *s, uint64_t n);
