/* Local aliases (aliases(5)) and the lists that share their syntax
 * (.forward files, :include: files): parsing of a value into targets, and
 * the recursive expansion of a local name through the alias table. */
#pragma once

#include <sys/stat.h>

#include <sys/types.h>

#include "config.h"
#include "table.h"

#define ALIAS_DEPTH_MAX 20u      /* aliases of aliases, :include: in :include: */
#define ALIAS_TARGETS_MAX 1000u  /* targets of one recipient */
#define ALIAS_INCLUDE_MAX (1024u * 1024u)

typedef enum LocalTargetType {
        LOCAL_TARGET_MAILBOX,   /* value: account name */
        LOCAL_TARGET_FILE,      /* value: absolute path, appended in mbox format */
        LOCAL_TARGET_COMMAND,   /* value: command for /bin/sh -c */
        LOCAL_TARGET_ADDRESS,   /* value: address, sent on as a new message */
        _LOCAL_TARGET_MAX,
        _LOCAL_TARGET_INVALID = -EINVAL,
} LocalTargetType;

typedef struct LocalTarget {
        LocalTargetType type;
        char *value;
        bool no_forward;        /* MAILBOX from "\user": no .forward */
        uid_t uid;              /* FILE/COMMAND: runs as this account ... */
        gid_t gid;
        char *sender;           /* envelope sender from an owner- alias, or NULL */
} LocalTarget;

typedef struct LocalTargets {
        LocalTarget *t;
        size_t n;
} LocalTargets;

void local_targets_done(LocalTargets *l);

/* Splits a list "a, b,\"|cmd, with comma\", /file" into items: commas and
 * newlines separate, double quotes group (and are removed), white space
 * around items is dropped, empty items are skipped. Pure. 0 and a new strv,
 * -EINVAL (unterminated quote) or -ENOMEM. */
int alias_split(const char *value, char ***ret);

/* Reads the regular file fd (st from fstat, its size already checked by the
 * caller) whole, as the text of an :include: list or a .forward file, with
 * '#' comment lines blanked out. Returns 0 and the NUL-terminated text in
 * *ret (its length in *ret_len), -EBADMSG when it holds a NUL byte, or -errno. */
int alias_read_list_file(int fd, const struct stat *st, char **ret, size_t *ret_len);

/* Whose privileges file and command targets get: the owner of the list
 * (alias file, :include: file), or DefaultPrivileges when that is root. */
typedef struct AliasOwner {
        uid_t uid;
        gid_t gid;
} AliasOwner;

typedef struct AliasContext {
        const Config *config;
        Table *aliases;         /* NULL: no alias table */
        AliasOwner owner;       /* of the alias table */
        AliasOwner default_privs;
        const char *domain;     /* the recipient domain, for owner-X@domain */
        bool forward;           /* a .forward: names are addresses, not aliases */
        const char *self;       /* .forward: the user itself ("user" or "\user" = mailbox) */
} AliasContext;

/* Expands the local name (lowercased local part with its extension,
 * local_ext, and without, user) through the alias table. Returns 1 and
 * appends the targets to out when an alias matched, 0 when none did (the
 * caller delivers to the account), or -ELOOP (too deep), -E2BIG (too many
 * targets), -EINVAL (a bad item: text in err) or -errno. */
int alias_expand(const AliasContext *ctx, const char *local_ext, const char *user, LocalTargets *out,
                 char *err, size_t err_size);

/* Appends the targets of a list (a .forward file's contents) to out, with
 * owner's privileges for files and commands. Same returns as alias_expand
 * (0 on success). */
int alias_expand_list(const AliasContext *ctx, const char *list, AliasOwner owner,
                      const char *sender, LocalTargets *out, char *err, size_t err_size);

/* Appends the mailbox of user to out. 0, -E2BIG or -ENOMEM. */
int local_targets_add_mailbox(LocalTargets *out, const char *user);
