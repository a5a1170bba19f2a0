/* `ternctl stats`: queued's counters in the Prometheus text format. */
#pragma once

#include "util.h"

/* `ternctl stats`: prints the text. Exit code. */
int verb_stats(const char *config_path, int argc, char **argv);
