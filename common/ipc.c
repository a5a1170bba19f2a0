/* The IPC codec: builds and parses SOCK_SEQPACKET frames (u16 type, then
 * u16 tag + u32 length + bytes per field, little-endian) and moves them, with
 * at most one file descriptor, over AF_UNIX sockets. */
#include <string.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "ipc.h"

#define IPC_HEADER_SIZE 2u
#define IPC_FIELD_HEADER_SIZE 6u
/* Room for a few fds so that a peer sending too many is detected (and the fds
 * closed) instead of being silently cut by the kernel. */
#define IPC_CMSG_FDS_MAX 8

static void put_le16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v) {
        for (unsigned i = 0; i < 4; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

static uint16_t get_le16(const uint8_t *p) {
        return (uint16_t) (p[0] | (p[1] << 8));
}

static uint32_t get_le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 |
               (uint32_t) p[3] << 24;
}

void ipc_writer_init(IpcWriter *w, uint16_t type) {
        w->len = IPC_HEADER_SIZE;
        w->n_fields = 0;
        w->error = type == 0 ? -EINVAL : 0;
        put_le16(w->buf, type);
}

void ipc_put_bytes(IpcWriter *w, uint16_t tag, const void *p, size_t n) {
        if (w->error < 0)
                return;
        if (tag == 0) {
                w->error = -EINVAL;
                return;
        }
        if (w->n_fields >= IPC_FIELDS_MAX) {
                w->error = -E2BIG;
                return;
        }
        if (n > IPC_FRAME_MAX || IPC_FRAME_MAX - w->len < IPC_FIELD_HEADER_SIZE + n) {
                w->error = -EMSGSIZE;
                return;
        }
        put_le16(w->buf + w->len, tag);
        put_le32(w->buf + w->len + 2, (uint32_t) n);
        if (n > 0)
                memcpy(w->buf + w->len + IPC_FIELD_HEADER_SIZE, p, n);
        w->len += IPC_FIELD_HEADER_SIZE + n;
        w->n_fields++;
}

void ipc_put_str(IpcWriter *w, uint16_t tag, const char *s) {
        if (!s)
                return;
        ipc_put_bytes(w, tag, s, strlen(s));
}

void ipc_put_u64(IpcWriter *w, uint16_t tag, uint64_t v) {
        uint8_t b[8];

        for (unsigned i = 0; i < 8; i++)
                b[i] = (uint8_t) (v >> (8 * i));
        ipc_put_bytes(w, tag, b, sizeof(b));
}

int ipc_parse(const void *buf, size_t len, IpcMsg *ret) {
        const uint8_t *p = buf;
        IpcMsg m;
        size_t off;

        if (!buf || len < IPC_HEADER_SIZE || len > IPC_FRAME_MAX)
                return -EBADMSG;
        m.type = get_le16(p);
        if (m.type == 0)
                return -EBADMSG;
        m.n_fields = 0;

        off = IPC_HEADER_SIZE;
        while (off < len) {
                uint16_t tag;
                uint32_t flen;

                if (len - off < IPC_FIELD_HEADER_SIZE)
                        return -EBADMSG;
                if (m.n_fields >= IPC_FIELDS_MAX)
                        return -EBADMSG;
                tag = get_le16(p + off);
                flen = get_le32(p + off + 2);
                off += IPC_FIELD_HEADER_SIZE;
                if (tag == 0 || flen > len - off)
                        return -EBADMSG;
                m.fields[m.n_fields++] = (IpcField) {
                        .tag = tag,
                        .len = flen,
                        .data = p + off,
                };
                off += flen;
        }

        ret->type = m.type;
        ret->n_fields = m.n_fields;
        memcpy(ret->fields, m.fields, m.n_fields * sizeof(IpcField));
        return 0;
}

const IpcField *ipc_find(const IpcMsg *m, uint16_t tag) {
        for (size_t i = 0; i < m->n_fields; i++)
                if (m->fields[i].tag == tag)
                        return &m->fields[i];
        return NULL;
}

int ipc_field_u64(const IpcField *f, uint64_t *ret) {
        uint64_t v = 0;

        if (f->len != 8)
                return -EBADMSG;
        for (unsigned i = 0; i < 8; i++)
                v |= (uint64_t) f->data[i] << (8 * i);
        *ret = v;
        return 0;
}

int ipc_field_str(const IpcField *f, size_t max, char **ret) {
        char *s;

        if (f->len > max || (f->len > 0 && memchr(f->data, 0, f->len)))
                return -EBADMSG;
        s = memdup_str(f->data, f->len);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int ipc_get_u64(const IpcMsg *m, uint16_t tag, uint64_t *ret) {
        const IpcField *f = ipc_find(m, tag);

        if (!f)
                return -ENOENT;
        return ipc_field_u64(f, ret);
}

int ipc_get_str(const IpcMsg *m, uint16_t tag, size_t max, char **ret) {
        const IpcField *f = ipc_find(m, tag);

        if (!f)
                return -ENOENT;
        return ipc_field_str(f, max, ret);
}

int ipc_send(int sockfd, const IpcWriter *w, int fd_to_pass) {
        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(int))];
        } control;
        struct iovec iov = {
                .iov_base = (void *) w->buf,
                .iov_len = w->len,
        };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
        };
        ssize_t n;

        if (w->error < 0)
                return w->error;
        if (w->len < IPC_HEADER_SIZE)
                return -EINVAL;

        if (fd_to_pass >= 0) {
                struct cmsghdr *c;

                memset(&control, 0, sizeof(control));
                mh.msg_control = control.buf;
                mh.msg_controllen = sizeof(control.buf);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(c), &fd_to_pass, sizeof(int));
        }

        do
                n = sendmsg(sockfd, &mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();
        /* SOCK_SEQPACKET sends a datagram whole or not at all. */
        if ((size_t) n != w->len)
                return -EIO;
        return 0;
}

