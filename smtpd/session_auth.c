/* AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN, only over TLS; what TLS
 * and AUTH require before MAIL on each role; and the sender login map
 * (Postfix's reject_authenticated_sender_login_mismatch). Decoding is in
 * auth.c, checking credentials in the back ends behind auth_backend.h. */
#include <strings.h>

#include "log.h"
#include "session.h"

/* 334 challenges of LOGIN: base64 of "Username:" and "Password:". */
#define LOGIN_USERNAME "VXNlcm5hbWU6"
#define LOGIN_PASSWORD "UGFzc3dvcmQ6"

bool session_offers_auth(const Session *s) {
        return s->auth && s->tls;
}

const char *session_proto(const Session *s) {
        if (!s->esmtp)
                return "SMTP";
        if (s->tls)
                return s->auth_user[0] ? "ESMTPSA" : "ESMTPS";
        return s->auth_user[0] ? "ESMTPA" : "ESMTP";
}

/* Reads one client response of the exchange into the decoded buffer out.
 * Returns its length, -ECANCELED (the client sent "*"; replied), -EINVAL
 * (bad base64; replied) or another -errno (the session ends). */
static int read_response(Session *s, char *out, size_t size) {
        const char *line;
        size_t len;
        int r;

        r = io_read_line(&s->io, AUTH_LINE_MAX, &line, &len);
        if (r == -E2BIG) {
                session_reply(s, 500, "5.5.6 Authentication exchange line is too long");
                return -EINVAL;
        }
        if (r == -ETIMEDOUT) {
                s->why = "timeout";
                s->quit = true;
                (void) io_reply(&s->io, "421 4.4.2 %s Error: timeout exceeded", s->config->hostname);
                return r;
        }
        if (r < 0) {
                s->why = "lost connection";
                s->quit = true;
                return r;
        }
        if (len == 1 && line[0] == '*') {
                session_reply(s, 501, "5.0.0 Authentication aborted");
                return -ECANCELED;
        }
        r = auth_base64_decode(line, len, out, size);
        /* The line held a secret; the buffer is ours to wipe. */
        explicit_bzero((char *) line, len);
        if (r == -EINVAL) {
                session_reply(s, 501, "5.5.2 Cannot decode response");
                return r;
        }
        return r;
}

/* Decodes an initial response ("=" is the empty one, RFC 4954 4). */
static int decode_initial(Session *s, const char *ir, size_t n, char *out, size_t size) {
        int r;

        if (n == 1 && ir[0] == '=') {
                out[0] = 0;
                return 0;
        }
        r = auth_base64_decode(ir, n, out, size);
        if (r == -EINVAL)
                session_reply(s, 501, "5.5.2 Cannot decode response");
        return r;
}

/* A user name that is safe in a log line and a Received: header. */
static bool user_name_ok(const char *u) {
        if (!*u)
                return false;
        for (; *u; u++)
                if ((unsigned char) *u <= ' ' || (unsigned char) *u >= 127)
                        return false;
        return true;
}

static int auth_failed(Session *s, AuthMechanism mech, const char *user) {
        s->n_auth_failures++;
        log_warning("%s: SASL %s authentication failed%s%s", s->client, auth_mechanism_to_string(mech),
                    user_name_ok(user) ? ", sasl_username=" : "", user_name_ok(user) ? user : "");
        if (s->n_auth_failures >= s->config->auth_failure_limit) {
                s->why = "too many AUTH failures";
                s->quit = true;
                return session_reply(s, 421, "4.7.0 %s Error: too many failed authentication attempts",
                                     s->config->hostname);
        }
        return session_reply(s, 535, "5.7.8 Error: authentication failed");
}

/* Collects user and password for mech; replies itself on a protocol error.
 * Returns 0, 1 (the exchange ended with a reply already sent) or -errno. */
static int collect(Session *s, AuthMechanism mech, const char *ir, size_t ir_len, char *user,
                   char *password) {
        char buf[AUTH_USER_MAX + AUTH_PASSWORD_MAX + 2];
        int n, r;

        if (mech == AUTH_MECH_PLAIN) {
                if (ir)
                        n = decode_initial(s, ir, ir_len, buf, sizeof(buf));
                else {
                        (void) io_reply(&s->io, "334 ");
                        n = read_response(s, buf, sizeof(buf));
                }
                if (n == -ENOBUFS)
                        return 2; /* longer than any user and password: a failure */
                if (n < 0)
                        return s->quit ? n : 1;
                r = auth_plain_parse(buf, (size_t) n, user, password);
                explicit_bzero(buf, sizeof(buf));
                return r < 0 ? 2 : 0;
        }

        /* LOGIN: the user name (perhaps as initial response), then the password. */
        if (ir)
                n = decode_initial(s, ir, ir_len, buf, AUTH_USER_MAX);
        else {
                (void) io_reply(&s->io, "334 " LOGIN_USERNAME);
                n = read_response(s, buf, AUTH_USER_MAX);
        }
        if (n < 0 && n != -ENOBUFS)
                return s->quit ? n : 1;
        if (n >= 0)
                memcpy(user, buf, (size_t) n + 1);
        (void) io_reply(&s->io, "334 " LOGIN_PASSWORD);
        r = read_response(s, password, AUTH_PASSWORD_MAX);
        if (r < 0 && r != -ENOBUFS)
                return s->quit ? r : 1;
        return n < 0 || r < 0 || memchr(user, 0, (size_t) n) || memchr(password, 0, (size_t) r) ? 2 : 0;
}

