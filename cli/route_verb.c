/* ternctl route ADDRESS...: prints what tern does with a recipient, from
 * common/route.c, the code queued and deliverd use: the virtual alias
 * expansion, then the transport and next hop of each resulting address, or
 * the reply RCPT TO would get. Exit 1 when an address would be refused. */
#include "route.h"
#include "ternctl.h"

static void print_route(const Route *rt) {
        char key[ROUTE_NEXTHOP_MAX + 32];

        if (route_destination_key(rt, key, sizeof(key)) < 0)
                key[0] = 0;
        printf("%s: transport=%s", rt->address, route_transport_to_string(rt->transport));
        switch (rt->transport) {
        case ROUTE_LOCAL:
                printf(" user=%s", rt->user);
                if (rt->extension[0])
                        printf(" extension=%s", rt->extension);
                break;
        case ROUTE_VIRTUAL:
                printf(" mailbox=%s", rt->nexthop);
                break;
        case ROUTE_ERROR:
                printf(" dsn=%s text=\"%s\"", rt->dsn, rt->nexthop);
                break;
        case ROUTE_DISCARD:
                printf(" text=\"%s\"", rt->nexthop);
                break;
        default:
                printf(" nexthop=%s", key + strlen(route_transport_to_string(rt->transport)) + 1);
        }
        printf(" destination=%s (%s)\n", key, rt->reason ?: "?");
}

int verb_route(const char *config_path, int argc, char **argv) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_(router_freep) Router *router = NULL;
        int ret = EXIT_SUCCESS, r;

        if (argc < 2)
                return ternctl_usage_error("%s", "route needs at least one ADDRESS");
        if (ternctl_load_config(config_path, &c) < 0)
                return EXIT_FAILURE;
        if (router_new(c, &router) < 0)
                return EXIT_FAILURE;
        for (int i = 1; i < argc; i++) {
                _cleanup_strv_free_ char **list = NULL;
                RouteReject rj = {};

                r = route_recipient(router, argv[i], true, &list, &rj);
                if (r < 0) {
                        fprintf(stderr, "ternctl: %s: %s\n", argv[i], strerror(-r));
                        return EXIT_FAILURE;
                }
                if (r > 0) {
                        printf("%s: rejected: %u %s %s\n", argv[i], rj.code, rj.dsn, rj.text);
                        ret = EXIT_FAILURE;
                        continue;
                }
                if (strv_length(list) != 1 || !streq(list[0], argv[i])) {
                        printf("%s -> ", argv[i]);
                        for (char **p = list; *p; p++)
                                printf("%s%s", *p, p[1] ? ", " : "\n");
                }
                for (char **p = list; *p; p++) {
                        Route rt;

                        r = route_resolve(router, *p, &rt);
                        if (r < 0) {
                                fprintf(stderr, "ternctl: %s: %s\n", *p, strerror(-r));
                                return EXIT_FAILURE;
                        }
                        print_route(&rt);
                }
        }
        if (fflush(stdout) != 0)
                return EXIT_FAILURE;
        return ret;
}
