/* `ternctl import-postfix`: main.cf -> a tern.conf drop-in. The special cases
 * (domains, networks, tables, TLS, SASL, mailbox location) are translated by
 * hand below; every other parameter whose name is the "Postfix equivalent" of
 * a key in config.c's table is copied as is. The result is loaded with
 * config_load before it is written, so the drop-in never stops tern from
 * starting: a value tern refuses is listed as not translated instead. */
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/stat.h>

#include "config.h"
#include "import_postfix.h"
#include "postfix_conf.h"
#include "ternctl.h"

#define POSTFIX_FILE_MAX (1024u * 1024u)
#define IMPORT_ENTRIES_MAX 128u

/* ---- translation --------------------------------------------------------- */

typedef struct ImportEntry {
        const char *section;
        const char *key;
        char *value;
        char *from;     /* "main.cf:12 myhostname" */
} ImportEntry;

typedef struct Import {
        const PostfixConf *pf;
        const char *path;
        ImportEntry entries[IMPORT_ENTRIES_MAX];
        size_t n;
        char **skipped; /* "name (reason)" */
        size_t n_skipped;
        char **handled; /* parameter names consumed */
        size_t n_handled;
} Import;

static void import_handled(Import *im, const char *name) {
        char **l = reallocarray_safe(im->handled, im->n_handled + 1, sizeof(char *));

        if (!l)
                return;
        im->handled = l;
        im->handled[im->n_handled] = strdup(name);
        if (im->handled[im->n_handled])
                im->n_handled++;
}

static bool import_was_handled(const Import *im, const char *name) {
        for (size_t i = 0; i < im->n_handled; i++)
                if (streq(im->handled[i], name))
                        return true;
        return false;
}

static void import_skip(Import *im, const char *name, const char *fmt, ...) _printf_(3, 4);
static void import_skip(Import *im, const char *name, const char *fmt, ...) {
        const PostfixParam *p = postfix_conf_find(im->pf, name);
        _cleanup_free_ char *why = NULL;
        char *s, **l;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&why, fmt, ap) < 0)
                why = NULL;
        va_end(ap);
        import_handled(im, name);
        if (asprintf(&s, "%s:%u: %s = %s: %s", im->path, p ? p->line : 0, name, p ? p->value : "",
                     why ?: "") < 0)
                return;
        l = reallocarray_safe(im->skipped, im->n_skipped + 1, sizeof(char *));
        if (!l) {
                free(s);
                return;
        }
        im->skipped = l;
        im->skipped[im->n_skipped++] = s;
}

static void import_set(Import *im, const char *name, const char *section, const char *key,
                       const char *value) {
        const PostfixParam *p = postfix_conf_find(im->pf, name);
        ImportEntry *e;

        import_handled(im, name);
        for (size_t i = 0; i < im->n; i++)
                if (streq(im->entries[i].section, section) && streq(im->entries[i].key, key)) {
                        free(im->entries[i].value);
                        im->entries[i].value = strdup(value);
                        return;
                }
        if (im->n >= IMPORT_ENTRIES_MAX)
                return;
        e = &im->entries[im->n];
        *e = (ImportEntry) { .section = section, .key = key, .value = strdup(value) };
        if ((p ? asprintf(&e->from, "%s:%u %s", im->path, p->line, name)
               : asprintf(&e->from, "Postfix's default of %s", name)) < 0)
                e->from = NULL;
        if (e->value)
                im->n++;
}

/* Splits a Postfix list (commas and/or whitespace) into a strv. */
static char **split_list(const char *s) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;

        while (s && *s) {
                size_t k = strcspn(s, ", \t");

                if (k > 0) {
                        char **a = reallocarray_safe(l, n + 2, sizeof(char *));
                        if (!a)
                                return NULL;
                        l = a;
                        l[n] = memdup_str(s, k);
                        if (!l[n])
                                return NULL;
                        l[++n] = NULL;
                }
                s += k;
                s += strspn(s, ", \t");
        }
        if (!l)
                l = new0(char *, 1);
        return TAKE_PTR(l);
}

