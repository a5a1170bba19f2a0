/* Backup and restore without stopping tern. The spool needs no pause: a
 * message file is immutable once renamed into queue/, and its state file only
 * grows by fsynced records whose torn tail the reader ignores. The archive
 * lists each message's state file before the message itself, so a message
 * finished (and removed: message first, then state) during the backup leaves
 * at worst an orphan state file, which queued deletes at start-up, never a
 * message without its delivery results. Files vanishing meanwhile are skipped
 * (tar --ignore-failed-read). tar(1) writes the archive; paths are stored
 * relative to / so that restore puts everything back where it was. */
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "backup.h"
#include "config.h"
#include "ipc.h"
#include "spool.h"
#include "ternctl.h"

extern char **environ;

static int list_add(FILE *f, const char *path) {
        /* tar -C / with NUL-separated names: strip the leading slash. */
        if (!path || path[0] != '/')
                return 0;
        fputs(path + 1, f);
        fputc(0, f);
        return 0;
}

static void list_add_if_exists(FILE *f, const char *path) {
        struct stat st;

        if (!isempty(path) && lstat(path, &st) >= 0)
                (void) list_add(f, path);
}

static void list_table(FILE *f, const char *source) {
        _cleanup_free_ char *cdb = NULL;

        if (isempty(source))
                return;
        list_add_if_exists(f, source);
        if (asprintf(&cdb, "%s.cdb", source) >= 0)
                list_add_if_exists(f, cdb);
        else
                cdb = NULL;
}

static int cmp_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Names in dir (without . and ..), sorted; a missing directory is empty. */
static int dir_names(const char *dir, char ***ret, size_t *ret_n) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;
        DIR *d = opendir(dir);

        if (!d) {
                *ret = NULL;
                *ret_n = 0;
                return errno == ENOENT ? 0 : -errno;
        }
        for (struct dirent *de; (de = readdir(d));) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                char **a = reallocarray_safe(l, n + 2, sizeof(char *));
                if (!a) {
                        closedir(d);
                        return -ENOMEM;
                }
                l = a;
                l[n] = strdup(de->d_name);
                if (!l[n]) {
                        closedir(d);
                        return -ENOMEM;
                }
                l[++n] = NULL;
        }
        closedir(d);
        if (n > 0)
                qsort(l, n, sizeof(char *), cmp_names);
        *ret = TAKE_PTR(l);
        *ret_n = n;
        return 0;
}

static int list_dir_files(FILE *f, const char *dir) {
        _cleanup_strv_free_ char **names = NULL;
        size_t n;
        int r;

        list_add_if_exists(f, dir);
        r = dir_names(dir, &names, &n);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ char *p = NULL;

                if (asprintf(&p, "%s/%s", dir, names[i]) < 0)
                        return -ENOMEM;
                list_add(f, p);
        }
        return r;
}

/* queue/: for each message, <ID>.st first, then <ID> (see the top). */
static int list_queue(FILE *f, const char *spool) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_strv_free_ char **names = NULL;
        size_t n;
        int r;

        if (asprintf(&dir, "%s/%s", spool, SPOOL_DIR_QUEUE) < 0)
                return -ENOMEM;
        list_add_if_exists(f, dir);
        r = dir_names(dir, &names, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *msg = NULL, *st = NULL;

                if (!spool_id_valid(names[i]))
                        continue;
                if (asprintf(&msg, "%s/%s", dir, names[i]) < 0 ||
                    asprintf(&st, "%s/%s%s", dir, names[i], SPOOL_STATE_SUFFIX) < 0)
                        return -ENOMEM;
                list_add_if_exists(f, st);
                list_add(f, msg);
        }
        return 0;
}

static int build_list(const Config *c, const char *config_path, char **ret, size_t *ret_len) {
        _cleanup_free_ char *dropin = NULL, *corrupt = NULL, *tmpdir = NULL;
        char *buf = NULL;
        size_t len = 0;
        FILE *f;
        int r;

        f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        if (asprintf(&dropin, "%s.d", config_path) < 0 ||
            asprintf(&corrupt, "%s/%s", c->spool_directory, SPOOL_DIR_CORRUPT) < 0 ||
            asprintf(&tmpdir, "%s/%s", c->spool_directory, SPOOL_DIR_TMP) < 0) {
                fclose(f);
                free(buf);
                return -ENOMEM;
        }
        list_add_if_exists(f, config_path);
        r = list_dir_files(f, dropin);
        list_table(f, c->client_access);
        list_table(f, c->helo_access);
        list_table(f, c->sender_access);
        list_table(f, c->recipient_access);
        list_table(f, c->auth_password_table);
        list_table(f, c->auth_sender_login_map);
        list_table(f, c->transport_table);
        list_table(f, c->smtp_tls_policy_table);
        list_table(f, c->smtp_password_table);
        list_table(f, c->alias_file);
        list_table(f, c->virtual_alias_map);
        list_table(f, c->virtual_mailbox_map);
        list_add_if_exists(f, c->tls_certificate_file);
        list_add_if_exists(f, c->tls_key_file);
        list_add_if_exists(f, c->smtp_tls_ca_file);
        /* The spool directories themselves keep their owner and mode; tmp/
         * holds only unacknowledged data, so only the directory is saved. */
        list_add_if_exists(f, c->spool_directory);
        list_add_if_exists(f, tmpdir);
        if (r >= 0)
                r = list_dir_files(f, corrupt);
        if (r >= 0)
                r = list_queue(f, c->spool_directory);
        if (fclose(f) != 0 && r >= 0)
                r = -ENOMEM;
        if (r < 0) {
                free(buf);
                return r;
        }
        *ret = buf;
        *ret_len = len;
        return 0;
}

