/* AUTH decoding, kept apart from the session so it can be fuzzed: see auth.h. */
#include <strings.h>

#include "auth.h"

static const char *const mech_names[_AUTH_MECH_MAX] = {
        [AUTH_MECH_PLAIN] = "PLAIN",
        [AUTH_MECH_LOGIN] = "LOGIN",
};

const char *auth_mechanism_to_string(AuthMechanism m) {
        return m >= 0 && m < _AUTH_MECH_MAX ? mech_names[m] : NULL;
}

int auth_parse_command(const char *arg, size_t n, AuthMechanism *ret_mech, const char **ret_ir,
                       size_t *ret_ir_len) {
        const char *sp = memchr(arg, ' ', n);
        size_t ml = sp ? (size_t) (sp - arg) : n;
        AuthMechanism mech = _AUTH_MECH_INVALID;

        /* RFC 4954 4: SASL mechanism names are 1..20 characters. */
        if (ml == 0 || ml > 20)
                return -EINVAL;
        for (AuthMechanism m = 0; m < _AUTH_MECH_MAX; m++)
                if (strlen(mech_names[m]) == ml && strncasecmp(arg, mech_names[m], ml) == 0)
                        mech = m;
        if (mech < 0) {
                for (size_t i = 0; i < ml; i++) {
                        char ch = arg[i];

                        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                              (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
                                return -EINVAL;
                }
                return -EOPNOTSUPP;
        }
        if (sp) {
                /* Exactly one SP, then one non-empty token. */
                if (n - ml - 1 == 0 || memchr(sp + 1, ' ', n - ml - 1))
                        return -EINVAL;
                *ret_ir = sp + 1;
                *ret_ir_len = n - ml - 1;
        } else {
                *ret_ir = NULL;
                *ret_ir_len = 0;
        }
        *ret_mech = mech;
        return 0;
}

static int b64_value(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

int auth_base64_decode(const char *in, size_t n, char *out, size_t size) {
        size_t o = 0;

        if (n % 4 != 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i += 4) {
                int v[4];
                size_t pad = 0;

                for (size_t k = 0; k < 4; k++) {
                        if (in[i + k] == '=') {
                                /* Padding only in the last quantum, at its end, at most two. */
                                if (i + 4 != n || k < 2)
                                        return -EINVAL;
                                pad++;
                                v[k] = 0;
                                continue;
                        }
                        if (pad > 0)
                                return -EINVAL;
                        v[k] = b64_value(in[i + k]);
                        if (v[k] < 0)
                                return -EINVAL;
                }
                /* RFC 4648 3.5: the bits after the last octet must be zero,
                 * so each octet string has exactly one encoding. */
                if ((pad == 1 && (v[2] & 0x3)) || (pad == 2 && (v[1] & 0xf)))
                        return -EINVAL;
                if (o + 3 - pad >= size)
                        return -ENOBUFS;
                out[o++] = (char) ((v[0] << 2) | (v[1] >> 4));
                if (pad < 2)
                        out[o++] = (char) (((v[1] & 0xf) << 4) | (v[2] >> 2));
                if (pad < 1)
                        out[o++] = (char) (((v[2] & 0x3) << 6) | v[3]);
        }
        if (o >= size)
                return -ENOBUFS;
        out[o] = 0;
        return (int) o;
}

int auth_base64_encode(const void *in, size_t n, char *out, size_t size) {
        static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const unsigned char *p = in;
        size_t o = 0;

        if (n > (SIZE_MAX - 1) / 4 * 3 - 3 || (n + 2) / 3 * 4 >= size)
                return -ENOBUFS;
        for (size_t i = 0; i < n; i += 3) {
                unsigned v = (unsigned) p[i] << 16;

                if (i + 1 < n)
                        v |= (unsigned) p[i + 1] << 8;
                if (i + 2 < n)
                        v |= p[i + 2];
                out[o++] = alphabet[(v >> 18) & 63];
                out[o++] = alphabet[(v >> 12) & 63];
                out[o++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
                out[o++] = i + 2 < n ? alphabet[v & 63] : '=';
        }
        out[o] = 0;
        return (int) o;
}

int auth_plain_parse(const char *msg, size_t n, char user[AUTH_USER_MAX],
                     char password[AUTH_PASSWORD_MAX]) {
        const char *nul1 = memchr(msg, 0, n), *nul2, *authzid = msg, *authcid, *passwd;
        size_t zl, cl, pl;

        if (!nul1)
                return -EINVAL;
        nul2 = memchr(nul1 + 1, 0, n - (size_t) (nul1 + 1 - msg));
        if (!nul2)
                return -EINVAL;
        zl = (size_t) (nul1 - authzid);
        authcid = nul1 + 1;
        cl = (size_t) (nul2 - authcid);
        passwd = nul2 + 1;
        pl = n - (size_t) (passwd - msg);
        /* RFC 4616 2: no further NUL; authcid and passwd are not empty. */
        if (cl == 0 || pl == 0 || memchr(passwd, 0, pl))
                return -EINVAL;
        if (cl >= AUTH_USER_MAX || pl >= AUTH_PASSWORD_MAX)
                return -E2BIG;
        if (zl > 0 && (zl != cl || memcmp(authzid, authcid, cl) != 0))
                return -EINVAL;
        memcpy(user, authcid, cl);
        user[cl] = 0;
        memcpy(password, passwd, pl);
        password[pl] = 0;
        return 0;
}
