/* RFC 5321 section 4.1.2 paths: a strict scanner over pointer + length that
 * checks the grammar (and RFC 6531 UTF-8 when allowed), the length limits of
 * section 4.5.3.1, and produces the canonical form we store and compare. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "address.h"

#define ADDRESS_LABEL_MAX 63u

static bool is_alnum(unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 5322 atext, which RFC 5321 Atom uses. */
static bool is_atext(unsigned char c) {
        return is_alnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* Length (2..4) of the well-formed UTF-8 sequence of a non-ASCII character at
 * p[0..n), or 0: RFC 3629 section 4, so no overlong forms, no surrogates,
 * nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *p, size_t n) {
        unsigned char lo = 0x80, hi = 0xbf;
        size_t len;

        if (p[0] >= 0xc2 && p[0] <= 0xdf)
                len = 2;
        else if (p[0] >= 0xe0 && p[0] <= 0xef) {
                len = 3;
                if (p[0] == 0xe0)
                        lo = 0xa0;
                else if (p[0] == 0xed)
                        hi = 0x9f;
        } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
                len = 4;
                if (p[0] == 0xf0)
                        lo = 0x90;
                else if (p[0] == 0xf4)
                        hi = 0x8f;
        } else
                return 0;
        if (n < len || p[1] < lo || p[1] > hi)
                return 0;
        for (size_t i = 2; i < len; i++)
                if (p[i] < 0x80 || p[i] > 0xbf)
                        return 0;
        return len;
}

/* Scanners: advance *i over one grammar element of p[0..n) and return 0, or
 * return -EINVAL. They never read at or past n. */

/* Dot-string = Atom *("." Atom), Atom = 1*atext (plus UTF-8 with SMTPUTF8). */
static int scan_dot_string(const char *p, size_t n, size_t *i, bool utf8) {
        const unsigned char *u = (const unsigned char *) p;
        size_t j = *i;

        for (;;) {
                size_t atom = j;

                while (j < n) {
                        if (is_atext(u[j]))
                                j++;
                        else if (u[j] >= 0x80 && utf8) {
                                size_t l = utf8_len(u + j, n - j);

                                if (l == 0)
                                        return -EINVAL;
                                j += l;
                        } else
                                break;
                }
                if (j == atom)
                        return -EINVAL; /* empty atom: leading, trailing or double dot */
                if (j < n && p[j] == '.') {
                        j++;
                        continue;
                }
                break;
        }
        *i = j;
        return 0;
}

/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE. */
static int scan_quoted(const char *p, size_t n, size_t *i, bool utf8) {
        const unsigned char *u = (const unsigned char *) p;
        size_t j = *i;

        if (j >= n || p[j] != '"')
                return -EINVAL;
        j++;
        for (;;) {
                if (j >= n)
                        return -EINVAL;
                if (u[j] == '"')
                        break;
                if (u[j] == '\\') {
                        /* quoted-pairSMTP = %d92 %d32-126 */
                        if (j + 1 >= n || u[j + 1] < 32 || u[j + 1] > 126)
                                return -EINVAL;
                        j += 2;
                } else if (u[j] >= 32 && u[j] <= 126)
                        j++;
                else if (u[j] >= 0x80 && utf8) {
                        size_t l = utf8_len(u + j, n - j);

                        if (l == 0)
                                return -EINVAL;
                        j += l;
                } else
                        return -EINVAL;
        }
        *i = j + 1;
        return 0;
}

/* Domain = sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str]
 * (or a U-label with SMTPUTF8); each label at most 63 octets (RFC 1035). */
static int scan_domain(const char *p, size_t n, size_t *i, bool utf8) {
        const unsigned char *u = (const unsigned char *) p;
        size_t j = *i;

        for (;;) {
                size_t label = j;

                while (j < n) {
                        if (is_alnum(u[j]))
                                j++;
                        else if (u[j] == '-' && j > label)
                                j++;
                        else if (u[j] >= 0x80 && utf8) {
                                size_t l = utf8_len(u + j, n - j);

                                if (l == 0)
                                        return -EINVAL;
                                j += l;
                        } else
                                break;
                }
                if (j == label || p[j - 1] == '-' || j - label > ADDRESS_LABEL_MAX)
                        return -EINVAL;
                if (j < n && p[j] == '.') {
                        j++;
                        continue;
                }
                break;
        }
        *i = j;
        return 0;
}