/* "hash:/etc/postfix/virtual" -> "/etc/postfix/virtual"; NULL for a table type
 * tern cannot read as a compiled file (mysql:, ldap:, regexp:, pcre:, ...). */
static const char *table_path(const char *spec) {
        static const char *const types[] = { "hash:", "btree:", "cdb:", "lmdb:", "dbm:", "texthash:" };

        for (size_t i = 0; i < ELEMENTSOF(types); i++)
                if (strncmp(spec, types[i], strlen(types[i])) == 0 && spec[strlen(types[i])] == '/')
                        return spec + strlen(types[i]);
        if (spec[0] == '/')
                return spec; /* default_database_type */
        return NULL;
}

static void import_table(Import *im, const char *name, const char *section, const char *key) {
        _cleanup_free_ char *v = postfix_conf_expand(im->pf, name);
        _cleanup_strv_free_ char **l = NULL;
        const char *path;

        if (!postfix_conf_find(im->pf, name) || !v)
                return;
        l = split_list(v);
        if (!l || !l[0]) {
                import_set(im, name, section, key, "");
                return;
        }
        path = table_path(l[0]);
        if (!path) {
                import_skip(im, name, "table type of \"%s\" is not supported (tern reads tables compiled "
                            "with ternctl map)", l[0]);
                return;
        }
        import_set(im, name, section, key, path);
        if (l[1]) {
                import_skip(im, name, "only the first table \"%s\" was taken; merge the others into it",
                            path);
                /* the first one stays set: undo the handled mark's side effect only */
        }
}

static void import_domains(Import *im, const char *name, const char *section, const char *key) {
        _cleanup_free_ char *v = postfix_conf_expand(im->pf, name);
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_free_ char *out = NULL;
        size_t len = 0;
        FILE *f;

        if (!postfix_conf_find(im->pf, name) && !streq(name, "mydestination"))
                return;
        if (!v || !(l = split_list(v)))
                return;
        f = open_memstream(&out, &len);
        if (!f)
                return;
        for (char **d = l; *d; d++) {
                if (strchr(*d, ':') || (*d)[0] == '/') {
                        import_skip(im, name, "the lookup table \"%s\" in a domain list is not supported; "
                                    "list the domains", *d);
                        continue;
                }
                fprintf(f, "%s%s", len || ftell(f) > 0 ? " " : "", *d);
        }
        if (fclose(f) != 0)
                return;
        import_set(im, name, section, key, out ?: "");
}

static void import_networks(Import *im) {
        _cleanup_free_ char *v = postfix_conf_expand(im->pf, "mynetworks");
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_free_ char *out = NULL;
        size_t len = 0;
        FILE *f;

        if (!postfix_conf_find(im->pf, "mynetworks") || !v || !(l = split_list(v)))
                return;
        f = open_memstream(&out, &len);
        if (!f)
                return;
        for (char **d = l; *d; d++) {
                if (strchr(*d, ':') && (*d)[0] != '[') {
                        import_skip(im, "mynetworks", "the lookup table \"%s\" is not supported; list the "
                                    "networks", *d);
                        continue;
                }
                fprintf(f, "%s%s", ftell(f) > 0 ? " " : "", *d);
        }
        if (fclose(f) != 0)
                return;
        import_set(im, "mynetworks", "Server", "TrustedNetworks", out ?: "");
}

static void import_simple(Import *im, const char *name, const char *section, const char *key) {
        _cleanup_free_ char *v = NULL;

        if (!postfix_conf_find(im->pf, name))
                return;
        v = postfix_conf_expand(im->pf, name);
        if (v)
                import_set(im, name, section, key, v);
}

