/* MAIL and RCPT: the envelope of a transaction, its ESMTP parameters, and the
 * relay decision (DESIGN promise 4) before anything is asked of queued. */
#include <strings.h>

#include "log.h"
#include "network.h"
#include "policy.h"
#include "route.h"
#include "session.h"

/* SIZE=<digits> (RFC 1870). Returns 0, or -EINVAL. Values beyond 2^64 are
 * clamped: they only need to compare as "too large". */
static int parse_size(const CommandParam *p, uint64_t *ret) {
        uint64_t v = 0;

        if (!p->value || p->value_len == 0)
                return -EINVAL;
        for (size_t i = 0; i < p->value_len; i++) {
                unsigned d;

                if (p->value[i] < '0' || p->value[i] > '9')
                        return -EINVAL;
                d = (unsigned) (p->value[i] - '0');
                v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
        }
        *ret = v;
        return 0;
}

/* A parameter given twice: RFC 3461 and RFC 1870 allow each once. */
static bool param_seen(unsigned *seen, unsigned bit) {
        if (*seen & bit)
                return true;
        *seen |= bit;
        return false;
}

enum {
        SEEN_SIZE = 1 << 0,
        SEEN_BODY = 1 << 1,
        SEEN_RET = 1 << 2,
        SEEN_ENVID = 1 << 3,
        SEEN_SMTPUTF8 = 1 << 4,
        SEEN_NOTIFY = 1 << 5,
        SEEN_ORCPT = 1 << 6,
};

/* The MAIL parameters of one transaction, validated. */
typedef struct MailParams {
        uint64_t size;
        const char *body_type;
        const char *ret;
        char envid[COMMAND_ENVID_MAX + 1];
        bool smtputf8;
} MailParams;

/* Returns 0, or replies and returns 1. */
static int mail_params(Session *s, const Command *c, MailParams *m) {
        unsigned seen = 0;

        for (size_t i = 0; i < c->n_params; i++) {
                const CommandParam *p = &c->params[i];

                if (command_param_is(p, "SIZE")) {
                        if (param_seen(&seen, SEEN_SIZE) || parse_size(p, &m->size) < 0)
                                return session_reply(s, 501, "5.5.4 Bad message size syntax"), 1;
                } else if (command_param_is(p, "BODY")) {
                        /* RFC 6152: only the two values we advertise. */
                        if (param_seen(&seen, SEEN_BODY))
                                return session_reply(s, 501, "5.5.4 Bad BODY keyword"), 1;
                        if (p->value && p->value_len == 4 && strncasecmp(p->value, "7BIT", 4) == 0)
                                m->body_type = "7BIT";
                        else if (p->value && p->value_len == 8 && strncasecmp(p->value, "8BITMIME", 8) == 0)
                                m->body_type = "8BITMIME";
                        else
                                return session_reply(s, 501, "5.5.4 Bad BODY keyword"), 1;
                } else if (command_param_is(p, "RET")) {
                        /* RFC 3461 4.3: RET=FULL or RET=HDRS, once. */
                        if (param_seen(&seen, SEEN_RET) || !p->value)
                                return session_reply(s, 501, "5.5.4 Bad RET parameter syntax"), 1;
                        if (p->value_len == 4 && strncasecmp(p->value, "FULL", 4) == 0)
                                m->ret = "FULL";
                        else if (p->value_len == 4 && strncasecmp(p->value, "HDRS", 4) == 0)
                                m->ret = "HDRS";
                        else
                                return session_reply(s, 501, "5.5.4 Bad RET parameter syntax"), 1;
                } else if (command_param_is(p, "ENVID")) {
                        /* RFC 3461 4.4: xtext, at most 100 characters. */
                        if (param_seen(&seen, SEEN_ENVID) || !p->value ||
                            p->value_len > COMMAND_ENVID_MAX ||
                            !command_xtext_valid(p->value, p->value_len))
                                return session_reply(s, 501, "5.5.4 Bad ENVID parameter syntax"), 1;
                        memcpy(m->envid, p->value, p->value_len);
                        m->envid[p->value_len] = 0;
                } else if (command_param_is(p, "SMTPUTF8")) {
                        /* RFC 6531 3.4: no value. */
                        if (param_seen(&seen, SEEN_SMTPUTF8) || p->value)
                                return session_reply(s, 501, "5.5.4 Bad SMTPUTF8 parameter syntax"), 1;
                        m->smtputf8 = true;
                } else if (command_param_is(p, "AUTH") && session_offers_auth(s)) {
                        /* RFC 4954 5: AUTH=<> or the original submitter as xtext.
                         * Relaying clients send it (Postfix does); we do not take
                         * other servers' word for who submitted a message, so it
                         * is checked and dropped, as 4954 5 allows. */
                        if (!p->value || !((p->value_len == 2 && memcmp(p->value, "<>", 2) == 0) ||
                                           command_xtext_valid(p->value, p->value_len)))
                                return session_reply(s, 501, "5.5.4 Bad AUTH parameter syntax"), 1;
                } else
                        /* RFC 5321 4.1.1.11: a parameter we did not advertise. */
                        return session_reply(s, 555, "5.5.4 Unsupported option: %.*s",
                                             (int) p->key_len, p->key), 1;
        }
        return 0;
}

