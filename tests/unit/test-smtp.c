/* Tests deliverd's SMTP client: the relay_host syntax ("[host]:port" skips
 * the MX lookup, "host:port" and "host" do not, the port defaults to 25,
 * anything that could smuggle a second value is refused), and whole
 * transactions against a scripted server in a child process, checking the
 * exact bytes the client sent and the result of each recipient. */
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "route.h"
#include "smtp.h"
#include "tap.h"

/* The server answers reply after it has read a line starting with until. */
typedef struct Step {
        const char *until;
        const char *reply;
} Step;

static void serve(int listen_fd, const char *greeting, const Step *steps, int out_fd) {
        char transcript[65536], line[2048];
        size_t tn = 0, ln = 0;
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0)
                _exit(2);
        if (write(fd, greeting, strlen(greeting)) < 0)
                _exit(2);
        for (const Step *s = steps;;) {
                char ch;
                ssize_t k = read(fd, &ch, 1);

                if (k <= 0)
                        break;
                if (tn < sizeof(transcript))
                        transcript[tn++] = ch;
                if (ln < sizeof(line))
                        line[ln++] = ch;
                if (ch != '\n')
                        continue;
                if (s->until && ln >= strlen(s->until) && memcmp(line, s->until, strlen(s->until)) == 0) {
                        if (write(fd, s->reply, strlen(s->reply)) < 0)
                                break;
                        s++;
                }
                ln = 0;
        }
        if (write(out_fd, transcript, tn) < 0)
                _exit(2);
        _exit(0);
}

typedef struct Run {
        DeliveryResult results[4];
        char transcript[65536];
} Run;

/* Envelope details beyond the defaults, and the transport to use. */
typedef struct Extra {
        const char *sender;
        const char *notify, *orcpt;     /* for every recipient */
        const char *ret, *envid, *body_type;
        bool smtputf8;
        bool lmtp;
} Extra;

static void run_session_ex(const char *greeting, const Step *steps, const char *body,
                           const char *const *rcpts, size_t n, const Extra *x, Run *run);

/* Delivers body to rcpts through a scripted server; fills run. */
static void run_session(const char *greeting, const Step *steps, const char *body,
                        const char *const *rcpts, size_t n, Run *run) {
        run_session_ex(greeting, steps, body, rcpts, n, &(Extra) {}, run);
}

static void run_session_ex(const char *greeting, const Step *steps, const char *body,
                           const char *const *rcpts, size_t n, const Extra *x, Run *run) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof(sa);
        char relay[64];
        int lfd, p[2], status;
        pid_t pid;
        ssize_t k;
        size_t got = 0;
        SpoolRcpt rc[4] = {};
        size_t idx[4] = { 0, 1, 2, 3 };

        memset(run, 0, sizeof(*run));
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(lfd >= 0);
        CHECK(bind(lfd, (struct sockaddr *) &sa, sizeof(sa)) == 0);
        CHECK(listen(lfd, 1) == 0);
        CHECK(getsockname(lfd, (struct sockaddr *) &sa, &sl) == 0);
        CHECK(pipe2(p, O_CLOEXEC) == 0);
        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                (void) close(p[0]);
                serve(lfd, greeting, steps, p[1]);
        }
        (void) close(p[1]);
        (void) close(lfd);

        (void) snprintf(relay, sizeof(relay), "[127.0.0.1]:%u", (unsigned) ntohs(sa.sin_port));
        Config cfg = { .hostname = (char *) "client.test", .relay_host = relay, .smtp_tls_security_level = (char *) "none",
                       .smtp_connect_timeout_usec = 5000000, .smtp_reply_timeout_usec = 5000000 };
        for (size_t i = 0; i < n; i++)
                rc[i] = (SpoolRcpt) { .addr = (char *) rcpts[i], .notify = (char *) x->notify,
                                      .orcpt = (char *) x->orcpt };
        SpoolEnvelope env = { .id = (char *) "0123456789ABC",
                              .sender = (char *) (x->sender ?: "s@example.org"),
                              .rcpts = rc, .n_rcpts = n, .ret = (char *) x->ret, .envid = (char *) x->envid,
                              .body_type = (char *) x->body_type, .smtputf8 = x->smtputf8 };
        Route route = { .transport = ROUTE_LMTP, .nexthop = "127.0.0.1", .port = ntohs(sa.sin_port) };
        DeliveryJob job = { .config = &cfg, .env = &env, .body = (const uint8_t *) body,
                            .body_len = strlen(body), .rcpt_index = idx, .n_rcpts = n,
                            .route = x->lmtp ? &route : NULL };

        CHECK_INT(x->lmtp ? transport_lmtp_deliver(&job, run->results) : transport_smtp_deliver(&job, run->results), 0);
        while ((k = read(p[0], run->transcript + got, sizeof(run->transcript) - 1 - got)) > 0)
                got += (size_t) k;
        run->transcript[got] = 0;
        (void) close(p[0]);
        CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static const char EHLO_PIPELINING[] = "250-sink.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n";

