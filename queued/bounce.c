/* Which delivery status notifications a queued message gets, and when.
 *
 * What was reported survives a restart without a record of its own: a report
 * is queued (spool_write, durable) before the round's attempt record "A" is
 * appended, so a result recorded after the last "A" is one not yet reported,
 * and a delay warning was sent iff an attempt was recorded after the warning
 * time. A crash between the report and the "A" record can repeat a report,
 * never lose one; a report that cannot be queued (a full spool) is tried
 * again: queue.c leaves that round's "A" record out, or keeps the finished
 * message. Whether the next hop took the DSN request is kept in memory
 * only: after a crash in that window a success notice may go out that the
 * next hop also sends. */
#include <inttypes.h>
#include <time.h>

#include "bounce.h"
#include "dsn.h"
#include "log.h"
#include "route.h"

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

void bounce_note_relayed(QueueMsg *m, size_t i) {
        if (i >= m->n_rcpts)
                return;
        if (!m->dsn_relayed) {
                m->dsn_relayed = new0(bool, m->n_rcpts);
                if (!m->dsn_relayed)
                        return; /* then a success notice may be sent twice: harmless */
        }
        m->dsn_relayed[i] = true;
}

uint64_t bounce_queue_lifetime_usec(const Queue *q, const QueueMsg *m) {
        return isempty(m->sender) ? q->config->bounce_queue_lifetime_usec
                                  : q->config->max_queue_lifetime_usec;
}

/* What one report is made from: the original's envelope and body (when its
 * file is readable) and its state file. */
typedef struct BounceInput {
        SpoolFile *file;
        SpoolEnvelope env;
        bool have_env;
        const uint8_t *body;
        size_t body_len;
        SpoolState st;
} BounceInput;

static void bounce_input_done(BounceInput *in) {
        spool_state_done(&in->st);
        spool_envelope_done(&in->env);
        in->file = spool_close(in->file);
}

static int bounce_input_load(Queue *q, QueueMsg *m, BounceInput *in) {
        int r;

        r = spool_state_load(q->spool_fd, m->id, m->n_rcpts, &in->st);
        if (r < 0)
                return r;
        /* Without the original the report still says who failed and why. */
        if (spool_open(q->spool_fd, m->id, &in->file) >= 0) {
                in->have_env = spool_read_envelope(in->file, &in->env) >= 0 &&
                               in->env.n_rcpts == m->n_rcpts;
                (void) spool_get_body(in->file, &in->body, &in->body_len);
        }
        return 0;
}

static const char *bounce_rcpt_notify(const BounceInput *in, size_t i) {
        return in->have_env ? in->env.rcpts[i].notify : NULL;
}

static const char *bounce_rcpt_orcpt(const BounceInput *in, size_t i) {
        return in->have_env ? in->env.rcpts[i].orcpt : NULL;
}

static bool memchr_8bit(const char *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) p[i] & 0x80)
                        return true;
        return false;
}

/* Queues one report to `to` (sender null) and logs it. */
static int bounce_queue_report(Queue *q, QueueMsg *m, const BounceInput *in, DsnKind kind,
                               const char *to, const DsnRcpt *rcpts, size_t n, uint64_t now) {
        _cleanup_free_ char *text = NULL;
        char id[SPOOL_ID_MAX];
        size_t text_len = 0;
        SpoolRcpt rcpt = { .addr = (char *) to };
        SpoolEnvelope env = {
                .id = id,
                .sender = (char *) "",
                .rcpts = &rcpt,
                .n_rcpts = 1,
                .arrival_usec = now,
                .proto = (char *) (kind == DSN_KIND_POSTMASTER ? BOUNCE_PROTO_POSTMASTER : BOUNCE_PROTO),
        };
        const char *ret = in->have_env ? in->env.ret : NULL;
        DsnReport report = {
                .kind = kind,
                .hostname = isempty(q->config->hostname) ? "localhost" : q->config->hostname,
                .queue_id = m->id,
                .report_id = id,
                .sender = m->sender,
                .to = kind == DSN_KIND_POSTMASTER ? "postmaster" : to,
                .envid = in->have_env ? in->env.envid : NULL,
                .arrival_usec = m->arrival_usec,
                .now_usec = now,
                .retry_until_usec = kind == DSN_KIND_DELAY
                                            ? m->arrival_usec + bounce_queue_lifetime_usec(q, m) : 0,
                .rcpts = rcpts,
                .n_rcpts = n,
                .body = in->body,
                .body_len = in->body_len,
                /* RFC 3461 4.3: RET is about failure reports; delay and
                 * success reports carry the headers. Default FULL as Postfix. */
                .full = (kind == DSN_KIND_FAILURE && !(ret && streq(ret, "HDRS"))) ||
                        kind == DSN_KIND_POSTMASTER,
        };
        static const char *const what[_DSN_KIND_MAX] = {
                [DSN_KIND_FAILURE] = "sender non-delivery notification",
                [DSN_KIND_DELAY] = "sender delay notification",
                [DSN_KIND_SUCCESS] = "sender delivery status notification",
                [DSN_KIND_POSTMASTER] = "postmaster non-delivery notification",
        };
        LogField f[] = { { "TERN_QUEUE_ID", m->id } };
        FILE *out;
        int r;

        spool_new_id(id);
        out = open_memstream(&text, &text_len);
        if (!out)
                return log_fields_errno(LOG_ERR, -ENOMEM, f, "%s: cannot write the %s, will retry: %m",
                                        m->id, what[kind]);
        r = dsn_report_write(out, &report);
        if (fclose(out) != 0 && r >= 0)
                r = -ENOMEM;
        if (r >= 0) {
                /* A returned original with 8-bit text, or an internationalised
                 * address, needs the same of every next hop (RFC 6152, 6531). */
                if (memchr_8bit(text, text_len))
                        env.body_type = (char *) "8BITMIME";
                env.smtputf8 = in->have_env && in->env.smtputf8;
                r = spool_write(q->spool_fd, &env, text, text_len);
        }
        if (r < 0)
                return log_fields_errno(LOG_ERR, r, f, "%s: cannot queue the %s, will retry: %m", m->id,
                                        what[kind]);
        {
                LogField g[] = {
                        { "MESSAGE_ID", LOG_MID_QUEUED },
                        { "TERN_QUEUE_ID", id },
                        { "TERN_FROM", "" },
                };
                log_fields(LOG_INFO, g, "%s: from=<>, size=%zu, nrcpt=1 (queue active)", id, text_len);
        }
        log_fields(LOG_INFO, f, "%s: %s: %s", m->id, what[kind], id);
        r = queue_add(q, &env, text_len);
        if (r < 0)
                log_error_errno(r, "%s: cannot schedule the message until the next start: %m", id);
        return 0;
}

