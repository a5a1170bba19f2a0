/* Reading a Postfix main.cf: parameters and $name expansion. */
#pragma once

#include "util.h"

typedef struct PostfixParam {
        char *name;
        char *value;     /* as written, continuation lines joined with one space */
        unsigned line;
} PostfixParam;

typedef struct PostfixConf {
        PostfixParam *params;
        size_t n;
} PostfixConf;

/* Parses main.cf text (pure: no I/O). Later definitions replace earlier ones,
 * as in Postfix. Returns 0, -EBADMSG (a line is neither comment, blank,
 * continuation nor "name = value"; *ret_line says which) or -ENOMEM. */
int postfix_conf_parse(const char *text, size_t len, PostfixConf *ret, unsigned *ret_line);
void postfix_conf_done(PostfixConf *c);

/* The parameter called name, or NULL. */
PostfixParam *postfix_conf_find(const PostfixConf *c, const char *name);

/* The value of name with $name, ${name} and $(name) expanded recursively
 * (Postfix's built-in defaults for the parameters this importer needs), as a
 * new string; NULL when name is not set and has no default, or on ENOMEM. */
char *postfix_conf_expand(const PostfixConf *c, const char *name);
