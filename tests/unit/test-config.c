/* Unit test of common/config.c: defaults, drop-in order and list semantics,
 * derived values, every error message with its file:line, time spans, sizes,
 * and that config_dump's output loads back to the same configuration. */
#include <fcntl.h>
#include <sys/stat.h>

#include "config.h"
#include "tap.h"

static char dir[64];
static char conf[128], dropins[128];

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0)
                abort();
}

static void dropin(const char *name, const char *text) {
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", dropins, name);
        write_file(path, text);
}

static void clean(void) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'/*", dir);
        if (system(cmd) != 0)
                abort();
        if (mkdir(dropins, 0755) < 0)
                abort();
}

/* Loads text as tern.conf (no drop-ins unless written before) and returns the
 * error string, or "" on success with *ret set. */
static const char *load(const char *text, Config **ret) {
        static char buf[1024];
        ConfigError e = {};
        Config *c = NULL;
        int r;

        if (text)
                write_file(conf, text);
        r = config_load(conf, dropins, &c, &e);
        if (r < 0)
                return config_error_string(&e, buf, sizeof(buf));
        if (ret)
                *ret = c;
        else
                config_free(c);
        return "";
}

/* The error of a one-file configuration, with the temp dir replaced by "T". */
static const char *load_error(const char *text) {
        static char out[1024];
        const char *s = load(text, NULL);
        size_t n = strlen(dir);

        if (strncmp(s, dir, n) == 0)
                snprintf(out, sizeof(out), "T%s", s + n);
        else
                snprintf(out, sizeof(out), "%s", s);
        return out;
}

static void test_defaults(void) {
        _cleanup_(config_freep) Config *c = NULL;

        CHECK_INT(config_new_default(&c), 0);
        CHECK(!isempty(c->hostname));
        CHECK_INT(strv_length(c->local_domains), 3);
        CHECK_STREQ(c->local_domains[0], c->hostname); /* $hostname expanded */
        CHECK_STREQ(c->local_domains[1], "localhost");
        CHECK_STREQ(c->local_domains[2], "localhost.localdomain");
        CHECK_INT(c->trusted_networks.n, 2);
        CHECK_INT(c->trusted_networks.items[0].family, AF_INET);
        CHECK_INT(c->trusted_networks.items[0].prefixlen, 8);
        CHECK_INT(c->trusted_networks.items[1].family, AF_INET6);
        CHECK_INT(c->trusted_networks.items[1].prefixlen, 128);
        CHECK_STREQ(c->smtpd_user, "tern-smtpd");
        CHECK_STREQ(c->queue_user, "tern");
        CHECK_STREQ(c->spool_directory, "/var/spool/tern");
        CHECK_STREQ(c->queued_socket, "/run/tern/queued.sock");
        CHECK_STREQ(c->deliverd_socket, "/run/tern/deliverd.sock");
        CHECK_INT(c->min_backoff_usec, 300ULL * 1000000);
        CHECK_INT(c->max_backoff_usec, 4000ULL * 1000000);
        CHECK_INT(c->max_queue_lifetime_usec, 5ULL * 86400 * 1000000);
        CHECK_INT(c->delivery_concurrency, 20);
        CHECK_STREQ(c->banner, "ESMTP tern");
        CHECK_INT(c->message_size_limit, 10240000);
        CHECK_INT(c->recipient_limit, 1000);
        CHECK_INT(c->hard_error_limit, 20);
        CHECK_INT(c->timeout_usec, 300ULL * 1000000);
        CHECK_INT(c->session_timeout_usec, 3600ULL * 1000000);
        CHECK_STREQ(c->relay_host, "");
        CHECK_INT(c->smtp_connect_timeout_usec, 30ULL * 1000000);
        CHECK_INT(c->smtp_reply_timeout_usec, 300ULL * 1000000);
        CHECK_INT(c->mailbox_format, MAILBOX_MAILDIR);
        CHECK_STREQ(c->mailbox_path, "~/Maildir/");
        CHECK_INT(c->local_delivery_timeout_usec, 1000ULL * 1000000);

        CHECK(config_is_local_domain(c, "localhost"));
        CHECK(config_is_local_domain(c, "LocalHost."));
        CHECK(config_is_local_domain(c, c->hostname));
        CHECK(!config_is_local_domain(c, "example.org"));
        CHECK(!config_is_local_domain(c, "host"));
        CHECK(!config_is_local_domain(c, ""));
        CHECK(!config_is_local_domain(c, NULL));
}

