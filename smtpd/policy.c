/* Access tables and DNS blocklists at RCPT time (see policy.h). Lookups
 * follow Postfix's access(5): the client by address then by shorter network
 * prefixes, the HELO name then its parent domains, addresses through
 * table_lookup_address (full address, without extension, "local@", domain,
 * parent domains), the null sender as "<>". */
#include <arpa/inet.h>
#include <ctype.h>
#include <strings.h>

#include "log.h"
#include "policy.h"
#include "rbl.h"
#include "table.h"

typedef enum PolicyTable {
        POLICY_TABLE_CLIENT,
        POLICY_TABLE_HELO,
        POLICY_TABLE_SENDER,
        POLICY_TABLE_RECIPIENT,
        _POLICY_TABLE_MAX,
} PolicyTable;

static const char *const table_what[_POLICY_TABLE_MAX] = {
        [POLICY_TABLE_CLIENT] = "Client host",
        [POLICY_TABLE_HELO] = "Helo command",
        [POLICY_TABLE_SENDER] = "Sender address",
        [POLICY_TABLE_RECIPIENT] = "Recipient address",
};

static const char *const table_key[_POLICY_TABLE_MAX] = {
        [POLICY_TABLE_CLIENT] = "ClientAccess",
        [POLICY_TABLE_HELO] = "HeloAccess",
        [POLICY_TABLE_SENDER] = "SenderAccess",
        [POLICY_TABLE_RECIPIENT] = "RecipientAccess",
};

struct Policy {
        const Config *config;
        Table *tables[_POLICY_TABLE_MAX];
        int open_error[_POLICY_TABLE_MAX]; /* configured but not opened: -errno */
        Rbl *rbl;
        bool client_ok;            /* the client table said OK: no blocklist lookups */
        int rbl_result;            /* 1 listed, 0 not, -1 not asked yet */
        char rbl_zone[256];
        char rbl_text[POLICY_TEXT_MAX / 2];
};

/* ---- pure helpers */