static void import_tls_level(Import *im, const char *name, const char *section, const char *key,
                             bool client) {
        _cleanup_free_ char *v = NULL;

        if (!postfix_conf_find(im->pf, name))
                return;
        v = postfix_conf_expand(im->pf, name);
        if (!v)
                return;
        if (streq(v, "none") || streq(v, "may") || streq(v, "encrypt") || (client && streq(v, "verify")))
                import_set(im, name, section, key, v);
        else if (client && streq(v, "secure"))
                import_set(im, name, section, key, "verify");
        else if (client && (streq(v, "dane") || streq(v, "dane-only"))) {
                import_set(im, name, section, key, streq(v, "dane") ? "may" : "encrypt");
                import_skip(im, name, "tern has no DANE; translated to %s", streq(v, "dane") ? "may" : "encrypt");
        } else
                import_skip(im, name, "no such TLS security level in tern");
}

static void import_sasl(Import *im) {
        _cleanup_free_ char *enable = postfix_conf_expand(im->pf, "smtpd_sasl_auth_enable");
        _cleanup_free_ char *type = postfix_conf_expand(im->pf, "smtpd_sasl_type");
        _cleanup_free_ char *path = postfix_conf_expand(im->pf, "smtpd_sasl_path");
        _cleanup_free_ char *qdir = postfix_conf_expand(im->pf, "queue_directory");
        _cleanup_free_ char *abs = NULL;

        if (!postfix_conf_find(im->pf, "smtpd_sasl_auth_enable") && !postfix_conf_find(im->pf, "smtpd_sasl_type"))
                return;
        if (!enable || strcasecmp(enable, "yes") != 0) {
                import_set(im, "smtpd_sasl_auth_enable", "Auth", "Backend", "none");
                import_handled(im, "smtpd_sasl_type");
                import_handled(im, "smtpd_sasl_path");
                return;
        }
        import_handled(im, "smtpd_sasl_auth_enable");
        if (!type || !streq(type, "dovecot")) {
                import_skip(im, "smtpd_sasl_type", "only Dovecot SASL is supported (or tern's own "
                            "PasswordTable)");
                return;
        }
        import_set(im, "smtpd_sasl_type", "Auth", "Backend", "dovecot");
        if (path && path[0] != '/' && asprintf(&abs, "%s/%s", qdir ?: "/var/spool/postfix", path) < 0)
                abs = NULL;
        if (postfix_conf_find(im->pf, "smtpd_sasl_path") && (path || abs)) {
                import_set(im, "smtpd_sasl_path", "Auth", "DovecotSocket", abs ?: path);
                if (abs)
                        import_skip(im, "smtpd_sasl_path", "relative to Postfix's queue directory (%s); "
                                    "give tern a Dovecot auth listener outside the Postfix chroot, "
                                    "e.g. /run/dovecot/auth-client", abs);
        }
}

static void import_mailbox(Import *im) {
        _cleanup_free_ char *home = postfix_conf_expand(im->pf, "home_mailbox");
        _cleanup_free_ char *spool = postfix_conf_expand(im->pf, "mail_spool_directory");
        _cleanup_free_ char *p = NULL;

        /* tern's default is ~/Maildir/; Postfix's is /var/mail/USER (mbox):
         * say which one the old system used even if main.cf does not. */
        if (home && *home) {
                size_t n = strlen(home);
                bool maildir = home[n - 1] == '/';

                if (asprintf(&p, "~/%s", home) < 0)
                        return;
                import_set(im, "home_mailbox", "Local", "MailboxFormat", maildir ? "maildir" : "mbox");
                import_set(im, "home_mailbox", "Local", "MailboxPath", p);
                return;
        }
        if (asprintf(&p, "%s/%%u", spool && *spool ? spool : "/var/mail") < 0)
                return;
        import_set(im, "mail_spool_directory", "Local", "MailboxFormat", "mbox");
        import_set(im, "mail_spool_directory", "Local", "MailboxPath", p);
}

