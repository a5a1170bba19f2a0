/* What the child of one target does once it has become the target's
 * account (local_target.c): the mailbox (after the user's .forward), a file,
 * a command, a virtual mailbox; and how the results of several targets of
 * one recipient are merged. */
#pragma once

#include "local_run.h"

void local_child_mailbox(const LocalCtx *ctx, const LocalTarget *t, const LocalUser *u,
                         DeliveryResult *res);
void local_child_file(const LocalCtx *ctx, const LocalTarget *t, const LocalUser *u,
                      DeliveryResult *res);
void local_child_command(const LocalCtx *ctx, const LocalTarget *t, const LocalUser *u,
                         DeliveryResult *res);
void local_child_virtual(const LocalCtx *ctx, const LocalTarget *t, const LocalUser *u,
                         DeliveryResult *res);

/* Keeps in *total the worst of the results so far (deferred, then bounced,
 * then delivered); *first: total holds nothing yet. */
void local_merge(DeliveryResult *total, const DeliveryResult *part, bool *first);

/* The envelope sender for a target: its owner- alias, else the message's. */
const char *local_target_sender(const LocalCtx *ctx, const LocalTarget *t);