int session_auth(Session *s, const Command *c) {
        char user[AUTH_USER_MAX] = "", password[AUTH_PASSWORD_MAX] = "", canonical[AUTH_USER_MAX] = "";
        AuthMechanism mech;
        const char *ir;
        size_t ir_len;
        int r;

        if (!s->auth)
                return session_reply(s, 503, "5.5.1 Error: authentication not enabled");
        if (!s->tls)
                /* RFC 4954 4: never ask for a password in the clear. */
                return session_reply(s, 538, "5.7.11 Encryption required for requested authentication mechanism");
        if (!s->esmtp)
                return session_reply(s, 503, "5.5.1 Error: send EHLO first");
        if (s->auth_user[0])
                return session_reply(s, 503, "5.5.1 Error: already authenticated");
        if (s->in_transaction)
                return session_reply(s, 503, "5.5.1 Error: MAIL transaction in progress");

        r = auth_parse_command(c->arg, c->arg_len, &mech, &ir, &ir_len);
        if (r == -EOPNOTSUPP)
                return session_reply(s, 504, "5.5.4 Unrecognized authentication type");
        if (r < 0)
                return session_reply(s, 501, "5.5.4 Syntax: AUTH mechanism [initial-response]");

        r = collect(s, mech, ir, ir_len, user, password);
        if (ir)
                explicit_bzero((char *) ir, ir_len);
        if (r < 0 || r == 1) {
                explicit_bzero(password, sizeof(password));
                return r < 0 ? r : 0;
        }
        if (r == 2 || !user_name_ok(user) || password[0] == 0) {
                explicit_bzero(password, sizeof(password));
                return auth_failed(s, mech, user);
        }

        r = auth_backend_check(s->auth,
                               &(AuthRequest) {
                                       .mech = mech,
                                       .user = user,
                                       .password = password,
                                       .client_addr = s->client_addr,
                                       .tls = s->tls,
                               },
                               canonical);
        explicit_bzero(password, sizeof(password));
        if (r < 0) {
                (void) log_error_errno(r, "%s: SASL %s: the %s back end failed: %m", s->client,
                                       auth_mechanism_to_string(mech), s->auth->name);
                return session_reply(s, 454, "4.7.0 Temporary authentication failure");
        }
        if (r == 0 || !user_name_ok(canonical))
                return auth_failed(s, mech, user);

        memcpy(s->auth_user, canonical, sizeof(s->auth_user));
        log_info("%s: SASL %s authentication succeeded, sasl_username=%s", s->client,
                 auth_mechanism_to_string(mech), s->auth_user);
        return session_reply(s, 235, "2.7.0 Authentication successful");
}

int session_auth_check_mail(Session *s) {
        if (s->role == SMTPD_ROLE_SMTP) {
                if (!s->tls && streq(s->config->tls_security_level, "encrypt"))
                        return session_reject(s, "MAIL", NULL, 530, "5.7.0 Must issue a STARTTLS command first"), 1;
                return 0;
        }
        /* Submission (RFC 6409 4.3, RFC 8314): every message comes from an
         * authenticated user; credentials only travel over TLS. */
        if (!s->tls)
                return session_reject(s, "MAIL", NULL, 530, "5.7.0 Must issue a STARTTLS command first"), 1;
        if (!s->auth_user[0])
                return session_reject(s, "MAIL", NULL, 530, "5.7.0 Authentication required"), 1;
        return 0;
}

int session_auth_check_sender(Session *s, const char *sender) {
        _cleanup_free_ char *owners = NULL;
        int r;

        /* The null sender (bounces, RFC 5321 4.5.5) belongs to nobody. */
        if (!s->auth_user[0] || !s->sender_logins || isempty(sender))
                return 0;
        r = table_lookup_address(s->sender_logins, sender, NULL, TABLE_ADDR_AT_DOMAIN, &owners, NULL);
        if (r < 0 && r != -ENOENT) {
                (void) log_error_errno(r, "%s: cannot look up <%s> in SenderLoginMap: %m", s->client, sender);
                return session_reply(s, 451, "4.3.0 Error: temporary failure"), 1;
        }
        if (r == 0) {
                char *save = NULL;

                for (char *o = strtok_r(owners, ", \t", &save); o; o = strtok_r(NULL, ", \t", &save))
                        if (strcasecmp(o, s->auth_user) == 0)
                                return 0;
        }
        return session_reject(s, "MAIL", NULL, 553, "5.7.1 <%s>: Sender address rejected: not owned by user %s",
                              sender, s->auth_user),
               1;
}
