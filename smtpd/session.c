/* The SMTP state table: for every verb one check (is the command allowed in
 * this state? RFC 5321 4.1.4) and one proceed function, as in OpenSMTPD's
 * smtp_session.c. Also the main command loop, replies, error counting and the
 * connect/reject/disconnect log lines administrators search for. */
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <strings.h>

#include "log.h"
#include "session.h"

#define HELP_TEXT "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP"

static const char *const role_names[_SMTPD_ROLE_MAX] = {
        [SMTPD_ROLE_SMTP] = "smtp",
        [SMTPD_ROLE_SUBMISSION] = "submission",
        [SMTPD_ROLE_SUBMISSIONS] = "submissions",
};

SmtpdRole smtpd_role_from_string(const char *s) {
        for (SmtpdRole r = 0; r < _SMTPD_ROLE_MAX; r++)
                if (streq(s, role_names[r]))
                        return r;
        return _SMTPD_ROLE_INVALID;
}

const char *smtpd_role_to_string(SmtpdRole r) {
        return r >= 0 && r < _SMTPD_ROLE_MAX ? role_names[r] : NULL;
}

void session_init(Session *s, const Config *config, SmtpdRole role, QueueClient *queue,
                  int in_fd, int out_fd) {
        memset(s, 0, sizeof(*s));
        s->config = config;
        s->role = role;
        s->queue = queue;
        s->last_verb = _SMTP_VERB_INVALID;
        io_init(&s->io, in_fd, out_fd, config->timeout_usec, config->session_timeout_usec);
}

static int session_vreply(Session *s, unsigned code, const char *fmt, va_list ap) {
        char text[IO_REPLY_MAX];

        (void) vsnprintf(text, sizeof(text), fmt, ap);
        if (code >= 400)
                s->n_errors++;
        return io_reply(&s->io, "%u %s", code, text);
}

int session_reply(Session *s, unsigned code, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = session_vreply(s, code, fmt, ap);
        va_end(ap);
        return r;
}

int session_reject(Session *s, const char *stage, const char *rcpt, unsigned code,
                   const char *fmt, ...) {
        char text[IO_REPLY_MAX], to[SESSION_PATH_MAX + 8] = "", dsn[16] = "";
        va_list ap;
        LogField fields[] = {
                { "MESSAGE_ID", LOG_MID_REJECT },
                { "TERN_FROM", s->in_transaction ? s->sender : NULL },
                { "TERN_RCPT", rcpt },
                { "TERN_STATUS", "reject" },
                { "TERN_DSN", NULL },
        };

        va_start(ap, fmt);
        (void) vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        /* The reply text starts with its enhanced status code ("5.7.1 ..."). */
        if (text[0] >= '2' && text[0] <= '5' && text[1] == '.' && strcspn(text, " ") < sizeof(dsn)) {
                memcpy(dsn, text, strcspn(text, " "));
                fields[4].value = dsn;
        }
        queue_client_note_reject(s->queue, stage, text);
        if (rcpt)
                (void) snprintf(to, sizeof(to), " to=<%s>", rcpt);
        if (s->in_transaction)
                log_fields(LOG_INFO, fields, "%s: reject: %s from %s: %u %s; from=<%s>%s proto=%s helo=<%s>",
                           s->queue_id, stage, s->client, code, text, s->sender, to,
                           s->esmtp ? "ESMTP" : "SMTP", s->helo);
        else
                log_fields(LOG_INFO, fields, "NOQUEUE: reject: %s from %s: %u %s;%s proto=%s helo=<%s>",
                           stage, s->client, code, text, to, s->esmtp ? "ESMTP" : "SMTP", s->helo);
        return session_reply(s, code, "%s", text);
}

void session_queue_failed(Session *s, int err, const char *what) {
        s->queue_broken = true;
        (void) log_error_errno(err, "%s%swarning: queued failed during %s, refusing mail with 451 4.3.0: %m",
                               s->in_transaction ? s->queue_id : "",
                               s->in_transaction ? ": " : "", what);
}

void session_transaction_reset(Session *s) {
        if (s->in_transaction && !s->queue_broken) {
                int r = queue_client_abort(s->queue);

                if (r < 0)
                        session_queue_failed(s, r, "abort");
        }
        s->in_transaction = false;
        s->queue_id[0] = 0;
        s->sender[0] = 0;
        s->first_rcpt[0] = 0;
        s->n_rcpt = 0;
        s->envid[0] = 0;
        s->ret[0] = 0;
        s->smtputf8 = false;
        session_bdat_reset(s);
        (void) log_context_set("TERN_QUEUE_ID", NULL);
}

/* ---- checks: is the verb allowed in this state? Returns 0, or replies and returns 1. */

