/* STARTTLS for the SMTP client. The context is made once per worker, before
 * it gives up its privileges (the CA file may be readable only by root);
 * each handshake runs on the non-blocking socket under a deadline. */
#include <poll.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "smtp_conn.h"
#include "tls_client.h"

static const char *const tls_level_table[_TLS_LEVEL_MAX] = {
        [TLS_NONE] = "none",
        [TLS_MAY] = "may",
        [TLS_ENCRYPT] = "encrypt",
        [TLS_VERIFY] = "verify",
};

TlsLevel tls_level_from_string(const char *s) {
        if (!s)
                return _TLS_LEVEL_INVALID;
        for (int i = 0; i < _TLS_LEVEL_MAX; i++)
                if (strcasecmp(s, tls_level_table[i]) == 0)
                        return (TlsLevel) i;
        return _TLS_LEVEL_INVALID;
}

const char *tls_level_to_string(TlsLevel l) {
        return l >= 0 && l < _TLS_LEVEL_MAX ? tls_level_table[l] : NULL;
}

int tls_client_context_new(const char *ca_file, SSL_CTX **ret) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

        if (!ctx)
                return -ENOMEM;
        /* TLS 1.0 and 1.1 are gone from every maintained server (RFC 8996). */
        if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
                goto fail;
        if (!isempty(ca_file)) {
                if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)
                        goto fail;
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1)
                goto fail;
        /* Verification is checked after the handshake, by level: "encrypt"
         * must not fail on a self-signed certificate. */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        *ret = ctx;
        return 0;
fail:
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return -EINVAL;
}

static void tls_client_error(char *why, size_t size, const char *what) {
        unsigned long e = ERR_get_error();
        char buf[256] = "";

        if (e)
                ERR_error_string_n(e, buf, sizeof(buf));
        (void) snprintf(why, size, "%s%s%s", what, buf[0] ? ": " : "", buf);
        ERR_clear_error();
}

int tls_client_start(SmtpConn *c, SSL_CTX *ctx, TlsLevel level, const char *name, char *why, size_t why_size) {
        uint64_t deadline = smtp_now_usec() + c->reply_timeout_usec;
        SSL *ssl;

        ERR_clear_error();
        ssl = SSL_new(ctx);
        if (!ssl)
                return -ENOMEM;
        if (SSL_set_fd(ssl, c->fd) != 1) {
                SSL_free(ssl);
                return -ENOMEM;
        }
        if (!isempty(name)) {
                /* SNI, and the name the certificate must hold for "verify";
                 * partial wildcards ("mx*.example") are not accepted. */
                (void) SSL_set_tlsext_host_name(ssl, name);
                if (level == TLS_VERIFY) {
                        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
                        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                        if (X509_VERIFY_PARAM_set1_host(param, name, 0) != 1) {
                                SSL_free(ssl);
                                return -ENOMEM;
                        }
                }
        }
        for (;;) {
                struct pollfd p = { .fd = c->fd };
                uint64_t now;
                int r = SSL_connect(ssl), e;

                if (r == 1)
                        break;
                e = SSL_get_error(ssl, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                        tls_client_error(why, why_size, "TLS handshake failed");
                        SSL_free(ssl);
                        return -EPROTO;
                }
                p.events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
                now = smtp_now_usec();
                if (now >= deadline || poll(&p, 1, (int) ((deadline - now + 999) / 1000)) == 0) {
                        (void) snprintf(why, why_size, "TLS handshake timed out");
                        SSL_free(ssl);
                        return -ETIMEDOUT;
                }
        }
        if (level == TLS_VERIFY) {
                long v = SSL_get_verify_result(ssl);

                if (!SSL_get0_peer_certificate(ssl) || v != X509_V_OK) {
                        (void) snprintf(why, why_size, "Server certificate not verified: %s",
                                        SSL_get0_peer_certificate(ssl) ? X509_verify_cert_error_string(v)
                                                                       : "no certificate");
                        SSL_free(ssl);
                        return -EKEYREJECTED;
                }
        }
        c->ssl = ssl;
        return 0;
}

void tls_client_describe(const SmtpConn *c, char *buf, size_t size) {
        const SSL_CIPHER *cipher;
        int alg = 0, bits;

        if (!c->ssl) {
                (void) snprintf(buf, size, "no TLS");
                return;
        }
        cipher = SSL_get_current_cipher(c->ssl);
        bits = SSL_CIPHER_get_bits(cipher, &alg);
        (void) snprintf(buf, size, "%s with cipher %s (%d/%d bits)", SSL_get_version(c->ssl),
                        SSL_CIPHER_get_name(cipher), bits, alg);
}
