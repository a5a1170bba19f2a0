/* One SMTP or LMTP session: greeting, EHLO (HELO fallback) or LHLO,
 * STARTTLS by the destination's level, AUTH PLAIN/LOGIN for a relay with
 * credentials, then MAIL, RCPT... and DATA, pipelined when the server offers
 * it (RFC 2920), with a result per recipient from the replies. */
#include <inttypes.h>
#include <strings.h>

#include <openssl/evp.h>

#include "log.h"
#include "smtp_session.h"

#define SMTP_PIPELINE_BATCH 50u                 /* commands per write (RFC 2920 3.1: no deadlock) */
#define SMTP_AUTH_LINE_MAX 2048u                /* base64 of user + password + "AUTH PLAIN " */

/* ---- EHLO and the commands ---------------------------------------------- */

static void smtp_session_parse_ehlo(SmtpConn *c, const SmtpReply *reply) {
        /* Line 0 is the server's name; each further line is "KEYWORD params". */
        for (size_t i = 1; i < reply->n_lines; i++) {
                const char *t = c->buf + reply->lines[i].offset;
                size_t n = reply->lines[i].len, kw;

                for (kw = 0; kw < n && t[kw] != ' '; kw++)
                        ;
#define IS_KW(s) (kw == strlen(s) && strncasecmp(t, s, kw) == 0)
                if (IS_KW("PIPELINING"))
                        c->pipelining = true;
                else if (IS_KW("8BITMIME"))
                        c->eightbitmime = true;
                else if (IS_KW("SMTPUTF8"))
                        c->smtputf8 = true;
                else if (IS_KW("DSN"))
                        c->dsn = true;
                else if (IS_KW("STARTTLS"))
                        c->starttls = true;
                else if (IS_KW("AUTH")) {
                        /* "AUTH PLAIN LOGIN CRAM-MD5": the mechanisms we speak. */
                        for (size_t j = kw; j < n;) {
                                size_t m;
                                while (j < n && t[j] == ' ')
                                        j++;
                                for (m = j; m < n && t[m] != ' '; m++)
                                        ;
                                if (m - j == 5 && strncasecmp(t + j, "PLAIN", 5) == 0)
                                        c->auth_plain = true;
                                else if (m - j == 5 && strncasecmp(t + j, "LOGIN", 5) == 0)
                                        c->auth_login = true;
                                j = m;
                        }
                }
                else if (IS_KW("SIZE")) {
                        uint64_t v = 0;
                        c->size = true;
                        /* "SIZE" alone or "SIZE 0": no fixed limit (RFC 1870). */
                        for (size_t j = kw + 1; j < n && t[j] >= '0' && t[j] <= '9'; j++) {
                                if (v > (UINT64_MAX - 9) / 10)
                                        break;
                                v = v * 10 + (uint64_t) (t[j] - '0');
                        }
                        c->size_max = v;
                }
#undef IS_KW
        }
}

/* True for bytes that may go into a command line unchanged: no controls,
 * so that nothing from the spool can end a command early (CRLF injection). */
bool smtp_command_safe(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

static bool smtp_is_ascii(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s >= 0x80)
                        return false;
        return true;
}

/* xtext (RFC 3461 4): printable ASCII except '+' and '=', or "+HH". Values
 * that are not valid xtext are left out rather than sent (ENVID, ORCPT). */
static bool smtp_xtext_valid(const char *s) {
        if (isempty(s))
                return false;
        for (; *s; s++) {
                if (*s == '+') {
                        static const char hex[] = "0123456789ABCDEF";
                        if (!s[1] || !strchr(hex, s[1]) || !s[2] || !strchr(hex, s[2]))
                                return false;
                        s += 2;
                } else if (*s < 0x21 || *s > 0x7e || *s == '=')
                        return false;
        }
        return true;
}

static bool smtp_notify_valid(const char *s) {
        if (isempty(s) || strlen(s) > 64) /* "SUCCESS,FAILURE,DELAY" is the longest */
                return false;
        for (; *s; s++)
                if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == ','))
                        return false;
        return true;
}

typedef struct Buf {
        char *p;
        size_t len, size;
} Buf;

static int buf_printf(Buf *b, const char *fmt, ...) _printf_(2, 3);
static int buf_printf(Buf *b, const char *fmt, ...) {
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vsnprintf(b->p + b->len, b->size - b->len, fmt, ap);
        va_end(ap);
        if (k < 0 || (size_t) k >= b->size - b->len)
                return -ENOBUFS;
        b->len += (size_t) k;
        return 0;
}

