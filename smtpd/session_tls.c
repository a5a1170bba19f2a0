/* STARTTLS (RFC 3207) and implicit TLS (RFC 8314) for a session: when TLS is
 * offered, the verb, and the reset of the session after the handshake. The
 * byte-level work (discarding pipelined input, the handshake) is in io.c. */
#include "log.h"
#include "session.h"
#include "tls.h"

bool session_offers_starttls(const Session *s) {
        if (!s->tls_files || s->tls || s->role == SMTPD_ROLE_SUBMISSIONS)
                return false;
        /* SecurityLevel concerns port 25; submission always offers it. */
        return s->role != SMTPD_ROLE_SMTP || !streq(s->config->tls_security_level, "none");
}

/* The context, made on first use from the PEM read before the sandbox. */
static int session_tls_context(Session *s) {
        char err[512] = "";
        int r;

        if (s->tls_ctx)
                return 0;
        r = tls_context_new(s->tls_files, &s->tls_ctx, err, sizeof(err));
        if (r < 0) {
                (void) log_error_errno(r, "TLS is unavailable for %s: %s", s->client,
                                       err[0] ? err : "cannot set up OpenSSL");
                s->tls_files = NULL; /* not offered again; main.c owns it */
        }
        return r;
}

/* Runs the handshake and logs its outcome the way Postfix does. */
static int session_handshake(Session *s) {
        char what[256], reason[256];
        size_t discarded = 0;
        int r;

        r = io_start_tls(&s->io, s->tls_ctx, &discarded);
        if (discarded > 0)
                log_warning("%s: discarded %zu bytes sent in plain text before the TLS handshake "
                            "(possible command injection, CVE-2011-0411)", s->client, discarded);
        if (r < 0) {
                if (r == -EPROTO)
                        log_info("SSL_accept error from %s: %s", s->client,
                                 tls_last_error(reason, sizeof(reason)));
                else
                        log_info("SSL_accept error from %s: %s", s->client,
                                 r == -ETIMEDOUT ? "timeout" : "lost connection");
                s->why = "TLS handshake failed";
                s->quit = true;
                return r;
        }
        s->tls = true;
        queue_client_note_tls(s->queue);
        tls_describe(s->io.ssl, what, sizeof(what));
        log_info("Anonymous TLS connection established from %s: %s", s->client, what);
        return 0;
}

int session_tls_begin(Session *s) {
        if (!s->tls_ctx) {
                /* Submission needs AUTH, AUTH needs TLS: without a
                 * certificate no client could ever send mail here. Port 587
                 * can at least say so; port 465 cannot even do that. */
                log_error("No usable certificate (CertificateFile in [TLS]): the %s role cannot serve %s",
                          smtpd_role_to_string(s->role), s->client);
                if (s->role == SMTPD_ROLE_SUBMISSION)
                        (void) io_reply(&s->io, "421 4.7.0 %s TLS not available, closing transmission channel",
                                        s->config->hostname);
                s->why = "no certificate";
                s->quit = true;
                return -ENOKEY;
        }
        return s->role == SMTPD_ROLE_SUBMISSIONS ? session_handshake(s) : 0;
}

int session_starttls(Session *s, const Command *c) {
        int r;

        if (s->tls)
                return session_reply(s, 503, "5.5.1 Error: TLS already active");
        if (!session_offers_starttls(s))
                return session_reply(s, 502, "5.5.1 Error: command not implemented");
        /* RFC 3207 4: STARTTLS in the middle of a transaction would carry an
         * envelope begun in the clear into the protected session. */
        if (s->in_transaction)
                return session_reply(s, 503, "5.5.1 Error: MAIL transaction in progress");
        if (session_tls_context(s) < 0)
                return session_reply(s, 454, "4.7.0 TLS not available due to local problem");
        r = session_reply(s, 220, "2.0.0 Ready to start TLS");
        if (r < 0)
                return r;
        r = session_handshake(s);
        if (r < 0)
                return r;
        /* RFC 3207 4.2: forget everything learned in the clear; the client
         * must say EHLO again. */
        s->have_helo = false;
        s->esmtp = false;
        s->helo[0] = 0;
        return 0;
}