static void test_missing_and_empty_files(void) {
        Config *c = NULL;
        char path[256];

        /* Neither the file nor the drop-in directory exists. */
        snprintf(path, sizeof(path), "%s/none.conf", dir);
        ConfigError e = {};
        CHECK_INT(config_load(path, "/nonexistent/tern.conf.d", &c, &e), 0);
        CHECK(c && c->recipient_limit == 1000);
        c = config_free(c);

        /* An empty file and an empty drop-in directory. */
        CHECK_STREQ(load("", &c), "");
        CHECK(c && c->recipient_limit == 1000 && c->trusted_networks.n == 2);
        c = config_free(c);

        /* Only comments, blank lines and whitespace. */
        CHECK_STREQ(load("# comment\n; other comment\n\n   \n\t# indented\n[SMTP]\n", &c), "");
        CHECK(c && c->recipient_limit == 1000);
        c = config_free(c);
}

static void test_syntax(void) {
        Config *c = NULL;

        CHECK_STREQ(load("  [SMTP]  \r\n"
                         "RecipientLimit=5\r\n"
                         "\tHardErrorLimit   =   7   \n"
                         "Banner = ESMTP \\\n"
                         "# a comment inside a continued line is skipped\n"
                         "    mail service\n"
                         "[Local]\n"
                         "MailboxPath = /srv/mail/%u/\n"
                         "[Delivery]\n"
                         "RelayHost = [relay.example.org]:587", /* no final newline */
                         &c), "");
        CHECK_INT(c->recipient_limit, 5);
        CHECK_INT(c->hard_error_limit, 7);
        CHECK_STREQ(c->banner, "ESMTP  mail service");
        CHECK_STREQ(c->mailbox_path, "/srv/mail/%u/");
        CHECK_STREQ(c->relay_host, "[relay.example.org]:587");
        c = config_free(c);

        /* A backslash on the last line simply ends it. */
        CHECK_STREQ(load("[SMTP]\nBanner = x \\", &c), "");
        CHECK_STREQ(c->banner, "x");
        c = config_free(c);

        /* Later assignments win; empty strings where they mean something. */
        CHECK_STREQ(load("[SMTP]\nRecipientLimit = 5\nRecipientLimit = 6\nBanner =\n"
                         "[Delivery]\nRelayHost = a.example\nRelayHost =\n", &c), "");
        CHECK_INT(c->recipient_limit, 6);
        CHECK_STREQ(c->banner, "");
        CHECK_STREQ(c->relay_host, "");
        c = config_free(c);

        /* An empty path or user puts the default back. */
        CHECK_STREQ(load("[Queue]\nSpoolDirectory = /srv/spool\nSpoolDirectory =\n"
                         "[Server]\nQueueUser = mail\nQueueUser = \n", &c), "");
        CHECK_STREQ(c->spool_directory, "/var/spool/tern");
        CHECK_STREQ(c->queue_user, "tern");
        c = config_free(c);
}

static void test_dropins(void) {
        _cleanup_(config_freep) Config *c = NULL;
        char want[512];

        write_file(conf, "[SMTP]\nRecipientLimit = 5\nHardErrorLimit = 3\n"
                         "[Queue]\nDeliveryConcurrency = 2\n");
        dropin("20-b.conf", "[SMTP]\n\nRecipientLimit = 20\n");
        dropin("10-a.conf", "[SMTP]\nRecipientLimit = 10\nHardErrorLimit = 4\n");
        dropin("30-c.conf.disabled", "[SMTP]\nRecipientLimit = 30\n");
        dropin(".40-hidden.conf", "[SMTP]\nRecipientLimit = 40\n");
        dropin("README", "not a configuration file\n");
        CHECK_STREQ(load(NULL, &c), "");
        CHECK_INT(c->recipient_limit, 20);
        CHECK_INT(c->hard_error_limit, 4);
        CHECK_INT(c->delivery_concurrency, 2);

        /* config_dump names where each value came from. */
        char *out = NULL;
        size_t outlen = 0;
        FILE *f = open_memstream(&out, &outlen);
        CHECK_INT(config_dump(c, f), 0);
        fclose(f);
        snprintf(want, sizeof(want), "RecipientLimit = 20\n# %s/20-b.conf:3\n", dropins);
        CHECK(strstr(out, want) != NULL);
        snprintf(want, sizeof(want), "HardErrorLimit = 4\n# %s/10-a.conf:3\n", dropins);
        CHECK(strstr(out, want) != NULL);
        snprintf(want, sizeof(want), "DeliveryConcurrency = 2\n# %s:5\n", conf);
        CHECK(strstr(out, want) != NULL);
        CHECK(strstr(out, "[SMTP]\nBanner = ESMTP tern\n# default\n") != NULL);
        free(out);

        /* A drop-in directory that is a file. */
        ConfigError e = {};
        Config *c2 = NULL;
        CHECK_INT(config_load(conf, conf, &c2, &e), -ENOTDIR);
        CHECK(c2 == NULL);
        CHECK_STREQ(e.file, conf);
        CHECK(strncmp(e.message, "cannot open drop-in directory: ", 31) == 0);

        /* No drop-in directory given: path + ".d". */
        CHECK_INT(config_load(conf, NULL, &c2, &e), 0);
        CHECK_INT(c2->recipient_limit, 20);
        c2 = config_free(c2);
}

