/* The SMTP command tokenizer (RFC 5321 4.1.1 and 4.1.2). It never looks at
 * session state: whether a command is allowed now is session.c's business. */
#include <strings.h>

#include "command.h"

static const char *const verb_names[_SMTP_VERB_MAX] = {
        [SMTP_VERB_HELO] = "HELO", [SMTP_VERB_EHLO] = "EHLO", [SMTP_VERB_MAIL] = "MAIL",
        [SMTP_VERB_RCPT] = "RCPT", [SMTP_VERB_DATA] = "DATA", [SMTP_VERB_RSET] = "RSET",
        [SMTP_VERB_NOOP] = "NOOP", [SMTP_VERB_QUIT] = "QUIT", [SMTP_VERB_VRFY] = "VRFY",
        [SMTP_VERB_HELP] = "HELP", [SMTP_VERB_STARTTLS] = "STARTTLS", [SMTP_VERB_AUTH] = "AUTH",
        [SMTP_VERB_BDAT] = "BDAT",
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

bool command_xtext_valid(const char *p, size_t n) {
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) p[i];

                if (c == '+') {
                        for (size_t k = 1; k <= 2; k++)
                                if (i + k >= n || !((p[i + k] >= '0' && p[i + k] <= '9') ||
                                                    (p[i + k] >= 'A' && p[i + k] <= 'F')))
                                        return false;
                        i += 2;
                } else if (c < 33 || c > 126 || c == '=')
                        return false;
        }
        return true;
}

static const struct {
        const char *name;
        unsigned bit;
} notify_words[] = {
        { "NEVER", COMMAND_NOTIFY_NEVER },
        { "SUCCESS", COMMAND_NOTIFY_SUCCESS },
        { "FAILURE", COMMAND_NOTIFY_FAILURE },
        { "DELAY", COMMAND_NOTIFY_DELAY },
};

int command_parse_notify(const char *p, size_t n, unsigned *ret_mask) {
        unsigned mask = 0;
        size_t i = 0;

        if (!p || n == 0)
                return -EINVAL;
        while (i <= n) {
                size_t start = i, l;
                unsigned bit = 0;

                while (i < n && p[i] != ',')
                        i++;
                l = i - start;
                for (size_t k = 0; k < ELEMENTSOF(notify_words); k++)
                        if (strlen(notify_words[k].name) == l &&
                            strncasecmp(p + start, notify_words[k].name, l) == 0)
                                bit = notify_words[k].bit;
                if (bit == 0 || (mask & bit))
                        return -EINVAL;
                mask |= bit;
                i++; /* past the ',' (or past the end) */
        }
        /* RFC 3461 4.1: NEVER must appear alone. */
        if ((mask & COMMAND_NOTIFY_NEVER) && mask != COMMAND_NOTIFY_NEVER)
                return -EINVAL;
        *ret_mask = mask;
        return 0;
}

void command_format_notify(unsigned mask, char *buf, size_t size) {
        size_t l = 0;

        if (size == 0)
                return;
        buf[0] = 0;
        for (size_t k = 0; k < ELEMENTSOF(notify_words); k++) {
                int w;

                if (!(mask & notify_words[k].bit))
                        continue;
                w = snprintf(buf + l, size - l, "%s%s", l > 0 ? "," : "", notify_words[k].name);
                if (w < 0 || (size_t) w >= size - l)
                        return;
                l += (size_t) w;
        }
}

static bool is_atext(char c);

