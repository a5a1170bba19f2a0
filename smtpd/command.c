/* The SMTP command tokenizer (RFC 5321 4.1.1 and 4.1.2). It never looks at
 * session state: whether a command is allowed now is session.c's business. */
#include <strings.h>

#include "command.h"

static const char *const verb_names[_SMTP_VERB_MAX] = {
        [SMTP_VERB_HELO] = "HELO", [SMTP_VERB_EHLO] = "EHLO", [SMTP_VERB_MAIL] = "MAIL",
        [SMTP_VERB_RCPT] = "RCPT", [SMTP_VERB_DATA] = "DATA", [SMTP_VERB_RSET] = "RSET",
        [SMTP_VERB_NOOP] = "NOOP", [SMTP_VERB_QUIT] = "QUIT", [SMTP_VERB_VRFY] = "VRFY",
        [SMTP_VERB_HELP] = "HELP",
};

const char *command_verb_to_string(SmtpVerb v) {
        if (v < 0 || v >= _SMTP_VERB_MAX)
                return NULL;
        return verb_names[v];
}

bool command_param_is(const CommandParam *p, const char *key) {
        size_t l = strlen(key);

        return p->key_len == l && strncasecmp(p->key, key, l) == 0;
}

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
 * esmtp-value   = 1*(%d33-60 / %d62-126)          (RFC 5321 4.1.2) */
static CommandError parse_params(const char *p, size_t n, Command *c) {
        size_t i = 0;

        while (i < n) {
                CommandParam *cp;
                size_t start;

                /* RFC 5321 separates parameters by one SP; several spaces are
                 * tolerated as Postfix does, since they cannot change meaning. */
                if (p[i] == ' ') {
                        i++;
                        continue;
                }
                if (c->n_params >= COMMAND_PARAMS_MAX)
                        return COMMAND_TOO_MANY_PARAMS;
                cp = &c->params[c->n_params];
                start = i;
                if (!is_alnum(p[i]))
                        return COMMAND_BAD_PARAM;
                while (i < n && (is_alnum(p[i]) || p[i] == '-'))
                        i++;
                cp->key = p + start;
                cp->key_len = i - start;
                cp->value = NULL;
                cp->value_len = 0;
                if (i < n && p[i] == '=') {
                        i++;
                        start = i;
                        while (i < n && p[i] >= 33 && p[i] <= 126 && p[i] != '=')
                                i++;
                        if (i == start)
                                return COMMAND_BAD_PARAM;
                        cp->value = p + start;
                        cp->value_len = i - start;
                }
                if (i < n && p[i] != ' ')
                        return COMMAND_BAD_PARAM;
                c->n_params++;
        }
        return COMMAND_OK;
}

/* "FROM:<path> params" / "TO:<path> params". */
static CommandError parse_path_command(const char *p, size_t n, const char *prefix,
                                       unsigned flags, Command *c) {
        size_t l = strlen(prefix), i;
        int r;

        if (n < l || strncasecmp(p, prefix, l) != 0)
                return COMMAND_SYNTAX;
        i = l;
        /* RFC 5321 4.1.2 has no space after the colon, but many clients send
         * one ("MAIL FROM: <a@b>"); Postfix accepts it too. Tolerated. */
        while (i < n && p[i] == ' ')
                i++;
        if (i >= n || p[i] != '<')
                return COMMAND_SYNTAX;
        r = address_parse_path(p + i, n - i, flags, &c->path);
        if (r == -ENAMETOOLONG)
                return COMMAND_PATH_TOO_LONG;
        if (r < 0)
                return COMMAND_BAD_PATH;
        i += (size_t) r;
        if (i < n && p[i] != ' ')
                return COMMAND_BAD_PATH;
        return parse_params(p + i, n - i, c);
}

CommandError command_parse(const char *line, size_t n, Command *ret) {
        size_t vl = 0, i;

        memset(ret, 0, sizeof(*ret));
        ret->verb = _SMTP_VERB_INVALID;
        ret->arg = "";

        while (vl < n && vl < 5 && line[vl] != ' ')
                vl++;
        if (vl != 4)
                return COMMAND_UNKNOWN;
        for (SmtpVerb v = 0; v < _SMTP_VERB_MAX; v++)
                if (strncasecmp(line, verb_names[v], 4) == 0) {
                        ret->verb = v;
                        break;
                }
        if (ret->verb < 0)
                return COMMAND_UNKNOWN;
        if (vl < n && line[vl] != ' ')
                return COMMAND_UNKNOWN;

        /* The argument is everything after the single SP (RFC 5321 4.1.1);
         * control characters (including NUL, CR and LF) have no place in any
         * argument we accept and would end up in logs and headers. */
        i = vl < n ? vl + 1 : vl;
        for (size_t k = i; k < n; k++)
                if ((unsigned char) line[k] < 32 || line[k] == 127)
                        return COMMAND_SYNTAX;
        ret->arg = line + i;
        ret->arg_len = n - i;

        switch (ret->verb) {
        case SMTP_VERB_MAIL:
                return parse_path_command(ret->arg, ret->arg_len, "FROM:", ADDRESS_ALLOW_NULL, ret);
        case SMTP_VERB_RCPT:
                /* RFC 5321 4.1.1.3: "<Postmaster>" without a domain must be accepted. */
                return parse_path_command(ret->arg, ret->arg_len, "TO:", ADDRESS_ALLOW_NO_DOMAIN, ret);
        case SMTP_VERB_HELO:
        case SMTP_VERB_EHLO:
                /* One domain or address literal, no spaces inside. */
                if (ret->arg_len == 0 || memchr(ret->arg, ' ', ret->arg_len))
                        return COMMAND_SYNTAX;
                return COMMAND_OK;
        case SMTP_VERB_DATA:
        case SMTP_VERB_RSET:
        case SMTP_VERB_QUIT:
                return ret->arg_len == 0 && vl == n ? COMMAND_OK : COMMAND_SYNTAX;
        case SMTP_VERB_VRFY:
                return ret->arg_len == 0 ? COMMAND_SYNTAX : COMMAND_OK;
        case SMTP_VERB_NOOP:
        case SMTP_VERB_HELP:
                return COMMAND_OK;
        default:
                return COMMAND_UNKNOWN;
        }
}
