/* Chooses the AUTH back end by name; see auth_backend.h. */
#include "auth_backend.h"
#include "auth_dovecot.h"
#include "auth_table.h"

int auth_backend_open(const Config *config, AuthBackend **ret, char *ret_error, size_t error_size) {
        if (streq(config->auth_backend, "table"))
                return auth_table_open(config->auth_password_table, ret, ret_error, error_size);
        if (streq(config->auth_backend, "dovecot"))
                return auth_dovecot_open(config->auth_dovecot_socket, config->timeout_usec, ret,
                                         ret_error, error_size);
        *ret = NULL;
        return 0;
}

AuthBackend *auth_backend_free(AuthBackend *b) {
        if (b)
                b->free(b);
        return NULL;
}

int auth_backend_check(AuthBackend *b, const AuthRequest *req, char ret_user[AUTH_USER_MAX]) {
        return b->check(b, req, ret_user);
}
