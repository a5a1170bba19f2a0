/* Alias expansion, the way Postfix's local(8) does it in place: a name is
 * looked up ("user+ext", then "user"), each item of its value becomes a
 * target (mailbox, file, command, address) or is expanded again; an
 * "owner-NAME" alias becomes the envelope sender of what NAME expands to,
 * so that errors go to the list owner. Files and commands run with the
 * privileges of the list's owner, never root. */
#include <ctype.h>
#include <stdarg.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "alias.h"
#include "route.h"

void local_targets_done(LocalTargets *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->t[i].value);
                free(l->t[i].sender);
        }
        free(l->t);
        *l = (LocalTargets) {};
}

int alias_read_list_file(int fd, const struct stat *st, char **ret, size_t *ret_len) {
        _cleanup_free_ char *buf = malloc((size_t) st->st_size + 1);
        size_t n = 0;

        if (!buf)
                return -ENOMEM;
        while (n < (size_t) st->st_size) {
                ssize_t k = read(fd, buf + n, (size_t) st->st_size - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        buf[n] = 0;
        if (memchr(buf, 0, n))
                return -EBADMSG;
        /* '#' lines are comments, as in the alias file. */
        for (char *line = buf; line && *line;) {
                char *nl = strchr(line, '\n');
                if (line[0] == '#')
                        memset(line, ' ', nl ? (size_t) (nl - line) : strlen(line));
                line = nl ? nl + 1 : NULL;
        }
        *ret = TAKE_PTR(buf);
        *ret_len = n;
        return 0;
}

int alias_split(const char *value, char ***ret) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0, len = strlen(value);
        _cleanup_free_ char *item = malloc(len + 1);

        if (!item)
                return -ENOMEM;
        for (const char *p = value; *p;) {
                size_t k = 0;
                bool quoted = false;
                char **nl;

                while (*p == ',' || *p == '\n' || *p == '\r' || *p == ' ' || *p == '\t')
                        p++;
                if (!*p)
                        break;
                for (; *p && (quoted || (*p != ',' && *p != '\n')); p++) {
                        if (*p == '"') {
                                quoted = !quoted;
                                continue;
                        }
                        item[k++] = *p;
                }
                if (quoted)
                        return -EINVAL;
                while (k > 0 && (item[k - 1] == ' ' || item[k - 1] == '\t' || item[k - 1] == '\r'))
                        k--;
                if (k == 0)
                        continue;
                nl = reallocarray_safe(l, n + 2, sizeof(char *));
                if (!nl)
                        return -ENOMEM;
                l = nl;
                l[n] = memdup_str(item, k);
                if (!l[n])
                        return -ENOMEM;
                l[++n] = NULL;
        }
        if (!l && !(l = new0(char *, 1)))
                return -ENOMEM;
        *ret = TAKE_PTR(l);
        return 0;
}

static int targets_add(LocalTargets *out, LocalTargetType type, const char *value, bool no_forward,
                       AliasOwner owner, const char *sender) {
        LocalTarget *nt;

        /* The same target twice is delivered once (a user on two lists). */
        for (size_t i = 0; i < out->n; i++)
                if (out->t[i].type == type && streq(out->t[i].value, value))
                        return 0;
        if (out->n >= ALIAS_TARGETS_MAX)
                return -E2BIG;
        nt = reallocarray_safe(out->t, out->n + 1, sizeof(LocalTarget));
        if (!nt)
                return -ENOMEM;
        out->t = nt;
        nt[out->n] = (LocalTarget) {
                .type = type,
                .value = strdup(value),
                .no_forward = no_forward,
                .uid = owner.uid,
                .gid = owner.gid,
                .sender = sender ? strdup(sender) : NULL,
        };
        if (!nt[out->n].value || (sender && !nt[out->n].sender)) {
                free(nt[out->n].value);
                free(nt[out->n].sender);
                return -ENOMEM;
        }
        out->n++;
        return 0;
}

_printf_(3, 4) static void set_err(char *err, size_t size, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(err, size, fmt, ap);
        va_end(ap);
}

static int expand_name(const AliasContext *ctx, const char *local_ext, const char *user,
                       const char **path, unsigned depth, const char *sender, LocalTargets *out,
                       char *err, size_t err_size);

static int expand_items(const AliasContext *ctx, char **items, const char **path, unsigned depth,
                        AliasOwner owner, const char *sender, LocalTargets *out, char *err,
                        size_t err_size);

/* Reads an :include: file (regular, bounded) and expands it with its
 * owner's privileges. */
static int expand_include(const AliasContext *ctx, const char *file, const char **path,
                          unsigned depth, const char *sender, LocalTargets *out, char *err,
                          size_t err_size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        _cleanup_strv_free_ char **items = NULL;
        AliasOwner owner;
        struct stat st;
        size_t n = 0;
        int r;

        if (file[0] != '/') {
                set_err(err, err_size, ":include: needs an absolute path: \"%.200s\"", file);
                return -EINVAL;
        }
        fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                r = -errno;
                set_err(err, err_size, "cannot open include file \"%.200s\"", file);
                return r;
        }
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size > ALIAS_INCLUDE_MAX) {
                set_err(err, err_size, "include file \"%.200s\" is not a regular file of at most 1 MiB",
                        file);
                return -EINVAL;
        }
        r = alias_read_list_file(fd, &st, &buf, &n);
        if (r == -EBADMSG) {
                set_err(err, err_size, "include file \"%.200s\" contains NUL bytes", file);
                return -EINVAL;
        }
        if (r < 0)
                return r;
        r = alias_split(buf, &items);
        if (r < 0) {
                set_err(err, err_size, "bad quoting in include file \"%.200s\"", file);
                return r;
        }
        owner = st.st_uid == 0 ? ctx->default_privs : (AliasOwner) { st.st_uid, st.st_gid };
        return expand_items(ctx, items, path, depth + 1, owner, sender, out, err, err_size);
}

