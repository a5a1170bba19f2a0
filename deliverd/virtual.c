/* Virtual mailboxes: the path came from route_resolve (MailboxBase + the
 * MailboxMap value, never outside MailboxBase); the format follows from its
 * last character, as in Postfix. */
#include <sys/stat.h>

#include "local.h"
#include "maildir.h"
#include "mbox.h"
#include "virtual.h"

bool virtual_is_maildir(const char *path) {
        size_t n = strlen(path);
        return n > 0 && path[n - 1] == '/';
}

static int virtual_mkdir_parents(const char *path) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, 0700) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        return 0;
}

void virtual_deliver(const char *path, const char *hostname, const char *from_line, const char *msg,
                     size_t len, uint64_t lock_timeout_usec, DeliveryResult *res) {
        int r;

        if (virtual_is_maildir(path)) {
                maildir_deliver(path, hostname, msg, len, res);
                return;
        }
        r = virtual_mkdir_parents(path);
        if (r < 0)
                return local_result_errno(res, r, "cannot create the directory of \"%s\"", path);
        mbox_deliver(path, from_line, msg, len, lock_timeout_usec, res);
}
