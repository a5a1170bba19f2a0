/* Small helpers every tern process uses: cleanup attributes, ownership moves,
 * overflow-checked allocation and string comparison. Header only. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _cleanup_(f) __attribute__((cleanup(f)))

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}
static inline bool streq_ptr(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}
static inline bool isempty(const char *s) {
        return !s || !*s;
}

static inline void freep(void *p) {
        free(*(void **) p);
}
static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                (void) close(*fd);
                errno = saved;
        }
}
static inline void fclosep(FILE **f) {
        if (*f)
                (void) fclose(*f);
}
/* NULL-terminated array of strings (strv). */
static inline void strv_free(char **l) {
        if (!l)
                return;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
}
static inline void strv_freep(char ***l) {
        strv_free(*l);
}
static inline size_t strv_length(char *const *l) {
        size_t n = 0;
        while (l && l[n])
                n++;
        return n;
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _cleanup_strv_free_ _cleanup_(strv_freep)

/* DEFINE_POINTER_CLEANUP(Foo, foo_free) gives foo_freep() for _cleanup_(foo_freep). */
#define DEFINE_POINTER_CLEANUP(type, func)               \
        static inline void func##p(type **p) {           \
                if (*p)                                  \
                        *p = func(*p);                   \
        }

#define TAKE_PTR(p)                              \
        ({                                       \
                __typeof__(p) _ptr_ = (p);       \
                (p) = NULL;                      \
                _ptr_;                           \
        })
#define TAKE_FD(fd)                      \
        ({                               \
                int _fd_ = (fd);         \
                (fd) = -EBADF;           \
                _fd_;                    \
        })

/* Overflow-checked allocation: NULL on overflow as on out-of-memory. */
static inline void *malloc_multiply(size_t n, size_t size) {
        if (size != 0 && n > SIZE_MAX / size)
                return NULL;
        return malloc(n * size != 0 ? n * size : 1);
}
static inline void *reallocarray_safe(void *p, size_t n, size_t size) {
        if (size != 0 && n > SIZE_MAX / size)
                return NULL;
        return realloc(p, n * size != 0 ? n * size : 1);
}
#define new0(t, n) ((t *) calloc((n) ? (n) : 1, sizeof(t)))

/* Returns a NUL-terminated copy of n bytes, or NULL on out-of-memory. */
static inline char *memdup_str(const void *p, size_t n) {
        if (n == SIZE_MAX)
                return NULL;
        char *s = malloc(n + 1);
        if (!s)
                return NULL;
        memcpy(s, p, n);
        s[n] = 0;
        return s;
}

/* Converts libc's -1/errno convention at the call site: RET_ERRNO(close(fd)). */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}
