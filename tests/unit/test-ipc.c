/* Tests the IPC codec: exact frame bytes, parser rejections, and a round trip
 * over a real AF_UNIX SOCK_SEQPACKET socketpair with fd passing, truncated
 * frames and extra fds. */
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "ipc.h"
#include "tap.h"

static IpcWriter w; /* 128 KiB: static rather than on the stack */
static uint8_t rbuf[IPC_FRAME_MAX + 16];

static void test_encoding(void) {
        static const uint8_t expect[] = {
                0x01, 0x00,                                     /* IPC_HELLO */
                0x01, 0x00, 0x08, 0x00, 0x00, 0x00,             /* VERSION, len 8 */
                0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x201 */
                0x02, 0x00, 0x05, 0x00, 0x00, 0x00,             /* ROLE, len 5 */
                's', 'm', 't', 'p', 'd',
                0x07, 0x00, 0x00, 0x00, 0x00, 0x00,             /* SENDER "" */
        };
        IpcMsg m;
        uint64_t v;
        _cleanup_free_ char *s = NULL, *empty = NULL;

        ipc_writer_init(&w, IPC_HELLO);
        ipc_put_u64(&w, IPC_F_VERSION, 0x201);
        ipc_put_str(&w, IPC_F_ROLE, "smtpd");
        ipc_put_str(&w, IPC_F_TEXT, NULL); /* omitted */
        ipc_put_str(&w, IPC_F_SENDER, "");
        CHECK_INT(w.error, 0);
        CHECK_INT(w.len, sizeof(expect));
        CHECK(memcmp(w.buf, expect, sizeof(expect)) == 0);

        CHECK_INT(ipc_parse(w.buf, w.len, &m), 0);
        CHECK_INT(m.type, IPC_HELLO);
        CHECK_INT(m.n_fields, 3);
        CHECK_INT(ipc_get_u64(&m, IPC_F_VERSION, &v), 0);
        CHECK_INT(v, 0x201);
        CHECK_INT(ipc_get_str(&m, IPC_F_ROLE, 64, &s), 0);
        CHECK_STREQ(s, "smtpd");
        CHECK_INT(ipc_get_str(&m, IPC_F_SENDER, 64, &empty), 0);
        CHECK_STREQ(empty, "");
        CHECK(ipc_find(&m, IPC_F_TEXT) == NULL);
        CHECK_INT(ipc_get_u64(&m, IPC_F_TEXT, &v), -ENOENT);
        CHECK_INT(ipc_get_u64(&m, IPC_F_ROLE, &v), -EBADMSG); /* 5 bytes, not 8 */
        CHECK_INT(ipc_get_str(&m, IPC_F_ROLE, 4, &s), -EBADMSG); /* longer than max */
}

static void test_parse_rejects(void) {
        IpcMsg m;
        uint8_t f[64] = { 0 };

        m.type = 0xdead;
        CHECK_INT(ipc_parse(f, 0, &m), -EBADMSG);
        CHECK_INT(ipc_parse(f, 1, &m), -EBADMSG);
        /* type 0 */
        memcpy(f, "\x00\x00", 2);
        CHECK_INT(ipc_parse(f, 2, &m), -EBADMSG);
        /* a frame with only a type is fine */
        memcpy(f, "\x05\x00", 2);
        CHECK_INT(ipc_parse(f, 2, &m), 0);
        CHECK_INT(m.type, 5);
        CHECK_INT(m.n_fields, 0);
        /* truncated field header */
        memcpy(f, "\x05\x00\x01\x00\x01\x00\x00", 7);
        CHECK_INT(ipc_parse(f, 7, &m), -EBADMSG);
        /* field length beyond the frame */
        memcpy(f, "\x05\x00\x01\x00\x02\x00\x00\x00X", 9);
        CHECK_INT(ipc_parse(f, 9, &m), -EBADMSG);
        /* exact fit */
        memcpy(f, "\x05\x00\x01\x00\x01\x00\x00\x00X", 9);
        CHECK_INT(ipc_parse(f, 9, &m), 0);
        CHECK_INT(m.n_fields, 1);
        /* one trailing byte */
        memcpy(f, "\x05\x00\x01\x00\x01\x00\x00\x00XY", 10);
        CHECK_INT(ipc_parse(f, 10, &m), -EBADMSG);
        /* tag 0 */
        memcpy(f, "\x05\x00\x00\x00\x01\x00\x00\x00X", 9);
        CHECK_INT(ipc_parse(f, 9, &m), -EBADMSG);
        /* huge length must not wrap */
        memcpy(f, "\x05\x00\x01\x00\xff\xff\xff\xff", 8);
        CHECK_INT(ipc_parse(f, 8, &m), -EBADMSG);
        /* a failed parse leaves *ret untouched */
        m.type = 77;
        CHECK_INT(ipc_parse(f, 8, &m), -EBADMSG);
        CHECK_INT(m.type, 77);

        /* IPC_FIELDS_MAX fields parse, one more does not */
        ipc_writer_init(&w, IPC_QUEUE_ENTRY);
        for (unsigned i = 0; i < IPC_FIELDS_MAX; i++)
                ipc_put_str(&w, IPC_F_RCPT, "a@b");
        CHECK_INT(w.error, 0);
        CHECK_INT(ipc_parse(w.buf, w.len, &m), 0);
        CHECK_INT(m.n_fields, IPC_FIELDS_MAX);
        ipc_put_str(&w, IPC_F_RCPT, "a@b");
        CHECK_INT(w.error, -E2BIG);
        memcpy(w.buf + w.len, "\x08\x00\x00\x00\x00\x00", 6);
        CHECK_INT(ipc_parse(w.buf, w.len + 6, &m), -EBADMSG);
        CHECK_INT(ipc_parse(w.buf, IPC_FRAME_MAX + 1, &m), -EBADMSG);
}

