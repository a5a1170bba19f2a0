/* `ternctl import-postfix [-o FILE] [MAIN.CF]`: translates the common
 * parameters of a Postfix main.cf into a tern.conf drop-in and lists what it
 * could not translate. */
#pragma once

#include "util.h"

int verb_import_postfix(const char *config_path, int argc, char **argv);
