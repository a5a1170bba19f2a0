/* The TLS server side of smtpd over OpenSSL. One connection per process, so
 * the context lives for the process; everything here is non-blocking and
 * leaves the waiting (with deadlines) to io.c. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/pem.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <unistd.h>

#include "tls.h"

static int tls_errorf(char *buf, size_t size, const char *what, const char *path) {
        char reason[256];

        (void) snprintf(buf, size, "%s \"%s\": %s", what, path, tls_last_error(reason, sizeof(reason)));
        return -EINVAL;
}

/* An encrypted key would make OpenSSL ask for its passphrase on /dev/tty,
 * i.e. hang a session or read from whatever terminal there is: refuse it. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata) {
        return 0;
}

/* Reads a whole PEM file (before the sandbox). */
static int read_pem(const char *path, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        buf = malloc(TLS_PEM_MAX);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf + len, TLS_PEM_MAX - len);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int r = negative_errno();

                        explicit_bzero(buf, len);
                        return r;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len == TLS_PEM_MAX) {
                        explicit_bzero(buf, len);
                        return -EFBIG;
                }
        }
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

TlsFiles *tls_files_free(TlsFiles *f) {
        if (!f)
                return NULL;
        if (f->key_pem)
                explicit_bzero(f->key_pem, f->key_len);
        free(f->key_pem);
        free(f->cert_pem);
        free(f->cert_file);
        free(f->key_file);
        free(f);
        return NULL;
}

int tls_files_read(const char *cert_file, const char *key_file, TlsFiles **ret, char *ret_error,
                   size_t error_size) {
        _cleanup_(tls_files_freep) TlsFiles *f = NULL;
        int r;

        /* OpenSSL reads its configuration file (system-wide policy) here, while
         * files may still be opened. */
        if (OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL) != 1)
                return -ENOMEM;
        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->cert_file = strdup(cert_file);
        f->key_file = strdup(key_file);
        if (!f->cert_file || !f->key_file)
                return -ENOMEM;
        r = read_pem(cert_file, &f->cert_pem, &f->cert_len);
        if (r < 0) {
                (void) snprintf(ret_error, error_size, "Cannot read the certificate chain \"%s\": %s",
                                cert_file, strerror(-r));
                return r;
        }
        r = read_pem(key_file, &f->key_pem, &f->key_len);
        if (r < 0) {
                (void) snprintf(ret_error, error_size, "Cannot read the private key \"%s\": %s",
                                key_file, strerror(-r));
                return r;
        }
        *ret = TAKE_PTR(f);
        return 0;
}

/* The leaf certificate and its chain from memory, as
 * SSL_CTX_use_certificate_chain_file() does from a file. */
static int use_chain(SSL_CTX *ctx, const TlsFiles *f) {
        BIO *b = BIO_new_mem_buf(f->cert_pem, (int) f->cert_len);
        X509 *x;
        unsigned long e;
        int r = -EINVAL;

        if (!b)
                return -ENOMEM;
        x = PEM_read_bio_X509_AUX(b, NULL, no_passphrase, NULL);
        if (!x || SSL_CTX_use_certificate(ctx, x) != 1)
                goto out;
        X509_free(x);
        (void) SSL_CTX_clear_chain_certs(ctx);
        while ((x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL)))
                if (SSL_CTX_add0_chain_cert(ctx, x) != 1)
                        goto out;
        x = NULL;
        /* The end of the file shows as "no start line"; anything else is real. */
        e = ERR_peek_last_error();
        if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
                ERR_clear_error();
                r = 0;
        }
out:
        X509_free(x);
        BIO_free(b);
        return r;
}

static int use_key(SSL_CTX *ctx, const TlsFiles *f) {
        BIO *b = BIO_new_mem_buf(f->key_pem, (int) f->key_len);
        EVP_PKEY *k;
        int r;

        if (!b)
                return -ENOMEM;
        k = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
        r = k && SSL_CTX_use_PrivateKey(ctx, k) == 1 ? 0 : -EINVAL;
        EVP_PKEY_free(k);
        BIO_free(b);
        return r;
}

