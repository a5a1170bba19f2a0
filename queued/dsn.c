/* The text of delivery status notifications: RFC 3464 multipart/report with a
 * human part, a message/delivery-status part and the original (RFC 3462
 * text/rfc822-headers, or message/rfc822 when RET allows it), in the shape
 * Postfix's bounce daemon gives them, so that people and programs that parse
 * Postfix's reports read ours. */
#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dsn.h"

unsigned dsn_notify_parse(const char *notify) {
        unsigned bits = 0;

        if (isempty(notify))
                return DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY;
        if (strcasecmp(notify, "NEVER") == 0)
                return 0;
        for (const char *p = notify; *p;) {
                size_t n = strcspn(p, ",");

                if (n == 7 && strncasecmp(p, "SUCCESS", 7) == 0)
                        bits |= DSN_NOTIFY_SUCCESS;
                else if (n == 7 && strncasecmp(p, "FAILURE", 7) == 0)
                        bits |= DSN_NOTIFY_FAILURE;
                else if (n == 5 && strncasecmp(p, "DELAY", 5) == 0)
                        bits |= DSN_NOTIFY_DELAY;
                else
                        /* queued accepted it, so this is not a client's
                         * mistake: fail safe, the sender hears of failures. */
                        return DSN_NOTIFY_FAILURE;
                p += n;
                if (*p == ',')
                        p++;
        }
        return bits;
}

static const char *const action_names[_DSN_ACTION_MAX] = {
        [DSN_ACTION_FAILED] = "failed",
        [DSN_ACTION_DELAYED] = "delayed",
        [DSN_ACTION_DELIVERED] = "delivered",
        [DSN_ACTION_RELAYED] = "relayed",
};

const char *dsn_action_to_string(DsnAction a) {
        return a >= 0 && a < _DSN_ACTION_MAX ? action_names[a] : NULL;
}

