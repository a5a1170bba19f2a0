/* The delivery worker: one forked process per job. Local recipients go first,
 * while the process still holds CAP_SETUID/CAP_SETGID; then it drops to an
 * unprivileged user for the SMTP transport. Every result is logged here, in
 * the Postfix shape, and sent to queued as soon as its group is done. */
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include "ipc.h"
#include "job.h"
#include "local.h"
#include "log.h"
#include "route.h"
#include "sandbox.h"
#include "table.h"
#include "tls_client.h"
#include "worker.h"

bool worker_is_local(const Config *c, const char *rcpt) {
        /* The route decides (route.h): local, virtual, discard and error
         * recipients go to the local transport, smtp and lmtp ones leave. */
        return local_handles(c, rcpt);
}

static const char *worker_mid(DeliveryStatus s) {
        switch (s) {
        case DELIVERY_DELIVERED:
                return LOG_MID_DELIVERED;
        case DELIVERY_BOUNCED:
                return LOG_MID_BOUNCED;
        default:
                return LOG_MID_DEFERRED;
        }
}

static void worker_defer_all(DeliveryResult *results, size_t n, const char *relay,
                             const char *what, const char *why) {
        for (size_t k = 0; k < n; k++) {
                results[k] = (DeliveryResult) { .status = DELIVERY_DEFERRED };
                (void) snprintf(results[k].dsn, sizeof(results[k].dsn), "4.3.0");
                (void) snprintf(results[k].relay, sizeof(results[k].relay), "%s", relay);
                (void) snprintf(results[k].text, sizeof(results[k].text), "%s%s%s", what,
                                why ? ": " : "", why ?: "");
        }
}

