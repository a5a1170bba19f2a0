/* Lookup tables, the way Postfix's hash: maps work: an administrator edits a
 * text source file, `ternctl map FILE` (or `newaliases` for the aliases file)
 * compiles it into FILE.cdb (tinycdb) next to it, and the programs read only
 * FILE.cdb. Configuration keys name the source file.
 *
 * Source formats:
 *   TABLE_MAP      "key whitespace value"; '#' comment lines and blank lines
 *                  ignored; a line starting with whitespace continues the
 *                  previous value (joined with one space). (postmap)
 *   TABLE_ALIASES  "name: value"; same comments and continuation lines;
 *                  the value is kept as written (a list of targets). (aliases(5))
 * Keys are folded to lower case when built and looked up; values are kept
 * exactly. A duplicate key is a warning; the first entry wins (as postmap).
 *
 * The compiled file is written to FILE.cdb.tmp, fsynced, and renamed over
 * FILE.cdb, so a reader sees the old table or the new one, never half of one;
 * it takes the owner, group and mode of the source (a 0640 root:tern-smtpd
 * password source gives a 0640 root:tern-smtpd .cdb). */
#pragma once

#include <stdio.h>
#include "util.h"

typedef enum TableFormat {
        TABLE_MAP,
        TABLE_ALIASES,
        _TABLE_FORMAT_MAX,
        _TABLE_FORMAT_INVALID = -EINVAL,
} TableFormat;

#define TABLE_KEY_MAX 1024u
#define TABLE_VALUE_MAX (64u * 1024u)

typedef struct Table Table;

/* Opens source_path".cdb" read-only and maps it. 0, -ENOENT (not compiled),
 * -EBADMSG (not a cdb file) or -errno. Keep the Table open across a sandbox:
 * it holds only an fd and a mapping. */
int table_open(const char *source_path, Table **ret);
Table *table_close(Table *t);
DEFINE_POINTER_CLEANUP(Table, table_close);

/* Exact lookup of key (folded to lower case). Returns 0 and a new string in
 * *ret_value, -ENOENT when absent, -ENOMEM. */
int table_lookup(Table *t, const char *key, char **ret_value);

/* Address lookups in Postfix's order for an address "local[+ext]@domain" with
 * the given recipient delimiter characters ("" or NULL: none). Tried in turn,
 * stopping at the first hit:
 *   1. "local+ext@domain"   2. "local@domain" (ext stripped)
 *   3. TABLE_ADDR_LOCALPART: "local+ext@" then "local@"  (access tables)
 *   4. TABLE_ADDR_AT_DOMAIN: "@domain"                   (virtual alias maps)
 *   5. TABLE_ADDR_DOMAIN:    "domain", then each parent domain ("example.org"
 *                            for "mx.example.org")       (access, transport)
 * An address without '@' (a local user) tries "local+ext" and "local".
 * Returns 0 (value in *ret_value, and the key that matched in *ret_key if
 * not NULL), -ENOENT or -ENOMEM. */
enum {
        TABLE_ADDR_LOCALPART = 1 << 0,
        TABLE_ADDR_AT_DOMAIN = 1 << 1,
        TABLE_ADDR_DOMAIN = 1 << 2,
};
int table_lookup_address(Table *t, const char *addr, const char *delimiters, unsigned flags,
                         char **ret_value, char **ret_key);

/* Compiles source_path into source_path".cdb" as described above. Errors and
 * warnings are written to err (may be NULL) as "FILE:LINE: message".
 * Returns the number of entries, or -EINVAL (syntax error: nothing written),
 * or -errno. */
int table_build(const char *source_path, TableFormat format, FILE *err);

TableFormat table_format_from_string(const char *s); /* "map", "aliases" */
