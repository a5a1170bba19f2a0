/* Delivery to a command ("|program" in an alias or .forward), run in the
 * local child that has already become the user the command runs as. */
#pragma once

#include "transport.h"

#define PIPE_OUTPUT_MAX 400u

/* The environment of the command (local(8)'s variables); NULL members are
 * left out. */
typedef struct PipeEnv {
        const char *sender, *recipient, *original_recipient;
        const char *user, *home, *shell;        /* the account the command runs as */
        const char *local, *extension, *domain; /* of the recipient */
} PipeEnv;

/* Runs /bin/sh -c command in its own process group with a clean
 * environment, PATH=/usr/bin:/bin, msg on stdin (a command that does not
 * read it all is fine), stdout+stderr collected, and kills the group at the
 * time limit. Fills res: 0 delivered; 75 (EX_TEMPFAIL) or a signal:
 * deferred 4.3.0; the time limit or any other exit status: bounced 5.3.0
 * with the command's output as text. */
void pipe_deliver(const char *command, const PipeEnv *env, const char *msg, size_t len,
                  uint64_t timeout_usec, DeliveryResult *res);

/* The text of a bounce for exit status (pure, for tests): "Command died
 * with status N: OUTPUT". */
void pipe_format_output(char *buf, size_t size, int status, const char *out, size_t out_len);
