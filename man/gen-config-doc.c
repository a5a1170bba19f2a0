/* Writes the key reference of tern.conf from the one table in common/config.c:
 *   gen-config-doc markdown             the generated part of docs/configuration.md
 *   gen-config-doc check-markdown FILE  exit 1 unless FILE holds exactly that part
 *   gen-config-doc man TEMPLATE         tern.conf(5): TEMPLATE with its "%KEYS%" line
 *                                       replaced by the keys in roff
 * Run at build time (the man page) and as a unit test (the docs page). */
#include <inttypes.h>
#include <stdio.h>

#include "config.h"

#define MD_BEGIN "<!-- BEGIN KEYS: generated from common/config.c by man/gen-config-doc; do not edit -->\n"
#define MD_END "<!-- END KEYS -->\n"

static const char *const sections[] = { "Server", "Queue", "SMTP", "TLS", "Auth",
                                        "Delivery", "Local", "Virtual" };

static void span(uint64_t usec, char *buf, size_t size) {
        static const struct { uint64_t usec; const char *unit; } u[] = {
                { UINT64_C(7) * 86400000000, "w" }, { UINT64_C(86400000000), "d" },
                { UINT64_C(3600000000), "h" }, { UINT64_C(60000000), "min" },
                { UINT64_C(1000000), "s" }, { UINT64_C(1000), "ms" },
        };
        for (size_t i = 0; i < ELEMENTSOF(u); i++)
                if (usec >= u[i].usec && usec % u[i].usec == 0) {
                        (void) snprintf(buf, size, "%" PRIu64 "%s", usec / u[i].usec, u[i].unit);
                        return;
                }
        (void) snprintf(buf, size, "%" PRIu64 "us", usec);
}

static void bytes(uint64_t b, char *buf, size_t size) {
        static const char *const suffix = "KMGT";

        for (int i = 3; i >= 0; i--) {
                uint64_t m = UINT64_C(1) << (10 * (i + 1));
                if (b >= m && b % m == 0) {
                        (void) snprintf(buf, size, "%" PRIu64 "%c", b / m, suffix[i]);
                        return;
                }
        }
        (void) snprintf(buf, size, "%" PRIu64, b);
}

/* "time span, 1ms..30d", "maildir or mbox", ... */
static void type_text(const ConfigKeyInfo *k, char *buf, size_t size) {
        char lo[32], hi[32];

        if (k->choices) {
                size_t l = 0;
                const char *p = k->choices;

                buf[0] = 0;
                while (*p && l < size) {
                        size_t n = strcspn(p, " ");
                        const char *next = p + n + (p[n] ? 1 : 0);
                        int w = snprintf(buf + l, size - l, "%s`%.*s`",
                                         l == 0 ? "" : (*next ? ", " : " or "), (int) n, p);
                        if (w < 0)
                                break;
                        l += (size_t) w;
                        p = next;
                }
                return;
        }
        if (streq(k->type, "timespan") && k->max > 0) {
                span(k->min, lo, sizeof(lo));
                span(k->max, hi, sizeof(hi));
                (void) snprintf(buf, size, "time span, %s..%s", k->min ? lo : "0", hi);
        } else if (streq(k->type, "size") && k->max > 0) {
                bytes(k->min, lo, sizeof(lo));
                bytes(k->max, hi, sizeof(hi));
                (void) snprintf(buf, size, "size, %s..%s", lo, hi);
        } else if (streq(k->type, "number") && k->max > 0)
                (void) snprintf(buf, size, "number, %" PRIu64 "..%" PRIu64, k->min, k->max);
        else if (streq(k->type, "timespan"))
                (void) snprintf(buf, size, "time span");
        else if (streq(k->type, "domains"))
                (void) snprintf(buf, size, "domain list");
        else if (streq(k->type, "networks"))
                (void) snprintf(buf, size, "network list");
        else if (streq(k->type, "hostname"))
                (void) snprintf(buf, size, "host name");
        else
                (void) snprintf(buf, size, "%s", k->type);
}

