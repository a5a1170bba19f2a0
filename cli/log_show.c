/* `ternctl log ID`: one message's whole life from the journal, across
 * tern-smtpd, tern-queued and tern-deliverd, in time order; `ternctl log
 * --follow [ID]`: deliveries (or one message) as they happen. Entries are
 * found by their structured fields, never by parsing MESSAGE= text. */
#include <inttypes.h>
#include <time.h>
#include <systemd/sd-journal.h>

#include "log.h"
#include "log_show.h"
#include "ternctl.h"

#define LOG_SHOW_SESSIONS_MAX 64u   /* smtpd sessions of one message (resubmissions) */
#define LOG_SHOW_VALUE_MAX 256u

/* A journal field's value as a C string in buf (truncated), or NULL. */
static const char *field(sd_journal *j, const char *name, char *buf, size_t size) {
        const void *data;
        size_t len, nl = strlen(name);

        if (sd_journal_get_data(j, name, &data, &len) < 0 || len <= nl ||
            ((const char *) data)[nl] != '=')
                return NULL;
        len -= nl + 1;
        if (len >= size)
                len = size - 1;
        memcpy(buf, (const char *) data + nl + 1, len);
        buf[len] = 0;
        return buf;
}

/* One line in journalctl's short-precise shape:
 * "Nov 23 10:01:02.123456 host tern-queued[123]: MESSAGE". */
static int print_entry(sd_journal *j, FILE *f) {
        char host[LOG_SHOW_VALUE_MAX], ident[LOG_SHOW_VALUE_MAX], pid[32], stamp[64];
        char message[8192];
        uint64_t usec;
        struct tm tm;
        time_t t;
        int r;

        r = sd_journal_get_realtime_usec(j, &usec);
        if (r < 0)
                return r;
        t = (time_t) (usec / 1000000u);
        if (!localtime_r(&t, &tm) || strftime(stamp, sizeof(stamp), "%b %d %H:%M:%S", &tm) == 0)
                stamp[0] = 0;
        fprintf(f, "%s.%06" PRIu64 " %s %s[%s]: %s\n", stamp, usec % 1000000u,
                field(j, "_HOSTNAME", host, sizeof(host)) ?: "localhost",
                field(j, "SYSLOG_IDENTIFIER", ident, sizeof(ident)) ?: "tern",
                field(j, "_PID", pid, sizeof(pid)) ?: "?",
                field(j, "MESSAGE", message, sizeof(message)) ?: "");
        return 0;
}

static bool id_valid(const char *id) {
        size_t n = strlen(id);

        if (n == 0 || n >= LOG_SHOW_VALUE_MAX)
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
                        return false;
        return true;
}

static int add_match(sd_journal *j, const char *key, const char *value) {
        char m[LOG_SHOW_VALUE_MAX + 64];
        int n = snprintf(m, sizeof(m), "%s=%s", key, value);

        if (n < 0 || (size_t) n >= sizeof(m))
                return -EINVAL;
        return sd_journal_add_match(j, m, (size_t) n);
}

/* The TERN_SESSION values of the entries that carry TERN_QUEUE_ID=id: the
 * smtpd sessions that received it, whose connect/HELO lines come before the
 * queue id exists. */
static int collect_sessions(sd_journal *j, const char *id, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;
        int r;

        r = add_match(j, "TERN_QUEUE_ID", id);
        if (r < 0)
                return r;
        SD_JOURNAL_FOREACH(j) {
                char s[LOG_SHOW_VALUE_MAX];
                bool seen = false;

                if (!field(j, "TERN_SESSION", s, sizeof(s)) || !id_valid(s))
                        continue;
                for (size_t i = 0; i < n; i++)
                        seen = seen || streq(l[i], s);
                if (seen || n >= LOG_SHOW_SESSIONS_MAX)
                        continue;
                char **nl = reallocarray_safe(l, n + 2, sizeof(char *));
                if (!nl)
                        return -ENOMEM;
                l = nl;
                l[n] = strdup(s);
                if (!l[n])
                        return -ENOMEM;
                l[++n] = NULL;
        }
        sd_journal_flush_matches(j);
        *ret = TAKE_PTR(l);
        return (int) n;
}

