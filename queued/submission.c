/* One message transaction from smtpd or sendmail: BEGIN gives a queue id, RCPT
 * checks and expands recipients (common/route.h), DATA collects the message (bounded), END makes it
 * durable (group commit, commit.c) and only then answers QUEUED (promise 1). Client
 * fields are recorded only from trusted peers; a local submitter is recorded
 * by its uid. */
#include <ctype.h>
#include <inttypes.h>
#include <pwd.h>
#include <time.h>

#include "address.h"
#include "commit.h"
#include "log.h"
#include "queue.h"
#include "route.h"
#include "loop.h"
#include "submission.h"

/* Room for the Received: header smtpd puts in front of a message that is
 * itself within MessageSizeLimit. */
#define SUBMISSION_SIZE_MARGIN (64u * 1024u)
#define SUBMISSION_FIELD_MAX 1024u
#define SUBMISSION_ENVID_MAX 100u /* RFC 3461 4.4 */
/* Bodies being received by all peers together: many connections each
 * sending a message just under the limit must not exhaust memory. Over it a
 * message is refused with 452 4.3.1 at END and the client may retry. */
#define SUBMISSION_BUFFER_TOTAL_MAX (512u * 1024u * 1024u)

struct Submission {
        Queue *queue;
        char id[SPOOL_ID_MAX];
        SpoolEnvelope env;
        size_t rcpts_allocated;
        uint8_t *body;
        size_t body_len, body_allocated;
        uint64_t body_max;
        bool too_big;
        bool no_memory;
        uint64_t size;          /* of the body written to the spool */
        LoopScan loop;          /* Received: fields so far (loop.c) */
};

static void submission_drop_body(Submission *s) {
        if (s->queue)
                s->queue->submission_bytes -= s->body_allocated;
        free(s->body);
        s->body = NULL;
        s->body_len = s->body_allocated = 0;
}

Submission *submission_free(Submission *s) {
        if (!s)
                return NULL;
        spool_envelope_done(&s->env);
        submission_drop_body(s);
        free(s);
        return NULL;
}
DEFINE_POINTER_CLEANUP(Submission, submission_free);

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* An optional string field without control characters: 0 (*ret NULL when
 * absent) or -EBADMSG / -ENOMEM. */
static int get_opt_str(const IpcMsg *m, uint16_t tag, size_t max, char **ret) {
        _cleanup_free_ char *s = NULL;
        int r;

        r = ipc_get_str(m, tag, max, &s);
        if (r == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        if (r < 0)
                return r == -ENOMEM ? r : -EBADMSG;
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p < 32 || *p == 127)
                        return -EBADMSG;
        *ret = TAKE_PTR(s);
        return 0;
}

/* Every field of m is one of the allowed tags (readers trust nothing unexpected). */
static bool fields_allowed(const IpcMsg *m, const uint16_t *allowed, size_t n) {
        for (size_t i = 0; i < m->n_fields; i++) {
                bool ok = false;
                for (size_t k = 0; k < n && !ok; k++)
                        ok = m->fields[i].tag == allowed[k];
                if (!ok)
                        return false;
        }
        return true;
}

/* Replies carry only printable ASCII (smtpd passes them to the client). */
static void printable(char *dst, size_t size, const char *s) {
        size_t i = 0;

        for (; s[i] && i + 1 < size; i++)
                dst[i] = (unsigned char) s[i] >= 32 && (unsigned char) s[i] < 127 ? s[i] : '?';
        dst[i] = 0;
}