static bool has_prefix_ci(const char *p, size_t n, const char *prefix) {
        size_t l = strlen(prefix);

        if (n < l)
                return false;
        for (size_t k = 0; k < l; k++) {
                char c = p[k];

                if (c >= 'A' && c <= 'Z')
                        c = (char) (c - 'A' + 'a');
                if (c != prefix[k])
                        return false;
        }
        return true;
}

/* address-literal = "[" ( IPv4-address-literal / IPv6-address-literal ) "]".
 * General-address-literal (a tag other than IPv6) is refused: nothing is
 * standardised for it. With ret, writes the canonical form ("[192.0.2.1]",
 * "[IPv6:2001:db8::1]") of at most size bytes including the NUL. */
static int scan_literal(const char *p, size_t n, size_t *i, char *ret, size_t size) {
        char addr[ADDRESS_DOMAIN_MAX + 1], text[INET6_ADDRSTRLEN];
        unsigned char bin[sizeof(struct in6_addr)];
        size_t j = *i, start, len;
        int family;

        if (j >= n || p[j] != '[')
                return -EINVAL;
        start = ++j;
        /* dcontent = %d33-90 / %d94-126 */
        while (j < n && p[j] != ']' && (unsigned char) p[j] >= 33 && (unsigned char) p[j] <= 126 &&
               p[j] != '[' && p[j] != '\\')
                j++;
        if (j >= n || p[j] != ']')
                return -EINVAL;
        len = j - start;
        if (len >= sizeof(addr))
                return -EINVAL;

        if (has_prefix_ci(p + start, len, "ipv6:")) {
                family = AF_INET6;
                memcpy(addr, p + start + 5, len - 5);
                addr[len - 5] = 0;
        } else {
                family = AF_INET;
                memcpy(addr, p + start, len);
                addr[len] = 0;
        }
        if (inet_pton(family, addr, bin) != 1)
                return -EINVAL;

        if (ret) {
                int l;

                if (!inet_ntop(family, bin, text, sizeof(text)))
                        return -EINVAL;
                l = snprintf(ret, size, "[%s%s]", family == AF_INET6 ? "IPv6:" : "", text);
                if (l < 0 || (size_t) l >= size)
                        return -EINVAL;
        }
        *i = j + 1;
        return 0;
}

int address_check_domain(const char *d, size_t n, bool allow_utf8) {
        size_t i = 0;
        int r;

        if (!d || n == 0 || n > ADDRESS_DOMAIN_MAX)
                return -EINVAL;
        if (d[0] == '[')
                r = scan_literal(d, n, &i, NULL, 0);
        else
                r = scan_domain(d, n, &i, allow_utf8);
        if (r < 0)
                return r;
        return i == n ? 0 : -EINVAL;
}

/* Canonical local part: the quoted string's content unquoted when it is a
 * valid Dot-string ("a.b" -> a.b), otherwise quoted with only '"' and '\'
 * escaped. The raw form is at most ADDRESS_LOCAL_MAX bytes, so is this. */
static int canonical_local(const char *p, size_t n, bool quoted, bool utf8, char *ret,
                           size_t size) {
        char content[ADDRESS_LOCAL_MAX + 1];
        size_t cn = 0, k = 0, i = 0;

        if (n > ADDRESS_LOCAL_MAX || size < 2 * ADDRESS_LOCAL_MAX + 3)
                return -EINVAL;
        if (!quoted) {
                memcpy(ret, p, n);
                ret[n] = 0;
                return 0;
        }
        for (size_t j = 1; j + 1 < n; j++) {
                if (p[j] == '\\')
                        j++;
                content[cn++] = p[j];
        }
        if (cn > 0 && scan_dot_string(content, cn, &i, utf8) == 0 && i == cn) {
                memcpy(ret, content, cn);
                ret[cn] = 0;
                return 0;
        }
        ret[k++] = '"';
        for (size_t j = 0; j < cn; j++) {
                if (content[j] == '"' || content[j] == '\\')
                        ret[k++] = '\\';
                ret[k++] = content[j];
        }
        ret[k++] = '"';
        ret[k] = 0;
        return 0;
}