static void test_writer_limits(void) {
        static uint8_t big[IPC_FRAME_MAX];
        IpcMsg m;

        ipc_writer_init(&w, IPC_MSG_DATA);
        ipc_put_bytes(&w, IPC_F_DATA, big, IPC_FRAME_MAX - 2 - 6);
        CHECK_INT(w.error, 0);
        CHECK_INT(w.len, IPC_FRAME_MAX);
        CHECK_INT(ipc_parse(w.buf, w.len, &m), 0);
        ipc_put_bytes(&w, IPC_F_DATA, big, 0);
        CHECK_INT(w.error, -EMSGSIZE);
        /* sticky: later small puts do not clear it */
        ipc_put_u64(&w, IPC_F_JOB, 1);
        CHECK_INT(w.error, -EMSGSIZE);
        CHECK_INT(ipc_send(-1, &w, -EBADF), -EMSGSIZE);

        ipc_writer_init(&w, IPC_MSG_DATA);
        ipc_put_bytes(&w, IPC_F_DATA, big, IPC_FRAME_MAX - 2 - 6 + 1);
        CHECK_INT(w.error, -EMSGSIZE);
        ipc_writer_init(&w, IPC_MSG_DATA);
        ipc_put_bytes(&w, IPC_F_DATA, big, SIZE_MAX - 3);
        CHECK_INT(w.error, -EMSGSIZE);
}

