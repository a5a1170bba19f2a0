/* The SMTP client transport (transport_smtp_deliver, declared in
 * transport.h): relay host or MX delivery, one transaction per destination
 * domain, no TLS yet. Helpers below are exposed for tests. */
#pragma once

#include "transport.h"

#define SMTP_PORT_DEFAULT 25u

/* Parses a relay_host value: "[host]:port" or "[host]" (no MX lookup; an IPv6
 * literal only in brackets), "host:port" or "host" (MX lookup of host).
 * Writes the host (without brackets or an "IPv6:" prefix) into host, the port
 * (default 25) and whether to look up MX records. Returns 0 or -EINVAL. */
int smtp_parse_relay(const char *s, char *host, size_t size, uint16_t *ret_port, bool *ret_use_mx);