/* Runs tar with argv, feeding input (if any) on its stdin. Exit code of tar or -errno. */
static int run_tar(char *const argv[], const char *input, size_t len) {
        posix_spawn_file_actions_t fa;
        int pipefd[2] = { -1, -1 }, status, r;
        pid_t pid;

        if (input && pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        r = posix_spawn_file_actions_init(&fa);
        if (r == 0 && input)
                r = posix_spawn_file_actions_adddup2(&fa, pipefd[0], STDIN_FILENO);
        if (r == 0)
                r = posix_spawnp(&pid, "tar", &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (input)
                closep(&pipefd[0]);
        if (r != 0) {
                if (input)
                        closep(&pipefd[1]);
                return -r;
        }
        while (input && len > 0) {
                ssize_t n = write(pipefd[1], input, len);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        break;
                input += n;
                len -= (size_t) n;
        }
        if (input)
                closep(&pipefd[1]);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int verb_backup(const char *config_path, int argc, char **argv) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *list = NULL;
        size_t len;
        int r;

        if (argc != 2)
                return ternctl_usage_error("%s", "backup takes one FILE (.tar.gz; - for stdout)");
        if (ternctl_load_config(config_path, &c) < 0)
                return EXIT_FAILURE;
        r = build_list(c, config_path, &list, &len);
        if (r < 0) {
                fprintf(stderr, "ternctl: cannot list the files to back up: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        char *const tar[] = {
                (char *) "tar", (char *) "--create", (char *) "--gzip", (char *) "--file", argv[1],
                (char *) "--no-recursion", (char *) "--ignore-failed-read",
                (char *) "--warning=no-file-removed", (char *) "--warning=no-file-changed",
                (char *) "--directory", (char *) "/", (char *) "--null", (char *) "--files-from", (char *) "-",
                NULL,
        };
        /* The archive holds private keys and mail: readable by its owner only. */
        (void) umask(0077);
        r = run_tar(tar, list, len);
        if (r != 0) {
                fprintf(stderr, "ternctl: tar failed (%s %d)\n", r < 0 ? "error" : "exit status",
                        r < 0 ? -r : r);
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

int verb_restore(const char *config_path, int argc, char **argv) {
        static const struct option options[] = {
                { "root", required_argument, NULL, 'r' },
                {}
        };
        const char *root = "/";
        int o, r;

        while ((o = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (o) {
                case 'r':
                        root = optarg;
                        break;
                default:
                        return TERNCTL_EXIT_USAGE;
                }
        if (optind != argc - 1)
                return ternctl_usage_error("%s", "restore takes one FILE made by ternctl backup");
        if (streq(root, "/")) {
                /* Restoring under a running queued would mix two spools. */
                _cleanup_(config_freep) Config *c = NULL;
                _cleanup_close_ int fd = -EBADF;

                if (ternctl_load_config(config_path, &c) >= 0 &&
                    (fd = ipc_connect(c->queued_socket)) >= 0) {
                        fprintf(stderr, "ternctl: tern-queued is running (%s): stop tern.target and "
                                "tern-queued.socket first\n", c->queued_socket);
                        return EXIT_FAILURE;
                }
        }
        char *const tar[] = {
                (char *) "tar", (char *) "--extract", (char *) "--gzip", (char *) "--file", argv[optind],
                (char *) "--directory", (char *) root, (char *) "--preserve-permissions",
                (char *) "--same-owner", (char *) "--no-overwrite-dir", NULL,
        };
        r = run_tar(tar, NULL, 0);
        if (r != 0) {
                fprintf(stderr, "ternctl: tar failed (%s %d)\n", r < 0 ? "error" : "exit status",
                        r < 0 ? -r : r);
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
