/* The Received: header smtpd puts in front of every message. The date uses
 * the local time zone, which main.c loads (tzset) before the sandbox forbids
 * opening /etc/localtime. */
#include "received.h"

int received_date(time_t t, char *buf, size_t size) {
        struct tm tm;
        size_t n;

        if (!localtime_r(&t, &tm))
                return -EINVAL;
        /* No setlocale() anywhere in smtpd: %a and %b are the C locale's English names. */
        n = strftime(buf, size, "%a, %d %b %Y %H:%M:%S %z", &tm);
        if (n == 0)
                return -ENOBUFS;
        return (int) n;
}

int received_format(const ReceivedInfo *info, time_t t, char *buf, size_t size) {
        char date[64], proto[32], auth[320] = "";
        int n, r;

        r = received_date(t, date, sizeof(date));
        if (r < 0)
                return r;
        n = snprintf(proto, sizeof(proto), "%s%s", info->smtputf8 ? "UTF8" : "", info->proto);
        if (n < 0 || (size_t) n >= sizeof(proto))
                return -ENOBUFS;
        /* Postfix's smtpd_sasl_authenticated_header: who sent it is what a
         * postmaster needs to trace abuse of a submission account. */
        if (info->auth_user) {
                n = snprintf(auth, sizeof(auth), "\r\n\t(Authenticated sender: %s)", info->auth_user);
                if (n < 0 || (size_t) n >= sizeof(auth))
                        return -ENOBUFS;
        }
        if (info->rcpt)
                /* Like Postfix, name the recipient only when there is exactly
                 * one: a list would disclose Bcc recipients to each other. */
                n = snprintf(buf, size,
                             "Received: from %s (%s [%s])%s\r\n"
                             "\tby %s (tern) with %s id %s\r\n"
                             "\tfor <%s>; %s\r\n",
                             info->helo, info->client_name, info->client_addr, auth, info->hostname,
                             proto, info->queue_id, info->rcpt, date);
        else
                n = snprintf(buf, size,
                             "Received: from %s (%s [%s])%s\r\n"
                             "\tby %s (tern) with %s id %s;\r\n"
                             "\t%s\r\n",
                             info->helo, info->client_name, info->client_addr, auth, info->hostname,
                             proto, info->queue_id, date);
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        return n;
}
