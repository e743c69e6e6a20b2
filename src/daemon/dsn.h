/* dsn.h — delivery status notifications (RFC 3464) for the outbound queue.
 *
 * queued tells a sender what became of a message it could not deliver
 * (Action: failed, on a permanent failure or when the message expired)
 * or is still trying (Action: delayed, the optional delay notice).  The
 * notice is a multipart/report (RFC 6522): a short text for people, the
 * machine-readable message/delivery-status part, and the header of the
 * original message as text/rfc822-headers (never its body: a bounce must
 * not carry content back, and the sender has it).
 *
 * The caller sends it with the null reverse path (RFC 5321 §4.5.5), so a
 * notice is never answered by another; it is never sent to the null
 * sender (that is the caller's rule too).  Auto-Submitted: auto-replied
 * (RFC 3834) keeps vacation responders quiet.
 *
 * Limits: the original header is cut at DSN_HEADERS_MAX bytes, at a line
 * end; every line we write is CRLF-terminated and under 1000 bytes
 * (replies are at most 512 bytes, printable ASCII). */
#ifndef SM_DAEMON_DSN_H
#define SM_DAEMON_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DSN_HEADERS_MAX 65536

struct dsn_rcpt {
    const char *addr;
    const char *reply;  /* the remote reply ("550 5.1.1 text") or our own text */
    const char *status; /* RFC 3463 code to report, NULL: taken from reply */
};

struct dsn_params {
    const char *hostname;  /* Reporting-MTA, the From domain */
    const char *sender;    /* the original reverse path: To of the notice */
    const char *queue_id;
    bool delayed;          /* Action: delayed (else failed) */
    int64_t arrival;       /* when the message entered the queue */
    int64_t now;
    const struct dsn_rcpt *rcpts;
    size_t n_rcpts;
    const char *headers;   /* the original message's header (may be cut here) */
    size_t headers_len;
};

/* The whole notice (header and body, CRLF line ends), malloc'd, *len_r bytes. */
char *dsn_build(const struct dsn_params *p, size_t *len_r);

/* The status to report for reply: its enhanced code when it has one
 * ("550 5.1.1 ..."), else from its basic code ("5.0.0", "4.0.0"), else
 * the default given.  out gets at most 15 characters. */
void dsn_status(const char *reply, const char *dflt, char out[16]);

#endif