/* A recipient whose final result came after the last recorded attempt (or
 * whose record could not be written) has not been reported yet. */
static bool bounce_rcpt_fresh(const QueueMsg *m, const BounceInput *in, size_t i) {
        const SpoolRcptState *rs = i < in->st.n_rcpts ? &in->st.rcpts[i] : NULL;
        uint64_t cutoff = in->st.attempts > 0 ? in->st.last_attempt_usec : 0;

        return !rs || rs->status != m->status[i] || rs->when_usec > cutoff;
}

static DsnRcpt bounce_rcpt(const QueueMsg *m, const BounceInput *in, size_t i, DsnAction action) {
        const SpoolRcptState *rs = i < in->st.n_rcpts ? &in->st.rcpts[i] : NULL;

        return (DsnRcpt) {
                .addr = m->rcpts[i],
                .orcpt = bounce_rcpt_orcpt(in, i),
                .action = action,
                .status = rs ? rs->dsn : NULL,
                .relay = rs ? rs->relay : NULL,
                .text = rs ? rs->text : NULL,
                .when_usec = rs ? rs->when_usec : 0,
        };
}

/* The same routing decision deliverd made (common/route.h), for the action
 * of a success report. */
static Router *bounce_router(const Config *c) {
        static Router *router;
        static const Config *router_config;

        if (router && router_config != c)
                router = router_free(router);
        if (!router && router_new(c, &router) >= 0)
                router_config = c;
        return router;
}

/* RFC 3464 2.3.3: "delivered" into a mailbox (local, virtual, LMTP: the
 * final destination), "relayed" to an SMTP next hop that will send no DSN. */
static DsnAction bounce_success_action(const Config *c, const char *rcpt, const SpoolRcptState *rs) {
        Router *router = bounce_router(c);
        Route route;

        if (rs && (streq(rs->relay, "local") || rs->relay[0] == '/'))
                return DSN_ACTION_DELIVERED;
        if (router && route_resolve(router, rcpt, &route) >= 0 && route.transport != ROUTE_SMTP)
                return DSN_ACTION_DELIVERED;
        return DSN_ACTION_RELAYED;
}

/* A report of ours failed: postmaster gets one copy, a failed copy is dropped. */
static int bounce_null_sender(Queue *q, QueueMsg *m, const BounceInput *in, const DsnRcpt *failed,
                              size_t n, uint64_t now) {
        const char *proto = in->have_env ? in->env.proto : NULL;
        LogField f[] = { { "TERN_QUEUE_ID", m->id } };

        if (proto && streq(proto, BOUNCE_PROTO))
                return bounce_queue_report(q, m, in, DSN_KIND_POSTMASTER, "postmaster", failed, n, now);
        if (proto && streq(proto, BOUNCE_PROTO_POSTMASTER))
                log_fields(LOG_WARNING, f, "%s: undeliverable postmaster notification discarded", m->id);
        else
                /* RFC 5321 4.5.5: never answer the null sender. */
                log_fields(LOG_INFO, f, "%s: no non-delivery notification to the null sender", m->id);
        return 0;
}

bool bounce_wants_success(const SpoolEnvelope *env) {
        for (size_t i = 0; i < env->n_rcpts; i++)
                if (dsn_notify_parse(env->rcpts[i].notify) & DSN_NOTIFY_SUCCESS)
                        return true;
        return false;
}