/* Matches TERN_QUEUE_ID=id OR TERN_SESSION=one of sessions. */
static int match_message(sd_journal *j, const char *id, char **sessions) {
        int r = add_match(j, "TERN_QUEUE_ID", id);

        for (size_t i = 0; r >= 0 && sessions && sessions[i]; i++) {
                r = sd_journal_add_disjunction(j);
                if (r >= 0)
                        r = add_match(j, "TERN_SESSION", sessions[i]);
        }
        return r;
}

/* A session entry is shown when it belongs to no message (connect, HELO,
 * disconnect) or to this one; a session may have carried other messages. */
static bool entry_wanted(sd_journal *j, const char *id) {
        char q[LOG_SHOW_VALUE_MAX];

        return !field(j, "TERN_QUEUE_ID", q, sizeof(q)) || streq(q, id);
}

static int open_journal(sd_journal **ret) {
        int r = sd_journal_open(ret, SD_JOURNAL_LOCAL_ONLY);

        if (r < 0)
                fprintf(stderr, "ternctl: cannot open the journal: %s\n", strerror(-r));
        return r;
}

int log_show_message(const char *id, bool follow, FILE *f) {
        _cleanup_(sd_journal_closep) sd_journal *j = NULL;
        _cleanup_strv_free_ char **sessions = NULL;
        size_t shown = 0;
        int r;

        if (!id_valid(id)) {
                fprintf(stderr, "ternctl: \"%s\" is not a queue id\n", id);
                return -EINVAL;
        }
        r = open_journal(&j);
        if (r < 0)
                return r;
        r = collect_sessions(j, id, &sessions);
        if (r >= 0)
                r = match_message(j, id, sessions);
        if (r < 0) {
                fprintf(stderr, "ternctl: cannot search the journal: %s\n", strerror(-r));
                return r;
        }
        SD_JOURNAL_FOREACH(j) {
                if (!entry_wanted(j, id))
                        continue;
                (void) print_entry(j, f);
                shown++;
        }
        (void) fflush(f);
        if (!follow) {
                if (shown == 0) {
                        fprintf(stderr, "ternctl: no journal entries for %s\n", id);
                        return -ENOENT;
                }
                return 0;
        }
        for (;;) {
                r = sd_journal_wait(j, UINT64_MAX);
                if (r < 0)
                        return r;
                while ((r = sd_journal_next(j)) > 0)
                        if (entry_wanted(j, id))
                                (void) print_entry(j, f);
                if (r < 0)
                        return r;
                if (fflush(f) != 0)
                        return 0; /* the reader went away (head, a closed pipe) */
        }
}

int log_show_deliveries(FILE *f) {
        static const char *const ids[] = {
                LOG_MID_QUEUED, LOG_MID_DELIVERED, LOG_MID_DEFERRED, LOG_MID_BOUNCED,
                LOG_MID_REMOVED,
        };
        _cleanup_(sd_journal_closep) sd_journal *j = NULL;
        int r;

        r = open_journal(&j);
        if (r < 0)
                return r;
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(ids); i++)
                r = add_match(j, "MESSAGE_ID", ids[i]);
        /* The last ten events give context, as `journalctl -f` does. */
        if (r >= 0)
                r = sd_journal_seek_tail(j);
        if (r >= 0)
                r = sd_journal_previous_skip(j, 10);
        if (r < 0) {
                fprintf(stderr, "ternctl: cannot search the journal: %s\n", strerror(-r));
                return r;
        }
        /* previous_skip left us on the oldest of the ten; print it and on. */
        if (r > 0)
                (void) print_entry(j, f);
        for (;;) {
                while ((r = sd_journal_next(j)) > 0)
                        (void) print_entry(j, f);
                if (r < 0)
                        return r;
                if (fflush(f) != 0)
                        return 0;
                r = sd_journal_wait(j, UINT64_MAX);
                if (r < 0)
                        return r;
        }
}

int verb_log(const char *config_path, int argc, char **argv) {
        const char *id = NULL;
        bool follow = false;
        int r;

        for (int i = 1; i < argc; i++) {
                if (streq(argv[i], "-f") || streq(argv[i], "--follow"))
                        follow = true;
                else if (argv[i][0] == '-')
                        return ternctl_usage_error("unknown option \"%s\" for log", argv[i]);
                else if (id)
                        return ternctl_usage_error("log takes one queue id, not also \"%s\"", argv[i]);
                else
                        id = argv[i];
        }
        if (!id && !follow)
                return ternctl_usage_error("%s", "log needs a queue id, or --follow");
        r = id ? log_show_message(id, follow, stdout) : log_show_deliveries(stdout);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
