/* Logging to journald with structured fields (sd_journal_sendv), falling back
 * to stderr when no journal is reachable (tests outside systemd).
 * common/ code never logs above debug: it returns errors to the caller. */
#pragma once

#include <syslog.h>
#include "util.h"

typedef struct LogField {
        const char *key;   /* "TERN_QUEUE_ID", without '=' */
        const char *value; /* NULL fields are skipped */
} LogField;

/* Opens logging for one process. ident is the SYSLOG_IDENTIFIER
 * ("tern-smtpd"...). Uses the journal when $JOURNAL_STREAM or $INVOCATION_ID
 * is set (started by systemd) or TERN_LOG=journal, stderr otherwise; TERN_LOG=stderr
 * forces stderr. Call before entering a sandbox: it opens the journal socket. */
void log_open(const char *ident);

/* Sets the minimum level that is emitted (default LOG_INFO; TERN_DEBUG=1 in the
 * environment gives LOG_DEBUG). */
void log_set_max_level(int level);

/* Process-wide context fields attached to every entry (e.g. TERN_SESSION,
 * TERN_CLIENT in smtpd). Key and value are copied; value NULL removes the key. */
int log_context_set(const char *key, const char *value);

/* Emits one entry: MESSAGE= from fmt, PRIORITY=, SYSLOG_IDENTIFIER=, the context
 * fields, the given fields, and ERRNO= when error != 0 (%m in fmt expands to
 * strerror(error)). Returns -abs(error), so callers can `return log_...errno(r, ...)`;
 * returns 0 when error is 0. */
int log_emit(int level, int error, const LogField *fields, size_t n_fields,
             const char *fmt, ...) _printf_(5, 6);

#define log_fields(level, fields, ...) \
        log_emit(level, 0, fields, ELEMENTSOF(fields), __VA_ARGS__)
#define log_fields_errno(level, error, fields, ...) \
        log_emit(level, error, fields, ELEMENTSOF(fields), __VA_ARGS__)

#define log_debug(...)   log_emit(LOG_DEBUG, 0, NULL, 0, __VA_ARGS__)
#define log_info(...)    log_emit(LOG_INFO, 0, NULL, 0, __VA_ARGS__)
#define log_notice(...)  log_emit(LOG_NOTICE, 0, NULL, 0, __VA_ARGS__)
#define log_warning(...) log_emit(LOG_WARNING, 0, NULL, 0, __VA_ARGS__)
#define log_error(...)   log_emit(LOG_ERR, 0, NULL, 0, __VA_ARGS__)
#define log_debug_errno(e, ...)   log_emit(LOG_DEBUG, e, NULL, 0, __VA_ARGS__)
#define log_info_errno(e, ...)    log_emit(LOG_INFO, e, NULL, 0, __VA_ARGS__)
#define log_warning_errno(e, ...) log_emit(LOG_WARNING, e, NULL, 0, __VA_ARGS__)
#define log_error_errno(e, ...)   log_emit(LOG_ERR, e, NULL, 0, __VA_ARGS__)

/* MESSAGE_IDs of searchable events (catalog in docs/ and units/). */
#define LOG_MID_CONNECT      "4f2b8a7e0c6d4b1e9a3f5c7d2e1b0a91"
#define LOG_MID_REJECT       "4f2b8a7e0c6d4b1e9a3f5c7d2e1b0a92"
#define LOG_MID_QUEUED       "4f2b8a7e0c6d4b1e9a3f5c7d2e1b0a93"
#define LOG_MID_DELIVERED    "4f2b8a7e0c6d4b1e9a3f5c7d2e1b0a94"
#define LOG_MID_DEFERRED     "4f2b8a7e0c6d4b1e9a3f5c7d2e1b0a95"
#define LOG_MID_BOUNCED      "4f2b8a7e0c6d4b1e9a3f5c7d2e1b0a96"
#define LOG_MID_REMOVED      "4f2b8a7e0c6d4b1e9a3f5c7d2e1b0a97"
#define LOG_MID_CONFIG_ERROR "4f2b8a7e0c6d4b1e9a3f5c7d2e1b0a98"
#define LOG_MID_RELOADED     "4f2b8a7e0c6d4b1e9a3f5c7d2e1b0a99"
