/* `ternctl check`, like `postfix check`: everything a daemon would trip over
 * later, found now, each problem named by the file and line that set the key
 * (or "default"). Run it before `systemctl reload tern.target`. */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pwd.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "check.h"
#include "config.h"
#include "table.h"
#include "ternctl.h"

typedef struct Check {
        const Config *config;
        const char *config_path;
        unsigned errors;
        unsigned warnings;
} Check;

static void check_report(Check *k, bool error, const char *section, const char *key,
                         const char *fmt, ...) _printf_(5, 6);
static void check_report(Check *k, bool error, const char *section, const char *key,
                         const char *fmt, ...) {
        ConfigSource src = {};
        va_list ap;

        if (config_key_source(k->config, section, key, &src) >= 0 && src.file)
                fprintf(stderr, "%s:%u: ", src.file, src.line);
        else
                fprintf(stderr, "%s: (default) ", k->config_path);
        fprintf(stderr, "%s%s.%s: ", error ? "" : "warning: ", section, key);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        if (error)
                k->errors++;
        else
                k->warnings++;
}

static bool check_set_explicitly(const Check *k, const char *section, const char *key) {
        ConfigSource src = {};

        return config_key_source(k->config, section, key, &src) >= 0 && src.file;
}

/* A table's source, its .cdb next to it, and that the .cdb is current. */
static void check_table(Check *k, const char *section, const char *key, const char *path,
                        const char *compile) {
        _cleanup_free_ char *cdb = NULL;
        _cleanup_(table_closep) Table *t = NULL;
        struct stat src, bin;
        int r;

        if (isempty(path))
                return;
        if (stat(path, &src) < 0) {
                /* A default that the administrator never set (AliasFile=/etc/aliases
                 * on a machine without one) is simply not used. */
                if (errno == ENOENT && !check_set_explicitly(k, section, key))
                        return;
                check_report(k, true, section, key, "table source \"%s\": %s", path, strerror(errno));
                return;
        }
        if (asprintf(&cdb, "%s.cdb", path) < 0) {
                cdb = NULL;
                check_report(k, true, section, key, "out of memory");
                return;
        }
        if (stat(cdb, &bin) < 0) {
                /* A default source that exists but was never compiled (an
                 * /etc/aliases left by another MTA) is worth a warning only. */
                check_report(k, check_set_explicitly(k, section, key), section, key,
                             "\"%s\" is not compiled (%s): run %s %s", path, strerror(errno), compile,
                             path);
                return;
        }
        if (bin.st_mtim.tv_sec < src.st_mtim.tv_sec ||
            (bin.st_mtim.tv_sec == src.st_mtim.tv_sec && bin.st_mtim.tv_nsec < src.st_mtim.tv_nsec)) {
                check_report(k, true, section, key, "\"%s\" is older than its source: run %s %s", cdb,
                             compile, path);
                return;
        }
        r = table_open(path, &t);
        if (r < 0)
                check_report(k, true, section, key, "\"%s\" cannot be read as a table: %s", cdb,
                             strerror(-r));
}

static void check_tables(Check *k) {
        const Config *c = k->config;
        static const char map[] = "ternctl map";

        check_table(k, "SMTP", "ClientAccess", c->client_access, map);
        check_table(k, "SMTP", "HeloAccess", c->helo_access, map);
        check_table(k, "SMTP", "SenderAccess", c->sender_access, map);
        check_table(k, "SMTP", "RecipientAccess", c->recipient_access, map);
        if (streq_ptr(c->auth_backend, "table"))
                check_table(k, "Auth", "PasswordTable", c->auth_password_table, map);
        check_table(k, "Auth", "SenderLoginMap", c->auth_sender_login_map, map);
        check_table(k, "Delivery", "TransportTable", c->transport_table, map);
        check_table(k, "Delivery", "TLSPolicyTable", c->smtp_tls_policy_table, map);
        check_table(k, "Delivery", "RelayPasswordTable", c->smtp_password_table, map);
        check_table(k, "Local", "AliasFile", c->alias_file, "ternctl map --aliases");
        check_table(k, "Virtual", "AliasMap", c->virtual_alias_map, map);
        check_table(k, "Virtual", "MailboxMap", c->virtual_mailbox_map, map);
}

static const char *check_ssl_error(char *buf, size_t size) {
        unsigned long e = ERR_get_error();

        if (e == 0)
                return "unknown error";
        ERR_error_string_n(e, buf, size);
        ERR_clear_error();
        return buf;
}