/* Appends command i of the transaction: 0 MAIL, 1..n RCPT, n+1 DATA. */
static int smtp_session_build_command(Buf *b, const SmtpConn *c, const DeliveryJob *job, const SmtpDest *d, size_t i) {
        const SpoolEnvelope *env = job->env;
        int r;

        if (i == 0) {
                r = buf_printf(b, "MAIL FROM:<%s>", env->sender ? env->sender : "");
                if (r >= 0 && c->size)
                        r = buf_printf(b, " SIZE=%zu", job->body_len);
                if (r >= 0 && c->eightbitmime && env->body_type && strcasecmp(env->body_type, "8BITMIME") == 0)
                        r = buf_printf(b, " BODY=8BITMIME");
                if (r >= 0 && c->smtputf8 && env->smtputf8)
                        r = buf_printf(b, " SMTPUTF8");
                if (r >= 0 && c->dsn && env->ret &&
                    (strcasecmp(env->ret, "FULL") == 0 || strcasecmp(env->ret, "HDRS") == 0))
                        r = buf_printf(b, " RET=%s", env->ret);
                if (r >= 0 && c->dsn && smtp_xtext_valid(env->envid) && strlen(env->envid) <= 100)
                        r = buf_printf(b, " ENVID=%s", env->envid);
        } else if (i <= d->n) {
                const SpoolRcpt *rc = &env->rcpts[job->rcpt_index[d->ks[i - 1]]];

                r = buf_printf(b, "RCPT TO:<%s>", rc->addr);
                if (r >= 0 && c->dsn && smtp_notify_valid(rc->notify))
                        r = buf_printf(b, " NOTIFY=%s", rc->notify);
                if (r >= 0 && c->dsn && smtp_xtext_valid(rc->orcpt) && strlen(rc->orcpt) <= 500)
                        r = buf_printf(b, " ORCPT=%s", rc->orcpt);
        } else
                r = buf_printf(b, "DATA");
        if (r >= 0)
                r = buf_printf(b, "\r\n");
        return r;
}

/* Sends the body with CRLF line ends and dot-stuffing (RFC 5321 4.5.2), then
 * the end of data. Every CR, LF or CRLF becomes CRLF: a bare CR or LF must
 * never reach the next server, where it could end the data early (SMTP
 * smuggling). */
static int smtp_session_send_body(SmtpConn *c, const uint8_t *body, size_t len) {
        _cleanup_free_ char *out = malloc(SMTP_BUF_SIZE);
        bool line_start = true;
        size_t n = 0;
        int r;

        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                uint8_t ch = body[i];

                if (n > SMTP_BUF_SIZE - 8) {
                        r = smtp_conn_write(c, out, n);
                        if (r < 0)
                                return r;
                        n = 0;
                }
                if (line_start && ch == '.')
                        out[n++] = '.';
                if (ch == '\r' || ch == '\n') {
                        if (ch == '\r' && i + 1 < len && body[i + 1] == '\n')
                                i++;
                        out[n++] = '\r';
                        out[n++] = '\n';
                        line_start = true;
                } else {
                        out[n++] = (char) ch;
                        line_start = false;
                }
        }
        if (!line_start) {
                out[n++] = '\r';
                out[n++] = '\n';
        }
        memcpy(out + n, ".\r\n", 3);
        n += 3;
        return smtp_conn_write(c, out, n);
}

/* Sets results of the recipients not final yet (pending or accepted). */
void smtp_session_results_rest(const SmtpDest *d, DeliveryResult *results, const SmtpError *e, const char *relay) {
        for (size_t k = 0; k < d->n; k++) {
                DeliveryResult *res = &results[d->ks[k]];
                if (res->status == DELIVERY_NONE || res->status == DELIVERY_DELIVERED)
                        smtp_result_set(res, e, relay);
        }
}

/* Runs the transaction after the greeting and EHLO. Fills the results of
 * every recipient of d. "Accepted" recipients carry DELIVERY_DELIVERED as a
 * provisional mark until the end of data decides. */