static void test_pipelined_transaction(void) {
        static const Step steps[] = {
                { "EHLO", EHLO_PIPELINING },
                /* MAIL, both RCPTs and DATA arrive before any reply is needed. */
                { "DATA", "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
                          "550-5.1.1 <b@example.net>: no such user\r\n550 5.1.1 try another\r\n"
                          "354 go\r\n" },
                { ".\r\n", "250 2.0.0 Ok: queued as X1\r\n" },
                { "QUIT", "221 2.0.0 Bye\r\n" },
                {},
        };
        const char *rcpts[] = { "a@example.net", "b@example.net" };
        Run run;

        run_session("220 sink.test ESMTP\r\n", steps, ".x\r\nbare\nlf\r\n..\r\nno end", rcpts, 2, &run);
        CHECK_STREQ(run.transcript,
                    "EHLO client.test\r\n"
                    "MAIL FROM:<s@example.org> SIZE=23\r\n"
                    "RCPT TO:<a@example.net>\r\n"
                    "RCPT TO:<b@example.net>\r\n"
                    "DATA\r\n"
                    "..x\r\nbare\r\nlf\r\n...\r\nno end\r\n.\r\n"
                    "QUIT\r\n");
        CHECK_INT(run.results[0].status, DELIVERY_DELIVERED);
        CHECK_STREQ(run.results[0].dsn, "2.0.0");
        CHECK_STREQ(run.results[0].text, "250 2.0.0 Ok: queued as X1");
        CHECK(strncmp(run.results[0].relay, "127.0.0.1[127.0.0.1]:", 21) == 0);
        CHECK_INT(run.results[1].status, DELIVERY_BOUNCED);
        CHECK_STREQ(run.results[1].dsn, "5.1.1");
        CHECK_STREQ(run.results[1].text, "host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <b@example.net>: no such user "
                                         "try another (in reply to RCPT TO command)");
}

static void test_helo_fallback_without_pipelining(void) {
        static const Step steps[] = {
                { "EHLO", "502 5.5.2 Error: command not recognized\r\n" },
                { "HELO", "250 sink.test\r\n" },
                { "MAIL", "250 Ok\r\n" },
                { "RCPT", "451 Try later\r\n" },
                { "QUIT", "221 Bye\r\n" },
                {},
        };
        const char *rcpts[] = { "a@example.net" };
        Run run;

        run_session("220 old server\r\n", steps, "x\r\n", rcpts, 1, &run);
        /* No recipient accepted: no DATA. */
        CHECK_STREQ(run.transcript, "EHLO client.test\r\nHELO client.test\r\nMAIL FROM:<s@example.org>\r\n"
                                    "RCPT TO:<a@example.net>\r\nQUIT\r\n");
        CHECK_INT(run.results[0].status, DELIVERY_DEFERRED);
        CHECK_STREQ(run.results[0].dsn, "4.0.0");
        CHECK_STREQ(run.results[0].text, "host 127.0.0.1[127.0.0.1] said: 451 Try later (in reply to RCPT TO command)");
}