static void close_fds(const int *fds, size_t n) {
        for (size_t i = 0; i < n; i++)
                (void) close(fds[i]);
}

ssize_t ipc_recv(int sockfd, void *buf, size_t size, int *ret_fd) {
        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(int) * IPC_CMSG_FDS_MAX)];
        } control;
        struct iovec iov = {
                .iov_base = buf,
                .iov_len = size,
        };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = control.buf,
                .msg_controllen = sizeof(control.buf),
        };
        int fds[IPC_CMSG_FDS_MAX];
        size_t n_fds = 0;
        bool bad_control = false;
        ssize_t n;

        do
                n = recvmsg(sockfd, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();

        /* Collect every fd first, so that none leaks whatever goes wrong. */
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
                    c->cmsg_len >= CMSG_LEN(0)) {
                        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

                        for (size_t i = 0; i < k; i++) {
                                int fd;

                                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                                if (n_fds < ELEMENTSOF(fds))
                                        fds[n_fds++] = fd;
                                else
                                        (void) close(fd);
                                if (n_fds > 1)
                                        bad_control = true;
                        }
                } else
                        bad_control = true;
        }

        if (mh.msg_flags & MSG_TRUNC) {
                close_fds(fds, n_fds);
                return -EMSGSIZE;
        }
        if ((mh.msg_flags & MSG_CTRUNC) || bad_control) {
                close_fds(fds, n_fds);
                return -EBADMSG;
        }
        if (!ret_fd)
                close_fds(fds, n_fds);
        else
                *ret_fd = n_fds > 0 ? fds[0] : -EBADF;
        return n;
}

int ipc_call(int sockfd, const IpcWriter *w, void *buf, size_t size, IpcMsg *ret) {
        ssize_t n;
        int r;

        r = ipc_send(sockfd, w, -EBADF);
        if (r < 0)
                return r;
        n = ipc_recv(sockfd, buf, size, NULL);
        if (n < 0)
                return (int) n;
        if (n == 0)
                return -ECONNRESET;
        return ipc_parse(buf, (size_t) n, ret);
}

int ipc_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        size_t l;

        if (isempty(path))
                return -EINVAL;
        l = strlen(path);
        if (l >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, l + 1);

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (const struct sockaddr *) &sa,
                    (socklen_t) (offsetof(struct sockaddr_un, sun_path) + l + 1)) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

int ipc_hello(int sockfd, const char *role) {
        /* 128 KiB each: too large for the stacks of event handlers. */
        _cleanup_free_ IpcWriter *w = malloc(sizeof(IpcWriter));
        _cleanup_free_ uint8_t *buf = malloc(IPC_FRAME_MAX);
        IpcMsg m;
        uint64_t version;
        int r;

        if (!w || !buf)
                return -ENOMEM;
        ipc_writer_init(w, IPC_HELLO);
        ipc_put_u64(w, IPC_F_VERSION, IPC_VERSION);
        ipc_put_str(w, IPC_F_ROLE, role);
        r = ipc_call(sockfd, w, buf, IPC_FRAME_MAX, &m);
        if (r == -EBADMSG)
                return -EPROTO;
        if (r < 0)
                return r;
        if (m.type != IPC_HELLO)
                return -EPROTO;
        r = ipc_get_u64(&m, IPC_F_VERSION, &version);
        if (r < 0 || version != IPC_VERSION)
                return -EPROTO;
        return 0;
}