static int smtp_session_transaction(SmtpConn *c, const DeliveryJob *job, const SmtpDest *d,
                                    DeliveryResult *results, bool *ret_clean) {
        _cleanup_free_ char *cmd = NULL;
        size_t n_cmds = d->n + 2, next_send = 0, next_read = 0, accepted = 0;
        bool mail_ok = false;
        unsigned data_code = 0;
        SmtpReply reply;
        SmtpError e;
        int r;

        cmd = malloc(SMTP_PIPELINE_BATCH * 1024);
        if (!cmd)
                return -ENOMEM;

        while (next_read < n_cmds) {
                if (next_send == next_read) {
                        size_t limit = c->pipelining ? SMTP_PIPELINE_BATCH : 1;
                        Buf b = { cmd, 0, SMTP_PIPELINE_BATCH * 1024 };

                        if (next_send > 0 && !mail_ok)
                                break;
                        if (next_send == n_cmds - 1 && accepted == 0)
                                break;
                        /* Each command fits in 1024 bytes: addresses <= 256, parameters
                         * bounded in smtp_session_build_command(); -ENOBUFS would be a bug. */
                        for (size_t i = next_send; i < n_cmds && i < next_send + limit; i++) {
                                r = smtp_session_build_command(&b, c, job, d, i);
                                if (r < 0) {
                                        smtp_error_set(&e, DELIVERY_DEFERRED, "4.3.0",
                                                       "internal error: command too long");
                                        smtp_session_results_rest(d, results, &e, c->relay);
                                        return 0;
                                }
                        }
                        next_send = next_send + limit < n_cmds ? next_send + limit : n_cmds;
                        r = smtp_conn_write(c, b.p, b.len);
                        if (r < 0 && c->reused && next_read == 0)
                                return SMTP_SESSION_STALE;
                        if (r < 0) {
                                smtp_error_io(&e, c, r, next_read == 0 ? "sending MAIL FROM" : "sending RCPT TO");
                                smtp_session_results_rest(d, results, &e, c->relay);
                                return 0;
                        }
                }
                r = smtp_conn_read_reply(c, &reply, c->reply_timeout_usec);
                /* A cached connection the server closed meanwhile: nothing
                 * was said yet, so a new connection takes over. */
                if (r < 0 && r != -ETIMEDOUT && c->reused && next_read == 0)
                        return SMTP_SESSION_STALE;
                if (r < 0) {
                        smtp_error_io(&e, c, r,
                                      next_read == 0 ? "sending MAIL FROM" :
                                      next_read < n_cmds - 1 ? "sending RCPT TO" : "sending DATA command");
                        smtp_session_results_rest(d, results, &e, c->relay);
                        return 0;
                }
                if (next_read == 0) {
                        if (reply.code / 100 == 2)
                                mail_ok = true;
                        else {
                                smtp_error_remote(&e, c, &reply, "MAIL FROM command");
                                smtp_session_results_rest(d, results, &e, c->relay);
                        }
                } else if (next_read < n_cmds - 1) {
                        DeliveryResult *res = &results[d->ks[next_read - 1]];
                        if (mail_ok) {
                                smtp_error_remote(&e, c, &reply, "RCPT TO command");
                                smtp_result_set(res, &e, c->relay);
                                if (e.status == DELIVERY_DELIVERED)
                                        accepted++;
                        }
                } else
                        data_code = reply.code;
                next_read++;
        }

        if (data_code == 354 && (!mail_ok || accepted == 0)) {
                /* A pipelined DATA the server accepted although no RCPT was
                 * (RFC 2920 3.1): send an empty message end and drop it. */
                if (smtp_conn_write(c, ".\r\n", 3) >= 0)
                        (void) smtp_conn_read_reply(c, &reply, c->reply_timeout_usec);
        }
        if (!mail_ok || accepted == 0)
                return 0;
        if (data_code != 354) {
                smtp_error_remote(&e, c, &reply, "DATA command");
                if (e.status == DELIVERY_DELIVERED) /* 2xx to DATA: a broken server */
                        smtp_error_set(&e, DELIVERY_DEFERRED, "4.5.0", "%s", e.text);
                smtp_session_results_rest(d, results, &e, c->relay);
                return 0;
        }

        r = smtp_session_send_body(c, job->body, job->body_len);
        if (r < 0) {
                smtp_error_io(&e, c, r, "sending message body");
                smtp_session_results_rest(d, results, &e, c->relay);
                return 0;
        }
        /* SMTP: one reply for the message. LMTP (RFC 2033 4.2): one per
         * accepted recipient, in RCPT order. */
        for (size_t k = 0; k < d->n; k++) {
                DeliveryResult *res = &results[d->ks[k]];

                if (c->lmtp && res->status != DELIVERY_DELIVERED)
                        continue;
                r = smtp_conn_read_reply(c, &reply, c->reply_timeout_usec);
                if (r < 0) {
                        /* The server may have the message: a retry can duplicate it
                         * (RFC 1047), which is better than losing it. */
                        smtp_error_io(&e, c, r, "sending end of data -- message may be sent more than once");
                        smtp_session_results_rest(d, results, &e, c->relay);
                        return 0;
                }
                if (reply.code / 100 == 2)
                        smtp_error_reply(&e, c, &reply, "", NULL);
                else
                        smtp_error_remote(&e, c, &reply, "end of DATA command");
                if (!c->lmtp) {
                        smtp_session_results_rest(d, results, &e, c->relay);
                        break;
                }
                smtp_result_set(res, &e, c->relay);
        }
        *ret_clean = true; /* every reply read: the connection can carry another message */
        /* A next hop that speaks DSN took the NOTIFY duty over (RFC 3461 4.1):
         * queued reports "relayed" rather than sending "delivered" itself. */
        for (size_t k = 0; k < d->n; k++)
                if (results[d->ks[k]].status == DELIVERY_DELIVERED)
                        results[d->ks[k]].dsn_relayed = c->dsn && !c->lmtp;
        return 0;
}

