/* The privileged local-delivery helper (see local_helper.h). Protocol on a
 * connection (a socketpair the worker creates and passes over the helper's
 * socket with IPC_HELLO), all frames of ipc.h:
 *   worker -> helper: IPC_DELIVER {QUEUE_ID, SENDER, ARRIVAL} + memfd of the body,
 *                     IPC_MSG_RCPT {RCPT_INDEX, RCPT, ORCPT?} per recipient,
 *                     IPC_MSG_END
 *   helper -> worker: IPC_RESULT {RCPT_INDEX, STATUS, DSN, TEXT, RELAY} per
 *                     recipient, then IPC_JOB_DONE.
 * The helper re-routes every recipient itself (route.h) and trusts nothing
 * else the worker says: what it can be made to do is what any local user
 * can do with sendmail, deliver a message to a local recipient. */
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <systemd/sd-event.h>

#include "address.h"
#include "log.h"
#include "ipc.h"
#include "local.h"
#include "local_helper.h"

static int local_helper_fd = -EBADF;
static int local_helper_conn = -EBADF;
static const char *local_helper_config_path;

int local_helper_watch_fd(void) {
        return local_helper_conn;
}

bool local_helper_active(void) {
        return local_helper_fd >= 0;
}

/* Serves one connection; runs in a child of the helper. */
_Noreturn static void helper_serve(const Config *c, int fd) {
        _cleanup_free_ uint8_t *buf = malloc(IPC_FRAME_MAX);
        _cleanup_free_ DeliveryResult *results = NULL;
        _cleanup_free_ size_t *index = NULL, *worker_index = NULL;
        _cleanup_(spool_envelope_done) SpoolEnvelope env = {};
        _cleanup_free_ IpcWriter *w = malloc(sizeof(IpcWriter));
        const uint8_t *body = MAP_FAILED;
        size_t body_len = 0, n = 0, allocated = 0;
        int body_fd = -EBADF;
        IpcMsg m;
        ssize_t len;

        if (!buf || !w)
                _exit(1);
        (void) signal(SIGCHLD, SIG_DFL);
        local_helper_conn = fd;
        len = ipc_recv(fd, buf, IPC_FRAME_MAX, &body_fd);
        if (len <= 0 || ipc_parse(buf, (size_t) len, &m) < 0 || m.type != IPC_DELIVER || body_fd < 0 ||
            ipc_get_str(&m, IPC_F_QUEUE_ID, SPOOL_ID_MAX, &env.id) < 0 ||
            ipc_get_str(&m, IPC_F_SENDER, ADDRESS_PATH_MAX, &env.sender) < 0 ||
            ipc_get_u64(&m, IPC_F_ARRIVAL, &env.arrival_usec) < 0)
                _exit(1);
        {
                struct stat st;
                if (fstat(body_fd, &st) < 0 || !S_ISREG(st.st_mode))
                        _exit(1);
                body_len = (size_t) st.st_size;
                if (body_len > 0) {
                        body = mmap(NULL, body_len, PROT_READ, MAP_PRIVATE, body_fd, 0);
                        if (body == MAP_FAILED)
                                _exit(1);
                }
                (void) close(body_fd);
        }
        for (;;) {
                uint64_t k;
                SpoolRcpt r = {};

                len = ipc_recv(fd, buf, IPC_FRAME_MAX, NULL);
                if (len <= 0 || ipc_parse(buf, (size_t) len, &m) < 0)
                        _exit(1);
                if (m.type == IPC_MSG_END)
                        break;
                if (m.type != IPC_MSG_RCPT || n >= SPOOL_RCPT_MAX ||
                    ipc_get_u64(&m, IPC_F_RCPT_INDEX, &k) < 0 ||
                    ipc_get_str(&m, IPC_F_RCPT, ADDRESS_PATH_MAX * 2, &r.addr) < 0)
                        _exit(1);
                (void) ipc_get_str(&m, IPC_F_ORCPT, 1024, &r.orcpt);
                if (n == allocated) {
                        size_t a = allocated ? allocated * 2 : 16;
                        SpoolRcpt *nr = reallocarray_safe(env.rcpts, a, sizeof(SpoolRcpt));
                        size_t *ni = reallocarray_safe(worker_index, a, sizeof(size_t));
                        if (nr)
                                env.rcpts = nr;
                        if (ni)
                                worker_index = ni;
                        if (!nr || !ni)
                                _exit(1);
                        allocated = a;
                }
                env.rcpts[n] = r;
                worker_index[n] = (size_t) k;
                env.n_rcpts = ++n;
        }
        if (n == 0)
                _exit(1);
        local_helper_conn = fd;
        index = new0(size_t, n);
        results = new0(DeliveryResult, n);
        if (!index || !results)
                _exit(1);
        for (size_t i = 0; i < n; i++)
                index[i] = i;
        DeliveryJob job = {
                .config = c,
                .env = &env,
                .body = body == MAP_FAILED ? (const uint8_t *) "" : body,
                .body_len = body_len,
                .rcpt_index = index,
                .n_rcpts = n,
        };
        if (local_deliver_direct(&job, results) < 0)
                _exit(1);
        for (size_t i = 0; i < n; i++) {
                ipc_writer_init(w, IPC_RESULT);
                ipc_put_u64(w, IPC_F_RCPT_INDEX, worker_index[i]);
                ipc_put_u64(w, IPC_F_STATUS, (uint64_t) results[i].status);
                ipc_put_str(w, IPC_F_DSN, results[i].dsn);
                ipc_put_str(w, IPC_F_TEXT, results[i].text);
                ipc_put_str(w, IPC_F_RELAY, results[i].relay);
                if (ipc_send(fd, w, -1) < 0)
                        _exit(1);
        }
        ipc_writer_init(w, IPC_JOB_DONE);
        _exit(ipc_send(fd, w, -1) < 0 ? 1 : 0);
}

