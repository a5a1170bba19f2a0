/* sendmail(8) for tern, also run as mailq and newaliases (by argv[0]).
 * It is not setuid: it submits through queued's world-connectable socket and
 * queued learns who we are from SO_PEERCRED. Exit codes are sysexits.h, as
 * cron, mailx and every other caller of sendmail expect. */

#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <pwd.h>
#include <sysexits.h>
#include <time.h>
#include <ctype.h>
#include <inttypes.h>
#include <strings.h>
#include <sys/wait.h>

#include "config.h"
#include "headers.h"
#include "message.h"
#include "queue_list.h"
#include "submit.h"
#include "table.h"
#include "tern-build.h"

typedef enum SendmailMode {
        MODE_SEND,
        MODE_LIST,
        MODE_FLUSH,
        MODE_NEWALIASES,
        MODE_SMTP,      /* -bs: an SMTP dialogue on stdin/stdout, by tern-smtpd */
        MODE_NOTHING,   /* -qINTERVAL alone */
} SendmailMode;

typedef struct Options {
        const char *program;
        SendmailMode mode;
        const char *config;
        const char *sender;     /* -f, NULL: the user */
        const char *full_name;  /* -F */
        bool extract;           /* -t */
        bool ignore_dots;       /* -i, -oi */
        char notify[64];        /* -N, upper case */
        const char *ret;        /* -R */
        const char *envid;      /* -V */
        const char *body_type;  /* -B */
        unsigned verbose;       /* -v: say what happens on stderr */
} Options;

static int usage_error(const Options *o, const char *fmt, ...) _printf_(2, 3);
static int usage_error(const Options *o, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "%s: ", o->program);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry '%s --help'.\n", o->program);
        return EX_USAGE;
}

static void help(const Options *o) {
        printf("Usage: %s [OPTION...] [--] [RECIPIENT...] < message\n"
               "       mailq | %s -bp          list the queue\n"
               "       %s -q                 try every deferred message now\n"
               "       %s -bs                SMTP dialogue on standard input and output\n"
               "       newaliases | %s -bi   compile the aliases file (AliasFile)\n"
               "\n"
               "  -t            add the recipients of To:, Cc:, Bcc: (Bcc: is removed)\n"
               "  -i, -oi       a line with a single dot does not end the message\n"
               "  -f SENDER     envelope sender (-f '<>': null sender)\n"
               "  -F NAME       full name for the From: header sendmail adds\n"
               "  -N LIST       DSN: never or success,failure,delay\n"
               "  -R full|hdrs  DSN: what a bounce returns\n"
               "  -V ENVID      DSN envelope id\n"
               "  -v            say what happens (recipients accepted, queue id)\n"
               "  -B 7BIT|8BITMIME  body type\n"
               "  -c, --config FILE  configuration (default $TERN_CONFIG, %s)\n"
               "  --help, --version\n"
               "Accepted and ignored: -o* other than -oi (-oem, -oep...), -G -U -m -n, -L -X -O -h -e -p -A ARG, -qINTERVAL.\n",
               o->program, o->program, o->program, o->program, o->program, CONFIG_DEFAULT_PATH);
}

/* -N never | success,failure,delay (RFC 3461 4.1), in the upper case queued stores. */
static bool parse_notify(const char *arg, char *out, size_t size) {
        size_t n = strlen(arg);
        const char *p = arg;

        if (n == 0 || n >= size)
                return false;
        for (size_t i = 0; i <= n; i++)
                out[i] = (char) toupper((unsigned char) arg[i]);
        if (streq(out, "NEVER"))
                return true;
        for (p = out; *p;) {
                size_t l = strcspn(p, ",");
                if (!((l == 7 && strncmp(p, "SUCCESS", 7) == 0) ||
                      (l == 7 && strncmp(p, "FAILURE", 7) == 0) ||
                      (l == 5 && strncmp(p, "DELAY", 5) == 0)))
                        return false;
                p += l;
                if (*p == ',')
                        p++;
        }
        return true;
}