/* Sends one EHLO (or LHLO) and records the extensions. Falls back to HELO
 * for SMTP when EHLO is refused with 5xx (RFC 5321 3.2). 1 when done, 0
 * when the host cannot be used (*err). */
static int smtp_session_hello(SmtpConn *c, const char *helo, SmtpError *err) {
        char line[MX_NAME_MAX + 16];
        SmtpReply reply;
        int r;

        c->pipelining = c->size = c->eightbitmime = c->smtputf8 = c->dsn = c->starttls = false;
        c->auth_plain = c->auth_login = false;
        c->size_max = 0;
        (void) snprintf(line, sizeof(line), "%s %s\r\n", c->lmtp ? "LHLO" : "EHLO", helo);
        r = smtp_conn_write(c, line, strlen(line));
        if (r >= 0)
                r = smtp_conn_read_reply(c, &reply, c->reply_timeout_usec);
        if (r < 0) {
                smtp_error_io(err, c, r, c->lmtp ? "performing the LHLO handshake" : "performing the EHLO handshake");
                return 0;
        }
        if (reply.code / 100 == 2) {
                smtp_session_parse_ehlo(c, &reply);
                return 1;
        }
        if (reply.code / 100 != 5 || c->lmtp) {
                smtp_error_remote(err, c, &reply, c->lmtp ? "LHLO command" : "EHLO command");
                return 0;
        }
        (void) snprintf(line, sizeof(line), "HELO %s\r\n", helo);
        r = smtp_conn_write(c, line, strlen(line));
        if (r >= 0)
                r = smtp_conn_read_reply(c, &reply, c->reply_timeout_usec);
        if (r < 0) {
                smtp_error_io(err, c, r, "performing the HELO handshake");
                return 0;
        }
        if (reply.code / 100 != 2) {
                smtp_error_remote(err, c, &reply, "HELO command");
                return 0;
        }
        return 1;
}

/* STARTTLS by level. 1 on TLS (or plaintext allowed), 0 with *err when
 * the host cannot be used, SMTP_SESSION_RETRY_PLAIN for "may" after a
 * failed handshake. */
