/* Where AUTH credentials are checked: one small interface over the back ends
 * that [Auth] Backend names, each in its own file (auth_table.c for a tinycdb
 * table of crypt(3) hashes, auth_dovecot.c for Dovecot's auth socket), as
 * OpenSMTPD's table.c fronts its table_*.c. A back end is opened before the
 * sandbox (it holds an fd and perhaps a mapping) and only used after it. */
#pragma once

#include "auth.h"
#include "config.h"

typedef struct AuthBackend AuthBackend;

typedef struct AuthRequest {
        AuthMechanism mech;     /* what the client used (Dovecot logs it) */
        const char *user;
        const char *password;
        const char *client_addr; /* "192.0.2.1", or "local" */
        bool tls;
} AuthRequest;

struct AuthBackend {
        const char *name;
        /* 1 (good credentials, *ret_user the canonical user name), 0 (bad), -errno (backend failure). */
        int (*check)(AuthBackend *b, const AuthRequest *req, char ret_user[AUTH_USER_MAX]);
        void (*free)(AuthBackend *b);
};

/* Opens the back end config->auth_backend names. Returns 0 with *ret NULL for
 * "none", 0 and the back end, or -errno with *ret_error explaining. */
int auth_backend_open(const Config *config, AuthBackend **ret, char *ret_error, size_t error_size);
AuthBackend *auth_backend_free(AuthBackend *b);
DEFINE_POINTER_CLEANUP(AuthBackend, auth_backend_free);

/* See AuthBackend.check. */
int auth_backend_check(AuthBackend *b, const AuthRequest *req, char ret_user[AUTH_USER_MAX]);
