/* `ternctl log`: a message's life from the journal (sd-journal), matched by
 * TERN_QUEUE_ID and the TERN_SESSION of the smtpd session that received it.
 * (Named log_show, not log, so that common/log.h stays the one "log.h".) */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include "util.h"

/* Prints every journal entry of message id in time order to f; with follow,
 * then waits for new ones until interrupted. Returns 0, -ENOENT (no entry
 * and not following), -EINVAL (not a queue id) or another -errno; the error
 * is already reported on stderr. */
int log_show_message(const char *id, bool follow, FILE *f);

/* Follows queued, delivered, deferred, bounced and removed events of every
 * message (the last ten first), until interrupted or f's reader goes away. */
int log_show_deliveries(FILE *f);

/* `ternctl log [--follow] [ID]`. Exit code. */
int verb_log(const char *config_path, int argc, char **argv);