static int smtp_session_starttls(SmtpConn *c, const SmtpSessionParams *p, const DeliveryJob *job,
                                 const char *helo, SmtpError *err) {
        char why[300], desc[160];
        SmtpReply reply;
        int r;

        if (p->tls_level == TLS_NONE || (p->tls_level == TLS_MAY && (!c->starttls || !job->tls_ctx)))
                return 1;
        if (!c->starttls) {
                smtp_error_set(err, DELIVERY_DEFERRED, "4.7.5",
                               "TLS is required, but was not offered by host %s[%s]", c->host, c->addr);
                return 0;
        }
        if (!job->tls_ctx) {
                smtp_error_set(err, DELIVERY_DEFERRED, "4.7.5", "TLS is required, but no TLS context could be made");
                return 0;
        }
        r = smtp_conn_write(c, "STARTTLS\r\n", 10);
        if (r >= 0)
                r = smtp_conn_read_reply(c, &reply, c->reply_timeout_usec);
        if (r < 0) {
                smtp_error_io(err, c, r, "sending STARTTLS");
                return 0;
        }
        if (reply.code != 220) {
                if (p->tls_level == TLS_MAY)
                        return 1; /* refused: go on in plaintext, as Postfix does */
                smtp_error_remote(err, c, &reply, "STARTTLS command");
                err->status = DELIVERY_DEFERRED;
                (void) snprintf(err->dsn, sizeof(err->dsn), "4.7.5");
                return 0;
        }
        /* Bytes after the 220 were sent before TLS: an injection attempt
         * (RFC 3207 5, CVE-2011-0411). Drop them with the connection. */
        if (smtp_conn_has_unread(c)) {
                smtp_error_set(err, DELIVERY_DEFERRED, "4.7.5",
                               "host %s[%s] sent data after its STARTTLS reply", c->host, c->addr);
                return p->tls_level == TLS_MAY ? SMTP_SESSION_RETRY_PLAIN : 0;
        }
        c->len = c->consumed = 0;
        r = tls_client_start(c, job->tls_ctx, p->tls_level, p->tls_name, why, sizeof(why));
        if (r < 0) {
                smtp_error_set(err, DELIVERY_DEFERRED, "4.7.5", "%s with host %s[%s]", why, c->host, c->addr);
                log_notice("%s: %s", job->env->id, err->text);
                return p->tls_level == TLS_MAY && r != -ENOMEM ? SMTP_SESSION_RETRY_PLAIN : 0;
        }
        tls_client_describe(c, desc, sizeof(desc));
        log_info("%s: %s TLS connection established to %s: %s", job->env->id,
                 p->tls_level == TLS_VERIFY ? "Verified" : "Untrusted", c->relay, desc);
        /* RFC 3207 4.2: forget everything learnt before TLS. */
        r = smtp_session_hello(c, helo, err);
        return r;
}

/* AUTH PLAIN or LOGIN (RFC 4954, 4616) with the relay's credentials, only
 * over TLS: a password is never sent in the clear. 1 done, 0 with *err. */
static int smtp_session_auth(SmtpConn *c, const SmtpSessionParams *p, SmtpError *err) {
        _cleanup_free_ char *line = NULL, *raw = NULL;
        size_t ul, pl;
        SmtpReply reply;
        int r, n;

        if (!p->auth_user)
                return 1;
        if (!c->ssl) {
                smtp_error_set(err, DELIVERY_DEFERRED, "4.7.0",
                               "not sending credentials for %s[%s] over an unencrypted connection", c->host,
                               c->addr);
                return 0;
        }
        if (!c->auth_plain && !c->auth_login) {
                smtp_error_set(err, DELIVERY_DEFERRED, "4.7.0",
                               "SASL authentication failed: host %s[%s] offers no PLAIN or LOGIN mechanism",
                               c->host, c->addr);
                return 0;
        }
        ul = strlen(p->auth_user);
        pl = strlen(p->auth_password);
        if (ul > 255 || pl > 255) {
                smtp_error_set(err, DELIVERY_DEFERRED, "4.7.0", "SASL credentials for %s too long", c->relay);
                return 0;
        }
        line = malloc(SMTP_AUTH_LINE_MAX);
        raw = malloc(ul + pl + 2);
        if (!line || !raw)
                return -ENOMEM;

        if (c->auth_plain) {
                /* authzid NUL authcid NUL password */
                raw[0] = 0;
                memcpy(raw + 1, p->auth_user, ul);
                raw[1 + ul] = 0;
                memcpy(raw + 2 + ul, p->auth_password, pl);
                memcpy(line, "AUTH PLAIN ", 11);
                n = EVP_EncodeBlock((unsigned char *) line + 11, (const unsigned char *) raw, (int) (ul + pl + 2));
                memcpy(line + 11 + n, "\r\n", 2);
                r = smtp_conn_write(c, line, 11 + (size_t) n + 2);
                explicit_bzero(line, SMTP_AUTH_LINE_MAX);
                explicit_bzero(raw, ul + pl + 2);
                if (r >= 0)
                        r = smtp_conn_read_reply(c, &reply, c->reply_timeout_usec);
        } else {
                const char *parts[2] = { p->auth_user, p->auth_password };
                size_t lens[2] = { ul, pl };

                r = smtp_conn_write(c, "AUTH LOGIN\r\n", 12);
                if (r >= 0)
                        r = smtp_conn_read_reply(c, &reply, c->reply_timeout_usec);
                for (int i = 0; i < 2 && r >= 0 && reply.code == 334; i++) {
                        n = EVP_EncodeBlock((unsigned char *) line, (const unsigned char *) parts[i], (int) lens[i]);
                        memcpy(line + n, "\r\n", 2);
                        r = smtp_conn_write(c, line, (size_t) n + 2);
                        explicit_bzero(line, SMTP_AUTH_LINE_MAX);
                        if (r >= 0)
                                r = smtp_conn_read_reply(c, &reply, c->reply_timeout_usec);
                }
        }
        if (r < 0) {
                smtp_error_io(err, c, r, "authenticating");
                return 0;
        }
        if (reply.code != 235) {
                /* Wrong credentials are the administrator's to fix: keep the
                 * mail (Postfix defers on SASL failures too). */
                smtp_error_remote(err, c, &reply, "AUTH command");
                err->status = DELIVERY_DEFERRED;
                if (err->dsn[0] == '5')
                        err->dsn[0] = '4';
                return 0;
        }
        return 1;
}