static void import_virtual_user(Import *im) {
        _cleanup_free_ char *v = postfix_conf_expand(im->pf, "virtual_uid_maps");
        struct passwd *pw;
        char *end;
        unsigned long uid;

        if (!postfix_conf_find(im->pf, "virtual_uid_maps") || !v)
                return;
        if (strncmp(v, "static:", 7) != 0) {
                import_skip(im, "virtual_uid_maps", "only static:UID is supported: tern delivers every "
                            "virtual mailbox as Virtual.MailboxUser");
                return;
        }
        errno = 0;
        uid = strtoul(v + 7, &end, 10);
        pw = errno == 0 && *end == 0 ? getpwuid((uid_t) uid) : NULL;
        if (!pw) {
                import_skip(im, "virtual_uid_maps", "no user with uid %s on this machine; create one "
                            "and set Virtual.MailboxUser", v + 7);
                return;
        }
        import_set(im, "virtual_uid_maps", "Virtual", "MailboxUser", pw->pw_name);
        import_handled(im, "virtual_gid_maps");
}

static void import_myorigin(Import *im) {
        _cleanup_free_ char *origin = postfix_conf_expand(im->pf, "myorigin");
        _cleanup_free_ char *host = postfix_conf_expand(im->pf, "myhostname");
        char line[256] = "";

        if (!postfix_conf_find(im->pf, "myorigin") || !origin)
                return;
        if (origin[0] == '/') {
                /* Postfix reads the first line of a file named here (Debian's /etc/mailname). */
                _cleanup_fclose_ FILE *f = fopen(origin, "re");

                if (f && fgets(line, sizeof(line), f))
                        line[strcspn(line, "\r\n")] = 0;
        }
        const char *o = line[0] ? line : origin;
        if (host && strcasecmp(o, host) == 0) {
                import_handled(im, "myorigin");
                return;
        }
        /* tern qualifies local senders with Hostname: the closest thing. */
        if (!postfix_conf_find(im->pf, "myhostname") && o[0] != '/') {
                import_set(im, "myorigin", "Server", "Hostname", o);
                import_skip(im, "myorigin", "tern has no separate origin domain; used as Hostname");
                return;
        }
        import_skip(im, "myorigin", "tern qualifies local addresses with Server.Hostname (\"%s\"); "
                    "rewrite with Virtual.AliasMap if the origin domain must differ", host ?: "");
}

static void import_size(Import *im) {
        _cleanup_free_ char *v = NULL;

        if (!postfix_conf_find(im->pf, "message_size_limit"))
                return;
        v = postfix_conf_expand(im->pf, "message_size_limit");
        if (v && streq(v, "0")) {
                import_set(im, "message_size_limit", "SMTP", "MessageSizeLimit", "2G");
                import_skip(im, "message_size_limit", "0 (no limit) became tern's maximum, 2G");
                return;
        }
        if (v)
                import_set(im, "message_size_limit", "SMTP", "MessageSizeLimit", v);
}

static void import_banner(Import *im) {
        _cleanup_free_ char *v = NULL;
        const PostfixParam *p = postfix_conf_find(im->pf, "smtpd_banner");

        if (!p)
                return;
        /* tern always greets with "220 Hostname " first; take the rest. */
        if (strncmp(p->value, "$myhostname ", 12) != 0) {
                import_skip(im, "smtpd_banner", "tern's greeting always starts with Hostname");
                return;
        }
        v = strdup(p->value + 12);
        if (!v)
                return;
        /* $mail_name is Postfix's own name; tern's banner says tern. */
        char *m = strstr(v, "$mail_name");
        if (m) {
                _cleanup_free_ char *w = NULL;
                if (asprintf(&w, "%.*stern%s", (int) (m - v), v, m + 10) < 0)
                        return;
                free(v);
                v = TAKE_PTR(w);
        }
        if (strchr(v, '$')) {
                import_skip(im, "smtpd_banner", "contains variables tern does not know");
                return;
        }
        import_set(im, "smtpd_banner", "SMTP", "Banner", v);
}

/* Parameters with no effect in tern (or whose effect is built in). */
static const char *const ignored[] = {
        "biff", "append_dot_mydomain", "readme_directory", "compatibility_level", "alias_database",
        "smtp_tls_session_cache_database", "smtpd_tls_session_cache_database", "html_directory",
        "manpage_directory", "sample_directory", "sendmail_path", "newaliases_path", "mailq_path",
        "setgid_group", "command_directory", "daemon_directory", "data_directory", "debugger_command",
        "mail_owner", "queue_directory", "smtp_tls_CApath", "smtpd_use_tls", "smtp_use_tls",
        "smtputf8_enable", "mailbox_size_limit", "virtual_gid_maps", "mydomain", "myorigin",
        "mail_name", "config_directory", "shlib_directory", "meta_directory", "delay_logging_resolution_limit",
        "unknown_local_recipient_reject_code", "inet_protocols",
};

