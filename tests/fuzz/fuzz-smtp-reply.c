/* Fuzzes smtp_reply_parse over a stream of pipelined replies, as the SMTP
 * client reads them: every accepted reply must lie within the input, its lines
 * inside the reply, and format without overflowing. */
#include "fuzz.h"
#include "smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *buf = (const char *) data;
        size_t pos = 0;

        while (pos < size) {
                SmtpReply r;
                char out[512];
                int n;

                n = smtp_reply_parse(buf + pos, size - pos, NULL, &r);
                if (n <= 0)
                        break;
                if ((size_t) n > size - pos || r.code < 200 || r.code > 599 || r.n_lines == 0 ||
                    r.n_lines > SMTP_REPLY_LINES_MAX)
                        abort();
                for (size_t i = 0; i < r.n_lines; i++)
                        if (r.lines[i].offset > (size_t) n || r.lines[i].len > (size_t) n - r.lines[i].offset)
                                abort();
                if (smtp_reply_format(&r, buf + pos, out, sizeof(out)) >= sizeof(out) ||
                    strlen(out) >= sizeof(out))
                        abort();
                pos += (size_t) n;
        }
        return 0;
}
