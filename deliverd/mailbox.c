/* Pure helpers shared by maildir.c and mbox.c: mailbox path expansion and the
 * on-disk form of a message. Postfix and Dovecot store LF line ends in
 * Maildir and mbox files, so the spool's CRLF is converted here. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mailbox.h"
#include "util.h"

int mailbox_expand_path(const char *tmpl, const char *user, const char *home, char **ret) {
        size_t n = 0, cap;
        char *out;
        const char *p = tmpl;

        if (isempty(tmpl) || isempty(user) || strchr(user, '/') || streq(user, ".") ||
            streq(user, ".."))
                return -EINVAL;
        /* Upper bound: every byte could be "%u" expanding to user, plus home. */
        cap = strlen(tmpl) * (strlen(user) + 1) + (home ? strlen(home) : 0) + 1;
        out = malloc(cap);
        if (!out)
                return -ENOMEM;
        if (p[0] == '~' && (p[1] == '/' || p[1] == 0)) {
                if (isempty(home)) {
                        free(out);
                        return -EINVAL;
                }
                n = strlen(home);
                memcpy(out, home, n);
                /* "~/" with home "/" must not give "//". */
                if (n > 0 && out[n - 1] == '/' && p[1] == '/')
                        n--;
                p++;
        }
        for (; *p; p++) {
                if (p[0] == '%' && p[1] == 'u') {
                        size_t l = strlen(user);
                        memcpy(out + n, user, l);
                        n += l;
                        p++;
                } else if (p[0] == '%' && p[1] == '%') {
                        out[n++] = '%';
                        p++;
                } else
                        out[n++] = *p;
        }
        out[n] = 0;
        *ret = out;
        return 0;
}

static size_t put_header(char *out, const char *name, const char *value, bool brackets) {
        size_t n = 0, l = strlen(name);

        memcpy(out, name, l);
        n += l;
        if (brackets)
                out[n++] = '<';
        for (const char *v = value; *v; v++)
                out[n++] = ((unsigned char) *v < 0x20 || *v == 0x7f) ? '?' : *v;
        if (brackets)
                out[n++] = '>';
        out[n++] = '\n';
        return n;
}

/* True when the line starting at p (len bytes left) matches /^>*From /. */
static bool needs_quote(const uint8_t *p, size_t len) {
        size_t i = 0;

        while (i < len && p[i] == '>')
                i++;
        return len - i >= 5 && memcmp(p + i, "From ", 5) == 0;
}

int mailbox_format(const char *sender, const char *rcpt, const uint8_t *body, size_t len,
                   bool mbox, char **ret, size_t *ret_len) {
        size_t cap, n, lines = 1;
        char *out;

        for (size_t i = 0; i < len; i++)
                if (body[i] == '\n')
                        lines++;
        /* Headers + body + one '>' per line + final "\n\n". */
        cap = strlen(sender) + strlen(rcpt) + 64;
        if (len > SIZE_MAX - cap - lines - 2)
                return -ENOMEM;
        cap += len + lines + 2;
        out = malloc(cap);
        if (!out)
                return -ENOMEM;

        n = put_header(out, "Return-Path: ", sender, true);
        n += put_header(out + n, "Delivered-To: ", rcpt, false);

        for (size_t i = 0; i < len;) {
                const uint8_t *eol = memchr(body + i, '\n', len - i);
                size_t l = eol ? (size_t) (eol - (body + i)) : len - i; /* without '\n' */

                if (mbox && needs_quote(body + i, l))
                        out[n++] = '>';
                /* Only CR immediately before LF is a line end; a lone CR is data. */
                if (eol && l > 0 && body[i + l - 1] == '\r') {
                        memcpy(out + n, body + i, l - 1);
                        n += l - 1;
                } else {
                        memcpy(out + n, body + i, l);
                        n += l;
                }
                if (eol)
                        out[n++] = '\n';
                i += l + (eol ? 1 : 0);
        }
        if (mbox) {
                /* The message ends with a newline, then an empty line. */
                if (out[n - 1] != '\n')
                        out[n++] = '\n';
                out[n++] = '\n';
        }
        *ret = out;
        *ret_len = n;
        return 0;
}

int mailbox_from_line(const char *sender, int64_t when, char *buf, size_t size) {
        time_t t = (time_t) when;
        struct tm tm;
        char date[64];
        int r;

        if (!localtime_r(&t, &tm) || strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm) == 0)
                return -ENOBUFS;
        /* An envelope sender with spaces or controls would break the separator. */
        if (isempty(sender) || strpbrk(sender, " \t\r\n"))
                sender = "MAILER-DAEMON";
        r = snprintf(buf, size, "From %s %s\n", sender, date);
        if (r < 0 || (size_t) r >= size)
                return -ENOBUFS;
        return r;
}

int mailbox_user_name(const char *rcpt, char *buf, size_t size) {
        const char *at = strrchr(rcpt, '@');
        size_t n = at ? (size_t) (at - rcpt) : strlen(rcpt);

        if (n == 0 || n >= size)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                char c = rcpt[i];
                buf[i] = (c >= 'A' && c <= 'Z') ? (char) (c - 'A' + 'a') : c;
        }
        buf[n] = 0;
        /* RFC 5321 4.5.1: postmaster must exist; it is root's mail. */
        if (streq(buf, "postmaster")) {
                if (size < 5)
                        return -EINVAL;
                memcpy(buf, "root", 5);
        }
        return 0;
}

bool mailbox_has_delivered_to(const uint8_t *body, size_t len, const char *rcpt) {
        size_t rl = strlen(rcpt);

        for (size_t i = 0; i < len;) {
                const uint8_t *eol = memchr(body + i, '\n', len - i);
                size_t l = eol ? (size_t) (eol - (body + i)) : len - i;
                const char *v = (const char *) body + i;

                if (l > 0 && v[l - 1] == '\r')
                        l--;
                if (l == 0)
                        break; /* end of the header section */
                if (l > 13 && strncasecmp(v, "Delivered-To:", 13) == 0) {
                        size_t a = 13, b = l;
                        while (a < b && (v[a] == ' ' || v[a] == '\t'))
                                a++;
                        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
                                b--;
                        if (b - a == rl && strncasecmp(v + a, rcpt, rl) == 0)
                                return true;
                }
                if (!eol)
                        break;
                i += (size_t) (eol - (body + i)) + 1;
        }
        return false;
}
