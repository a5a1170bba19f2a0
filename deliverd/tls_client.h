/* TLS for the SMTP client (STARTTLS, RFC 3207): the security levels of
 * Postfix's smtp_tls_security_level, one context made before the worker
 * drops privileges, and a handshake with a deadline that checks the
 * certificate and host name when the level asks for it. */
#pragma once

#include <openssl/ssl.h>

#include "util.h"

struct SmtpConn;

typedef enum TlsLevel {
        TLS_NONE,       /* never STARTTLS */
        TLS_MAY,        /* STARTTLS when offered; plaintext when not, or when it fails */
        TLS_ENCRYPT,    /* TLS required, certificate not checked */
        TLS_VERIFY,     /* TLS required, certificate chain and host name checked */
        _TLS_LEVEL_MAX,
        _TLS_LEVEL_INVALID = -EINVAL,
} TlsLevel;

TlsLevel tls_level_from_string(const char *s);
const char *tls_level_to_string(TlsLevel l);

/* A client context trusting ca_file (PEM), or the system trust store when
 * ca_file is empty. Returns 0 and *ret, or -errno. */
int tls_client_context_new(const char *ca_file, SSL_CTX **ret);

/* Runs the handshake on c->fd within c's reply timeout; on success c->ssl is
 * set. With TLS_VERIFY the chain must verify and the certificate must hold
 * name (X509_VERIFY_PARAM_set1_host). Returns 0, -EPROTO (handshake failed,
 * reason in why), -EKEYREJECTED (verification failed, reason in why),
 * -ETIMEDOUT, -ENOMEM. */
int tls_client_start(struct SmtpConn *c, SSL_CTX *ctx, TlsLevel level, const char *name, char *why,
                     size_t why_size);

/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" for the log. */
void tls_client_describe(const struct SmtpConn *c, char *buf, size_t size);
