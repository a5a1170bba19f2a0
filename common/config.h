/* tern.conf: systemd-style INI with drop-ins, every key declared once in a
 * table (config.c) with its type, default, range and description. */
#pragma once

#include <stdint.h>
#include "network.h"
#include "util.h"

#define CONFIG_DEFAULT_PATH SYSCONFDIR_TERN "/tern.conf"
#define CONFIG_DEFAULT_DROPIN_DIR SYSCONFDIR_TERN "/tern.conf.d"
#ifndef SYSCONFDIR_TERN
#define SYSCONFDIR_TERN "/etc/tern"
#endif

typedef enum MailboxFormat {
        MAILBOX_MAILDIR,
        MAILBOX_MBOX,
        _MAILBOX_FORMAT_MAX,
        _MAILBOX_FORMAT_INVALID = -EINVAL,
} MailboxFormat;

typedef struct Config {
        /* [Server] */
        char *hostname;          /* myhostname; default: gethostname(), FQDN if resolvable */
        char **local_domains;    /* mydestination; "$hostname" is expanded */
        NetList trusted_networks;/* mynetworks */
        char *smtpd_user;        /* user smtpd runs as; trusted by queued */
        char *queue_user;        /* user queued runs as; trusted by deliverd */
        char *dns_resolver;      /* "127.0.0.1:5353" or "::1"; "" = /etc/resolv.conf */

        /* [Queue] */
        char *spool_directory;   /* queue_directory */
        char *queued_socket;
        char *deliverd_socket;
        uint64_t min_backoff_usec;       /* minimal_backoff_time */
        uint64_t max_backoff_usec;       /* maximal_backoff_time */
        uint64_t max_queue_lifetime_usec;/* maximal_queue_lifetime */
        uint64_t delivery_concurrency;   /* default_process_limit (deliveries in flight) */
        uint64_t destination_concurrency;/* default_destination_concurrency_limit */
        uint64_t delay_warning_usec;     /* delay_warning_time; 0: none */
        uint64_t bounce_queue_lifetime_usec; /* bounce_queue_lifetime */
        uint64_t hop_count_limit;        /* hopcount_limit (Received: headers) */

        /* [SMTP] */
        char *banner;                    /* smtpd_banner text after "220 hostname " */
        uint64_t message_size_limit;     /* message_size_limit, bytes */
        uint64_t recipient_limit;        /* smtpd_recipient_limit */
        uint64_t hard_error_limit;       /* smtpd_hard_error_limit */
        uint64_t timeout_usec;           /* smtpd_timeout (idle, per command) */
        uint64_t session_timeout_usec;   /* whole session */
        uint64_t session_recipient_limit;/* recipients in one session, all messages */
        uint64_t junk_command_limit;     /* smtpd_junk_command_limit */
        char *bare_line_ending;          /* "reject" or "normalize" */
        uint64_t pregreet_wait_usec;     /* postscreen_greet_wait; 0: only check at greeting */
        char *client_access, *helo_access, *sender_access, *recipient_access; /* "" = none */
        char **dns_blocklists;           /* reject_rbl_client zones */

        /* [TLS] (server side) */
        char *tls_certificate_file;      /* "" = no TLS */
        char *tls_key_file;
        char *tls_security_level;        /* "none", "may", "encrypt" */

        /* [Auth] */
        char *auth_backend;              /* "none", "table", "dovecot" */
        char *auth_password_table;       /* "" = none */
        char *auth_dovecot_socket;
        char *auth_sender_login_map;     /* "" = any sender */
        uint64_t auth_failure_limit;

        /* [Delivery] */
        char *relay_host;                /* relayhost: "[host]:port", "host:port" (MX lookup
                                            unless bracketed) or "" (MX of each recipient domain) */
        uint64_t smtp_connect_timeout_usec;  /* smtp_connect_timeout */
        uint64_t smtp_reply_timeout_usec;    /* smtp_*_timeout */
        char *transport_table;               /* "" = none */
        char *smtp_tls_security_level;       /* "none", "may", "encrypt", "verify" */
        char *smtp_tls_policy_table;         /* "" = none */
        char *smtp_tls_ca_file;              /* "" = system trust store */
        char *smtp_password_table;           /* "" = none */
        uint64_t smtp_connection_reuse_usec; /* 0: no reuse */

        /* [Local] */
        MailboxFormat mailbox_format;    /* home_mailbox Maildir/ vs mail_spool_directory */
        char *mailbox_path;              /* "~/Maildir/" or "/var/mail/%u"; %u user, ~ home */
        uint64_t local_delivery_timeout_usec;
        char *alias_file;                /* "" = none; compiled form alias_file".cdb" */
        char *forward_path;              /* "~/.forward" */
        char *recipient_delimiter;       /* "" = none */
        char *default_privileges;        /* default_privs: runs alias commands/files of root */

        /* [Virtual] */
        char **virtual_alias_domains;
        char *virtual_alias_map;         /* "" = none */
        char **virtual_mailbox_domains;
        char *virtual_mailbox_map;       /* "" = none */
        char *virtual_mailbox_base;
        char *virtual_mailbox_user;

        /* Private to config.c: where each key's value came from (one entry per
         * key of its table, in table order), and the names of the files read,
         * which those entries point into. */
        struct ConfigSource *_sources;
        char **_files;
} Config;

