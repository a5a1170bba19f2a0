/* Parser of SMTP server replies (RFC 5321 4.2) for the SMTP client: multi-line
 * replies, enhanced status codes (RFC 2034, RFC 3463), bounded line length and
 * line count. A pure function: bytes in, filled struct out, no I/O. */
#pragma once

#include "util.h"

#define SMTP_REPLY_LINE_MAX 512u   /* octets of one line including CRLF (RFC 5321 4.5.3.1.5) */
#define SMTP_REPLY_LINES_MAX 100u  /* lines of one reply; EHLO answers have ~10-20 */

typedef struct SmtpReplyLimits {
        size_t line_max;        /* including CRLF; <= SMTP_REPLY_LINE_MAX */
        size_t lines_max;       /* <= SMTP_REPLY_LINES_MAX */
} SmtpReplyLimits;

/* One line's text after "250-" / "250 ", as offset + length into the parsed
 * buffer (without CRLF). */
typedef struct SmtpReplyLine {
        size_t offset;
        size_t len;
} SmtpReplyLine;

typedef struct SmtpReply {
        unsigned code;                  /* 200..599 */
        char enhanced[16];              /* "5.1.1" when the first line has a valid one, else "" */
        size_t n_lines;
        SmtpReplyLine lines[SMTP_REPLY_LINES_MAX];
} SmtpReply;

/* Parses one complete reply at the start of buf (len bytes). Returns the
 * number of bytes the reply takes (> 0) and fills *ret; 0 when more bytes are
 * needed; -EBADMSG for a malformed reply (code not three digits 2xx..5xx,
 * codes differing between lines, a separator other than '-' or ' ', a control
 * character or a line not ended by CRLF); -EMSGSIZE when a line or the line
 * count exceeds the limits (NULL: the defaults above). *ret is written only
 * when a reply is complete; its lines point into buf. */
int smtp_reply_parse(const char *buf, size_t len, const SmtpReplyLimits *limits, SmtpReply *ret);

/* Writes the reply as one line for logs and bounces: "550 5.1.1 text of line 1
 * text of line 2", the enhanced code once, lines joined by a space, truncated
 * to fit; bytes that are not valid UTF-8 become '?'. buf is the buffer the
 * reply was parsed from. Returns the length. */
size_t smtp_reply_format(const SmtpReply *reply, const char *buf, char *out, size_t size);

/* The text of line i with a leading enhanced status code (equal to
 * reply->enhanced) and its space skipped. */
void smtp_reply_line_text(const SmtpReply *reply, const char *buf, size_t i,
                          const char **ret_text, size_t *ret_len);
