/* Tests the spool format: durable write + open + read round trip in a
 * temporary spool, refusal of duplicates and of broken files, the state file
 * parser and appenders, and queue id monotonicity. */
#include <cdb.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "spool.h"
#include "tap.h"

static char spool_path[] = "/tmp/tern-test-spool.XXXXXX";

static size_t count_entries(int dirfd, const char *sub) {
        int fd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d;
        size_t n = 0;

        if (fd < 0)
                return SIZE_MAX;
        d = fdopendir(fd);
        if (!d) {
                (void) close(fd);
                return SIZE_MAX;
        }
        for (struct dirent *de; (de = readdir(d));)
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        n++;
        (void) closedir(d);
        return n;
}

static void rm_rf(int top, const char *sub) {
        int fd = openat(top, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d;

        if (fd < 0)
                return;
        d = fdopendir(fd);
        if (!d) {
                (void) close(fd);
                return;
        }
        for (struct dirent *de; (de = readdir(d));)
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        (void) unlinkat(dirfd(d), de->d_name, 0);
        (void) closedir(d);
        (void) unlinkat(top, sub, AT_REMOVEDIR);
}

static const char body[] = "Received: from x\r\nSubject: hi\r\n\r\nhello\r\n";

static void make_envelope(SpoolEnvelope *e, char *id, SpoolRcpt *rcpts) {
        rcpts[0] = (SpoolRcpt) { .addr = (char *) "a@example.org", .notify = (char *) "SUCCESS,FAILURE" };
        rcpts[1] = (SpoolRcpt) { .addr = (char *) "b@example.org", .orcpt = (char *) "rfc822;B@example.org" };
        *e = (SpoolEnvelope) {
                .id = id,
                .sender = (char *) "",
                .rcpts = rcpts,
                .n_rcpts = 2,
                .arrival_usec = 1700000000123456ull,
                .client_addr = (char *) "192.0.2.1",
                .helo = (char *) "client.example",
                .proto = (char *) "ESMTP",
                .body_type = (char *) "8BITMIME",
                .smtputf8 = true,
        };
}

static void test_round_trip(int dirfd) {
        char id[SPOOL_ID_MAX];
        SpoolRcpt rcpts[2];
        SpoolEnvelope e, r = {};
        _cleanup_(spool_closep) SpoolFile *f = NULL;
        const uint8_t *b;
        size_t bl;
        struct stat st;
        char path[64];

        spool_new_id(id);
        make_envelope(&e, id, rcpts);
        CHECK_INT(spool_write(dirfd, &e, body, strlen(body)), 0);
        CHECK_INT(count_entries(dirfd, "tmp"), 0);
        CHECK_INT(count_entries(dirfd, "queue"), 1);
        (void) snprintf(path, sizeof(path), "queue/%s", id);
        CHECK(fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0);
        CHECK_INT(st.st_mode & 07777, 0600);

        /* a second write with the same id is refused and leaves tmp/ empty */
        CHECK_INT(spool_write(dirfd, &e, "x", 1), -EEXIST);
        CHECK_INT(count_entries(dirfd, "tmp"), 0);
        CHECK_INT(count_entries(dirfd, "queue"), 1);

        CHECK_INT(spool_open(dirfd, id, &f), 0);
        if (!f)
                return;
        CHECK_INT(spool_read_envelope(f, &r), 0);
        CHECK_STREQ(r.id, id);
        CHECK_STREQ(r.sender, "");
        CHECK_INT(r.n_rcpts, 2);
        if (r.n_rcpts == 2) {
                CHECK_STREQ(r.rcpts[0].addr, "a@example.org");
                CHECK_STREQ(r.rcpts[0].notify, "SUCCESS,FAILURE");
                CHECK(r.rcpts[0].orcpt == NULL);
                CHECK_STREQ(r.rcpts[1].addr, "b@example.org");
                CHECK(r.rcpts[1].notify == NULL);
                CHECK_STREQ(r.rcpts[1].orcpt, "rfc822;B@example.org");
        }
        CHECK_INT(r.arrival_usec, 1700000000123456ull);
        CHECK_STREQ(r.client_addr, "192.0.2.1");
        CHECK(r.client_name == NULL);
        CHECK_STREQ(r.helo, "client.example");
        CHECK_STREQ(r.proto, "ESMTP");
        CHECK(r.auth_user == NULL);
        CHECK_STREQ(r.body_type, "8BITMIME");
        CHECK(r.smtputf8);
        spool_envelope_done(&r);
        CHECK(r.id == NULL && r.rcpts == NULL);

        CHECK_INT(spool_get_body(f, &b, &bl), 0);
        CHECK_INT(bl, strlen(body));
        CHECK(bl == strlen(body) && memcmp(b, body, bl) == 0);
        CHECK_INT(spool_get(f, "size", &b, &bl), 0);
        CHECK(bl == 2 && memcmp(b, "40", 2) == 0);
        CHECK_INT(spool_get(f, "nonexistent", &b, &bl), -ENOENT);
        f = spool_close(f);

        /* the same file through an fd, as deliverd gets it */
        {
                int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);

                CHECK_INT(spool_open_fd(fd, &f), 0);
                CHECK_INT(spool_read_envelope(f, &r), 0);
                CHECK_STREQ(r.id, id);
                spool_envelope_done(&r);
                f = spool_close(f);
        }

        CHECK_INT(spool_open(dirfd, "0000000000000", &f), -ENOENT);
        CHECK_INT(spool_open(dirfd, "../etc/passwd", &f), -EINVAL);

        /* nodirsync variant + batch sync */
        spool_new_id(id);
        CHECK_INT(spool_write_nodirsync(dirfd, &e, NULL, 0), 0);
        CHECK_INT(spool_sync_queue_dir(dirfd), 0);
        CHECK_INT(spool_open(dirfd, id, &f), 0);
        CHECK_INT(spool_get_body(f, &b, &bl), 0);
        CHECK_INT(bl, 0);
        f = spool_close(f);
        CHECK_INT(spool_remove(dirfd, id), 0);
        CHECK_INT(count_entries(dirfd, "queue"), 1);
}