/* Where one key's value came from, for `ternctl config`. */
typedef struct ConfigSource {
        const char *file;  /* NULL: compiled-in default */
        unsigned line;
} ConfigSource;

/* A load error names the file, line and key. */
typedef struct ConfigError {
        char file[256];
        unsigned line;
        char key[64];
        char message[256];
} ConfigError;

/* Loads defaults, then path (absent is fine), then dropin_dir/(*.conf) in lexical
 * order. Returns 0 and a new Config in *ret (free with config_free), or -EINVAL
 * (bad syntax, unknown key, bad value: *error filled) or another -errno
 * (unreadable file: *error filled). path/dropin_dir NULL mean the defaults. */
int config_load(const char *path, const char *dropin_dir, Config **ret, ConfigError *error);

/* The configuration file a program reads: arg (from -c) if not empty, else
 * $TERN_CONFIG if not empty, else CONFIG_DEFAULT_PATH. Never NULL. */
const char *config_path_resolve(const char *arg);

/* The command line of the daemons (tern-queued, tern-deliverd):
 * [-c FILE|--config FILE] [-h|--help]. Returns 0 and the configuration path
 * (config_path_resolve) in *ret_config, 1 when the usage was printed for
 * --help, or -EINVAL for a bad command line. */
int config_parse_daemon_argv(int argc, char *argv[], const char **ret_config);

/* A Config with only the compiled-in defaults. */
int config_new_default(Config **ret);

Config *config_free(Config *c);
DEFINE_POINTER_CLEANUP(Config, config_free);

/* Formats "file:line: key: message" (or without file/line) into buf. */
const char *config_error_string(const ConfigError *e, char *buf, size_t size);

/* Writes the effective configuration as INI, each key followed by a comment
 * naming its source ("# default" or "# /etc/tern/tern.conf:12"), as `ternctl
 * config` prints it. Needs the sources recorded by config_load. */
int config_dump(const Config *c, FILE *f);

/* True when domain (without trailing dot, any case) is one of local_domains. */
bool config_is_local_domain(const Config *c, const char *domain);

MailboxFormat mailbox_format_from_string(const char *s);
const char *mailbox_format_to_string(MailboxFormat f);

/* Parsers shared with tests: "10M" / "10240000" -> bytes; "5d", "300s", "1h 30min",
 * plain number = seconds -> usec. Return 0 or -EINVAL / -ERANGE. */
int config_parse_size(const char *s, uint64_t *ret);
int config_parse_timespan(const char *s, uint64_t *ret_usec);

/* One key of the table, for documentation (tern.conf(5), docs/configuration.md
 * are generated from it by man/gen-config-doc) and for ternctl check. */
typedef struct ConfigKeyInfo {
        const char *section;
        const char *name;
        const char *type;         /* "path", "timespan", "size", "choice"... */
        const char *default_text; /* as written in the table, "" for empty */
        const char *description;
        const char *postfix;      /* closest Postfix parameter, or NULL */
        const char *choices;      /* CHOICE keys: the allowed words, else NULL */
        uint64_t min, max;        /* number, size (bytes), timespan (usec); 0, 0: none */
} ConfigKeyInfo;

/* The i-th key (table order). Returns 0, or -ENOENT past the last key. */
int config_key_info(size_t i, ConfigKeyInfo *ret);

/* Where section/name got its value in c (file NULL: default). Returns 0 or
 * -ENOENT (no such key, or c was not made by config_load). */
int config_key_source(const Config *c, const char *section, const char *name, ConfigSource *ret);