static void test_size_and_garbage(void) {
        static const Step ehlo_small[] = {
                { "EHLO", "250-sink.test\r\n250 SIZE 3\r\n" },
                { "QUIT", "221 Bye\r\n" },
                {},
        };
        static const Step garbage[] = { {} };
        const char *rcpts[] = { "a@example.net" };
        Run run;

        run_session("220 sink.test\r\n", ehlo_small, "four\r\n", rcpts, 1, &run);
        CHECK_STREQ(run.transcript, "EHLO client.test\r\nQUIT\r\n");
        CHECK_INT(run.results[0].status, DELIVERY_BOUNCED);
        CHECK_STREQ(run.results[0].dsn, "5.3.4");
        CHECK_STREQ(run.results[0].text, "message size 6 exceeds size limit 3 of server 127.0.0.1[127.0.0.1]");

        run_session("22O not a code\r\n", garbage, "x\r\n", rcpts, 1, &run);
        CHECK_STREQ(run.transcript, "");
        CHECK_INT(run.results[0].status, DELIVERY_DEFERRED);
        CHECK_STREQ(run.results[0].dsn, "4.4.2");
        CHECK_STREQ(run.results[0].relay, "none");
        CHECK_STREQ(run.results[0].text,
                    "malformed reply from 127.0.0.1[127.0.0.1] while receiving the initial server greeting");
}

/* DSN parameters go through when the server offers DSN (RFC 3461), and
 * the result says the next hop took the duty over; BODY=8BITMIME and
 * SMTPUTF8 when offered. */
static void test_dsn_8bitmime_smtputf8_pass_through(void) {
        static const Step steps[] = {
                { "EHLO", "250-sink.test\r\n250-PIPELINING\r\n250-DSN\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n" },
                { "DATA", "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n" },
                { ".\r\n", "250 2.0.0 Ok: queued as D1\r\n" },
                { "QUIT", "221 2.0.0 Bye\r\n" },
                {},
        };
        const char *rcpts[] = { "a@example.net" };
        Extra x = { .notify = "SUCCESS,DELAY", .orcpt = "rfc822;a+2Bb@example.net", .ret = "HDRS",
                    .envid = "QQ314159", .body_type = "8BITMIME", .smtputf8 = true };
        Run run;

        run_session_ex("220 sink.test\r\n", steps, "x\r\n", rcpts, 1, &x, &run);
        CHECK_STREQ(run.transcript,
                    "EHLO client.test\r\n"
                    "MAIL FROM:<s@example.org> BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159\r\n"
                    "RCPT TO:<a@example.net> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a+2Bb@example.net\r\n"
                    "DATA\r\nx\r\n.\r\nQUIT\r\n");
        CHECK_INT(run.results[0].status, DELIVERY_DELIVERED);
        CHECK(run.results[0].dsn_relayed);
}

/* Without DSN offered nothing of it is sent and the duty stays here; an
 * address that needs SMTPUTF8 bounces with 5.6.7 when it is not offered. */
static void test_no_dsn_and_smtputf8_required(void) {
        static const Step plain[] = {
                { "EHLO", "250-sink.test\r\n250 8BITMIME\r\n" },
                { "MAIL", "250 Ok\r\n" },
                { "RCPT", "250 Ok\r\n" },
                { "DATA", "354 go\r\n" },
                { ".\r\n", "250 Ok\r\n" },
                { "QUIT", "221 Bye\r\n" },
                {},
        };
        static const Step no_utf8[] = {
                { "EHLO", "250-sink.test\r\n250 8BITMIME\r\n" },
                { "QUIT", "221 Bye\r\n" },
                {},
        };
        const char *rcpts[] = { "a@example.net" };
        const char *utf8_rcpts[] = { "j\xc3\xb6rg@example.net" };
        Extra x = { .notify = "NEVER", .ret = "FULL", .envid = "E1" };
        Run run;

        run_session_ex("220 sink.test\r\n", plain, "x\r\n", rcpts, 1, &x, &run);
        CHECK_STREQ(run.transcript, "EHLO client.test\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.net>\r\n"
                                    "DATA\r\nx\r\n.\r\nQUIT\r\n");
        CHECK_INT(run.results[0].status, DELIVERY_DELIVERED);
        CHECK(!run.results[0].dsn_relayed);

        run_session_ex("220 sink.test\r\n", no_utf8, "x\r\n", utf8_rcpts, 1, &(Extra) { .smtputf8 = true }, &run);
        CHECK_STREQ(run.transcript, "EHLO client.test\r\nQUIT\r\n");
        CHECK_INT(run.results[0].status, DELIVERY_BOUNCED);
        CHECK_STREQ(run.results[0].dsn, "5.6.7");
        CHECK_STREQ(run.results[0].text, "SMTPUTF8 is required, but was not offered by host 127.0.0.1[127.0.0.1]");
}

