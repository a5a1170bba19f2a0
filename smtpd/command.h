/* The SMTP command tokenizer: one command line (without its CRLF) becomes a
 * verb, its argument and, for MAIL and RCPT, a parsed path and ESMTP
 * parameters. Pure: no I/O, no allocation, no global state. */
#pragma once

#include "address.h"
#include "util.h"

/* RFC 5321 4.5.3.1.4: 512 octets including CRLF. None of our extensions
 * (SIZE, BODY) asks for more (RFC 1869 4.1.2 would allow it per extension). */
#define COMMAND_LINE_MAX 512u
/* RFC 3461 4: DSN lengthens MAIL by 100 octets (ENVID, RET) and RCPT by 500
 * (ORCPT) plus NOTIFY's 28. Lines are read up to this; only MAIL, RCPT (and
 * AUTH, RFC 4954 4) may use more than COMMAND_LINE_MAX. */
#define COMMAND_LINE_DSN_MAX (COMMAND_LINE_MAX + 528u)
#define COMMAND_PARAMS_MAX 8u

typedef enum SmtpVerb {
        SMTP_VERB_HELO,
        SMTP_VERB_EHLO,
        SMTP_VERB_MAIL,
        SMTP_VERB_RCPT,
        SMTP_VERB_DATA,
        SMTP_VERB_RSET,
        SMTP_VERB_NOOP,
        SMTP_VERB_QUIT,
        SMTP_VERB_VRFY,
        SMTP_VERB_HELP,
        SMTP_VERB_STARTTLS,     /* RFC 3207 */
        SMTP_VERB_AUTH,         /* RFC 4954 */
        SMTP_VERB_BDAT,         /* RFC 3030 CHUNKING */
        _SMTP_VERB_MAX,
        _SMTP_VERB_INVALID = -EINVAL,
} SmtpVerb;

/* Why a line was refused; each maps to one reply in session.c. */
typedef enum CommandError {
        COMMAND_OK,
        COMMAND_UNKNOWN,        /* 500 5.5.2: not a verb we know */
        COMMAND_SYNTAX,         /* 501 5.5.4: the verb's argument grammar */
        COMMAND_BAD_PATH,       /* 501 5.1.7 / 5.1.3: the path does not parse */
        COMMAND_PATH_TOO_LONG,  /* 501 5.1.x: a limit of RFC 5321 4.5.3.1 */
        COMMAND_BAD_PARAM,      /* 501 5.5.4: malformed esmtp-param */
        COMMAND_TOO_MANY_PARAMS,/* 501 5.5.4 */
        _COMMAND_ERROR_MAX,
} CommandError;

/* An ESMTP parameter "KEY[=VALUE]"; pointers into the line, not terminated. */
typedef struct CommandParam {
        const char *key;
        size_t key_len;
        const char *value; /* NULL when there was no '=' */
        size_t value_len;
} CommandParam;

typedef struct Command {
        SmtpVerb verb;
        const char *arg;   /* text after "VERB " (HELO, EHLO, VRFY, HELP, NOOP); may be "" */
        size_t arg_len;
        Address path;      /* MAIL, RCPT */
        bool path_utf8;    /* the path has non-ASCII octets (valid UTF-8): needs SMTPUTF8 */
        CommandParam params[COMMAND_PARAMS_MAX];
        size_t n_params;
        uint64_t bdat_size;/* BDAT: chunk octets (parsed even when the verb is refused) */
        bool bdat_last;    /* BDAT ... LAST */
        bool bdat_sized;   /* bdat_size was read, even if the rest of the line is wrong */
} Command;

/* DSN (RFC 3461) NOTIFY keywords, as a bit mask. */
enum {
        COMMAND_NOTIFY_NEVER = 1 << 0,
        COMMAND_NOTIFY_SUCCESS = 1 << 1,
        COMMAND_NOTIFY_FAILURE = 1 << 2,
        COMMAND_NOTIFY_DELAY = 1 << 3,
};

/* RFC 3461 4.4 and 4.2: the longest ENVID and ORCPT values we accept. */
#define COMMAND_ENVID_MAX 100u
#define COMMAND_ORCPT_MAX 500u

/* Parses n bytes at line (no CR LF). Returns COMMAND_OK and fills *ret, or the
 * reason of the refusal (ret->verb is then set when the verb was known, else
 * _SMTP_VERB_INVALID). Pointers in *ret point into line. */
CommandError command_parse(const char *line, size_t n, Command *ret);

/* "HELO", "MAIL", ...; NULL for an invalid verb. */
const char *command_verb_to_string(SmtpVerb v);

/* Case-insensitive comparison of a parameter key with a C string. */
bool command_param_is(const CommandParam *p, const char *key);

/* True when n bytes at p are xtext (RFC 3461 4): 1*(%d33-42 / %d44-60 /
 * %d62-126 / "+" 2HEXCHAR), HEXCHAR upper case. */
bool command_xtext_valid(const char *p, size_t n);

/* NOTIFY=NEVER or a comma list of SUCCESS, FAILURE, DELAY (any case, each at
 * most once). Returns 0 and the mask, or -EINVAL. */
int command_parse_notify(const char *p, size_t n, unsigned *ret_mask);

/* Writes the canonical NOTIFY value of mask ("NEVER", "SUCCESS,FAILURE") into
 * buf (at least 24 bytes). */
void command_format_notify(unsigned mask, char *buf, size_t size);

/* ORCPT=addr-type ";" xtext (RFC 3461 4.2; "utf-8" type of RFC 6533 is
 * accepted with UTF-8 in the value only when utf8 is true). Returns 0 or
 * -EINVAL. */
int command_check_orcpt(const char *p, size_t n, bool utf8);
