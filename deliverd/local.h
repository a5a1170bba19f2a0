/* The local transport (transport_local_deliver in transport.h): finds the
 * recipient's account and runs one child per recipient that becomes that user
 * and writes the Maildir or mbox (maildir.c, mbox.c). Helpers for those two
 * files to fill a DeliveryResult are declared here. */
#pragma once

#include "transport.h"

/* Exit status of a local-delivery child stopped by its time limit. */
#define LOCAL_EXIT_TIMEOUT 75

/* Fills r with status, dsn, relay "local" and a formatted text. */
void local_result(DeliveryResult *r, DeliveryStatus status, const char *dsn, const char *fmt, ...)
        _printf_(4, 5);

/* A failed mailbox write: DEFERRED with 4.2.2 for a full quota (EDQUOT), 4.3.0
 * for a full file system (ENOSPC), 4.2.0 otherwise; text is fmt + ": " + strerror. */
void local_result_errno(DeliveryResult *r, int error, const char *fmt, ...) _printf_(3, 4);

/* Delivers the job's recipients here, in this process, which must be able
 * to become the recipients (root with CAP_SETUID/CAP_SETGID, or the
 * recipient itself). Same contract as transport_local_deliver. */
int local_deliver_direct(const DeliveryJob *job, DeliveryResult *results);

/* True when rcpt goes to a transport of this file (local, virtual,
 * discard, error), false for smtp and lmtp. */
bool local_handles(const Config *c, const char *rcpt);
