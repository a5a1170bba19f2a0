/* The message sendmail passes on: read from stdin within the size limit, the
 * header fields it adds when missing, and the bytes written to queued. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "headers.h"
#include "submit.h"

/* Reads the message from fd into a new buffer (*ret, caller frees), at most
 * limit bytes (0: no limit). Without ignore_dots a line holding only "."
 * ends it, as in Sendmail. Returns 0, -EFBIG (over limit) or -errno. */
int message_read(int fd, uint64_t limit, bool ignore_dots, char **ret, size_t *ret_len);

typedef struct MessageOrigin {
        const char *full_name;   /* "" or NULL: From: without a display name */
        const char *address;     /* qualified sender address for From: */
        const char *queue_id;    /* for Message-ID: <queue_id@hostname> */
        const char *hostname;
        time_t now;              /* for Date: */
} MessageOrigin;

/* The From:, Date: and Message-ID: fields h says are missing, LF-terminated,
 * as one new string (*ret, caller frees; "" when none is missing). Control
 * characters in the name become spaces, so -F cannot add header lines.
 * Returns 0 or -ENOMEM. */
int message_added_fields(const HeaderScan *h, const MessageOrigin *origin, char **ret);

/* Writes msg to s: the header section without Bcc: fields, the added fields,
 * the empty line if the message had none, the body. Returns 0 or -errno. */
int message_write(Submit *s, const char *msg, size_t len, const HeaderScan *h, const char *added);
