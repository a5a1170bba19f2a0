/* smtpd's TLS server side (OpenSSL): the certificate and key read before the
 * sandbox (which forbids open), the context made from them when first needed,
 * and the non-blocking handshake, read and write that io.c runs over the
 * connection once STARTTLS (RFC 3207) or implicit TLS (RFC 8314) begins. */
#pragma once

#include <openssl/types.h>
#include "util.h"

#define TLS_PEM_MAX (1024u * 1024u)

/* The certificate chain and key as read from their files before the sandbox;
 * the context is made from them later, when a session first needs TLS. */
typedef struct TlsFiles {
        char *cert_file, *key_file;
        char *cert_pem, *key_pem;
        size_t cert_len, key_len;
} TlsFiles;

/* Initialises OpenSSL (it reads its configuration file) and reads both PEM
 * files into memory. Returns 0 or -errno with *ret_error saying why. */
int tls_files_read(const char *cert_file, const char *key_file, TlsFiles **ret, char *ret_error,
                   size_t error_size);
/* Frees f, wiping the key. */
TlsFiles *tls_files_free(TlsFiles *f);
DEFINE_POINTER_CLEANUP(TlsFiles, tls_files_free);

/* Makes the server context from f (no file access: works in the sandbox):
 * TLS 1.2 and 1.3 only, the chain and the key, which must match. Returns 0 or
 * -errno (-EINVAL: no usable certificate and key; *ret_error then says why in
 * words an administrator can act on). */
int tls_context_new(const TlsFiles *f, SSL_CTX **ret, char *ret_error, size_t error_size);
SSL_CTX *tls_context_free(SSL_CTX *ctx);
DEFINE_POINTER_CLEANUP(SSL_CTX, tls_context_free);

/* A server connection over in_fd (reads) and out_fd (writes). Returns 0 or -ENOMEM. */
int tls_connection_new(SSL_CTX *ctx, int in_fd, int out_fd, SSL **ret);
SSL *tls_connection_free(SSL *ssl);

/* Each returns what it did (bytes, or 0 for a finished handshake) or:
 *   -EAGAIN      wait for *ret_events (POLLIN or POLLOUT) and call again with
 *                the same arguments;
 *   -ECONNRESET  the client closed (tls_read: a clean close_notify as well);
 *   -EPROTO      a TLS protocol error (a bad handshake, a wrong version). */
int tls_accept(SSL *ssl, short *ret_events);
ssize_t tls_read(SSL *ssl, void *buf, size_t n, short *ret_events);
ssize_t tls_write(SSL *ssl, const void *buf, size_t n, short *ret_events);

/* Sends close_notify without waiting for the answer (RFC 8446 6.1). */
void tls_shutdown(SSL *ssl);

/* The reason of the last failure in this thread, for a log line ("" if none). */
const char *tls_last_error(char *buf, size_t size);

/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)", as Postfix logs it. */
void tls_describe(SSL *ssl, char *buf, size_t size);
