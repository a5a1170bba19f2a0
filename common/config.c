/* tern.conf and tern.conf.d/\*.conf: a systemd-style INI reader driven by one
 * table that declares every key once (section, name, type, range, default,
 * description, Postfix equivalent). A bad line stops the load with file, line
 * and key, as Postfix refuses to start on a bad main.cf. */
#include <arpa/inet.h>
#include <assert.h>
#include <dirent.h>
#include <inttypes.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/stat.h>

#include "config.h"

#define CONFIG_LINE_MAX 4096             /* bytes of one (continued) line */
#define CONFIG_FILE_MAX (1024 * 1024)    /* bytes of one file */
#define CONFIG_DROPINS_MAX 1024          /* files in tern.conf.d */

#define USEC_PER_MSEC UINT64_C(1000)
#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MINUTE (60 * USEC_PER_SEC)
#define USEC_PER_HOUR (60 * USEC_PER_MINUTE)
#define USEC_PER_DAY (24 * USEC_PER_HOUR)
#define USEC_PER_WEEK (7 * USEC_PER_DAY)

typedef enum ConfigType {
        CONFIG_STRING,   /* free text without control characters */
        CONFIG_PATH,     /* absolute path */
        CONFIG_USER,     /* a user name */
        CONFIG_HOSTNAME, /* a domain name; empty: this machine's name */
        CONFIG_DOMAINS,  /* strv of domain names or "$hostname" */
        CONFIG_NETLIST,
        CONFIG_UINT64,
        CONFIG_SIZE,
        CONFIG_TIMESPAN,
        CONFIG_MAILBOX_FORMAT,
        CONFIG_MAILBOX_PATH, /* absolute or "~/..." with %u */
        CONFIG_PATH_OPT, /* absolute path, or empty: not set */
        CONFIG_CHOICE,   /* one of the words in .choices */
        CONFIG_BOOL,     /* yes/no, true/false, on/off, 1/0 */
} ConfigType;

typedef struct ConfigKey {
        const char *section;
        const char *name;
        ConfigType type;
        size_t offset;
        const char *default_text;
        uint64_t min, max; /* UINT64, SIZE, TIMESPAN (usec) */
        const char *description;
        const char *postfix; /* the closest Postfix main.cf parameter, or NULL */
        const char *choices; /* CONFIG_CHOICE: the allowed words, space-separated */
} ConfigKey;

#define K(sec, nm, t, field, def, lo, hi, desc, pf)                                      \
        { .section = sec, .name = nm, .type = t, .offset = offsetof(Config, field),      \
          .default_text = def, .min = lo, .max = hi, .description = desc, .postfix = pf }
#define KC(sec, nm, field, def, ch, desc, pf)                                             \
        { .section = sec, .name = nm, .type = CONFIG_CHOICE,                               \
          .offset = offsetof(Config, field), .default_text = def, .description = desc,     \
          .postfix = pf, .choices = ch }

/* The one declaration of every key. conf/tern.conf and docs/configuration.md
 * are written from it; keep them in step. */
