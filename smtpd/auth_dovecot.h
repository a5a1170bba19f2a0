/* The "dovecot" AUTH back end: Dovecot's authentication client protocol
 * (version 1.2, as Postfix's smtpd_sasl_type = dovecot speaks it) over the
 * socket DovecotSocket names, connected before the sandbox. */
#pragma once

#include <stdint.h>
#include "auth_backend.h"

/* Connects to path and sends our half of the handshake; timeout_usec bounds
 * every later read and write. Returns 0 or -errno (*ret_error says why). */
int auth_dovecot_open(const char *path, uint64_t timeout_usec, AuthBackend **ret,
                      char *ret_error, size_t error_size);
