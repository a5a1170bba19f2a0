/* DNS blocklist lookups of the client address (Postfix's reject_rbl_client)
 * from inside the sandbox: the UDP socket to the resolver is opened and
 * connected before the sandbox, queries and answers are built and parsed
 * here, and only send/recv/poll on that socket are needed afterwards. */
#pragma once

#include <sys/socket.h>

#include "config.h"
#include "util.h"

#define RBL_NAME_MAX 256u

/* "d.c.b.a" for IPv4 "a.b.c.d"; the 32 reversed nibbles for IPv6 (RFC
 * 5782 2.4). Returns the length, -EAFNOSUPPORT (not an IP address) or
 * -ENOBUFS. Pure. */
int rbl_reverse(const char *addr, char *buf, size_t size);

/* A DNS query for name (type 1 = A, 16 = TXT, class IN, recursion desired)
 * into buf. Returns its length or -EINVAL / -ENOBUFS. Pure. */
int rbl_build_query(uint16_t id, const char *name, uint16_t type, uint8_t *buf, size_t size);

typedef struct RblAnswer {
        uint16_t id;
        unsigned rcode;            /* 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, ... */
        bool have_a;
        uint8_t a[4];              /* the first A record of the answer section */
        char txt[256];             /* the first TXT string, printable ASCII only */
} RblAnswer;

/* Parses a DNS response (pure: no I/O, every offset checked). Returns 0 or
 * -EBADMSG. */
int rbl_parse_answer(const uint8_t *msg, size_t n, RblAnswer *ret);

/* "127.0.0.1:5353", "127.0.0.1", "::1", "[::1]:5353" -> a socket address.
 * Returns 0 or -EINVAL. Pure. */
int rbl_parse_resolver(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len);

typedef struct Rbl Rbl;

/* Connects a UDP socket to Config.dns_resolver (or resolv.conf's first
 * nameserver) for the client at client_addr. -EAFNOSUPPORT when the client
 * is not an IP address (a local client), or -errno. */
int rbl_new(const Config *c, const char *client_addr, Rbl **ret);
Rbl *rbl_free(Rbl *r);

/* Looks the client up in every zone of DNSBlocklists at once. Returns 1 when
 * it is listed (an A record 127.0.0.x) with the first such zone in zone and
 * its TXT record, if any, in txt; 0 when not listed, also when DNS failed
 * (logged, as Postfix treats it). */
int rbl_check(Rbl *r, char *zone, size_t zone_size, char *txt, size_t txt_size);