static const ConfigKey config_keys[] = {
        K("Server", "Hostname", CONFIG_HOSTNAME, hostname, "", 0, 0,
          "Name used in the SMTP greeting, HELO and Received: lines; empty: this machine's "
          "fully-qualified name", "myhostname"),
        K("Server", "LocalDomains", CONFIG_DOMAINS, local_domains,
          "$hostname localhost localhost.localdomain", 0, 0,
          "Domains delivered to local users ($hostname is Hostname)", "mydestination"),
        K("Server", "TrustedNetworks", CONFIG_NETLIST, trusted_networks,
          "127.0.0.0/8 [::1]/128", 0, 0,
          "Clients allowed to relay to any domain", "mynetworks"),
        K("Server", "SmtpdUser", CONFIG_USER, smtpd_user, "tern-smtpd", 0, 0,
          "User the SMTP server runs as; the queue trusts envelope data from it", NULL),
        K("Server", "QueueUser", CONFIG_USER, queue_user, "tern", 0, 0,
          "User the queue manager runs as; owns the spool", "mail_owner"),
        K("Server", "DNSResolver", CONFIG_STRING, dns_resolver, "", 0, 0,
          "DNS server for MX, address and blocklist lookups, as IPv4 address or address:port; "
          "empty: the servers of /etc/resolv.conf", NULL),

        K("Queue", "SpoolDirectory", CONFIG_PATH, spool_directory, "/var/spool/tern", 0, 0,
          "Directory of queued messages", "queue_directory"),
        K("Queue", "QueuedSocket", CONFIG_PATH, queued_socket, "/run/tern/queued.sock", 0, 0,
          "Socket of the queue manager (submission by smtpd, sendmail and ternctl)", NULL),
        K("Queue", "DeliverdSocket", CONFIG_PATH, deliverd_socket, "/run/tern/deliverd.sock",
          0, 0, "Socket of the delivery agent", NULL),
        K("Queue", "MinBackoff", CONFIG_TIMESPAN, min_backoff_usec, "300s",
          USEC_PER_MSEC, 30 * USEC_PER_DAY,
          "Shortest wait before retrying a deferred message", "minimal_backoff_time"),
        K("Queue", "MaxBackoff", CONFIG_TIMESPAN, max_backoff_usec, "4000s",
          USEC_PER_MSEC, 30 * USEC_PER_DAY,
          "Longest wait between retries of a deferred message", "maximal_backoff_time"),
        K("Queue", "MaxQueueLifetime", CONFIG_TIMESPAN, max_queue_lifetime_usec, "5d",
          0, 365 * USEC_PER_DAY,
          "Age after which a message still deferred is bounced", "maximal_queue_lifetime"),
        K("Queue", "DeliveryConcurrency", CONFIG_UINT64, delivery_concurrency, "20", 1, 1000,
          "Deliveries in progress at the same time", "default_process_limit"),
        K("Queue", "DestinationConcurrency", CONFIG_UINT64, destination_concurrency, "20", 1,
          1000, "Deliveries in progress at the same time to one destination (domain or "
          "relay host)", "default_destination_concurrency_limit"),
        K("Queue", "DelayWarningTime", CONFIG_TIMESPAN, delay_warning_usec, "4h", 0,
          365 * USEC_PER_DAY,
          "Age at which the sender is told that a message is still deferred; 0: never",
          "delay_warning_time"),
        K("Queue", "BounceQueueLifetime", CONFIG_TIMESPAN, bounce_queue_lifetime_usec, "5d", 0,
          365 * USEC_PER_DAY, "Age after which an undeliverable bounce is given up",
          "bounce_queue_lifetime"),
        K("Queue", "HopCountLimit", CONFIG_UINT64, hop_count_limit, "50", 1, 1000,
          "Received: headers after which a message is bounced as a mail loop",
          "hopcount_limit"),

        K("SMTP", "Banner", CONFIG_STRING, banner, "ESMTP tern", 0, 0,
          "Greeting text after \"220 Hostname \"", "smtpd_banner"),
        K("SMTP", "MessageSizeLimit", CONFIG_SIZE, message_size_limit, "10240000",
          1024, UINT64_C(2) * 1024 * 1024 * 1024,
          "Largest message accepted, in bytes (K, M, G suffixes allowed)",
          "message_size_limit"),
        K("SMTP", "RecipientLimit", CONFIG_UINT64, recipient_limit, "1000", 1, 100000,
          "Most recipients accepted in one message", "smtpd_recipient_limit"),
        K("SMTP", "HardErrorLimit", CONFIG_UINT64, hard_error_limit, "20", 1, 1000,
          "Errors after which a client is disconnected", "smtpd_hard_error_limit"),
        K("SMTP", "Timeout", CONFIG_TIMESPAN, timeout_usec, "300s", USEC_PER_MSEC, USEC_PER_DAY,
          "Time a client has to send a command or a piece of data", "smtpd_timeout"),
        K("SMTP", "SessionTimeout", CONFIG_TIMESPAN, session_timeout_usec, "1h",
          USEC_PER_MSEC, 7 * USEC_PER_DAY, "Longest duration of one SMTP session", NULL),
        K("SMTP", "SessionRecipientLimit", CONFIG_UINT64, session_recipient_limit, "5000", 1,
          1000000, "Most recipients accepted in one SMTP session, all messages together", NULL),
        K("SMTP", "JunkCommandLimit", CONFIG_UINT64, junk_command_limit, "100", 1, 100000,
          "NOOP, RSET, VRFY and HELP commands after which a client is disconnected",
          "smtpd_junk_command_limit"),
        KC("SMTP", "BareLineEnding", bare_line_ending, "reject", "reject normalize",
           "A bare CR or LF in message data: reject the message (550 5.5.2) or normalize "
           "it to CRLF; never taken as an end of data", "smtpd_forbid_bare_newline"),
        K("SMTP", "PregreetWait", CONFIG_TIMESPAN, pregreet_wait_usec, "0", 0, 60 * USEC_PER_SEC,
          "Pause before the greeting during which a client that talks first is rejected; "
          "input pending when the greeting is sent is rejected even with 0",
          "postscreen_greet_wait"),
        K("SMTP", "ClientAccess", CONFIG_PATH_OPT, client_access, "", 0, 0,
          "Access table by client address or network (OK, REJECT, DEFER, or a reply)",
          "check_client_access"),
        K("SMTP", "HeloAccess", CONFIG_PATH_OPT, helo_access, "", 0, 0,
          "Access table by HELO/EHLO name", "check_helo_access"),
        K("SMTP", "SenderAccess", CONFIG_PATH_OPT, sender_access, "", 0, 0,
          "Access table by envelope sender address or domain", "check_sender_access"),
        K("SMTP", "RecipientAccess", CONFIG_PATH_OPT, recipient_access, "", 0, 0,
          "Access table by envelope recipient address or domain", "check_recipient_access"),
        K("SMTP", "DNSBlocklists", CONFIG_DOMAINS, dns_blocklists, "", 0, 0,
          "DNS blocklist zones queried with the client's IPv4 address; a listed client is "
          "refused at RCPT", "reject_rbl_client"),

        K("TLS", "CertificateFile", CONFIG_PATH_OPT, tls_certificate_file, "", 0, 0,
          "PEM certificate chain of the SMTP server; empty: no STARTTLS and no port 465",
          "smtpd_tls_cert_file"),
        K("TLS", "KeyFile", CONFIG_PATH_OPT, tls_key_file, "", 0, 0,
          "PEM private key of CertificateFile", "smtpd_tls_key_file"),
        KC("TLS", "SecurityLevel", tls_security_level, "may", "none may encrypt",
           "STARTTLS on port 25: none (not offered), may (offered), encrypt (required "
           "before MAIL)", "smtpd_tls_security_level"),

        KC("Auth", "Backend", auth_backend, "table", "none table dovecot",
           "Where AUTH PLAIN/LOGIN credentials are checked: a table of crypt(3) hashes "
           "(PasswordTable) or Dovecot's authentication socket", "smtpd_sasl_type"),
        K("Auth", "PasswordTable", CONFIG_PATH_OPT, auth_password_table, "/etc/tern/passwd",
          0, 0, "Table of \"user crypt-hash\" lines, compiled with ternctl map", NULL),
        K("Auth", "DovecotSocket", CONFIG_PATH, auth_dovecot_socket, "/run/dovecot/auth-client",
          0, 0, "Dovecot's authentication client socket", "smtpd_sasl_path"),
        K("Auth", "SenderLoginMap", CONFIG_PATH_OPT, auth_sender_login_map, "", 0, 0,
          "Table of envelope sender -> logins allowed to use it; empty: any sender",
          "smtpd_sender_login_maps"),
        K("Auth", "FailureLimit", CONFIG_UINT64, auth_failure_limit, "3", 1, 100,
          "Failed AUTH attempts after which a client is disconnected", NULL),

        K("Delivery", "RelayHost", CONFIG_STRING, relay_host, "", 0, 0,
          "Send all remote mail via this host (\"[host]:port\" skips the MX lookup); "
          "empty: to the MX of each recipient domain", "relayhost"),
        K("Delivery", "ConnectTimeout", CONFIG_TIMESPAN, smtp_connect_timeout_usec, "30s",
          USEC_PER_MSEC, USEC_PER_DAY,
          "Time to establish a connection to a remote server", "smtp_connect_timeout"),
        K("Delivery", "ReplyTimeout", CONFIG_TIMESPAN, smtp_reply_timeout_usec, "300s",
          USEC_PER_MSEC, USEC_PER_DAY,
          "Time a remote server has to answer a command", "smtp_*_timeout"),
        K("Delivery", "TransportTable", CONFIG_PATH_OPT, transport_table, "", 0, 0,
          "Table of domain or address -> transport (smtp:[host]:port, lmtp:unix:/path, "
          "lmtp:[host]:port, local, discard, error:text)", "transport_maps"),
        KC("Delivery", "TLSSecurityLevel", smtp_tls_security_level, "may",
           "none may encrypt verify",
           "STARTTLS towards other servers: none, may (opportunistic), encrypt (required), "
           "verify (required, certificate and name checked)", "smtp_tls_security_level"),
        K("Delivery", "TLSPolicyTable", CONFIG_PATH_OPT, smtp_tls_policy_table, "", 0, 0,
          "Table of domain or relay host -> TLS security level", "smtp_tls_policy_maps"),
        K("Delivery", "TLSCAFile", CONFIG_PATH_OPT, smtp_tls_ca_file, "", 0, 0,
          "PEM trust anchors for verify; empty: the system trust store", "smtp_tls_CAfile"),
        K("Delivery", "RelayPasswordTable", CONFIG_PATH_OPT, smtp_password_table, "", 0, 0,
          "Table of relay host -> user:password for AUTH (keep it mode 0600)",
          "smtp_sasl_password_maps"),
        K("Delivery", "ConnectionReuseTime", CONFIG_TIMESPAN, smtp_connection_reuse_usec, "2s",
          0, 300 * USEC_PER_SEC,
          "How long an idle connection is kept for the next message to the same destination",
          "smtp_connection_cache_time_limit"),

        K("Local", "MailboxFormat", CONFIG_MAILBOX_FORMAT, mailbox_format, "maildir", 0, 0,
          "maildir or mbox", "home_mailbox"),
        K("Local", "MailboxPath", CONFIG_MAILBOX_PATH, mailbox_path, "~/Maildir/", 0, 0,
          "Mailbox of a local user: ~ is the home directory, %u the user name; "
          "default /var/mail/%u when MailboxFormat=mbox", "home_mailbox, mail_spool_directory"),
        K("Local", "LocalDeliveryTimeout", CONFIG_TIMESPAN, local_delivery_timeout_usec,
          "1000s", USEC_PER_MSEC, USEC_PER_DAY,
          "Longest duration of one local delivery", "local_destination_timeout"),
        K("Local", "AliasFile", CONFIG_PATH_OPT, alias_file, "/etc/aliases", 0, 0,
          "Aliases in the classic format, compiled with newaliases; empty: none",
          "alias_maps"),
        K("Local", "ForwardPath", CONFIG_MAILBOX_PATH, forward_path, "~/.forward", 0, 0,
          "A user's forward file", "forward_path"),
        K("Local", "RecipientDelimiter", CONFIG_STRING, recipient_delimiter, "+", 0, 0,
          "Characters separating a user name from an address extension (user+tag); "
          "empty: none", "recipient_delimiter"),
        K("Local", "DefaultPrivileges", CONFIG_USER, default_privileges, "nobody", 0, 0,
          "User that runs commands and writes files of aliases owned by root (never root)",
          "default_privs"),

        K("Virtual", "AliasDomains", CONFIG_DOMAINS, virtual_alias_domains, "", 0, 0,
          "Domains whose addresses are all rewritten by AliasMap", "virtual_alias_domains"),
        K("Virtual", "AliasMap", CONFIG_PATH_OPT, virtual_alias_map, "", 0, 0,
          "Table of address or @domain -> addresses, applied to every recipient",
          "virtual_alias_maps"),
        K("Virtual", "MailboxDomains", CONFIG_DOMAINS, virtual_mailbox_domains, "", 0, 0,
          "Domains whose users have a mailbox in MailboxMap", "virtual_mailbox_domains"),
        K("Virtual", "MailboxMap", CONFIG_PATH_OPT, virtual_mailbox_map, "", 0, 0,
          "Table of address -> mailbox path below MailboxBase (ending in / for Maildir)",
          "virtual_mailbox_maps"),
        K("Virtual", "MailboxBase", CONFIG_PATH, virtual_mailbox_base, "/var/mail/vhosts", 0, 0,
          "Directory holding the virtual mailboxes", "virtual_mailbox_base"),
        K("Virtual", "MailboxUser", CONFIG_USER, virtual_mailbox_user, "vmail", 0, 0,
          "User owning every virtual mailbox (must exist when MailboxDomains is set)",
          "virtual_uid_maps"),
};
#undef KC
#undef K