/* The RCPT parameters, validated; notify and orcpt are "" when absent. */
typedef struct RcptParams {
        char notify[32];
        char orcpt[COMMAND_ORCPT_MAX + 1];
} RcptParams;

static int rcpt_params(Session *s, const Command *c, RcptParams *rp) {
        unsigned seen = 0, mask;

        for (size_t i = 0; i < c->n_params; i++) {
                const CommandParam *p = &c->params[i];

                if (command_param_is(p, "NOTIFY")) {
                        if (param_seen(&seen, SEEN_NOTIFY) ||
                            command_parse_notify(p->value, p->value_len, &mask) < 0)
                                return session_reply(s, 501, "5.5.4 Bad NOTIFY parameter syntax"), 1;
                        command_format_notify(mask, rp->notify, sizeof(rp->notify));
                } else if (command_param_is(p, "ORCPT")) {
                        if (param_seen(&seen, SEEN_ORCPT) ||
                            command_check_orcpt(p->value, p->value_len, s->smtputf8) < 0)
                                return session_reply(s, 501, "5.5.4 Bad ORCPT parameter syntax"), 1;
                        memcpy(rp->orcpt, p->value, p->value_len);
                        rp->orcpt[p->value_len] = 0;
                } else
                        return session_reply(s, 555, "5.5.4 Unsupported option: %.*s",
                                             (int) p->key_len, p->key), 1;
        }
        return 0;
}

static void queue_refused(Session *s, const char *stage, const char *rcpt, const QueueReply *q) {
        (void) session_reject(s, stage, rcpt, q->code, "%s %s", q->dsn, q->text);
}

int session_mail(Session *s, const Command *c) {
        MailParams m = {};
        QueueReply refusal;
        char sender[SESSION_PATH_MAX];
        int r;

        if (mail_params(s, c, &m) != 0)
                return 0;
        if (address_format(&c->path, sender, sizeof(sender)) < 0)
                return session_reject(s, "MAIL", NULL, 501, "5.1.7 Bad sender address syntax");
        if (session_auth_check_sender(s, sender) != 0)
                return 0;
        /* RFC 6531 3.5: a UTF-8 address without SMTPUTF8. */
        if (c->path_utf8 && !m.smtputf8)
                return session_reject(s, "MAIL", NULL, 553,
                                      "5.6.7 Error: non-ASCII sender address requires SMTPUTF8");
        if (s->config->message_size_limit > 0 && m.size > s->config->message_size_limit)
                return session_reject(s, "MAIL", NULL, 552, "5.3.4 Message size exceeds fixed limit");
        if (s->queue_broken)
                return session_reply(s, 451, "4.3.0 Error: queue file write error");

        r = queue_client_begin(s->queue,
                               &(QueueEnvelope) {
                                       .sender = sender,
                                       .client_addr = s->client_addr,
                                       .client_name = s->client_name,
                                       .helo = s->helo,
                                       .proto = session_proto(s),
                                       .auth_user = s->auth_user[0] ? s->auth_user : NULL,
                                       .size = m.size,
                                       .body_type = m.body_type,
                                       .envid = m.envid[0] ? m.envid : NULL,
                                       .ret = m.ret,
                                       .smtputf8 = m.smtputf8,
                               },
                               s->queue_id, &refusal);
        if (r < 0) {
                session_queue_failed(s, r, "MAIL");
                return session_reply(s, 451, "4.3.0 Error: queue file write error");
        }
        if (r > 0) {
                queue_refused(s, "MAIL", NULL, &refusal);
                return 0;
        }
        s->in_transaction = true;
        memcpy(s->sender, sender, sizeof(sender));
        memcpy(s->envid, m.envid, sizeof(s->envid));
        (void) snprintf(s->ret, sizeof(s->ret), "%s", m.ret ?: "");
        s->smtputf8 = m.smtputf8;
        (void) log_context_set("TERN_QUEUE_ID", s->queue_id);
        {
                LogField fields[] = { { "TERN_FROM", s->sender } };

                log_fields(LOG_INFO, fields, "%s: client=%s%s%s", s->queue_id, s->client,
                           s->auth_user[0] ? ", sasl_username=" : "", s->auth_user);
        }
        return session_reply(s, 250, "2.1.0 Ok");
}

