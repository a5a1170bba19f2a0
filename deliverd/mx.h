/* Where mail for a domain goes: MX lookup (RFC 5321 5.1) with libresolv,
 * preference order with a random choice among equal preferences, the
 * implicit MX (A/AAAA) when there is none, and null MX (RFC 7505). */
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include "util.h"

#define MX_HOSTS_MAX 16u    /* MX records kept, lowest preferences first */
#define MX_TARGETS_MAX 10u  /* addresses tried for one destination */
#define MX_NAME_MAX 256u

typedef struct MxHost {
        uint16_t preference;
        char name[MX_NAME_MAX];     /* "." for the root (null MX) */
} MxHost;

/* One address to try, in order. */
typedef struct MxTarget {
        char host[MX_NAME_MAX];     /* the MX host name (or the relay host) */
        struct sockaddr_storage addr; /* with the port set */
        socklen_t addr_len;
} MxTarget;

/* Parses a DNS answer to an MX query (pure: no I/O). Fills up to max hosts
 * with the MX records of the answer section, in answer order. Returns the
 * number of hosts (0: no MX record) or -EBADMSG. */
int mx_parse_answer(const uint8_t *msg, size_t len, MxHost *hosts, size_t max);

/* True for the null MX of RFC 7505: one MX record, preference 0, host ".". */
bool mx_is_null(const MxHost *hosts, size_t n);

/* Sorts hosts by preference, shuffling hosts of equal preference with
 * random_fn (RFC 5321 5.1); random_fn NULL uses getrandom(). */
void mx_sort(MxHost *hosts, size_t n, uint32_t (*random_fn)(void *userdata), void *userdata);

/* Resolves a destination to the addresses to try, in order: the MX hosts of
 * name when use_mx (falling back to name's own A/AAAA when it has no MX), or
 * name's addresses (a host name or an IP address) otherwise, asking the DNS
 * server resolver ("a.b.c.d[:port]"; NULL or "": resolv.conf); a name the DNS
 * does not know is still looked up with getaddrinfo (hosts file). Returns the
 * number of targets (> 0) and a new array in *ret (free()), or -ENXIO (the
 * domain or host does not exist or has no address: permanent), -EAGAIN (DNS
 * temporarily failed, or no MX host has an address), -EPERM (null MX: the
 * domain accepts no mail, RFC 7505), -EINVAL, -ENOMEM. */
int mx_resolve(const char *name, bool use_mx, uint16_t port, const char *resolver, MxTarget **ret);

/* Parses the DNSResolver setting, "a.b.c.d" or "a.b.c.d:port" (IPv4).
 * 0 or -EINVAL. */
int mx_parse_resolver(const char *s, struct sockaddr_in *ret);