static bool check_readable(Check *k, const char *section, const char *key, const char *path) {
        FILE *f = fopen(path, "re");

        if (!f) {
                check_report(k, true, section, key, "\"%s\": %s", path, strerror(errno));
                return false;
        }
        fclose(f);
        return true;
}

static void check_tls(Check *k) {
        const Config *c = k->config;
        SSL_CTX *ctx;
        char buf[256];

        if (!isempty(c->smtp_tls_ca_file))
                (void) check_readable(k, "Delivery", "TLSCAFile", c->smtp_tls_ca_file);
        if (isempty(c->tls_certificate_file)) {
                if (!isempty(c->tls_key_file))
                        check_report(k, false, "TLS", "KeyFile", "set without CertificateFile, ignored");
                if (streq_ptr(c->tls_security_level, "encrypt"))
                        check_report(k, true, "TLS", "SecurityLevel",
                                     "encrypt needs CertificateFile (clients could never send mail)");
                return;
        }
        if (isempty(c->tls_key_file)) {
                check_report(k, true, "TLS", "KeyFile", "CertificateFile is set, KeyFile is not");
                return;
        }
        if (!check_readable(k, "TLS", "CertificateFile", c->tls_certificate_file) ||
            !check_readable(k, "TLS", "KeyFile", c->tls_key_file))
                return;
        ctx = SSL_CTX_new(TLS_server_method());
        if (!ctx) {
                check_report(k, true, "TLS", "CertificateFile", "cannot set up OpenSSL");
                return;
        }
        if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_certificate_file) != 1)
                check_report(k, true, "TLS", "CertificateFile", "\"%s\" is not a PEM certificate chain: %s",
                              c->tls_certificate_file, check_ssl_error(buf, sizeof(buf)));
        else if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key_file, SSL_FILETYPE_PEM) != 1)
                check_report(k, true, "TLS", "KeyFile", "\"%s\" is not a PEM private key matching %s: %s",
                             c->tls_key_file, c->tls_certificate_file, check_ssl_error(buf, sizeof(buf)));
        else if (SSL_CTX_check_private_key(ctx) != 1)
                check_report(k, true, "TLS", "KeyFile", "\"%s\" does not match the certificate in %s",
                             c->tls_key_file, c->tls_certificate_file);
        else {
                X509 *x = SSL_CTX_get0_certificate(ctx);

                if (x && X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
                        check_report(k, false, "TLS", "CertificateFile", "the certificate in \"%s\" has expired",
                                     c->tls_certificate_file);
        }
        SSL_CTX_free(ctx);
}

static void check_user(Check *k, const char *section, const char *key, const char *user) {
        if (!isempty(user) && !getpwnam(user))
                check_report(k, false, section, key, "user \"%s\" does not exist on this machine", user);
}

int verb_check(const char *config_path, int argc, char **argv) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *dropin = NULL;
        ConfigError error = {};
        char buf[700];
        Check k = { .config_path = config_path };
        struct stat st;
        int r;

        if (argc > 1)
                return ternctl_usage_error("unexpected argument \"%s\"", argv[1]);
        if (asprintf(&dropin, "%s.d", config_path) < 0)
                return EXIT_FAILURE;
        r = config_load(config_path, dropin, &c, &error);
        if (r < 0) {
                fprintf(stderr, "ternctl: %s\n", config_error_string(&error, buf, sizeof(buf)));
                return EXIT_FAILURE;
        }
        k.config = c;
        check_tables(&k);
        check_tls(&k);
        check_user(&k, "Server", "SmtpdUser", c->smtpd_user);
        check_user(&k, "Server", "QueueUser", c->queue_user);
        if (c->virtual_mailbox_domains && c->virtual_mailbox_domains[0])
                check_user(&k, "Virtual", "MailboxUser", c->virtual_mailbox_user);
        if (stat(c->spool_directory, &st) < 0 || !S_ISDIR(st.st_mode))
                check_report(&k, false, "Queue", "SpoolDirectory", "\"%s\" is not a directory",
                             c->spool_directory);
        if (k.errors > 0)
                fprintf(stderr, "ternctl: %u error%s, %u warning%s\n", k.errors, k.errors == 1 ? "" : "s",
                        k.warnings, k.warnings == 1 ? "" : "s");
        return k.errors > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
