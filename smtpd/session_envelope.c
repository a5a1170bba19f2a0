/* MAIL and RCPT: the envelope of a transaction, its ESMTP parameters, and the
 * relay decision (DESIGN promise 4) before anything is asked of queued. */
#include <strings.h>

#include "log.h"
#include "network.h"
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

static void queue_refused(Session *s, const char *stage, const char *rcpt, const QueueReply *q) {
        (void) session_reject(s, stage, rcpt, q->code, "%s %s", q->dsn, q->text);
}

int session_mail(Session *s, const Command *c) {
        const char *body_type = NULL;
        uint64_t size = 0;
        QueueReply refusal;
        char sender[SESSION_PATH_MAX];
        int r;

        for (size_t i = 0; i < c->n_params; i++) {
                const CommandParam *p = &c->params[i];

                if (command_param_is(p, "SIZE")) {
                        if (parse_size(p, &size) < 0)
                                return session_reply(s, 501, "5.5.4 Bad message size syntax");
                } else if (command_param_is(p, "BODY")) {
                        /* RFC 6152: only the two values we advertise. */
                        if (p->value && p->value_len == 4 && strncasecmp(p->value, "7BIT", 4) == 0)
                                body_type = "7BIT";
                        else if (p->value && p->value_len == 8 && strncasecmp(p->value, "8BITMIME", 8) == 0)
                                body_type = "8BITMIME";
                        else
                                return session_reply(s, 501, "5.5.4 Bad BODY keyword");
                } else
                        /* RFC 5321 4.1.1.11: a parameter we did not advertise. */
                        return session_reply(s, 555, "5.5.4 Unsupported option: %.*s",
                                             (int) p->key_len, p->key);
        }
        if (address_format(&c->path, sender, sizeof(sender)) < 0)
                return session_reject(s, "MAIL", NULL, 501, "5.1.7 Bad sender address syntax");
        if (s->config->message_size_limit > 0 && size > s->config->message_size_limit)
                return session_reject(s, "MAIL", NULL, 552, "5.3.4 Message size exceeds fixed limit");
        if (s->queue_broken)
                return session_reply(s, 451, "4.3.0 Error: queue file write error");

        r = queue_client_begin(s->queue,
                               &(QueueEnvelope) {
                                       .sender = sender,
                                       .client_addr = s->client_addr,
                                       .client_name = s->client_name,
                                       .helo = s->helo,
                                       .proto = s->esmtp ? "ESMTP" : "SMTP",
                                       .size = size,
                                       .body_type = body_type,
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
        (void) log_context_set("TERN_QUEUE_ID", s->queue_id);
        {
                LogField fields[] = { { "TERN_FROM", s->sender } };

                log_fields(LOG_INFO, fields, "%s: client=%s", s->queue_id, s->client);
        }
        return session_reply(s, 250, "2.1.0 Ok");
}

int session_rcpt(Session *s, const Command *c) {
        char rcpt[SESSION_PATH_MAX];
        QueueReply refusal;
        int r;

        if (address_format(&c->path, rcpt, sizeof(rcpt)) < 0)
                return session_reject(s, "RCPT", NULL, 501, "5.1.3 Bad recipient address syntax");
        if (c->n_params > 0)
                /* No DSN extension yet: NOTIFY= and ORCPT= were not advertised. */
                return session_reply(s, 555, "5.5.4 Unsupported option: %.*s",
                                     (int) c->params[0].key_len, c->params[0].key);
        if (s->config->recipient_limit > 0 && s->n_rcpt >= s->config->recipient_limit)
                return session_reject(s, "RCPT", rcpt, 452, "4.5.3 Error: too many recipients");

        if (isempty(c->path.domain)) {
                /* RFC 5321 4.5.1: "postmaster" without a domain must be
                 * accepted; it means the postmaster of this host. */
                if (strcasecmp(c->path.local, "postmaster") != 0)
                        return session_reject(s, "RCPT", rcpt, 504,
                                              "5.5.2 <%s>: Recipient address rejected: need fully-qualified address",
                                              rcpt);
                (void) snprintf(rcpt, sizeof(rcpt), "postmaster@%s", s->config->hostname);
        } else if (!config_is_local_domain(s->config, c->path.domain)) {
                /* DESIGN promise 4: no open relay. '%', '!' and a quoted '@'
                 * could make a next hop relay onwards: never, for anyone. */
                if (!s->trusted || address_has_routing_tricks(&c->path))
                        return session_reject(s, "RCPT", rcpt, 554, "5.7.1 <%s>: Relay access denied",
                                              rcpt);
        }

        if (s->queue_broken)
                return session_reply(s, 451, "4.3.0 Error: queue file write error");
        r = queue_client_rcpt(s->queue, rcpt, &refusal);
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
        return session_reply(s, 250, "2.1.5 Ok");
}
