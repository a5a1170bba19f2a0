/* Routing: where a recipient goes, decided in one place for queued (RCPT
 * validation, virtual alias expansion, grouping by destination), deliverd
 * (which transport delivers it) and `ternctl route`. The order of the
 * decisions is documented in docs/routing.md; a Router notices when one of
 * its tables is rebuilt and reads the new one. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "address.h"
#include "config.h"
#include "util.h"

typedef enum RouteTransport {
        ROUTE_LOCAL,    /* aliases, .forward, mailbox of a system user (local(8)) */
        ROUTE_VIRTUAL,  /* a mailbox below MailboxBase owned by MailboxUser (virtual(8)) */
        ROUTE_SMTP,
        ROUTE_LMTP,
        ROUTE_DISCARD,  /* accepted and thrown away */
        ROUTE_ERROR,    /* bounced with dsn + text */
        _ROUTE_TRANSPORT_MAX,
        _ROUTE_TRANSPORT_INVALID = -EINVAL,
} RouteTransport;

#define ROUTE_NEXTHOP_MAX 512u
#define ROUTE_ADDRESS_MAX (ADDRESS_PATH_MAX * 2)
/* Virtual alias expansion: depth of aliases of aliases, and results of one address. */
#define ROUTE_ALIAS_DEPTH_MAX 20u
#define ROUTE_ALIAS_RESULTS_MAX 1000u

typedef struct Route {
        RouteTransport transport;
        char address[ROUTE_ADDRESS_MAX];   /* canonical "local@domain" (domain lowercased) */
        char local[ADDRESS_LOCAL_MAX * 2 + 3]; /* local part as given, with any extension */
        char user[ADDRESS_LOCAL_MAX * 2 + 3];  /* lowercased local part without extension;
                                                  "postmaster" stays "postmaster" */
        char extension[ADDRESS_LOCAL_MAX * 2 + 3]; /* after the recipient delimiter, "" if none */
        char domain[ADDRESS_DOMAIN_MAX + 1];   /* "" when the address had none */
        /* SMTP: host or domain; LMTP: host or socket path; VIRTUAL: absolute
         * mailbox path (ends in '/' for a Maildir); ERROR/DISCARD: the text. */
        char nexthop[ROUTE_NEXTHOP_MAX];
        uint16_t port;          /* SMTP/LMTP over TCP; 0: the default (25, or 24 for LMTP) */
        bool mx;                /* SMTP: nexthop is a domain whose MX records are used */
        bool unix_socket;       /* LMTP: nexthop is a UNIX socket path */
        char dsn[8];            /* ERROR: "5.1.1" etc. */
        const char *reason;     /* static: what decided ("transport table", "relay host",
                                   "local domain", ...), for `ternctl route` and logs */
} Route;

typedef struct Router Router;

/* A Router for config (which must outlive it). Tables are opened on first
 * use and reopened when their .cdb file is replaced. 0 or -ENOMEM. */
int router_new(const Config *config, Router **ret);
Router *router_free(Router *r);
DEFINE_POINTER_CLEANUP(Router, router_free);

/* The route of one address (no virtual alias expansion: that happened at
 * submission). A virtual alias domain address that is not in AliasMap, an
 * unknown virtual mailbox user give ROUTE_ERROR with dsn 5.1.1. Returns 0,
 * -EINVAL (not an address), or -errno when a table could not be read (the
 * caller defers). */
int route_resolve(Router *r, const char *addr, Route *ret);

/* Virtual alias expansion (AliasMap) of addr, recursively: each address
 * found is expanded again, a self-reference is kept as it is, an address
 * met again on the same path is a loop. Returns 0 and a new strv of
 * canonical addresses (just addr when nothing matched), -ELOOP (a loop, or
 * deeper than ROUTE_ALIAS_DEPTH_MAX), -E2BIG (more than
 * ROUTE_ALIAS_RESULTS_MAX addresses), -EINVAL (a bad address in the table
 * or in addr) or -errno. */
int route_expand(Router *r, const char *addr, char ***ret);

/* What queued says to RCPT TO. */
typedef struct RouteReject {
        unsigned code;          /* 550, 451, 501 ... */
        char dsn[8];
        char text[256];         /* without the code, e.g. "User unknown in local recipient table" */
} RouteReject;

/* Validates addr for submission and expands it: returns 0 and a new strv of
 * the recipients to write into the spool (the expansion; the caller sets
 * ORCPT to addr when it differs), 1 with *reject filled when it is refused
 * (bad syntax, unknown local user or alias, unknown virtual user, alias
 * loop), or -ENOMEM. Table read errors give 451 4.3.0. A recipient in a
 * domain that is not ours is accepted as it is (smtpd made the relay
 * decision). */
int route_recipient(Router *r, const char *addr, bool utf8, char ***ret, RouteReject *reject);

/* Whether a local user name (lowercased, without extension) is known: an
 * alias or an account (getpwnam), "postmaster" always. 1 yes, 0 no, -errno. */
int route_local_user_known(Router *r, const char *user, const char *local_with_ext);

/* A key that names where a route's mail goes, for grouping recipients into
 * jobs and for per-destination concurrency: "local", "virtual", "discard",
 * "error", "smtp:example.org" (MX), "smtp:[relay.example]:587",
 * "lmtp:unix:/run/dovecot/lmtp", "lmtp:[127.0.0.1]:24". Returns the length or
 * -ENOBUFS. */
int route_destination_key(const Route *route, char *buf, size_t size);

/* The alias table (AliasFile) of the router, opened or reopened as
 * needed; NULL when none is configured or compiled. Owned by the router. */
struct Table *router_alias_table(Router *r);

/* The account name and extension for a local part, as route_resolve fills
 * Route.user/extension: lowercased, split at the first delimiter character
 * (never at position 0). Pure. 0 or -ENOBUFS. */
int route_split_local(const char *local, const char *delimiters, char *user, size_t user_size,
                      char *ext, size_t ext_size);

/* Parses a transport table value ("smtp:[host]:port", "lmtp:unix:/path",
 * "local", "error:5.1.1 text" ...) into route's transport, nexthop, port,
 * mx, unix_socket and dsn; an empty SMTP next hop means the recipient
 * domain, which route must already hold. Pure. 0 or -EINVAL. */
int route_parse_transport(const char *value, Route *route);

const char *route_transport_to_string(RouteTransport t);

/* True when mail for domain is ours to accept from anyone: a LocalDomains,
 * virtual alias or virtual mailbox domain (Postfix's permit_auth_destination
 * without relay_domains). Pure: smtpd's relay decision uses it. */
bool route_domain_is_ours(const Config *c, const char *domain);
