/* smtpd's Received: trace header (RFC 5321 4.4, RFC 5322 3.6.7), in the shape
 * Postfix writes it. Pure: no I/O. */
#pragma once

#include <time.h>
#include "util.h"

typedef struct ReceivedInfo {
        const char *helo;
        const char *client_name;
        const char *client_addr;
        const char *hostname;
        const char *proto;      /* "ESMTP" or "SMTP" (RFC 3848 names) */
        bool smtputf8;          /* written as "UTF8" + proto, as Postfix does (RFC 6531 4.3) */
        const char *queue_id;
        const char *rcpt;       /* the only recipient, or NULL */
        const char *auth_user;  /* AUTH user name (printable ASCII, no spaces), or NULL */
} ReceivedInfo;

/* Writes the header (CRLF line ends, folded) for time t in the local time
 * zone into buf. Returns its length or -ENOBUFS. */
int received_format(const ReceivedInfo *info, time_t t, char *buf, size_t size);

/* RFC 5322 3.3 date-time of t in local time: "Mon, 23 Nov 2026 07:21:32 +0100". */
int received_date(time_t t, char *buf, size_t size);
