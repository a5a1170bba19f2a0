/* Fuzzes smtpd's command tokenizer over a stream of lines, as the session
 * feeds them: every accepted command must have its argument and parameters
 * inside the line, and a formatted path must fit the RFC 5321 limit. */
#include "command.h"
#include "fuzz.h"

/* The DSN value checkers on every parameter value: a NOTIFY list that
 * parses formats to a canonical form that parses to the same mask. */
static void check_dsn_value(const CommandParam *p) {
        unsigned mask, again;
        char buf[32];

        if (!p->value)
                return;
        (void) command_xtext_valid(p->value, p->value_len);
        if (command_check_orcpt(p->value, p->value_len, false) == 0 &&
            command_check_orcpt(p->value, p->value_len, true) != 0)
                abort();
        if (command_parse_notify(p->value, p->value_len, &mask) == 0) {
                command_format_notify(mask, buf, sizeof(buf));
                if (command_parse_notify(buf, strlen(buf), &again) != 0 || again != mask)
                        abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *buf = (const char *) data;
        size_t pos = 0;

        while (pos < size) {
                const char *lf = memchr(buf + pos, '\n', size - pos);
                size_t n = lf ? (size_t) (lf - (buf + pos)) : size - pos;
                char path[ADDRESS_PATH_MAX + 1];
                Command c;

                if (n > 0 && buf[pos + n - 1] == '\r')
                        n--;
                if (n <= COMMAND_LINE_DSN_MAX && command_parse(buf + pos, n, &c) == COMMAND_OK) {
                        const char *end = buf + pos + n;

                        if (c.verb < 0 || c.verb >= _SMTP_VERB_MAX || c.n_params > COMMAND_PARAMS_MAX)
                                abort();
                        if (c.arg_len > 0 && (c.arg < buf + pos || c.arg + c.arg_len > end))
                                abort();
                        for (size_t i = 0; i < c.n_params; i++) {
                                const CommandParam *p = &c.params[i];

                                if (p->key < c.arg || p->key + p->key_len > end || p->key_len == 0)
                                        abort();
                                if (p->value && (p->value < p->key || p->value + p->value_len > end))
                                        abort();
                                check_dsn_value(p);
                        }
                        if ((c.verb == SMTP_VERB_MAIL || c.verb == SMTP_VERB_RCPT) &&
                            address_format(&c.path, path, sizeof(path)) < 0)
                                abort();
                }
                pos += (lf ? (size_t) (lf - (buf + pos)) + 1 : size - pos);
        }
        return 0;
}
