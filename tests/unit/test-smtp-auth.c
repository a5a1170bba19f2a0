/* Unit test of smtpd's AUTH decoder (smtpd/auth.c): the AUTH argument,
 * strict base64 (RFC 4648 test vectors, padding and pad-bit rules, no
 * whitespace), and the PLAIN message (RFC 4616) with its authzid rule. */
#include "auth.h"
#include "tap.h"

static int dec(const char *in, char *out, size_t size) {
        return auth_base64_decode(in, strlen(in), out, size);
}

int main(void) {
        static const char *const vectors[][2] = {
                { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
                { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
        };
        char out[64], user[AUTH_USER_MAX], pass[AUTH_PASSWORD_MAX], big[AUTH_USER_MAX + 8];
        const char *ir;
        size_t ir_len;
        AuthMechanism m;

        /* RFC 4648 10, both ways. */
        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
                CHECK_INT(dec(vectors[i][1], out, sizeof(out)), strlen(vectors[i][0]));
                CHECK_STREQ(out, vectors[i][0]);
                CHECK_INT(auth_base64_encode(vectors[i][0], strlen(vectors[i][0]), out, sizeof(out)),
                          strlen(vectors[i][1]));
                CHECK_STREQ(out, vectors[i][1]);
        }
        /* Strictness: length, alphabet, padding position, non-zero pad bits, space. */
        CHECK_INT(dec("Zm9", out, sizeof(out)), -EINVAL);
        CHECK_INT(dec("Zm9v!A==", out, sizeof(out)), -EINVAL);
        CHECK_INT(dec("Zg==Zg==", out, sizeof(out)), -EINVAL);
        CHECK_INT(dec("Z===", out, sizeof(out)), -EINVAL);
        CHECK_INT(dec("Zm=v", out, sizeof(out)), -EINVAL);
        CHECK_INT(dec("Zh==", out, sizeof(out)), -EINVAL);  /* "f" with pad bits set */
        CHECK_INT(dec("Zm9=", out, sizeof(out)), -EINVAL);  /* "fo" with pad bits set */
        CHECK_INT(dec("Zm9v Yg==", out, sizeof(out)), -EINVAL);
        CHECK_INT(dec("Zm9vYmFy", out, 6), -ENOBUFS);       /* no room for the NUL */
        CHECK_INT(auth_base64_encode("foobar", 6, out, 8), -ENOBUFS);

        /* The AUTH argument. */
        CHECK_INT(auth_parse_command("PLAIN", 5, &m, &ir, &ir_len), 0);
        CHECK(m == AUTH_MECH_PLAIN && ir == NULL);
        CHECK_INT(auth_parse_command("login dXNlcg==", 14, &m, &ir, &ir_len), 0);
        CHECK(m == AUTH_MECH_LOGIN && ir_len == 8 && memcmp(ir, "dXNlcg==", 8) == 0);
        CHECK_INT(auth_parse_command("CRAM-MD5", 8, &m, &ir, &ir_len), -EOPNOTSUPP);
        CHECK_INT(auth_parse_command("PLAIN  x", 8, &m, &ir, &ir_len), -EINVAL);
        CHECK_INT(auth_parse_command("PLAIN ", 6, &m, &ir, &ir_len), -EINVAL);
        CHECK_INT(auth_parse_command("PL@IN", 5, &m, &ir, &ir_len), -EINVAL);
        CHECK_INT(auth_parse_command("", 0, &m, &ir, &ir_len), -EINVAL);
        CHECK_STREQ(auth_mechanism_to_string(AUTH_MECH_LOGIN), "LOGIN");

        /* PLAIN: [authzid] NUL authcid NUL passwd. */
        CHECK_INT(auth_plain_parse("\0alice\0secret", 13, user, pass), 0);
        CHECK_STREQ(user, "alice");
        CHECK_STREQ(pass, "secret");
        CHECK_INT(auth_plain_parse("alice\0alice\0pw", 14, user, pass), 0);
        CHECK_INT(auth_plain_parse("bob\0alice\0pw", 12, user, pass), -EINVAL); /* proxy auth */
        CHECK_INT(auth_plain_parse("\0\0pw", 4, user, pass), -EINVAL);
        CHECK_INT(auth_plain_parse("\0alice\0", 7, user, pass), -EINVAL);
        CHECK_INT(auth_plain_parse("\0alice\0p\0w", 10, user, pass), -EINVAL);
        CHECK_INT(auth_plain_parse("\0alice", 6, user, pass), -EINVAL);
        big[0] = 0;
        memset(big + 1, 'u', AUTH_USER_MAX);
        big[AUTH_USER_MAX + 1] = 0;
        big[AUTH_USER_MAX + 2] = 'p';
        CHECK_INT(auth_plain_parse(big, AUTH_USER_MAX + 3, user, pass), -E2BIG);

        return tap_finish("test-smtp-auth");
}
