/* Header scanning for sendmail: finds the end of the header section, the
 * fields sendmail must add when missing, and the recipients of `-t`. The
 * message is whatever a local program wrote, so nothing here trusts it: every
 * index is checked against len and every copy against a fixed maximum. */

#include <strings.h>

#include "headers.h"

typedef struct AddressBuf {
        char s[HEADERS_ADDRESS_MAX + 1];
        size_t n;
        bool overflow;
} AddressBuf;

static void address_buf_put(AddressBuf *b, char c) {
        /* A NUL cannot be part of a C-string address; drop it rather than
         * cut the address there. */
        if (c == 0)
                return;
        if (b->n >= HEADERS_ADDRESS_MAX) {
                b->overflow = true;
                return;
        }
        b->s[b->n++] = c;
}

static int headers_list_append(char ***list, size_t *n, const char *s, size_t len) {
        if (*n >= HEADERS_RCPT_MAX)
                return -E2BIG;
        char **l = reallocarray_safe(*list, *n + 2, sizeof(char *));
        if (!l)
                return -ENOMEM;
        *list = l;
        l[*n] = memdup_str(s, len);
        if (!l[*n])
                return -ENOMEM;
        l[++*n] = NULL;
        return 0;
}

/* Ends one element of an address list: the angle-addr if there was one, else
 * the bare addr-spec. An empty element (",,", "<>", an empty group) adds nothing. */
static int headers_element_done(AddressBuf *bare, AddressBuf *angle, bool had_angle,
                                char ***list, size_t *n) {
        AddressBuf *b = had_angle ? angle : bare;
        int r = 0;

        if (b->overflow)
                r = -EINVAL;
        else if (b->n > 0)
                r = headers_list_append(list, n, b->s, b->n);
        bare->n = angle->n = 0;
        bare->overflow = angle->overflow = false;
        return r;
}

int headers_parse_address_list(const char *value, size_t len, char ***list, size_t *n) {
        AddressBuf bare = {}, angle = {};
        unsigned comment = 0;   /* nesting depth of ( ) comments, RFC 5322 3.2.2 */
        bool quoted = false, in_angle = false, had_angle = false;
        int r;

        for (size_t i = 0; i < len; i++) {
                char c = value[i];
                AddressBuf *b = in_angle ? &angle : &bare;

                if (quoted) {
                        address_buf_put(b, c);
                        if (c == '\\' && i + 1 < len)
                                address_buf_put(b, value[++i]);
                        else if (c == '"')
                                quoted = false;
                        continue;
                }
                if (comment > 0) {
                        if (c == '\\')
                                i++;
                        else if (c == '(')
                                comment++;
                        else if (c == ')')
                                comment--;
                        continue;
                }
                switch (c) {
                case '(':
                        comment = 1;
                        break;
                case '"':
                        quoted = true;
                        address_buf_put(b, c);
                        break;
                case '<':
                        /* A second '<' restarts the angle-addr: the last one wins. */
                        in_angle = true;
                        angle.n = 0;
                        angle.overflow = false;
                        break;
                case '>':
                        if (in_angle) {
                                in_angle = false;
                                had_angle = true;
                        }
                        break;
                case ':':
                        if (in_angle) {
                                /* Source route "<@a,@b:u@d>": keep it, the address parser decides. */
                                address_buf_put(b, c);
                                break;
                        }
                        /* "group-name:" — the name is a display name, not an address. */
                        bare.n = 0;
                        bare.overflow = false;
                        break;
                case ',':
                        if (in_angle) {
                                address_buf_put(b, c);
                                break;
                        }
                        __attribute__((fallthrough));
                case ';':
                        r = headers_element_done(&bare, &angle, had_angle, list, n);
                        if (r < 0)
                                return r;
                        had_angle = false;
                        break;
                case ' ':
                case '\t':
                case '\r':
                case '\n':
                        /* Folding white space and the spaces between display-name
                         * words; an addr-spec has none outside quoted strings. */
                        break;
                default:
                        address_buf_put(b, c);
                }
        }
        /* An unterminated "<a@b" is still taken as meant. */
        return headers_element_done(&bare, &angle, had_angle || in_angle, list, n);
}

typedef enum FieldKind {
        FIELD_OTHER,
        FIELD_DATE,
        FIELD_FROM,
        FIELD_MESSAGE_ID,
        FIELD_TO,         /* To, Cc */
        FIELD_BCC,
        FIELD_RESENT_TO,  /* Resent-To, Resent-Cc */
        FIELD_RESENT_BCC,
} FieldKind;

