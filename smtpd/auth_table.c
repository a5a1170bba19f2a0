/* AUTH against a tinycdb table of crypt(3) hashes (Postfix admins know this
 * as a saslauthd/sasldb replacement; Dovecot's passwd-file has the same idea).
 * The table is mapped before the sandbox; crypt_r needs no system call the
 * sandbox forbids (yescrypt and SHA-crypt only compute and allocate). */
#include <crypt.h>

#include "auth_table.h"
#include "table.h"

typedef struct AuthTable {
        AuthBackend backend;
        Table *table;
} AuthTable;

/* A valid hash to check against when the user is unknown, so that an unknown
 * user costs as much as a wrong password and user names cannot be probed by
 * timing. (yescrypt, the cost Debian uses by default.) */
#define DUMMY_HASH "$y$j9T$F5Jx9kA2fE3lWm1Qp0zL8.$2epAaW2j6wKk0RxmQ5CyFIYkL1OZ8oOeQFdo9/wzV09"

/* Compares in time that depends only on the lengths. */
static bool equal_secret(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        unsigned char d = la != lb;

        for (size_t i = 0; i < la && i < lb; i++)
                d |= (unsigned char) (a[i] ^ b[i]);
        return d == 0;
}

/* Out of line: gcc's sanitizer build otherwise "proves" the pointer null
 * after the calloc check and refuses the call (-Wnonnull). */
static __attribute__((noinline)) void auth_table_wipe(void *p, size_t n) {
        explicit_bzero(p, n);
}

static int auth_table_check(AuthBackend *b, const AuthRequest *req, char ret_user[AUTH_USER_MAX]) {
        AuthTable *t = (AuthTable *) b;
        _cleanup_free_ struct crypt_data *data = NULL;
        _cleanup_free_ char *hash = NULL;
        const char *out;
        bool known;
        int r;

        r = table_lookup(t->table, req->user, &hash);
        if (r < 0 && r != -ENOENT)
                return r;
        known = r == 0;
        /* crypt_data is 32 KiB: not for the stack. calloc: the API wants it zeroed. */
        data = calloc(1, sizeof(*data));
        if (!data)
                return -ENOMEM;
        out = crypt_r(req->password, known ? hash : DUMMY_HASH, data);
        /* A hash crypt cannot handle gives NULL or a string starting with '*'. */
        r = known && out && out[0] != '*' && equal_secret(out, hash);
        auth_table_wipe(data, sizeof(*data));
        if (r)
                (void) snprintf(ret_user, AUTH_USER_MAX, "%s", req->user);
        return r;
}

static void auth_table_free(AuthBackend *b) {
        AuthTable *t = (AuthTable *) b;

        table_close(t->table);
        free(t);
}

int auth_table_open(const char *path, AuthBackend **ret, char *ret_error, size_t error_size) {
        AuthTable *t;
        int r;

        if (isempty(path)) {
                (void) snprintf(ret_error, error_size, "[Auth] Backend = table needs PasswordTable");
                return -EINVAL;
        }
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        r = table_open(path, &t->table);
        if (r < 0) {
                (void) snprintf(ret_error, error_size, "cannot open the password table \"%s.cdb\"%s: %s",
                                path, r == -ENOENT ? " (run `ternctl map` on it)" : "", strerror(-r));
                free(t);
                return r;
        }
        t->backend = (AuthBackend) { .name = "table", .check = auth_table_check, .free = auth_table_free };
        *ret = &t->backend;
        return 0;
}