int submission_on_begin(Peer *p, const IpcMsg *m) {
        static const uint16_t allowed[] = {
                IPC_F_SENDER, IPC_F_CLIENT_ADDR, IPC_F_CLIENT_NAME, IPC_F_HELO, IPC_F_PROTO,
                IPC_F_AUTH_USER, IPC_F_ENVID, IPC_F_RET, IPC_F_SIZE, IPC_F_BODY_TYPE, IPC_F_SMTPUTF8,
        };
        const Config *c = p->queue->config;
        _cleanup_(submission_freep) Submission *s = NULL;
        _cleanup_free_ char *client_addr = NULL, *client_name = NULL, *helo = NULL, *proto = NULL,
                            *auth_user = NULL;
        uint64_t size = 0, smtputf8 = 0;
        int r;

        if (p->submission || !fields_allowed(m, allowed, ELEMENTSOF(allowed)))
                return -EBADMSG;
        s = new0(Submission, 1);
        if (!s)
                return -ENOMEM;
        s->queue = p->queue;
        r = ipc_get_str(m, IPC_F_SENDER, ADDRESS_PATH_MAX, &s->env.sender);
        if (r < 0)
                return r == -ENOMEM ? r : -EBADMSG;
        for (const unsigned char *q = (const unsigned char *) s->env.sender; *q; q++)
                if (*q < 32 || *q == 127)
                        return -EBADMSG;
        if ((r = get_opt_str(m, IPC_F_CLIENT_ADDR, SUBMISSION_FIELD_MAX, &client_addr)) < 0 ||
            (r = get_opt_str(m, IPC_F_CLIENT_NAME, SUBMISSION_FIELD_MAX, &client_name)) < 0 ||
            (r = get_opt_str(m, IPC_F_HELO, SUBMISSION_FIELD_MAX, &helo)) < 0 ||
            (r = get_opt_str(m, IPC_F_PROTO, 16, &proto)) < 0 ||
            (r = get_opt_str(m, IPC_F_AUTH_USER, SUBMISSION_FIELD_MAX, &auth_user)) < 0 ||
            (r = get_opt_str(m, IPC_F_ENVID, SUBMISSION_ENVID_MAX, &s->env.envid)) < 0 ||
            (r = get_opt_str(m, IPC_F_RET, 4, &s->env.ret)) < 0 ||
            (r = get_opt_str(m, IPC_F_BODY_TYPE, 16, &s->env.body_type)) < 0)
                return r;
        r = ipc_get_u64(m, IPC_F_SIZE, &size);
        if (r < 0 && r != -ENOENT)
                return -EBADMSG;
        r = ipc_get_u64(m, IPC_F_SMTPUTF8, &smtputf8);
        if ((r < 0 && r != -ENOENT) || smtputf8 > 1)
                return -EBADMSG;
        if (s->env.ret && !streq(s->env.ret, "FULL") && !streq(s->env.ret, "HDRS"))
                return -EBADMSG;
        s->env.smtputf8 = smtputf8;

        if (p->trusted) {
                s->env.client_addr = TAKE_PTR(client_addr);
                s->env.client_name = TAKE_PTR(client_name);
                s->env.helo = TAKE_PTR(helo);
                s->env.proto = TAKE_PTR(proto);
                s->env.auth_user = TAKE_PTR(auth_user);
        } else {
                /* A local program may claim anything; only the kernel's word counts. */
                s->env.proto = strdup("local");
                if (!s->env.proto || asprintf(&s->env.submit_uid, "%u", (unsigned) p->uid) < 0)
                        return -ENOMEM;
        }

        s->body_max = c->message_size_limit > 0 ? c->message_size_limit + SUBMISSION_SIZE_MARGIN
                                                : UINT32_MAX;
        if (size > 0 && c->message_size_limit > 0 && size > c->message_size_limit)
                return peer_send_error(p, 552, "5.3.4", "Error: message file too big");

        spool_new_id(s->id);
        s->env.id = strdup(s->id);
        if (!s->env.id)
                return -ENOMEM;
        ipc_writer_init(p->writer, IPC_MSG_BEGUN);
        ipc_put_str(p->writer, IPC_F_QUEUE_ID, s->id);
        r = peer_send(p);
        if (r < 0)
                return r;
        if (!p->trusted) {
                LogField f[] = { { "TERN_QUEUE_ID", s->id } };
                log_fields(LOG_INFO, f, "%s: uid=%u (%s) from=<%s>", s->id, (unsigned) p->uid,
                           p->user ?: "?", s->env.sender);
        }
        p->submission = TAKE_PTR(s);
        return 0;
}

/* The router (common/route.h) for this configuration: RCPT validation and
 * virtual alias expansion, decided where deliverd and ternctl decide it. */
static Router *submission_router(const Config *c) {
        static Router *router;
        static const Config *router_config;

        if (router && router_config != c)
                router = router_free(router);
        if (!router && router_new(c, &router) >= 0)
                router_config = c;
        return router;
}

/* "rfc822;" + addr as RFC 3461 xtext, the ORCPT of an expanded recipient. */
static char *submission_orcpt(const char *addr) {
        size_t n = strlen(addr);
        char *o = malloc(7 + 3 * n + 1), *q;

        if (!o)
                return NULL;
        memcpy(o, "rfc822;", 7);
        q = o + 7;
        for (const unsigned char *a = (const unsigned char *) addr; *a; a++) {
                if (*a < 33 || *a > 126 || *a == '+' || *a == '=') {
                        (void) snprintf(q, 4, "+%02X", *a);
                        q += 3;
                } else
                        *q++ = (char) *a;
        }
        *q = 0;
        return o;
}

