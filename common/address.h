/* RFC 5321 paths and mailboxes: parsing, validation and canonical form.
 * Pure functions: pointer + length in, filled struct out, no I/O. */
#pragma once

#include "util.h"

#define ADDRESS_LOCAL_MAX 64u    /* RFC 5321 4.5.3.1.1 */
#define ADDRESS_DOMAIN_MAX 255u  /* RFC 5321 4.5.3.1.2 */
#define ADDRESS_PATH_MAX 256u    /* RFC 5321 4.5.3.1.3, including < > */

typedef enum AddressFlags {
        ADDRESS_ALLOW_NULL = 1 << 0,     /* "<>" accepted (MAIL FROM) */
        ADDRESS_ALLOW_UTF8 = 1 << 1,     /* SMTPUTF8 (RFC 6531) */
        ADDRESS_ALLOW_NO_DOMAIN = 1 << 2,/* "<postmaster>" and local submission "user" */
        ADDRESS_NO_BRACKETS = 1 << 3,    /* bare "user@domain" (sendmail argv, headers) */
} AddressFlags;

typedef struct Address {
        bool null;                       /* "<>" */
        bool quoted;                     /* local part was a quoted string */
        char local[ADDRESS_LOCAL_MAX * 2 + 3]; /* as it must be written back (quoted if needed) */
        char domain[ADDRESS_DOMAIN_MAX + 1];   /* lowercased; "" if none; "[192.0.2.1]" for literals */
        bool domain_literal;
} Address;

/* Parses a path "<local@domain>" (with an optional source route "@a,@b:"
 * which is accepted and dropped, RFC 5321 4.1.1.3 / C). n bytes at p, no CRLF.
 * Returns the number of bytes consumed (the path ends at the closing '>', or
 * at a space / end with ADDRESS_NO_BRACKETS), or -EINVAL (syntax),
 * -ENAMETOOLONG (a length limit of RFC 5321 4.5.3.1). */
int address_parse_path(const char *p, size_t n, unsigned flags, Address *ret);

/* Writes the canonical form "local@domain" ("" for null, "local" with no domain)
 * into buf. Returns the length or -ENOBUFS. */
int address_format(const Address *a, char *buf, size_t size);

/* True if the local part contains routing characters that must never be relayed:
 * '%', '!', or '@' inside a quoted local part (DESIGN promise 4). */
bool address_has_routing_tricks(const Address *a);

/* Validates a domain name (letters, digits, hyphens, dots, each label 1..63,
 * total <= 255) or an address literal "[IPv4]" / "[IPv6:...]". 0 or -EINVAL. */
int address_check_domain(const char *d, size_t n, bool allow_utf8);
