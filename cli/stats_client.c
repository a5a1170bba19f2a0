/* The client side of IPC_STATS_GET, shared by `ternctl stats` and
 * tern-metrics (metrics/). */
#include "ipc.h"
#include "stats_client.h"

int stats_fetch(const char *socket_path, char **ret) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ IpcWriter *w = malloc(sizeof(IpcWriter));
        _cleanup_free_ uint8_t *buf = malloc(IPC_FRAME_MAX);
        const IpcField *f;
        IpcMsg m;
        char *s;
        int r;

        if (!w || !buf)
                return -ENOMEM;
        fd = ipc_connect(socket_path);
        if (fd < 0)
                return fd;
        r = ipc_hello(fd, "ctl");
        if (r < 0)
                return r;
        ipc_writer_init(w, IPC_STATS_GET);
        r = ipc_call(fd, w, buf, IPC_FRAME_MAX, &m);
        if (r < 0)
                return r;
        if (m.type != IPC_STATS_TEXT || m.n_fields != 1)
                return -EBADMSG;
        f = ipc_find(&m, IPC_F_DATA);
        if (!f || memchr(f->data, 0, f->len))
                return -EBADMSG;
        s = memdup_str(f->data, f->len);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}