static void test_lists(void) {
        Config *c = NULL;

        /* The first assignment replaces the default, later ones add. */
        CHECK_STREQ(load("[Server]\nLocalDomains = Example.ORG. mail.example.org\n"
                         "LocalDomains = $hostname\n"
                         "TrustedNetworks = 10.0.0.0/8, 192.0.2.1\nTrustedNetworks = [2001:db8::]/32\n"
                         "Hostname = mx.example.net\n", &c), "");
        CHECK_INT(strv_length(c->local_domains), 3);
        CHECK_STREQ(c->local_domains[0], "example.org");
        CHECK_STREQ(c->local_domains[1], "mail.example.org");
        CHECK_STREQ(c->local_domains[2], "mx.example.net"); /* Hostname set later */
        CHECK(config_is_local_domain(c, "EXAMPLE.org"));
        CHECK(!config_is_local_domain(c, "localhost"));
        CHECK_INT(c->trusted_networks.n, 3);
        CHECK_INT(c->trusted_networks.items[1].prefixlen, 32);
        CHECK_INT(c->trusted_networks.items[2].family, AF_INET6);
        c = config_free(c);

        /* An empty assignment empties the list, also across files. */
        write_file(conf, "[Server]\nTrustedNetworks = 10.0.0.0/8\n");
        dropin("50-x.conf", "[Server]\nTrustedNetworks =\nTrustedNetworks = 172.16.0.0/12\n"
                            "LocalDomains =\n");
        CHECK_STREQ(load(NULL, &c), "");
        CHECK_INT(c->trusted_networks.n, 1);
        CHECK_INT(c->trusted_networks.items[0].prefixlen, 12);
        CHECK_INT(strv_length(c->local_domains), 0);
        CHECK(!config_is_local_domain(c, "localhost"));
        c = config_free(c);
}

static void test_mailbox(void) {
        Config *c = NULL;

        CHECK_STREQ(load("[Local]\nMailboxFormat = mbox\n", &c), "");
        CHECK_INT(c->mailbox_format, MAILBOX_MBOX);
        CHECK_STREQ(c->mailbox_path, "/var/mail/%u");
        c = config_free(c);

        CHECK_STREQ(load("[Local]\nMailboxFormat = mbox\nMailboxPath = ~/mbox\n", &c), "");
        CHECK_STREQ(c->mailbox_path, "~/mbox");
        c = config_free(c);

        CHECK_STREQ(load("[Local]\nMailboxFormat = mbox\nMailboxFormat = maildir\n", &c), "");
        CHECK_STREQ(c->mailbox_path, "~/Maildir/");
        c = config_free(c);

        CHECK_INT(mailbox_format_from_string("maildir"), MAILBOX_MAILDIR);
        CHECK_INT(mailbox_format_from_string("mbox"), MAILBOX_MBOX);
        CHECK_INT(mailbox_format_from_string("Mbox"), -EINVAL);
        CHECK_INT(mailbox_format_from_string(NULL), -EINVAL);
        CHECK_STREQ(mailbox_format_to_string(MAILBOX_MBOX), "mbox");
        CHECK(mailbox_format_to_string(_MAILBOX_FORMAT_MAX) == NULL);
}

