/* Unit test of common/log.c: the stderr line, its escaping and truncation, the
 * fields shown at debug level, context fields, return values and errno, and
 * (in a private mount namespace, skipped where that is not allowed) the
 * fields of the journal entry as journald receives it. */
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "log.h"
#include "tap.h"

static FILE *capture;
static int saved_stderr = -1;

static void capture_start(void) {
        capture = tmpfile();
        if (!capture)
                abort();
        fflush(stderr);
        saved_stderr = dup(STDERR_FILENO);
        if (saved_stderr < 0 || dup2(fileno(capture), STDERR_FILENO) < 0)
                abort();
}

/* Returns what was written to stderr since capture_start (static buffer). */
static const char *capture_end(void) {
        static char buf[65536];
        size_t n;

        fflush(stderr);
        if (dup2(saved_stderr, STDERR_FILENO) < 0)
                abort();
        close(saved_stderr);
        rewind(capture);
        n = fread(buf, 1, sizeof(buf) - 1, capture);
        buf[n] = 0;
        fclose(capture);
        return buf;
}

/* "test-log[PID]: msg\n" */
static const char *line(const char *msg) {
        static char buf[8192];
        snprintf(buf, sizeof(buf), "test-log[%ld]: %s\n", (long) getpid(), msg);
        return buf;
}

static void test_stderr(void) {
        char want[8192];
        int r;

        setenv("TERN_LOG", "stderr", 1);
        unsetenv("TERN_DEBUG");
        log_open("test-log");
        log_set_max_level(LOG_INFO);

        capture_start();
        CHECK_INT(log_info("hello %d", 5), 0);
        CHECK_STREQ(capture_end(), line("hello 5"));

        /* Below the level: nothing, but the return value is the same. */
        capture_start();
        CHECK_INT(log_debug("hidden"), 0);
        CHECK_INT(log_debug_errno(-EIO, "hidden"), -EIO);
        CHECK_STREQ(capture_end(), "");

        /* %m is the error's text; the result is -abs(error); errno survives. */
        capture_start();
        errno = EAGAIN;
        r = log_error_errno(-ENOENT, "cannot open \"%s\": %m", "/x");
        CHECK_INT(r, -ENOENT);
        CHECK_INT(errno, EAGAIN);
        CHECK_INT(log_warning_errno(EACCES, "%m"), -EACCES);
        CHECK_STREQ(capture_end(),
                    (snprintf(want, sizeof(want),
                              "test-log[%ld]: cannot open \"/x\": No such file or directory\n"
                              "test-log[%ld]: Permission denied\n",
                              (long) getpid(), (long) getpid()),
                     want));

        /* One line per entry: control characters are escaped. */
        capture_start();
        log_notice("a\nb\rc\td\x01\x7f" "e\xc3\xa9");
        CHECK_STREQ(capture_end(), line("a\\nb\\x0dc\\x09d\\x01\\x7fe\xc3\xa9"));

        /* Fields are not shown on stderr at info level. */
        LogField f[] = { { "TERN_QUEUE_ID", "3A1B2C" }, { "TERN_RCPT", NULL } };
        capture_start();
        CHECK_INT(log_fields(LOG_INFO, f, "queued"), 0);
        CHECK_STREQ(capture_end(), line("queued"));

        /* The MESSAGE is bounded: 4095 bytes of text. */
        static char big[10000];
        memset(big, 'x', sizeof(big) - 1);
        capture_start();
        log_info("%s", big);
        const char *out = capture_end();
        big[4095] = 0;
        CHECK_STREQ(out, line(big));
}

static void test_debug_and_context(void) {
        char want[512];

        setenv("TERN_DEBUG", "1", 1);
        log_open("test-log");

        CHECK_INT(log_context_set("TERN_SESSION", "s1"), 0);
        CHECK_INT(log_context_set("TERN_CLIENT", "192.0.2.1"), 0);
        CHECK_INT(log_context_set("TERN_SESSION", "s2"), 0); /* replaces */
        CHECK_INT(log_context_set("TERN_NOTHING", NULL), 0); /* removing an absent key */
        CHECK_INT(log_context_set("lower", "x"), -EINVAL);
        CHECK_INT(log_context_set("_PID", "1"), -EINVAL);
        CHECK_INT(log_context_set("", "x"), -EINVAL);
        CHECK_INT(log_context_set(NULL, "x"), -EINVAL);

        LogField f[] = { { "TERN_FROM", "a@b\nc" }, { "TERN_RCPT", NULL }, { "bad key", "v" } };
        capture_start();
        CHECK_INT(log_fields_errno(LOG_INFO, -ETIMEDOUT, f, "deferred: %m"), -ETIMEDOUT);
        CHECK_INT(log_debug("debug shown"), 0);
        CHECK_INT(log_context_set("TERN_SESSION", NULL), 0);
        CHECK_INT(log_debug("after removal"), 0);
        snprintf(want, sizeof(want),
                 "test-log[%ld]: deferred: Connection timed out ERRNO=110 TERN_SESSION=s2 "
                 "TERN_CLIENT=192.0.2.1 TERN_FROM=a@b\\nc\n"
                 "test-log[%ld]: debug shown TERN_SESSION=s2 TERN_CLIENT=192.0.2.1\n"
                 "test-log[%ld]: after removal TERN_CLIENT=192.0.2.1\n",
                 (long) getpid(), (long) getpid(), (long) getpid());
        CHECK_STREQ(capture_end(), want);

        /* The context has room for 16 keys. */
        int r = 0, n;
        for (n = 0; n < 40 && r == 0; n++) {
                char key[32];
                snprintf(key, sizeof(key), "TERN_K%d", n);
                r = log_context_set(key, "v");
        }
        CHECK_INT(r, -ENOSPC);
        CHECK_INT(n, 16); /* 15 added beside TERN_CLIENT, the 16th refused */
        for (int i = 0; i < 40; i++) {
                char key[32];
                snprintf(key, sizeof(key), "TERN_K%d", i);
                CHECK_INT(log_context_set(key, NULL), 0);
        }
        CHECK_INT(log_context_set("TERN_CLIENT", NULL), 0);

        unsetenv("TERN_DEBUG");
        log_set_max_level(LOG_INFO);
}

