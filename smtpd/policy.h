/* smtpd's access policy: the four access tables (client address or network,
 * HELO name, sender, recipient; Postfix's check_*_access) and the DNS
 * blocklists (rbl.c), all decided at RCPT time as Postfix does with
 * smtpd_delay_reject = yes, so that every refusal is logged with its
 * recipient. The tables and the resolver's socket are opened before the
 * sandbox. */
#pragma once

#include "config.h"
#include "util.h"

#define POLICY_TEXT_MAX 400u

typedef enum PolicyAction {
        POLICY_DUNNO,     /* no entry, or DUNNO: no decision */
        POLICY_OK,        /* OK: accept as far as this table goes */
        POLICY_REFUSE,    /* REJECT, DEFER or "NNN [X.Y.Z] text": code, dsn, text */
        POLICY_ERROR,     /* a table that cannot be read or a bad value: 451 4.3.5 */
        _POLICY_ACTION_MAX,
        _POLICY_ACTION_INVALID = -EINVAL,
} PolicyAction;

/* The decision on one access-table value, or on the whole RCPT. */
typedef struct PolicyVerdict {
        PolicyAction action;
        unsigned code;             /* POLICY_REFUSE, POLICY_ERROR: 4xx or 5xx */
        char dsn[16];              /* "5.7.1" */
        char text[POLICY_TEXT_MAX];/* the reply text after the enhanced code */
} PolicyVerdict;

/* What an access-table value says. "OK", "DUNNO", "REJECT [text]",
 * "DEFER [text]", "4NN [4.X.Y] text", "5NN [5.X.Y] text" (case-insensitive
 * keywords). The refusal text is "<subject>: What rejected: text", with
 * "Access denied" when the value gives none. Returns 0, or -EINVAL for a
 * value we do not understand (the caller answers 451 4.3.5 and logs). Pure. */
int policy_parse_action(const char *value, const char *subject, const char *what,
                        PolicyVerdict *ret);

/* The client lookup keys in Postfix's order: the address, then its network
 * prefixes ("192.0.2.1", "192.0.2", "192.0", "192"; for IPv6 the address
 * then each shorter run of ':'-separated fields). Writes up to max keys of
 * at most 64 bytes each; returns the count. Pure. */
size_t policy_client_keys(const char *addr, char keys[][64], size_t max);

typedef struct Policy Policy;

/* Opens the configured tables and, when DNSBlocklists is set and client_addr
 * is an IP address, the resolver's socket. Never fails for a missing table:
 * that is logged now and answered with 451 4.3.5 at RCPT, so a typo in
 * tern.conf defers mail instead of losing it. Returns 0 or -ENOMEM. */
int policy_new(const Config *c, const char *client_addr, Policy **ret);
Policy *policy_free(Policy *p);
DEFINE_POINTER_CLEANUP(Policy, policy_free);

typedef struct PolicyRequest {
        const char *client_addr;   /* "192.0.2.1", or "local" */
        const char *client;        /* "name[addr]" for the reply text */
        const char *helo;
        const char *sender;        /* canonical, "" for the null sender */
        const char *rcpt;          /* canonical */
        bool trusted;              /* TrustedNetworks: no DNS blocklist lookups */
} PolicyRequest;

/* Client, HELO and sender access (before the relay decision, as Postfix's
 * client/helo/sender restrictions run before its relay restrictions).
 * Fills *ret: POLICY_REFUSE or POLICY_ERROR to refuse, else go on. */
void policy_check_client(Policy *p, const PolicyRequest *req, PolicyVerdict *ret);

/* Recipient access, then the DNS blocklists (unless the client is trusted
 * or the client table said OK). Fills *ret likewise. */
void policy_check_recipient(Policy *p, const PolicyRequest *req, PolicyVerdict *ret);