int address_parse_path(const char *p, size_t n, unsigned flags, Address *ret) {
        bool utf8 = flags & ADDRESS_ALLOW_UTF8;
        bool brackets;
        size_t i = 0, ls, le, ds = 0, de = 0, path_len;
        Address a = {};
        int r;

        if (!p && n > 0)
                return -EINVAL;
        brackets = !(flags & ADDRESS_NO_BRACKETS) || (n > 0 && p[0] == '<');

        if (brackets) {
                if (n == 0 || p[0] != '<')
                        return -EINVAL;
                i = 1;
                if (i < n && p[i] == '>') {
                        if (!(flags & ADDRESS_ALLOW_NULL))
                                return -EINVAL;
                        a.null = true;
                        *ret = a;
                        return 2;
                }
        } else if (n == 0 || p[0] == ' ') {
                /* sendmail -f "" : the null sender without brackets */
                if (!(flags & ADDRESS_ALLOW_NULL))
                        return -EINVAL;
                a.null = true;
                *ret = a;
                return 0;
        }

        /* A-d-l ":" — a source route, accepted and ignored (RFC 5321 4.1.1.3
         * and appendix C: "SHOULD NOT" be sent, MUST be accepted). */
        if (i < n && p[i] == '@') {
                for (;;) {
                        i++; /* '@' */
                        r = scan_domain(p, n, &i, utf8);
                        if (r < 0)
                                return r;
                        if (i < n && p[i] == ',') {
                                i++;
                                if (i >= n || p[i] != '@')
                                        return -EINVAL;
                                continue;
                        }
                        if (i < n && p[i] == ':') {
                                i++;
                                break;
                        }
                        return -EINVAL;
                }
        }

        ls = i;
        if (i < n && p[i] == '"') {
                r = scan_quoted(p, n, &i, utf8);
                a.quoted = true;
        } else
                r = scan_dot_string(p, n, &i, utf8);
        if (r < 0)
                return r;
        le = i;

        if (i < n && p[i] == '@') {
                i++;
                ds = i;
                if (i < n && p[i] == '[') {
                        r = scan_literal(p, n, &i, a.domain, sizeof(a.domain));
                        a.domain_literal = true;
                } else
                        r = scan_domain(p, n, &i, utf8);
                if (r < 0)
                        return r;
                de = i;
        } else if (!(flags & ADDRESS_ALLOW_NO_DOMAIN))
                return -EINVAL;

        if (brackets) {
                if (i >= n || p[i] != '>')
                        return -EINVAL;
                i++;
                path_len = i;
        } else {
                if (i < n && p[i] != ' ')
                        return -EINVAL;
                path_len = i + 2; /* as if written with its brackets */
        }

        /* RFC 5321 4.5.3.1: limits on the octets as sent. */
        if (le - ls > ADDRESS_LOCAL_MAX || de - ds > ADDRESS_DOMAIN_MAX ||
            path_len > ADDRESS_PATH_MAX)
                return -ENAMETOOLONG;

        r = canonical_local(p + ls, le - ls, a.quoted, utf8, a.local, sizeof(a.local));
        if (r < 0)
                return r;
        if (!a.domain_literal) {
                for (size_t k = 0; k < de - ds; k++) {
                        char c = p[ds + k];

                        a.domain[k] = c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
                }
                a.domain[de - ds] = 0;
        }

        *ret = a;
        return (int) i;
}

int address_format(const Address *a, char *buf, size_t size) {
        int l;

        if (a->null)
                l = snprintf(buf, size, "%s", "");
        else if (isempty(a->domain))
                l = snprintf(buf, size, "%s", a->local);
        else
                l = snprintf(buf, size, "%s@%s", a->local, a->domain);
        if (l < 0 || (size_t) l >= size)
                return -ENOBUFS;
        return l;
}

bool address_has_routing_tricks(const Address *a) {
        /* '@' can only be in a local part inside quotes. */
        return !a->null && strpbrk(a->local, "%!@") != NULL;
}