_Noreturn static void helper_main(const Config *c, int sock, pid_t parent) {
        _cleanup_free_ uint8_t *buf = malloc(IPC_FRAME_MAX);

        /* Gone with deliverd; SIGTERM stays blocked (inherited) so running
         * deliveries finish when the service stops. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent || !buf)
                _exit(1);
        (void) prctl(PR_SET_NAME, "deliverd-local");
        /* Only the request socket (and stdio, for logging) stays open. */
        if (dup2(sock, 3) < 0)
                _exit(1);
        (void) syscall(SYS_close_range, 4u, ~0u, 0u);
        sock = 3;
        /* Children are reaped by the kernel; each serving child resets it. */
        (void) signal(SIGCHLD, SIG_IGN);
        Config *reloaded = NULL;

        for (;;) {
                int conn = -EBADF;
                ssize_t len = ipc_recv(sock, buf, IPC_FRAME_MAX, &conn);
                IpcMsg m;
                pid_t pid;

                if (len == 0)
                        _exit(0);
                if (len < 0) {
                        if (len == -EINTR || len == -EAGAIN)
                                continue;
                        _exit(1);
                }
                if (conn < 0)
                        continue;
                if (ipc_parse(buf, (size_t) len, &m) < 0 || m.type != IPC_HELLO) {
                        (void) close(conn);
                        continue;
                }
                /* The configuration as reloaded by deliverd (SIGHUP), read here in
                 * the long-lived helper so that a file that does not load keeps
                 * the last one that did, as deliverd does (not the one it
                 * started with). */
                if (local_helper_config_path) {
                        _cleanup_free_ char *dropin = NULL;
                        Config *fresh = NULL;
                        ConfigError e = {};

                        if (asprintf(&dropin, "%s.d", local_helper_config_path) >= 0 &&
                            config_load(local_helper_config_path, dropin, &fresh, &e) >= 0) {
                                config_free(reloaded);
                                reloaded = fresh;
                                c = fresh;
                        }
                }
                pid = fork();
                if (pid == 0) {
                        (void) close(sock);
                        helper_serve(c, conn);
                }
                (void) close(conn);
        }
}

static int helper_on_gone(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        log_error("The local-delivery helper exited; stopping so that deliverd is started anew");
        return sd_event_exit(sd_event_source_get_event(s), -EPIPE);
}

int local_helper_watch(sd_event *e) {
        if (local_helper_fd < 0)
                return 0;
        /* The helper never writes on this socket: readable means it closed. */
        return sd_event_add_io(e, NULL, local_helper_fd, EPOLLIN | EPOLLRDHUP, helper_on_gone, NULL);
}

int local_helper_start(const Config *c, const char *config_path) {
        int sv[2];
        pid_t pid, parent = getpid();

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                int r = -errno;
                (void) close(sv[0]);
                (void) close(sv[1]);
                return r;
        }
        if (pid == 0) {
                (void) close(sv[0]);
                local_helper_config_path = config_path;
                helper_main(c, sv[1], parent);
        }
        (void) close(sv[1]);
        local_helper_fd = sv[0];
        (void) config_path;
        return 0;
}

