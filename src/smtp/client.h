/* client.h — the outbound SMTP client: hands one message to one remote MTA.
 *
 * queued resolves the destination (MX, addresses, MTA-STS or DANE policy)
 * and starts one delivery per attempt with smtp_client_start(); the client
 * connects to the given address, speaks RFC 5321 on the caller's libevent
 * loop (no blocking on the network, no threads) and calls back once with a
 * result per recipient.  It decides nothing about retries or next MX
 * hosts: it reports, the caller decides.
 *
 * The dialogue: connect, 220 greeting, EHLO (HELO when EHLO is refused
 * with 5xx), STARTTLS as the TLS policy says, EHLO again over TLS (RFC 3207
 * §4.2: everything learned before is forgotten), MAIL FROM (SIZE= when
 * advertised, BODY=8BITMIME and SMTPUTF8 as the message needs), RCPT TO for
 * each recipient, DATA, the message, the final dot, QUIT.  With PIPELINING
 * (RFC 2920) MAIL, every RCPT and DATA leave in one write.  No BDAT: DATA
 * works with every server and the message is text with CRLF line ends.
 *
 * TLS policies (docs/outbound.md has the full rationale):
 *   SMTP_TLS_NONE            never STARTTLS (the caller's clear-text retry
 *                            after a failed opportunistic handshake, RFC 7435);
 *   SMTP_TLS_OPPORTUNISTIC   STARTTLS when offered, no certificate check;
 *                            clear text only when STARTTLS is not offered or
 *                            refused with an error reply; a failed handshake
 *                            is a temporary failure of this host (result
 *                            stage SMTP_STAGE_TLS) -- the caller may retry in
 *                            clear text with SMTP_TLS_NONE;
 *   SMTP_TLS_VERIFY_NAME     (MTA-STS enforce, RFC 8461) STARTTLS required,
 *                            chain verified against the trust store of
 *                            tls_ctx, certificate name matched against
 *                            mx_host; mx_host must also match one of the
 *                            policy's "mx" patterns when they are given;
 *   SMTP_TLS_DANE            (RFC 7672) STARTTLS required; the TLSA records
 *                            (DNSSEC-validated by the caller) are checked by
 *                            OpenSSL's DANE code: DANE-EE(3) ignores names and
 *                            dates, DANE-TA(2) checks the name against the
 *                            TLSA base domain and mx_host; PKIX-TA(0) and
 *                            PKIX-EE(1) are not used for SMTP (§3.1.3) and
 *                            are skipped.  When no record is usable the
 *                            connection is still encrypted but not
 *                            authenticated (RFC 7672 §2.2).
 * Every policy failure (no STARTTLS where required, handshake, verification,
 * policy mismatch) is a temporary failure: the caller tries the next MX and
 * retries later, it never falls back to clear text for VERIFY_NAME or DANE.
 *
 * Timeouts (RFC 5321 §4.5.3.2, in milliseconds, 0 takes the default):
 * connect 30 s, greeting 5 min, EHLO/HELO 5 min, STARTTLS and handshake
 * 5 min, MAIL 5 min, RCPT 5 min, DATA 2 min, data block 3 min (the output
 * must drain from 256 KiB to 32 KiB within it), final dot 10 min, QUIT 1 min.
 * Each reply has its deadline from the moment its command left.
 *
 * Limits: reply lines of at most SMTP_REPLY_LINE_MAX bytes, at most
 * SMTP_REPLY_LINES_MAX lines per reply (smtp/reply.h); a malformed reply is
 * a temporary failure with a clear text.  At most SMTP_CLIENT_RCPTS_MAX
 * recipients per delivery; addresses of at most 256 bytes without controls,
 * spaces or angle brackets.
 *
 * The message is read from msg_fd (a regular file or memfd, from offset 0
 * with pread(), the caller's file offset is untouched), 64 KiB at a time as
 * the socket drains.  Line ends are normalised to CRLF (a bare LF or bare
 * CR becomes CRLF: a receiver must never see a bare one, RFC 5321 §2.3.8),
 * lines starting with '.' are dot-stuffed (§4.5.2), and a missing final
 * line end is added before the terminating dot.  Reading a local file is
 * the one blocking call, as in every MTA.  Nothing here logs message
 * content or addresses; replies go into the result only. */
#ifndef SM_SMTP_CLIENT_H
#define SM_SMTP_CLIENT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "smtp/reply.h"

struct event_base;
struct smtp_client;

#define SMTP_CLIENT_RCPTS_MAX 1000
#define SMTP_CLIENT_TEXT_MAX 512 /* reply text kept per recipient / session */

enum smtp_tls_policy {
    SMTP_TLS_NONE,
    SMTP_TLS_OPPORTUNISTIC,
    SMTP_TLS_VERIFY_NAME,
    SMTP_TLS_DANE,
};

enum smtp_delivery {
    SMTP_DELIVERED, /* the server took responsibility (2xx after the dot) */
    SMTP_TEMPFAIL,  /* try again later (4xx, network, TLS, timeout, garbage) */
    SMTP_PERMFAIL,  /* bounce (5xx, or a requirement the server cannot meet) */
};

/* Where the dialogue was when the session ended. */
enum smtp_client_stage {
    SMTP_STAGE_CONNECT, SMTP_STAGE_GREETING, SMTP_STAGE_EHLO, SMTP_STAGE_HELO,
    SMTP_STAGE_STARTTLS, SMTP_STAGE_TLS, SMTP_STAGE_MAIL, SMTP_STAGE_RCPT, SMTP_STAGE_DATA,
    SMTP_STAGE_BODY, SMTP_STAGE_DOT, SMTP_STAGE_QUIT, SMTP_STAGE_DONE,
};

