/* Virtual mailbox delivery (Postfix's virtual(8)): a mailbox below
 * [Virtual] MailboxBase, all owned by MailboxUser. Run in the local child
 * that has become MailboxUser. */
#pragma once

#include "transport.h"

/* Delivers msg (stored form, see mailbox_format: mbox form when path does
 * not end in '/') to path: a Maildir when it ends in '/', else an mbox file
 * whose missing parent directories are created (0700). from_line is the
 * mbox separator. Fills res. */
void virtual_deliver(const char *path, const char *hostname, const char *from_line, const char *msg,
                     size_t len, uint64_t lock_timeout_usec, DeliveryResult *res);

/* True when a virtual mailbox path names a Maildir (ends in '/'). */
bool virtual_is_maildir(const char *path);