#define N_KEYS ELEMENTSOF(config_keys)

static const char *const config_sections[] = { "Server", "Queue", "SMTP", "TLS", "Auth",
                                               "Delivery", "Local", "Virtual" };

static const char *const mailbox_format_table[_MAILBOX_FORMAT_MAX] = {
        [MAILBOX_MAILDIR] = "maildir",
        [MAILBOX_MBOX] = "mbox",
};

MailboxFormat mailbox_format_from_string(const char *s) {
        for (size_t i = 0; s && i < _MAILBOX_FORMAT_MAX; i++)
                if (streq(s, mailbox_format_table[i]))
                        return (MailboxFormat) i;
        return _MAILBOX_FORMAT_INVALID;
}

const char *mailbox_format_to_string(MailboxFormat f) {
        if (f < 0 || f >= _MAILBOX_FORMAT_MAX)
                return NULL;
        return mailbox_format_table[f];
}

static void *config_field(Config *c, const ConfigKey *k) {
        return (uint8_t *) c + k->offset;
}

static const void *config_field_const(const Config *c, const ConfigKey *k) {
        return (const uint8_t *) c + k->offset;
}

/* Number parsers: no sign, no spaces, overflow is -ERANGE. */
static int config_parse_digits(const char **p, uint64_t *ret) {
        uint64_t v = 0;
        const char *s = *p;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        for (; *s >= '0' && *s <= '9'; s++) {
                if (v > (UINT64_MAX - (uint64_t) (*s - '0')) / 10)
                        return -ERANGE;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        *p = s;
        *ret = v;
        return 0;
}

static int config_parse_uint64(const char *s, uint64_t *ret) {
        uint64_t v;
        int r = config_parse_digits(&s, &v);
        if (r < 0)
                return r;
        if (*s)
                return -EINVAL;
        *ret = v;
        return 0;
}

int config_parse_size(const char *s, uint64_t *ret) {
        uint64_t v, factor = 1;
        int r;

        if (!s)
                return -EINVAL;
        const char *digits_end;

        r = config_parse_digits(&s, &v);
        if (r < 0)
                return r;
        digits_end = s;
        while (*s == ' ' || *s == '\t')
                s++;
        if (!*s && s != digits_end)
                return -EINVAL; /* "10 ": a suffix was forgotten? */
        switch (*s) {
        case 0:
                break;
        case 'K': case 'k':
                factor = UINT64_C(1) << 10;
                break;
        case 'M': case 'm':
                factor = UINT64_C(1) << 20;
                break;
        case 'G': case 'g':
                factor = UINT64_C(1) << 30;
                break;
        case 'T': case 't':
                factor = UINT64_C(1) << 40;
                break;
        default:
                return -EINVAL;
        }
        if (*s && s[1])
                return -EINVAL;
        if (v > UINT64_MAX / factor)
                return -ERANGE;
        *ret = v * factor;
        return 0;
}

static const struct {
        const char *name;
        uint64_t usec;
} timespan_units[] = {
        { "usec", 1 },           { "us", 1 },
        { "msec", USEC_PER_MSEC }, { "ms", USEC_PER_MSEC },
        { "seconds", USEC_PER_SEC }, { "second", USEC_PER_SEC },
        { "sec", USEC_PER_SEC }, { "s", USEC_PER_SEC },
        { "minutes", USEC_PER_MINUTE }, { "minute", USEC_PER_MINUTE },
        { "min", USEC_PER_MINUTE }, { "m", USEC_PER_MINUTE },
        { "hours", USEC_PER_HOUR }, { "hour", USEC_PER_HOUR },
        { "hr", USEC_PER_HOUR }, { "h", USEC_PER_HOUR },
        { "days", USEC_PER_DAY }, { "day", USEC_PER_DAY }, { "d", USEC_PER_DAY },
        { "weeks", USEC_PER_WEEK }, { "week", USEC_PER_WEEK }, { "w", USEC_PER_WEEK },
};

int config_parse_timespan(const char *s, uint64_t *ret_usec) {
        uint64_t total = 0;
        bool any = false;

        if (!s)
                return -EINVAL;
        for (;;) {
                uint64_t v, unit = USEC_PER_SEC;
                const char *u;
                size_t ul;
                int r;

                while (*s == ' ' || *s == '\t')
                        s++;
                if (!*s)
                        break;
                r = config_parse_digits(&s, &v);
                if (r < 0)
                        return r;
                while (*s == ' ' || *s == '\t')
                        s++;
                u = s;
                while ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))
                        s++;
                ul = (size_t) (s - u);
                if (ul > 0) {
                        size_t i;
                        for (i = 0; i < ELEMENTSOF(timespan_units); i++)
                                if (strlen(timespan_units[i].name) == ul &&
                                    memcmp(timespan_units[i].name, u, ul) == 0)
                                        break;
                        if (i == ELEMENTSOF(timespan_units))
                                return -EINVAL;
                        unit = timespan_units[i].usec;
                }
                if (v > UINT64_MAX / unit || total > UINT64_MAX - v * unit)
                        return -ERANGE;
                total += v * unit;
                any = true;
        }
        if (!any)
                return -EINVAL;
        *ret_usec = total;
        return 0;
}