/* Adds canon unless it is already a recipient (the same address twice gets
 * one delivery). 0 or -ENOMEM. */
static int submission_add_rcpt(Submission *s, const char *canon, const char *notify,
                               const char *orcpt) {
        for (size_t i = 0; i < s->env.n_rcpts; i++)
                if (streq(s->env.rcpts[i].addr, canon))
                        return 0;
        if (s->env.n_rcpts == s->rcpts_allocated) {
                size_t a = s->rcpts_allocated ? s->rcpts_allocated * 2 : 8;
                SpoolRcpt *l = reallocarray_safe(s->env.rcpts, a, sizeof(SpoolRcpt));
                if (!l)
                        return -ENOMEM;
                s->env.rcpts = l;
                s->rcpts_allocated = a;
        }
        SpoolRcpt *r = &s->env.rcpts[s->env.n_rcpts];
        *r = (SpoolRcpt) {
                .addr = strdup(canon),
                .notify = notify ? strdup(notify) : NULL,
                .orcpt = orcpt ? strdup(orcpt) : NULL,
        };
        if (!r->addr || (notify && !r->notify) || (orcpt && !r->orcpt)) {
                free(r->addr);
                free(r->notify);
                free(r->orcpt);
                return -ENOMEM;
        }
        s->env.n_rcpts++;
        return 0;
}

int submission_on_rcpt(Peer *p, const IpcMsg *m) {
        static const uint16_t allowed[] = { IPC_F_RCPT, IPC_F_NOTIFY, IPC_F_ORCPT };
        Submission *s = p->submission;
        _cleanup_free_ char *addr = NULL, *notify = NULL, *orcpt = NULL;
        _cleanup_strv_free_ char **rcpts = NULL;
        char text[ADDRESS_PATH_MAX * 2 + 300], shown[ADDRESS_PATH_MAX + 1];
        RouteReject rj = {};
        Router *router;
        int r;

        if (!s || !fields_allowed(m, allowed, ELEMENTSOF(allowed)))
                return -EBADMSG;
        r = ipc_get_str(m, IPC_F_RCPT, ADDRESS_PATH_MAX, &addr);
        if (r < 0)
                return r == -ENOMEM ? r : -EBADMSG;
        if ((r = get_opt_str(m, IPC_F_NOTIFY, 64, &notify)) < 0 ||
            (r = get_opt_str(m, IPC_F_ORCPT, 512, &orcpt)) < 0)
                return r;
        printable(shown, sizeof(shown), addr);
        if (s->env.n_rcpts >= SPOOL_RCPT_MAX)
                return peer_send_error(p, 452, "4.5.3", "Error: too many recipients");
        router = submission_router(p->queue->config);
        if (!router)
                return -ENOMEM;
        r = route_recipient(router, addr, s->env.smtputf8, &rcpts, &rj);
        if (r < 0)
                return r;
        if (r > 0) {
                (void) snprintf(text, sizeof(text), "<%s>: %s", shown, rj.text);
                return peer_send_error(p, rj.code, rj.dsn, text);
        }
        if (s->env.n_rcpts + strv_length(rcpts) > SPOOL_RCPT_MAX)
                return peer_send_error(p, 452, "4.5.3", "Error: too many recipients");
        for (char **a = rcpts; *a; a++) {
                /* An expanded recipient remembers the address the client gave. */
                _cleanup_free_ char *canon_orcpt = NULL;
                const char *o = orcpt;

                if (!o && (rcpts[1] || strcasecmp(*a, addr) != 0)) {
                        canon_orcpt = submission_orcpt(addr);
                        if (!canon_orcpt)
                                return -ENOMEM;
                        o = canon_orcpt;
                }
                r = submission_add_rcpt(s, *a, notify, o);
                if (r < 0)
                        return r;
        }
        ipc_writer_init(p->writer, IPC_MSG_RCPT_OK);
        return peer_send(p);
}