static int helper_send_job(int fd, const DeliveryJob *job, IpcWriter *w) {
        _cleanup_close_ int mfd = -EBADF;
        size_t off = 0;
        int r;

        mfd = memfd_create("tern-local", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (mfd < 0)
                return -errno;
        while (off < job->body_len) {
                ssize_t k = write(mfd, job->body + off, job->body_len - off);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                off += (size_t) k;
        }
        /* The helper maps it: nobody may change it under the reader. */
        if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return -errno;
        ipc_writer_init(w, IPC_DELIVER);
        ipc_put_str(w, IPC_F_QUEUE_ID, job->env->id);
        ipc_put_str(w, IPC_F_SENDER, job->env->sender);
        ipc_put_u64(w, IPC_F_ARRIVAL, job->env->arrival_usec);
        r = ipc_send(fd, w, mfd);
        if (r < 0)
                return r;
        for (size_t k = 0; k < job->n_rcpts; k++) {
                const SpoolRcpt *rc = &job->env->rcpts[job->rcpt_index[k]];
                ipc_writer_init(w, IPC_MSG_RCPT);
                ipc_put_u64(w, IPC_F_RCPT_INDEX, k);
                ipc_put_str(w, IPC_F_RCPT, rc->addr);
                ipc_put_str(w, IPC_F_ORCPT, rc->orcpt);
                r = ipc_send(fd, w, -1);
                if (r < 0)
                        return r;
        }
        ipc_writer_init(w, IPC_MSG_END);
        return ipc_send(fd, w, -1);
}

int local_helper_deliver(const DeliveryJob *job, DeliveryResult *results) {
        _cleanup_free_ IpcWriter *w = malloc(sizeof(IpcWriter));
        _cleanup_free_ uint8_t *buf = malloc(IPC_FRAME_MAX);
        _cleanup_free_ bool *seen = new0(bool, job->n_rcpts);
        _cleanup_close_ int conn = -EBADF, theirs = -EBADF;
        size_t got = 0;
        int sv[2], r;

        if (!w || !buf || !seen)
                return -ENOMEM;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        conn = sv[0], theirs = sv[1];
        ipc_writer_init(w, IPC_HELLO);
        ipc_put_u64(w, IPC_F_VERSION, IPC_VERSION);
        r = ipc_send(local_helper_fd, w, theirs);
        if (r < 0)
                return r;
        (void) close(TAKE_FD(theirs));
        r = helper_send_job(conn, job, w);
        if (r < 0)
                return r;
        for (;;) {
                IpcMsg m;
                uint64_t k, status;
                ssize_t len = ipc_recv(conn, buf, IPC_FRAME_MAX, NULL);
                char *s = NULL;
                DeliveryResult *res;

                if (len == -EINTR)
                        continue;
                if (len <= 0 || ipc_parse(buf, (size_t) len, &m) < 0)
                        break;
                if (m.type == IPC_JOB_DONE)
                        break;
                if (m.type != IPC_RESULT || ipc_get_u64(&m, IPC_F_RCPT_INDEX, &k) < 0 ||
                    k >= job->n_rcpts || seen[k] || ipc_get_u64(&m, IPC_F_STATUS, &status) < 0 ||
                    (status != DELIVERY_DELIVERED && status != DELIVERY_BOUNCED &&
                     status != DELIVERY_DEFERRED))
                        break;
                res = &results[k];
                *res = (DeliveryResult) { .status = (DeliveryStatus) status };
                if (ipc_get_str(&m, IPC_F_DSN, sizeof(res->dsn) - 1, &s) >= 0)
                        memcpy(res->dsn, s, strlen(s) + 1);
                free(TAKE_PTR(s));
                if (ipc_get_str(&m, IPC_F_TEXT, sizeof(res->text) - 1, &s) >= 0)
                        memcpy(res->text, s, strlen(s) + 1);
                free(TAKE_PTR(s));
                if (ipc_get_str(&m, IPC_F_RELAY, sizeof(res->relay) - 1, &s) >= 0)
                        memcpy(res->relay, s, strlen(s) + 1);
                free(TAKE_PTR(s));
                seen[k] = true;
                got++;
        }
        /* The helper went away or said nonsense: whatever has no result waits. */
        for (size_t k = 0; k < job->n_rcpts; k++)
                if (!seen[k])
                        local_result(&results[k], DELIVERY_DEFERRED, "4.3.0",
                                     "local delivery helper gave no result");
        return 0;
}