static void test_write_rejects(int dirfd) {
        char id[SPOOL_ID_MAX];
        SpoolRcpt rcpts[2];
        SpoolEnvelope e;

        spool_new_id(id);
        make_envelope(&e, id, rcpts);
        /* bodies that would take the CDB past 4 GiB: refused before reading them */
        CHECK_INT(spool_write(dirfd, &e, body, (size_t) 1 << 32), -EFBIG);
        CHECK_INT(spool_write(dirfd, &e, body, 0xffffffffu - 2048), -EFBIG);
        CHECK_INT(spool_write(dirfd, &e, body, SIZE_MAX), -EFBIG);
        e.n_rcpts = 0;
        CHECK_INT(spool_write(dirfd, &e, body, 1), -EINVAL);
        e.n_rcpts = 2;
        e.id = (char *) "not-an-id";
        CHECK_INT(spool_write(dirfd, &e, body, 1), -EINVAL);
        e.id = id;
        rcpts[1].addr = NULL;
        CHECK_INT(spool_write(dirfd, &e, body, 1), -EINVAL);
        CHECK_INT(count_entries(dirfd, "tmp"), 0);
}

static void write_file(int dirfd, const char *path, const void *p, size_t n) {
        int fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        CHECK(fd >= 0);
        CHECK(write(fd, p, n) == (ssize_t) n);
        (void) close(fd);
}