/* "1h 6min 40s": the inverse of config_parse_timespan. */
static const char *config_format_timespan(uint64_t usec, char *buf, size_t size) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } parts[] = {
                { "w", USEC_PER_WEEK }, { "d", USEC_PER_DAY }, { "h", USEC_PER_HOUR },
                { "min", USEC_PER_MINUTE }, { "s", USEC_PER_SEC }, { "ms", USEC_PER_MSEC },
                { "us", 1 },
        };
        size_t pos = 0;

        buf[0] = 0;
        if (usec == 0) {
                (void) snprintf(buf, size, "0");
                return buf;
        }
        for (size_t i = 0; i < ELEMENTSOF(parts) && usec > 0; i++) {
                uint64_t n = usec / parts[i].usec;
                int w;

                if (n == 0)
                        continue;
                usec -= n * parts[i].usec;
                w = snprintf(buf + pos, size - pos, "%s%" PRIu64 "%s", pos ? " " : "", n,
                             parts[i].suffix);
                if (w < 0 || (size_t) w >= size - pos)
                        break;
                pos += (size_t) w;
        }
        return buf;
}

/* Quotes an administrator's value for an error message: control characters
 * become '?', long values are cut with "...". */
static const char *config_quote(const char *v, char *buf, size_t size) {
        size_t n = 0, max = size < 84 ? size : 84;

        buf[n++] = '"';
        for (; *v && n + 5 < max; v++)
                buf[n++] = (unsigned char) *v < 0x20 || *v == 0x7f ? '?' : *v;
        if (*v) {
                memcpy(buf + n, "...", 3);
                n += 3;
        }
        buf[n++] = '"';
        buf[n] = 0;
        return buf;
}

static int config_fail(ConfigError *e, const char *file, unsigned line, const char *key, int r,
                       const char *fmt, ...) _printf_(6, 7);
static int config_fail(ConfigError *e, const char *file, unsigned line, const char *key, int r,
                       const char *fmt, ...) {
        va_list ap;

        if (!e)
                return r;
        *e = (ConfigError) { .line = line };
        (void) snprintf(e->file, sizeof(e->file), "%s", file ? file : "");
        (void) snprintf(e->key, sizeof(e->key), "%s", key ? key : "");
        va_start(ap, fmt);
        (void) vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
        return r;
}

const char *config_error_string(const ConfigError *e, char *buf, size_t size) {
        size_t pos = 0;
        int w;

        if (size == 0)
                return buf;
        buf[0] = 0;
        if (e->file[0]) {
                if (e->line > 0)
                        w = snprintf(buf, size, "%s:%u: ", e->file, e->line);
                else
                        w = snprintf(buf, size, "%s: ", e->file);
                if (w > 0)
                        pos = (size_t) w < size ? (size_t) w : size - 1;
        }
        if (e->key[0]) {
                w = snprintf(buf + pos, size - pos, "%s: ", e->key);
                if (w > 0)
                        pos += (size_t) w < size - pos ? (size_t) w : size - pos - 1;
        }
        (void) snprintf(buf + pos, size - pos, "%s", e->message);
        return buf;
}

static bool config_has_control(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

/* RFC 1035 letters, digits, hyphens and dots (plus '_', seen in real host
 * names); at most 253 bytes. */
static bool config_domain_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-' || strstr(s, ".."))
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                      (*s >= '0' && *s <= '9') || *s == '-' || *s == '.' || *s == '_'))
                        return false;
        return true;
}

/* POSIX portable user names (plus what useradd allows: a trailing '$'). */
static bool config_user_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 32 || s[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' ||
                      s[i] == '.' || (s[i] == '$' && i == n - 1)))
                        return false;
        return true;
}

/* Splits a list value on whitespace and commas and appends the items to
 * *list, lower-cased and without a trailing dot. */
static int config_domains_append(char ***list, const char *value, const char **ret_bad,
                                 char *bad, size_t bad_size) {
        _cleanup_strv_free_ char **add = NULL;
        size_t n_old = strv_length(*list), n_add = 0;

        for (const char *p = value;;) {
                const char *start;
                size_t len;

                while (*p == ' ' || *p == '\t' || *p == ',')
                        p++;
                if (!*p)
                        break;
                start = p;
                while (*p && *p != ' ' && *p != '\t' && *p != ',')
                        p++;
                len = (size_t) (p - start);

                _cleanup_free_ char *d = memdup_str(start, len);
                if (!d)
                        return -ENOMEM;
                if (len > 1 && d[len - 1] == '.')
                        d[len - 1] = 0;
                if (!streq(d, "$hostname")) {
                        if (!config_domain_valid(d)) {
                                (void) snprintf(bad, bad_size, "%s", d);
                                *ret_bad = bad;
                                return -EINVAL;
                        }
                        for (char *q = d; *q; q++)
                                if (*q >= 'A' && *q <= 'Z')
                                        *q = (char) (*q - 'A' + 'a');
                }
                char **t = reallocarray_safe(add, n_add + 2, sizeof(char *));
                if (!t)
                        return -ENOMEM;
                add = t;
                add[n_add++] = TAKE_PTR(d);
                add[n_add] = NULL;
        }
        if (n_add == 0)
                return 0;

        char **t = reallocarray_safe(*list, n_old + n_add + 1, sizeof(char *));
        if (!t)
                return -ENOMEM;
        memcpy(t + n_old, add, (n_add + 1) * sizeof(char *));
        free(TAKE_PTR(add)); /* the strings now belong to t */
        *list = t;
        return 0;
}

static int config_replace_string(char **field, const char *value) {
        char *s = strdup(value);
        if (!s)
                return -ENOMEM;
        free(*field);
        *field = s;
        return 0;
}

