/* `ternctl backup FILE` and `ternctl restore FILE`: a gzip'ed tar of the
 * configuration (tern.conf, tern.conf.d/, every table source and its .cdb,
 * the TLS files) and the spool, taken while tern runs. */
#pragma once

#include "util.h"

int verb_backup(const char *config_path, int argc, char **argv);
int verb_restore(const char *config_path, int argc, char **argv);