static void test_open_rejects(int dirfd) {
        static uint8_t junk[4096];
        SpoolFile *f = NULL;
        char id[SPOOL_ID_MAX], path[64], other[SPOOL_ID_MAX];
        SpoolRcpt rcpts[2];
        SpoolEnvelope e;

        /* too small to be a cdb */
        spool_new_id(id);
        (void) snprintf(path, sizeof(path), "queue/%s", id);
        write_file(dirfd, path, "short", 5);
        CHECK_INT(spool_open(dirfd, id, &f), -EBADMSG);
        /* table of contents pointing outside the file */
        memset(junk, 0xff, sizeof(junk));
        write_file(dirfd, path, junk, sizeof(junk));
        CHECK_INT(spool_open(dirfd, id, &f), -EBADMSG);
        /* an empty but valid cdb: no version */
        memset(junk, 0, sizeof(junk));
        for (unsigned i = 0; i < 256; i++)
                cdb_pack(2048, junk + 8 * i);
        write_file(dirfd, path, junk, 2048);
        CHECK_INT(spool_open(dirfd, id, &f), -EBADMSG);
        /* a symlink is not followed */
        CHECK(unlinkat(dirfd, path, 0) == 0);
        CHECK(symlinkat("/etc/passwd", dirfd, path) == 0);
        CHECK_INT(spool_open(dirfd, id, &f), -EBADMSG);
        CHECK(unlinkat(dirfd, path, 0) == 0);
        CHECK(f == NULL);

        /* a valid file renamed to another id: the id inside does not match */
        spool_new_id(id);
        spool_new_id(other);
        make_envelope(&e, id, rcpts);
        CHECK_INT(spool_write(dirfd, &e, body, strlen(body)), 0);
        {
                char a[64], b[64];

                (void) snprintf(a, sizeof(a), "queue/%s", id);
                (void) snprintf(b, sizeof(b), "queue/%s", other);
                CHECK(renameat(dirfd, a, dirfd, b) == 0);
                CHECK_INT(spool_open(dirfd, other, &f), -EBADMSG);
                CHECK_INT(spool_move_corrupt(dirfd, other), 0);
                CHECK_INT(count_entries(dirfd, "corrupt"), 1);
        }
}

static void test_state_parse(void) {
        SpoolState s = {};
        const char *t;

        CHECK_INT(spool_state_parse("", 0, 3, &s), 0);
        CHECK_INT(s.n_rcpts, 3);
        CHECK_INT(s.rcpts[0].status, DELIVERY_NONE);
        CHECK_INT(s.attempts, 0);
        CHECK(!s.hold);
        spool_state_done(&s);

        t = "R 0 F 100 4.4.1 mx.example.org[192.0.2.1]:25 connection refused\n"
            "A 100 400\n"
            "R 0 D 500 2.0.0 mx.example.org[192.0.2.1]:25 250 2.0.0 Ok: queued as X\n"
            "R 0 F 600 4.0.0 - must not replace the final status\n"
            "R 1 B 500 5.1.1 local unknown user\n"
            "R 1 D 700 2.0.0 local must not replace a bounce either\n"
            "R 2 F 500 4.2.2 local \n"
            "H 1\n"
            "A 500 900\n"
            "H 0\n"
            "H 1\n"
            "R 2 D 800 2.0.0 local this torn line is ignored";
        CHECK_INT(spool_state_parse(t, strlen(t), 3, &s), 0);
        CHECK_INT(s.rcpts[0].status, DELIVERY_DELIVERED);
        CHECK_INT(s.rcpts[0].when_usec, 500);
        CHECK_STREQ(s.rcpts[0].dsn, "2.0.0");
        CHECK_STREQ(s.rcpts[0].relay, "mx.example.org[192.0.2.1]:25");
        CHECK_STREQ(s.rcpts[0].text, "250 2.0.0 Ok: queued as X");
        CHECK_INT(s.rcpts[1].status, DELIVERY_BOUNCED);
        CHECK_STREQ(s.rcpts[1].text, "unknown user");
        CHECK_INT(s.rcpts[2].status, DELIVERY_DEFERRED);
        CHECK_STREQ(s.rcpts[2].relay, "local");
        CHECK_STREQ(s.rcpts[2].text, "");
        CHECK_INT(s.attempts, 2);
        CHECK_INT(s.last_attempt_usec, 500);
        CHECK_INT(s.next_attempt_usec, 900);
        CHECK(s.hold);
        spool_state_done(&s);

        /* "-" is an empty dsn/relay; a line without text after the relay */
        t = "R 0 F 1 - -\n";
        CHECK_INT(spool_state_parse(t, strlen(t), 1, &s), 0);
        CHECK_STREQ(s.rcpts[0].dsn, "");
        CHECK_STREQ(s.rcpts[0].relay, "");
        spool_state_done(&s);

        /* malformed records; *ret stays untouched */
        static const char *const bad[] = {
                "R 3 D 1 2.0.0 local x\n",              /* index out of range */
                "R -1 D 1 2.0.0 local x\n",
                "R 01 D 1 2.0.0 local x\n",             /* leading zero */
                "R 99999999999999999999999 D 1 2.0.0 local x\n",
                "R 0 X 1 2.0.0 local x\n",              /* unknown status */
                "R 0 DD 1 2.0.0 local x\n",
                "R 0 D x 2.0.0 local x\n",
                "R 0 D 1 2.0.0\n",                      /* no relay */
                "R 0 D 1  local x\n",                   /* double space */
                "R 0 D 1 0123456789abcdef local x\n",   /* dsn too long */
                "R 0 D 1 2.0.0 local a\tb\n",           /* control character */
                "A 1\n",
                "A 1 2 3\n",
                "A 1 2 \n",
                "A x 2\n",
                "H 2\n",
                "H\n",
                "H 1 \n",
                "\n",
                "Z 1\n",
                "R\n",
                "H 1\nR 0 D 1 2.0.0 local ok\nbad line\nH 0\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                SpoolState u = { .attempts = 4242 };
                int r = spool_state_parse(bad[i], strlen(bad[i]), 3, &u);

                if (r != -EBADMSG)
                        fprintf(stderr, "bad state case %zu accepted: %s", i, bad[i]);
                CHECK_INT(r, -EBADMSG);
                CHECK_INT(u.attempts, 4242);
        }
        /* a relay over 255 bytes */
        {
                char line[400];

                memset(line, 0, sizeof(line));
                memcpy(line, "R 0 D 1 2.0.0 ", 14);
                memset(line + 14, 'r', 256);
                memcpy(line + 270, " t\n", 3);
                CHECK_INT(spool_state_parse(line, strlen(line), 1, &s), -EBADMSG);
        }
        CHECK_INT(spool_state_parse("", 0, SPOOL_RCPT_MAX + 1, &s), -EINVAL);
}