static const char *parse_upper_choice(const char *arg, const char *a, const char *b) {
        if (strcasecmp(arg, a) == 0)
                return a;
        if (strcasecmp(arg, b) == 0)
                return b;
        return NULL;
}

/* Returns -1 to go on, or an exit code. */
static int parse_argv(int argc, char *argv[], Options *o) {
        enum { ARG_VERSION = 0x100, ARG_HELP };
        static const struct option longopts[] = {
                { "config", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, ARG_HELP },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        int c;

        /* '+': options end at the first recipient, as in Postfix on Linux. */
        while ((c = getopt_long(argc, argv, "+A:B:C:F:GIL:N:O:R:UV:X:b:c:e:f:h:imno:p:q::r:tv",
                                longopts, NULL)) >= 0) {
                switch (c) {
                case ARG_HELP:
                        help(o);
                        return EX_OK;
                case ARG_VERSION:
                        printf("tern %s\n", TERN_VERSION);
                        return EX_OK;
                case 'c':
                case 'C':
                        o->config = optarg;
                        break;
                case 'B':
                        o->body_type = parse_upper_choice(optarg, "7BIT", "8BITMIME");
                        if (!o->body_type)
                                return usage_error(o, "-B wants 7BIT or 8BITMIME, not \"%s\"", optarg);
                        break;
                case 'F':
                        o->full_name = optarg;
                        break;
                case 'I':
                        o->mode = MODE_NEWALIASES;
                        break;
                case 'N':
                        if (!parse_notify(optarg, o->notify, sizeof(o->notify)))
                                return usage_error(o, "-N wants never or a list of success, failure, delay, not \"%s\"", optarg);
                        break;
                case 'R':
                        o->ret = parse_upper_choice(optarg, "FULL", "HDRS");
                        if (!o->ret)
                                return usage_error(o, "-R wants full or hdrs, not \"%s\"", optarg);
                        break;
                case 'V':
                        o->envid = optarg;
                        break;
                case 'b':
                        if (streq(optarg, "m"))
                                o->mode = MODE_SEND;
                        else if (streq(optarg, "p"))
                                o->mode = MODE_LIST;
                        else if (streq(optarg, "i"))
                                o->mode = MODE_NEWALIASES;
                        else if (streq(optarg, "s"))
                                o->mode = MODE_SMTP;
                        else
                                return usage_error(o, "-b%s is not supported by tern", optarg);
                        break;
                case 'f':
                case 'r':
                        o->sender = optarg;
                        break;
                case 'i':
                        o->ignore_dots = true;
                        break;
                case 'o':
                        /* -oi is -i; the other Sendmail options configure things
                         * tern decides itself, and Postfix ignores them too:
                         * -oem/-oep (mail or print errors: a refusal is always
                         * printed and in the exit code, a later failure is
                         * always mailed back), -odi/-odb, -om, -oQ... */
                        if (streq(optarg, "i"))
                                o->ignore_dots = true;
                        break;
                case 'q':
                        if (!optarg)
                                o->mode = MODE_FLUSH;
                        else if (!isdigit((unsigned char) optarg[0]))
                                return usage_error(o, "-q%s is not supported by tern", optarg);
                        else
                                /* -q30m: a queue run interval; queued runs its
                                 * own timers, so there is nothing to do. */
                                o->mode = MODE_NOTHING;
                        break;
                case 't':
                        o->extract = true;
                        break;
                case 'v':
                        o->verbose++;
                        break;
                case 'A': case 'L': case 'O': case 'X': case 'e': case 'h': case 'p':
                case 'G': case 'U': case 'm': case 'n':
                        /* Compatibility flags with no meaning for tern. */
                        break;
                default:
                        fprintf(stderr, "Try '%s --help'.\n", o->program);
                        return EX_USAGE;
                }
        }
        return -1;
}


static int strv_add_unique(char ***l, size_t *n, const char *s) {
        for (size_t i = 0; i < *n; i++)
                if (streq((*l)[i], s))
                        return 0;
        char **p = reallocarray_safe(*l, *n + 2, sizeof(char *));
        if (!p)
                return -ENOMEM;
        *l = p;
        p[*n] = strdup(s);
        if (!p[*n])
                return -ENOMEM;
        p[++*n] = NULL;
        return 0;
}



/* The From: address and name sendmail adds: the envelope sender qualified
 * with the host name (RFC 5322 3.4.1 wants a domain), the name from -F or
 * the GECOS field. */
static int from_identity(const Options *o, const struct passwd *pw, const char *sender,
                         const char *hostname, char **ret_name, char **ret_addr) {
        _cleanup_free_ char *name = NULL, *addr = NULL;

        if (o->full_name)
                name = strdup(o->full_name);
        else
                name = strndup(pw->pw_gecos ? pw->pw_gecos : "",
                               strcspn(pw->pw_gecos ? pw->pw_gecos : "", ","));
        if (!name)
                return -ENOMEM;
        if (isempty(sender))
                sender = pw->pw_name;
        if (strchr(sender, '@'))
                addr = strdup(sender);
        else if (asprintf(&addr, "%s@%s", sender, hostname) < 0)
                addr = NULL;
        if (!addr)
                return -ENOMEM;
        *ret_name = TAKE_PTR(name);
        *ret_addr = TAKE_PTR(addr);
        return 0;
}

static void format_error(const SubmitError *e, char *buf, size_t size) {
        const char *text = e->text;
        char code[16] = "";

        if (e->code > 0)
                (void) snprintf(code, sizeof(code), "%u ", e->code);
        /* Do not repeat a DSN queued already put in its text. */
        if (!isempty(e->dsn) && strncmp(text, e->dsn, strlen(e->dsn)) != 0)
                (void) snprintf(buf, size, "%s%s %s", code, e->dsn, text);
        else
                (void) snprintf(buf, size, "%s%s", code, text);
}

/* Postfix's and Sendmail's mapping of a refusal to sysexits.h. */
static int exit_code_for(const SubmitError *e) {
        if (e->code >= 400 && e->code < 500)
                return EX_TEMPFAIL;
        if (strncmp(e->dsn, "5.1.", 4) == 0 || e->code == 550)
                return EX_NOUSER;
        return EX_UNAVAILABLE;
}

static int lost_queue(const Options *o, int r) {
        if (r == -EBADMSG || r == -EPROTO) {
                /* Not a failure that waiting cures: a version mismatch or a bug. */
                fprintf(stderr, "%s: the tern queue answered something unexpected: %s\n", o->program,
                        strerror(-r));
                return EX_SOFTWARE;
        }
        fprintf(stderr, "%s: lost the connection to the tern queue: %s\n", o->program,
                strerror(-r));
        return EX_TEMPFAIL;
}

static int refused(const Options *o, const char *what, const SubmitError *e) {
        char buf[700];

        format_error(e, buf, sizeof(buf));
        fprintf(stderr, "%s: %s: %s\n", o->program, what, buf);
        return exit_code_for(e);
}


static int send_message(const Options *o, const Config *c, char **rcpt_args) {
        _cleanup_(submit_freep) Submit *s = NULL;
        _cleanup_free_ char *msg = NULL, *qid = NULL, *final_id = NULL, *from_name = NULL,
                            *from_addr = NULL,
                            *added = NULL, *sender = NULL;
        _cleanup_strv_free_ char **rcpts = NULL;
        HeaderScan h = {};
        SubmitError e;
        size_t len, n_rcpts = 0, accepted = 0;
        int r, ret = EX_OK;

        const struct passwd *pw = getpwuid(getuid());
        if (!pw) {
                fprintf(stderr, "%s: cannot find the name of user id %u\n", o->program,
                        (unsigned) getuid());
                return EX_OSERR;
        }

        const char *hostname = isempty(c->hostname) ? "localhost" : c->hostname;

        r = message_read(STDIN_FILENO, c->message_size_limit, o->ignore_dots, &msg, &len);
        if (r == -EFBIG) {
                fprintf(stderr, "%s: message exceeds size limit (%" PRIu64 " bytes)\n",
                        o->program, c->message_size_limit);
                return EX_DATAERR;
        }
        if (r < 0) {
                fprintf(stderr, "%s: cannot read the message: %s\n", o->program, strerror(-r));
                return r == -ENOMEM ? EX_OSERR : EX_IOERR;
        }

        r = headers_scan(msg, len, &h);
        if (r < 0) {
                fprintf(stderr, "%s: cannot read the message header: %s\n", o->program,
                        r == -E2BIG ? "too many recipients" :
                        r == -EINVAL ? "an address is too long" : strerror(-r));
                return r == -ENOMEM ? EX_OSERR : EX_DATAERR;
        }

        /* Postfix's -t adds the header recipients to those of the command line. */
        for (char **a = rcpt_args; *a && r >= 0; a++) {
                _cleanup_strv_free_ char **l = NULL;
                size_t n = 0;
                r = headers_parse_address_list(*a, strlen(*a), &l, &n);
                for (size_t i = 0; r >= 0 && i < n; i++)
                        r = strv_add_unique(&rcpts, &n_rcpts, l[i]);
                if (r == -EINVAL) {
                        headers_scan_done(&h);
                        return usage_error(o, "recipient \"%s\" is too long", *a);
                }
        }
        for (size_t i = 0; o->extract && r >= 0 && i < h.n_recipients; i++)
                r = strv_add_unique(&rcpts, &n_rcpts, h.recipients[i]);
        if (r < 0) {
                headers_scan_done(&h);
                fprintf(stderr, "%s: %s\n", o->program, strerror(-r));
                return EX_OSERR;
        }
        if (n_rcpts == 0) {
                headers_scan_done(&h);
                fprintf(stderr, "%s: %s\n", o->program,
                        o->extract ? "no recipient addresses found in the message header"
                                   : "no recipients given (name them or use -t)");
                return o->extract ? EX_DATAERR : EX_USAGE;
        }

        if (o->sender) {
                /* "-f <a@b>" and "-f <>" are common; queued wants the bare path. */
                size_t n = strlen(o->sender);
                if (n >= 2 && o->sender[0] == '<' && o->sender[n - 1] == '>')
                        sender = strndup(o->sender + 1, n - 2);
                else
                        sender = strdup(o->sender);
        } else
                sender = strdup(pw->pw_name);
        if (!sender) {
                headers_scan_done(&h);
                return EX_OSERR;
        }

        r = submit_connect(c->queued_socket, &s);
        if (r < 0) {
                headers_scan_done(&h);
                fprintf(stderr, "%s: cannot connect to the tern queue (%s): %s\n", o->program,
                        c->queued_socket, strerror(-r));
                return EX_TEMPFAIL;
        }
        SubmitEnvelope env = {
                .sender = sender,
                .size = len,
                .envid = o->envid,
                .ret = o->ret,
                .body_type = o->body_type,
        };
        r = submit_begin(s, &env, &qid, &e);
        if (r == -EREMOTEIO) {
                headers_scan_done(&h);
                return refused(o, "sender refused", &e);
        }
        if (r < 0) {
                headers_scan_done(&h);
                return lost_queue(o, r);
        }
        for (size_t i = 0; i < n_rcpts; i++) {
                r = submit_rcpt(s, rcpts[i], o->notify[0] ? o->notify : NULL, &e);
                if (r == -EREMOTEIO) {
                        /* Like Sendmail: the others still get the message, the
                         * exit code reports the refusal. */
                        int x = refused(o, rcpts[i], &e);
                        if (ret == EX_OK || x == EX_NOUSER)
                                ret = x;
                        continue;
                }
                if (r < 0) {
                        headers_scan_done(&h);
                        return lost_queue(o, r);
                }
                accepted++;
                if (o->verbose)
                        fprintf(stderr, "%s: <%s>... Recipient ok\n", o->program, rcpts[i]);
        }
        if (accepted == 0) {
                headers_scan_done(&h);
                (void) submit_abort(s);
                return ret;
        }

        r = from_identity(o, pw, sender, hostname, &from_name, &from_addr);
        if (r >= 0)
                r = message_added_fields(&h, &(MessageOrigin) {
                                .full_name = from_name,
                                .address = from_addr,
                                .queue_id = qid,
                                .hostname = hostname,
                                .now = time(NULL),
                        }, &added);
        if (r < 0) {
                headers_scan_done(&h);
                return EX_OSERR;
        }

        r = message_write(s, msg, len, &h, added);
        headers_scan_done(&h);
        if (r < 0)
                return lost_queue(o, r);
        if (c->message_size_limit > 0 && submit_bytes(s) > c->message_size_limit) {
                /* The added headers or CRLF line ends made it too large. */
                (void) submit_abort(s);
                fprintf(stderr, "%s: message exceeds size limit (%" PRIu64 " bytes)\n",
                        o->program, c->message_size_limit);
                return EX_DATAERR;
        }
        r = submit_end(s, &final_id, &e);
        if (r == -EREMOTEIO)
                return refused(o, "message refused", &e);
        if (r < 0)
                return lost_queue(o, r);
        if (o->verbose)
                fprintf(stderr, "%s: queued as %s\n", o->program, final_id);
        return ret;
}

static int load_config(const Options *o, Config **ret) {
        _cleanup_free_ char *dropin = NULL;
        const char *path = config_path_resolve(o->config);
        ConfigError error = {};
        char buf[700];
        int r;

        if (asprintf(&dropin, "%s.d", path) < 0)
                return EX_OSERR;
        r = config_load(path, dropin, ret, &error);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", o->program,
                        config_error_string(&error, buf, sizeof(buf)));
                return EX_CONFIG;
        }
        return EX_OK;
}

