/* Replays fuzz inputs without libFuzzer (gcc builds, `meson test --suite fuzz`):
 * runs LLVMFuzzerTestOneInput once on every file given, and on every regular
 * file inside every directory given. Fails if it found no input at all. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "util.h"

#define FUZZ_INPUT_MAX (16u * 1024u * 1024u)

static int run_file(int dirfd, const char *name) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_free_ uint8_t *buf = NULL;
        struct stat st;
        size_t len = 0;

        if (fd < 0 || fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return 0;
        if ((uint64_t) st.st_size > FUZZ_INPUT_MAX)
                return -EFBIG;
        /* An exactly sized heap buffer, so ASan sees reads past the input. */
        buf = malloc(st.st_size > 0 ? (size_t) st.st_size : 1);
        if (!buf)
                return -ENOMEM;
        while (len < (size_t) st.st_size) {
                ssize_t n = read(fd, buf + len, (size_t) st.st_size - len);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        (void) LLVMFuzzerTestOneInput(buf, len);
        return 1;
}

static int name_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Runs every regular file of a directory, in name order for reproducible logs. */
static int run_dir(const char *path) {
        _cleanup_strv_free_ char **names = NULL;
        size_t n = 0, count = 0;
        DIR *d = opendir(path);
        int dfd;

        if (!d)
                return negative_errno();
        for (struct dirent *de; (de = readdir(d));) {
                char **nl;

                if (de->d_name[0] == '.')
                        continue;
                nl = reallocarray_safe(names, n + 2, sizeof(char *));
                if (!nl) {
                        (void) closedir(d);
                        return -ENOMEM;
                }
                names = nl;
                names[n] = strdup(de->d_name);
                names[n + 1] = NULL;
                if (!names[n]) {
                        (void) closedir(d);
                        return -ENOMEM;
                }
                n++;
        }
        if (n > 0)
                qsort(names, n, sizeof(char *), name_cmp);
        dfd = dirfd(d);
        for (size_t i = 0; i < n; i++) {
                int r = run_file(dfd, names[i]);

                if (r < 0) {
                        fprintf(stderr, "%s/%s: %s\n", path, names[i], strerror(-r));
                        (void) closedir(d);
                        return r;
                }
                count += (size_t) r;
        }
        (void) closedir(d);
        return (int) count;
}

int main(int argc, char **argv) {
        size_t total = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                int r;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %m\n", argv[i]);
                        return EXIT_FAILURE;
                }
                r = S_ISDIR(st.st_mode) ? run_dir(argv[i]) : run_file(AT_FDCWD, argv[i]);
                if (r < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(-r));
                        return EXIT_FAILURE;
                }
                total += (size_t) r;
        }
        if (total == 0) {
                fprintf(stderr, "no fuzz inputs found\n");
                return EXIT_FAILURE;
        }
        printf("%zu inputs replayed\n", total);
        return EXIT_SUCCESS;
}
