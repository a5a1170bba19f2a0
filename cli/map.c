/* ternctl map [--aliases] FILE...: compiles lookup-table sources into FILE.cdb
 * (common/table.h), as Postfix's postmap does. */
#include <getopt.h>

#include "table.h"
#include "ternctl.h"

int verb_map(const char *config_path, int argc, char **argv) {
        static const struct option longopts[] = {
                { "aliases", no_argument, NULL, 'a' },
                { "format", required_argument, NULL, 'f' },
                {},
        };
        TableFormat format = TABLE_MAP;
        int c, failed = 0;

        (void) config_path;
        while ((c = getopt_long(argc, argv, "af:", longopts, NULL)) >= 0) {
                switch (c) {
                case 'a':
                        format = TABLE_ALIASES;
                        break;
                case 'f':
                        format = table_format_from_string(optarg);
                        if (format < 0)
                                return ternctl_usage_error("unknown table format \"%s\" "
                                                           "(map, aliases)", optarg);
                        break;
                default:
                        return ternctl_usage_error("%s", "usage: map [--aliases] FILE...");
                }
        }
        if (optind >= argc)
                return ternctl_usage_error("%s", "map needs at least one FILE");

        for (int i = optind; i < argc; i++) {
                _cleanup_free_ char *abs = NULL;
                const char *path = argv[i];
                int r;

                /* table_build wants an absolute path (it names the .cdb after it). */
                if (path[0] != '/') {
                        abs = realpath(path, NULL);
                        if (!abs) {
                                fprintf(stderr, "ternctl: %s: %s\n", path, strerror(errno));
                                failed = 1;
                                continue;
                        }
                        path = abs;
                }
                r = table_build(path, format, stderr);
                if (r < 0) {
                        if (r == -EINVAL)
                                fprintf(stderr, "ternctl: %s: not compiled, nothing changed\n",
                                        path);
                        failed = 1;
                }
        }
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
