/* Parser of SMTP server replies for the SMTP client (RFC 5321 4.2, enhanced
 * status codes RFC 2034/3463). Everything a remote server sends is checked
 * here before the client acts on it; nothing is copied. */
#include "smtp_reply.h"

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

/* RFC 5321 4.2: Reply-code = %x32-35 %x30-35 %x30-39. */
static bool code_valid(const char *p) {
        return p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '5' && is_digit(p[2]);
}

/* textstring = 1*(%d09 / %d32-126); bytes >= 0x80 are tolerated because
 * servers localise their replies (RFC 6531 3.7.4 allows UTF-8 there). */
static bool text_valid(const char *p, size_t n) {
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) p[i];
                if (c != '\t' && (c < 0x20 || c == 0x7f))
                        return false;
        }
        return true;
}

/* RFC 3463 2: status-code = class "." subject "." detail, class 2/4/5,
 * subject and detail "0" or 1-3 digits without a leading zero, followed by a
 * space or the end of the text. Returns its length or 0. */
static size_t enhanced_length(const char *p, size_t n, char class) {
        size_t i = 0;

        if (n < 5 || p[0] != class || p[1] != '.')
                return 0;
        i = 2;
        for (int part = 0; part < 2; part++) {
                size_t start = i;
                while (i < n && is_digit(p[i]) && i - start < 3)
                        i++;
                if (i == start || (p[start] == '0' && i - start > 1))
                        return 0;
                if (part == 0) {
                        if (i >= n || p[i] != '.')
                                return 0;
                        i++;
                }
        }
        if (i < n && p[i] != ' ')
                return 0;
        return i;
}

int smtp_reply_parse(const char *buf, size_t len, const SmtpReplyLimits *limits, SmtpReply *ret) {
        size_t line_max = SMTP_REPLY_LINE_MAX, lines_max = SMTP_REPLY_LINES_MAX;
        SmtpReplyLine lines[SMTP_REPLY_LINES_MAX];
        size_t n_lines = 0, pos = 0;
        const char *first = NULL;

        if (limits) {
                if (limits->line_max > 0 && limits->line_max < line_max)
                        line_max = limits->line_max;
                if (limits->lines_max > 0 && limits->lines_max < lines_max)
                        lines_max = limits->lines_max;
        }

        for (;;) {
                const char *line = buf + pos, *lf;
                size_t avail = len - pos, n;
                bool last;

                lf = memchr(line, '\n', avail < line_max ? avail : line_max);
                if (!lf)
                        return avail >= line_max ? -EMSGSIZE : 0;
                n = (size_t) (lf - line) + 1; /* with CRLF */
                if (n < 5 || line[n - 2] != '\r' || !code_valid(line))
                        return -EBADMSG;
                if (first && memcmp(first, line, 3) != 0)
                        return -EBADMSG;
                if (n == 5)
                        last = true; /* "250\r\n": RFC 5321 4.2 allows a bare code */
                else if (line[3] == ' ')
                        last = true;
                else if (line[3] == '-')
                        last = false;
                else
                        return -EBADMSG;
                if (n > 5 && !text_valid(line + 4, n - 6))
                        return -EBADMSG;
                if (n_lines >= lines_max)
                        return -EMSGSIZE;
                lines[n_lines].offset = pos + (n > 5 ? 4 : 3);
                lines[n_lines].len = n > 5 ? n - 6 : 0;
                n_lines++;
                if (!first)
                        first = line;
                pos += n;
                if (last)
                        break;
        }

        ret->code = (unsigned) (first[0] - '0') * 100 + (unsigned) (first[1] - '0') * 10 +
                    (unsigned) (first[2] - '0');
        ret->enhanced[0] = 0;
        {
                size_t e = enhanced_length(buf + lines[0].offset, lines[0].len, first[0]);
                if (e > 0 && e < sizeof(ret->enhanced)) {
                        memcpy(ret->enhanced, buf + lines[0].offset, e);
                        ret->enhanced[e] = 0;
                }
        }
        ret->n_lines = n_lines;
        memcpy(ret->lines, lines, n_lines * sizeof(lines[0]));
        return (int) pos;
}

void smtp_reply_line_text(const SmtpReply *reply, const char *buf, size_t i,
                          const char **ret_text, size_t *ret_len) {
        const char *t = buf + reply->lines[i].offset;
        size_t n = reply->lines[i].len, e = strlen(reply->enhanced);

        if (e > 0 && n >= e && memcmp(t, reply->enhanced, e) == 0 && (n == e || t[e] == ' ')) {
                t += e;
                n -= e;
                if (n > 0) {
                        t++;
                        n--;
                }
        }
        *ret_text = t;
        *ret_len = n;
}

/* Length of the valid UTF-8 sequence at p (n bytes available), or 0. */
static size_t utf8_length(const unsigned char *p, size_t n) {
        size_t l;

        if (p[0] >= 0xc2 && p[0] <= 0xdf)
                l = 2;
        else if (p[0] >= 0xe0 && p[0] <= 0xef)
                l = 3;
        else if (p[0] >= 0xf0 && p[0] <= 0xf4)
                l = 4;
        else
                return 0;
        if (l > n)
                return 0;
        for (size_t i = 1; i < l; i++)
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
        return l;
}

/* Appends what fits of p, whole UTF-8 sequences only; invalid bytes become
 * '?' so that logs and bounces carry valid UTF-8 whatever the server sent. */
static void append(char *out, size_t size, size_t *pos, const char *p, size_t n) {
        const unsigned char *u = (const unsigned char *) p;

        for (size_t i = 0; i < n;) {
                size_t l = u[i] < 0x80 ? 1 : utf8_length(u + i, n - i);

                if (*pos + (l ? l : 1) > size - 1)
                        break;
                if (l == 0) {
                        out[(*pos)++] = '?';
                        i++;
                } else {
                        memcpy(out + *pos, p + i, l);
                        *pos += l;
                        i += l;
                }
        }
        out[*pos] = 0;
}

size_t smtp_reply_format(const SmtpReply *reply, const char *buf, char *out, size_t size) {
        char code[4] = { (char) ('0' + reply->code / 100), (char) ('0' + reply->code / 10 % 10),
                         (char) ('0' + reply->code % 10), 0 };
        size_t pos = 0;

        if (size == 0)
                return 0;
        out[0] = 0;
        append(out, size, &pos, code, 3);
        if (reply->enhanced[0]) {
                append(out, size, &pos, " ", 1);
                append(out, size, &pos, reply->enhanced, strlen(reply->enhanced));
        }
        for (size_t i = 0; i < reply->n_lines; i++) {
                const char *t;
                size_t n;

                smtp_reply_line_text(reply, buf, i, &t, &n);
                if (n == 0)
                        continue;
                append(out, size, &pos, " ", 1);
                append(out, size, &pos, t, n);
        }
        return pos;
}
