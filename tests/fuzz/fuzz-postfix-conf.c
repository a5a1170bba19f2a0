/* Fuzzes the main.cf reader of `ternctl import-postfix`: parse, then expand
 * every parameter and a few well-known names. Expansion must terminate
 * (loops, exponential growth) and every value must be a C string. */
#include <stdio.h>

#include "fuzz.h"
#include "postfix_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const known[] = { "myhostname", "mydomain", "myorigin", "mydestination" };
        PostfixConf c = {};
        unsigned line = 0;

        if (postfix_conf_parse((const char *) data, size, &c, &line) < 0)
                return 0;
        for (size_t i = 0; i < c.n; i++) {
                char *v = postfix_conf_expand(&c, c.params[i].name);

                if (v && strlen(v) > 64u * 1024u + 4096u)
                        abort();
                free(v);
                if (postfix_conf_find(&c, c.params[i].name) == NULL)
                        abort();
        }
        for (size_t i = 0; i < ELEMENTSOF(known); i++)
                free(postfix_conf_expand(&c, known[i]));
        postfix_conf_done(&c);
        return 0;
}