static void test_socket(void) {
        int sv[2], fd = -EBADF, pipefd[2];
        IpcMsg m;
        ssize_t n;
        uint64_t v;
        struct stat a, b;

        CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
        CHECK(pipe2(pipefd, O_CLOEXEC) == 0);

        /* plain frame, no fd */
        ipc_writer_init(&w, IPC_RESULT);
        ipc_put_u64(&w, IPC_F_JOB, 42);
        ipc_put_str(&w, IPC_F_DSN, "2.0.0");
        CHECK_INT(ipc_send(sv[0], &w, -EBADF), 0);
        n = ipc_recv(sv[1], rbuf, sizeof(rbuf), &fd);
        CHECK_INT(n, w.len);
        CHECK_INT(fd, -EBADF);
        CHECK_INT(ipc_parse(rbuf, (size_t) n, &m), 0);
        CHECK_INT(m.type, IPC_RESULT);
        CHECK_INT(ipc_get_u64(&m, IPC_F_JOB, &v), 0);
        CHECK_INT(v, 42);

        /* frame with an fd: it arrives, refers to the same pipe, and is O_CLOEXEC */
        ipc_writer_init(&w, IPC_DELIVER);
        ipc_put_str(&w, IPC_F_QUEUE_ID, "65F1A2B30F4C2");
        CHECK_INT(ipc_send(sv[0], &w, pipefd[0]), 0);
        n = ipc_recv(sv[1], rbuf, sizeof(rbuf), &fd);
        CHECK_INT(n, w.len);
        CHECK(fd >= 0);
        if (fd >= 0) {
                CHECK(fstat(fd, &a) == 0 && fstat(pipefd[0], &b) == 0);
                CHECK(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
                CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
                (void) close(fd);
        }

        /* fd sent but ret_fd NULL: the fd is closed for us, the frame delivered */
        CHECK_INT(ipc_send(sv[0], &w, pipefd[0]), 0);
        n = ipc_recv(sv[1], rbuf, sizeof(rbuf), NULL);
        CHECK_INT(n, w.len);

        /* truncated: buffer smaller than the datagram, fd closed */
        ipc_writer_init(&w, IPC_MSG_DATA);
        ipc_put_bytes(&w, IPC_F_DATA, rbuf, 1000);
        CHECK_INT(ipc_send(sv[0], &w, pipefd[0]), 0);
        fd = 12345;
        n = ipc_recv(sv[1], rbuf, 100, &fd);
        CHECK_INT(n, -EMSGSIZE);
        CHECK_INT(fd, 12345); /* not written on error */

        /* two fds in one message */
        {
                union {
                        struct cmsghdr align;
                        uint8_t buf[CMSG_SPACE(2 * sizeof(int))];
                } control = {};
                struct iovec iov = { .iov_base = (void *) "\x01\x00", .iov_len = 2 };
                struct msghdr mh = {
                        .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
                };
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                int two[2] = { pipefd[0], pipefd[1] };

                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(two));
                memcpy(CMSG_DATA(c), two, sizeof(two));
                CHECK(sendmsg(sv[0], &mh, 0) == 2);
                CHECK_INT(ipc_recv(sv[1], rbuf, sizeof(rbuf), &fd), -EBADMSG);
        }

        /* garbage frame: received fine, rejected by the parser */
        CHECK(send(sv[0], "\x01\x00\x01\x00\x09\x00\x00\x00", 8, 0) == 8);
        n = ipc_recv(sv[1], rbuf, sizeof(rbuf), &fd);
        CHECK_INT(n, 8);
        CHECK_INT(ipc_parse(rbuf, (size_t) n, &m), -EBADMSG);

        /* no fd leaked by any of the above: the next fd number is the lowest free */
        {
                int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
                int expect = fcntl(0, F_DUPFD_CLOEXEC, 0);

                CHECK(probe >= 0);
                CHECK_INT(expect, probe + 1);
                (void) close(probe);
                (void) close(expect);
        }

        /* EOF */
        (void) close(sv[0]);
        n = ipc_recv(sv[1], rbuf, sizeof(rbuf), &fd);
        CHECK_INT(n, 0);
        (void) close(sv[1]);
        (void) close(pipefd[0]);
        (void) close(pipefd[1]);
}

static void test_hello(void) {
        int sv[2];
        pid_t pid;
        IpcMsg m;

        /* A server answering IPC_HELLO with our version, then one with a wrong one. */
        CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
        pid = fork();
        if (pid == 0) {
                for (uint64_t version = IPC_VERSION; version <= IPC_VERSION + 1; version++) {
                        ssize_t n = ipc_recv(sv[1], rbuf, sizeof(rbuf), NULL);

                        if (n <= 0 || ipc_parse(rbuf, (size_t) n, &m) < 0 || m.type != IPC_HELLO)
                                _exit(1);
                        ipc_writer_init(&w, IPC_HELLO);
                        ipc_put_u64(&w, IPC_F_VERSION, version);
                        ipc_put_str(&w, IPC_F_ROLE, "queued");
                        if (ipc_send(sv[1], &w, -EBADF) < 0)
                                _exit(1);
                }
                _exit(0);
        }
        (void) close(sv[1]);
        CHECK_INT(ipc_hello(sv[0], "smtpd"), 0);
        CHECK_INT(ipc_hello(sv[0], "smtpd"), -EPROTO);
        {
                int r = ipc_hello(sv[0], "smtpd"); /* server gone */

                CHECK(r == -ECONNRESET || r == -EPIPE);
        }
        (void) close(sv[0]);
        {
                int status = -1;

                CHECK(waitpid(pid, &status, 0) == pid);
                CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
}

static void test_connect(void) {
        char longpath[200];

        memset(longpath, 'a', sizeof(longpath) - 1);
        longpath[sizeof(longpath) - 1] = 0;
        CHECK_INT(ipc_connect(longpath), -ENAMETOOLONG);
        CHECK_INT(ipc_connect(""), -EINVAL);
        CHECK_INT(ipc_connect("/nonexistent/tern-test.sock"), -ENOENT);
}

int main(void) {
        test_encoding();
        test_parse_rejects();
        test_writer_limits();
        test_socket();
        test_hello();
        test_connect();
        return tap_finish("test-ipc");
}