/* One TLSA record (RFC 6698): certificate usage, selector, matching type
 * and association data.  The data is copied by smtp_client_start(). */
struct smtp_tlsa {
    uint8_t usage, selector, mtype;
    const unsigned char *data;
    size_t len;
};

struct smtp_client_timeouts {
    unsigned connect_ms, greeting_ms, helo_ms, starttls_ms, mail_ms, rcpt_ms, data_init_ms,
        data_block_ms, data_end_ms, quit_ms;
};

struct smtp_client_params {
    const struct sockaddr *addr;      /* resolved destination: IPv4/IPv6 address and port */
    socklen_t addrlen;
    const char *mx_host;              /* the MX host name: SNI, certificate name checks */
    const char *helo_name;            /* our name for EHLO/HELO */
    enum smtp_tls_policy tls;
    SSL_CTX *tls_ctx;                 /* tls_client_ctx_new(); not needed for SMTP_TLS_NONE;
                                         referenced, not owned */
    const char *const *sts_mx;        /* VERIFY_NAME: MTA-STS "mx" patterns ("mx.example.net",
                                         "*.example.net"); n_sts_mx == 0: no pattern check */
    size_t n_sts_mx;
    const char *tlsa_base;            /* DANE: TLSA base domain (NULL: mx_host); also the SNI */
    const struct smtp_tlsa *tlsa;     /* DANE: the records of _25._tcp.<tlsa_base> */
    size_t n_tlsa;
    const char *mail_from;            /* reverse path without <>, "" for the null sender */
    const char *const *rcpts;         /* forward paths without <> */
    size_t n_rcpts;                   /* 1..SMTP_CLIENT_RCPTS_MAX */
    int msg_fd;                       /* the message (header and body); not owned */
    bool smtputf8;                    /* the message needs SMTPUTF8 (UTF-8 headers); non-ASCII
                                         addresses set it implicitly */
    bool body_8bit;                   /* send BODY=8BITMIME (when the server offers it) */
    struct smtp_client_timeouts timeouts;
    uint64_t log_id;                  /* ties the client's log lines to the caller's */
};

/* A reply from the server, or (code 0) our own description of a failure
 * that had no reply: connection, TLS, timeout, malformed reply, a
 * requirement the server cannot meet. */
struct smtp_client_reply {
    int code;                          /* 200..559, or 0 */
    char enhanced[SMTP_ENHANCED_MAX];  /* "5.1.1", or "" */
    char text[SMTP_CLIENT_TEXT_MAX];   /* printable ASCII; reply lines joined by ' ' */
};

struct smtp_client_rcpt_result {
    enum smtp_delivery status;
    struct smtp_client_reply reply;    /* the reply that decided it: the dot's for a
                                          delivered recipient, else its RCPT reply or the
                                          session's failure */
};

struct smtp_client_result {
    /* Overall: DELIVERED when at least one recipient was delivered (look at
     * rcpts[] for the others), else TEMPFAIL when any recipient may be
     * retried, else PERMFAIL. */
    enum smtp_delivery status;
    enum smtp_client_stage stage;      /* where a session-level failure happened;
                                          SMTP_STAGE_DONE when the dialogue completed */
    struct smtp_client_reply reply;    /* the session-level failure, or the final reply */
    struct smtp_client_rcpt_result *rcpts; /* n_rcpts entries, in the order given */
    size_t n_rcpts;
    bool starttls_offered;
    bool tls;                          /* the message went over TLS */
    char tls_version[16];              /* "TLSv1.3", "" without TLS */
    char tls_cipher[64];
    bool tls_verified;                 /* the peer was authenticated as the policy asks
                                          (VERIFY_NAME, or DANE with a usable record) */
    int dane_depth;                    /* DANE: depth of the matching certificate (0: the
                                          server's own, DANE-EE), -1 otherwise */
};

/* Called once per delivery, from the event loop (never from inside
 * smtp_client_start()).  The result lives until smtp_client_free(), which
 * may be called from inside the callback. */
typedef void smtp_client_done_cb(struct smtp_client *c, const struct smtp_client_result *r,
                                 void *arg);

/* Start a delivery.  Parameters are checked and copied (the caller may
 * free them at once; msg_fd and tls_ctx must stay valid until the
 * callback).  Returns NULL with a message in err when a parameter is
 * invalid: then there is no callback.  Every failure after that (even
 * connect() failing at once) arrives through the callback. */
struct smtp_client *smtp_client_start(struct event_base *base, const struct smtp_client_params *p,
                                      smtp_client_done_cb *cb, void *arg, char *err,
                                      size_t errlen);

/* Free the client; a delivery still running is abandoned at once without
 * a callback (the server sees the connection drop, no dot: it keeps
 * nothing).  Accepts NULL and *c == NULL; sets *c to NULL. */
void smtp_client_free(struct smtp_client **c);

/* Names for logs: "delivered"/"deferred"/"bounced", "connect", "rcpt", ... */
const char *smtp_delivery_name(enum smtp_delivery d);
const char *smtp_client_stage_name(enum smtp_client_stage s);

/* Does host match an MTA-STS "mx" pattern (RFC 8461 §4.1): equal ignoring
 * case and a trailing dot, or "*.rest" matching exactly one more label? */
bool smtp_sts_mx_match(const char *pattern, const char *host);

#endif
