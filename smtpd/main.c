/* tern-smtpd: one ESMTP session on the connection systemd hands us on fd 0
 * (StandardInput=socket, or systemd-socket-activate --inetd in tests). Only
 * options and configuration live here; serve.c sets up the session and its
 * sandbox (it is shared with tern-smtpd-supervisor), session.c talks. */
#include <getopt.h>
#include <signal.h>

#include "config.h"
#include "log.h"
#include "serve.h"
#include "session.h"

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
        _cleanup_free_ char *dropin = NULL;
        const char *config_path = NULL;
        SmtpdRole role = SMTPD_ROLE_SMTP;
        ConfigError cerr = {};
        char buf[1024];
        int r;

        log_open("tern-smtpd");
        /* A client that goes away must give EPIPE, not kill us mid-log. */
        (void) signal(SIGPIPE, SIG_IGN);

        if (parse_argv(argc, argv, &config_path, &role) < 0) {
                smtpd_serve_unavailable(STDOUT_FILENO, NULL);
                return EXIT_FAILURE;
        }
        config_path = config_path_resolve(config_path);
        if (asprintf(&dropin, "%s.d", config_path) < 0) {
                dropin = NULL;
                smtpd_serve_unavailable(STDOUT_FILENO, NULL);
                return EXIT_FAILURE;
        }
        r = config_load(config_path, dropin, &config, &cerr);
        if (r < 0) {
                LogField fields[] = { { "MESSAGE_ID", LOG_MID_CONFIG_ERROR } };

                log_fields_errno(LOG_ERR, r, fields, "Bad configuration, refusing the session: %s",
                                 config_error_string(&cerr, buf, sizeof(buf)));
                smtpd_serve_unavailable(STDOUT_FILENO, NULL);
                return EXIT_FAILURE;
        }

        /* inetd style: the connection is on fd 0 and fd 1. */
        r = smtpd_serve(config, role, STDIN_FILENO, STDOUT_FILENO);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