static const struct {
        const char *name;
        const char *why;
} unsupported_reasons[] = {
        { "inet_interfaces", "listening addresses are ListenStream= in tern-smtp.socket (a drop-in)" },
        { "smtpd_relay_restrictions", "tern relays for TrustedNetworks and authenticated clients only" },
        { "smtpd_recipient_restrictions", "use SMTP.RecipientAccess, ClientAccess, DNSBlocklists" },
        { "smtpd_client_restrictions", "use SMTP.ClientAccess" },
        { "smtpd_helo_restrictions", "use SMTP.HeloAccess" },
        { "smtpd_sender_restrictions", "use SMTP.SenderAccess" },
        { "mynetworks_style", "list the networks in Server.TrustedNetworks" },
        { "smtpd_milters", "tern has no milter support" },
        { "non_smtpd_milters", "tern has no milter support" },
        { "content_filter", "tern has no content filter hook" },
        { "mailbox_command", "use a pipe in ~/.forward or the aliases file" },
        { "mailbox_transport", "use Delivery.TransportTable (lmtp:...)" },
        { "virtual_transport", "use Delivery.TransportTable for the virtual domains" },
        { "smtp_sasl_auth_enable", "set Delivery.RelayPasswordTable" },
        { "smtp_sasl_password_maps", "convert to Delivery.RelayPasswordTable (host user:password)" },
};

static bool is_ignored(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(ignored); i++)
                if (streq(ignored[i], name))
                        return true;
        return false;
}

/* Values that say what tern does anyway. */
static bool is_builtin(const Import *im, const PostfixParam *p) {
        _cleanup_free_ char *v = postfix_conf_expand(im->pf, p->name);

        if (!v)
                return false;
        if (streq(p->name, "inet_interfaces"))
                return streq(v, "all"); /* tern-smtp.socket listens on every address */
        if (streq(p->name, "smtpd_relay_restrictions"))
                return streq(v, "permit_mynetworks permit_sasl_authenticated defer_unauth_destination") ||
                       streq(v, "permit_mynetworks permit_sasl_authenticated reject_unauth_destination") ||
                       streq(v, "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination") ||
                       streq(v, "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination");
        return false;
}

/* Every key whose table entry names exactly this Postfix parameter. */
static void import_generic(Import *im, const PostfixParam *p) {
        ConfigKeyInfo k;

        for (size_t i = 0; config_key_info(i, &k) >= 0; i++)
                if (k.postfix && streq(k.postfix, p->name) &&
                    (streq(k.type, "timespan") || streq(k.type, "size") || streq(k.type, "number") ||
                     streq(k.type, "string"))) {
                        _cleanup_free_ char *v = postfix_conf_expand(im->pf, p->name);

                        if (v)
                                import_set(im, p->name, k.section, k.name, v);
                        return;
                }
}

