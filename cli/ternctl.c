/* ternctl: the administrator's command. Verbs: queue [list] [--json], queue
 * flush [ID], config, check. Exit codes: 0 success, 1 failure, 2 usage. */

#include <getopt.h>
#include <stdarg.h>

#include "config.h"
#include "queue_list.h"
#include "tern-build.h"

#define EXIT_USAGE 2

static void help(void) {
        printf("Usage: ternctl [-c FILE] COMMAND\n"
               "\n"
               "Commands:\n"
               "  queue [list] [--json]   show the queue (like mailq), or as one JSON array\n"
               "  queue flush [ID]        try every deferred message, or message ID, now\n"
               "  config                  print the effective configuration and where each\n"
               "                          value comes from\n"
               "  check                   validate the configuration\n"
               "\n"
               "Options:\n"
               "  -c, --config FILE       configuration (default $TERN_CONFIG, %s);\n"
               "                          drop-ins are read from FILE.d/\n"
               "      --json              JSON output for queue list\n"
               "  -h, --help              this text\n"
               "      --version           tern's version\n",
               CONFIG_DEFAULT_PATH);
}

static int usage_error(const char *fmt, ...) _printf_(1, 2);
static int usage_error(const char *fmt, ...) {
        va_list ap;

        fputs("ternctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs("\nTry 'ternctl --help'.\n", stderr);
        return EXIT_USAGE;
}

static const char *config_path(const char *arg) {
        return config_path_resolve(arg);
}

static int load_config(const char *path, Config **ret) {
        _cleanup_free_ char *dropin = NULL;
        ConfigError error = {};
        char buf[700];
        int r;

        if (asprintf(&dropin, "%s.d", path) < 0)
                return -ENOMEM;
        r = config_load(path, dropin, ret, &error);
        if (r < 0)
                fprintf(stderr, "ternctl: %s\n", config_error_string(&error, buf, sizeof(buf)));
        return r;
}

static int queue_result(const Config *c, int r, const char *error) {
        if (r >= 0)
                return EXIT_SUCCESS;
        if (r == -EREMOTEIO)
                fprintf(stderr, "ternctl: %s\n", error);
        else if (r == -ENOENT || r == -ECONNREFUSED || r == -EACCES || r == -EPROTO)
                fprintf(stderr, "ternctl: cannot connect to the tern queue (%s): %s\n",
                        c->queued_socket, strerror(-r));
        else
                fprintf(stderr, "ternctl: talking to the tern queue (%s) failed: %s\n",
                        c->queued_socket, strerror(-r));
        return EXIT_FAILURE;
}

static int verb_queue(const char *path, char **args, size_t n, bool json) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        if (n > 0 && streq(args[0], "flush")) {
                if (n > 2)
                        return usage_error("queue flush takes at most one queue id, not \"%s\"",
                                           args[2]);
                if (json)
                        return usage_error("%s", "--json applies to queue list only");
                if (load_config(path, &c) < 0)
                        return EXIT_FAILURE;
                r = queue_list_flush(c->queued_socket, n == 2 ? args[1] : NULL, &error);
                return queue_result(c, r, error);
        }
        if (n > 0 && !streq(args[0], "list"))
                return usage_error("unknown queue command \"%s\" (list, flush)", args[0]);
        if (n > 1)
                return usage_error("unexpected argument \"%s\"", args[1]);
        if (load_config(path, &c) < 0)
                return EXIT_FAILURE;
        r = queue_list_print(c->queued_socket, json ? QUEUE_LIST_JSON : QUEUE_LIST_HUMAN,
                             stdout, &error);
        return queue_result(c, r, error);
}

static int verb_config(const char *path) {
        _cleanup_(config_freep) Config *c = NULL;
        int r;

        if (load_config(path, &c) < 0)
                return EXIT_FAILURE;
        r = config_dump(c, stdout);
        if (r >= 0 && fflush(stdout) != 0)
                r = negative_errno();
        if (r < 0) {
                fprintf(stderr, "ternctl: cannot print the configuration: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

static int verb_check(const char *path) {
        _cleanup_(config_freep) Config *c = NULL;

        /* Silent on success, like `postfix check`: scripts test the exit code. */
        return load_config(path, &c) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_JSON };
        static const struct option longopts[] = {
                { "config", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "json", no_argument, NULL, ARG_JSON },
                {},
        };
        const char *config = NULL;
        bool json = false;
        int c;

        while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        config = optarg;
                        break;
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case ARG_VERSION:
                        printf("tern %s\n", TERN_VERSION);
                        return EXIT_SUCCESS;
                case ARG_JSON:
                        json = true;
                        break;
                default:
                        fputs("Try 'ternctl --help'.\n", stderr);
                        return EXIT_USAGE;
                }
        }
        if (optind >= argc)
                return usage_error("%s", "no command given");

        const char *verb = argv[optind];
        char **args = argv + optind + 1;
        size_t n = (size_t) (argc - optind - 1);
        const char *path = config_path(config);

        if (json && !streq(verb, "queue"))
                return usage_error("--json applies to queue list only, not \"%s\"", verb);
        if (streq(verb, "queue"))
                return verb_queue(path, args, n, json);
        if (n > 0)
                return usage_error("unexpected argument \"%s\"", args[0]);
        if (streq(verb, "config"))
                return verb_config(path);
        if (streq(verb, "check"))
                return verb_check(path);
        return usage_error("unknown command \"%s\" (queue, config, check)", verb);
}
