/* mbox delivery. Two locks, because mail readers use one or the other: the
 * dot-lock "<mbox>.lock" (mutt, procmail, Postfix's dotlock) and an fcntl
 * write lock (Dovecot, Postfix's fcntl). Where the user may not create files
 * in the mbox directory (a shared spool such as /var/mail, 2775 root:mail,
 * when deliverd could not add its group, see local.c), the dot-lock is skipped
 * and the fcntl lock alone protects the file. Runs as the recipient. */
#include <fcntl.h>
#include <signal.h>
#include <sys/param.h>
#include <sys/stat.h>
#include <time.h>

#include "local.h"
#include "mbox.h"

#define MBOX_LOCK_RETRY_NSEC (50 * 1000 * 1000)

/* What the SIGALRM handler must undo; set only while it applies. */
static const char *volatile mbox_held_lock;
static volatile int mbox_fd = -1;
static volatile off_t mbox_size = -1;

/* The local time limit expired: leave the mailbox as it was and release the
 * dot-lock, so that the next delivery does not wait for it to go stale.
 * Only async-signal-safe calls. */
static void mbox_on_alarm(int sig) {
        if (mbox_fd >= 0 && mbox_size >= 0)
                (void) !ftruncate(mbox_fd, mbox_size);
        if (mbox_held_lock)
                (void) unlink(mbox_held_lock);
        _exit(LOCAL_EXIT_TIMEOUT);
}

static uint64_t now_usec(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ull + (uint64_t) ts.tv_nsec / 1000ull;
}

static void pause_retry(void) {
        /* A little jitter so that waiting writers do not retry in lock step. */
        struct timespec ts = { 0, MBOX_LOCK_RETRY_NSEC + (getpid() % 20) * 1000 * 1000 };
        (void) nanosleep(&ts, NULL);
}

/* Creates lock (O_EXCL). Returns 1 when held, 0 when the directory does not
 * let us create it (fcntl only), -ETIMEDOUT or -errno. A lock older than
 * MBOX_LOCK_STALE_SEC is left over by a crashed writer and removed. */
static int mbox_dotlock(const char *lock, uint64_t deadline) {
        for (;;) {
                int fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                struct stat st;

                if (fd >= 0) {
                        (void) close(fd);
                        return 1;
                }
                if (errno == EACCES || errno == EPERM || errno == EROFS)
                        return 0;
                if (errno != EEXIST)
                        return -errno;
                if (lstat(lock, &st) == 0 && st.st_mtime + MBOX_LOCK_STALE_SEC < time(NULL)) {
                        (void) unlink(lock);
                        continue;
                }
                if (now_usec() >= deadline)
                        return -ETIMEDOUT;
                pause_retry();
        }
}

static int mbox_fcntl_lock(int fd, uint64_t deadline) {
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

        /* Polled instead of F_SETLKW so the wait has a deadline without signals. */
        for (;;) {
                if (fcntl(fd, F_SETLK, &fl) == 0)
                        return 0;
                if (errno != EACCES && errno != EAGAIN && errno != EINTR)
                        return -errno;
                if (now_usec() >= deadline)
                        return -ETIMEDOUT;
                pause_retry();
        }
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

void mbox_deliver(const char *path, const char *from_line, const char *msg, size_t len,
                  uint64_t lock_timeout_usec, DeliveryResult *res) {
        uint64_t deadline = now_usec() + MIN(lock_timeout_usec, MBOX_LOCK_TIMEOUT_USEC);
        struct sigaction sa = { .sa_handler = mbox_on_alarm };
        _cleanup_free_ char *lock = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        bool dotlocked = false;
        int r;

        if (asprintf(&lock, "%s.lock", path) < 0) {
                lock = NULL;
                return local_result_errno(res, -ENOMEM, "cannot lock mailbox");
        }
        (void) sigemptyset(&sa.sa_mask);
        (void) sigaction(SIGALRM, &sa, NULL);
        r = mbox_dotlock(lock, deadline);
        if (r > 0)
                mbox_held_lock = lock; /* ours now: the alarm handler may remove it */
        if (r == -ETIMEDOUT)
                return local_result(res, DELIVERY_DEFERRED, "4.2.0",
                                    "cannot lock mailbox \"%s\": \"%s\" is held by another process",
                                    path, lock);
        if (r < 0)
                return local_result_errno(res, r, "cannot create \"%s\"", lock);
        dotlocked = r > 0;

        /* O_NONBLOCK: a FIFO planted as the mailbox must not hang us. */
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                  0600);
        if (fd < 0) {
                r = -errno;
                goto fail_errno_open;
        }
        /* A hard link to someone else's file would pass O_NOFOLLOW. */
        if (fstat(fd, &st) < 0) {
                r = -errno;
                goto fail_errno_open;
        }
        if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
                local_result(res, DELIVERY_DEFERRED, "4.2.0",
                             "mailbox \"%s\" is not a regular file with one link", path);
                goto out;
        }
        r = mbox_fcntl_lock(fd, deadline);
        if (r == -ETIMEDOUT) {
                local_result(res, DELIVERY_DEFERRED, "4.2.0", "cannot lock mailbox \"%s\": timed out",
                             path);
                goto out;
        }
        if (r < 0) {
                local_result_errno(res, r, "cannot lock mailbox \"%s\"", path);
                goto out;
        }
        /* The size after locking: what another writer appended is kept. */
        if (fstat(fd, &st) < 0) {
                local_result_errno(res, -errno, "cannot stat mailbox \"%s\"", path);
                goto out;
        }
        mbox_size = st.st_size;
        mbox_fd = fd;
        r = write_all(fd, from_line, strlen(from_line));
        if (r >= 0)
                r = write_all(fd, msg, len);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0) {
                /* Leave the mailbox as it was: no half message for readers. */
                if (ftruncate(fd, st.st_size) == 0)
                        (void) fsync(fd);
                local_result_errno(res, r, "cannot write mailbox \"%s\"", path);
                goto out;
        }
        mbox_size = -1;
        local_result(res, DELIVERY_DELIVERED, "2.0.0", "delivered to mailbox");
        goto out;

fail_errno_open:
        local_result_errno(res, r, "cannot open mailbox \"%s\"", path);
out:
        /* Closing the fd releases the fcntl lock; the dot-lock goes after it. */
        mbox_size = -1;
        mbox_fd = -1;
        if (fd >= 0)
                (void) close(TAKE_FD(fd));
        if (dotlocked)
                (void) unlink(lock);
        mbox_held_lock = NULL;
}
