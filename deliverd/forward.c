/* Forwarding by local delivery. A new message rather than in-place
 * delivery: the new envelope gets its own retries and bounces (to the
 * owner- alias when there is one), and the Delivered-To: header put in front
 * ends forwarding loops (local.c refuses a message that already carries one
 * for the recipient). */
#include <fcntl.h>
#include <sys/stat.h>

#include "alias.h"
#include "forward.h"
#include "local.h"
#include "submit.h"

static void forward_refused(DeliveryResult *res, const char *what, const SubmitError *e) {
        local_result(res, e->code >= 500 ? DELIVERY_BOUNCED : DELIVERY_DEFERRED,
                     e->dsn[0] ? e->dsn : (e->code >= 500 ? "5.0.0" : "4.3.0"),
                     "cannot forward%s%s: %u %s", what ? " to " : "", what ?: "", e->code, e->text);
}

void forward_submit(const Config *c, const char *sender, const char *delivered_to,
                    char *const *addrs, size_t n, const uint8_t *body, size_t len,
                    DeliveryResult *res) {
        _cleanup_(submit_freep) Submit *s = NULL;
        _cleanup_free_ char *id = NULL, *final_id = NULL, *hdr = NULL;
        SubmitEnvelope env = { .sender = sender, .size = len };
        SubmitError e = {};
        int r;

        r = submit_connect(c->queued_socket, &s);
        if (r < 0)
                return local_result_errno(res, r, "cannot forward: connecting to the queue \"%s\"",
                                          c->queued_socket);
        r = submit_begin(s, &env, &id, &e);
        if (r == -EREMOTEIO)
                return forward_refused(res, NULL, &e);
        if (r < 0)
                return local_result_errno(res, r, "cannot forward");
        for (size_t i = 0; i < n; i++) {
                r = submit_rcpt(s, addrs[i], NULL, &e);
                if (r == -EREMOTEIO) {
                        (void) submit_abort(s);
                        return forward_refused(res, addrs[i], &e);
                }
                if (r < 0)
                        return local_result_errno(res, r, "cannot forward");
        }
        /* Addresses are validated before they get here, but the header must
         * never be split whatever the recipient holds. */
        if (asprintf(&hdr, "Delivered-To: %s", delivered_to) < 0) {
                hdr = NULL;
                return local_result_errno(res, -ENOMEM, "cannot forward");
        }
        for (char *p = hdr; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';
        r = submit_write(s, hdr, strlen(hdr));
        if (r >= 0)
                r = submit_write(s, "\r\n", 2);
        if (r >= 0)
                r = submit_write(s, body, len);
        if (r < 0)
                return local_result_errno(res, r, "cannot forward");
        r = submit_end(s, &final_id, &e);
        if (r == -EREMOTEIO)
                return forward_refused(res, NULL, &e);
        if (r < 0)
                return local_result_errno(res, r, "cannot forward");
        local_result(res, DELIVERY_DELIVERED, "2.0.0", "forwarded as %s", final_id ?: id);
}

int forward_read(const char *path, uid_t uid, char **ret) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t n = 0;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                if (errno == ENOENT || errno == ENOTDIR) {
                        *ret = NULL;
                        return 0;
                }
                return -errno;
        }
        if (fstat(fd, &st) < 0)
                return -errno;
        /* As sendmail and Postfix: a file others may change is not the user's word. */
        if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size > FORWARD_FILE_MAX ||
            (st.st_mode & (S_IWGRP | S_IWOTH)) || (st.st_uid != uid && st.st_uid != 0))
                return -EINVAL;
        r = alias_read_list_file(fd, &st, &buf, &n);
        if (r < 0)
                return r == -EBADMSG ? -EINVAL : r;
        if (strspn(buf, " \t\r\n,") == n) {
                *ret = NULL;
                return 0;
        }
        *ret = TAKE_PTR(buf);
        return 0;
}