static void test_state_file(int dirfd) {
        char id[SPOOL_ID_MAX], path[64], text[1000];
        SpoolState s = {};
        struct stat st;

        spool_new_id(id);
        CHECK_INT(spool_state_load(dirfd, id, 2, &s), 0); /* absent: all pending */
        CHECK_INT(s.n_rcpts, 2);
        CHECK_INT(s.rcpts[1].status, DELIVERY_NONE);
        spool_state_done(&s);

        memset(text, 'x', sizeof(text) - 1);
        text[sizeof(text) - 1] = 0;
        text[3] = '\n';
        text[4] = '\r';
        CHECK_INT(spool_state_append_result(dirfd, id, 0, DELIVERY_DEFERRED, 10, "4.4.1",
                                            "mx.example.org[192.0.2.1]:25", text), 0);
        CHECK_INT(spool_state_append_attempt(dirfd, id, 10, 310), 0);
        /* relay with a space and a newline, NULL dsn and text */
        CHECK_INT(spool_state_append_result(dirfd, id, 1, DELIVERY_BOUNCED, 20, NULL,
                                            "a b\nR 0 D", NULL), 0);
        CHECK_INT(spool_state_append_hold(dirfd, id, true), 0);
        CHECK_INT(spool_state_append_result(dirfd, id, 2, DELIVERY_DELIVERED, 1, "", "", ""),
                  0); /* the index is only checked by the parser */
        CHECK_INT(spool_state_append_result(dirfd, id, 0, DELIVERY_NONE, 1, "", "", ""), -EINVAL);

        (void) snprintf(path, sizeof(path), "queue/%s.st", id);
        CHECK(fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0);
        CHECK_INT(st.st_mode & 07777, 0600);

        CHECK_INT(spool_state_load(dirfd, id, 2, &s), -EBADMSG); /* index 2 of 2 */
        CHECK_INT(spool_state_load(dirfd, id, 3, &s), 0);
        CHECK_INT(s.rcpts[0].status, DELIVERY_DEFERRED);
        CHECK_STREQ(s.rcpts[0].dsn, "4.4.1");
        CHECK_INT(strlen(s.rcpts[0].text), sizeof(s.rcpts[0].text) - 1);
        CHECK(strncmp(s.rcpts[0].text, "xxx  xxx", 8) == 0);
        CHECK_INT(s.rcpts[1].status, DELIVERY_BOUNCED);
        CHECK_STREQ(s.rcpts[1].dsn, "");
        CHECK_STREQ(s.rcpts[1].relay, "a_b_R_0_D");
        CHECK_STREQ(s.rcpts[1].text, "");
        CHECK_INT(s.rcpts[2].status, DELIVERY_DELIVERED);
        CHECK_INT(s.attempts, 1);
        CHECK_INT(s.next_attempt_usec, 310);
        CHECK(s.hold);
        spool_state_done(&s);

        /* a torn last line (crash mid-write) is ignored, then cut off before
         * the next append so the new record stays parseable */
        {
                int fd = openat(dirfd, path, O_WRONLY | O_APPEND | O_CLOEXEC);

                CHECK(fd >= 0);
                CHECK(write(fd, "R 0 D 99 2.0.0 loc", 18) == 18);
                (void) close(fd);
        }
        CHECK_INT(spool_state_load(dirfd, id, 3, &s), 0);
        CHECK_INT(s.rcpts[0].status, DELIVERY_DEFERRED);
        spool_state_done(&s);
        CHECK_INT(spool_state_append_hold(dirfd, id, false), 0);
        CHECK_INT(spool_state_load(dirfd, id, 3, &s), 0);
        CHECK_INT(s.rcpts[0].status, DELIVERY_DEFERRED);
        CHECK(!s.hold);
        spool_state_done(&s);

        CHECK_INT(spool_remove(dirfd, id), 0);
        CHECK(fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT);
}

