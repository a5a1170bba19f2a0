/* Mail sent on by local delivery: to addresses found in an alias or a
 * .forward file, as a new message submitted to queued (as Postfix's local(8)
 * does through cleanup), and the reading of .forward files. */
#pragma once

#include "transport.h"

#define FORWARD_FILE_MAX (64u * 1024u)

/* Submits body to queued (Config.queued_socket) as a new message from
 * sender to addrs[0..n-1], with "Delivered-To: delivered_to" in front so that
 * a loop back to this recipient is seen. Fills res: DELIVERED ("forwarded as
 * ID"), BOUNCED when queued refuses a recipient with 5xx, otherwise DEFERRED. */
void forward_submit(const Config *c, const char *sender, const char *delivered_to,
                    char *const *addrs, size_t n, const uint8_t *body, size_t len,
                    DeliveryResult *res);

/* Reads the forward file at path as the calling user: 0 and its contents
 * (NUL-terminated) in *ret, NULL when it is absent or empty; -EINVAL (not a
 * regular file, larger than FORWARD_FILE_MAX, group/world-writable, or not
 * owned by uid) or -errno (e.g. -EACCES, the caller defers). */
int forward_read(const char *path, uid_t uid, char **ret);
