/* tern-metrics: answers one HTTP request on fd 0/1 (tern-metrics.socket,
 * Accept=yes, one process per connection) with tern-queued's counters in the
 * Prometheus text format. It reads no logs and keeps no state: every scrape
 * asks queued over its socket (IPC_STATS_GET). HTTP/1.0-style: one request,
 * then the connection is closed. */
#include <getopt.h>
#include <poll.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "stats_client.h"

#define REQUEST_MAX 8192u               /* request line and headers */
#define REQUEST_TIMEOUT_MSEC 5000       /* a scraper sends its request at once */

static int read_request(char *buf, size_t size) {
        struct timespec start, now;
        size_t len = 0;

        (void) clock_gettime(CLOCK_MONOTONIC, &start);
        while (len < size - 1) {
                struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
                long left;
                ssize_t n;

                (void) clock_gettime(CLOCK_MONOTONIC, &now);
                left = REQUEST_TIMEOUT_MSEC - ((now.tv_sec - start.tv_sec) * 1000 +
                                               (now.tv_nsec - start.tv_nsec) / 1000000);
                if (left <= 0)
                        return -ETIMEDOUT;
                if (poll(&p, 1, (int) left) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (!(p.revents & (POLLIN | POLLHUP)))
                        continue;
                n = read(STDIN_FILENO, buf + len, size - 1 - len);
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                buf[len] = 0;
                if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
                        return 0;
        }
        buf[len] = 0;
        return strchr(buf, '\n') ? 0 : -EBADMSG;
}

static int write_all(const char *p, size_t n) {
        while (n > 0) {
                ssize_t w = write(STDOUT_FILENO, p, n);

                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += w;
                n -= (size_t) w;
        }
        return 0;
}

static int respond(unsigned code, const char *reason, const char *type, const char *body,
                   bool head_only) {
        char header[256];
        size_t n = strlen(body);
        int l;

        l = snprintf(header, sizeof(header),
                     "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n", code, reason, type, n);
        if (l < 0 || (size_t) l >= sizeof(header))
                return -EINVAL;
        if (write_all(header, (size_t) l) < 0)
                return -EIO;
        return head_only ? 0 : write_all(body, n);
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        _cleanup_(config_freep) Config *config = NULL;
        _cleanup_free_ char *dropin = NULL, *text = NULL;
        const char *path = NULL;
        char req[REQUEST_MAX], ebuf[700], method[16], target[256];
        ConfigError error = {};
        bool head;
        int c, r;

        log_open("tern-metrics");
        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        path = optarg;
                        break;
                case 'h':
                        printf("%s [-c FILE]: serves GET /metrics on stdin/stdout\n", argv[0]);
                        return 0;
                default:
                        return 2;
                }
        path = config_path_resolve(path);
        if (asprintf(&dropin, "%s.d", path) < 0)
                return 1;

        r = read_request(req, sizeof(req));
        if (r < 0) {
                (void) respond(400, "Bad Request", "text/plain", "bad request\n", false);
                return 1;
        }
        /* "GET /metrics HTTP/1.1": bounded fields, the rest of the headers ignored. */
        if (sscanf(req, "%15s %255s", method, target) != 2) {
                (void) respond(400, "Bad Request", "text/plain", "bad request\n", false);
                return 1;
        }
        head = streq(method, "HEAD");
        if (!streq(method, "GET") && !head) {
                (void) respond(405, "Method Not Allowed", "text/plain", "only GET\n", false);
                return 0;
        }
        if (streq(target, "/")) {
                (void) respond(200, "OK", "text/html",
                               "<html><body><a href=\"/metrics\">tern metrics</a></body></html>\n",
                               head);
                return 0;
        }
        if (!streq(target, "/metrics") && strncmp(target, "/metrics?", 9) != 0) {
                (void) respond(404, "Not Found", "text/plain", "not found; try /metrics\n", head);
                return 0;
        }

        r = config_load(path, dropin, &config, &error);
        if (r < 0) {
                LogField f[] = { { "MESSAGE_ID", LOG_MID_CONFIG_ERROR } };

                log_fields_errno(LOG_ERR, r, f, "Bad configuration: %s",
                                 config_error_string(&error, ebuf, sizeof(ebuf)));
                (void) respond(500, "Internal Server Error", "text/plain", "bad configuration\n", false);
                return 1;
        }
        r = stats_fetch(config->queued_socket, &text);
        if (r < 0) {
                log_warning_errno(r, "Cannot get statistics from tern-queued at \"%s\": %m",
                                  config->queued_socket);
                (void) respond(503, "Service Unavailable", "text/plain", "tern-queued unreachable\n",
                               head);
                return 1;
        }
        r = respond(200, "OK", "text/plain; version=0.0.4; charset=utf-8", text, head);
        return r < 0 ? 1 : 0;
}