/* Reads one native-protocol datagram into "KEY=value" lines (values with a
 * newline arrive length-prefixed). */
static void journal_decode(const uint8_t *p, size_t n, char *out, size_t size) {
        size_t o = 0;

        out[0] = 0;
        while (n > 0) {
                const uint8_t *nl = memchr(p, '\n', n), *eq;
                if (!nl)
                        break;
                eq = memchr(p, '=', (size_t) (nl - p));
                if (eq) {
                        o += (size_t) snprintf(out + o, size - o, "%.*s\n", (int) (nl - p), p);
                        n -= (size_t) (nl - p) + 1;
                        p = nl + 1;
                } else {
                        uint64_t len = 0;
                        size_t klen = (size_t) (nl - p);
                        if (n < klen + 1 + 8)
                                break;
                        memcpy(&len, nl + 1, 8); /* little-endian, as is this machine */
                        if (n < klen + 1 + 8 + len + 1)
                                break;
                        o += (size_t) snprintf(out + o, size - o, "%.*s=%.*s\n", (int) klen, p,
                                               (int) len, nl + 9);
                        n -= klen + 1 + 8 + len + 1;
                        p = nl + 9 + len + 1;
                }
                if (o >= size)
                        break;
        }
}

static int journal_child(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX,
                                  .sun_path = "/run/systemd/journal/socket" };
        static uint8_t dgram[65536];
        char got[8192], want[1024];
        int fd, r;
        ssize_t n;

        if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0 ||
            mkdir("/run/systemd", 0755) < 0 ? errno != EEXIST : false)
                return 77;
        if (mount("tmpfs", "/run/systemd", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
                return 77;
        if (mkdir("/run/systemd/journal", 0755) < 0)
                return 1;
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return 1;

        setenv("TERN_LOG", "journal", 1);
        log_open("test-journal");
        CHECK_INT(log_context_set("TERN_SESSION", "s9"), 0);
        LogField f[] = { { "MESSAGE_ID", LOG_MID_DELIVERED }, { "TERN_RCPT", "<u@example.org>" },
                         { "TERN_NULL", NULL }, { "TERN_BODY", "line1\nline2\x02" },
                         { "lowercase", "dropped" } };
        CHECK_INT(log_fields_errno(LOG_WARNING, -ECONNREFUSED, f, "to=<u@example.org>: %m"),
                  -ECONNREFUSED);
        n = recv(fd, dgram, sizeof(dgram), MSG_DONTWAIT);
        CHECK(n > 0);
        journal_decode(dgram, n > 0 ? (size_t) n : 0, got, sizeof(got));
        snprintf(want, sizeof(want),
                 "MESSAGE=to=<u@example.org>: Connection refused\n"
                 "PRIORITY=4\n"
                 "SYSLOG_IDENTIFIER=test-journal\n"
                 "ERRNO=111\n"
                 "TERN_SESSION=s9\n"
                 "MESSAGE_ID=" LOG_MID_DELIVERED "\n"
                 "TERN_RCPT=<u@example.org>\n"
                 "TERN_BODY=line1\nline2\\x02\n");
        CHECK_STREQ(got, want);

        /* Below the level nothing is sent. */
        CHECK_INT(log_debug("not sent"), 0);
        CHECK(recv(fd, dgram, sizeof(dgram), MSG_DONTWAIT) < 0 && errno == EAGAIN);

        /* The whole bounded message reaches the journal. */
        static char big[10000];
        memset(big, 'y', sizeof(big) - 1);
        log_info("%s", big);
        n = recv(fd, dgram, sizeof(dgram), MSG_DONTWAIT);
        journal_decode(dgram, n > 0 ? (size_t) n : 0, got, sizeof(got));
        big[4095] = 0;
        CHECK(strncmp(got, "MESSAGE=", 8) == 0 && strncmp(got + 8, big, 4095) == 0 &&
              got[8 + 4095] == '\n');

        /* A multi-line message is kept for journald. */
        log_info("two\nlines");
        n = recv(fd, dgram, sizeof(dgram), MSG_DONTWAIT);
        CHECK(n > 0);
        journal_decode(dgram, n > 0 ? (size_t) n : 0, got, sizeof(got));
        CHECK(strncmp(got, "MESSAGE=two\nlines\nPRIORITY=6\n", 29) == 0);
        r = tap_finish("test-log (journal)") == EXIT_SUCCESS ? 0 : 1;
        fflush(stdout);
        return r;
}

static void test_journal(void) {
        int status;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        if (pid < 0)
                abort();
        if (pid == 0)
                _exit(journal_child());
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status));
        if (WEXITSTATUS(status) == 77)
                printf("test-log: journal part skipped (no private mount namespace)\n");
        else
                CHECK_INT(WEXITSTATUS(status), 0);
}

int main(void) {
        test_stderr();
        test_debug_and_context();
        test_journal();
        return tap_finish("test-log");
}