/* Assigns value to key number idx, the way a line "Name = value" does.
 * file NULL means a compiled-in default. */
static int config_assign(Config *c, size_t idx, const char *value, const char *file,
                         unsigned line, ConfigError *e) {
        const ConfigKey *k = &config_keys[idx];
        ConfigSource *src = &c->_sources[idx];
        void *field = config_field(c, k);
        char q[96], lo[64], hi[64];
        uint64_t v = 0;
        int r;

        if (config_has_control(value))
                return config_fail(e, file, line, k->name, -EINVAL,
                                   "value %s contains control characters",
                                   config_quote(value, q, sizeof(q)));

        switch (k->type) {
        case CONFIG_PATH_OPT:
                if (!isempty(value) && value[0] != '/')
                        return config_fail(e, file, line, k->name, -EINVAL,
                                           "value %s is not an absolute path",
                                           config_quote(value, q, sizeof(q)));
                r = config_replace_string(field, value);
                if (r < 0)
                        return r;
                break;

        case CONFIG_CHOICE: {
                const char *w = k->choices;
                size_t n = strlen(value);
                bool ok = false;

                while (*w && !ok) {
                        size_t l = strcspn(w, " ");
                        ok = l == n && strncmp(w, value, n) == 0;
                        w += l;
                        w += strspn(w, " ");
                }
                if (!ok)
                        return config_fail(e, file, line, k->name, -EINVAL,
                                           "value %s is not one of: %s",
                                           config_quote(value, q, sizeof(q)), k->choices);
                r = config_replace_string(field, value);
                if (r < 0)
                        return r;
                break;
        }

        case CONFIG_BOOL: {
                static const char *const yes[] = { "yes", "true", "on", "1" };
                static const char *const no[] = { "no", "false", "off", "0" };
                bool b = false, found = false;

                for (size_t i = 0; i < ELEMENTSOF(yes) && !found; i++) {
                        if (strcasecmp(value, yes[i]) == 0)
                                b = found = true;
                        else if (strcasecmp(value, no[i]) == 0)
                                found = true;
                }
                if (!found)
                        return config_fail(e, file, line, k->name, -EINVAL,
                                           "value %s is not a boolean (yes or no)",
                                           config_quote(value, q, sizeof(q)));
                *(bool *) field = b;
                break;
        }

        case CONFIG_PATH:
        case CONFIG_USER:
        case CONFIG_HOSTNAME:
        case CONFIG_MAILBOX_PATH:
                if (isempty(value) && k->type != CONFIG_HOSTNAME) {
                        /* Empty puts the compiled-in default back. */
                        r = config_replace_string(field, k->default_text);
                        if (r < 0)
                                return r;
                        *src = (ConfigSource) {};
                        return 0;
                }
                if (k->type == CONFIG_PATH && value[0] != '/')
                        return config_fail(e, file, line, k->name, -EINVAL,
                                           "value %s is not an absolute path",
                                           config_quote(value, q, sizeof(q)));
                if (k->type == CONFIG_MAILBOX_PATH && value[0] != '/' &&
                    !(value[0] == '~' && value[1] == '/'))
                        return config_fail(e, file, line, k->name, -EINVAL,
                                           "value %s is neither an absolute path nor "
                                           "below the home directory (~/...)",
                                           config_quote(value, q, sizeof(q)));
                if (k->type == CONFIG_USER && !config_user_valid(value))
                        return config_fail(e, file, line, k->name, -EINVAL,
                                           "value %s is not a valid user name",
                                           config_quote(value, q, sizeof(q)));
                if (k->type == CONFIG_HOSTNAME && !isempty(value) &&
                    !config_domain_valid(value))
                        return config_fail(e, file, line, k->name, -EINVAL,
                                           "value %s is not a host name (letters, digits, "
                                           "'-' and '.')",
                                           config_quote(value, q, sizeof(q)));
                __attribute__((fallthrough));
        case CONFIG_STRING:
                r = config_replace_string(field, value);
                if (r < 0)
                        return r;
                break;

        case CONFIG_DOMAINS: {
                char ***list = field, bad[256];
                const char *b = NULL;

                /* The first assignment replaces the default; later ones add,
                 * an empty one empties the list (systemd's list semantics). */
                if (isempty(value) || !src->file) {
                        strv_free(*list);
                        *list = new0(char *, 1);
                        if (!*list)
                                return -ENOMEM;
                }
                r = config_domains_append(list, value, &b, bad, sizeof(bad));
                if (r == -EINVAL)
                        return config_fail(e, file, line, k->name, -EINVAL,
                                           "%s is not a domain name",
                                           config_quote(b, q, sizeof(q)));
                if (r < 0)
                        return r;
                break;
        }

        case CONFIG_NETLIST: {
                NetList *list = field, add = {};
                const char *b = NULL;
                char tok[64];

                r = netlist_parse(value, &add, &b);
                if (r == -EINVAL) {
                        size_t n = strcspn(b ? b : "", " \t,");
                        (void) snprintf(tok, sizeof(tok), "%.*s", (int) (n < 60 ? n : 60),
                                        b ? b : "");
                        return config_fail(e, file, line, k->name, -EINVAL,
                                           "%s is not a network in CIDR notation "
                                           "(e.g. 192.0.2.0/24 or [2001:db8::]/32)",
                                           config_quote(tok, q, sizeof(q)));
                }
                if (r < 0)
                        return r;
                if (isempty(value) || !src->file)
                        netlist_done(list);
                if (add.n > 0) {
                        NetMask *t = reallocarray_safe(list->items, list->n + add.n,
                                                       sizeof(NetMask));
                        if (!t) {
                                netlist_done(&add);
                                return -ENOMEM;
                        }
                        memcpy(t + list->n, add.items, add.n * sizeof(NetMask));
                        list->items = t;
                        list->n += add.n;
                }
                netlist_done(&add);
                break;
        }

        case CONFIG_UINT64:
        case CONFIG_SIZE:
        case CONFIG_TIMESPAN:
                if (k->type == CONFIG_UINT64)
                        r = config_parse_uint64(value, &v);
                else if (k->type == CONFIG_SIZE)
                        r = config_parse_size(value, &v);
                else
                        r = config_parse_timespan(value, &v);
                if (r == -EINVAL)
                        return config_fail(
                                e, file, line, k->name, -EINVAL, "value %s %s",
                                config_quote(value, q, sizeof(q)),
                                k->type == CONFIG_UINT64 ? "is not a number" :
                                k->type == CONFIG_SIZE ?
                                        "is not a size (use bytes or K, M, G suffixes)" :
                                        "is not a time span (use e.g. 500ms, 300s, 5min, 4h, 5d)");
                if (r < 0 || v < k->min || v > k->max) {
                        if (k->type == CONFIG_TIMESPAN) {
                                (void) config_format_timespan(k->min, lo, sizeof(lo));
                                (void) config_format_timespan(k->max, hi, sizeof(hi));
                        } else {
                                (void) snprintf(lo, sizeof(lo), "%" PRIu64, k->min);
                                (void) snprintf(hi, sizeof(hi), "%" PRIu64, k->max);
                        }
                        return config_fail(e, file, line, k->name, -EINVAL,
                                           "value %s is out of range (%s..%s)",
                                           config_quote(value, q, sizeof(q)), lo, hi);
                }
                *(uint64_t *) field = v;
                break;

        case CONFIG_MAILBOX_FORMAT: {
                MailboxFormat f = mailbox_format_from_string(value);
                if (f < 0)
                        return config_fail(e, file, line, k->name, -EINVAL,
                                           "value %s is not a mailbox format (use maildir "
                                           "or mbox)",
                                           config_quote(value, q, sizeof(q)));
                *(MailboxFormat *) field = f;
                break;
        }
        }

        *src = (ConfigSource) { .file = file, .line = line };
        return 0;
}

