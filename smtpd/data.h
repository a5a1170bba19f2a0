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

/* How bare CR and bare LF are treated (Config.bare_line_ending). */
typedef enum DataBareMode {
        DATA_BARE_REJECT,       /* flagged; the session refuses the message */
        DATA_BARE_NORMALIZE,    /* each becomes CR LF in the body; still flagged */
} DataBareMode;

/* At most this many body octets come out per input octet (a held-back CR,
 * normalised to CR LF, plus the octet itself); 2 when rejecting. */
#define DATA_OUT_PER_IN 3u

typedef struct DataParser {
        DataState state;
        DataBareMode bare_mode;
        bool bdat;             /* BDAT chunks: no dot-stuffing, no end-of-data line */
        size_t line_len;       /* octets of the current line so far, as sent */
        uint64_t body_size;    /* body octets produced so far */
        bool bare_lf;          /* an LF not preceded by CR was seen */
        bool bare_cr;          /* a CR not followed by LF was seen */
        bool line_too_long;    /* a line exceeded DATA_LINE_MAX */
} DataParser;

/* Starts right after "DATA" CRLF: the parser is at the start of a line, so an
 * immediate ".\r\n" is an empty message. Rejects bare CR/LF. */
void data_parser_init(DataParser *p);

/* The same with a bare line ending mode; bdat: the input is the content of
 * BDAT chunks (RFC 3030), fed one after the other: a leading dot is text and
 * nothing ends the data but data_parser_finish after the LAST chunk. */
void data_parser_init_mode(DataParser *p, DataBareMode mode, bool bdat);

/* Consumes input until the end of data or until out is full. out must have
 * room for at least DATA_OUT_PER_IN bytes; each input byte produces at most
 * DATA_OUT_PER_IN output bytes, and an input byte is consumed only while that
 * many still fit.
 * Returns the number of input bytes consumed and stores the number of body
 * bytes written in *ret_out_len. Body bytes have CRLF line ends as received
 * and no dot-stuffing; the final ".\r\n" is not part of the body. After the
 * end of data (p->state == DATA_STATE_DONE) nothing more is consumed: the rest
 * of the input is the next pipelined command. */
size_t data_parse(DataParser *p, const char *in, size_t n, char *out, size_t out_size,
                  size_t *ret_out_len);

/* After the LAST BDAT chunk: flushes a held-back CR (a bare CR at the end)
 * and ends the body with CR LF if it does not end with one (the spool holds
 * CRLF lines). Writes at most 2 bytes to out (size >= 2). Returns the number
 * written; the parser is then done. */
size_t data_parser_finish(DataParser *p, char *out, size_t out_size);

static inline bool data_parser_done(const DataParser *p) {
        return p->state == DATA_STATE_DONE;
}
