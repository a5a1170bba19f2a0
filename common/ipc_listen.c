/* ipc_listen (ipc.h), apart from the codec: it is the one part of the IPC
 * code that needs libsystemd (sd_listen_fds), and smtpd, which starts once
 * per connection and never listens, then does not load libsystemd and the
 * libraries it pulls in (a few milliseconds of dynamic linking per start). */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "ipc.h"

int ipc_listen(const char *path, mode_t mode, uid_t owner, gid_t group, bool *ret_from_systemd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF, probe = -EBADF;
        int n = sd_listen_fds(1), flags, r;
        mode_t old;

        if (n < 0)
                return n;
        if (n > 1)
                return -EINVAL;
        if (n == 1) {
                if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_SEQPACKET, 1, NULL, 0) <= 0)
                        return -EINVAL;
                flags = fcntl(SD_LISTEN_FDS_START, F_GETFL);
                if (flags < 0 || fcntl(SD_LISTEN_FDS_START, F_SETFL, flags | O_NONBLOCK) < 0)
                        return negative_errno();
                *ret_from_systemd = true;
                return SD_LISTEN_FDS_START;
        }
        if (isempty(path) || strlen(path) >= sizeof(sa.sun_path))
                return -EINVAL;
        memcpy(sa.sun_path, path, strlen(path) + 1);

        /* Replace a stale socket file, never a live one. */
        probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *) &sa, sizeof(sa)) >= 0)
                return -EADDRINUSE;
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        (void) unlink(sa.sun_path);
        /* Created with no access at all, opened up by chmod once it is ours. */
        old = umask(0777);
        r = bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ? negative_errno() : 0;
        umask(old);
        if (r < 0)
                return r;
        if (owner != (uid_t) -1 && chown(sa.sun_path, owner, group) < 0)
                return negative_errno();
        if (chmod(sa.sun_path, mode) < 0 || listen(fd, SOMAXCONN) < 0)
                return negative_errno();
        *ret_from_systemd = false;
        return TAKE_FD(fd);
}
