/* Pure helpers shared by maildir.c and mbox.c: where a user's mailbox is and
 * the bytes a message has on disk (LF line ends, mboxrd "From " quoting).
 * No I/O, so tests/unit/test-mailbox.c checks them directly. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Expands MailboxPath: a leading "~" (alone or before '/') becomes home, every
 * "%u" becomes user, "%%" becomes '%'. Returns 0 and a new string in *ret,
 * -EINVAL (user contains '/' or is "." / "..", or "~" with no home) or -ENOMEM. */
int mailbox_expand_path(const char *tmpl, const char *user, const char *home, char **ret);

/* The account name for a local recipient: the local part (everything before
 * the last '@'), lowercased, "postmaster" mapped to "root" (RFC 5321 4.5.1).
 * Returns 0 or -EINVAL (empty, or too long for buf). */
int mailbox_user_name(const char *rcpt, char *buf, size_t size);

/* Builds the stored form of a message: "Return-Path: <sender>\n",
 * "Delivered-To: rcpt\n", then body with every CRLF turned into LF. With
 * mbox, lines matching /^>*From / get one more '>' (mboxrd) and the result
 * ends with an empty line (the separator before the next "From " line).
 * Control characters in sender/rcpt become '?' (they must not forge headers).
 * Returns 0 and a new buffer in *ret and *ret_len, or -ENOMEM. */
int mailbox_format(const char *sender, const char *rcpt, const uint8_t *body, size_t len,
                   bool mbox, char **ret, size_t *ret_len);

/* The mbox separator line "From <sender or MAILER-DAEMON> <asctime>\n" for a
 * time in the local zone. Returns its length or -ENOBUFS. */
int mailbox_from_line(const char *sender, int64_t when, char *buf, size_t size);

/* True when the header section of body (CRLF or LF line ends, up to the
 * first empty line) has a "Delivered-To:" field whose value is rcpt
 * (compared without case and surrounding white space): the message has been
 * here before and delivering it again would loop. Pure. */
bool mailbox_has_delivered_to(const uint8_t *body, size_t len, const char *rcpt);
