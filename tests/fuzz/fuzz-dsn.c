/* Fuzzes the delivery status notification writer (queued/dsn.c): xtext
 * decoding of ENVID/ORCPT as a client sent them never yields a control
 * character or overruns, the header section's length stays within the body
 * and the bound and ends a line, and a report over any original message and
 * any recorded reason (sanitised as the state file sanitises it) is written
 * whole, ending with the closing boundary. */
#include <stdio.h>
#include <stdlib.h>

#include "dsn.h"
#include "fuzz.h"

/* The next NUL-separated piece of the input, as a C string (control
 * characters replaced, as spool_state_append_result does). */
static char *piece(const uint8_t **p, size_t *n, bool sanitise) {
        size_t k = 0;
        char *s;

        while (k < *n && (*p)[k])
                k++;
        s = malloc(k + 1);
        if (!s)
                abort();
        for (size_t i = 0; i < k; i++)
                s[i] = sanitise && ((*p)[i] < 32 || (*p)[i] == 127) ? '?' : (char) (*p)[i];
        s[k] = 0;
        *p += k < *n ? k + 1 : k;
        *n -= k < *n ? k + 1 : k;
        return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *p = data;
        size_t n = size, len, hl;
        char buf[64], *out = NULL;
        unsigned sel;
        FILE *f;

        if (size < 1)
                return 0;
        sel = data[0];
        p++;
        n--;
        char *envid = piece(&p, &n, false), *orcpt = piece(&p, &n, false);
        char *text = piece(&p, &n, true), *relay = piece(&p, &n, true);

        dsn_xtext_decode(envid, buf, sizeof(buf));
        if (strlen(buf) >= sizeof(buf))
                abort();
        for (const char *c = buf; *c; c++)
                if ((unsigned char) *c < 32 || *c == 127)
                        abort();
        (void) dsn_notify_parse(envid);

        hl = dsn_headers_len(p, n, 1 + sel * 8);
        if (hl > n || hl > 1u + sel * 8 || (hl > 0 && p[hl - 1] != '\n'))
                abort();

        DsnRcpt rcpt = {
                .addr = "rcpt@example.org",
                .orcpt = orcpt,
                .action = (DsnAction) (sel % _DSN_ACTION_MAX),
                .status = (sel & 0x10) ? "" : "5.1.1",
                .relay = relay,
                .text = text,
                .when_usec = sel,
        };
        DsnReport r = {
                .kind = (DsnKind) ((sel >> 2) % _DSN_KIND_MAX),
                .hostname = "mx.example.org",
                .queue_id = "0000000000001",
                .report_id = "0000000000002",
                .sender = "sender@example.org",
                .to = "sender@example.org",
                .envid = envid,
                .arrival_usec = 1,
                .now_usec = 7200000000u,
                .retry_until_usec = (sel & 0x20) ? 432000000000u : 0,
                .rcpts = &rcpt,
                .n_rcpts = 1,
                .body = (sel & 0x40) ? NULL : p,
                .body_len = (sel & 0x40) ? 0 : n,
                .full = sel & 0x80,
        };
        f = open_memstream(&out, &len);
        if (!f)
                abort();
        if (dsn_report_write(f, &r) < 0)
                abort();
        fclose(f);
        if (len < 4 || memcmp(out + len - 4, "--\r\n", 4) != 0)
                abort();
        free(out);
        free(envid);
        free(orcpt);
        free(text);
        free(relay);
        return 0;
}
