/* The per-connection part of tern-smtpd (serve.h): everything between the
 * loaded configuration and the end of the session. Only set-up lives here:
 * the client's address, the connection to queued, TLS and AUTH files, the
 * access policy, the sandbox; session.c does the talking. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <time.h>

#include "auth_backend.h"
#include "log.h"
#include "network.h"
#include "policy.h"
#include "queue_client.h"
#include "sandbox.h"
#include "serve.h"
#include "table.h"
#include "tls.h"

/* Before the session exists, the only thing we can tell the client. */
void smtpd_serve_unavailable(int fd, const char *hostname) {
        char host[256] = "localhost", line[512];
        int n;

        if (isempty(hostname) && gethostname(host, sizeof(host) - 1) == 0)
                host[sizeof(host) - 1] = 0;
        n = snprintf(line, sizeof(line),
                     "421 4.3.0 %s Service not available, closing transmission channel\r\n",
                     isempty(hostname) ? host : hostname);
        if (n > 0 && (size_t) n < sizeof(line))
                (void) !write(fd, line, (size_t) n);
}

/* The client's address from the connection's socket. AF_UNIX or a pipe is a
 * local client (tests, local tools): treated as trusted, like 127.0.0.1. */
static void client_address(Session *s, const Config *config, int fd) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);

        (void) snprintf(s->client_name, sizeof(s->client_name), "unknown");
        if (getpeername(fd, (struct sockaddr *) &ss, &len) < 0 ||
            (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) ||
            sockaddr_to_string((struct sockaddr *) &ss, len, s->client_addr, sizeof(s->client_addr)) < 0) {
                (void) snprintf(s->client_addr, sizeof(s->client_addr), "local");
                (void) snprintf(s->client_name, sizeof(s->client_name), "localhost");
                s->trusted = true;
        } else
                /* No reverse DNS yet: it would need a resolver inside the
                 * sandbox and costs a round trip per connection. */
                s->trusted = netlist_match(&config->trusted_networks, (struct sockaddr *) &ss, len);
        (void) snprintf(s->client, sizeof(s->client), "%s[%s]", s->client_name, s->client_addr);
}

/* Everything TLS and AUTH need from the file system, opened before the
 * sandbox: the certificate and key, the AUTH back end (a mapped table or a
 * connected socket) and the sender login map. A broken piece is logged and
 * left out (no STARTTLS, no AUTH), as Postfix carries on without TLS when its
 * key is unreadable; the submission roles then refuse mail (session_auth.c).
 * On port 25 only the PEM files are read here: the OpenSSL context (most of
 * TLS's set-up cost) is made at the first STARTTLS (session_tls.c), so
 * sessions that never ask for TLS do not pay for it. */
static void secure_setup(Session *s, const Config *config, TlsFiles **ret_files, SSL_CTX **ret_ctx,
                         AuthBackend **ret_auth, Table **ret_logins) {
        char err[512] = "";
        int r;

        if (!isempty(config->tls_certificate_file) &&
            (s->role != SMTPD_ROLE_SMTP || !streq(config->tls_security_level, "none"))) {
                r = tls_files_read(config->tls_certificate_file,
                                   isempty(config->tls_key_file) ? config->tls_certificate_file
                                                                 : config->tls_key_file,
                                   ret_files, err, sizeof(err));
                /* Submission always needs TLS: check the key now, before AUTH
                 * is set up on top of it. */
                if (r >= 0 && s->role != SMTPD_ROLE_SMTP) {
                        r = tls_context_new(*ret_files, ret_ctx, err, sizeof(err));
                        if (r < 0)
                                *ret_files = tls_files_free(*ret_files);
                }
                if (r < 0)
                        (void) log_error_errno(r, "TLS is unavailable for %s: %s", s->client,
                                               err[0] ? err : "cannot set up OpenSSL");
        }
        s->tls_files = *ret_files;
        s->tls_ctx = *ret_ctx;
        /* Without TLS there is no AUTH (RFC 4954 4): do not even connect. */
        if (!s->tls_files)
                return;
        err[0] = 0;
        r = auth_backend_open(config, ret_auth, err, sizeof(err));
        /* On port 25 AUTH is optional: a password table that was never
         * built is the default state, not worth an error per connection. */
        if (r < 0)
                log_emit(r == -ENOENT && s->role == SMTPD_ROLE_SMTP ? LOG_DEBUG : LOG_ERR, r, NULL, 0,
                         "AUTH is unavailable for %s: %s", s->client,
                         err[0] ? err : "cannot open the back end");
        s->auth = *ret_auth;
        if (s->auth && !isempty(config->auth_sender_login_map)) {
                r = table_open(config->auth_sender_login_map, ret_logins);
                if (r < 0) {
                        /* Without the map we cannot tell who owns a sender:
                         * AUTH would grant every address, so offer none. */
                        (void) log_error_errno(r, "AUTH is unavailable for %s: cannot open SenderLoginMap \"%s.cdb\": %m",
                                               s->client, config->auth_sender_login_map);
                        s->auth = *ret_auth = auth_backend_free(*ret_auth);
                }
                s->sender_logins = *ret_logins;
        }
}