static int check_mail(Session *s, const Command *c) {
        if (!s->have_helo)
                return session_reply(s, 503, "5.5.1 Error: send HELO/EHLO first"), 1;
        if (s->in_transaction)
                return session_reply(s, 503, "5.5.1 Error: nested MAIL command"), 1;
        return session_auth_check_mail(s);
}

static int check_rcpt(Session *s, const Command *c) {
        if (!s->in_transaction)
                return session_reply(s, 503, "5.5.1 Error: need MAIL command"), 1;
        return 0;
}

static int check_data(Session *s, const Command *c) {
        if (!s->in_transaction)
                return session_reply(s, 503, "5.5.1 Error: need MAIL command"), 1;
        if (s->n_rcpt == 0)
                return session_reply(s, 503, "5.5.1 Error: need RCPT command"), 1;
        /* RFC 3030 3: DATA and BDAT do not mix in one transaction. */
        if (s->bdat)
                return session_reply(s, 503, "5.5.1 Error: DATA can not be used with BDAT"), 1;
        return 0;
}

/* ---- proceed functions of the simple verbs */

static int proceed_helo(Session *s, const Command *c) {
        /* RFC 5321 4.1.4: HELO/EHLO mid-transaction resets it, like RSET. */
        session_transaction_reset(s);
        memcpy(s->helo, c->arg, c->arg_len);
        s->helo[c->arg_len] = 0;
        s->have_helo = true;
        s->esmtp = c->verb == SMTP_VERB_EHLO;
        if (!s->esmtp)
                return session_reply(s, 250, "%s", s->config->hostname);

        (void) io_reply(&s->io, "250-%s", s->config->hostname);
        (void) io_reply(&s->io, "250-PIPELINING");
        /* RFC 1870: SIZE with the limit; 0 means "no fixed limit". */
        (void) io_reply(&s->io, "250-SIZE %" PRIu64, s->config->message_size_limit);
        (void) io_reply(&s->io, "250-ENHANCEDSTATUSCODES");
        if (session_offers_starttls(s))
                (void) io_reply(&s->io, "250-STARTTLS");
        if (session_offers_auth(s))
                (void) io_reply(&s->io, "250-AUTH PLAIN LOGIN");
        (void) io_reply(&s->io, "250-8BITMIME");
        (void) io_reply(&s->io, "250-DSN");
        (void) io_reply(&s->io, "250-SMTPUTF8");
        return io_reply(&s->io, "250 CHUNKING");
}

static int proceed_rset(Session *s, const Command *c) {
        session_transaction_reset(s);
        return session_reply(s, 250, "2.0.0 Ok");
}

static int proceed_noop(Session *s, const Command *c) {
        return session_reply(s, 250, "2.0.0 Ok");
}

static int proceed_quit(Session *s, const Command *c) {
        s->quit = true;
        return session_reply(s, 221, "2.0.0 Bye");
}