static void import_all(Import *im) {
        import_simple(im, "myhostname", "Server", "Hostname");
        import_domains(im, "mydestination", "Server", "LocalDomains");
        import_networks(im);
        import_myorigin(im);
        import_simple(im, "relayhost", "Delivery", "RelayHost");
        import_size(im);
        import_banner(im);
        import_simple(im, "smtpd_tls_cert_file", "TLS", "CertificateFile");
        import_simple(im, "smtpd_tls_key_file", "TLS", "KeyFile");
        import_tls_level(im, "smtpd_tls_security_level", "TLS", "SecurityLevel", false);
        import_tls_level(im, "smtp_tls_security_level", "Delivery", "TLSSecurityLevel", true);
        import_simple(im, "smtp_tls_CAfile", "Delivery", "TLSCAFile");
        import_sasl(im);
        import_table(im, "smtpd_sender_login_maps", "Auth", "SenderLoginMap");
        import_table(im, "alias_maps", "Local", "AliasFile");
        import_table(im, "virtual_alias_maps", "Virtual", "AliasMap");
        import_domains(im, "virtual_alias_domains", "Virtual", "AliasDomains");
        import_domains(im, "virtual_mailbox_domains", "Virtual", "MailboxDomains");
        import_table(im, "virtual_mailbox_maps", "Virtual", "MailboxMap");
        import_simple(im, "virtual_mailbox_base", "Virtual", "MailboxBase");
        import_virtual_user(im);
        import_table(im, "transport_maps", "Delivery", "TransportTable");
        import_table(im, "smtp_tls_policy_maps", "Delivery", "TLSPolicyTable");
        import_table(im, "check_client_access", "SMTP", "ClientAccess");
        import_simple(im, "recipient_delimiter", "Local", "RecipientDelimiter");
        import_mailbox(im);

        for (size_t i = 0; i < im->pf->n; i++) {
                const PostfixParam *p = &im->pf->params[i];

                if (import_was_handled(im, p->name) || is_ignored(p->name) || is_builtin(im, p))
                        continue;
                import_generic(im, p);
                if (import_was_handled(im, p->name))
                        continue;
                const char *why = "no tern equivalent";
                for (size_t k = 0; k < ELEMENTSOF(unsupported_reasons); k++)
                        if (streq(unsupported_reasons[k].name, p->name))
                                why = unsupported_reasons[k].why;
                import_skip(im, p->name, "%s", why);
        }
}

static void import_write(const Import *im, FILE *f, bool with_skipped) {
        static const char *const sections[] = { "Server", "Queue", "SMTP", "TLS", "Auth",
                                                "Delivery", "Local", "Virtual" };

        fprintf(f, "# Written by ternctl import-postfix from %s.\n"
                   "# Check with `ternctl check`, compile the tables with `ternctl map FILE`\n"
                   "# (aliases: newaliases), then `systemctl reload tern.target`.\n", im->path);
        for (size_t s = 0; s < ELEMENTSOF(sections); s++) {
                bool header = false;

                for (size_t i = 0; i < im->n; i++) {
                        const ImportEntry *e = &im->entries[i];

                        if (!streq(e->section, sections[s]))
                                continue;
                        if (!header)
                                fprintf(f, "\n[%s]\n", sections[s]);
                        header = true;
                        fprintf(f, "# %s\n%s = %s\n", e->from ?: "", e->key, e->value);
                }
        }
        if (with_skipped && im->n_skipped > 0) {
                fputs("\n# Not translated:\n", f);
                for (size_t i = 0; i < im->n_skipped; i++)
                        fprintf(f, "#   %s\n", im->skipped[i]);
        }
}

/* Loads the drop-in as tern would. On an error, the entry on that line is
 * dropped and listed instead; repeated until it loads. */
static int import_validate(Import *im) {
        for (unsigned tries = 0; tries < IMPORT_ENTRIES_MAX; tries++) {
                char path[] = "/tmp/ternctl-import-XXXXXX";
                _cleanup_(config_freep) Config *c = NULL;
                ConfigError error = {};
                _cleanup_fclose_ FILE *f = NULL;
                int fd, r;

                fd = mkostemp(path, O_CLOEXEC);
                if (fd < 0)
                        return -errno;
                f = fdopen(fd, "w");
                if (!f) {
                        (void) close(fd);
                        (void) unlink(path);
                        return -ENOMEM;
                }
                import_write(im, f, false);
                r = fflush(f) == 0 ? config_load(path, NULL, &c, &error) : -EIO;
                (void) unlink(path);
                if (r >= 0)
                        return 0;
                if (r != -EINVAL || error.line == 0)
                        return r;
                /* Find the entry written on error.line: count lines as import_write does. */
                _cleanup_free_ char *text = NULL;
                size_t len = 0;
                FILE *m = open_memstream(&text, &len);
                if (!m)
                        return -ENOMEM;
                import_write(im, m, false);
                if (fclose(m) != 0)
                        return -ENOMEM;
                unsigned line = 1;
                const char *p = text;
                for (; *p && line < error.line; p++)
                        if (*p == '\n')
                                line++;
                size_t klen = strcspn(p, " =");
                bool dropped = false;
                for (size_t i = 0; i < im->n && !dropped; i++) {
                        ImportEntry *e = &im->entries[i];

                        if (strlen(e->key) != klen || strncmp(e->key, p, klen) != 0)
                                continue;
                        const char *name = e->from ? strrchr(e->from, ' ') : NULL;
                        import_skip(im, name ? name + 1 : e->key, "tern refuses the value: %s",
                                    error.message);
                        free(e->value);
                        free(e->from);
                        memmove(e, e + 1, (im->n - i - 1) * sizeof(*e));
                        im->n--;
                        dropped = true;
                }
                if (!dropped)
                        return r;
        }
        return -ELOOP;
}