int smtp_session_run(SmtpConn *c, const SmtpSessionParams *p, const DeliveryJob *job, const SmtpDest *d,
                     DeliveryResult *results, SmtpError *err) {
        SmtpReply reply;
        int r;

        r = smtp_conn_read_reply(c, &reply, c->reply_timeout_usec);
        if (r < 0) {
                smtp_error_io(err, c, r, "receiving the initial server greeting");
                smtp_conn_close(c);
                return SMTP_SESSION_NEXT_HOST;
        }
        if (reply.code / 100 != 2) {
                char prefix[MX_NAME_MAX + INET6_ADDRSTRLEN + 40];
                (void) snprintf(prefix, sizeof(prefix), "host %s[%s] refused to talk to me: ", c->host, c->addr);
                smtp_error_reply(err, c, &reply, prefix, NULL);
                smtp_conn_quit(c); /* RFC 5321 3.1: a 554 greeting still expects QUIT */
                return SMTP_SESSION_NEXT_HOST;
        }

        r = smtp_session_hello(c, p->helo, err);
        if (r > 0)
                r = smtp_session_starttls(c, p, job, p->helo, err);
        if (r == SMTP_SESSION_RETRY_PLAIN) {
                smtp_conn_close(c);
                return r;
        }
        if (r > 0)
                r = smtp_session_auth(c, p, err);
        if (r <= 0) {
                smtp_conn_quit(c);
                return r < 0 ? r : SMTP_SESSION_NEXT_HOST;
        }

        return smtp_session_mail(c, p, job, d, results);
}

int smtp_session_mail(SmtpConn *c, const SmtpSessionParams *p, const DeliveryJob *job, const SmtpDest *d,
                      DeliveryResult *results) {
        bool clean = false;
        SmtpError e;
        int r;

        /* Refusals decided here before any transaction: they apply to all. */
        if (c->size && c->size_max > 0 && job->body_len > c->size_max) {
                smtp_error_set(&e, DELIVERY_BOUNCED, "5.3.4",
                               "message size %zu exceeds size limit %" PRIu64 " of server %s[%s]", job->body_len,
                               c->size_max, c->host, c->addr);
                smtp_session_results_rest(d, results, &e, c->relay);
                smtp_conn_quit(c);
                return SMTP_SESSION_DONE;
        }
        if (!c->smtputf8) {
                bool needed = !smtp_is_ascii(job->env->sender ? job->env->sender : "");
                for (size_t k = 0; k < d->n && !needed; k++)
                        needed = !smtp_is_ascii(job->env->rcpts[job->rcpt_index[d->ks[k]]].addr);
                if (needed) {
                        smtp_error_set(&e, DELIVERY_BOUNCED, "5.6.7",
                                       "SMTPUTF8 is required, but was not offered by host %s[%s]", c->host,
                                       c->addr);
                        smtp_session_results_rest(d, results, &e, c->relay);
                        smtp_conn_quit(c);
                        return SMTP_SESSION_DONE;
                }
        }

        r = smtp_session_transaction(c, job, d, results, &clean);
        if (r == SMTP_SESSION_STALE)
                return r;
        if (r < 0 || !clean || !p->keep)
                smtp_conn_quit(c);
        return r < 0 ? r : SMTP_SESSION_DONE;
}
