/* A Postfix main.cf reader for `ternctl import-postfix`: "name = value"
 * lines, continuation lines, comments, and $name / ${name} / $(name) /
 * ${name?text} / ${name:text} expansion with Postfix's defaults for the
 * parameters the importer reads. Parsing is pure (tests/fuzz/fuzz-postfix-conf.c). */
#include "postfix_conf.h"

#define POSTFIX_VALUE_MAX (64u * 1024u)
#define POSTFIX_EXPAND_DEPTH 20

PostfixParam *postfix_conf_find(const PostfixConf *c, const char *name) {
        for (size_t i = 0; i < c->n; i++)
                if (streq(c->params[i].name, name))
                        return &c->params[i];
        return NULL;
}

void postfix_conf_done(PostfixConf *c) {
        for (size_t i = 0; i < c->n; i++) {
                free(c->params[i].name);
                free(c->params[i].value);
        }
        free(c->params);
        *c = (PostfixConf) {};
}

static char *trim_dup(const char *p, size_t n) {
        while (n > 0 && (*p == ' ' || *p == '\t')) {
                p++;
                n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
                n--;
        return memdup_str(p, n);
}

int postfix_conf_parse(const char *text, size_t len, PostfixConf *ret, unsigned *ret_line) {
        PostfixConf c = {};
        PostfixParam *last = NULL;
        unsigned line = 0;
        size_t pos = 0;

        while (pos < len) {
                const char *l = text + pos, *nl = memchr(l, '\n', len - pos);
                size_t n = nl ? (size_t) (nl - l) : len - pos, k = 0;

                pos += n + (nl ? 1 : 0);
                line++;
                while (k < n && (l[k] == ' ' || l[k] == '\t' || l[k] == '\r'))
                        k++;
                if (k == n || l[k] == '#')
                        continue;
                if (k > 0) {
                        /* Continuation: "a logical line starts with non-whitespace". */
                        _cleanup_free_ char *more = trim_dup(l + k, n - k);
                        char *v;

                        if (!last) {
                                *ret_line = line;
                                postfix_conf_done(&c);
                                return -EBADMSG;
                        }
                        if (!more || strlen(last->value) + strlen(more) + 2 > POSTFIX_VALUE_MAX ||
                            asprintf(&v, "%s%s%s", last->value, *last->value ? " " : "", more) < 0) {
                                postfix_conf_done(&c);
                                return -ENOMEM;
                        }
                        free(last->value);
                        last->value = v;
                        continue;
                }
                const char *eq = memchr(l, '=', n);
                if (!eq) {
                        *ret_line = line;
                        postfix_conf_done(&c);
                        return -EBADMSG;
                }
                _cleanup_free_ char *name = trim_dup(l, (size_t) (eq - l));
                _cleanup_free_ char *value = trim_dup(eq + 1, n - (size_t) (eq - l) - 1);
                if (!name || !value) {
                        postfix_conf_done(&c);
                        return -ENOMEM;
                }
                for (const char *p = name; *p; p++)
                        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                              (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.')) {
                                *ret_line = line;
                                postfix_conf_done(&c);
                                return -EBADMSG;
                        }
                last = postfix_conf_find(&c, name);
                if (last) {
                        free(last->value);
                        last->value = TAKE_PTR(value);
                        last->line = line;
                        continue;
                }
                PostfixParam *a = reallocarray_safe(c.params, c.n + 1, sizeof(PostfixParam));
                if (!a) {
                        postfix_conf_done(&c);
                        return -ENOMEM;
                }
                c.params = a;
                last = &c.params[c.n++];
                *last = (PostfixParam) { .name = TAKE_PTR(name), .value = TAKE_PTR(value), .line = line };
        }
        *ret = c;
        return 0;
}

/* Postfix's compiled-in defaults for what the translation reads. */
static const char *postfix_default(const char *name, char *buf, size_t size) {
        if (streq(name, "myhostname")) {
                if (gethostname(buf, size) < 0)
                        return "localhost";
                buf[size - 1] = 0;
                return buf;
        }
        if (streq(name, "mydomain"))
                return NULL; /* computed by the caller from myhostname */
        static const struct { const char *name, *value; } d[] = {
                { "myorigin", "$myhostname" },
                { "mydestination", "$myhostname, localhost.$mydomain, localhost" },
                { "mail_name", "Postfix" },
                { "queue_directory", "/var/spool/postfix" },
                { "config_directory", "/etc/postfix" },
                { "data_directory", "/var/lib/postfix" },
                { "alias_maps", "hash:/etc/aliases" },
                { "mail_spool_directory", "/var/mail" },
                { "virtual_mailbox_base", "" },
                { "smtpd_sasl_path", "smtpd" },
                { "smtpd_sasl_type", "cyrus" },
                { "smtpd_sasl_auth_enable", "no" },
        };
        for (size_t i = 0; i < ELEMENTSOF(d); i++)
                if (streq(d[i].name, name))
                        return d[i].value;
        return NULL;
}

static int expand_into(const PostfixConf *c, const char *name, int depth, FILE *out);

static const char *raw_value(const PostfixConf *c, const char *name, char *buf, size_t size) {
        const PostfixParam *p = postfix_conf_find(c, name);

        return p ? p->value : postfix_default(name, buf, size);
}

static int expand_text(const PostfixConf *c, const char *s, int depth, FILE *out) {
        if (depth > POSTFIX_EXPAND_DEPTH)
                return -ELOOP;
        while (*s) {
                char name[128], alt[1024];

                /* $a = $b$b, $b = $c$c, ...: bound the output, not only the depth. */
                if (ftell(out) > (long) POSTFIX_VALUE_MAX)
                        return -E2BIG;
                const char *e;
                char mode = 0;
                size_t n;

                if (*s != '$') {
                        fputc(*s++, out);
                        continue;
                }
                s++;
                if (*s == '$') {
                        fputc(*s++, out);
                        continue;
                }
                alt[0] = 0;
                if (*s == '{' || *s == '(') {
                        char close = *s == '{' ? '}' : ')';

                        e = strchr(s + 1, close);
                        if (!e)
                                return -EBADMSG;
                        n = strcspn(s + 1, "?:}) ");
                        if (s + 1 + n < e && (s[1 + n] == '?' || s[1 + n] == ':')) {
                                mode = s[1 + n];
                                (void) snprintf(alt, sizeof(alt), "%.*s", (int) (e - (s + 2 + n)), s + 2 + n);
                        }
                        if (n >= sizeof(name))
                                return -EBADMSG;
                        memcpy(name, s + 1, n);
                        name[n] = 0;
                        s = e + 1;
                } else {
                        n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
                        if (n == 0 || n >= sizeof(name)) {
                                fputc('$', out);
                                continue;
                        }
                        memcpy(name, s, n);
                        name[n] = 0;
                        s += n;
                }
                if (mode) {
                        /* ${name?text}: text when name is non-empty; ${name:text}: when empty. */
                        char dbuf[256];
                        const char *v = raw_value(c, name, dbuf, sizeof(dbuf));
                        bool set = v && *v;

                        if ((mode == '?') == set) {
                                int r = expand_text(c, alt, depth + 1, out);
                                if (r < 0)
                                        return r;
                        }
                        continue;
                }
                int r = expand_into(c, name, depth + 1, out);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int expand_into(const PostfixConf *c, const char *name, int depth, FILE *out) {
        char buf[256];
        const char *v;

        if (depth > POSTFIX_EXPAND_DEPTH)
                return -ELOOP;
        if (streq(name, "mydomain") && !postfix_conf_find(c, name)) {
                /* Postfix's default: myhostname without its first label. */
                _cleanup_free_ char *host = NULL;
                size_t len = 0;
                FILE *h = open_memstream(&host, &len);
                int r;

                if (!h)
                        return -ENOMEM;
                r = expand_into(c, "myhostname", depth + 1, h);
                if (fclose(h) != 0)
                        return -ENOMEM;
                if (r < 0)
                        return r;
                const char *dot = strchr(host, '.');

                fputs(dot && dot[1] ? dot + 1 : "localdomain", out);
                return 0;
        }
        v = raw_value(c, name, buf, sizeof(buf));
        if (!v)
                return 0; /* an unknown parameter expands to nothing, as in Postfix */
        return expand_text(c, v, depth, out);
}

char *postfix_conf_expand(const PostfixConf *c, const char *name) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f;
        int r;

        if (!postfix_conf_find(c, name) && !postfix_default(name, (char[256]) {}, 256) &&
            !streq(name, "mydomain"))
                return NULL;
        f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        r = expand_into(c, name, 0, f);
        if (fclose(f) != 0 || r < 0 || len > POSTFIX_VALUE_MAX) {
                free(buf);
                return NULL;
        }
        return buf;
}