int submission_on_data(Peer *p, const IpcMsg *m) {
        Submission *s = p->submission;
        const IpcField *f;

        if (!s || m->n_fields != 1 || m->fields[0].tag != IPC_F_DATA)
                return -EBADMSG;
        f = &m->fields[0];
        loop_scan_feed(&s->loop, f->data, f->len);
        if (s->too_big || s->no_memory)
                return 0;
        if (f->len > s->body_max - s->body_len) {
                /* Keep reading to the end, answer at END (the client is mid-DATA). */
                s->too_big = true;
                submission_drop_body(s);
                return 0;
        }
        if (s->body_len + f->len > s->body_allocated) {
                Queue *q = s->queue;
                size_t a = s->body_allocated ? s->body_allocated : 64u * 1024u;
                uint8_t *b;

                while (a < s->body_len + f->len)
                        a *= 2;
                if (a > s->body_max)
                        a = s->body_max;
                if (q->submission_bytes - s->body_allocated + a > SUBMISSION_BUFFER_TOTAL_MAX) {
                        s->no_memory = true;
                        submission_drop_body(s);
                        return 0;
                }
                b = realloc(s->body, a);
                if (!b) {
                        s->no_memory = true;
                        submission_drop_body(s);
                        return 0;
                }
                q->submission_bytes += a - s->body_allocated;
                s->body = b;
                s->body_allocated = a;
        }
        memcpy(s->body + s->body_len, f->data, f->len);
        s->body_len += f->len;
        return 0;
}

static int submission_refuse_write_error(Peer *p, Submission *s, int error) {
        LogField f[] = { { "TERN_QUEUE_ID", s->id } };

        log_fields_errno(LOG_ERR, error, f, "%s: queue file write error, message refused: %m", s->id);
        /* RFC 3463 4.3.1: the client may try again when there is room. */
        if (error == -ENOSPC || error == -EDQUOT || error == -EFBIG)
                return peer_send_error(p, 452, "4.3.1", "Insufficient system storage");
        return peer_send_error(p, 451, "4.3.0", "Error: queue file write error");
}

int submission_on_end(Peer *p, const IpcMsg *m) {
        _cleanup_(submission_freep) Submission *s = TAKE_PTR(p->submission);
        Queue *q = p->queue;
        SpoolStaged staged;
        int r;

        if (!s || m->n_fields != 0)
                return -EBADMSG;
        if (s->too_big)
                return peer_send_error(p, 552, "5.3.4", "Error: message file too big");
        if (s->no_memory) {
                log_warning("%s: refused with 452 4.3.1, too many messages are being received at once",
                            s->id);
                return peer_send_error(p, 452, "4.3.1", "Error: insufficient system storage");
        }
        if (s->env.n_rcpts == 0)
                return peer_send_error(p, 554, "5.5.1", "Error: no valid recipients");

        s->env.arrival_usec = now_usec();
        r = spool_stage(q->spool_fd, &s->env, s->body, s->body_len, &staged);
        if (r >= 0) {
                s->size = s->body_len;
                /* The file has the body now; keep only the envelope. */
                submission_drop_body(s);
                r = commit_add(q->commit, p, s, &staged);
                if (r >= 0) {
                        TAKE_PTR(s);
                        return 0; /* answered by submission_committed */
                }
                spool_staged_discard(q->spool_fd, &staged);
        }
        return submission_refuse_write_error(p, s, r);
}

void submission_committed(Queue *q, Peer *p, Submission *s, int result) {
        _cleanup_(submission_freep) Submission *owned = s;
        char size[24], nrcpt[24];
        int r;

        if (result < 0) {
                if (p && submission_refuse_write_error(p, s, result) < 0)
                        peer_close(p);
                return;
        }
        (void) snprintf(size, sizeof(size), "%" PRIu64, s->size);
        (void) snprintf(nrcpt, sizeof(nrcpt), "%zu", s->env.n_rcpts);
        {
                LogField f[] = {
                        { "MESSAGE_ID", LOG_MID_QUEUED },
                        { "TERN_QUEUE_ID", s->id },
                        { "TERN_FROM", s->env.sender },
                        { "TERN_SIZE", size },
                        { "TERN_NRCPT", nrcpt },
                };
                log_fields(LOG_INFO, f, "%s: from=<%s>, size=%" PRIu64 ", nrcpt=%zu (queue active)",
                           s->id, s->env.sender, s->size, s->env.n_rcpts);
        }
        /* Durable now; the table entry only speeds things up (a failure here
         * is repaired by the scan at the next start). */
        r = queue_add(q, &s->env, s->size);
        if (r < 0)
                log_error_errno(r, "%s: cannot schedule the message until the next start: %m", s->id);
        loop_check_queued(q, &s->env, &s->loop);
        if (!p)
                return; /* the peer left: the message stays queued, nobody to tell */
        ipc_writer_init(p->writer, IPC_MSG_QUEUED);
        ipc_put_str(p->writer, IPC_F_QUEUE_ID, s->id);
        if (peer_send(p) < 0)
                peer_close(p);
}

int submission_on_abort(Peer *p, const IpcMsg *m) {
        if (m->n_fields != 0)
                return -EBADMSG;
        /* Nothing was acknowledged; RSET without a transaction is harmless. */
        p->submission = submission_free(p->submission);
        return 0;
}