/* Well-formed UTF-8 (RFC 3629): no overlongs, no surrogates, at most U+10FFFF. */
static bool utf8_valid(const char *s, size_t n) {
        const unsigned char *u = (const unsigned char *) s;

        for (size_t i = 0; i < n;) {
                unsigned c = u[i], need, cp;

                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf)
                        need = 1, cp = c & 0x1f;
                else if (c >= 0xe0 && c <= 0xef)
                        need = 2, cp = c & 0x0f;
                else if (c >= 0xf0 && c <= 0xf4)
                        need = 3, cp = c & 0x07;
                else
                        return false;
                if (n - i <= need)
                        return false;
                for (unsigned k = 1; k <= need; k++) {
                        if ((u[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (u[i + k] & 0x3f);
                }
                if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += need + 1;
        }
        return true;
}

int command_check_orcpt(const char *p, size_t n, bool utf8) {
        const char *semi;
        size_t tl;

        if (!p || n == 0 || n > COMMAND_ORCPT_MAX)
                return -EINVAL;
        semi = memchr(p, ';', n);
        if (!semi)
                return -EINVAL;
        tl = (size_t) (semi - p);
        if (tl == 0)
                return -EINVAL;
        for (size_t i = 0; i < tl; i++)
                if (!is_atext(p[i]))
                        return -EINVAL;
        /* RFC 6533 3: "utf-8" addresses carry UTF-8 and \x{HEX} escapes; the
         * parameter grammar already excludes controls, space and '='. */
        if (tl == 5 && strncasecmp(p, "utf-8", 5) == 0) {
                if (!utf8)
                        return -EINVAL;
                return n - tl - 1 > 0 && utf8_valid(semi + 1, n - tl - 1) ? 0 : -EINVAL;
        }
        return command_xtext_valid(semi + 1, n - tl - 1) ? 0 : -EINVAL;
}

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 5322 atext, for ORCPT's addr-type (an atom). */
static bool is_atext(char c) {
        return is_alnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c));
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
                        /* RFC 6531 3.3 adds UTF-8 to esmtp-value; whether
                         * a value may hold it is the parameter's business. */
                        while (i < n && ((p[i] >= 33 && p[i] <= 126 && p[i] != '=') ||
                                         (unsigned char) p[i] >= 0x80))
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
        /* UTF-8 is parsed always; whether it is allowed (SMTPUTF8 given) is
         * the session's decision, with its own reply (RFC 6531 3.5). */
        r = address_parse_path(p + i, n - i, flags | ADDRESS_ALLOW_UTF8, &c->path);
        if (r == -ENAMETOOLONG)
                return COMMAND_PATH_TOO_LONG;
        if (r < 0)
                return COMMAND_BAD_PATH;
        for (size_t k = i; k < i + (size_t) r; k++)
                if ((unsigned char) p[k] >= 0x80)
                        c->path_utf8 = true;
        i += (size_t) r;
        if (i < n && p[i] != ' ')
                return COMMAND_BAD_PATH;
        return parse_params(p + i, n - i, c);
}

/* "BDAT" SP chunk-size [SP end-marker] (RFC 3030 2): chunk-size 1*DIGIT,
 * end-marker "LAST" (any case). */
static CommandError parse_bdat(const char *p, size_t n, Command *c) {
        uint64_t v = 0;
        size_t i = 0;

        while (i < n && p[i] >= '0' && p[i] <= '9') {
                unsigned d = (unsigned) (p[i] - '0');

                /* More than 2^64 octets cannot be skipped; no client means it. */
                if (v > (UINT64_MAX - d) / 10)
                        return COMMAND_SYNTAX;
                v = v * 10 + d;
                i++;
        }
        if (i == 0 || i > 20)
                return COMMAND_SYNTAX;
        c->bdat_size = v;
        c->bdat_sized = true;
        if (i == n)
                return COMMAND_OK;
        if (n - i == 5 && p[i] == ' ' && strncasecmp(p + i + 1, "LAST", 4) == 0) {
                c->bdat_last = true;
                return COMMAND_OK;
        }
        return COMMAND_SYNTAX;
}

CommandError command_parse(const char *line, size_t n, Command *ret) {
        size_t vl = 0, i;

        memset(ret, 0, sizeof(*ret));
        ret->verb = _SMTP_VERB_INVALID;
        ret->arg = "";

        /* Verbs are 4 letters, except STARTTLS (8). */
        while (vl < n && vl < 9 && line[vl] != ' ')
                vl++;
        for (SmtpVerb v = 0; v < _SMTP_VERB_MAX; v++)
                if (strlen(verb_names[v]) == vl && strncasecmp(line, verb_names[v], vl) == 0) {
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
        case SMTP_VERB_STARTTLS:
                return ret->arg_len == 0 && vl == n ? COMMAND_OK : COMMAND_SYNTAX;
        case SMTP_VERB_VRFY:
        case SMTP_VERB_AUTH:
                /* AUTH mechanism [initial-response]: parsed by auth.c. */
                return ret->arg_len == 0 ? COMMAND_SYNTAX : COMMAND_OK;
        case SMTP_VERB_BDAT:
                return parse_bdat(ret->arg, ret->arg_len, ret);
        case SMTP_VERB_NOOP:
        case SMTP_VERB_HELP:
                return COMMAND_OK;
        default:
                return COMMAND_UNKNOWN;
        }
}
