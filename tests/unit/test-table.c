/* common/table.c: compiling sources and looking keys up. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "table.h"

static char dir[] = "/tmp/test-table-XXXXXX";

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        CHECK(f != NULL);
        if (!f)
                return;
        fputs(text, f);
        fclose(f);
}

static char *path_in(const char *name) {
        char *p = NULL;
        CHECK(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

/* The value found for addr, or "-" when absent. */
static char *addr(Table *t, const char *a, const char *delim, unsigned flags) {
        char *v = NULL, *k = NULL, *out = NULL;
        int r = table_lookup_address(t, a, delim, flags, &v, &k);
        if (r == -ENOENT)
                return strdup("-");
        CHECK_INT(r, 0);
        CHECK(asprintf(&out, "%s=%s", k, v) > 0);
        free(v);
        free(k);
        return out;
}

static void test_map(void) {
        _cleanup_free_ char *src = path_in("access");
        _cleanup_(table_closep) Table *t = NULL;
        char *v = NULL, *s;
        FILE *err;
        char *errtext = NULL;
        size_t errlen = 0;

        write_file(src, "# access table\n"
                        "Alice@Example.org   OK\n"
                        "\n"
                        "@example.net REJECT go away\n"
                        "    and stay away\n"
                        "example.com DEFER\n"
                        "alice@example.org   duplicate\n"
                        "bob+tag@ex.org tagged\n"
                        "bob@ex.org plain\n"
                        "carol@ carol-anywhere\n"
                        "ex.org domain\n"
                        "localuser local\n");
        err = open_memstream(&errtext, &errlen);
        CHECK_INT(table_build(src, TABLE_MAP, err), 8);
        fclose(err);
        CHECK(strstr(errtext, "access:7: warning: duplicate entry for \"alice@example.org\"") != NULL);
        free(errtext);

        CHECK_INT(table_open(src, &t), 0);
        CHECK_INT(table_lookup(t, "ALICE@example.ORG", &v), 0);
        CHECK_STREQ(v, "OK");
        free(v);
        CHECK_INT(table_lookup(t, "@example.net", &v), 0);
        CHECK_STREQ(v, "REJECT go away and stay away");
        free(v);
        CHECK_INT(table_lookup(t, "nobody@example.org", &v), -ENOENT);

        s = addr(t, "bob+tag@ex.org", "+", 0);
        CHECK_STREQ(s, "bob+tag@ex.org=tagged");
        free(s);
        s = addr(t, "bob+other@ex.org", "+", 0);
        CHECK_STREQ(s, "bob@ex.org=plain");
        free(s);
        s = addr(t, "bob+other@ex.org", "", 0);
        CHECK_STREQ(s, "-");
        free(s);
        s = addr(t, "carol@x.test", "+", TABLE_ADDR_LOCALPART);
        CHECK_STREQ(s, "carol@=carol-anywhere");
        free(s);
        s = addr(t, "carol@x.test", "+", 0);
        CHECK_STREQ(s, "-");
        free(s);
        s = addr(t, "zed@example.net", "+", TABLE_ADDR_AT_DOMAIN);
        CHECK_STREQ(s, "@example.net=REJECT go away and stay away");
        free(s);
        s = addr(t, "zed@mx.sub.ex.org", "+", TABLE_ADDR_DOMAIN);
        CHECK_STREQ(s, "ex.org=domain");
        free(s);
        s = addr(t, "zed@mx.sub.ex.org", "+", TABLE_ADDR_AT_DOMAIN);
        CHECK_STREQ(s, "-");
        free(s);
        s = addr(t, "localuser+x", "+", TABLE_ADDR_DOMAIN);
        CHECK_STREQ(s, "localuser=local");
        free(s);
}

static void test_aliases(void) {
        _cleanup_free_ char *src = path_in("aliases");
        _cleanup_(table_closep) Table *t = NULL;
        char *v = NULL;

        write_file(src, "# /etc/aliases\n"
                        "postmaster:    root\n"
                        "root: alice, |\"/usr/bin/filter -x\"\n"
                        "\t, /var/log/root.mail\n"
                        "\"Quoted Name\": bob\n"
                        "list: :include:/etc/list\n");
        CHECK_INT(table_build(src, TABLE_ALIASES, NULL), 4);
        CHECK_INT(table_open(src, &t), 0);
        CHECK_INT(table_lookup(t, "root", &v), 0);
        CHECK_STREQ(v, "alice, |\"/usr/bin/filter -x\" , /var/log/root.mail");
        free(v);
        CHECK_INT(table_lookup(t, "quoted name", &v), 0);
        CHECK_STREQ(v, "bob");
        free(v);
        CHECK_INT(table_lookup(t, "list", &v), 0);
        CHECK_STREQ(v, ":include:/etc/list");
        free(v);
}

static void test_errors_keep_old_table(void) {
        _cleanup_free_ char *src = path_in("t2"), *cdb = path_in("t2.cdb");
        _cleanup_(table_closep) Table *t = NULL;
        struct stat st;
        char *v = NULL, *errtext = NULL;
        size_t errlen = 0;
        FILE *err;

        write_file(src, "key value\n");
        CHECK_INT(chmod(src, 0640), 0);
        CHECK_INT(table_build(src, TABLE_MAP, NULL), 1);
        CHECK_INT(stat(cdb, &st), 0);
        CHECK_INT((int) (st.st_mode & 0777), 0640);

        write_file(src, "key value\n  \nlonely\n");
        err = open_memstream(&errtext, &errlen);
        CHECK_INT(table_build(src, TABLE_MAP, err), -EINVAL);
        fclose(err);
        CHECK(strstr(errtext, "t2:3: error: expected \"key value\"") != NULL);
        free(errtext);
        write_file(src, " indented first\n");
        CHECK_INT(table_build(src, TABLE_MAP, NULL), -EINVAL);

        /* The old compiled table is still there and whole. */
        CHECK_INT(table_open(src, &t), 0);
        CHECK_INT(table_lookup(t, "key", &v), 0);
        CHECK_STREQ(v, "value");
        free(v);

        _cleanup_free_ char *missing = path_in("missing");
        CHECK_INT(table_open(missing, &t), -ENOENT);
        CHECK_INT(table_build(missing, TABLE_MAP, NULL), -ENOENT);
        CHECK_INT(table_open("relative", &t), -EINVAL);
        CHECK_INT(table_format_from_string("aliases"), TABLE_ALIASES);
        CHECK(table_format_from_string("hash") < 0);
}

int main(void) {
        CHECK(mkdtemp(dir) != NULL);
        test_map();
        test_aliases();
        test_errors_keep_old_table();
        char *cmd = NULL;
        if (asprintf(&cmd, "rm -rf '%s'", dir) > 0)
                (void) !system(cmd);
        free(cmd);
        return tap_finish("test-table");
}
