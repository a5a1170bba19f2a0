/* Queue administration client shared by ternctl and mailq: lists the queue
 * (IPC_QUEUE_LIST) in Postfix's mailq shape or as JSON, and flushes it. */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include "util.h"

typedef enum QueueListFormat {
        QUEUE_LIST_HUMAN,   /* like Postfix's mailq */
        QUEUE_LIST_JSON,    /* one JSON array */
        _QUEUE_LIST_FORMAT_MAX,
        _QUEUE_LIST_FORMAT_INVALID = -EINVAL,
} QueueListFormat;

/* Connects to queued at path (role "ctl"), asks for the queue and prints each
 * entry to f as it arrives. Returns 0; -ECONNREFUSED/-ENOENT... when queued is
 * unreachable; -EREMOTEIO when queued refused (*ret_error is its text, caller
 * frees); -EBADMSG when it answered nonsense. */
int queue_list_print(const char *path, QueueListFormat format, FILE *f, char **ret_error);

/* Asks queued to try every deferred message now, or only message id (non-NULL).
 * Returns as queue_list_print. */
int queue_list_flush(const char *path, const char *id, char **ret_error);

/* Writes s as a JSON string literal (quotes included); invalid UTF-8 becomes U+FFFD. */
void queue_list_json_string(FILE *f, const char *s);