/* Logs one result and sends it. Returns 0 or -errno of the send. */
static int worker_report(const WorkerJob *w, IpcWriter *iw, size_t index, DeliveryResult *res) {
        const SpoolEnvelope *env = w->env;
        const char *rcpt = env->rcpts[index].addr;
        const char *status;
        char delay[32];
        struct timespec ts;
        uint64_t now, d;
        int r;

        /* A transport bug must not reach queued as garbage. */
        if (res->status != DELIVERY_DELIVERED && res->status != DELIVERY_BOUNCED &&
            res->status != DELIVERY_DEFERRED) {
                res->status = DELIVERY_DEFERRED;
                (void) snprintf(res->dsn, sizeof(res->dsn), "4.3.0");
                (void) snprintf(res->text, sizeof(res->text), "transport gave no result");
        }
        res->dsn[sizeof(res->dsn) - 1] = 0;
        res->relay[sizeof(res->relay) - 1] = 0;
        res->text[sizeof(res->text) - 1] = 0;
        if (!res->relay[0])
                (void) snprintf(res->relay, sizeof(res->relay), "none");

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        now = (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
        d = now > env->arrival_usec ? now - env->arrival_usec : 0;
        (void) snprintf(delay, sizeof(delay), "%" PRIu64 ".%02" PRIu64, d / 1000000u,
                        (d % 1000000u) / 10000u);
        status = delivery_status_to_string(res->status);

        LogField fields[] = {
                { "MESSAGE_ID", worker_mid(res->status) },
                { "TERN_QUEUE_ID", env->id },
                { "TERN_RCPT", rcpt },
                { "TERN_FROM", env->sender },
                { "TERN_RELAY", res->relay },
                { "TERN_DSN", res->dsn },
                { "TERN_STATUS", status },
                { "TERN_DELAY", delay },
        };
        (void) log_fields(res->status == DELIVERY_DELIVERED ? LOG_INFO : LOG_NOTICE, fields,
                          "%s: to=<%s>, relay=%s, delay=%s, dsn=%s, status=%s (%s)", env->id, rcpt,
                          res->relay, delay, res->dsn, status, res->text);

        ipc_writer_init(iw, IPC_RESULT);
        ipc_put_u64(iw, IPC_F_JOB, w->job);
        ipc_put_u64(iw, IPC_F_RCPT_INDEX, index);
        ipc_put_u64(iw, IPC_F_STATUS, (uint64_t) res->status);
        ipc_put_str(iw, IPC_F_DSN, res->dsn);
        ipc_put_str(iw, IPC_F_TEXT, res->text);
        ipc_put_str(iw, IPC_F_RELAY, res->relay);
        if (res->status == DELIVERY_DELIVERED && res->dsn_relayed)
                ipc_put_u64(iw, IPC_F_DSN_RELAYED, 1);
        r = ipc_send(w->peer_fd, iw, -1);
        if (r < 0)
                log_warning_errno(r, "%s: cannot send the result for <%s> to queued: %m", env->id, rcpt);
        return r;
}

#ifndef TERN_NO_SMTP_TRANSPORT
/* Opens the TLS context and the tables of the SMTP client. A table that is
 * configured but unreadable fails the group (deferred): sending mail without
 * the TLS policy or the relay's credentials would be a guess. */
static int worker_open_remote(const Config *c, DeliveryJob *job, Table **ret_policy, Table **ret_passwords) {
        int r;

        if (!isempty(c->smtp_tls_policy_table)) {
                r = table_open(c->smtp_tls_policy_table, ret_policy);
                if (r < 0)
                        return log_error_errno(r, "cannot open TLSPolicyTable \"%s\": %m", c->smtp_tls_policy_table);
                job->tls_policy = *ret_policy;
        }
        if (!isempty(c->smtp_password_table)) {
                r = table_open(c->smtp_password_table, ret_passwords);
                if (r < 0)
                        return log_error_errno(r, "cannot open RelayPasswordTable \"%s\": %m", c->smtp_password_table);
                job->passwords = *ret_passwords;
        }
        if (tls_level_from_string(c->smtp_tls_security_level) != TLS_NONE || job->tls_policy) {
                r = tls_client_context_new(c->smtp_tls_ca_file, &job->tls_ctx);
                if (r < 0)
                        /* Without a context "may" goes on in plaintext and the
                         * required levels defer: each session says so. */
                        log_warning_errno(r, "cannot set up TLS for delivery (TLSCAFile \"%s\"): %m",
                                          c->smtp_tls_ca_file);
        }
        return 0;
}
#endif

#ifndef TERN_NO_SMTP_TRANSPORT
/* Routes each remote recipient (transport table, relay host, MX) while the
 * tables can still be opened. A recipient that cannot be routed gets
 * transport _ROUTE_TRANSPORT_INVALID and is deferred. */
static int worker_route_remote(const DeliveryJob *job, Route *routes) {
        static Router *router = NULL; /* kept for the next message of a reused connection */
        int r;

        if (!router) {
                r = router_new(job->config, &router);
                if (r < 0)
                        return r;
        }
        for (size_t k = 0; k < job->n_rcpts; k++) {
                r = route_resolve(router, job->env->rcpts[job->rcpt_index[k]].addr, &routes[k]);
                if (r < 0 || (routes[k].transport != ROUTE_SMTP && routes[k].transport != ROUTE_LMTP))
                        routes[k].transport = _ROUTE_TRANSPORT_INVALID;
        }
        return 0;
}

/* Delivers the remote recipients, one transport call per destination
 * (route_destination_key), with that destination's route. */
static int worker_deliver_remote(const DeliveryJob *job, const Route *routes, DeliveryResult *results) {
        _cleanup_free_ size_t *sub_idx = new0(size_t, job->n_rcpts), *pos = new0(size_t, job->n_rcpts);
        _cleanup_free_ DeliveryResult *sub_res = new0(DeliveryResult, job->n_rcpts);
        _cleanup_free_ bool *done = new0(bool, job->n_rcpts);
        char key[ROUTE_NEXTHOP_MAX + 32], key2[ROUTE_NEXTHOP_MAX + 32];

        if (!sub_idx || !pos || !sub_res || !done)
                return -ENOMEM;
        for (size_t k = 0; k < job->n_rcpts; k++) {
                DeliveryJob sub = *job;
                size_t n = 0;
                int r;

                if (done[k])
                        continue;
                if (routes[k].transport == _ROUTE_TRANSPORT_INVALID) {
                        worker_defer_all(&results[k], 1, "none", "cannot route the recipient", NULL);
                        done[k] = true;
                        continue;
                }
                if (route_destination_key(&routes[k], key, sizeof(key)) < 0)
                        key[0] = 0;
                for (size_t j = k; j < job->n_rcpts; j++) {
                        if (done[j] || routes[j].transport == _ROUTE_TRANSPORT_INVALID)
                                continue;
                        if (j != k && (route_destination_key(&routes[j], key2, sizeof(key2)) < 0 ||
                                       !streq(key, key2)))
                                continue;
                        sub_idx[n] = job->rcpt_index[j];
                        pos[n++] = j;
                        done[j] = true;
                }
                sub.rcpt_index = sub_idx;
                sub.n_rcpts = n;
                sub.route = &routes[k];
                r = routes[k].transport == ROUTE_LMTP ? transport_lmtp_deliver(&sub, sub_res)
                                                      : transport_smtp_deliver(&sub, sub_res);
                if (r < 0)
                        worker_defer_all(sub_res, n, "none", "remote delivery failed", strerror(-r));
                for (size_t i = 0; i < n; i++)
                        results[pos[i]] = sub_res[i];
        }
        return 0;
}
#endif

/* Delivers one group (all local or all remote) and reports it. */
static int worker_group(const WorkerJob *w, IpcWriter *iw, const size_t *idx, size_t n, bool local) {
        _cleanup_free_ DeliveryResult *results = new0(DeliveryResult, n);
        DeliveryJob job = {
                .config = w->config,
                .env = w->env,
                .body = w->body,
                .body_len = w->body_len,
                .rcpt_index = idx,
                .n_rcpts = n,
        };
        int r, ret = 0;

        if (!results)
                return -ENOMEM;
        if (local) {
                r = transport_local_deliver(&job, results);
                if (r < 0)
                        worker_defer_all(results, n, "local", "local delivery failed", strerror(-r));
        } else {
#ifdef TERN_NO_SMTP_TRANSPORT
                worker_defer_all(results, n, "none", "remote delivery not available in this build", NULL);
#else
                /* Opened once per worker and kept for the messages a reused
                 * connection carries (the worker has no privileges then). */
                static Table *policy = NULL, *passwords = NULL;
                static SSL_CTX *tls_ctx = NULL;
                static bool opened = false;
                _cleanup_free_ Route *routes = new0(Route, n);

                /* What only root may read is opened before the privileges go:
                 * the password table (mode 0600), the CA file, the policy,
                 * the transport table. */
                r = routes ? 0 : -ENOMEM;
                if (r >= 0 && !opened) {
                        r = worker_open_remote(w->config, &job, &policy, &passwords);
                        tls_ctx = job.tls_ctx;
                        opened = r >= 0;
                }
                job.tls_policy = policy;
                job.passwords = passwords;
                job.tls_ctx = tls_ctx;
                if (r >= 0)
                        r = worker_route_remote(&job, routes);
                if (r < 0)
                        worker_defer_all(results, n, "none", "cannot open a delivery table", strerror(-r));
                else if ((r = sandbox_drop_for_remote()) < 0)
                        worker_defer_all(results, n, "none", "cannot drop privileges", strerror(-r));
                else {
                        r = worker_deliver_remote(&job, routes, results);
                        if (r < 0)
                                worker_defer_all(results, n, "none", "remote delivery failed", strerror(-r));
                }
#endif
        }
        for (size_t k = 0; k < n; k++) {
                r = worker_report(w, iw, idx[k], &results[k]);
                if (r < 0 && ret == 0)
                        ret = r;
        }
        return ret;
}

/* Delivers one job: local recipients first (privileged), then the remote
 * ones; reports each result (not IPC_JOB_DONE). Returns 0, or -errno when a
 * frame could not be sent. Sets *ret_remote_only. */
static int worker_deliver(const WorkerJob *w, IpcWriter *iw, bool *ret_remote_only) {
        _cleanup_free_ size_t *local = new0(size_t, w->n_rcpts);
        _cleanup_free_ size_t *remote = new0(size_t, w->n_rcpts);
        size_t n_local = 0, n_remote = 0;
        int r = 0;

        if (!local || !remote)
                return -ENOMEM;
        for (size_t k = 0; k < w->n_rcpts; k++) {
                size_t i = w->rcpt_index[k];
                if (worker_is_local(w->config, w->env->rcpts[i].addr))
                        local[n_local++] = i;
                else
                        remote[n_remote++] = i;
        }
        if (n_local > 0)
                r = worker_group(w, iw, local, n_local, true);
        if (n_remote > 0) {
                int q = worker_group(w, iw, remote, n_remote, false);
                if (r == 0)
                        r = q;
        }
        *ret_remote_only = n_local == 0;
        return r;
}

static int worker_send_done(const WorkerJob *w, IpcWriter *iw) {
        ipc_writer_init(iw, IPC_JOB_DONE);
        ipc_put_u64(iw, IPC_F_JOB, w->job);
        return ipc_send(w->peer_fd, iw, -1);
}

#ifndef TERN_NO_SMTP_TRANSPORT
/* Connection reuse, after IPC_WORKER_IDLE was sent: waits up to
 * ConnectionReuseTime for the next job to the same destination (an
 * IPC_DELIVER with the spool file's fd). Returns the
 * job, or NULL when the time is up or the parent has none. No job is lost
 * in a race: reading is shut down first, then what already arrived is
 * still taken (the parent's send after the shutdown fails, and it forks). */
static Job *worker_wait_next(const WorkerJob *w, IpcWriter *iw, uint8_t *buf) {
        struct pollfd p = { .fd = w->ctl_fd, .events = POLLIN };
        uint64_t ms = w->config->smtp_connection_reuse_usec / 1000;
        _cleanup_close_ int fd = -EBADF;
        bool shut = false;
        IpcMsg m;
        Job *j = NULL;
        ssize_t n;
        int r;

        r = poll(&p, 1, ms > INT32_MAX ? INT32_MAX : (int) ms);
        if (r <= 0 || !(p.revents & POLLIN)) {
                (void) shutdown(w->ctl_fd, SHUT_RD);
                shut = true;
        }
        n = ipc_recv(w->ctl_fd, buf, IPC_FRAME_MAX, &fd);
        if (n <= 0 && !shut)
                return NULL;
        if (n <= 0) {
                /* Shut down: anything sent before that is still readable. */
                (void) fcntl(w->ctl_fd, F_SETFL, O_NONBLOCK);
                n = ipc_recv(w->ctl_fd, buf, IPC_FRAME_MAX, &fd);
                if (n <= 0)
                        return NULL;
        }
        if (ipc_parse(buf, (size_t) n, &m) < 0 || m.type != IPC_DELIVER || fd < 0)
                return NULL;
        if (job_parse(&m, &j) < 0)
                return NULL;
        if (job_load(j, TAKE_FD(fd)) < 0) {
                /* Not deliverable here: queued gets its JOB_DONE and retries. */
                ipc_writer_init(iw, IPC_JOB_DONE);
                ipc_put_u64(iw, IPC_F_JOB, j->id);
                (void) ipc_send(w->peer_fd, iw, -1);
                return job_free(j);
        }
        return j;
}
#endif

_Noreturn void worker_run(const WorkerJob *w0) {
        _cleanup_free_ IpcWriter *iw = malloc(sizeof(IpcWriter));
        _cleanup_free_ uint8_t *buf = NULL;
        WorkerJob w = *w0;
        Job *next = NULL;
        bool remote_only = false;
        int r;

        if (!iw)
                _exit(1);
        for (;;) {
                r = worker_deliver(&w, iw, &remote_only);
                if (r < 0)
                        break;
#ifndef TERN_NO_SMTP_TRANSPORT
                /* Idle with the connection open: the parent sends the job's
                 * IPC_JOB_DONE when it reads IPC_WORKER_IDLE, so that queued's
                 * next job for this destination finds this worker waiting. */
                if (w.ctl_fd < 0 || !remote_only || !transport_smtp_has_cached() ||
                    (!buf && !(buf = malloc(IPC_FRAME_MAX)))) {
                        r = worker_send_done(&w, iw);
                        break;
                }
                ipc_writer_init(iw, IPC_WORKER_IDLE);
                if (ipc_send(w.ctl_fd, iw, -1) < 0) {
                        r = worker_send_done(&w, iw);
                        break;
                }
                next = job_free(next);
                next = worker_wait_next(&w, iw, buf);
                if (!next)
                        break;
                w.job = next->id;
                w.env = &next->env;
                w.body = next->body;
                w.body_len = next->body_len;
                w.rcpt_index = next->rcpt_index;
                w.n_rcpts = next->n_rcpts;
#else
                r = worker_send_done(&w, iw);
                break;
#endif
        }
        next = job_free(next);
#ifndef TERN_NO_SMTP_TRANSPORT
        transport_smtp_close_cached();
#endif
        _exit(r < 0 ? 1 : 0);
}