static void test_ids(void) {
        char prev[SPOOL_ID_MAX], cur[SPOOL_ID_MAX];

        spool_new_id(prev);
        CHECK_INT(strlen(prev), 13);
        CHECK(spool_id_valid(prev));
        /* far more ids than microseconds pass: strictly increasing all the same */
        for (unsigned i = 0; i < 200000; i++) {
                spool_new_id(cur);
                if (strcmp(prev, cur) >= 0) {
                        fprintf(stderr, "id not increasing: %s then %s\n", prev, cur);
                        CHECK(false);
                        break;
                }
                memcpy(prev, cur, sizeof(cur));
        }
        CHECK(spool_id_valid("65F1A2B30F4C2"));
        CHECK(spool_id_valid("0123456789ABCDEF0123456789ABCDE"));   /* 31 */
        CHECK(!spool_id_valid("0123456789ABCDEF0123456789ABCDEF")); /* 32 */
        CHECK(!spool_id_valid("65F1A2B30F4C"));                      /* 12 */
        CHECK(!spool_id_valid("65f1a2b30f4c2"));
        CHECK(!spool_id_valid("65F1A2B30F4C2.st"));
        CHECK(!spool_id_valid("../1A2B30F4C2"));
        CHECK(!spool_id_valid(NULL));

        CHECK_STREQ(delivery_status_to_string(DELIVERY_DELIVERED), "sent");
        CHECK_STREQ(delivery_status_to_string(DELIVERY_BOUNCED), "bounced");
        CHECK_STREQ(delivery_status_to_string(DELIVERY_DEFERRED), "deferred");
        CHECK_STREQ(delivery_status_to_string(DELIVERY_NONE), "pending");
        CHECK(delivery_status_to_string(_DELIVERY_STATUS_MAX) == NULL);
}

/* Group commit: staged files sit in tmp/ until spool_commit, which puts every
 * one in queue/ and reports each result; a discarded one leaves nothing. */
static void test_stage_commit(int dirfd) {
        char ids[3][SPOOL_ID_MAX];
        SpoolRcpt rcpts[2];
        SpoolEnvelope e;
        SpoolStaged st[3], dropped;
        SpoolFile *f = NULL;

        for (size_t i = 0; i < 3; i++) {
                spool_new_id(ids[i]);
                make_envelope(&e, ids[i], rcpts);
                CHECK_INT(spool_stage(dirfd, &e, "x\r\n", 3, &st[i]), 0);
                CHECK(st[i].fd >= 0);
                CHECK_STREQ(st[i].id, ids[i]);
        }
        CHECK_INT(count_entries(dirfd, "tmp"), 3);
        CHECK_INT(spool_open(dirfd, ids[0], &f), -ENOENT); /* not yet in queue/ */

        /* An id already staged is refused at once. */
        make_envelope(&e, ids[0], rcpts);
        CHECK_INT(spool_stage(dirfd, &e, NULL, 0, &dropped), -EEXIST);

        {
                char other[SPOOL_ID_MAX];
                spool_new_id(other);
                make_envelope(&e, other, rcpts);
                CHECK_INT(spool_stage(dirfd, &e, NULL, 0, &dropped), 0);
        }
        spool_staged_discard(dirfd, &dropped);
        CHECK_INT(dropped.fd, -EBADF);
        CHECK_INT(count_entries(dirfd, "tmp"), 3);

        CHECK_INT(spool_commit(dirfd, st, 3), 0);
        for (size_t i = 0; i < 3; i++) {
                CHECK_INT(st[i].result, 0);
                CHECK_INT(st[i].fd, -EBADF);
                CHECK_INT(spool_open(dirfd, st[i].id, &f), 0);
                f = spool_close(f);
                CHECK_INT(spool_remove(dirfd, st[i].id), 0);
        }
        CHECK_INT(count_entries(dirfd, "tmp"), 0);
}

