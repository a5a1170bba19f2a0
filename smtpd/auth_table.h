/* The "table" AUTH back end: PasswordTable ("user crypt-hash" lines compiled
 * by `ternctl map` into PasswordTable.cdb), checked with crypt_r(3). */
#pragma once

#include "auth_backend.h"

/* Opens path".cdb". Returns 0 or -errno (*ret_error says why). */
int auth_table_open(const char *path, AuthBackend **ret, char *ret_error, size_t error_size);