static int queue_command(const Options *o, const Config *c) {
        _cleanup_free_ char *error = NULL;
        int r;

        if (o->mode == MODE_LIST)
                r = queue_list_print(c->queued_socket, QUEUE_LIST_HUMAN, stdout, &error);
        else
                r = queue_list_flush(c->queued_socket, NULL, &error);
        if (r == -EREMOTEIO) {
                fprintf(stderr, "%s: %s\n", o->program, error);
                return EX_UNAVAILABLE;
        }
        if (r == -ENOENT || r == -ECONNREFUSED || r == -EACCES || r == -EPROTO) {
                fprintf(stderr, "%s: cannot connect to the tern queue (%s): %s\n", o->program,
                        c->queued_socket, strerror(-r));
                return EX_TEMPFAIL;
        }
        if (r < 0)
                return lost_queue(o, r);
        return EX_OK;
}

/* newaliases, sendmail -bi: AliasFile compiled into AliasFile.cdb, which
 * local delivery reads. */
static int newaliases(const Options *o, const Config *c) {
        int r;

        if (isempty(c->alias_file)) {
                printf("%s: no AliasFile is configured; nothing to do\n", o->program);
                return EX_OK;
        }
        r = table_build(c->alias_file, TABLE_ALIASES, stderr);
        if (r >= 0) {
                printf("%s: %d alias%s\n", c->alias_file, r, r == 1 ? "" : "es");
                return EX_OK;
        }
        /* table_build said what went wrong, with file and line. */
        if (r == -EINVAL)
                return EX_DATAERR;
        if (r == -ENOMEM)
                fprintf(stderr, "%s: %s\n", o->program, strerror(-r));
        if (r == -ENOENT)
                return EX_NOINPUT;
        if (r == -EACCES || r == -EPERM || r == -EROFS)
                return EX_CANTCREAT;
        return EX_OSERR;
}

