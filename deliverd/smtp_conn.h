/* One client connection to an SMTP or LMTP server: connect with a deadline,
 * bounded reads of whole replies and writes with deadlines (RFC 5321
 * 4.5.3.2), optionally over TLS after STARTTLS, and the Postfix-shaped texts
 * that describe what went wrong for logs and bounces. */
#pragma once

#include <netinet/in.h>
#include <openssl/ssl.h>

#include "mx.h"
#include "smtp_reply.h"
#include "transport.h"

#define SMTP_BUF_SIZE (64u * 1024u)     /* > SMTP_REPLY_LINE_MAX * SMTP_REPLY_LINES_MAX */
#define SMTP_CONNECT_TIMEOUT_USEC (30ull * 1000000ull)
#define SMTP_REPLY_TIMEOUT_USEC (300ull * 1000000ull)
#define SMTP_QUIT_TIMEOUT_USEC (5ull * 1000000ull)

typedef struct SmtpConn {
        int fd;
        SSL *ssl;                       /* non-NULL once STARTTLS succeeded */
        char host[MX_NAME_MAX];
        char addr[INET6_ADDRSTRLEN];
        uint16_t port;
        char relay[MX_NAME_MAX + INET6_ADDRSTRLEN + 8]; /* "host[addr]:port" */
        uint64_t reply_timeout_usec;
        char buf[SMTP_BUF_SIZE];
        size_t len;                     /* bytes in buf */
        size_t consumed;                /* bytes of the last reply, dropped at the next read */
        bool lmtp;                      /* LHLO, one reply per recipient after DATA (RFC 2033) */
        bool reused;                    /* kept from an earlier message */
        /* From the EHLO reply (reset by a new EHLO after STARTTLS). */
        bool pipelining, size, eightbitmime, smtputf8, dsn, starttls;
        bool auth_plain, auth_login;
        uint64_t size_max;
} SmtpConn;

/* The outcome that applies when a host cannot take the message. */
typedef struct SmtpError {
        DeliveryStatus status;
        char dsn[16];
        char text[512];
} SmtpError;

uint64_t smtp_now_usec(void);

/* Resets c for a new connection to the named host/address (fd closed). */
void smtp_conn_reset(SmtpConn *c, const char *host, const char *addr, uint16_t port, uint64_t reply_timeout_usec);

/* Connects to addr within timeout_usec. 0, -ETIMEDOUT or -errno. */
int smtp_conn_connect(SmtpConn *c, const struct sockaddr *addr, socklen_t len, uint64_t timeout_usec);

/* Writes all n bytes; the reply timeout restarts with each progress. */
int smtp_conn_write(SmtpConn *c, const char *p, size_t n);

/* Reads one reply; its lines point into c->buf until the next call.
 * 0, -ETIMEDOUT, -ECONNRESET (peer closed), -EBADMSG (malformed), -errno. */
int smtp_conn_read_reply(SmtpConn *c, SmtpReply *reply, uint64_t timeout_usec);

/* True when bytes the server sent are waiting unread (after a reply that
 * must be the last one, e.g. the 220 to STARTTLS: RFC 3207 5 injection). */
bool smtp_conn_has_unread(const SmtpConn *c);

/* Sends QUIT and waits briefly for the answer, then closes. */
void smtp_conn_quit(SmtpConn *c);

/* Closes the connection (TLS shut down without waiting). */
void smtp_conn_close(SmtpConn *c);

void smtp_error_set(SmtpError *e, DeliveryStatus status, const char *dsn, const char *fmt, ...) _printf_(4, 5);

/* Copies e into a result with relay as its relay. */
void smtp_result_set(DeliveryResult *res, const SmtpError *e, const char *relay);

/* An I/O failure while doing what (timeout, malformed reply, lost
 * connection): always a temporary failure. */
void smtp_error_io(SmtpError *e, const SmtpConn *c, int r, const char *what);

/* The outcome a reply gives: 2xx delivered, 4xx (and an unexpected 3xx)
 * deferred, 5xx bounced; the remote enhanced code or one derived from the
 * basic code. prefix is "" or "host[addr] said: ", in_reply_to NULL or
 * "RCPT TO command". */
void smtp_error_reply(SmtpError *e, const SmtpConn *c, const SmtpReply *reply, const char *prefix,
                      const char *in_reply_to);

/* smtp_error_reply with the prefix "host HOST[ADDR] said: ". */
void smtp_error_remote(SmtpError *e, const SmtpConn *c, const SmtpReply *reply, const char *in_reply_to);