static void test_errors(void) {
        static const struct {
                const char *text, *error;
        } cases[] = {
                { "[SMTP]\nMessageSizeLimit = 10X\n",
                  "T/tern.conf:2: MessageSizeLimit: value \"10X\" is not a size (use bytes or K, M, G suffixes)" },
                { "[SMTP]\nMessageSizeLimit = 1G\n\nMessageSizeLimit = 3G\n",
                  "T/tern.conf:4: MessageSizeLimit: value \"3G\" is out of range (1024..2147483648)" },
                { "[SMTP]\nMessageSizeLimit = 99999999999999999999\n",
                  "T/tern.conf:2: MessageSizeLimit: value \"99999999999999999999\" is out of range (1024..2147483648)" },
                { "[SMTP]\nRecipientLimit = 0\n",
                  "T/tern.conf:2: RecipientLimit: value \"0\" is out of range (1..100000)" },
                { "[SMTP]\nRecipientLimit = -1\n",
                  "T/tern.conf:2: RecipientLimit: value \"-1\" is not a number" },
                { "[SMTP]\nRecipientLimit = 5 recipients\n",
                  "T/tern.conf:2: RecipientLimit: value \"5 recipients\" is not a number" },
                { "[SMTP]\nRecipientLimit =\n",
                  "T/tern.conf:2: RecipientLimit: value \"\" is not a number" },
                { "[Queue]\nDeliveryConcurrency = 1001\n",
                  "T/tern.conf:2: DeliveryConcurrency: value \"1001\" is out of range (1..1000)" },
                { "[SMTP]\nTimeout = 5 parsecs\n",
                  "T/tern.conf:2: Timeout: value \"5 parsecs\" is not a time span (use e.g. 500ms, 300s, 5min, 4h, 5d)" },
                { "[SMTP]\nTimeout = 2d\n",
                  "T/tern.conf:2: Timeout: value \"2d\" is out of range (1ms..1d)" },
                { "[SMTP]\nTimeout = 0\n",
                  "T/tern.conf:2: Timeout: value \"0\" is out of range (1ms..1d)" },
                { "[Queue]\nMinBackoff = 2h\n",
                  "T/tern.conf:2: MinBackoff: MaxBackoff (1h 6min 40s) is shorter than MinBackoff (2h)" },
                { "[Queue]\nMaxBackoff = 1min\n",
                  "T/tern.conf:2: MaxBackoff: MaxBackoff (1min) is shorter than MinBackoff (5min)" },
                { "[Server]\nTrustedNetworks = 127.0.0.0/8 10.0.0.0/33, ::1\n",
                  "T/tern.conf:2: TrustedNetworks: \"10.0.0.0/33\" is not a network in CIDR notation (e.g. 192.0.2.0/24 or [2001:db8::]/32)" },
                { "[Server]\nLocalDomains = example.org exa$mple.org\n",
                  "T/tern.conf:2: LocalDomains: \"exa$mple.org\" is not a domain name" },
                { "[Server]\nHostname = mx example.org\n",
                  "T/tern.conf:2: Hostname: value \"mx example.org\" is not a host name (letters, digits, '-' and '.')" },
                { "[Server]\nSmtpdUser = no body\n",
                  "T/tern.conf:2: SmtpdUser: value \"no body\" is not a valid user name" },
                { "[Queue]\nSpoolDirectory = var/spool/tern\n",
                  "T/tern.conf:2: SpoolDirectory: value \"var/spool/tern\" is not an absolute path" },
                { "[Local]\nMailboxPath = Maildir/\n",
                  "T/tern.conf:2: MailboxPath: value \"Maildir/\" is neither an absolute path nor below the home directory (~/...)" },
                { "[Local]\nMailboxFormat = mh\n",
                  "T/tern.conf:2: MailboxFormat: value \"mh\" is not a mailbox format (use maildir or mbox)" },
                { "[SMTP]\nBanner = a\tb\n",
                  "T/tern.conf:2: Banner: value \"a?b\" contains control characters" },
                { "[SMTP]\nNoSuchKey = 1\n",
                  "T/tern.conf:2: NoSuchKey: unknown key in section [SMTP] (see docs/configuration.md)" },
                { "[SMTP]\nrecipient_limit = 5\n",
                  "T/tern.conf:2: recipient_limit: unknown key in section [SMTP], did you mean RecipientLimit?" },
                { "[Server]\nRecipientLimit = 5\n",
                  "T/tern.conf:2: RecipientLimit: unknown key in section [Server], RecipientLimit belongs in [SMTP]" },
                { "[Smtp]\n",
                  "T/tern.conf:1: unknown section [Smtp] (known: [Server], [Queue], [SMTP], [Delivery], [Local])" },
                { "[SMTP]\nRecipientLimit = 5\n[Local]\n[SMTP]\n",
                  "T/tern.conf:4: section [SMTP] appears twice in this file, merge the two" },
                { "[SMTP\n",
                  "T/tern.conf:1: bad section header \"[SMTP\" (expected e.g. [Server])" },
                { "[]\n",
                  "T/tern.conf:1: bad section header \"[]\" (expected e.g. [Server])" },
                { "RecipientLimit = 5\n",
                  "T/tern.conf:1: RecipientLimit: assignment before the first [Section] header" },
                { "[SMTP]\n# comment\nRecipientLimit 5\n",
                  "T/tern.conf:3: expected \"Key = value\" or \"[Section]\", got \"RecipientLimit 5\"" },
                { "[SMTP]\n = 5\n",
                  "T/tern.conf:2: assignment without a key name" },
                { "[SMTP]\nRecipientLimit = \\\n  5 \\\n  6\nBanner = x\x01y\n",
                  "T/tern.conf:2: RecipientLimit: value \"5  6\" is not a number" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *got = load_error(cases[i].text);
                if (strcmp(got, cases[i].error) != 0)
                        fprintf(stderr, "case %zu:\n", i);
                CHECK_STREQ(got, cases[i].error);
        }

        /* Errors in a drop-in name the drop-in; earlier files were fine. */
        write_file(conf, "[SMTP]\nRecipientLimit = 5\n");
        dropin("10-ok.conf", "[SMTP]\nHardErrorLimit = 5\n");
        dropin("20-bad.conf", "\n\n[Server]\nNoSuchKey = 1\n");
        CHECK_STREQ(load_error(NULL),
                    "T/tern.conf.d/20-bad.conf:4: NoSuchKey: unknown key in section [Server] (see docs/configuration.md)");
        clean();

        /* Control characters in the file itself. */
        char nul[] = "[SMTP]\nBanner = a\0b\n";
        int fd = open(conf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        CHECK(fd >= 0 && write(fd, nul, sizeof(nul) - 1) == (ssize_t) sizeof(nul) - 1);
        close(fd);
        CHECK_STREQ(load_error(NULL), "T/tern.conf: file contains a NUL byte");
        CHECK_STREQ(load_error("[SMTP]\nBanner = a\x1b[31m\n"),
                    "T/tern.conf:2: Banner: value \"a?[31m\" contains control characters");

        /* A long value is cut in the message. */
        char text[512] = "[SMTP]\nBanner = ";
        size_t tl = strlen(text);
        memset(text + tl, 'x', 300);
        memcpy(text + tl + 300, "\x7f\n", 3);
        CHECK_STREQ(load_error(text),
                    "T/tern.conf:2: Banner: value \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\" contains control characters");

        /* Line and file size bounds. */
        static char big[2 * 1024 * 1024];
        memset(big, '#', 5000);
        big[5000] = 0;
        CHECK_STREQ(load_error(big), "T/tern.conf:1: line is longer than 4096 bytes");

        memcpy(big, "[SMTP]\nBanner = ", 16);
        size_t pos = 16;
        for (int i = 0; i < 3; i++) {
                memset(big + pos, 'x', 2000);
                pos += 2000;
                memcpy(big + pos, "\\\n", 2);
                pos += 2;
        }
        big[pos] = 0;
        CHECK_STREQ(load_error(big), "T/tern.conf:2: continued line is longer than 4096 bytes");

        memset(big, '\n', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        CHECK_STREQ(load_error(big), "T/tern.conf: file is larger than 1048576 bytes");
        Config *c = NULL;
        big[1024 * 1024] = 0; /* exactly the limit is fine */
        CHECK_STREQ(load(big, &c), "");
        c = config_free(c);

        /* The configuration file is a directory. */
        ConfigError e = {};
        CHECK_INT(config_load(dir, dropins, &c, &e), -EINVAL);
        CHECK_STREQ(e.message, "not a regular file");
        CHECK_STREQ(e.file, dir);
        CHECK_INT(e.line, 0);

        /* config_error_string without file, line or key. */
        char buf[256];
        ConfigError e2 = { .key = "Key", .message = "message" };
        CHECK_STREQ(config_error_string(&e2, buf, sizeof(buf)), "Key: message");
        ConfigError e3 = { .file = "f", .message = "m" };
        CHECK_STREQ(config_error_string(&e3, buf, sizeof(buf)), "f: m");
        ConfigError e4 = { .file = "f", .line = 3, .key = "K", .message = "m" };
        CHECK_STREQ(config_error_string(&e4, buf, 6), "f:3: ");
}

static void test_timespan(void) {
        static const struct {
                const char *in;
                uint64_t usec;
        } good[] = {
                { "300", 300000000ULL },
                { "300s", 300000000ULL },
                { "5d", 5ULL * 86400000000ULL },
                { "4h", 4ULL * 3600000000ULL },
                { "1h 30min", 5400000000ULL },
                { "1h30min", 5400000000ULL },
                { " 1 h  30 m ", 5400000000ULL },
                { "500ms", 500000ULL },
                { "2w", 14ULL * 86400000000ULL },
                { "1s 500ms", 1500000ULL },
                { "10us", 10ULL },
                { "1 usec", 1ULL },
                { "2 minutes 1 second", 121000000ULL },
                { "1 day 2 hours", 93600000000ULL },
                { "3 weeks", 21ULL * 86400000000ULL },
                { "1hr", 3600000000ULL },
                { "0", 0ULL },
                { "1h 30", 3630000000ULL },
        };
        static const char *const bad[] = {
                "", "   ", "s", "5x", "1.5h", "-1s", "+1s", "5M", "1h,30min", "5 s s", "1y",
        };

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                uint64_t v = 1;
                CHECK_INT(config_parse_timespan(good[i].in, &v), 0);
                CHECK_INT(v, good[i].usec);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                uint64_t v = 7;
                int r = config_parse_timespan(bad[i], &v);
                if (r != -EINVAL)
                        fprintf(stderr, "accepted \"%s\"\n", bad[i]);
                CHECK_INT(r, -EINVAL);
                CHECK_INT(v, 7);
        }
        uint64_t v;
        CHECK_INT(config_parse_timespan("18446744073709551616", &v), -ERANGE);
        CHECK_INT(config_parse_timespan("100000000000000w", &v), -ERANGE);
        CHECK_INT(config_parse_timespan("18446744073709551615us 1us", &v), -ERANGE);
        CHECK_INT(config_parse_timespan("18446744073709551615us", &v), 0);
        CHECK_INT(config_parse_timespan(NULL, &v), -EINVAL);
}

static void test_size(void) {
        static const struct {
                const char *in;
                uint64_t bytes;
        } good[] = {
                { "10240000", 10240000ULL }, { "10M", 10485760ULL }, { "512K", 524288ULL },
                { "1G", 1073741824ULL },     { "2T", 2199023255552ULL }, { "1k", 1024ULL },
                { "0", 0ULL },               { "10 M", 10485760ULL },
        };
        static const char *const bad[] = { "", "M", "10X", "10MB", "-1", "1.5M", " 10", "10M ",
                                           "0x10", "10 ", "1e6" };

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                uint64_t v = 1;
                CHECK_INT(config_parse_size(good[i].in, &v), 0);
                CHECK_INT(v, good[i].bytes);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                uint64_t v = 7;
                int r = config_parse_size(bad[i], &v);
                if (r != -EINVAL)
                        fprintf(stderr, "accepted \"%s\"\n", bad[i]);
                CHECK_INT(r, -EINVAL);
                CHECK_INT(v, 7);
        }
        uint64_t v;
        CHECK_INT(config_parse_size("18446744073709551616", &v), -ERANGE);
        CHECK_INT(config_parse_size("17179869184G", &v), -ERANGE);
        CHECK_INT(config_parse_size("17179869183G", &v), 0);
        CHECK_INT(config_parse_size(NULL, &v), -EINVAL);
}

/* What config_dump prints, without the source comments. */
static char *dump_values(const Config *c) {
        char *out = NULL, *w;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);

        CHECK_INT(config_dump(c, f), 0);
        fclose(f);
        w = out;
        for (char *line = out, *nl; *line; line = nl + 1) {
                nl = strchr(line, '\n');
                if (!nl)
                        break;
                if (line[0] != '#') {
                        memmove(w, line, (size_t) (nl - line) + 1);
                        w += nl - line + 1;
                }
        }
        *w = 0;
        return out;
}