static int hexval(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

char *dsn_xtext_decode(const char *s, char *buf, size_t size) {
        size_t o = 0;

        assert(size > 0);
        for (size_t i = 0; s[i] && o + 1 < size; i++) {
                char c = s[i];

                if (c == '+' && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
                        c = (char) (hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
                        i += 2;
                }
                /* Decoded bytes go into a header line: no line breaks there. */
                buf[o++] = (unsigned char) c < 32 || c == 127 ? '?' : c;
        }
        buf[o] = 0;
        return buf;
}

size_t dsn_headers_len(const uint8_t *body, size_t len, size_t max) {
        if (len > max)
                len = max;
        for (size_t i = 0; i + 1 < len; i++) {
                if (body[i] != '\n')
                        continue;
                if (body[i + 1] == '\n')
                        return i + 2;
                if (i + 2 < len && body[i + 1] == '\r' && body[i + 2] == '\n')
                        return i + 3;
        }
        /* No empty line within the bound: cut at the last complete line. */
        while (len > 0 && body[len - 1] != '\n')
                len--;
        return len;
}

static void dsn_date(uint64_t usec, char *buf, size_t size) {
        time_t t = (time_t) (usec / 1000000u);
        struct tm tm;

        if (!localtime_r(&t, &tm) || strftime(buf, size, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
                (void) snprintf(buf, size, "Thu, 01 Jan 1970 00:00:00 +0000");
}

static const char *dsn_subject(DsnKind k) {
        switch (k) {
        case DSN_KIND_DELAY:
                return "Delayed Mail (still being retried)";
        case DSN_KIND_SUCCESS:
                return "Successful Mail Delivery Report";
        case DSN_KIND_POSTMASTER:
                return "Postmaster Copy: Undelivered Mail";
        default:
                return "Undelivered Mail Returned to Sender";
        }
}

static const char *dsn_default_status(DsnAction a) {
        switch (a) {
        case DSN_ACTION_FAILED:
                return "5.0.0";
        case DSN_ACTION_DELAYED:
                return "4.0.0";
        default:
                return "2.0.0";
        }
}

/* The relay as recorded names a remote MTA ("host[addr]:port"); "local",
 * "none" and the like do not. Writes the host part. */
static bool dsn_remote_mta(const char *relay, char *buf, size_t size) {
        size_t n;

        if (isempty(relay) || streq(relay, "none") || streq(relay, "-") || streq(relay, "local") ||
            strncmp(relay, "lmtp", 4) == 0 || relay[0] == '/')
                return false;
        n = strcspn(relay, "[:");
        if (n == 0 || n >= size)
                return false;
        memcpy(buf, relay, n);
        buf[n] = 0;
        return true;
}

/* Diagnostic-Code (RFC 3464 2.3.6): a remote reply is an "smtp" diagnostic
 * without deliverd's "host[addr] said: " prefix and "(in reply to ...)"
 * suffix; anything else is tern's own words. */
static void dsn_write_diagnostic(FILE *f, const char *text) {
        const char *said = strstr(text, " said: ");
        const char *p = said ? said + 7 : text;
        const char *end;

        if (isdigit((unsigned char) p[0]) && isdigit((unsigned char) p[1]) &&
            isdigit((unsigned char) p[2]) && (p[3] == ' ' || p[3] == '-' || p[3] == 0)) {
                end = strstr(p, " (in reply to ");
                fprintf(f, "Diagnostic-Code: smtp; %.*s\r\n", (int) (end ? (size_t) (end - p) : strlen(p)), p);
        } else
                fprintf(f, "Diagnostic-Code: X-Tern; %s\r\n", text);
}

static void dsn_write_intro(FILE *f, const DsnReport *r) {
        const char *host = r->hostname;

        fprintf(f, "This is the mail system at host %s.\r\n\r\n", host);
        switch (r->kind) {
        case DSN_KIND_DELAY:
                fprintf(f, "####################################################################\r\n"
                           "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n"
                           "####################################################################\r\n\r\n"
                           "Your message could not be delivered for more than %" PRIu64 " hour(s).\r\n"
                           "It will be retried until it is %" PRIu64 " day(s) old.\r\n\r\n",
                        (r->now_usec - r->arrival_usec) / (3600u * 1000000u),
                        r->retry_until_usec > r->arrival_usec
                                ? (r->retry_until_usec - r->arrival_usec + 86400u * 1000000u - 1) /
                                          (86400u * 1000000u)
                                : 0);
                break;
        case DSN_KIND_SUCCESS:
                fprintf(f, "Your message was successfully delivered to the destination(s)\r\n"
                           "listed below. If the message was delivered to mailbox you will\r\n"
                           "receive no further notifications. Otherwise you may still receive\r\n"
                           "notifications of mail delivery errors from other systems.\r\n\r\n");
                break;
        case DSN_KIND_POSTMASTER:
                fprintf(f, "A delivery status notification from this host could not be\r\n"
                           "delivered; it is attached below. It is not retried.\r\n\r\n");
                break;
        default:
                fprintf(f, "I'm sorry to have to inform you that your message could not\r\n"
                           "be delivered to one or more recipients. It's attached below.\r\n\r\n");
        }
        for (size_t i = 0; i < r->n_rcpts; i++) {
                const DsnRcpt *d = &r->rcpts[i];

                fprintf(f, "<%s>: %s\r\n\r\n", d->addr,
                        !isempty(d->text) ? d->text
                        : d->action == DSN_ACTION_FAILED ? "delivery failed"
                        : d->action == DSN_ACTION_DELAYED ? "delivery temporarily suspended"
                                                          : "delivery successful");
        }
}

static void dsn_write_status(FILE *f, const DsnReport *r) {
        char date[64], buf[1024], host[256];

        fprintf(f, "Reporting-MTA: dns; %s\r\n", r->hostname);
        fprintf(f, "X-Tern-Queue-ID: %s\r\n", r->queue_id);
        fprintf(f, "X-Tern-Sender: rfc822; %s\r\n", r->sender);
        if (!isempty(r->envid))
                fprintf(f, "Original-Envelope-Id: %s\r\n", dsn_xtext_decode(r->envid, buf, sizeof(buf)));
        dsn_date(r->arrival_usec, date, sizeof(date));
        fprintf(f, "Arrival-Date: %s\r\n", date);

        for (size_t i = 0; i < r->n_rcpts; i++) {
                const DsnRcpt *d = &r->rcpts[i];

                fprintf(f, "\r\n");
                if (!isempty(d->orcpt)) {
                        /* "addr-type;xtext" (RFC 3461 4.2) -> "addr-type; decoded". */
                        const char *semi = strchr(d->orcpt, ';');

                        if (semi && semi > d->orcpt)
                                fprintf(f, "Original-Recipient: %.*s; %s\r\n", (int) (semi - d->orcpt),
                                        d->orcpt, dsn_xtext_decode(semi + 1, buf, sizeof(buf)));
                        else
                                fprintf(f, "Original-Recipient: rfc822; %s\r\n",
                                        dsn_xtext_decode(d->orcpt, buf, sizeof(buf)));
                }
                fprintf(f, "Final-Recipient: rfc822; %s\r\n", d->addr);
                fprintf(f, "Action: %s\r\n", dsn_action_to_string(d->action));
                fprintf(f, "Status: %s\r\n", !isempty(d->status) ? d->status : dsn_default_status(d->action));
                if (dsn_remote_mta(d->relay, host, sizeof(host)))
                        fprintf(f, "Remote-MTA: dns; %s\r\n", host);
                if (!isempty(d->text))
                        dsn_write_diagnostic(f, d->text);
                if (d->when_usec > 0) {
                        dsn_date(d->when_usec, date, sizeof(date));
                        fprintf(f, "Last-Attempt-Date: %s\r\n", date);
                }
                if (d->action == DSN_ACTION_DELAYED && r->retry_until_usec > 0) {
                        dsn_date(r->retry_until_usec, date, sizeof(date));
                        fprintf(f, "Will-Retry-Until: %s\r\n", date);
                }
        }
}

static bool has_8bit(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i] & 0x80)
                        return true;
        return false;
}

int dsn_report_write(FILE *f, const DsnReport *r) {
        const char *host = r->hostname;
        char date[64], boundary[128];
        bool full = r->full && r->body && r->body_len <= DSN_FULL_MAX;
        size_t n;

        /* Ids only: RFC 2046 5.1.1 allows 70 characters, a host name may be longer. */
        (void) snprintf(boundary, sizeof(boundary), "%.40s/%.40s=_tern", r->report_id, r->queue_id);
        dsn_date(r->now_usec, date, sizeof(date));

        fprintf(f, "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n", host);
        fprintf(f, "To: <%s>\r\n", r->to);
        fprintf(f, "Subject: %s\r\n", dsn_subject(r->kind));
        fprintf(f, "Date: %s\r\n", date);
        fprintf(f, "Message-ID: <%s@%s>\r\n", r->report_id, host);
        /* RFC 3834: no auto-responder should answer this. */
        fprintf(f, "Auto-Submitted: auto-replied\r\n");
        fprintf(f, "MIME-Version: 1.0\r\n");
        fprintf(f, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                   "\tboundary=\"%s\"\r\n", boundary);
        fprintf(f, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

        fprintf(f, "--%s\r\n", boundary);
        fprintf(f, "Content-Description: Notification\r\n"
                   "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
        dsn_write_intro(f, r);

        fprintf(f, "--%s\r\n", boundary);
        fprintf(f, "Content-Description: Delivery report\r\n"
                   "Content-Type: message/delivery-status\r\n\r\n");
        dsn_write_status(f, r);

        fprintf(f, "\r\n--%s\r\n", boundary);
        if (full) {
                fprintf(f, "Content-Description: %s\r\nContent-Type: message/rfc822\r\n",
                        r->kind == DSN_KIND_POSTMASTER ? "Undelivered Notification" : "Undelivered Message");
                if (has_8bit(r->body, r->body_len))
                        fprintf(f, "Content-Transfer-Encoding: 8bit\r\n");
                fprintf(f, "\r\n");
                n = r->body_len;
                (void) fwrite(r->body, 1, n, f);
        } else {
                fprintf(f, "Content-Description: %s\r\nContent-Type: text/rfc822-headers\r\n",
                        r->kind == DSN_KIND_SUCCESS ? "Message Headers"
                        : r->kind == DSN_KIND_DELAY ? "Delayed Message Headers"
                                                     : "Undelivered Message Headers");
                n = r->body ? dsn_headers_len(r->body, r->body_len, DSN_HEADERS_MAX) : 0;
                if (n > 0 && has_8bit(r->body, n))
                        fprintf(f, "Content-Transfer-Encoding: 8bit\r\n");
                fprintf(f, "\r\n");
                if (n > 0)
                        (void) fwrite(r->body, 1, n, f);
        }
        if (n > 0 && r->body[n - 1] != '\n')
                fprintf(f, "\r\n");
        fprintf(f, "\r\n--%s--\r\n", boundary);
        return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}
