/* The LMTP client transport (transport_lmtp_deliver, declared in
 * transport.h): RFC 2033 over a UNIX or TCP socket to a mailbox server. */
#pragma once

#include "transport.h"
