/* ternctl: the administrator's command. The verbs are listed in the table at
 * the end; each parses its own arguments (see ternctl.h). Exit codes: 0
 * success, 1 failure, 2 usage. */

#include <getopt.h>
#include <stdarg.h>

#include "backup.h"
#include "check.h"
#include "config.h"
#include "import_postfix.h"
#include "log_show.h"
#include "queue_admin.h"
#include "queue_list.h"
#include "stats.h"
#include "tern-build.h"
#include "ternctl.h"

#define EXIT_USAGE TERNCTL_EXIT_USAGE

static void help(void) {
        printf("Usage: ternctl [-c FILE] COMMAND\n"
               "\n"
               "Commands:\n"
               "  queue [list] [--json]   show the queue (like mailq), or as one JSON array\n"
               "  queue show ID [--json]  envelope, recipients with status and last error, headers\n"
               "  queue hold|release|delete|requeue ID...|ALL\n"
               "                          change the queue (root or the queue's owner)\n"
               "  queue flush [ID|--domain DOMAIN|all]\n"
               "                          try deferred mail now\n"
               "  config                  print the effective configuration and where each\n"
               "                          value comes from\n"
               "  check                   validate the configuration, its tables and TLS files\n"
               "  map [--aliases] FILE... compile lookup tables FILE into FILE.cdb\n"
               "  log ID                  one message's life from the journal, in time order\n"
               "  log --follow [ID]       follow deliveries (or message ID) live\n"
               "  stats                   counters in the Prometheus text format\n"
               "  import-postfix [-o FILE] [MAIN.CF]\n"
               "                          translate a Postfix main.cf into a tern.conf drop-in\n"
               "  backup FILE             archive configuration, tables and spool (tar.gz)\n"
               "  restore [--root DIR] FILE\n"
               "                          unpack a backup (tern stopped)\n"
               "  route ADDRESS...        show how each recipient is routed (virtual aliases,\n"
               "                          transport, next hop) or why RCPT TO refuses it\n"
               "\n"
               "Options:\n"
               "  -c, --config FILE       configuration (default $TERN_CONFIG, %s);\n"
               "                          drop-ins are read from FILE.d/\n"
               "      --json              JSON output for queue list\n"
               "  -h, --help              this text\n"
               "      --version           tern's version\n",
               CONFIG_DEFAULT_PATH);
}

int ternctl_usage_error(const char *fmt, ...) {
        va_list ap;

        fputs("ternctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs("\nTry 'ternctl --help'.\n", stderr);
        return EXIT_USAGE;
}

#define usage_error ternctl_usage_error
#define load_config ternctl_load_config

int ternctl_load_config(const char *path, Config **ret) {
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

        if (n > 0 && !streq(args[0], "list"))
                return queue_admin_verb(path, args, n, json);
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

/* --json given before the verb ("ternctl --json queue"), as mailq users type it. */
static bool arg_json;

static int verb_queue_args(const char *path, int argc, char **argv) {
        char *args[argc > 0 ? argc : 1];
        size_t n = 0;
        bool json = arg_json;

        for (int i = 1; i < argc; i++) {
                if (streq(argv[i], "--json"))
                        json = true;
                else
                        args[n++] = argv[i];
        }
        return verb_queue(path, args, n, json);
}

static int verb_no_args(const char *path, int argc, char **argv) {
        if (argc > 1)
                return usage_error("unexpected argument \"%s\"", argv[1]);
        return verb_config(path);
}

static const struct {
        const char *name;
        int (*run)(const char *config_path, int argc, char **argv);
} verbs[] = {
        { "queue", verb_queue_args },
        { "config", verb_no_args },
        { "check", verb_check },
        { "map", verb_map },
        { "log", verb_log },
        { "stats", verb_stats },
        { "import-postfix", verb_import_postfix },
        { "backup", verb_backup },
        { "restore", verb_restore },
        { "route", verb_route },
};

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
        int c;

        /* "+": options end at the verb; the verb parses the rest itself. */
        while ((c = getopt_long(argc, argv, "+c:h", longopts, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        config = optarg;
                        break;
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case ARG_JSON:
                        arg_json = true;
                        break;
                case ARG_VERSION:
                        printf("tern %s\n", TERN_VERSION);
                        return EXIT_SUCCESS;
                default:
                        fputs("Try 'ternctl --help'.\n", stderr);
                        return EXIT_USAGE;
                }
        }
        if (optind >= argc)
                return usage_error("%s", "no command given");

        const char *path = config_path_resolve(config);
        int first = optind;
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(argv[first], verbs[i].name)) {
                        /* A verb may run getopt on its own argv; 0 makes glibc's
                         * getopt start afresh at argv[1]. */
                        optind = 0;
                        return verbs[i].run(path, argc - first, argv + first);
                }
        return usage_error("unknown command \"%s\" (see ternctl --help)", argv[optind]);
}