static ssize_t config_find_key(const char *section, const char *name) {
        for (size_t i = 0; i < N_KEYS; i++)
                if (streq(config_keys[i].section, section) && streq(config_keys[i].name, name))
                        return (ssize_t) i;
        return -1;
}

/* Compares ignoring case and '_', so "recipient_limit" finds "RecipientLimit". */
static bool config_name_similar(const char *a, const char *b) {
        for (;;) {
                while (*a == '_')
                        a++;
                while (*b == '_')
                        b++;
                if (!*a || !*b)
                        return !*a && !*b;
                if ((*a | 0x20) != (*b | 0x20))
                        return false;
                a++, b++;
        }
}

static int config_unknown_key(const char *file, unsigned line, const char *section,
                              const char *name, ConfigError *e) {
        for (size_t i = 0; i < N_KEYS; i++) {
                const ConfigKey *k = &config_keys[i];
                bool same = streq(k->name, name);

                if (!same && !config_name_similar(k->name, name))
                        continue;
                if (streq(k->section, section))
                        return config_fail(e, file, line, name, -EINVAL,
                                           "unknown key in section [%s], did you mean %s?",
                                           section, k->name);
                return config_fail(e, file, line, name, -EINVAL,
                                   "unknown key in section [%s], %s belongs in [%s]", section,
                                   k->name, k->section);
        }
        return config_fail(e, file, line, name, -EINVAL,
                           "unknown key in section [%s] (see docs/configuration.md)", section);
}

static char *config_trim(char *s) {
        char *end;

        while (*s == ' ' || *s == '\t' || *s == '\r')
                s++;
        end = s + strlen(s);
        while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
                *--end = 0;
        return s;
}

/* Handles one logical line (comments and continuations already resolved). */
static int config_parse_line(Config *c, const char *file, unsigned line, char *l,
                             const char **section, bool seen[], ConfigError *e) {
        char *eq, *name, *value;
        ssize_t idx;

        if (l[0] == '[') {
                size_t n = strlen(l);
                char q[96];

                if (n < 3 || l[n - 1] != ']')
                        return config_fail(e, file, line, NULL, -EINVAL,
                                           "bad section header %s (expected e.g. [Server])",
                                           config_quote(l, q, sizeof(q)));
                l[n - 1] = 0;
                for (size_t i = 0; i < ELEMENTSOF(config_sections); i++) {
                        if (!streq(l + 1, config_sections[i]))
                                continue;
                        if (seen[i])
                                return config_fail(e, file, line, NULL, -EINVAL,
                                                   "section [%s] appears twice in this file, "
                                                   "merge the two",
                                                   config_sections[i]);
                        seen[i] = true;
                        *section = config_sections[i];
                        return 0;
                }
                return config_fail(e, file, line, NULL, -EINVAL,
                                   "unknown section [%s] (known: [Server], [Queue], [SMTP], "
                                   "[Delivery], [Local])",
                                   l + 1);
        }

        eq = strchr(l, '=');
        if (!eq) {
                char q[96];
                return config_fail(e, file, line, NULL, -EINVAL,
                                   "expected \"Key = value\" or \"[Section]\", got %s",
                                   config_quote(l, q, sizeof(q)));
        }
        *eq = 0;
        name = config_trim(l);
        value = config_trim(eq + 1);
        if (!*name)
                return config_fail(e, file, line, NULL, -EINVAL,
                                   "assignment without a key name");
        if (!*section)
                return config_fail(e, file, line, name, -EINVAL,
                                   "assignment before the first [Section] header");
        idx = config_find_key(*section, name);
        if (idx < 0)
                return config_unknown_key(file, line, *section, name, e);
        return config_assign(c, (size_t) idx, value, file, line, e);
}

/* Parses one file's text. Pure: file is only used in messages and sources. */
static int config_parse_text(Config *c, const char *file, const char *text, size_t size,
                             ConfigError *e) {
        char buf[CONFIG_LINE_MAX + 1];
        size_t used = 0;
        unsigned lineno = 0, start_line = 0;
        bool seen[ELEMENTSOF(config_sections)] = {};
        const char *section = NULL;
        int r;

        if (memchr(text, 0, size))
                return config_fail(e, file, 0, NULL, -EINVAL, "file contains a NUL byte");

        for (size_t pos = 0; pos < size;) {
                const char *nl = memchr(text + pos, '\n', size - pos);
                size_t len = nl ? (size_t) (nl - (text + pos)) : size - pos;
                char *l;
                bool more;

                lineno++;
                if (len > CONFIG_LINE_MAX)
                        return config_fail(e, file, lineno, NULL, -EINVAL,
                                           "line is longer than %d bytes", CONFIG_LINE_MAX);
                char phys[CONFIG_LINE_MAX + 1];
                memcpy(phys, text + pos, len);
                phys[len] = 0;
                pos += len + (nl ? 1 : 0);
                l = config_trim(phys);

                /* systemd skips comment lines inside a continued line too. */
                if (*l == '#' || *l == ';')
                        continue;
                if (used == 0 && !*l)
                        continue;

                if (used == 0)
                        start_line = lineno;
                len = strlen(l);
                more = len > 0 && l[len - 1] == '\\';
                if (more)
                        l[len - 1] = ' '; /* as systemd: the backslash becomes a space */
                if (used + len > CONFIG_LINE_MAX)
                        return config_fail(e, file, start_line, NULL, -EINVAL,
                                           "continued line is longer than %d bytes",
                                           CONFIG_LINE_MAX);
                memcpy(buf + used, l, len);
                used += len;
                buf[used] = 0;
                if (more && pos < size)
                        continue;

                r = config_parse_line(c, file, start_line, config_trim(buf), &section, seen, e);
                if (r < 0)
                        return r;
                used = 0;
        }
        if (used > 0) {
                r = config_parse_line(c, file, start_line, config_trim(buf), &section, seen, e);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Keeps a copy of a file name for the sources that will point at it. */
static const char *config_add_file(Config *c, const char *path) {
        size_t n = strv_length(c->_files);
        char *p = strdup(path);
        char **t;

        if (!p)
                return NULL;
        t = reallocarray_safe(c->_files, n + 2, sizeof(char *));
        if (!t) {
                free(p);
                return NULL;
        }
        t[n] = p;
        t[n + 1] = NULL;
        c->_files = t;
        return p;
}

/* Reads and parses path; a missing file is fine when missing_ok. */
static int config_parse_file(Config *c, const char *path, bool missing_ok, ConfigError *e) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *text = NULL;
        const char *name;
        struct stat st;
        size_t got = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT && missing_ok)
                        return 0;
                return config_fail(e, path, 0, NULL, negative_errno(), "cannot open: %s",
                                   strerror(errno));
        }
        if (fstat(fd, &st) < 0)
                return config_fail(e, path, 0, NULL, negative_errno(), "cannot stat: %s",
                                   strerror(errno));
        if (!S_ISREG(st.st_mode))
                return config_fail(e, path, 0, NULL, -EINVAL, "not a regular file");
        if (st.st_size > CONFIG_FILE_MAX)
                return config_fail(e, path, 0, NULL, -EFBIG,
                                   "file is larger than %d bytes", CONFIG_FILE_MAX);

        /* One byte more than allowed, to notice a file that grew meanwhile. */
        text = malloc(CONFIG_FILE_MAX + 1);
        if (!text)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, text + got, CONFIG_FILE_MAX + 1 - got);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return config_fail(e, path, 0, NULL, negative_errno(),
                                           "cannot read: %s", strerror(errno));
                }
                if (n == 0)
                        break;
                got += (size_t) n;
                if (got > CONFIG_FILE_MAX)
                        return config_fail(e, path, 0, NULL, -EFBIG,
                                           "file is larger than %d bytes", CONFIG_FILE_MAX);
        }

        name = config_add_file(c, path);
        if (!name)
                return -ENOMEM;
        return config_parse_text(c, name, text, got, e);
}