/* LMTP (RFC 2033): LHLO, and after the data one reply per accepted
 * recipient, in RCPT order; a refused RCPT gets no reply after DATA. */
static void test_lmtp_one_reply_per_recipient(void) {
        static const Step steps[] = {
                { "LHLO", "250-lmtp.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n" },
                { "DATA", "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <b@x> unknown\r\n250 2.1.5 Ok\r\n354 go\r\n" },
                { ".\r\n", "250 2.0.0 <a@x> saved\r\n452 4.2.2 <c@x> over quota\r\n" },
                { "QUIT", "221 Bye\r\n" },
                {},
        };
        const char *rcpts[] = { "a@x", "b@x", "c@x" };
        Run run;

        run_session_ex("220 lmtp.test LMTP\r\n", steps, "x\r\n", rcpts, 3, &(Extra) { .lmtp = true }, &run);
        CHECK_STREQ(run.transcript, "LHLO client.test\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@x>\r\n"
                                    "RCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n");
        CHECK_INT(run.results[0].status, DELIVERY_DELIVERED);
        CHECK_STREQ(run.results[0].text, "250 2.0.0 <a@x> saved");
        CHECK_INT(run.results[1].status, DELIVERY_BOUNCED);
        CHECK_STREQ(run.results[1].dsn, "5.1.1");
        CHECK_INT(run.results[2].status, DELIVERY_DEFERRED);
        CHECK_STREQ(run.results[2].dsn, "4.2.2");
        CHECK_STREQ(run.results[2].text, "host 127.0.0.1[127.0.0.1] said: 452 4.2.2 <c@x> over quota "
                                         "(in reply to end of DATA command)");
}

static void check_ok(const char *s, const char *host, unsigned port, bool use_mx) {
        char h[256] = "unset";
        uint16_t p = 0;
        bool m = !use_mx;

        CHECK_INT(smtp_parse_relay(s, h, sizeof(h), &p, &m), 0);
        CHECK_STREQ(h, host);
        CHECK_INT(p, port);
        CHECK_INT(m, use_mx);
}

static void check_bad(const char *s) {
        char h[256];
        uint16_t p = 7;
        bool m = false;

        CHECK_INT(smtp_parse_relay(s, h, sizeof(h), &p, &m), -EINVAL);
        CHECK_INT(p, 7);
}

int main(void) {
        check_ok("[127.0.0.1]:2525", "127.0.0.1", 2525, false);
        check_ok("[relay.example.org]", "relay.example.org", 25, false);
        check_ok("[::1]:587", "::1", 587, false);
        check_ok("[IPv6:2001:db8::1]:25", "2001:db8::1", 25, false);
        check_ok("example.org", "example.org", 25, true);
        check_ok("example.org:26", "example.org", 26, true);
        check_ok("smtp.example.org:65535", "smtp.example.org", 65535, true);

        check_bad("");
        check_bad("[]");
        check_bad("[127.0.0.1");
        check_bad("[127.0.0.1]x");
        check_bad("[127.0.0.1]:");
        check_bad("example.org:0");
        check_bad("example.org:65536");
        check_bad("example.org:25x");
        check_bad("example.org:-25");
        check_bad("example.org:+25");
        check_bad(":25");
        check_bad("::1");
        check_bad("2001:db8::1:25");
        check_bad("relay example.org");
        check_bad("relay\r\nRCPT TO:<x>");
        {
                char h[4];
                uint16_t p;
                bool m;
                CHECK_INT(smtp_parse_relay("long.example", h, sizeof(h), &p, &m), -EINVAL);
        }
        test_pipelined_transaction();
        test_helo_fallback_without_pipelining();
        test_size_and_garbage();
        test_dsn_8bitmime_smtputf8_pass_through();
        test_no_dsn_and_smtputf8_required();
        test_lmtp_one_reply_per_recipient();
        return tap_finish("test-smtp");
}