static void import_done(Import *im) {
        for (size_t i = 0; i < im->n; i++) {
                free(im->entries[i].value);
                free(im->entries[i].from);
        }
        for (size_t i = 0; i < im->n_skipped; i++)
                free(im->skipped[i]);
        free(im->skipped);
        for (size_t i = 0; i < im->n_handled; i++)
                free(im->handled[i]);
        free(im->handled);
}

static int read_file(const char *path, char **ret, size_t *ret_len) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        _cleanup_free_ char *buf = NULL;
        size_t n;

        if (!f)
                return -errno;
        buf = malloc(POSTFIX_FILE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        n = fread(buf, 1, POSTFIX_FILE_MAX + 1, f);
        if (ferror(f))
                return -EIO;
        if (n > POSTFIX_FILE_MAX)
                return -EFBIG;
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = n;
        return 0;
}

int verb_import_postfix(const char *config_path, int argc, char **argv) {
        static const struct option options[] = {
                { "output", required_argument, NULL, 'o' },
                {}
        };
        const char *in = "/etc/postfix/main.cf", *out = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        PostfixConf pf = {};
        Import im = {};
        unsigned line = 0;
        size_t len = 0;
        int c, r;

        while ((c = getopt_long(argc, argv, "o:", options, NULL)) >= 0)
                switch (c) {
                case 'o':
                        out = optarg;
                        break;
                default:
                        return TERNCTL_EXIT_USAGE;
                }
        if (optind < argc)
                in = argv[optind++];
        if (optind < argc)
                return ternctl_usage_error("unexpected argument \"%s\"", argv[optind]);

        r = read_file(in, &text, &len);
        if (r < 0) {
                fprintf(stderr, "ternctl: cannot read \"%s\": %s\n", in, strerror(-r));
                return EXIT_FAILURE;
        }
        r = postfix_conf_parse(text, len, &pf, &line);
        if (r < 0) {
                fprintf(stderr, "ternctl: %s:%u: not a main.cf line\n", in, line);
                return EXIT_FAILURE;
        }
        im.pf = &pf;
        im.path = in;
        import_all(&im);
        r = import_validate(&im);
        if (r < 0) {
                fprintf(stderr, "ternctl: the translation does not load: %s\n", strerror(-r));
                import_done(&im);
                postfix_conf_done(&pf);
                return EXIT_FAILURE;
        }
        if (out) {
                f = fopen(out, "wxe");
                if (!f) {
                        fprintf(stderr, "ternctl: cannot create \"%s\": %s\n", out, strerror(errno));
                        import_done(&im);
                        postfix_conf_done(&pf);
                        return EXIT_FAILURE;
                }
        }
        import_write(&im, f ?: stdout, true);
        r = fflush(f ?: stdout) == 0 ? 0 : -EIO;
        for (size_t i = 0; i < im.n_skipped; i++)
                fprintf(stderr, "not translated: %s\n", im.skipped[i]);
        import_done(&im);
        postfix_conf_done(&pf);
        (void) config_path;
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
