/* Scanning the header section of a message handed to sendmail: which of
 * Date:, From:, Message-ID: are missing, the recipients of To:/Cc:/Bcc: for
 * `sendmail -t`, and where the Bcc: fields are so they can be left out. Pure
 * functions over (pointer, length): no I/O, no global state. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include "util.h"

/* One byte range [start, end) of the message. */
typedef struct HeaderRange {
        size_t start;
        size_t end;
} HeaderRange;

typedef struct HeaderScan {
        /* Offset where the header section ends: the start of the empty line
         * that separates it from the body, of the first line that is not a
         * header field, or the message length. Added fields go here. */
        size_t header_end;
        /* True when the header section did not end with an empty line (a body
         * line or the end of the message came first), so one must be added. */
        bool need_separator;
        /* Length of a leading mbox "From " line that sendmail drops (0 if none). */
        size_t skip_prefix;

        bool has_date;
        bool has_from;
        bool has_message_id;

        /* Addresses of To:, Cc:, Bcc: (or of Resent-To:, Resent-Cc:,
         * Resent-Bcc: when any Resent- recipient field is present, RFC 5322
         * section 3.6.6), in order, as a NULL-terminated list. */
        char **recipients;
        size_t n_recipients;

        /* Bcc: and Resent-Bcc: fields, whole (folded lines and line end included). */
        HeaderRange *bcc;
        size_t n_bcc;
} HeaderScan;

#define HEADERS_RCPT_MAX 10000u    /* as many as a spool file holds */
#define HEADERS_ADDRESS_MAX 1024u  /* longer "addresses" are refused, not cut */

/* Scans msg (LF or CRLF line ends). Returns 0 and fills *ret (release with
 * headers_scan_done), -E2BIG (more than HEADERS_RCPT_MAX recipients),
 * -EINVAL (an address longer than HEADERS_ADDRESS_MAX) or -ENOMEM. */
int headers_scan(const char *msg, size_t len, HeaderScan *ret);

void headers_scan_done(HeaderScan *s);

/* Parses an RFC 5322 address list ("A <a@b>, \"Doe, J\" <j@d>, c@d (C), group: x@y;")
 * and appends the bare addresses to *list (a strv of *n entries, grown as
 * needed). Display names, comments and group names are dropped. Returns 0,
 * -E2BIG, -EINVAL or -ENOMEM as headers_scan. */
int headers_parse_address_list(const char *value, size_t len, char ***list, size_t *n);
