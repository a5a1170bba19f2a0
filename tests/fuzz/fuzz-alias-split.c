/* Fuzzes deliverd/alias.c's list splitting (alias values, .forward and
 * :include: files, which users write): every item is non-empty, bounded by
 * the input, without a quote left over. */
#include "alias.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = NULL;
        _cleanup_strv_free_ char **l = NULL;

        if (size > 64 * 1024)
                return 0;
        s = memdup_str(data, size);
        if (!s || strlen(s) != size)
                return 0;
        if (alias_split(s, &l) < 0)
                return 0;
        for (char **p = l; *p; p++)
                if (!**p || strlen(*p) > size || strchr(*p, '"'))
                        abort();
        return 0;
}
