/* A tiny assertion helper for unit tests: each failed check prints the file,
 * line and expression and the test exits 1 at the end. */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_failures;

#define CHECK(expr)                                                                 \
        do {                                                                        \
                if (!(expr)) {                                                      \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,      \
                                __LINE__, #expr);                                   \
                        tap_failures++;                                             \
                }                                                                   \
        } while (0)

#define CHECK_STREQ(a, b)                                                           \
        do {                                                                        \
                const char *_a = (a), *_b = (b);                                    \
                if (!_a || !_b || strcmp(_a, _b) != 0) {                            \
                        fprintf(stderr, "%s:%d: \"%s\" != \"%s\" (%s vs %s)\n",     \
                                __FILE__, __LINE__, _a ? _a : "(null)",             \
                                _b ? _b : "(null)", #a, #b);                        \
                        tap_failures++;                                             \
                }                                                                   \
        } while (0)

#define CHECK_INT(a, b)                                                             \
        do {                                                                        \
                long long _a = (long long) (a), _b = (long long) (b);               \
                if (_a != _b) {                                                     \
                        fprintf(stderr, "%s:%d: %lld != %lld (%s vs %s)\n",         \
                                __FILE__, __LINE__, _a, _b, #a, #b);                \
                        tap_failures++;                                             \
                }                                                                   \
        } while (0)

static inline int tap_finish(const char *name) {
        if (tap_failures) {
                fprintf(stderr, "%s: %d check(s) failed\n", name, tap_failures);
                return EXIT_FAILURE;
        }
        printf("%s: all checks passed\n", name);
        return EXIT_SUCCESS;
}
