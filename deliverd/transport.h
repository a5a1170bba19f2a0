/* The interface every delivery transport implements (local, smtp, lmtp).
 * A transport is called in a worker process for one job and fills one result
 * per recipient of the job; it never touches the spool. */
#pragma once

#include <openssl/ssl.h>

#include "config.h"
#include "spool.h"

struct Route;
struct Table;

typedef struct DeliveryJob {
        const Config *config;
        const SpoolEnvelope *env;       /* envelope read from the spool file */
        const uint8_t *body;            /* the whole message, mapped read-only */
        size_t body_len;
        const size_t *rcpt_index;       /* indexes into env->rcpts */
        size_t n_rcpts;
        /* Opened by the worker while it still has its privileges (NULL: none). */
        SSL_CTX *tls_ctx;               /* client TLS context (smtp, lmtp) */
        struct Table *tls_policy;       /* Config.smtp_tls_policy_table */
        struct Table *passwords;        /* Config.smtp_password_table */
        const struct Route *route;      /* smtp: next hop from the transport table (NULL: RelayHost
                                           or MX); lmtp: the server (required) */
} DeliveryJob;

typedef struct DeliveryResult {
        DeliveryStatus status;          /* DELIVERED, BOUNCED or DEFERRED */
        char dsn[16];                   /* "2.0.0", "4.4.1", "5.1.1" */
        char relay[256];                /* "local", "mx.example.org[192.0.2.1]:25" */
        char text[512];                 /* reply or reason, for logs and bounces */
        bool dsn_relayed;               /* delivered to a next hop that took the DSN duty over */
} DeliveryResult;

/* Each fills results[0..job->n_rcpts-1] (same order as job->rcpt_index).
 * Returns 0 when every result is filled (whatever the outcomes), -errno when
 * the transport failed as a whole (the caller then defers all recipients). */
int transport_local_deliver(const DeliveryJob *job, DeliveryResult *results);
int transport_smtp_deliver(const DeliveryJob *job, DeliveryResult *results);
int transport_lmtp_deliver(const DeliveryJob *job, DeliveryResult *results);

/* SMTP connection reuse (Config.smtp_connection_reuse_usec): after a clean
 * transaction the SMTP transport keeps the connection for the next message
 * to the same destination in this process. Whether one is kept; and QUIT
 * and close it. */
bool transport_smtp_has_cached(void);
void transport_smtp_close_cached(void);
