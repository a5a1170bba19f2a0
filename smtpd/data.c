/* The DATA line machine. The end of data is exactly CR LF "." CR LF, where the
 * first CR LF is a real line end: ".\n", "\n.\r\n" or "\r.\r\n" never end the
 * data. A receiver that accepts any of them while the sending relay does not
 * lets an attacker smuggle a second message inside the first one (SMTP
 * smuggling, CVE-2023-51764). The parser only reports bare CR and LF; the
 * session refuses such a message after the real end of data. */
#include "data.h"

void data_parser_init(DataParser *p) {
        *p = (DataParser) { .state = DATA_STATE_BOL };
}

static void count_line_byte(DataParser *p) {
        p->line_len++;
        if (p->line_len > DATA_LINE_MAX)
                p->line_too_long = true;
}

size_t data_parse(DataParser *p, const char *in, size_t n, char *out, size_t out_size,
                  size_t *ret_out_len) {
        size_t i = 0, o = 0;

        if (out_size < 2) {
                *ret_out_len = 0;
                return 0;
        }
        if (n > out_size - 1)
                n = out_size - 1;

        while (i < n && p->state != DATA_STATE_DONE) {
                char c = in[i++];

                count_line_byte(p);
                switch (p->state) {
                case DATA_STATE_BOL:
                        if (c == '.') {
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
                        p->bare_cr = true;
                        out[o++] = '\r';
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
                        p->bare_cr = true;
                        out[o++] = '\r';
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
