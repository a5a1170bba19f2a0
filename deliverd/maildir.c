/* Maildir delivery (https://cr.yp.to/proto/maildir.html): a unique name in
 * tmp/, written with O_EXCL|O_NOFOLLOW and fsynced, then hard-linked into new/
 * and new/ fsynced, so a reader never sees a partial message and a crash never
 * loses an acknowledged one. Runs as the recipient. */
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include "local.h"
#include "maildir.h"

static unsigned maildir_counter;

/* mkdir -p with mode 0700 for every missing component (as the user). */
static int maildir_mkdir_p(const char *path) {
        _cleanup_free_ char *p = strdup(path);
        size_t n;

        if (!p)
                return -ENOMEM;
        n = strlen(p);
        while (n > 1 && p[n - 1] == '/')
                p[--n] = 0;
        for (char *s = p + 1; ; s++) {
                if (*s == '/' || *s == 0) {
                        char c = *s;
                        *s = 0;
                        if (mkdir(p, 0700) < 0 && errno != EEXIST)
                                return -errno;
                        *s = c;
                        if (c == 0)
                                break;
                }
        }
        return 0;
}

static int write_all(int fd, const char *p, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

/* The host part of a unique name: '/' and ':' are escaped as the
 * Maildir specification says (":" starts the info part). */
static void maildir_host(const char *host, char *buf, size_t size) {
        size_t n = 0;

        for (const char *h = host; *h && n + 5 < size; h++) {
                if (*h == '/' || *h == ':') {
                        n += (size_t) snprintf(buf + n, size - n, "\\%03o", (unsigned char) *h);
                } else
                        buf[n++] = *h;
        }
        buf[n] = 0;
}

void maildir_deliver(const char *path, const char *hostname, const char *msg, size_t len,
                     DeliveryResult *res) {
        _cleanup_close_ int dfd = -EBADF, tmpfd = -EBADF, newfd = -EBADF, fd = -EBADF;
        char name[512], host[256];
        struct timespec ts;
        int r;

        r = maildir_mkdir_p(path);
        if (r < 0)
                return local_result_errno(res, r, "cannot create maildir \"%s\"", path);
        dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return local_result_errno(res, -errno, "cannot open maildir \"%s\"", path);
        for (const char *const *sub = (const char *const[]) { "tmp", "new", "cur", NULL }; *sub; sub++)
                if (mkdirat(dfd, *sub, 0700) < 0 && errno != EEXIST)
                        return local_result_errno(res, -errno, "cannot create \"%s/%s\"", path, *sub);
        tmpfd = openat(dfd, "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (tmpfd < 0)
                return local_result_errno(res, -errno, "cannot open \"%s/tmp\"", path);
        newfd = openat(dfd, "new", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (newfd < 0)
                return local_result_errno(res, -errno, "cannot open \"%s/new\"", path);

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        maildir_host(hostname, host, sizeof(host));
        (void) snprintf(name, sizeof(name), "%lld.M%ldP%dQ%u.%s", (long long) ts.tv_sec,
                        ts.tv_nsec / 1000, (int) getpid(), ++maildir_counter, host);

        fd = openat(tmpfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return local_result_errno(res, -errno, "cannot create \"%s/tmp/%s\"", path, name);
        r = write_all(fd, msg, len);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && close(TAKE_FD(fd)) < 0)
                r = -errno;
        if (r >= 0 && linkat(tmpfd, name, newfd, name, 0) < 0) {
                r = -errno;
                /* File systems without hard links: rename, which never
                 * replaces an existing name here. */
                if (r == -EPERM || r == -EXDEV || r == -ENOSYS || r == -EOPNOTSUPP)
                        r = renameat2(tmpfd, name, newfd, name, RENAME_NOREPLACE) < 0 ? -errno : 1;
        }
        if (r < 0) {
                (void) unlinkat(tmpfd, name, 0);
                return local_result_errno(res, r, "cannot write \"%s/new/%s\"", path, name);
        }
        if (r == 0)
                (void) unlinkat(tmpfd, name, 0);
        if (fsync(newfd) < 0)
                return local_result_errno(res, -errno, "cannot sync \"%s/new\"", path);
        local_result(res, DELIVERY_DELIVERED, "2.0.0", "delivered to maildir");
}