/* Small files are read into memory, large ones mapped: both give the same
 * records, and a record pointing past the end of the file is refused. */
static void test_read_and_map(int dirfd) {
        static const size_t sizes[] = { 0, 1, 255u * 1024u, 256u * 1024u, 600u * 1024u };
        char id[SPOOL_ID_MAX], path[64];
        SpoolRcpt rcpts[2];
        SpoolEnvelope e;

        for (size_t k = 0; k < ELEMENTSOF(sizes); k++) {
                _cleanup_free_ uint8_t *big = malloc(sizes[k] + 1);
                SpoolFile *f = NULL;
                const uint8_t *v;
                size_t vl;

                CHECK(big != NULL);
                for (size_t i = 0; i < sizes[k]; i++)
                        big[i] = (uint8_t) ('a' + i % 26);
                spool_new_id(id);
                make_envelope(&e, id, rcpts);
                CHECK_INT(spool_write(dirfd, &e, big, sizes[k]), 0);
                CHECK_INT(spool_open(dirfd, id, &f), 0);
                CHECK_INT(spool_get(f, "body", &v, &vl), 0);
                CHECK(vl == sizes[k] && memcmp(v, big, vl) == 0);
                CHECK_INT(spool_get(f, "no-such-key", &v, &vl), -ENOENT);
                f = spool_close(f);
                CHECK_INT(spool_remove(dirfd, id), 0);
        }

        /* The "version" record's value length made to reach past the end. */
        {
                SpoolFile *f = NULL;
                uint8_t *buf;
                size_t n;
                int fd;

                spool_new_id(id);
                make_envelope(&e, id, rcpts);
                CHECK_INT(spool_write(dirfd, &e, body, 10), 0);
                (void) snprintf(path, sizeof(path), "queue/%s", id);
                fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
                CHECK(fd >= 0);
                n = (size_t) lseek(fd, 0, SEEK_END);
                buf = malloc(n);
                CHECK(buf && pread(fd, buf, n, 0) == (ssize_t) n);
                (void) close(fd);
                /* The first record follows the 2048-byte table: version. */
                CHECK(cdb_unpack(buf + 2048) == strlen("version"));
                cdb_pack((unsigned) n, buf + 2048 + 4);
                CHECK(unlinkat(dirfd, path, 0) == 0);
                write_file(dirfd, path, buf, n);
                free(buf);
                CHECK_INT(spool_open(dirfd, id, &f), -EBADMSG);
                CHECK(f == NULL);
                CHECK(unlinkat(dirfd, path, 0) == 0);
        }
}

int main(void) {
        int dirfd;

        if (!mkdtemp(spool_path)) {
                perror("mkdtemp");
                return EXIT_FAILURE;
        }
        dirfd = open(spool_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        CHECK(dirfd >= 0);
        CHECK_INT(spool_prepare(dirfd), 0);
        CHECK_INT(spool_prepare(dirfd), 0); /* idempotent */

        test_round_trip(dirfd);
        test_write_rejects(dirfd);
        test_stage_commit(dirfd);
        test_open_rejects(dirfd);
        test_read_and_map(dirfd);
        test_state_parse();
        test_state_file(dirfd);
        test_ids();

        rm_rf(dirfd, "tmp");
        rm_rf(dirfd, "queue");
        rm_rf(dirfd, "corrupt");
        (void) close(dirfd);
        (void) rmdir(spool_path);
        return tap_finish("test-spool");
}
