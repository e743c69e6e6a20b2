/* dsn.c — RFC 3464 delivery status notifications (see dsn.h). */
#include "daemon/dsn.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

void dsn_status(const char *reply, const char *dflt, char out[16])
{
    snprintf(out, 16, "%s", dflt);
    if (reply == NULL || !(reply[0] == '2' || reply[0] == '4' || reply[0] == '5') ||
        !is_digit(reply[1]) || !is_digit(reply[2]) || (reply[3] != ' ' && reply[3] != '\0'))
        return;
    snprintf(out, 16, "%c.0.0", reply[0]);
    const char *p = reply[3] == ' ' ? reply + 4 : reply + 3;
    /* class "." subject (1-3 digits) "." detail (1-3 digits), RFC 3463 */
    if (p[0] != reply[0] || p[1] != '.')
        return;
    size_t i = 2, a = 0, b = 0;
    while (is_digit(p[i]) && a < 3)
        i++, a++;
    if (a == 0 || p[i] != '.')
        return;
    i++;
    while (is_digit(p[i]) && b < 3)
        i++, b++;
    if (b == 0 || (p[i] != ' ' && p[i] != '\0'))
        return;
    snprintf(out, 16, "%.*s", (int)i, p);
}

static void rfc5322_date(int64_t t, char out[64])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, 64, "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
        snprintf(out, 64, "Thu, 01 Jan 1970 00:00:00 +0000");
}

/* The original header, cut at DSN_HEADERS_MAX at a line end, each line
 * ended by CRLF whatever it had, bare CRs dropped. */
static void put_headers(struct sm_buf *b, const char *h, size_t len)
{
    if (len > DSN_HEADERS_MAX) {
        len = DSN_HEADERS_MAX;
        while (len > 0 && h[len - 1] != '\n')
            len--;
    }
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (h[i] != '\n')
            continue;
        size_t end = i;
        if (end > start && h[end - 1] == '\r')
            end--;
        if (end == start) /* the empty line that ends the header */
            break;
        sm_buf_append(b, h + start, end - start);
        sm_buf_puts(b, "\r\n");
        start = i + 1;
    }
}

static bool has_code(const char *reply)
{
    return reply != NULL && (reply[0] == '4' || reply[0] == '5') && is_digit(reply[1]) &&
           is_digit(reply[2]) && (reply[3] == ' ' || reply[3] == '\0');
}

char *dsn_build(const struct dsn_params *p, size_t *len_r)
{
    struct sm_buf b;
    char date[64], arrival[64], boundary[96];
    sm_buf_init(&b, 0);
    rfc5322_date(p->now, date);
    rfc5322_date(p->arrival, arrival);
    snprintf(boundary, sizeof boundary, "=_sealmail-dsn-%s-%" PRId64, p->queue_id, p->now);

    sm_buf_printf(&b,
                  "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
                  "To: <%s>\r\n"
                  "Subject: %s\r\n"
                  "Date: %s\r\n"
                  "Message-ID: <%s.%" PRId64 ".dsn@%s>\r\n"
                  "Auto-Submitted: auto-replied\r\n"
                  "MIME-Version: 1.0\r\n"
                  "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                  "\tboundary=\"%s\"\r\n"
                  "\r\n"
                  "This is a MIME-encapsulated message.\r\n"
                  "\r\n--%s\r\n"
                  "Content-Type: text/plain; charset=us-ascii\r\n"
                  "\r\n",
                  p->hostname, p->sender,
                  p->delayed ? "Delayed Mail (still being retried)"
                             : "Undelivered Mail Returned to Sender",
                  date, p->queue_id, p->now, p->hostname, boundary, boundary);
    if (p->delayed)
        sm_buf_printf(&b, "This is the mail system at %s.\r\n\r\n"
                          "Your message could not be delivered yet to the recipients below.\r\n"
                          "It is still being retried; you need not send it again.\r\n\r\n",
                      p->hostname);
    else
        sm_buf_printf(&b, "This is the mail system at %s.\r\n\r\n"
                          "Your message could not be delivered to the recipients below.\r\n"
                          "It has not been and will not be delivered to them.\r\n\r\n",
                      p->hostname);
    for (size_t i = 0; i < p->n_rcpts; i++)
        sm_buf_printf(&b, "<%s>: %s\r\n", p->rcpts[i].addr,
                      p->rcpts[i].reply != NULL && p->rcpts[i].reply[0] ? p->rcpts[i].reply
                                                                        : "no reason recorded");

    sm_buf_printf(&b,
                  "\r\n--%s\r\n"
                  "Content-Type: message/delivery-status\r\n"
                  "\r\n"
                  "Reporting-MTA: dns; %s\r\n"
                  "X-Sealmail-Queue-ID: %s\r\n"
                  "Arrival-Date: %s\r\n",
                  boundary, p->hostname, p->queue_id, arrival);
    for (size_t i = 0; i < p->n_rcpts; i++) {
        const struct dsn_rcpt *r = &p->rcpts[i];
        char status[16];
        if (r->status != NULL)
            snprintf(status, sizeof status, "%s", r->status);
        else
            dsn_status(r->reply, p->delayed ? "4.0.0" : "5.0.0", status);
        sm_buf_printf(&b, "\r\nFinal-Recipient: rfc822; %s\r\nAction: %s\r\nStatus: %s\r\n",
                      r->addr, p->delayed ? "delayed" : "failed", status);
        if (has_code(r->reply))
            sm_buf_printf(&b, "Diagnostic-Code: smtp; %s\r\n", r->reply);
        sm_buf_printf(&b, "Last-Attempt-Date: %s\r\n", date);
    }
    sm_buf_printf(&b, "\r\n--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary);
    put_headers(&b, p->headers, p->headers_len);
    sm_buf_printf(&b, "\r\n--%s--\r\n", boundary);
    *len_r = b.len;
    return b.data;
}
