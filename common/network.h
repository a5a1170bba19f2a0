/* IPv4/IPv6 networks in CIDR notation (trusted networks) and matching of
 * client addresses against them. Pure functions, no I/O. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include "util.h"

typedef struct NetMask {
        int family;             /* AF_INET or AF_INET6 */
        uint8_t addr[16];       /* network order, masked */
        unsigned prefixlen;
} NetMask;

typedef struct NetList {
        NetMask *items;
        size_t n;
} NetList;

/* Parses "127.0.0.0/8", "10.1.2.3", "[::1]/128", "::1/128", "[2001:db8::]/32".
 * Host bits beyond the prefix are cleared. Returns 0 or -EINVAL. */
int netmask_parse(const char *s, NetMask *ret);

/* Parses a whitespace- or comma-separated list; appends to list. On error returns
 * -EINVAL and sets *ret_bad to a pointer into s at the bad token (may be NULL). */
int netlist_parse(const char *s, NetList *list, const char **ret_bad);
void netlist_done(NetList *list);

/* Matches a socket address (AF_INET, AF_INET6 incl. v4-mapped ::ffff:a.b.c.d). */
bool netlist_match(const NetList *list, const struct sockaddr *sa, socklen_t len);

/* Formats the address of sa (no port) as text: "192.0.2.1", "2001:db8::1".
 * Returns 0 or -EAFNOSUPPORT. buf must hold INET6_ADDRSTRLEN. */
int sockaddr_to_string(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);