static bool word_is(const char *s, size_t n, const char *w) {
        return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

static bool dsn_ok(const char *s, size_t n, char cls) {
        /* class "." 1*3digit "." 1*3digit (RFC 3463) */
        size_t i = 0, digits;

        if (n < 5 || s[0] != cls || s[1] != '.')
                return false;
        i = 2;
        for (int part = 0; part < 2; part++) {
                digits = 0;
                while (i < n && s[i] >= '0' && s[i] <= '9') {
                        i++;
                        digits++;
                }
                if (digits < 1 || digits > 3)
                        return false;
                if (part == 0 && (i >= n || s[i++] != '.'))
                        return false;
        }
        return i == n;
}

int policy_parse_action(const char *value, const char *subject, const char *what,
                        PolicyVerdict *ret) {
        const char *v = value, *text;
        size_t wl;
        unsigned code;
        char dsn[16];

        while (*v == ' ' || *v == '\t')
                v++;
        wl = strcspn(v, " \t");
        text = v + wl;
        while (*text == ' ' || *text == '\t')
                text++;
        /* Only printable ASCII reaches a reply (RFC 5321 4.2). */
        for (const char *q = text; *q; q++)
                if ((unsigned char) *q < 32 || (unsigned char) *q > 126)
                        return -EINVAL;

        if (word_is(v, wl, "OK") && !*text) {
                *ret = (PolicyVerdict) { .action = POLICY_OK };
                return 0;
        }
        if (word_is(v, wl, "DUNNO") && !*text) {
                *ret = (PolicyVerdict) { .action = POLICY_DUNNO };
                return 0;
        }
        if (word_is(v, wl, "REJECT")) {
                code = 554;
                memcpy(dsn, "5.7.1", 6);
        } else if (word_is(v, wl, "DEFER")) {
                /* Postfix's access_map_defer_code. */
                code = 450;
                memcpy(dsn, "4.7.1", 6);
        } else if (wl == 3 && (v[0] == '4' || v[0] == '5') && isdigit((unsigned char) v[1]) &&
                   isdigit((unsigned char) v[2])) {
                size_t dl = strcspn(text, " \t");

                code = (unsigned) (v[0] - '0') * 100 + (unsigned) (v[1] - '0') * 10 + (unsigned) (v[2] - '0');
                if (dl > 0 && dl < sizeof(dsn) && dsn_ok(text, dl, v[0])) {
                        memcpy(dsn, text, dl);
                        dsn[dl] = 0;
                        text += dl;
                        while (*text == ' ' || *text == '\t')
                                text++;
                } else if (dl > 0 && (text[0] == '4' || text[0] == '5') && text[1] == '.')
                        return -EINVAL; /* an enhanced code of the wrong class or shape */
                else
                        (void) snprintf(dsn, sizeof(dsn), "%c.7.1", v[0]);
        } else
                return -EINVAL;

        *ret = (PolicyVerdict) { .action = POLICY_REFUSE, .code = code };
        memcpy(ret->dsn, dsn, sizeof(dsn));
        (void) snprintf(ret->text, sizeof(ret->text), "<%s>: %s rejected: %s", subject, what,
                        *text ? text : "Access denied");
        return 0;
}

size_t policy_client_keys(const char *addr, char keys[][64], size_t max) {
        size_t n = 0, l = strlen(addr);
        char sep;

        if (max == 0 || l == 0 || l >= 64)
                return 0;
        sep = strchr(addr, ':') ? ':' : '.';
        memcpy(keys[n++], addr, l + 1);
        /* Drop the last field each time; "2001:db8::" style runs of colons
         * are dropped with it, so no key ends in ':'. */
        while (n < max) {
                const char *prev = keys[n - 1];
                const char *cut = strrchr(prev, sep);
                size_t k;

                if (!cut)
                        break;
                k = (size_t) (cut - prev);
                while (k > 0 && prev[k - 1] == sep)
                        k--;
                if (k == 0)
                        break;
                memcpy(keys[n], prev, k);
                keys[n][k] = 0;
                n++;
        }
        return n;
}

/* ---- set-up */

int policy_new(const Config *c, const char *client_addr, Policy **ret) {
        _cleanup_(policy_freep) Policy *p = NULL;
        const char *paths[_POLICY_TABLE_MAX] = {
                c->client_access, c->helo_access, c->sender_access, c->recipient_access,
        };
        int r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->config = c;
        p->rbl_result = -1;
        for (PolicyTable t = 0; t < _POLICY_TABLE_MAX; t++) {
                if (isempty(paths[t]))
                        continue;
                r = table_open(paths[t], &p->tables[t]);
                if (r < 0) {
                        p->open_error[t] = r;
                        (void) log_error_errno(r, "Cannot open %s table \"%s.cdb\" (run `ternctl map %s`), "
                                               "deferring recipients with 451 4.3.5: %m",
                                               table_key[t], paths[t], paths[t]);
                }
        }
        if (c->dns_blocklists && c->dns_blocklists[0]) {
                r = rbl_new(c, client_addr, &p->rbl);
                if (r < 0 && r != -EAFNOSUPPORT)
                        /* Not listed is the answer when DNS fails (as Postfix). */
                        (void) log_warning_errno(r, "Cannot set up DNS blocklist lookups, not checking %s: %m",
                                                 client_addr);
        }
        *ret = TAKE_PTR(p);
        return 0;
}

Policy *policy_free(Policy *p) {
        if (!p)
                return NULL;
        for (PolicyTable t = 0; t < _POLICY_TABLE_MAX; t++)
                p->tables[t] = table_close(p->tables[t]);
        p->rbl = rbl_free(p->rbl);
        free(p);
        return NULL;
}

/* ---- lookups */

static void config_error(PolicyVerdict *ret) {
        *ret = (PolicyVerdict) { .action = POLICY_ERROR, .code = 451 };
        memcpy(ret->dsn, "4.3.5", 6);
        (void) snprintf(ret->text, sizeof(ret->text), "Server configuration error");
}

/* Turns a found value (or r < 0) into *ret. Returns true when decided. */
static bool decide(Policy *p, PolicyTable t, int r, const char *key, const char *value,
                   const char *subject, PolicyVerdict *ret) {
        if (r == -ENOENT)
                return false;
        if (r < 0) {
                (void) log_error_errno(r, "%s lookup of \"%s\" failed: %m", table_key[t], key);
                config_error(ret);
                return true;
        }
        if (policy_parse_action(value, subject, table_what[t], ret) < 0) {
                log_warning("%s: bad action \"%s\" for \"%s\", deferring with 451 4.3.5",
                            table_key[t], value, key);
                config_error(ret);
                return true;
        }
        return ret->action != POLICY_DUNNO;
}

/* Returns true when the table (configured or broken) decided. */
static bool table_ready(Policy *p, PolicyTable t, PolicyVerdict *ret) {
        if (p->open_error[t] < 0) {
                config_error(ret);
                return false;
        }
        return p->tables[t] != NULL;
}

static void check_client(Policy *p, const PolicyRequest *req, PolicyVerdict *ret) {
        char keys[40][64];
        size_t n;

        if (!table_ready(p, POLICY_TABLE_CLIENT, ret) || streq(req->client_addr, "local"))
                return;
        n = policy_client_keys(req->client_addr, keys, ELEMENTSOF(keys));
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *v = NULL;
                int r = table_lookup(p->tables[POLICY_TABLE_CLIENT], keys[i], &v);

                if (decide(p, POLICY_TABLE_CLIENT, r, keys[i], v, req->client, ret)) {
                        p->client_ok = ret->action == POLICY_OK;
                        return;
                }
                if (r == 0)
                        return; /* DUNNO: stop, no decision */
        }
}