static FieldKind headers_field_kind(const char *name, size_t n) {
        static const struct {
                const char *name;
                FieldKind kind;
        } table[] = {
                { "date", FIELD_DATE },
                { "from", FIELD_FROM },
                { "message-id", FIELD_MESSAGE_ID },
                { "to", FIELD_TO },
                { "cc", FIELD_TO },
                { "bcc", FIELD_BCC },
                { "resent-to", FIELD_RESENT_TO },
                { "resent-cc", FIELD_RESENT_TO },
                { "resent-bcc", FIELD_RESENT_BCC },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (strlen(table[i].name) == n && strncasecmp(table[i].name, name, n) == 0)
                        return table[i].kind;
        return FIELD_OTHER;
}

/* Length of a field name at the start of line (RFC 5322 2.2: printable
 * US-ASCII except ':'), followed by optional WSP (obsolete syntax, 4.5) and
 * ':'. Sets *ret_value to the offset after the colon. 0 if not a field. */
static size_t headers_field_name(const char *line, size_t n, size_t *ret_value) {
        size_t i = 0, name_len;

        while (i < n && line[i] > ' ' && line[i] < 127 && line[i] != ':')
                i++;
        name_len = i;
        if (name_len == 0)
                return 0;
        while (i < n && (line[i] == ' ' || line[i] == '\t'))
                i++;
        if (i >= n || line[i] != ':')
                return 0;
        *ret_value = i + 1;
        return name_len;
}

typedef struct Field {
        FieldKind kind;
        size_t start;        /* first byte of the name */
        size_t value;        /* first byte after ':' */
        size_t end;          /* after the line end of the last folded line */
} Field;

static int headers_field_done(const char *msg, const Field *f, HeaderScan *s,
                              char ***resent, size_t *n_resent, bool *saw_resent) {
        switch (f->kind) {
        case FIELD_DATE:
                s->has_date = true;
                return 0;
        case FIELD_FROM:
                s->has_from = true;
                return 0;
        case FIELD_MESSAGE_ID:
                s->has_message_id = true;
                return 0;
        case FIELD_BCC:
        case FIELD_RESENT_BCC: {
                HeaderRange *b = reallocarray_safe(s->bcc, s->n_bcc + 1, sizeof(HeaderRange));
                if (!b)
                        return -ENOMEM;
                s->bcc = b;
                s->bcc[s->n_bcc++] = (HeaderRange) { f->start, f->end };
                break;
        }
        default:
                break;
        }
        switch (f->kind) {
        case FIELD_TO:
        case FIELD_BCC:
                /* The parser treats CR and LF as folding white space. */
                return headers_parse_address_list(msg + f->value, f->end - f->value,
                                                  &s->recipients, &s->n_recipients);
        case FIELD_RESENT_TO:
        case FIELD_RESENT_BCC:
                *saw_resent = true;
                return headers_parse_address_list(msg + f->value, f->end - f->value,
                                                  resent, n_resent);
        default:
                return 0;
        }
}

int headers_scan(const char *msg, size_t len, HeaderScan *ret) {
        HeaderScan s = { .need_separator = true };
        _cleanup_strv_free_ char **resent = NULL;
        size_t n_resent = 0, pos = 0;
        bool saw_resent = false, in_field = false;
        Field f = {};
        int r;

        /* A leading mbox "From sender date" line is not part of the message
         * (Postfix's and Sendmail's sendmail drop it too). */
        if (len >= 5 && memcmp(msg, "From ", 5) == 0) {
                const char *nl = memchr(msg, '\n', len);
                pos = s.skip_prefix = nl ? (size_t) (nl - msg) + 1 : len;
        }
        s.header_end = len;

        while (pos < len) {
                const char *nl = memchr(msg + pos, '\n', len - pos);
                size_t next = nl ? (size_t) (nl - msg) + 1 : len;
                size_t n = (nl ? (size_t) (nl - msg) : len) - pos;
                size_t value;

                if (n > 0 && msg[pos + n - 1] == '\r')
                        n--;
                if (n == 0) {
                        s.header_end = pos;
                        s.need_separator = false;
                        break;
                }
                if (msg[pos] == ' ' || msg[pos] == '\t') {
                        if (!in_field) {
                                s.header_end = pos;
                                break;
                        }
                        f.end = next;
                        pos = next;
                        continue;
                }
                size_t name_len = headers_field_name(msg + pos, n, &value);
                if (name_len == 0) {
                        /* Not a header field: the body starts here without the
                         * empty line (RFC 5322 2.1); the caller inserts one. */
                        s.header_end = pos;
                        break;
                }
                if (in_field) {
                        r = headers_field_done(msg, &f, &s, &resent, &n_resent, &saw_resent);
                        if (r < 0)
                                goto fail;
                }
                f = (Field) {
                        .kind = headers_field_kind(msg + pos, name_len),
                        .start = pos,
                        .value = pos + value,
                        .end = next,
                };
                in_field = true;
                pos = next;
        }
        if (in_field) {
                r = headers_field_done(msg, &f, &s, &resent, &n_resent, &saw_resent);
                if (r < 0)
                        goto fail;
        }
        if (saw_resent) {
                /* RFC 5322 3.6.6: a resent message goes to the Resent- recipients. */
                strv_free(s.recipients);
                s.recipients = TAKE_PTR(resent);
                s.n_recipients = n_resent;
        }
        *ret = s;
        return 0;
fail:
        headers_scan_done(&s);
        return r;
}

void headers_scan_done(HeaderScan *s) {
        strv_free(s->recipients);
        s->recipients = NULL;
        s->n_recipients = 0;
        free(s->bcc);
        s->bcc = NULL;
        s->n_bcc = 0;
}