static int proceed_vrfy(Session *s, const Command *c) {
        /* RFC 5321 3.5.3: 252 when we will not verify, but may deliver.
         * Answering VRFY truthfully would let anyone harvest user names. */
        return session_reply(s, 252, "2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
}

static int proceed_help(Session *s, const Command *c) {
        return session_reply(s, 214, "2.0.0 " HELP_TEXT);
}

typedef struct SessionVerb {
        int (*check)(Session *s, const Command *c);
        int (*proceed)(Session *s, const Command *c);
        const char *syntax; /* reply text after "501 5.5.4 " for a malformed argument */
} SessionVerb;

static const SessionVerb session_verbs[_SMTP_VERB_MAX] = {
        [SMTP_VERB_HELO] = { NULL, proceed_helo, "Syntax: HELO hostname" },
        [SMTP_VERB_EHLO] = { NULL, proceed_helo, "Syntax: EHLO hostname" },
        [SMTP_VERB_MAIL] = { check_mail, session_mail, "Syntax: MAIL FROM:<address>" },
        [SMTP_VERB_RCPT] = { check_rcpt, session_rcpt, "Syntax: RCPT TO:<address>" },
        [SMTP_VERB_DATA] = { check_data, session_data, "Syntax: DATA" },
        [SMTP_VERB_RSET] = { NULL, proceed_rset, "Syntax: RSET" },
        [SMTP_VERB_NOOP] = { NULL, proceed_noop, "Syntax: NOOP" },
        [SMTP_VERB_QUIT] = { NULL, proceed_quit, "Syntax: QUIT" },
        [SMTP_VERB_VRFY] = { NULL, proceed_vrfy, "Syntax: VRFY address" },
        [SMTP_VERB_HELP] = { NULL, proceed_help, "Syntax: HELP" },
        [SMTP_VERB_STARTTLS] = { NULL, session_starttls, "Syntax: STARTTLS" },
        [SMTP_VERB_AUTH] = { NULL, session_auth, "Syntax: AUTH mechanism [initial-response]" },
        /* BDAT checks the state itself: a refused chunk must still be read. */
        [SMTP_VERB_BDAT] = { NULL, session_bdat, "Syntax: BDAT count [LAST]" },
};

/* smtpd_junk_command_limit: commands that move no mail, which a client can
 * repeat forever to hold a session open. */
static bool junk_limit_reached(Session *s, SmtpVerb v) {
        if (v != SMTP_VERB_NOOP && v != SMTP_VERB_RSET && v != SMTP_VERB_VRFY && v != SMTP_VERB_HELP)
                return false;
        if (s->config->junk_command_limit == 0 || ++s->n_junk <= s->config->junk_command_limit)
                return false;
        s->why = "too many junk commands";
        s->quit = true;
        (void) session_reply(s, 421, "4.7.0 %s Error: too many junk commands", s->config->hostname);
        return true;
}

/* The reply for a line that did not parse, once the verb's state check passed. */
static void reply_parse_error(Session *s, const Command *c, CommandError e) {
        switch (e) {
        case COMMAND_BAD_PATH:
        case COMMAND_PATH_TOO_LONG:
                if (c->verb == SMTP_VERB_MAIL)
                        session_reject(s, "MAIL", NULL, 501, "5.1.7 Bad sender address syntax");
                else
                        session_reject(s, "RCPT", NULL, 501, "5.1.3 Bad recipient address syntax");
                return;
        case COMMAND_BAD_PARAM:
        case COMMAND_TOO_MANY_PARAMS:
                session_reply(s, 501, "5.5.4 Syntax error in parameters");
                return;
        default:
                session_reply(s, 501, "5.5.4 %s", session_verbs[c->verb].syntax);
        }
}

static void session_command(Session *s, const char *line, size_t len) {
        const SessionVerb *v;
        unsigned errors_before = s->n_errors;
        CommandError e;
        Command c;

        e = command_parse(line, len, &c);
        if (c.verb < 0) {
                s->n_unknown++;
                session_reply(s, 500, "5.5.2 Error: command not recognized");
                return;
        }
        s->last_verb = c.verb;
        s->n_total[c.verb]++;
        if (len + 2 > COMMAND_LINE_MAX && c.verb != SMTP_VERB_MAIL && c.verb != SMTP_VERB_RCPT &&
            c.verb != SMTP_VERB_AUTH) {
                session_reply(s, 500, "5.5.0 Error: line too long");
                return;
        }
        if (junk_limit_reached(s, c.verb))
                return;
        v = &session_verbs[c.verb];
        if (v->check && v->check(s, &c) != 0)
                return;
        if (e != COMMAND_OK) {
                /* "BDAT 10 FIRST": the client sends its 10 octets anyway;
                 * they are data, not commands. */
                if (c.verb == SMTP_VERB_BDAT && c.bdat_sized)
                        session_bdat_skip(s, c.bdat_size);
                reply_parse_error(s, &c, e);
        }
        else
                (void) v->proceed(s, &c);
        if (s->n_errors == errors_before)
                s->n_ok[c.verb]++;
}

void session_log_connect(Session *s) {
        LogField fields[] = { { "MESSAGE_ID", LOG_MID_CONNECT } };

        log_fields(LOG_INFO, fields, "connect from %s", s->client);
}

/* "disconnect from name[addr] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4",
 * as Postfix counts: ok/total where they differ. */
static void log_disconnect(Session *s, const char *why) {
        char buf[512];
        size_t l = 0;
        unsigned ok = 0, total = s->n_unknown;

        buf[0] = 0;
        for (SmtpVerb v = 0; v < _SMTP_VERB_MAX; v++) {
                const char *verb = command_verb_to_string(v);
                char name[16];
                size_t i;
                int n;

                if (s->n_total[v] == 0)
                        continue;
                for (i = 0; verb[i] && i < sizeof(name) - 1; i++)
                        name[i] = (char) (verb[i] | 0x20);
                name[i] = 0;
                if (s->n_ok[v] == s->n_total[v])
                        n = snprintf(buf + l, sizeof(buf) - l, " %s=%u", name, s->n_total[v]);
                else
                        n = snprintf(buf + l, sizeof(buf) - l, " %s=%u/%u", name, s->n_ok[v], s->n_total[v]);
                if (n > 0 && (size_t) n < sizeof(buf) - l)
                        l += (size_t) n;
                ok += s->n_ok[v];
                total += s->n_total[v];
        }
        if (s->n_unknown > 0) {
                int n = snprintf(buf + l, sizeof(buf) - l, " unknown=0/%u", s->n_unknown);

                if (n > 0 && (size_t) n < sizeof(buf) - l)
                        l += (size_t) n;
        }
        if (why)
                log_info("%s after %s from %s", why,
                         s->last_verb >= 0 ? command_verb_to_string(s->last_verb) : "CONNECT", s->client);
        if (ok == total)
                log_info("disconnect from %s%s commands=%u", s->client, buf, total);
        else
                log_info("disconnect from %s%s commands=%u/%u", s->client, buf, ok, total);
}

/* Postfix postscreen's PREGREET test: a real SMTP client waits for the
 * greeting (RFC 5321 3.1); spam engines often talk at once. Waits
 * PregreetWait (at least looks once) for input before the greeting. Returns
 * true after rejecting a client that talked first. */
static bool pregreet(Session *s) {
        uint64_t wait = s->config->pregreet_wait_usec, start = io_now_usec();
        struct pollfd p = { .fd = s->io.in_fd, .events = POLLIN };
        char buf[256], shown[4 * 64 + 1];
        size_t l = 0;
        ssize_t n;
        int r;

        /* Port 465 starts with the client's TLS hello, by design. */
        if (s->role == SMTPD_ROLE_SUBMISSIONS)
                return false;
        /* A local client (sendmail -bs, a pipe) is a program of this host,
         * and scripts write their whole dialogue at once. */
        if (streq(s->client_addr, "local"))
                return false;
        do
                r = poll(&p, 1, (int) ((wait + 999) / 1000));
        while (r < 0 && errno == EINTR);
        if (r <= 0 || !(p.revents & POLLIN))
                return false;
        n = read(s->io.in_fd, buf, sizeof(buf));
        if (n <= 0)
                return false; /* gone or nothing after all: the session will see */
        for (ssize_t i = 0; i < n && l + 5 < sizeof(shown) && i < 64; i++) {
                unsigned char c = (unsigned char) buf[i];
                int w = c >= 32 && c < 127 && c != '\\'
                                ? snprintf(shown + l, sizeof(shown) - l, "%c", c)
                                : c == '\r' ? snprintf(shown + l, sizeof(shown) - l, "\\r")
                                : c == '\n' ? snprintf(shown + l, sizeof(shown) - l, "\\n")
                                : snprintf(shown + l, sizeof(shown) - l, "\\x%02x", c);

                if (w > 0)
                        l += (size_t) w;
        }
        shown[l] = 0;
        {
                LogField fields[] = { { "MESSAGE_ID", LOG_MID_REJECT }, { "TERN_STATUS", "reject" } };

                log_fields(LOG_INFO, fields, "PREGREET %zd after %.2f from %s: %s", n,
                           (double) (io_now_usec() - start) / 1e6, s->client, shown);
        }
        s->why = "talked before greeting";
        (void) io_reply(&s->io, "554 5.5.1 %s Protocol error: talked before greeting",
                        s->config->hostname);
        return true;
}

int session_run(Session *s) {
        int r = 0;

        if (pregreet(s)) {
                (void) io_flush(&s->io);
                log_disconnect(s, s->why);
                return 0;
        }

        /* Port 465 (RFC 8314 3.3): TLS first, then the greeting inside it.
         * Port 587 without a certificate says so (session_tls.c). */
        if (s->role != SMTPD_ROLE_SMTP)
                r = session_tls_begin(s);
        if (r >= 0)
                r = io_reply(&s->io, "220 %s %s", s->config->hostname,
                             isempty(s->config->banner) ? "ESMTP tern" : s->config->banner);

        while (r >= 0 && !s->quit) {
                const char *line;
                size_t len;

                r = io_read_line(&s->io, COMMAND_LINE_DSN_MAX, &line, &len);
                if (r == -E2BIG) {
                        session_reply(s, 500, "5.5.0 Error: line too long");
                        r = 0;
                } else if (r == -ETIMEDOUT) {
                        s->why = "timeout";
                        (void) io_reply(&s->io, "421 4.4.2 %s Error: timeout exceeded",
                                        s->config->hostname);
                        break;
                } else if (r < 0) {
                        s->why = "lost connection";
                        break;
                } else
                        session_command(s, line, len);

                if (!s->quit && s->config->hard_error_limit > 0 &&
                    s->n_errors >= s->config->hard_error_limit) {
                        s->why = "too many errors";
                        (void) io_reply(&s->io, "421 4.7.0 %s Error: too many errors",
                                        s->config->hostname);
                        break;
                }
        }
        session_transaction_reset(s);
        (void) io_flush(&s->io);
        io_done(&s->io);
        if (!s->queue_broken)
                (void) queue_client_report(s->queue);
        log_disconnect(s, s->why);
        return r < 0 && r != -ECONNRESET && r != -ETIMEDOUT ? r : 0;
}