static void test_dump_round_trip(void) {
        Config *c = NULL, *c2 = NULL;
        char *a, *b, *full = NULL;
        size_t len = 0;

        CHECK_STREQ(load("[Server]\nHostname = mx.example.org\nTrustedNetworks =\n"
                         "TrustedNetworks = 10.0.0.0/8 [2001:db8::]/32\nLocalDomains = a.example\n"
                         "[Queue]\nMinBackoff = 90s\nMaxQueueLifetime = 1d 12h 500ms\n"
                         "[SMTP]\nMessageSizeLimit = 20M\nBanner = ESMTP  ready\n"
                         "[Delivery]\nRelayHost = [smarthost]:587\n"
                         "[Local]\nMailboxFormat = mbox\n",
                         &c), "");
        FILE *f = open_memstream(&full, &len);
        CHECK_INT(config_dump(c, f), 0);
        fclose(f);
        clean();
        CHECK_STREQ(load(full, &c2), "");
        a = dump_values(c);
        b = dump_values(c2);
        CHECK_STREQ(a, b);
        CHECK(strstr(a, "TrustedNetworks = 10.0.0.0/8 [2001:db8::]/32\n") != NULL);
        CHECK(strstr(a, "MinBackoff = 1min 30s\n") != NULL);
        CHECK(strstr(a, "MaxQueueLifetime = 1d 12h 500ms\n") != NULL);
        CHECK(strstr(a, "MessageSizeLimit = 20971520\n") != NULL);
        CHECK(strstr(a, "MailboxPath = /var/mail/%u\n") != NULL);
        CHECK(strstr(a, "\n[Delivery]\nRelayHost = [smarthost]:587\n") != NULL);
        free(a);
        free(b);
        free(full);
        config_free(c);
        config_free(c2);

        /* An empty list dumps as an empty assignment, which loads back empty. */
        CHECK_STREQ(load("[Server]\nTrustedNetworks =\nLocalDomains =\n", &c), "");
        a = dump_values(c);
        CHECK(strstr(a, "\nTrustedNetworks = \n") != NULL);
        CHECK(strstr(a, "\nLocalDomains = \n") != NULL);
        free(a);
        config_free(c);
}

