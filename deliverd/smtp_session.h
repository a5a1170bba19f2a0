/* One SMTP or LMTP session with one server: greeting, EHLO/HELO (or LHLO),
 * STARTTLS by the destination's TLS level, AUTH with the relay's
 * credentials, then one transaction (MAIL, RCPT..., DATA, pipelined when
 * offered) with a result per recipient. */
#pragma once

#include "smtp_conn.h"
#include "tls_client.h"

/* One destination: recipients (positions in the job) going to one place. */
typedef struct SmtpDest {
        const char *domain;             /* recipient domain, NULL when relaying */
        size_t *ks;
        size_t n;
} SmtpDest;

typedef struct SmtpSessionParams {
        const char *helo;               /* our name for EHLO/HELO/LHLO */
        TlsLevel tls_level;             /* TLS_NONE: never STARTTLS */
        const char *tls_name;           /* the name a verified certificate must hold */
        const char *auth_user;          /* NULL: no AUTH */
        const char *auth_password;
        bool keep;                      /* leave the connection open after a clean transaction */
} SmtpSessionParams;

enum {
        SMTP_SESSION_NEXT_HOST = 0,     /* this host cannot be used: *err says why */
        SMTP_SESSION_DONE = 1,          /* every result of the destination is filled */
        SMTP_SESSION_RETRY_PLAIN = 2,   /* TLS "may" failed before any mail data: reconnect without */
        SMTP_SESSION_STALE = 3,         /* a reused connection was closed by the server: nothing done */
};

/* Runs the session on the connected c. Returns one of the values above or
 * -errno (the caller defers everything). Leaves c closed. */
int smtp_session_run(SmtpConn *c, const SmtpSessionParams *p, const DeliveryJob *job, const SmtpDest *d,
                     DeliveryResult *results, SmtpError *err);

/* The transaction part alone, on a connection already greeted (a reused
 * one: set c->reused). Returns SMTP_SESSION_DONE, SMTP_SESSION_STALE (no
 * result set) or -errno. c stays open when p->keep and the transaction
 * ended cleanly; otherwise it is closed. */
int smtp_session_mail(SmtpConn *c, const SmtpSessionParams *p, const DeliveryJob *job, const SmtpDest *d,
                      DeliveryResult *results);

/* Sets the results of d's recipients that are not final yet. */
void smtp_session_results_rest(const SmtpDest *d, DeliveryResult *results, const SmtpError *e, const char *relay);

/* True for bytes that may go into a command line unchanged (no controls). */
bool smtp_command_safe(const char *s);