static void check_helo(Policy *p, const PolicyRequest *req, PolicyVerdict *ret) {
        char name[256];
        size_t l = 0;

        if (!table_ready(p, POLICY_TABLE_HELO, ret) || isempty(req->helo))
                return;
        for (; req->helo[l] && l < sizeof(name) - 1; l++)
                name[l] = (char) tolower((unsigned char) req->helo[l]);
        name[l] = 0;
        /* The name, then each parent domain; an address literal only as is. */
        for (const char *d = name; d && *d;
             d = name[0] == '[' ? NULL : strchr(d, '.') ? strchr(d, '.') + 1 : NULL) {
                _cleanup_free_ char *v = NULL;
                int r = table_lookup(p->tables[POLICY_TABLE_HELO], d, &v);

                if (decide(p, POLICY_TABLE_HELO, r, d, v, req->helo, ret) || r == 0)
                        return;
        }
}

static void check_address(Policy *p, PolicyTable t, const char *addr, PolicyVerdict *ret) {
        _cleanup_free_ char *v = NULL;
        const char *key = isempty(addr) ? "<>" : addr;
        int r;

        if (!table_ready(p, t, ret))
                return;
        /* Postfix's smtpd_null_access_lookup_key: the null sender is "<>". */
        if (isempty(addr))
                r = table_lookup(p->tables[t], "<>", &v);
        else
                r = table_lookup_address(p->tables[t], addr, p->config->recipient_delimiter,
                                         TABLE_ADDR_LOCALPART | TABLE_ADDR_DOMAIN, &v, NULL);
        /* The subject of the reply: "<>" for the null sender, not "<<>>". */
        (void) decide(p, t, r, key, v, addr ? addr : "", ret);
}

static bool refused(const PolicyVerdict *v) {
        return v->action == POLICY_REFUSE || v->action == POLICY_ERROR;
}

void policy_check_client(Policy *p, const PolicyRequest *req, PolicyVerdict *ret) {
        *ret = (PolicyVerdict) { .action = POLICY_DUNNO };
        if (!p)
                return;
        check_client(p, req, ret);
        if (refused(ret))
                return;
        *ret = (PolicyVerdict) { .action = POLICY_DUNNO };
        check_helo(p, req, ret);
        if (refused(ret))
                return;
        *ret = (PolicyVerdict) { .action = POLICY_DUNNO };
        check_address(p, POLICY_TABLE_SENDER, req->sender, ret);
}

void policy_check_recipient(Policy *p, const PolicyRequest *req, PolicyVerdict *ret) {
        int r;

        *ret = (PolicyVerdict) { .action = POLICY_DUNNO };
        if (!p)
                return;
        check_address(p, POLICY_TABLE_RECIPIENT, req->rcpt, ret);
        if (refused(ret) || !p->rbl || req->trusted || p->client_ok)
                return;
        *ret = (PolicyVerdict) { .action = POLICY_DUNNO };
        if (p->rbl_result < 0) {
                /* Once per session: the answer does not change between RCPTs. */
                r = rbl_check(p->rbl, p->rbl_zone, sizeof(p->rbl_zone), p->rbl_text, sizeof(p->rbl_text));
                p->rbl_result = r > 0;
        }
        if (p->rbl_result > 0) {
                *ret = (PolicyVerdict) { .action = POLICY_REFUSE, .code = 554 };
                memcpy(ret->dsn, "5.7.1", 6);
                /* Postfix's default rbl reply; a long TXT is cut. */
                int k = snprintf(ret->text, sizeof(ret->text),
                                "Service unavailable; Client host [%s] blocked using %s%s%s",
                                 req->client_addr, p->rbl_zone, p->rbl_text[0] ? "; " : "", p->rbl_text);

                if (k < 0)
                        ret->text[0] = 0;
        }
}
