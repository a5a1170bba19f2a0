/* Maildir delivery, run in the local child as the recipient. */
#pragma once

#include "transport.h"

/* Writes msg (already in its stored form, see mailbox_format) into the
 * Maildir at path (created with tmp/, new/, cur/ if missing, mode 0700):
 * tmp/<time>.M<usec>P<pid>Q<n>.<host>, fsync, link into new/, fsync new/.
 * Fills res with the outcome. */
void maildir_deliver(const char *path, const char *hostname, const char *msg, size_t len,
                     DeliveryResult *res);
