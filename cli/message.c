/* sendmail's message: read within the size limit, completed with the header
 * fields RFC 5322 3.6 requires when the program did not write them, and
 * written to queued without its Bcc: fields. */

#include <ctype.h>
#include <time.h>

#include "message.h"

int message_read(int fd, uint64_t limit, bool ignore_dots, char **ret, size_t *ret_len) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0, line = 0;

        for (;;) {
                if (len == cap) {
                        size_t ncap = cap ? cap * 2 : 64 * 1024;
                        if (ncap < cap)
                                return -ENOMEM;
                        char *p = realloc(buf, ncap);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        cap = ncap;
                }
                ssize_t n = read(fd, buf + len, cap - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (!ignore_dots) {
                        const char *nl;
                        while ((nl = memchr(buf + line, '\n', len - line))) {
                                size_t l = (size_t) (nl - (buf + line));
                                if ((l == 1 && buf[line] == '.') ||
                                    (l == 2 && buf[line] == '.' && buf[line + 1] == '\r')) {
                                        len = line;
                                        goto done;
                                }
                                line = (size_t) (nl - buf) + 1;
                        }
                }
                if (limit > 0 && len > limit)
                        return -EFBIG;
        }
        /* A last "." without a line end ends the message too. */
        if (!ignore_dots && len - line == 1 && buf[line] == '.')
                len = line;
done:
        if (limit > 0 && len > limit)
                return -EFBIG;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

/* "Full Name" as an RFC 5322 display name: bare when it is atoms and spaces,
 * else a quoted string. Control characters become spaces so -F cannot add
 * header lines. */
static char *message_display_name(const char *name) {
        static const char atext[] = "!#$%&'*+-/=?^_`{|}~ ";
        size_t n = strlen(name);
        bool plain = true;
        char *out, *o;

        for (const char *p = name; *p; p++)
                if (!(isalnum((unsigned char) *p) || (unsigned char) *p >= 0x80 ||
                      strchr(atext, *p)))
                        plain = false;
        out = malloc_multiply(n + 1, 2);
        if (!out)
                return NULL;
        o = out;
        if (!plain)
                *o++ = '"';
        for (const char *p = name; *p; p++) {
                unsigned char c = (unsigned char) *p;
                if (c < 0x20 || c == 0x7f)
                        c = ' ';
                else if (c == '"' || c == '\\')
                        *o++ = '\\';
                *o++ = (char) c;
        }
        if (!plain)
                *o++ = '"';
        *o = 0;
        return out;
}

int message_added_fields(const HeaderScan *h, const MessageOrigin *origin, char **ret) {
        _cleanup_free_ char *from = NULL, *name = NULL, *mid = NULL;
        char date[64] = "";
        struct tm tm;
        char *s;

        if (!h->has_from) {
                if (!isempty(origin->full_name)) {
                        name = message_display_name(origin->full_name);
                        if (!name || asprintf(&from, "From: %s <%s>\n", name, origin->address) < 0)
                                return -ENOMEM;
                } else if (asprintf(&from, "From: %s\n", origin->address) < 0)
                        return -ENOMEM;
        }
        /* RFC 5322 3.3 date-time, in local time like every MUA. */
        if (!h->has_date && localtime_r(&origin->now, &tm))
                (void) strftime(date, sizeof(date), "Date: %a, %d %b %Y %H:%M:%S %z\n", &tm);
        if (!h->has_message_id &&
            asprintf(&mid, "Message-ID: <%s@%s>\n", origin->queue_id, origin->hostname) < 0)
                return -ENOMEM;
        if (asprintf(&s, "%s%s%s", from ?: "", date, mid ?: "") < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* Writes the message: the header section without Bcc:, the fields that are
 * missing, the empty line if there was none, the body. */
int message_write(Submit *s, const char *msg, size_t len, const HeaderScan *h, const char *added) {
        size_t pos = h->skip_prefix;
        int r;

        for (size_t i = 0; i < h->n_bcc; i++) {
                r = submit_write(s, msg + pos, h->bcc[i].start - pos);
                if (r < 0)
                        return r;
                pos = h->bcc[i].end;
        }
        r = submit_write(s, msg + pos, h->header_end - pos);
        if (r < 0)
                return r;
        if (h->header_end > h->skip_prefix && msg[h->header_end - 1] != '\n') {
                r = submit_write(s, "\n", 1);
                if (r < 0)
                        return r;
        }
        r = submit_write(s, added, strlen(added));
        if (r < 0)
                return r;
        if (h->need_separator) {
                r = submit_write(s, "\n", 1);
                if (r < 0)
                        return r;
        }
        return submit_write(s, msg + h->header_end, len - h->header_end);
}
