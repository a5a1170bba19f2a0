/* The AUTH decoder (RFC 4954): the AUTH command's mechanism and initial
 * response, strict base64 (RFC 4648 4, no whitespace, canonical padding), and
 * the PLAIN message (RFC 4616). Pure: no I/O, no allocation, no global state;
 * fuzzed by tests/fuzz/fuzz-smtp-auth.c. */
#pragma once

#include "util.h"

#define AUTH_USER_MAX 256u      /* incl. NUL */
#define AUTH_PASSWORD_MAX 256u  /* incl. NUL */
/* RFC 4954 4: a client response line may be 12288 octets long. */
#define AUTH_LINE_MAX 12288u

typedef enum AuthMechanism {
        AUTH_MECH_PLAIN,
        AUTH_MECH_LOGIN,
        _AUTH_MECH_MAX,
        _AUTH_MECH_INVALID = -EINVAL,
} AuthMechanism;

/* "PLAIN", "LOGIN"; NULL for an invalid value. */
const char *auth_mechanism_to_string(AuthMechanism m);

/* Parses the argument of "AUTH mechanism [initial-response]". Returns 0 and the
 * mechanism, with the initial response (pointer into arg, NULL if none; "="
 * stands for an empty one, RFC 4954 4), -EINVAL (syntax) or -EOPNOTSUPP (a
 * mechanism we do not offer). */
int auth_parse_command(const char *arg, size_t n, AuthMechanism *ret_mech, const char **ret_ir,
                       size_t *ret_ir_len);

/* Strict base64 decoding of n characters into out (a NUL is appended, so
 * size must exceed the decoded length). Returns the decoded length, -EINVAL
 * (not canonical base64) or -ENOBUFS. */
int auth_base64_decode(const char *in, size_t n, char *out, size_t size);

/* base64 of n bytes into out with a NUL. Returns the length or -ENOBUFS. */
int auth_base64_encode(const void *in, size_t n, char *out, size_t size);

/* Splits a decoded PLAIN message "authzid NUL authcid NUL passwd" into user
 * and password (NUL-terminated copies). An authorization identity other than
 * empty or the user's own is refused: we do not offer proxy authorization.
 * Returns 0, -EINVAL or -E2BIG (a part over its limit). */
int auth_plain_parse(const char *msg, size_t n, char user[AUTH_USER_MAX],
                     char password[AUTH_PASSWORD_MAX]);
