/* The DATA line machine. The end of data is exactly CR LF "." CR LF, where the
 * first CR LF is a real line end: ".\n", "\n.\r\n" or "\r.\r\n" never end the
 * data. A receiver that accepts any of them while the sending relay does not
 * lets an attacker smuggle a second message inside the first one (SMTP
 * smuggling, CVE-2023-51764). The parser only reports bare CR and LF; the
 * session refuses such a message after the real end of data. */
#include "data.h"

void data_parser_init_mode(DataParser *p, DataBareMode mode, bool bdat) {
        *p = (DataParser) { .state = DATA_STATE_BOL, .bare_mode = mode, .bdat = bdat };
}

void data_parser_init(DataParser *p) {
        data_parser_init_mode(p, DATA_BARE_REJECT, false);
}

/* A bare CR: as received, or as a line end when normalising. Either way it
 * leaves the parser inside a line, so what follows can never be taken for
 * the end of data. */
static size_t put_bare_cr(DataParser *p, char *out) {
        p->bare_cr = true;
        out[0] = '\r';
        if (p->bare_mode != DATA_BARE_NORMALIZE)
                return 1;
        out[1] = '\n';
        p->line_len = 0;
        return 2;
}

static void count_line_byte(DataParser *p) {
        p->line_len++;
        if (p->line_len > DATA_LINE_MAX)
                p->line_too_long = true;
}

size_t data_parse(DataParser *p, const char *in, size_t n, char *out, size_t out_size,
                  size_t *ret_out_len) {
        /* Rejecting: a held-back CR plus the octet; normalising: CR LF plus it. */
        size_t i = 0, o = 0, need = p->bare_mode == DATA_BARE_NORMALIZE ? 3 : 2;

        while (i < n && p->state != DATA_STATE_DONE && out_size >= o + need) {
                char c = in[i++];

                count_line_byte(p);
                switch (p->state) {
                case DATA_STATE_BOL:
                        if (c == '.' && !p->bdat) {
                                p->state = DATA_STATE_DOT;
                                break;
                        }
                        p->state = DATA_STATE_TEXT;
                        goto text;
                case DATA_STATE_DOT:
                        if (c == '\r') {
                                p->state = DATA_STATE_DOT_CR;
                                break;
                        }
                        /* Dot-stuffing (RFC 5321 4.5.2): the leading dot goes. */
                        p->state = DATA_STATE_TEXT;
                        goto text;
                case DATA_STATE_DOT_CR:
                        if (c == '\n') {
                                p->state = DATA_STATE_DONE;
                                break;
                        }
                        /* ".\r" then something else: a bare CR after the
                         * (removed) leading dot. */
                        o += put_bare_cr(p, out + o);
                        p->state = DATA_STATE_TEXT;
                        goto text;
                case DATA_STATE_CR:
                        if (c == '\n') {
                                out[o++] = '\r';
                                out[o++] = '\n';
                                p->line_len = 0;
                                p->state = DATA_STATE_BOL;
                                break;
                        }
                        o += put_bare_cr(p, out + o);
                        p->state = DATA_STATE_TEXT;
                        goto text;
                case DATA_STATE_TEXT:
                text:
                        if (c == '\r') {
                                p->state = DATA_STATE_CR;
                                break;
                        }
                        if (c == '\n') {
                                /* A bare LF is not a line end: the state stays
                                 * inside the line, so a following ".\r\n" is
                                 * text, not the end of data. */
                                p->bare_lf = true;
                                p->line_len = 0;
                                if (p->bare_mode == DATA_BARE_NORMALIZE)
                                        out[o++] = '\r';
                        }
                        out[o++] = c;
                        break;
                case DATA_STATE_DONE:
                        break;
                }
        }
        p->body_size += o;
        *ret_out_len = o;
        return i;
}

size_t data_parser_finish(DataParser *p, char *out, size_t out_size) {
        size_t o = 0;

        if (out_size < 2 || p->state == DATA_STATE_DONE)
                return 0;
        if (p->state == DATA_STATE_CR) {
                /* A CR as the last octet of the last chunk: bare. */
                p->bare_cr = true;
                out[o++] = '\r';
                out[o++] = '\n';
        } else if (p->state != DATA_STATE_BOL) {
                /* RFC 3030 does not require a final CR LF; the spool does. */
                out[o++] = '\r';
                out[o++] = '\n';
        }
        p->body_size += o;
        p->state = DATA_STATE_DONE;
        return o;
}
