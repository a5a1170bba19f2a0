/* Fuzzes ipc_parse: an accepted frame must decode field by field, and
 * re-encoding it must give back exactly the input bytes. */
#include "fuzz.h"
#include "ipc.h"

static IpcWriter w;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        IpcMsg m;

        if (ipc_parse(data, size, &m) < 0)
                return 0;
        if (m.type == 0 || m.n_fields > IPC_FIELDS_MAX)
                abort();

        ipc_writer_init(&w, m.type);
        for (size_t i = 0; i < m.n_fields; i++) {
                const IpcField *f = &m.fields[i];
                char *s = NULL;
                uint64_t v;

                if (ipc_field_str(f, IPC_FRAME_MAX, &s) == 0)
                        free(s);
                (void) ipc_field_u64(f, &v);
                if (f->data < data || f->data + f->len > data + size)
                        abort();
                ipc_put_bytes(&w, f->tag, f->data, f->len);
        }
        if (w.error != 0 || w.len != size || memcmp(w.buf, data, size) != 0)
                abort();
        return 0;
}