static int config_cmp_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Parses dir/(*.conf) in lexical order; a missing directory is fine. */
static int config_parse_dropins(Config *c, const char *dir, ConfigError *e) {
        _cleanup_strv_free_ char **names = NULL;
        size_t n = 0;
        DIR *d;
        int r = 0;

        d = opendir(dir);
        if (!d) {
                if (errno == ENOENT)
                        return 0;
                return config_fail(e, dir, 0, NULL, negative_errno(),
                                   "cannot open drop-in directory: %s", strerror(errno));
        }
        for (;;) {
                struct dirent *de;
                size_t len;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                r = config_fail(e, dir, 0, NULL, negative_errno(),
                                                "cannot read drop-in directory: %s",
                                                strerror(errno));
                        break;
                }
                len = strlen(de->d_name);
                if (de->d_name[0] == '.' || len < 6 || !streq(de->d_name + len - 5, ".conf"))
                        continue;
                if (n >= CONFIG_DROPINS_MAX) {
                        r = config_fail(e, dir, 0, NULL, -E2BIG,
                                        "more than %d drop-in files", CONFIG_DROPINS_MAX);
                        break;
                }
                char **t = reallocarray_safe(names, n + 2, sizeof(char *));
                if (!t) {
                        r = -ENOMEM;
                        break;
                }
                names = t;
                names[n] = strdup(de->d_name);
                names[n + 1] = NULL;
                if (!names[n]) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        (void) closedir(d);
        if (r < 0)
                return r;

        if (n > 1)
                qsort(names, n, sizeof(char *), config_cmp_names);
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *path = NULL;

                if (asprintf(&path, "%s/%s", dir, names[i]) < 0)
                        return -ENOMEM;
                /* A drop-in removed between readdir() and open() is gone: fine. */
                r = config_parse_file(c, path, true, e);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* gethostname(), made fully qualified through the resolver when it is not. */
static int config_detect_hostname(char **ret) {
        char name[HOST_NAME_MAX + 1] = {};
        struct addrinfo hints = { .ai_flags = AI_CANONNAME }, *ai = NULL;

        if (gethostname(name, sizeof(name) - 1) < 0 || !name[0])
                return -ENXIO;
        if (!strchr(name, '.') && getaddrinfo(name, NULL, &hints, &ai) == 0) {
                if (ai && ai->ai_canonname && strchr(ai->ai_canonname, '.') &&
                    config_domain_valid(ai->ai_canonname))
                        (void) snprintf(name, sizeof(name), "%s", ai->ai_canonname);
                freeaddrinfo(ai);
        }
        *ret = strdup(name);
        return *ret ? 0 : -ENOMEM;
}

/* Derived values, once every file has been read. */
static int config_finish(Config *c, ConfigError *e) {
        ssize_t imin = config_find_key("Queue", "MinBackoff");
        ssize_t imax = config_find_key("Queue", "MaxBackoff");
        ssize_t ipath = config_find_key("Local", "MailboxPath");
        int r;

        if (isempty(c->hostname)) {
                char *h = NULL;
                if (config_detect_hostname(&h) < 0 && !(h = strdup("localhost")))
                        return -ENOMEM;
                free(c->hostname);
                c->hostname = h;
        }

        for (char **d = c->local_domains; d && *d; d++)
                if (streq(*d, "$hostname")) {
                        r = config_replace_string(d, c->hostname);
                        if (r < 0)
                                return r;
                }

        assert(ipath >= 0 && imin >= 0 && imax >= 0);
        if (c->mailbox_format == MAILBOX_MBOX && !c->_sources[ipath].file) {
                r = config_replace_string(&c->mailbox_path, "/var/mail/%u");
                if (r < 0)
                        return r;
        }

        if (c->max_backoff_usec < c->min_backoff_usec) {
                const ConfigSource *s = c->_sources[imax].file ? &c->_sources[imax] :
                                                                  &c->_sources[imin];
                char a[64], b[64];
                return config_fail(e, s->file, s->line, s == &c->_sources[imax] ?
                                   "MaxBackoff" : "MinBackoff", -EINVAL,
                                   "MaxBackoff (%s) is shorter than MinBackoff (%s)",
                                   config_format_timespan(c->max_backoff_usec, a, sizeof(a)),
                                   config_format_timespan(c->min_backoff_usec, b, sizeof(b)));
        }
        return 0;
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < N_KEYS; i++) {
                const ConfigKey *k = &config_keys[i];
                void *field = config_field(c, k);

                switch (k->type) {
                case CONFIG_STRING:
                case CONFIG_PATH_OPT:
                case CONFIG_CHOICE:
                case CONFIG_PATH:
                case CONFIG_USER:
                case CONFIG_HOSTNAME:
                case CONFIG_MAILBOX_PATH:
                        free(*(char **) field);
                        break;
                case CONFIG_DOMAINS:
                        strv_free(*(char ***) field);
                        break;
                case CONFIG_NETLIST:
                        netlist_done(field);
                        break;
                default:
                        break;
                }
        }
        free(c->_sources);
        strv_free(c->_files);
        free(c);
        return NULL;
}

