/* Shared by ternctl's verbs, each in its own file (map.c, queue_*.c, ...):
 * a verb is `int verb_NAME(const char *config_path, int argc, char **argv)`
 * with argv[0] the verb's name and its own options after it; it returns the
 * exit code (EXIT_SUCCESS, EXIT_FAILURE, TERNCTL_EXIT_USAGE). Add a verb with
 * one line in ternctl.c's verb table and one here. */
#pragma once

#include "config.h"
#include "util.h"

#define TERNCTL_EXIT_USAGE 2

/* "ternctl: <message>\nTry 'ternctl --help'." on stderr; returns TERNCTL_EXIT_USAGE. */
int ternctl_usage_error(const char *fmt, ...) _printf_(1, 2);
/* Loads the configuration, printing a file:line error on failure. 0 or -errno. */
int ternctl_load_config(const char *path, Config **ret);

int verb_map(const char *config_path, int argc, char **argv);
int verb_route(const char *config_path, int argc, char **argv);