static void markdown(FILE *f) {
        ConfigKeyInfo k;
        char type[256];

        fputs(MD_BEGIN, f);
        for (size_t s = 0; s < ELEMENTSOF(sections); s++) {
                fprintf(f, "\n### [%s]\n\n| Key | Type | Default | Description | Postfix |\n"
                           "|-----|------|---------|-------------|---------|\n", sections[s]);
                for (size_t i = 0; config_key_info(i, &k) >= 0; i++) {
                        if (!streq(k.section, sections[s]))
                                continue;
                        type_text(&k, type, sizeof(type));
                        fprintf(f, "| `%s` | %s | %s%s%s | ", k.name, type, *k.default_text ? "`" : "",
                                *k.default_text ? k.default_text : "empty", *k.default_text ? "`" : "");
                        for (const char *p = k.description; *p; p++)
                                fputs(*p == '|' ? "\\|" : (char[2]) { *p, 0 }, f);
                        if (k.postfix)
                                fprintf(f, " | `%s` |\n", k.postfix);
                        else
                                fputs(" | — |\n", f);
                }
        }
        fputs("\n" MD_END, f);
}

/* roff text: a leading '.' or '\'' would be a request; backslashes escaped. */
static void roff(FILE *f, const char *s) {
        if (*s == '.' || *s == '\'')
                fputs("\\&", f);
        for (; *s; s++) {
                if (*s == '\\')
                        fputs("\\e", f);
                else if (*s == '-')
                        fputs("\\-", f);
                else
                        fputc(*s, f);
        }
}

static void man_keys(FILE *f) {
        ConfigKeyInfo k;
        char type[256];

        for (size_t s = 0; s < ELEMENTSOF(sections); s++) {
                fprintf(f, ".SS [%s]\n", sections[s]);
                for (size_t i = 0; config_key_info(i, &k) >= 0; i++) {
                        if (!streq(k.section, sections[s]))
                                continue;
                        type_text(&k, type, sizeof(type));
                        fprintf(f, ".TP\n.BR %s \" = \" ", k.name);
                        fputs("\"", f);
                        roff(f, *k.default_text ? k.default_text : "(empty)");
                        fputs("\"\n", f);
                        roff(f, k.description);
                        fputs(".\n.br\n", f);
                        for (char *p = type; *p; p++)
                                if (*p == '`')
                                        *p = '"';
                        fputs("Type: ", f);
                        roff(f, type);
                        if (k.postfix) {
                                fputs(". Postfix: ", f);
                                roff(f, k.postfix);
                        }
                        fputs(".\n", f);
                }
        }
}

static int man(const char *template, FILE *f) {
        FILE *t = fopen(template, "re");
        char line[4096];

        if (!t) {
                perror(template);
                return 1;
        }
        while (fgets(line, sizeof(line), t)) {
                if (streq(line, "%KEYS%\n"))
                        man_keys(f);
                else
                        fputs(line, f);
        }
        fclose(t);
        return fflush(f) == 0 ? 0 : 1;
}

static int check_markdown(const char *path) {
        _cleanup_free_ char *want = NULL, *have = NULL;
        size_t wlen = 0, hlen = 0;
        FILE *f = open_memstream(&want, &wlen), *g;
        const char *b, *e;

        if (!f)
                return 1;
        markdown(f);
        if (fclose(f) != 0)
                return 1;
        g = fopen(path, "re");
        if (!g) {
                perror(path);
                return 1;
        }
        f = open_memstream(&have, &hlen);
        for (int c; f && (c = fgetc(g)) != EOF;)
                fputc(c, f);
        fclose(g);
        if (!f || fclose(f) != 0)
                return 1;
        b = strstr(have, MD_BEGIN);
        e = b ? strstr(b, MD_END) : NULL;
        if (!b || !e || (size_t) (e + strlen(MD_END) - b) != wlen || memcmp(b, want, wlen) != 0) {
                fprintf(stderr, "%s: the key reference is not the one generated from common/config.c;\n"
                        "regenerate it: man/update-configuration-md.sh BUILD_DIR\n", path);
                return 1;
        }
        printf("ok %s lists every key of common/config.c\n", path);
        return 0;
}

int main(int argc, char *argv[]) {
        if (argc == 2 && streq(argv[1], "markdown")) {
                markdown(stdout);
                return fflush(stdout) == 0 ? 0 : 1;
        }
        if (argc == 3 && streq(argv[1], "check-markdown"))
                return check_markdown(argv[2]);
        if (argc == 3 && streq(argv[1], "man"))
                return man(argv[2], stdout);
        fprintf(stderr, "usage: %s markdown | check-markdown FILE | man TEMPLATE\n", argv[0]);
        return 2;
}
