/* `ternctl queue show|hold|release|delete|requeue|flush`: the queue
 * administration commands after "list" (which is queue_list.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Runs `ternctl queue args[0] args[1..n)` against the queue of the
 * configuration at config_path. Returns the exit code (0, 1, or 2 for usage). */
int queue_admin_verb(const char *config_path, char **args, size_t n, bool json);