static int expand_items(const AliasContext *ctx, char **items, const char **path, unsigned depth,
                        AliasOwner owner, const char *sender, LocalTargets *out, char *err,
                        size_t err_size) {
        int r;

        if (depth > ALIAS_DEPTH_MAX)
                return -ELOOP;
        for (char **i = items; *i; i++) {
                const char *item = *i;

                if (item[0] == '|') {
                        const char *cmd = item + 1;
                        while (*cmd == ' ')
                                cmd++;
                        if (!*cmd) {
                                set_err(err, err_size, "empty command in \"%.200s\"", item);
                                return -EINVAL;
                        }
                        r = targets_add(out, LOCAL_TARGET_COMMAND, cmd, false, owner, sender);
                } else if (item[0] == '/') {
                        r = targets_add(out, LOCAL_TARGET_FILE, item, false, owner, sender);
                } else if (strncasecmp(item, ":include:", 9) == 0) {
                        const char *f = item + 9;
                        while (*f == ' ')
                                f++;
                        r = expand_include(ctx, f, path, depth, sender, out, err, err_size);
                } else if (item[0] == '\\') {
                        char name[256];
                        size_t k;

                        /* "\user": that user's mailbox, no alias, no .forward. */
                        for (k = 0; item[k + 1] && k + 1 < sizeof(name); k++)
                                name[k] = (char) tolower((unsigned char) item[k + 1]);
                        name[k] = 0;
                        if (!name[0] || strchr(name, '@') || strchr(name, '/')) {
                                set_err(err, err_size, "bad mailbox name \"%.200s\"", item);
                                return -EINVAL;
                        }
                        r = targets_add(out, LOCAL_TARGET_MAILBOX, name, true, owner, sender);
                } else {
                        const char *at = strrchr(item, '@');
                        char local[256], user[256], ext[256];
                        size_t k;

                        if (strpbrk(item, " \t/") ||
                            (at && !config_is_local_domain(ctx->config, at + 1)) || ctx->forward) {
                                /* Another domain (or any name in a .forward):
                                 * sent on as a new message. */
                                if (ctx->forward && !at && ctx->self && strcasecmp(item, ctx->self) == 0)
                                        r = targets_add(out, LOCAL_TARGET_MAILBOX, ctx->self, true, owner,
                                                        sender);
                                else if (strpbrk(item, " \t")) {
                                        set_err(err, err_size, "bad address \"%.200s\"", item);
                                        return -EINVAL;
                                } else
                                        r = targets_add(out, LOCAL_TARGET_ADDRESS, item, false, owner, sender);
                        } else {
                                k = at ? (size_t) (at - item) : strlen(item);
                                if (k == 0 || k >= sizeof(local)) {
                                        set_err(err, err_size, "bad name \"%.200s\"", item);
                                        return -EINVAL;
                                }
                                for (size_t j = 0; j < k; j++)
                                        local[j] = (char) tolower((unsigned char) item[j]);
                                local[k] = 0;
                                r = route_split_local(local, ctx->config->recipient_delimiter, user,
                                                      sizeof(user), ext, sizeof(ext));
                                if (r < 0)
                                        return -EINVAL;
                                r = expand_name(ctx, local, user, path, depth + 1, sender, out, err,
                                                err_size);
                                if (r == 0)
                                        r = targets_add(out, LOCAL_TARGET_MAILBOX, user, false, owner,
                                                        sender);
                        }
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

/* 1 expanded, 0 no alias (or a name already being expanded: its mailbox). */
static int expand_name(const AliasContext *ctx, const char *local_ext, const char *user,
                       const char **path, unsigned depth, const char *sender, LocalTargets *out,
                       char *err, size_t err_size) {
        _cleanup_free_ char *value = NULL, *owner_value = NULL, *owner_key = NULL,
                            *owner_sender = NULL;
        _cleanup_strv_free_ char **items = NULL;
        const char *name = local_ext;
        int r;

        if (!ctx->aliases || ctx->forward)
                return 0;
        if (depth > ALIAS_DEPTH_MAX)
                return -ELOOP;
        /* "root: root, /var/log/root.mail": a name met again on its own
         * expansion path is its mailbox, not another round. */
        for (unsigned i = 0; i < depth; i++)
                if (streq(path[i], local_ext) || streq(path[i], user))
                        return 0;
        r = table_lookup(ctx->aliases, local_ext, &value);
        if (r == -ENOENT && !streq(local_ext, user)) {
                name = user;
                r = table_lookup(ctx->aliases, user, &value);
        }
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        r = alias_split(value, &items);
        if (r < 0) {
                set_err(err, err_size, "bad quoting in alias \"%.200s\"", name);
                return r;
        }
        /* owner-NAME receives the errors of NAME's expansion. */
        if (asprintf(&owner_key, "owner-%s", name) < 0) {
                owner_key = NULL;
                return -ENOMEM;
        }
        r = table_lookup(ctx->aliases, owner_key, &owner_value);
        if (r >= 0) {
                if (asprintf(&owner_sender, "%s@%s", owner_key,
                             !isempty(ctx->domain) ? ctx->domain : ctx->config->hostname) < 0) {
                        owner_sender = NULL;
                        return -ENOMEM;
                }
                sender = owner_sender;
        } else if (r != -ENOENT)
                return r;
        path[depth] = name;
        r = expand_items(ctx, items, path, depth, ctx->owner, sender, out, err, err_size);
        return r < 0 ? r : 1;
}

int alias_expand(const AliasContext *ctx, const char *local_ext, const char *user, LocalTargets *out,
                 char *err, size_t err_size) {
        const char *path[ALIAS_DEPTH_MAX + 2];

        for (size_t i = 0; i < ELEMENTSOF(path); i++)
                path[i] = "";

        return expand_name(ctx, local_ext, user, path, 0, NULL, out, err, err_size);
}

int alias_expand_list(const AliasContext *ctx, const char *list, AliasOwner owner,
                      const char *sender, LocalTargets *out, char *err, size_t err_size) {
        _cleanup_strv_free_ char **items = NULL;
        const char *path[ALIAS_DEPTH_MAX + 2];
        int r;

        for (size_t i = 0; i < ELEMENTSOF(path); i++)
                path[i] = "";
        r = alias_split(list, &items);
        if (r < 0) {
                set_err(err, err_size, "bad quoting in \"%.200s\"", "list");
                return r;
        }
        return expand_items(ctx, items, path, 0, owner, sender, out, err, err_size);
}

int local_targets_add_mailbox(LocalTargets *out, const char *user) {
        return targets_add(out, LOCAL_TARGET_MAILBOX, user, false, (AliasOwner) {}, NULL);
}
