/* Fuzzes smtpd's DATA line machine: the input is fed in pieces whose sizes
 * come from the first byte, with a small output buffer, and must give exactly
 * the same body, end position and flags as one whole feed. The second byte
 * picks the mode: DATA or BDAT chunks, bare line ends rejected or normalised.
 * The body never holds more than 3 bytes per input byte (1 + one held CR when
 * rejecting); without bare CR/LF it is the input up to the end of data with
 * one leading dot per line removed (DATA) or the input itself (BDAT), and a
 * normalised body has no bare CR or LF at all. */
#include "data.h"
#include "fuzz.h"

static size_t run(const char *in, size_t n, size_t step, size_t out_size, unsigned mode, char *body,
                  size_t *ret_body_len, DataParser *p) {
        bool normalize = mode & 1, bdat = mode & 2;
        char out[64];
        size_t pos = 0, bl = 0;

        data_parser_init_mode(p, normalize ? DATA_BARE_NORMALIZE : DATA_BARE_REJECT, bdat);
        while (pos < n && !data_parser_done(p)) {
                size_t k = n - pos < step ? n - pos : step, ol = 0, used;

                used = data_parse(p, in + pos, k, out, out_size, &ol);
                if (used == 0 || used > k || ol > out_size || ol > (normalize ? 3 * used : used + 1))
                        abort();
                memcpy(body + bl, out, ol);
                bl += ol;
                pos += used;
        }
        if (bdat) {
                size_t ol = data_parser_finish(p, out, out_size);

                if (ol > 2 || !data_parser_done(p))
                        abort();
                memcpy(body + bl, out, ol);
                bl += ol;
        }
        *ret_body_len = bl;
        return pos;
}

static bool no_bare_line_ends(const char *b, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (b[i] == '\r' && (i + 1 >= n || b[i + 1] != '\n'))
                        return false;
                if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r'))
                        return false;
        }
        return true;
}

static bool restuffs(const char *body, size_t bl, const uint8_t *in, size_t n) {
        size_t o = 0;
        bool bol = true;

        for (size_t i = 0; i < bl; i++) {
                /* The one leading dot of each line is what the parser drops. */
                if (bol && o < n && in[o] == '.')
                        o++;
                if (o >= n || in[o++] != (uint8_t) body[i])
                        return false;
                bol = body[i] == '\n';
        }
        return n - o == 3 && memcmp(in + o, ".\r\n", 3) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        size_t step, out_size, n1, n2, bl1, bl2;
        unsigned mode;
        DataParser p1, p2;
        char *b1, *b2;

        if (size < 2 || size > 1u << 20)
                return 0;
        step = (size_t) (data[0] & 15) + 1;
        out_size = (size_t) (data[0] >> 4) + 3;
        mode = data[1] & 3;
        data += 2;
        size -= 2;
        b1 = malloc(3 * size + 2);
        b2 = malloc(3 * size + 2);
        if (!b1 || !b2)
                abort();
        n1 = run((const char *) data, size, size ? size : 1, 64, mode, b1, &bl1, &p1);
        n2 = run((const char *) data, size, step, out_size, mode, b2, &bl2, &p2);
        if (n1 != n2 || bl1 != bl2 || memcmp(b1, b2, bl1) != 0 || p1.state != p2.state ||
            p1.bare_lf != p2.bare_lf || p1.bare_cr != p2.bare_cr ||
            p1.line_too_long != p2.line_too_long || p1.body_size != bl1)
                abort();
        if (bl1 > ((mode & 1) ? 3 * n1 : n1 + 1) + ((mode & 2) ? 2 : 0))
                abort();
        if ((mode & 2) && n1 != size)
                abort();
        /* Without bare CR/LF, putting back one leading dot where the input had
         * one and adding ".\r\n" gives exactly the input up to the end of data;
         * BDAT gives the input itself (plus a final CRLF if it had none). */
        if (!(mode & 2) && data_parser_done(&p1) && !p1.bare_lf && !p1.bare_cr &&
            !restuffs(b1, bl1, data, n1))
                abort();
        if ((mode & 2) && !p1.bare_lf && !p1.bare_cr &&
            (bl1 < n1 || memcmp(b1, data, n1) != 0 || bl1 > n1 + 2))
                abort();
        if ((mode & 1) && !no_bare_line_ends(b1, bl1))
                abort();
        free(b1);
        free(b2);
        return 0;
}