/* conf/tern.conf lists every key with its default: uncommented, it loads to
 * exactly the defaults, with every value coming from the file. */
static void test_shipped_file(void) {
        Config *c = NULL, *d = NULL;
        char text[16384], *a, *b;
        size_t n = 0;
        FILE *f = fopen("../../conf/tern.conf", "re");

        CHECK(f != NULL);
        if (!f)
                return;
        for (char l[512]; fgets(l, sizeof(l), f);) {
                const char *p = l;
                /* "#Key = value" is a key; "# text" is a comment. */
                if (l[0] == '#' && l[1] >= 'A' && l[1] <= 'Z')
                        p = l + 1;
                n += (size_t) snprintf(text + n, sizeof(text) - n, "%s", p);
                CHECK(n < sizeof(text));
        }
        fclose(f);
        CHECK_STREQ(load(text, &c), "");
        CHECK_INT(config_new_default(&d), 0);
        a = dump_values(c);
        b = dump_values(d);
        CHECK_STREQ(a, b);
        free(a);
        free(b);

        char *out = NULL;
        size_t len = 0;
        f = open_memstream(&out, &len);
        CHECK_INT(config_dump(c, f), 0);
        fclose(f);
        CHECK(strstr(out, "# default") == NULL);
        free(out);
        config_free(c);
        config_free(d);
}

int main(void) {
        snprintf(dir, sizeof(dir), "/tmp/test-config-XXXXXX");
        if (!mkdtemp(dir))
                return EXIT_FAILURE;
        snprintf(conf, sizeof(conf), "%s/tern.conf", dir);
        snprintf(dropins, sizeof(dropins), "%s/tern.conf.d", dir);
        if (mkdir(dropins, 0755) < 0)
                return EXIT_FAILURE;

        test_defaults();
        test_missing_and_empty_files();
        clean();
        test_syntax();
        clean();
        test_dropins();
        clean();
        test_lists();
        clean();
        test_mailbox();
        clean();
        test_errors();
        clean();
        test_timespan();
        test_size();
        test_dump_round_trip();
        clean();
        test_shipped_file();

        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
        if (system(cmd) != 0)
                return EXIT_FAILURE;
        return tap_finish("test-config");
}