/* Defaults only, before derived values. */
static int config_defaults(Config **ret) {
        _cleanup_(config_freep) Config *c = NULL;

        c = new0(Config, 1);
        if (!c)
                return -ENOMEM;
        c->_sources = new0(ConfigSource, N_KEYS);
        if (!c->_sources)
                return -ENOMEM;
        for (size_t i = 0; i < N_KEYS; i++) {
                ConfigError e;
                int r = config_assign(c, i, config_keys[i].default_text, NULL, 0, &e);
                if (r == -ENOMEM)
                        return r;
                assert(r == 0); /* the table's defaults must parse */
        }
        *ret = TAKE_PTR(c);
        return 0;
}

int config_new_default(Config **ret) {
        _cleanup_(config_freep) Config *c = NULL;
        int r;

        r = config_defaults(&c);
        if (r < 0)
                return r;
        r = config_finish(c, NULL);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

int config_load(const char *path, const char *dropin_dir, Config **ret, ConfigError *error) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *dir = NULL;
        ConfigError dummy;
        int r;

        if (!error)
                error = &dummy;
        *error = (ConfigError) {};

        if (!path)
                path = CONFIG_DEFAULT_PATH;
        if (!dropin_dir) {
                if (asprintf(&dir, "%s.d", path) < 0)
                        return -ENOMEM;
                dropin_dir = dir;
        }

        r = config_defaults(&c);
        if (r < 0)
                return r;
        r = config_parse_file(c, path, true, error);
        if (r < 0)
                return r;
        r = config_parse_dropins(c, dropin_dir, error);
        if (r < 0)
                return r;
        r = config_finish(c, error);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

bool config_is_local_domain(const Config *c, const char *domain) {
        size_t n;

        if (!c || isempty(domain))
                return false;
        n = strlen(domain);
        if (n > 1 && domain[n - 1] == '.')
                n--;
        for (char **d = c->local_domains; d && *d; d++)
                if (strlen(*d) == n && strncasecmp(*d, domain, n) == 0)
                        return true;
        return false;
}

static void config_dump_value(const Config *c, const ConfigKey *k, FILE *f) {
        const void *field = config_field_const(c, k);
        char buf[INET6_ADDRSTRLEN + 8];

        switch (k->type) {
        case CONFIG_STRING:
        case CONFIG_PATH_OPT:
        case CONFIG_CHOICE:
        case CONFIG_PATH:
        case CONFIG_USER:
        case CONFIG_HOSTNAME:
        case CONFIG_MAILBOX_PATH: {
                const char *s = *(char *const *) field;
                fputs(s ? s : "", f);
                break;
        }
        case CONFIG_DOMAINS:
                for (char *const *d = *(char **const *) field; d && *d; d++)
                        fprintf(f, "%s%s", d == *(char **const *) field ? "" : " ", *d);
                break;
        case CONFIG_NETLIST: {
                const NetList *l = field;
                for (size_t i = 0; i < l->n; i++) {
                        const NetMask *m = &l->items[i];
                        if (!inet_ntop(m->family, m->addr, buf, sizeof(buf)))
                                continue;
                        fprintf(f, m->family == AF_INET6 ? "%s[%s]/%u" : "%s%s/%u",
                                i ? " " : "", buf, m->prefixlen);
                }
                break;
        }
        case CONFIG_UINT64:
        case CONFIG_SIZE:
                fprintf(f, "%" PRIu64, *(const uint64_t *) field);
                break;
        case CONFIG_TIMESPAN:
                fputs(config_format_timespan(*(const uint64_t *) field, buf, sizeof(buf)), f);
                break;
        case CONFIG_MAILBOX_FORMAT:
                fputs(mailbox_format_to_string(*(const MailboxFormat *) field) ?: "", f);
                break;
        case CONFIG_BOOL:
                fputs(*(const bool *) field ? "yes" : "no", f);
                break;
        }
}

int config_dump(const Config *c, FILE *f) {
        const char *section = NULL;

        for (size_t i = 0; i < N_KEYS; i++) {
                const ConfigKey *k = &config_keys[i];
                const ConfigSource *s = c->_sources ? &c->_sources[i] : NULL;

                if (!section || !streq(section, k->section)) {
                        fprintf(f, "%s[%s]\n", section ? "\n" : "", k->section);
                        section = k->section;
                }
                fprintf(f, "%s = ", k->name);
                config_dump_value(c, k, f);
                if (s && s->file)
                        fprintf(f, "\n# %s:%u\n", s->file, s->line);
                else
                        fputs("\n# default\n", f);
        }
        if (fflush(f) != 0 || ferror(f))
                return -EIO;
        return 0;
}

int config_parse_daemon_argv(int argc, char *argv[], const char **ret_config) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *config = NULL;
        int c;

        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        config = optarg;
                        break;
                case 'h':
                        printf("%s [-c FILE|--config FILE]\n", argv[0]);
                        return 1;
                default:
                        return -EINVAL;
                }
        if (optind < argc)
                return -EINVAL;
        *ret_config = config_path_resolve(config);
        return 0;
}

const char *config_path_resolve(const char *arg) {
        const char *env;

        if (!isempty(arg))
                return arg;
        env = getenv("TERN_CONFIG");
        return isempty(env) ? CONFIG_DEFAULT_PATH : env;
}

static const char *const config_type_names[] = {
        [CONFIG_STRING] = "string",
        [CONFIG_PATH] = "path",
        [CONFIG_USER] = "user",
        [CONFIG_HOSTNAME] = "hostname",
        [CONFIG_DOMAINS] = "domains",
        [CONFIG_NETLIST] = "networks",
        [CONFIG_UINT64] = "number",
        [CONFIG_SIZE] = "size",
        [CONFIG_TIMESPAN] = "timespan",
        [CONFIG_MAILBOX_FORMAT] = "choice",
        [CONFIG_MAILBOX_PATH] = "mailbox path",
        [CONFIG_PATH_OPT] = "path",
        [CONFIG_CHOICE] = "choice",
        [CONFIG_BOOL] = "boolean",
};

int config_key_info(size_t i, ConfigKeyInfo *ret) {
        const ConfigKey *k;

        if (i >= N_KEYS)
                return -ENOENT;
        k = &config_keys[i];
        *ret = (ConfigKeyInfo) {
                .section = k->section,
                .name = k->name,
                .type = (size_t) k->type < ELEMENTSOF(config_type_names) && config_type_names[k->type]
                                ? config_type_names[k->type] : "string",
                .default_text = k->default_text ?: "",
                .description = k->description,
                .postfix = k->postfix,
                .choices = k->type == CONFIG_MAILBOX_FORMAT ? "maildir mbox" : k->choices,
                .min = k->min,
                .max = k->max,
        };
        return 0;
}

int config_key_source(const Config *c, const char *section, const char *name, ConfigSource *ret) {
        for (size_t i = 0; i < N_KEYS; i++)
                if (strcasecmp(config_keys[i].section, section) == 0 &&
                    strcasecmp(config_keys[i].name, name) == 0) {
                        if (!c->_sources)
                                return -ENOENT;
                        *ret = c->_sources[i];
                        return 0;
                }
        return -ENOENT;
}
