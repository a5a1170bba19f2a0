/* One smtpd session on an accepted connection, from the loaded configuration
 * to the end of the session: the part of tern-smtpd that runs once per
 * connection. tern-smtpd's main() calls it after config_load (Accept=yes
 * units, tests); tern-smtpd-supervisor calls it in each forked child, with
 * the configuration it loaded once (docs/hardening.md). */
#pragma once

#include "config.h"
#include "session.h"

/* What the supervisor can do once for all its children, before it forks:
 * build the seccomp filter (sandbox_prepare) and initialize OpenSSL when a
 * certificate is configured (it reads the system-wide openssl.cnf). Returns
 * 0 or -errno; on failure each child does the same work itself. */
int smtpd_serve_prepare(const Config *config);

/* Serves the client on in_fd/out_fd (the same socket, or stdin/stdout):
 * connects to queued, opens what TLS, AUTH and the access policy need,
 * enters the sandbox and runs the session. Everything it opens is closed
 * again; the sandbox stays, so the caller must exit afterwards. On a failure
 * before the session the client gets "421 4.3.0" and the cause is logged.
 * Returns 0 or -errno. */
int smtpd_serve(const Config *config, SmtpdRole role, int in_fd, int out_fd);

/* "421 4.3.0 HOST Service not available" on fd, for failures before there is
 * a configuration (hostname NULL: the machine's name). */
void smtpd_serve_unavailable(int fd, const char *hostname);