/* sendmail -bs: the SMTP dialogue is tern-smtpd's, on our stdin and stdout
 * (it takes a descriptor that is not a network socket for a local client).
 * We wait for it instead of exec'ing it, to give the caller's terminal or
 * pipes their blocking mode back: smtpd makes them non-blocking, and the
 * flag belongs to the open file, which the caller shares. queued learns who
 * submits from smtpd's socket credentials, which are ours. */
static int smtp_dialogue(const Options *o) {
        const char *smtpd = getenv("TERN_SMTPD");
        const char *config = config_path_resolve(o->config);
        int flags_in = fcntl(STDIN_FILENO, F_GETFL), flags_out = fcntl(STDOUT_FILENO, F_GETFL);
        int status;
        pid_t pid;

        /* $TERN_SMTPD lets the tests run the build tree; sendmail is not
         * setuid, so it gives nobody anything they could not run themselves. */
        if (isempty(smtpd))
                smtpd = LIBEXECDIR "/tern-smtpd";
        fflush(stdout);
        pid = fork();
        if (pid < 0) {
                fprintf(stderr, "%s: cannot fork: %s\n", o->program, strerror(errno));
                return EX_OSERR;
        }
        if (pid == 0) {
                execl(smtpd, "tern-smtpd", "--config", config, "--role", "smtp", (char *) NULL);
                fprintf(stderr, "%s: cannot run %s: %s\n", o->program, smtpd, strerror(errno));
                _exit(EX_UNAVAILABLE);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        fprintf(stderr, "%s: lost tern-smtpd: %s\n", o->program, strerror(errno));
                        return EX_OSERR;
                }
        if (flags_in >= 0)
                (void) fcntl(STDIN_FILENO, F_SETFL, flags_in);
        if (flags_out >= 0)
                (void) fcntl(STDOUT_FILENO, F_SETFL, flags_out);
        if (WIFEXITED(status)) {
                if (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == EX_UNAVAILABLE)
                        return WEXITSTATUS(status);
                /* smtpd said 421 (queued unreachable, bad configuration). */
                return EX_TEMPFAIL;
        }
        fprintf(stderr, "%s: tern-smtpd was killed by signal %d\n", o->program, WTERMSIG(status));
        return EX_SOFTWARE;
}

int main(int argc, char *argv[]) {
        _cleanup_(config_freep) Config *c = NULL;
        const char *base = argv[0] ? strrchr(argv[0], '/') : NULL;
        Options o = { .program = "sendmail" };
        int r;

        base = base ? base + 1 : (argv[0] ? argv[0] : "sendmail");
        if (streq(base, "mailq")) {
                o.program = "mailq";
                o.mode = MODE_LIST;
        } else if (streq(base, "newaliases")) {
                o.program = "newaliases";
                o.mode = MODE_NEWALIASES;
        }

        r = parse_argv(argc, argv, &o);
        if (r >= 0)
                return r;
        if (o.mode != MODE_SEND && optind < argc)
                return usage_error(&o, "unexpected argument \"%s\"", argv[optind]);
        if (o.mode == MODE_SMTP)
                return smtp_dialogue(&o);
        if (o.mode == MODE_NOTHING)
                return EX_OK;

        r = load_config(&o, &c);
        if (r != EX_OK)
                return r;
        if (o.mode == MODE_LIST || o.mode == MODE_FLUSH)
                return queue_command(&o, c);
        if (o.mode == MODE_NEWALIASES)
                return newaliases(&o, c);
        return send_message(&o, c, argv + optind);
}
