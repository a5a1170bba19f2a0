/* The disk's own limit, for comparison with the MTAs: how many small files
 * per second can be made durable the way a mail queue does it (write a
 * temporary file, fsync it, rename it into place, fsync the directory).
 *
 *   fsync-bench DIR COUNT SIZE THREADS BATCH
 *
 * BATCH 1: every file is fsynced on its own (THREADS threads in parallel).
 * BATCH n: each thread writes n files, makes them durable with one syncfs()
 * of the file system, renames them and fsyncs the directory once: what a
 * queue doing group commit pays per file. Prints "files/s". Bounded by COUNT
 * and by a 60 s deadline (the result is then the rate up to that point). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* syncfs() */
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FSYNC_BENCH_DEADLINE_SEC 60.0
#define FSYNC_BENCH_BATCH_MAX 1024

typedef struct FsyncBench {
        int dirfd;
        long count;      /* files per thread */
        size_t size;
        long batch;
        char *payload;
        double start;
        long done;       /* files made durable, all threads; under lock */
        int error;
        pthread_mutex_t lock;
} FsyncBench;

typedef struct FsyncWorker {
        FsyncBench *b;
        int id;
} FsyncWorker;

static double fsync_bench_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int fsync_bench_write(FsyncBench *b, const char *name, bool sync) {
        int fd = openat(b->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int r = 0;

        if (fd < 0)
                return -errno;
        if (write(fd, b->payload, b->size) != (ssize_t) b->size)
                r = -EIO;
        if (r == 0 && sync && fsync(fd) < 0)
                r = -errno;
        close(fd);
        return r;
}

static void *fsync_bench_worker(void *arg) {
        FsyncWorker *w = arg;
        FsyncBench *b = w->b;
        char tmp[FSYNC_BENCH_BATCH_MAX][64], final[64];
        int r = 0;

        for (long i = 0; i < b->count && r == 0; i += b->batch) {
                long n = b->count - i < b->batch ? b->count - i : b->batch;

                if (fsync_bench_now() - b->start > FSYNC_BENCH_DEADLINE_SEC)
                        break;
                for (long j = 0; j < n && r == 0; j++) {
                        (void) snprintf(tmp[j], sizeof(tmp[j]), "tmp.%d.%ld", w->id, i + j);
                        r = fsync_bench_write(b, tmp[j], b->batch == 1);
                }
                if (r == 0 && b->batch > 1 && syncfs(b->dirfd) < 0)
                        r = -errno;
                for (long j = 0; j < n && r == 0; j++) {
                        (void) snprintf(final, sizeof(final), "f.%d.%ld", w->id, i + j);
                        if (renameat(b->dirfd, tmp[j], b->dirfd, final) < 0)
                                r = -errno;
                }
                if (r == 0 && fsync(b->dirfd) < 0)
                        r = -errno;
                pthread_mutex_lock(&b->lock);
                if (r == 0)
                        b->done += n;
                else
                        b->error = r;
                pthread_mutex_unlock(&b->lock);
        }
        return NULL;
}

int main(int argc, char **argv) {
        FsyncBench b = { .lock = PTHREAD_MUTEX_INITIALIZER };
        pthread_t threads[256];
        FsyncWorker workers[256];
        long n_threads;

        if (argc != 6) {
                fprintf(stderr, "usage: %s DIR COUNT SIZE THREADS BATCH\n", argv[0]);
                return 2;
        }
        b.count = strtol(argv[2], NULL, 10);
        b.size = (size_t) strtoul(argv[3], NULL, 10);
        n_threads = strtol(argv[4], NULL, 10);
        b.batch = strtol(argv[5], NULL, 10);
        if (b.count <= 0 || b.size == 0 || b.size > (1 << 24) || n_threads <= 0 ||
            n_threads > 256 || b.batch <= 0 || b.batch > FSYNC_BENCH_BATCH_MAX) {
                fprintf(stderr, "fsync-bench: bad arguments\n");
                return 2;
        }
        b.dirfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (b.dirfd < 0) {
                fprintf(stderr, "fsync-bench: %s: %s\n", argv[1], strerror(errno));
                return 1;
        }
        b.payload = malloc(b.size);
        if (!b.payload)
                return 1;
        memset(b.payload, 'x', b.size);
        b.count /= n_threads;
        if (b.count == 0)
                b.count = 1;

        b.start = fsync_bench_now();
        for (long i = 0; i < n_threads; i++) {
                workers[i] = (FsyncWorker) { .b = &b, .id = (int) i };
                if (pthread_create(&threads[i], NULL, fsync_bench_worker, &workers[i]) != 0)
                        return 1;
        }
        for (long i = 0; i < n_threads; i++)
                pthread_join(threads[i], NULL);
        double elapsed = fsync_bench_now() - b.start;

        if (b.error != 0) {
                fprintf(stderr, "fsync-bench: %s\n", strerror(-b.error));
                return 1;
        }
        printf("%.0f\n", (double) b.done / elapsed);
        free(b.payload);
        return 0;
}
