/* Mail loop detection at submission (Postfix's hopcount_limit): the
 * Received: fields of the header section are counted while the message
 * arrives; over HopCountLimit the message is accepted and every recipient
 * bounced with 5.4.6, so the sender learns of the loop (Postfix bounces too,
 * rather than refusing: a refusal would only send the loop round again). */
#pragma once

#include <stdint.h>

#include "queue.h"
#include "spool.h"

typedef struct LoopScan {
        uint64_t received;      /* Received: fields seen */
        size_t line_len;        /* bytes of the current line (CR not counted) */
        bool line_match;        /* the current line starts like "Received:" so far */
        bool in_body;           /* the empty line was seen: nothing more to count */
} LoopScan;

/* Feeds the next bytes of the message (pure; any chunking). */
void loop_scan_feed(LoopScan *s, const void *p, size_t n);

/* After the message env (already in the queue table) became durable: when it
 * has more Received: fields than HopCountLimit, records every recipient as
 * bounced with 5.4.6 "mail forwarding loop" and logs it; the bounce follows
 * at the end of the message's first round. Failures are logged. */
void loop_check_queued(Queue *q, const SpoolEnvelope *env, const LoopScan *s);