int smtpd_serve_prepare(const Config *config) {
        int r = sandbox_prepare();

        /* The library's own set-up and the system-wide openssl.cnf, once for
         * all children instead of once per connection; a child that reads
         * a certificate then finds OpenSSL ready (tls_files_read). */
        if (!isempty(config->tls_certificate_file) &&
            OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL) != 1 && r >= 0)
                r = -ENOMEM;
        return r;
}

int smtpd_serve(const Config *config, SmtpdRole role, int in_fd, int out_fd) {
        _cleanup_(queue_client_freep) QueueClient *queue = NULL;
        _cleanup_free_ Session *s = NULL;
        _cleanup_(tls_files_freep) TlsFiles *tls_files = NULL;
        _cleanup_(tls_context_freep) SSL_CTX *tls_ctx = NULL;
        _cleanup_(auth_backend_freep) AuthBackend *auth = NULL;
        _cleanup_(table_closep) Table *sender_logins = NULL;
        _cleanup_(policy_freep) Policy *policy = NULL;
        char sid[40];
        struct timespec ts;
        int r;

        s = malloc(sizeof(*s));
        if (!s) {
                smtpd_serve_unavailable(out_fd, config->hostname);
                return -ENOMEM;
        }
        /* O_NONBLOCK: io.c waits with poll() and deadlines, never in read/write. */
        (void) fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
        (void) fcntl(out_fd, F_SETFL, fcntl(out_fd, F_GETFL) | O_NONBLOCK);
        session_init(s, config, role, NULL, in_fd, out_fd);
        client_address(s, config, in_fd);

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        (void) snprintf(sid, sizeof(sid), "%llx%05lx%x", (unsigned long long) ts.tv_sec,
                        (unsigned long) (ts.tv_nsec / 10000), (unsigned) getpid());
        memcpy(s->id, sid, sizeof(s->id));
        (void) log_context_set("TERN_SESSION", s->id);
        (void) log_context_set("TERN_CLIENT", s->client);

        r = queue_client_new(config->queued_socket, config->timeout_usec, &queue);
        if (r < 0) {
                (void) log_error_errno(r, "Cannot reach queued at %s, refusing the session from %s: %m",
                                       config->queued_socket, s->client);
                smtpd_serve_unavailable(out_fd, config->hostname);
                return r;
        }
        s->queue = queue;

        secure_setup(s, config, &tls_files, &tls_ctx, &auth, &sender_logins);

        /* Access tables and the DNS blocklist socket (policy.c, rbl.c). */
        r = policy_new(config, s->client_addr, &policy);
        if (r < 0) {
                (void) log_error_errno(r, "Cannot set up the access policy, refusing the session: %m");
                smtpd_serve_unavailable(out_fd, config->hostname);
                return r;
        }
        s->policy = policy;

        /* Load the time zone now: the Received: date needs /etc/localtime,
         * which the sandbox will not let us open. */
        tzset();
        session_log_connect(s);
        r = sandbox_enter();
        if (r < 0) {
                (void) log_error_errno(r, "Cannot enter the sandbox, refusing the session: %m");
                smtpd_serve_unavailable(out_fd, config->hostname);
                return r;
        }

        r = session_run(s);
        if (s->tls_ctx != tls_ctx) /* made at STARTTLS */
                (void) tls_context_free(s->tls_ctx);
        return r;
}