int tls_context_new(const TlsFiles *f, SSL_CTX **ret, char *ret_error, size_t error_size) {
        _cleanup_(tls_context_freep) SSL_CTX *ctx = NULL;

        ERR_clear_error();
        ctx = SSL_CTX_new(TLS_server_method());
        if (!ctx)
                return -ENOMEM;
        /* RFC 8996 deprecates TLS 1.0 and 1.1; RFC 8314 4.1 asks for 1.2 or later. */
        if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
            SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
                return -EINVAL;
        /* No renegotiation (a client-driven CPU sink, and a plaintext-injection
         * vector before RFC 5746); no compression (CRIME); the server's cipher
         * order; no session tickets: one process per connection cannot share a
         * ticket key, so tickets would only cost a key per handshake. */
        SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                         SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        /* Forward secrecy and AEAD only for TLS 1.2 (Mozilla "intermediate"). */
        if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20") != 1)
                return -EINVAL;
        /* io.c retries a write after WANT_WRITE from the same buffer, but it
         * may have moved (memmove in io.c is for input only; be safe anyway). */
        SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);

        if (use_chain(ctx, f) < 0)
                return tls_errorf(ret_error, error_size, "Cannot load the certificate chain", f->cert_file);
        if (use_key(ctx, f) < 0)
                return tls_errorf(ret_error, error_size, "Cannot load the private key", f->key_file);
        if (SSL_CTX_check_private_key(ctx) != 1)
                return tls_errorf(ret_error, error_size, "The private key does not match the certificate",
                                  f->key_file);
        *ret = TAKE_PTR(ctx);
        return 0;
}

SSL_CTX *tls_context_free(SSL_CTX *ctx) {
        SSL_CTX_free(ctx);
        return NULL;
}

int tls_connection_new(SSL_CTX *ctx, int in_fd, int out_fd, SSL **ret) {
        SSL *ssl = SSL_new(ctx);

        if (!ssl)
                return -ENOMEM;
        if (SSL_set_rfd(ssl, in_fd) != 1 || SSL_set_wfd(ssl, out_fd) != 1) {
                SSL_free(ssl);
                return -ENOMEM;
        }
        *ret = ssl;
        return 0;
}

SSL *tls_connection_free(SSL *ssl) {
        SSL_free(ssl);
        return NULL;
}

/* Maps the outcome r of an SSL_* I/O call to our convention. */
static int tls_result(SSL *ssl, int r, short *ret_events) {
        int e = SSL_get_error(ssl, r);

        switch (e) {
        case SSL_ERROR_WANT_READ:
                *ret_events = POLLIN;
                return -EAGAIN;
        case SSL_ERROR_WANT_WRITE:
                *ret_events = POLLOUT;
                return -EAGAIN;
        case SSL_ERROR_ZERO_RETURN:
                return -ECONNRESET;
        case SSL_ERROR_SYSCALL:
                /* EOF without close_notify, or a socket error. */
                return -ECONNRESET;
        default:
                return -EPROTO;
        }
}

int tls_accept(SSL *ssl, short *ret_events) {
        int r;

        ERR_clear_error();
        r = SSL_accept(ssl);
        if (r == 1)
                return 0;
        return tls_result(ssl, r, ret_events);
}

ssize_t tls_read(SSL *ssl, void *buf, size_t n, short *ret_events) {
        size_t done = 0;
        int r;

        ERR_clear_error();
        r = SSL_read_ex(ssl, buf, n, &done);
        if (r == 1)
                return (ssize_t) done;
        return tls_result(ssl, r, ret_events);
}

ssize_t tls_write(SSL *ssl, const void *buf, size_t n, short *ret_events) {
        size_t done = 0;
        int r;

        ERR_clear_error();
        r = SSL_write_ex(ssl, buf, n, &done);
        if (r == 1)
                return (ssize_t) done;
        return tls_result(ssl, r, ret_events);
}

void tls_shutdown(SSL *ssl) {
        ERR_clear_error();
        (void) SSL_shutdown(ssl);
}

const char *tls_last_error(char *buf, size_t size) {
        unsigned long e = ERR_peek_last_error();

        if (size == 0)
                return "";
        buf[0] = 0;
        if (e != 0)
                ERR_error_string_n(e, buf, size);
        return buf;
}

void tls_describe(SSL *ssl, char *buf, size_t size) {
        const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
        int alg = 0, bits = c ? SSL_CIPHER_get_bits(c, &alg) : 0;

        (void) snprintf(buf, size, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
                        c ? SSL_CIPHER_get_name(c) : "none", bits, alg);
}
