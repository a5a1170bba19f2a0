/* The DATA line machine (RFC 5321 4.1.1.4, 4.5.2, 4.5.3.1.6): finds the end of
 * data, removes dot-stuffing, measures lines and detects bare CR and bare LF.
 * Pure: feed bytes, get body bytes and flags. No I/O, no allocation. */
#pragma once

#include "util.h"

/* RFC 5321 4.5.3.1.6: a text line is at most 1000 octets including CRLF. */
#define DATA_LINE_MAX 1000u

typedef enum DataState {
        DATA_STATE_BOL,     /* at the start of a line (after a real CRLF) */
        DATA_STATE_DOT,     /* a '.' at the start of a line */
        DATA_STATE_DOT_CR,  /* ".\r" at the start of a line */
        DATA_STATE_TEXT,    /* inside a line */
        DATA_STATE_CR,      /* a CR inside a line, LF not seen yet */
        DATA_STATE_DONE,    /* CR LF . CR LF seen */
} DataState;

typedef struct DataParser {
        DataState state;
        size_t line_len;       /* octets of the current line so far, as sent */
        uint64_t body_size;    /* body octets produced so far */
        bool bare_lf;          /* an LF not preceded by CR was seen */
        bool bare_cr;          /* a CR not followed by LF was seen */
        bool line_too_long;    /* a line exceeded DATA_LINE_MAX */
} DataParser;

/* Starts right after "DATA" CRLF: the parser is at the start of a line, so an
 * immediate ".\r\n" is an empty message. */
void data_parser_init(DataParser *p);

/* Consumes input until the end of data or until out is full. out must have
 * room for at least 2 bytes; each input byte produces at most two output bytes
 * (a held-back CR plus itself), so at most (out_size - 1) input bytes are read.
 * Returns the number of input bytes consumed and stores the number of body
 * bytes written in *ret_out_len. Body bytes have CRLF line ends as received
 * and no dot-stuffing; the final ".\r\n" is not part of the body. After the
 * end of data (p->state == DATA_STATE_DONE) nothing more is consumed: the rest
 * of the input is the next pipelined command. */
size_t data_parse(DataParser *p, const char *in, size_t n, char *out, size_t out_size,
                  size_t *ret_out_len);

static inline bool data_parser_done(const DataParser *p) {
        return p->state == DATA_STATE_DONE;
}
