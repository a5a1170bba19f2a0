/* tern-smtpd: one ESMTP session on the connection systemd hands us on fd 0
 * (StandardInput=socket, or systemd-socket-activate --inetd in tests). Only
 * set-up lives here: options, configuration, the connection to queued, the
 * sandbox; session.c does the talking. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

#include "auth_backend.h"
#include "config.h"
#include "log.h"
#include "network.h"
#include "policy.h"
#include "queue_client.h"
#include "sandbox.h"
#include "session.h"
#include "table.h"
#include "tls.h"

/* Before the session exists, the only thing we can tell the client. */
static void say_unavailable(const char *hostname) {
        char host[256] = "localhost", line[512];
        int n;

        if (isempty(hostname) && gethostname(host, sizeof(host) - 1) == 0)
                host[sizeof(host) - 1] = 0;
        n = snprintf(line, sizeof(line),
                     "421 4.3.0 %s Service not available, closing transmission channel\r\n",
                     isempty(hostname) ? host : hostname);
        if (n > 0 && (size_t) n < sizeof(line))
                (void) !write(STDOUT_FILENO, line, (size_t) n);
}

/* The client's address from the socket on fd 0. AF_UNIX or a pipe is a local
 * client (tests, local tools): treated as trusted, like 127.0.0.1. */
static void client_address(Session *s, const Config *config) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);

        (void) snprintf(s->client_name, sizeof(s->client_name), "unknown");
        if (getpeername(STDIN_FILENO, (struct sockaddr *) &ss, &len) < 0 ||
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

static int parse_argv(int argc, char **argv, const char **ret_config, SmtpdRole *ret_role) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "role", required_argument, NULL, 'r' },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "c:", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        *ret_config = optarg;
                        break;
                case 'r':
                        *ret_role = smtpd_role_from_string(optarg);
                        if (*ret_role < 0)
                                return log_error_errno(-EINVAL, "Unknown --role \"%s\" (smtp, submission, submissions)",
                                                       optarg);
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc)
                return log_error_errno(-EINVAL, "Unexpected argument \"%s\"", argv[optind]);
        return 0;
}

int main(int argc, char **argv) {
        _cleanup_(config_freep) Config *config = NULL;
        _cleanup_(queue_client_freep) QueueClient *queue = NULL;
        _cleanup_free_ Session *s = NULL;
        _cleanup_free_ char *dropin = NULL;
        _cleanup_(tls_files_freep) TlsFiles *tls_files = NULL;
        _cleanup_(tls_context_freep) SSL_CTX *tls_ctx = NULL;
        _cleanup_(auth_backend_freep) AuthBackend *auth = NULL;
        _cleanup_(table_closep) Table *sender_logins = NULL;
        _cleanup_(policy_freep) Policy *policy = NULL;
        const char *config_path = NULL;
        SmtpdRole role = SMTPD_ROLE_SMTP;
        ConfigError cerr = {};
        char buf[1024], sid[40];
        struct timespec ts;
        int r;

        log_open("tern-smtpd");
        /* A client that goes away must give EPIPE, not kill us mid-log. */
        (void) signal(SIGPIPE, SIG_IGN);

        if (parse_argv(argc, argv, &config_path, &role) < 0) {
                say_unavailable(NULL);
                return EXIT_FAILURE;
        }
        config_path = config_path_resolve(config_path);
        if (asprintf(&dropin, "%s.d", config_path) < 0) {
                dropin = NULL;
                say_unavailable(NULL);
                return EXIT_FAILURE;
        }
        r = config_load(config_path, dropin, &config, &cerr);
        if (r < 0) {
                LogField fields[] = { { "MESSAGE_ID", LOG_MID_CONFIG_ERROR } };

                log_fields_errno(LOG_ERR, r, fields, "Bad configuration, refusing the session: %s",
                                 config_error_string(&cerr, buf, sizeof(buf)));
                say_unavailable(NULL);
                return EXIT_FAILURE;
        }

        s = malloc(sizeof(*s));
        if (!s) {
                say_unavailable(config->hostname);
                return EXIT_FAILURE;
        }
        /* O_NONBLOCK: io.c waits with poll() and deadlines, never in read/write. */
        (void) fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
        (void) fcntl(STDOUT_FILENO, F_SETFL, fcntl(STDOUT_FILENO, F_GETFL) | O_NONBLOCK);
        session_init(s, config, role, NULL, STDIN_FILENO, STDOUT_FILENO);
        client_address(s, config);

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
                say_unavailable(config->hostname);
                return EXIT_FAILURE;
        }
        s->queue = queue;

        secure_setup(s, config, &tls_files, &tls_ctx, &auth, &sender_logins);

        /* Access tables and the DNS blocklist socket (policy.c, rbl.c). */
        r = policy_new(config, s->client_addr, &policy);
        if (r < 0) {
                (void) log_error_errno(r, "Cannot set up the access policy, refusing the session: %m");
                say_unavailable(config->hostname);
                return EXIT_FAILURE;
        }
        s->policy = policy;

        /* Load the time zone now: the Received: date needs /etc/localtime,
         * which the sandbox will not let us open. */
        tzset();
        session_log_connect(s);
        r = sandbox_enter();
        if (r < 0) {
                (void) log_error_errno(r, "Cannot enter the sandbox, refusing the session: %m");
                say_unavailable(config->hostname);
                return EXIT_FAILURE;
        }

        r = session_run(s);
        if (s->tls_ctx != tls_ctx) /* made at STARTTLS */
                (void) tls_context_free(s->tls_ctx);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
