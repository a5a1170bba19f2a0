/* `ternctl stats`: the same Prometheus text tern-metrics serves over HTTP,
 * printed for an administrator or a node_exporter textfile collector. The
 * counters live in tern-queued and count since it started. */
#include "stats.h"
#include "stats_client.h"
#include "ternctl.h"

int verb_stats(const char *config_path, int argc, char **argv) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *text = NULL;
        int r;

        if (argc > 1)
                return ternctl_usage_error("unexpected argument \"%s\"", argv[1]);
        if (ternctl_load_config(config_path, &c) < 0)
                return EXIT_FAILURE;
        r = stats_fetch(c->queued_socket, &text);
        if (r < 0) {
                fprintf(stderr, "ternctl: cannot get statistics from the tern queue (%s): %s\n",
                        c->queued_socket, strerror(-r));
                return EXIT_FAILURE;
        }
        fputs(text, stdout);
        return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
