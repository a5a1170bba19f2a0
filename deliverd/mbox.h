/* mbox delivery with dot-lock and fcntl locking, run in the local child as
 * the recipient. */
#pragma once

#include "transport.h"

#define MBOX_LOCK_TIMEOUT_USEC (60ull * 1000000ull)
#define MBOX_LOCK_STALE_SEC 300

/* Appends from_line and msg (its stored form, see mailbox_format) to the mbox
 * at path under both locks, waiting at most lock_timeout_usec for them; on a
 * failed write the file is truncated back to its size before. Fills res with
 * the outcome. Installs a SIGALRM handler (the local time limit) that undoes a
 * partial append and removes the dot-lock, then exits with LOCAL_EXIT_TIMEOUT. */
void mbox_deliver(const char *path, const char *from_line, const char *msg, size_t len,
                  uint64_t lock_timeout_usec, DeliveryResult *res);
