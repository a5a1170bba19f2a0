/* `ternctl check`: validates the configuration, every lookup table it names
 * (compiled, not older than its source, a readable cdb) and the TLS files
 * (readable, the key matches the certificate). */
#pragma once

#include "util.h"

/* Prints "file:line: Section.Key: problem" lines on stderr; silent when all
 * is well. Exit code: 0, 1 (problems found) or 2 (usage). */
int verb_check(const char *config_path, int argc, char **argv);