int session_rcpt(Session *s, const Command *c) {
        char rcpt[SESSION_PATH_MAX];
        RcptParams rp = {};
        PolicyRequest req;
        PolicyVerdict v;
        QueueReply refusal;
        int r;

        if (address_format(&c->path, rcpt, sizeof(rcpt)) < 0)
                return session_reject(s, "RCPT", NULL, 501, "5.1.3 Bad recipient address syntax");
        if (rcpt_params(s, c, &rp) != 0)
                return 0;
        if (c->path_utf8 && !s->smtputf8)
                return session_reject(s, "RCPT", NULL, 553,
                                      "5.6.7 Error: non-ASCII recipient address requires SMTPUTF8");
        if (s->config->recipient_limit > 0 && s->n_rcpt >= s->config->recipient_limit)
                return session_reject(s, "RCPT", rcpt, 452, "4.5.3 Error: too many recipients");
        if (s->config->session_recipient_limit > 0 &&
            s->n_rcpt_session >= s->config->session_recipient_limit)
                return session_reject(s, "RCPT", rcpt, 452,
                                      "4.5.3 Error: too many recipients in this session");

        /* Access tables: client, HELO and sender first, as Postfix runs its
         * client/helo/sender restrictions before the relay decision. */
        req = (PolicyRequest) {
                .client_addr = s->client_addr, .client = s->client, .helo = s->helo,
                .sender = s->sender, .rcpt = rcpt, .trusted = s->trusted,
        };
        policy_check_client(s->policy, &req, &v);
        if (v.action == POLICY_REFUSE || v.action == POLICY_ERROR)
                return session_reject(s, "RCPT", rcpt, v.code, "%s %s", v.dsn, v.text);

        if (isempty(c->path.domain)) {
                /* RFC 5321 4.5.1: "postmaster" without a domain must be
                 * accepted; it means the postmaster of this host. */
                if (strcasecmp(c->path.local, "postmaster") != 0)
                        return session_reject(s, "RCPT", rcpt, 504,
                                              "5.5.2 <%s>: Recipient address rejected: need fully-qualified address",
                                              rcpt);
                (void) snprintf(rcpt, sizeof(rcpt), "postmaster@%s", s->config->hostname);
        } else if (!route_domain_is_ours(s->config, c->path.domain)) {
                /* DESIGN promise 4: no open relay. '%', '!' and a quoted '@'
                 * could make a next hop relay onwards: never, for anyone.
                 * AUTH grants relaying (Postfix's permit_sasl_authenticated). */
                if (!(s->trusted || s->auth_user[0]) || address_has_routing_tricks(&c->path))
                        return session_reject(s, "RCPT", rcpt, 554, "5.7.1 <%s>: Relay access denied",
                                              rcpt);
        }

        /* Recipient access and the DNS blocklists, after the relay decision. */
        policy_check_recipient(s->policy, &req, &v);
        if (v.action == POLICY_REFUSE || v.action == POLICY_ERROR)
                return session_reject(s, "RCPT", rcpt, v.code, "%s %s", v.dsn, v.text);

        if (s->queue_broken)
                return session_reply(s, 451, "4.3.0 Error: queue file write error");
        r = queue_client_rcpt_dsn(s->queue, rcpt, rp.notify[0] ? rp.notify : NULL,
                                  rp.orcpt[0] ? rp.orcpt : NULL, &refusal);
        if (r < 0) {
                session_queue_failed(s, r, "RCPT");
                return session_reply(s, 451, "4.3.0 Error: queue file write error");
        }
        if (r > 0) {
                queue_refused(s, "RCPT", rcpt, &refusal);
                return 0;
        }
        if (s->n_rcpt == 0)
                memcpy(s->first_rcpt, rcpt, sizeof(rcpt));
        s->n_rcpt++;
        s->n_rcpt_session++;
        return session_reply(s, 250, "2.1.5 Ok");
}