/* A result that may need a report: a failure, or a success when asked for. */
static bool bounce_any_final(const QueueMsg *m) {
        for (size_t i = 0; i < m->n_rcpts; i++)
                if (m->status[i] == DELIVERY_BOUNCED ||
                    (m->dsn_success && m->status[i] == DELIVERY_DELIVERED))
                        return true;
        return false;
}

static int bounce_report(Queue *q, QueueMsg *m, bool final) {
        _cleanup_(bounce_input_done) BounceInput in = {};
        _cleanup_free_ DsnRcpt *failed = NULL, *success = NULL, *delayed = NULL;
        const Config *c = q->config;
        size_t n_failed = 0, n_success = 0, n_delayed = 0;
        uint64_t now = now_usec();
        bool null_sender = isempty(m->sender), want_delay;
        LogField f[] = { { "TERN_QUEUE_ID", m->id } };
        int r, k;

        /* Most rounds and messages end with nothing to report: no file is
         * read then. */
        want_delay = !final && !null_sender && c->delay_warning_usec > 0 &&
                     now >= m->arrival_usec + c->delay_warning_usec;
        if (!want_delay && !bounce_any_final(m))
                return 0;

        r = bounce_input_load(q, m, &in);
        if (r < 0) {
                /* Not a passing condition: retrying would keep the message forever. */
                log_fields_errno(LOG_ERR, r, f, "%s: cannot read the state file, no delivery status "
                                 "notification: %m", m->id);
                return 0;
        }
        failed = new0(DsnRcpt, m->n_rcpts);
        success = new0(DsnRcpt, m->n_rcpts);
        delayed = new0(DsnRcpt, m->n_rcpts);
        if (!failed || !success || !delayed)
                return log_fields_errno(LOG_ERR, -ENOMEM, f, "%s: no delivery status notification yet, "
                                        "will retry: %m", m->id);

        /* Once per message, at the first round that ends after the warning
         * time; never for reports (null sender) or when the message is done. */
        want_delay = want_delay &&
                     !(in.st.attempts > 0 && in.st.last_attempt_usec >= m->arrival_usec + c->delay_warning_usec);

        for (size_t i = 0; i < m->n_rcpts; i++) {
                unsigned notify = dsn_notify_parse(bounce_rcpt_notify(&in, i));
                const SpoolRcptState *rs = i < in.st.n_rcpts ? &in.st.rcpts[i] : NULL;

                switch (m->status[i]) {
                case DELIVERY_BOUNCED:
                        if (!bounce_rcpt_fresh(m, &in, i))
                                break;
                        /* A report of ours goes to postmaster whatever NOTIFY says. */
                        if (null_sender || (notify & DSN_NOTIFY_FAILURE))
                                failed[n_failed++] = bounce_rcpt(m, &in, i, DSN_ACTION_FAILED);
                        else
                                log_fields(LOG_INFO, f, "%s: <%s>: no non-delivery notification, "
                                           "NOTIFY=%s", m->id, m->rcpts[i], bounce_rcpt_notify(&in, i));
                        break;
                case DELIVERY_DELIVERED:
                        if (null_sender || !(notify & DSN_NOTIFY_SUCCESS) || !bounce_rcpt_fresh(m, &in, i) ||
                            (m->dsn_relayed && m->dsn_relayed[i]))
                                break;
                        success[n_success++] =
                                bounce_rcpt(m, &in, i, bounce_success_action(c, m->rcpts[i], rs));
                        break;
                default:
                        if (want_delay && (notify & DSN_NOTIFY_DELAY)) {
                                delayed[n_delayed] = bounce_rcpt(m, &in, i, DSN_ACTION_DELAYED);
                                /* A recipient never tried has no status yet. */
                                if (!rs || rs->status != DELIVERY_DEFERRED || rs->dsn[0] != '4')
                                        delayed[n_delayed].status = "4.0.0";
                                n_delayed++;
                        }
                }
        }

        /* Each kind is tried even when one failed; the first error is returned. */
        r = 0;
        if (n_failed > 0) {
                k = null_sender ? bounce_null_sender(q, m, &in, failed, n_failed, now)
                                : bounce_queue_report(q, m, &in, DSN_KIND_FAILURE, m->sender, failed,
                                                      n_failed, now);
                r = r < 0 ? r : k;
        }
        if (n_delayed > 0) {
                k = bounce_queue_report(q, m, &in, DSN_KIND_DELAY, m->sender, delayed, n_delayed, now);
                r = r < 0 ? r : k;
        }
        if (n_success > 0) {
                k = bounce_queue_report(q, m, &in, DSN_KIND_SUCCESS, m->sender, success, n_success, now);
                r = r < 0 ? r : k;
        }
        return r;
}

int bounce_round_done(Queue *q, QueueMsg *m) {
        return bounce_report(q, m, false);
}

int bounce_maybe_send(Queue *q, QueueMsg *m) {
        return bounce_report(q, m, true);
}
