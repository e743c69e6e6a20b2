/* client.c — the outbound SMTP client (see client.h).
 *
 * Shape: one struct per delivery, one stage enum with a setter, one reply
 * handler per stage (on_<stage>), and one place that ends the dialogue
 * (fail_reply / abort_session, then finish).
 *
 * I/O: net/conn is the server side of a connection (it accepts TLS), so
 * the client has its own small layer on libevent: a non-blocking connect()
 * watched by an event (exact errors and a connect timeout of our own), a
 * plain socket bufferevent for the clear-text part, and, after the server's
 * 220 to STARTTLS, an OpenSSL socket bufferevent on the same descriptor in
 * connecting state (engineering notes §6).  The switch happens from the
 * loop, never inside a bufferevent callback, and only when nothing follows
 * the 220 in the input: bytes after it can only be injected (the server
 * cannot answer a ClientHello we have not sent), so they fail the session.
 * SSL_OP_IGNORE_UNEXPECTED_EOF is set on the context (net/tls.c).
 *
 * Replies are read with net/linereader (lines of at most
 * SMTP_REPLY_LINE_MAX bytes) and parsed by smtp/reply.  A reply line ending
 * in a bare LF is tolerated: old servers send them and they cannot harm a
 * client; the text is sanitised anyway. */
#include "smtp/client.h"

#include <errno.h>
#include <stdarg.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "net/linereader.h"

#define IN_MAX (64 * 1024)          /* input buffered before reading pauses */
#define BODY_HIGH (256 * 1024)      /* refill the output up to this */
#define BODY_LOW (32 * 1024)        /* ... when it drains below this */
#define READ_CHUNK (64 * 1024)      /* bytes of the message read per refill */
#define ADDR_MAX 256                /* RFC 5321 §4.5.3.1.3 path length */
#define NAME_MAX_LEN 253

struct smtp_client {
    struct event_base *base;
    uint64_t log_id;
    /* what to deliver (copies) */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *mx_host, *helo_name, *tlsa_base, *mail_from;
    char **rcpts;
    size_t n_rcpts;
    enum smtp_tls_policy policy;
    SSL_CTX *tls_ctx;
    struct smtp_tlsa *tlsa;
    size_t n_tlsa;
    int msg_fd;
    uint64_t msg_size;
    bool smtputf8, body_8bit;
    struct smtp_client_timeouts to;
    smtp_client_done_cb *cb;
    void *arg;
    /* connection */
    int fd;
    struct bufferevent *bev;
    bool bev_owns_fd;               /* the TLS bufferevent closes the socket */
    struct event *ev_connect, *timer, *ev_tls, *ev_done;
    struct linereader lr;
    struct smtp_reply_parser rp;
    char line[SMTP_REPLY_LINE_MAX];
    /* dialogue */
    enum smtp_client_stage stage;
    bool esmtp, ext_pipelining, ext_size, ext_starttls, ext_8bitmime, ext_smtputf8;
    uint64_t size_limit;
    bool tls_up;
    int dane_usable;                /* usable TLSA records given to OpenSSL */
    size_t rcpt_next;               /* next RCPT reply expected */
    size_t accepted;                /* recipients with a 2xx RCPT reply */
    bool *rcpt_ok;
    bool mail_failed;               /* pipelined: remaining replies only drain */
    bool discard_dot;               /* a dot sent only to end a DATA nobody wanted */
    bool session_failed;            /* res.reply holds the failure */
    bool sts_mismatch;              /* refused before connecting */
    bool finished;
    bool tls_switching;             /* 220 to STARTTLS read: no more clear-text input */
    /* message streaming */
    unsigned char *rbuf;            /* READ_CHUNK bytes read from the message */
    char *ebuf;                     /* the same, encoded: at most twice as long, plus the end */
    uint64_t msg_off;
    bool at_bol, pending_cr, msg_eof;
    struct smtp_client_result res;
};

/* ---- names, small helpers -------------------------------------------------- */

const char *smtp_delivery_name(enum smtp_delivery d)
{
    switch (d) {
    case SMTP_DELIVERED:
        return "delivered";
    case SMTP_TEMPFAIL:
        return "deferred";
    case SMTP_PERMFAIL:
        return "bounced";
    }
    return "?";
}

const char *smtp_client_stage_name(enum smtp_client_stage s)
{
    static const char *const names[] = {"connect", "greeting", "ehlo", "helo", "starttls",
                                        "tls",     "mail",     "rcpt", "data", "body",
                                        "dot",     "quit",     "done"};
    return (size_t)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

static void enter_stage(struct smtp_client *c, enum smtp_client_stage s)
{
    log_debug("%016llx smtp-client stage %s -> %s", (unsigned long long)c->log_id,
              smtp_client_stage_name(c->stage), smtp_client_stage_name(s));
    c->stage = s;
}

static unsigned pick(unsigned v, unsigned def)
{
    return v ? v : def;
}

static void arm_timer(struct smtp_client *c, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

static unsigned stage_timeout(const struct smtp_client *c, enum smtp_client_stage s)
{
    switch (s) {
    case SMTP_STAGE_CONNECT:
        return c->to.connect_ms;
    case SMTP_STAGE_GREETING:
        return c->to.greeting_ms;
    case SMTP_STAGE_EHLO:
    case SMTP_STAGE_HELO:
        return c->to.helo_ms;
    case SMTP_STAGE_STARTTLS:
    case SMTP_STAGE_TLS:
        return c->to.starttls_ms;
    case SMTP_STAGE_MAIL:
        return c->to.mail_ms;
    case SMTP_STAGE_RCPT:
        return c->to.rcpt_ms;
    case SMTP_STAGE_DATA:
        return c->to.data_init_ms;
    case SMTP_STAGE_BODY:
        return c->to.data_block_ms;
    case SMTP_STAGE_DOT:
        return c->to.data_end_ms;
    case SMTP_STAGE_QUIT:
    case SMTP_STAGE_DONE:
        break;
    }
    return c->to.quit_ms;
}

static enum smtp_delivery class_of(int code)
{
    if (code >= 200 && code < 300)
        return SMTP_DELIVERED;
    return code >= 500 ? SMTP_PERMFAIL : SMTP_TEMPFAIL;
}

/* Copy a parsed reply into a result reply, lines joined by ' '. */
static void reply_copy(struct smtp_client_reply *out, const struct smtp_reply *r)
{
    out->code = r->code;
    snprintf(out->enhanced, sizeof out->enhanced, "%s", r->enhanced);
    size_t n = r->text_len < sizeof out->text - 1 ? r->text_len : sizeof out->text - 1;
    memcpy(out->text, r->text, n);
    out->text[n] = '\0';
    for (char *p = out->text; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

static void reply_local(struct smtp_client_reply *out, const char *enhanced, const char *fmt,
                        ...) SM_PRINTF(3, 4);
static void reply_local(struct smtp_client_reply *out, const char *enhanced, const char *fmt, ...)
{
    va_list ap;
    out->code = 0;
    snprintf(out->enhanced, sizeof out->enhanced, "%s", enhanced);
    va_start(ap, fmt);
    vsnprintf(out->text, sizeof out->text, fmt, ap);
    va_end(ap);
    for (char *p = out->text; *p; p++) /* OpenSSL and errno texts are ASCII; be sure */
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
}

/* ---- the end of a delivery ------------------------------------------------- */

static void close_connection(struct smtp_client *c)
{
    if (c->bev != NULL) {
        bufferevent_free(c->bev); /* the TLS one also closes the socket and frees SSL */
        c->bev = NULL;
        if (c->bev_owns_fd)
            c->fd = -1;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->ev_connect)
        event_del(c->ev_connect);
    event_del(c->timer);
    event_del(c->ev_tls);
    sm_freep(&c->rbuf);
    sm_freep(&c->ebuf);
    ERR_clear_error();
}

static void finish(struct smtp_client *c)
{
    if (c->finished)
        return;
    c->finished = true;
    close_connection(c);
    bool any_delivered = false, any_temp = false;
    for (size_t i = 0; i < c->n_rcpts; i++) {
        struct smtp_client_rcpt_result *rr = &c->res.rcpts[i];
        if (rr->reply.code == 0 && rr->reply.text[0] == '\0') { /* never decided: be safe */
            rr->status = SMTP_TEMPFAIL;
            reply_local(&rr->reply, "4.4.2", "delivery ended before this recipient was decided");
        }
        any_delivered |= rr->status == SMTP_DELIVERED;
        any_temp |= rr->status == SMTP_TEMPFAIL;
    }
    c->res.status = any_delivered ? SMTP_DELIVERED : any_temp ? SMTP_TEMPFAIL : SMTP_PERMFAIL;
    if (!c->session_failed)
        c->res.stage = SMTP_STAGE_DONE;
    log_debug("%016llx smtp-client done status=%s stage=%s tls=%s verified=%s",
              (unsigned long long)c->log_id, smtp_delivery_name(c->res.status),
              smtp_client_stage_name(c->res.stage), c->res.tls ? c->res.tls_version : "no",
              c->res.tls_verified ? "yes" : "no");
    event_active(c->ev_done, EV_TIMEOUT, 0);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct smtp_client *c = arg;
    c->cb(c, &c->res, c->arg); /* may free c */
}

/* Give every recipient still undecided the session's outcome. */
static void settle_pending(struct smtp_client *c, enum smtp_delivery status,
                           const struct smtp_client_reply *reply)
{
    for (size_t i = 0; i < c->n_rcpts; i++) {
        struct smtp_client_rcpt_result *rr = &c->res.rcpts[i];
        bool decided = rr->reply.code != 0 || rr->reply.text[0] != '\0';
        if (!decided || c->rcpt_ok[i]) {
            rr->status = status;
            rr->reply = *reply;
            c->rcpt_ok[i] = false;
        }
    }
}

static void record_failure(struct smtp_client *c, enum smtp_delivery status)
{
    c->session_failed = true;
    c->res.stage = c->stage;
    settle_pending(c, status, &c->res.reply);
}

/* The connection cannot be used any further: close it now. */
static void abort_session(struct smtp_client *c, enum smtp_delivery status, const char *enhanced,
                          const char *fmt, ...) SM_PRINTF(4, 5);
static void abort_session(struct smtp_client *c, enum smtp_delivery status, const char *enhanced,
                          const char *fmt, ...)
{
    char text[SMTP_CLIENT_TEXT_MAX];
    va_list ap;
    if (c->finished)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    reply_local(&c->res.reply, enhanced, "%s", text);
    record_failure(c, status);
    log_debug("%016llx smtp-client abort stage=%s reason=\"%s\"", (unsigned long long)c->log_id,
              smtp_client_stage_name(c->stage), c->res.reply.text);
    finish(c);
}

static void send_quit(struct smtp_client *c)
{
    enter_stage(c, SMTP_STAGE_QUIT);
    evbuffer_add(bufferevent_get_output(c->bev), "QUIT\r\n", 6);
    arm_timer(c, c->to.quit_ms);
}

/* The server answered with an error (or we refuse to go on): say QUIT
 * politely, then finish. */
static void fail_reply(struct smtp_client *c, const struct smtp_reply *r)
{
    reply_copy(&c->res.reply, r);
    enum smtp_delivery st = class_of(r->code);
    record_failure(c, st == SMTP_DELIVERED ? SMTP_TEMPFAIL : st);
    send_quit(c);
}

static void fail_local(struct smtp_client *c, enum smtp_delivery status, const char *enhanced,
                       const char *text)
{
    reply_local(&c->res.reply, enhanced, "%s", text);
    record_failure(c, status);
    send_quit(c);
}

/* ---- commands ------------------------------------------------------------------ */

static void send_line(struct smtp_client *c, const char *fmt, ...) SM_PRINTF(2, 3);
static void send_line(struct smtp_client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
    va_end(ap);
    evbuffer_add(bufferevent_get_output(c->bev), "\r\n", 2);
}

static void send_ehlo(struct smtp_client *c)
{
    c->esmtp = c->ext_pipelining = c->ext_size = c->ext_starttls = false;
    c->ext_8bitmime = c->ext_smtputf8 = false;
    c->size_limit = 0;
    enter_stage(c, SMTP_STAGE_EHLO);
    send_line(c, "EHLO %s", c->helo_name);
    arm_timer(c, c->to.helo_ms);
}

static void send_mail(struct smtp_client *c)
{
    char params[96] = "";
    size_t n = 0;
    if (c->ext_size)
        n += (size_t)snprintf(params + n, sizeof params - n, " SIZE=%llu",
                              (unsigned long long)c->msg_size);
    if (c->body_8bit && c->ext_8bitmime)
        n += (size_t)snprintf(params + n, sizeof params - n, " BODY=8BITMIME");
    if (c->smtputf8)
        snprintf(params + n, sizeof params - n, " SMTPUTF8");
    send_line(c, "MAIL FROM:<%s>%s", c->mail_from, params);
}

static void send_rcpt(struct smtp_client *c, size_t i)
{
    send_line(c, "RCPT TO:<%s>", c->rcpts[i]);
}

/* MAIL, then (pipelined) every RCPT and DATA in the same write. */
static void start_transaction(struct smtp_client *c)
{
    if (c->smtputf8 && !c->ext_smtputf8) {
        enter_stage(c, SMTP_STAGE_MAIL);
        fail_local(c, SMTP_PERMFAIL, "5.6.7",
                   "the message needs SMTPUTF8 and the server does not offer it (RFC 6531)");
        return;
    }
    if (c->ext_size && c->size_limit > 0 && c->msg_size > c->size_limit) {
        enter_stage(c, SMTP_STAGE_MAIL);
        char text[160];
        snprintf(text, sizeof text, "message size %llu exceeds the server's limit of %llu",
                 (unsigned long long)c->msg_size, (unsigned long long)c->size_limit);
        fail_local(c, SMTP_PERMFAIL, "5.3.4", text);
        return;
    }
    enter_stage(c, SMTP_STAGE_MAIL);
    c->rcpt_next = 0;
    send_mail(c);
    if (c->ext_pipelining) {
        for (size_t i = 0; i < c->n_rcpts; i++)
            send_rcpt(c, i);
        send_line(c, "DATA");
    }
    arm_timer(c, c->to.mail_ms);
}

/* ---- TLS ---------------------------------------------------------------------------- */

/* Arm verification on ssl as the policy asks; -1 on an internal error. */
static int tls_arm(struct smtp_client *c, SSL *ssl)
{
    switch (c->policy) {
    case SMTP_TLS_NONE:
    case SMTP_TLS_OPPORTUNISTIC:
        SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
        return SSL_set_tlsext_host_name(ssl, c->mx_host) == 1 ? 0 : -1;
    case SMTP_TLS_VERIFY_NAME:
        SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(ssl, c->mx_host) != 1)
            return -1;
        return SSL_set_tlsext_host_name(ssl, c->mx_host) == 1 ? 0 : -1;
    case SMTP_TLS_DANE:
        break;
    }
    /* DANE: SSL_dane_enable() sets SNI and the reference name to the TLSA
     * base domain (RFC 7672 §3.2.2, §8.1); the MX host name is the second
     * reference identifier for DANE-TA. */
    if (SSL_dane_enable(ssl, c->tlsa_base) <= 0)
        return -1;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (strcasecmp(c->tlsa_base, c->mx_host) != 0 && SSL_add1_host(ssl, c->mx_host) != 1)
        return -1;
    c->dane_usable = 0;
    for (size_t i = 0; i < c->n_tlsa; i++) {
        const struct smtp_tlsa *t = &c->tlsa[i];
        if (t->usage < 2) /* PKIX-TA/PKIX-EE: not for SMTP (RFC 7672 §3.1.3) */
            continue;
        int r = SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype, t->data, t->len);
        if (r < 0)
            return -1;
        if (r > 0)
            c->dane_usable++;
    }
    ERR_clear_error(); /* unusable records leave reasons in the queue */
    /* no usable record: encrypt, but do not authenticate (RFC 7672 §2.2) */
    SSL_set_verify(ssl, c->dane_usable > 0 ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    return 0;
}

static void tls_event_cb(struct bufferevent *bev, short what, void *arg);
static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);

/* From the loop after the 220 to STARTTLS: hand the socket to OpenSSL. */
static void tls_start_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct smtp_client *c = arg;
    bufferevent_free(c->bev); /* the plain one does not own the socket */
    c->bev = NULL;
    c->tls_switching = false;
    enter_stage(c, SMTP_STAGE_TLS);
    SSL *ssl = SSL_new(c->tls_ctx);
    if (ssl == NULL || tls_arm(c, ssl) < 0) {
        char why[160];
        unsigned long e = ERR_get_error();
        snprintf(why, sizeof why, "%s", e ? ERR_reason_error_string(e) : "unknown error");
        SSL_free(ssl);
        abort_session(c, SMTP_TEMPFAIL, "4.7.5", "cannot set up TLS: %s", why);
        return;
    }
    c->bev = bufferevent_openssl_socket_new(c->base, c->fd, ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (c->bev == NULL) {
        SSL_free(ssl);
        abort_session(c, SMTP_TEMPFAIL, "4.7.5", "cannot set up TLS: bufferevent");
        return;
    }
    c->bev_owns_fd = true;
    bufferevent_setcb(c->bev, read_cb, write_cb, tls_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, IN_MAX);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    arm_timer(c, c->to.starttls_ms);
}

/* The handshake finished (verification, if armed, passed). */
static void tls_ready(struct smtp_client *c)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    c->tls_up = true;
    c->res.tls = true;
    snprintf(c->res.tls_version, sizeof c->res.tls_version, "%s", SSL_get_version(ssl));
    snprintf(c->res.tls_cipher, sizeof c->res.tls_cipher, "%s", SSL_get_cipher_name(ssl));
    bool ok = SSL_get_verify_result(ssl) == X509_V_OK;
    if (c->policy == SMTP_TLS_VERIFY_NAME) {
        c->res.tls_verified = ok;
    } else if (c->policy == SMTP_TLS_DANE && c->dane_usable > 0) {
        uint8_t u, s, m;
        const unsigned char *data;
        size_t dlen;
        int depth = SSL_get0_dane_tlsa(ssl, &u, &s, &m, &data, &dlen);
        c->res.tls_verified = ok && depth >= 0;
        c->res.dane_depth = depth;
    }
    if ((c->policy == SMTP_TLS_VERIFY_NAME || (c->policy == SMTP_TLS_DANE && c->dane_usable)) &&
        !c->res.tls_verified) { /* cannot happen with SSL_VERIFY_PEER; never trust "cannot" */
        abort_session(c, SMTP_TEMPFAIL, "4.7.5", "TLS peer not verified");
        return;
    }
    log_debug("%016llx smtp-client tls %s %s verified=%s", (unsigned long long)c->log_id,
              c->res.tls_version, c->res.tls_cipher, c->res.tls_verified ? "yes" : "no");
    send_ehlo(c); /* RFC 3207 §4.2: forget what we learned in clear text */
}

/* Why the handshake failed, for the result. */
static void tls_failed(struct smtp_client *c)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e, first = 0;
    while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
        if (first == 0)
            first = e;
    const char *reason = first ? ERR_reason_error_string(first) : NULL;
    if (v != X509_V_OK && ssl != NULL && SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE)
        abort_session(c, SMTP_TEMPFAIL, "4.7.5", "TLS: certificate verification failed: %s",
                      X509_verify_cert_error_string(v));
    else
        abort_session(c, SMTP_TEMPFAIL, "4.7.5", "TLS handshake failed: %s",
                      reason ? reason : "connection closed");
}

/* ---- replies, stage by stage --------------------------------------------------- */

static void parse_ehlo(struct smtp_client *c, const struct smtp_reply *r)
{
    char line[SMTP_REPLY_LINE_MAX];
    c->esmtp = true;
    for (size_t i = 1; smtp_reply_line(r, i, line, sizeof line); i++) {
        char *arg = strchr(line, ' ');
        if (arg != NULL)
            *arg++ = '\0';
        if (strcasecmp(line, "PIPELINING") == 0) {
            c->ext_pipelining = true;
        } else if (strcasecmp(line, "STARTTLS") == 0) {
            c->ext_starttls = true;
        } else if (strcasecmp(line, "8BITMIME") == 0) {
            c->ext_8bitmime = true;
        } else if (strcasecmp(line, "SMTPUTF8") == 0) {
            c->ext_smtputf8 = true;
        } else if (strcasecmp(line, "SIZE") == 0) {
            c->ext_size = true;
            char *end = NULL;
            errno = 0;
            unsigned long long v = arg ? strtoull(arg, &end, 10) : 0;
            c->size_limit = (arg && end != arg && errno == 0 && arg[0] >= '0' && arg[0] <= '9')
                                ? v : 0;
        }
    }
}

/* After EHLO/HELO: STARTTLS, or the transaction, as the policy says. */
static void after_hello(struct smtp_client *c)
{
    if (c->tls_up) {
        start_transaction(c);
        return;
    }
    c->res.starttls_offered = c->ext_starttls;
    bool required = c->policy == SMTP_TLS_VERIFY_NAME || c->policy == SMTP_TLS_DANE;
    if (c->ext_starttls && c->policy != SMTP_TLS_NONE) {
        enter_stage(c, SMTP_STAGE_STARTTLS);
        send_line(c, "STARTTLS");
        arm_timer(c, c->to.starttls_ms);
        return;
    }
    if (required) {
        fail_local(c, SMTP_TEMPFAIL, "4.7.4",
                   c->policy == SMTP_TLS_DANE
                       ? "the server does not offer STARTTLS, which DANE requires (RFC 7672)"
                       : "the server does not offer STARTTLS, which the MTA-STS policy requires");
        return;
    }
    start_transaction(c);
}

static void on_greeting(struct smtp_client *c, const struct smtp_reply *r)
{
    /* 554 (no service) or 4xx: this host will not talk now; like Postfix's
     * smtp_skip_5xx_greeting, a temporary failure so the next MX is tried */
    if (r->code != 220) {
        reply_copy(&c->res.reply, r);
        record_failure(c, SMTP_TEMPFAIL);
        send_quit(c);
        return;
    }
    send_ehlo(c);
}

static void on_ehlo(struct smtp_client *c, const struct smtp_reply *r)
{
    if (r->code == 250) {
        parse_ehlo(c, r);
        after_hello(c);
    } else if (r->code >= 500 && !c->tls_up) {
        enter_stage(c, SMTP_STAGE_HELO); /* RFC 5321 §3.2: an old server */
        send_line(c, "HELO %s", c->helo_name);
        arm_timer(c, c->to.helo_ms);
    } else {
        fail_reply(c, r);
    }
}

static void on_helo(struct smtp_client *c, const struct smtp_reply *r)
{
    if (r->code != 250) {
        fail_reply(c, r);
        return;
    }
    c->esmtp = false;
    after_hello(c);
}

static void on_starttls(struct smtp_client *c, const struct smtp_reply *r)
{
    if (r->code == 220) {
        if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
            abort_session(c, SMTP_TEMPFAIL, "4.7.0",
                          "the server sent data after its reply to STARTTLS (injection?)");
            return;
        }
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
        event_del(c->timer);
        c->tls_switching = true;
        event_active(c->ev_tls, EV_TIMEOUT, 0);
        return;
    }
    if (c->policy == SMTP_TLS_OPPORTUNISTIC && r->code >= 400) {
        start_transaction(c); /* offered but refused: clear text (RFC 3207 §4.1, 7435) */
        return;
    }
    fail_reply(c, r);
}

static void on_mail(struct smtp_client *c, const struct smtp_reply *r)
{
    if (r->code / 100 == 2) {
        enter_stage(c, SMTP_STAGE_RCPT);
        if (!c->ext_pipelining)
            send_rcpt(c, 0);
        arm_timer(c, c->to.rcpt_ms);
        return;
    }
    if (!c->ext_pipelining) {
        fail_reply(c, r);
        return;
    }
    /* pipelined: the RCPT and DATA replies are on their way; every
     * recipient gets MAIL's reply, which says why */
    reply_copy(&c->res.reply, r);
    enum smtp_delivery st = class_of(r->code);
    record_failure(c, st == SMTP_DELIVERED ? SMTP_TEMPFAIL : st);
    c->mail_failed = true;
    enter_stage(c, SMTP_STAGE_RCPT);
    arm_timer(c, c->to.rcpt_ms);
}

static void begin_data(struct smtp_client *c)
{
    enter_stage(c, SMTP_STAGE_DATA);
    if (!c->ext_pipelining)
        send_line(c, "DATA");
    arm_timer(c, c->to.data_init_ms);
}

static void on_rcpt(struct smtp_client *c, const struct smtp_reply *r)
{
    size_t i = c->rcpt_next++;
    if (!c->mail_failed) {
        struct smtp_client_rcpt_result *rr = &c->res.rcpts[i];
        reply_copy(&rr->reply, r);
        if (r->code / 100 == 2) {
            c->rcpt_ok[i] = true;
            c->accepted++;
            rr->status = SMTP_TEMPFAIL; /* until the dot is answered */
        } else {
            enum smtp_delivery st = class_of(r->code);
            rr->status = st == SMTP_DELIVERED ? SMTP_TEMPFAIL : st;
        }
    }
    if (c->rcpt_next < c->n_rcpts) {
        if (!c->ext_pipelining)
            send_rcpt(c, c->rcpt_next);
        arm_timer(c, c->to.rcpt_ms);
        return;
    }
    if (c->mail_failed) {
        enter_stage(c, SMTP_STAGE_DATA);
        arm_timer(c, c->to.data_init_ms);
        return;
    }
    if (c->accepted == 0) { /* the session failed at RCPT: the last refusal says so */
        reply_copy(&c->res.reply, r);
        c->session_failed = true;
        c->res.stage = SMTP_STAGE_RCPT;
    }
    if (c->accepted == 0 && !c->ext_pipelining) {
        send_quit(c); /* every recipient has its own reply */
        return;
    }
    begin_data(c);
}

static void fill_body(struct smtp_client *c);

static void on_data(struct smtp_client *c, const struct smtp_reply *r)
{
    if (r->code == 354 && (c->accepted == 0 || c->mail_failed)) {
        /* RFC 2920 §3.1: DATA accepted with no recipient; end it empty */
        c->discard_dot = true;
        enter_stage(c, SMTP_STAGE_DOT);
        send_line(c, ".");
        arm_timer(c, c->to.data_end_ms);
        return;
    }
    if (c->mail_failed || c->accepted == 0) {
        send_quit(c);
        return;
    }
    if (r->code != 354) {
        fail_reply(c, r);
        return;
    }
    enter_stage(c, SMTP_STAGE_BODY);
    c->msg_off = 0;
    c->at_bol = true;
    c->pending_cr = c->msg_eof = false;
    bufferevent_setwatermark(c->bev, EV_WRITE, BODY_LOW, 0);
    fill_body(c);
}

static void on_dot(struct smtp_client *c, const struct smtp_reply *r)
{
    if (c->discard_dot) {
        send_quit(c);
        return;
    }
    reply_copy(&c->res.reply, r);
    enum smtp_delivery st = class_of(r->code);
    for (size_t i = 0; i < c->n_rcpts; i++) {
        if (!c->rcpt_ok[i])
            continue;
        c->res.rcpts[i].status = st;
        reply_copy(&c->res.rcpts[i].reply, r);
        c->rcpt_ok[i] = false;
    }
    if (st != SMTP_DELIVERED) {
        c->session_failed = true;
        c->res.stage = SMTP_STAGE_DOT;
    }
    send_quit(c);
}

static void on_reply(struct smtp_client *c, const struct smtp_reply *r)
{
    event_del(c->timer);
    switch (c->stage) {
    case SMTP_STAGE_GREETING:
        on_greeting(c, r);
        break;
    case SMTP_STAGE_EHLO:
        on_ehlo(c, r);
        break;
    case SMTP_STAGE_HELO:
        on_helo(c, r);
        break;
    case SMTP_STAGE_STARTTLS:
        on_starttls(c, r);
        break;
    case SMTP_STAGE_MAIL:
        on_mail(c, r);
        break;
    case SMTP_STAGE_RCPT:
        on_rcpt(c, r);
        break;
    case SMTP_STAGE_DATA:
        on_data(c, r);
        break;
    case SMTP_STAGE_DOT:
        on_dot(c, r);
        break;
    case SMTP_STAGE_BODY:
        if (c->msg_eof) { /* the dot is queued: this answers it */
            enter_stage(c, SMTP_STAGE_DOT);
            on_dot(c, r);
        } else { /* the server gave up in the middle of the message */
            reply_copy(&c->res.reply, r);
            record_failure(c, r->code >= 500 ? SMTP_PERMFAIL : SMTP_TEMPFAIL);
            finish(c);
        }
        break;
    case SMTP_STAGE_QUIT:
        finish(c);
        break;
    case SMTP_STAGE_CONNECT:
    case SMTP_STAGE_TLS:
    case SMTP_STAGE_DONE:
        abort_session(c, SMTP_TEMPFAIL, "4.5.0", "unexpected reply from the server");
        break;
    }
}

/* ---- input and output ------------------------------------------------------------ */

/* Every complete reply in the input, in order (PIPELINING). */
static void read_input(struct smtp_client *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (!c->finished && c->stage != SMTP_STAGE_TLS && c->bev != NULL && !c->tls_switching) {
        size_t len;
        enum lr_result lr = linereader_next(&c->lr, in, c->line, &len);
        if (lr == LR_MORE)
            return;
        if (lr == LR_TOOLONG) {
            abort_session(c, SMTP_TEMPFAIL, "4.5.0",
                          "malformed reply: line longer than %d bytes", SMTP_REPLY_LINE_MAX);
            return;
        }
        const char *error = NULL;
        switch (smtp_reply_feed(&c->rp, c->line, len, &error)) {
        case SMTP_REPLY_MORE:
            break;
        case SMTP_REPLY_ERROR:
            abort_session(c, SMTP_TEMPFAIL, "4.5.0", "%s during %s", error,
                          smtp_client_stage_name(c->stage));
            return;
        case SMTP_REPLY_DONE: {
            struct smtp_reply r = c->rp.r;
            smtp_reply_init(&c->rp);
            on_reply(c, &r);
            break;
        }
        }
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    read_input(arg);
}

/* Dot-stuff and normalise line ends of n message bytes into out. */
static size_t encode_chunk(struct smtp_client *c, const unsigned char *p, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = p[i];
        if (c->pending_cr) {
            c->pending_cr = false;
            out[o++] = '\r';
            out[o++] = '\n';
            c->at_bol = true;
            if (ch == '\n')
                continue; /* CRLF */
        }
        if (ch == '\r') {
            c->pending_cr = true;
            continue;
        }
        if (ch == '\n') { /* bare LF */
            out[o++] = '\r';
            out[o++] = '\n';
            c->at_bol = true;
            continue;
        }
        if (c->at_bol && ch == '.')
            out[o++] = '.';
        out[o++] = (char)ch;
        c->at_bol = false;
    }
    return o;
}

/* Queue message data until the output holds BODY_HIGH bytes or the
 * message has ended (then the terminating dot). */
static void fill_body(struct smtp_client *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (c->rbuf == NULL) { /* only while the message is sent */
        c->rbuf = sm_malloc(READ_CHUNK);
        c->ebuf = sm_malloc(2 * READ_CHUNK + 8);
    }
    unsigned char *in = c->rbuf;
    char *enc = c->ebuf;
    while (!c->msg_eof && evbuffer_get_length(out) < BODY_HIGH) {
        ssize_t n = pread(c->msg_fd, in, READ_CHUNK, (off_t)c->msg_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) { /* never send the dot: the server must drop what it got */
            abort_session(c, SMTP_TEMPFAIL, "4.3.0", "cannot read the message: %s",
                          strerror(errno));
            return;
        }
        if (n == 0) {
            c->msg_eof = true;
            size_t o = 0;
            if (c->pending_cr) {
                enc[o++] = '\r';
                enc[o++] = '\n';
                c->at_bol = true;
                c->pending_cr = false;
            }
            if (!c->at_bol) {
                enc[o++] = '\r';
                enc[o++] = '\n';
            }
            memcpy(enc + o, ".\r\n", 3);
            evbuffer_add(out, enc, o + 3);
            bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
            break;
        }
        c->msg_off += (uint64_t)n;
        evbuffer_add(out, enc, encode_chunk(c, in, (size_t)n, enc));
    }
    arm_timer(c, c->to.data_block_ms); /* progress made: a new block deadline */
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct smtp_client *c = arg;
    if (c->stage != SMTP_STAGE_BODY || c->finished)
        return;
    if (!c->msg_eof) {
        fill_body(c);
    } else if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        enter_stage(c, SMTP_STAGE_DOT); /* all sent: the final reply's deadline */
        arm_timer(c, c->to.data_end_ms);
    }
}

/* The connection ended or broke.  Replies that arrived with the end are
 * handled first (a "421 closing" followed by EOF). */
static void conn_ended(struct smtp_client *c, short what)
{
    int err = EVUTIL_SOCKET_ERROR();
    if (c->bev != NULL)
        read_input(c);
    if (c->finished)
        return;
    if (c->stage == SMTP_STAGE_QUIT) {
        finish(c);
        return;
    }
    if (what & BEV_EVENT_EOF)
        abort_session(c, SMTP_TEMPFAIL, "4.4.2", "connection closed by the server during %s",
                      smtp_client_stage_name(c->stage));
    else
        abort_session(c, SMTP_TEMPFAIL, "4.4.2", "connection error during %s: %s",
                      smtp_client_stage_name(c->stage), err ? strerror(err) : "unknown");
}

static void plain_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_ended(arg, what);
}

static void tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct smtp_client *c = arg;
    if (c->finished)
        return;
    if (what & BEV_EVENT_CONNECTED) {
        event_del(c->timer);
        tls_ready(c);
        return;
    }
    if (c->stage == SMTP_STAGE_TLS && (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
        tls_failed(c);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        unsigned long e;
        while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
            log_debug("%016llx smtp-client tls-error=\"%s\"", (unsigned long long)c->log_id,
                      ERR_reason_error_string(e));
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_ended(c, what);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct smtp_client *c = arg;
    if (c->stage == SMTP_STAGE_QUIT) {
        finish(c); /* the result is already known */
        return;
    }
    abort_session(c, SMTP_TEMPFAIL, "4.4.2", "timeout after %u ms during %s",
                  stage_timeout(c, c->stage), smtp_client_stage_name(c->stage));
}

/* ---- connecting ---------------------------------------------------------------------- */

static void connected(struct smtp_client *c)
{
    event_del(c->timer);
    c->bev = bufferevent_socket_new(c->base, c->fd, 0); /* we own the socket */
    if (c->bev == NULL) {
        abort_session(c, SMTP_TEMPFAIL, "4.4.1", "cannot create a bufferevent");
        return;
    }
    bufferevent_setcb(c->bev, read_cb, write_cb, plain_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, IN_MAX);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    enter_stage(c, SMTP_STAGE_GREETING);
    arm_timer(c, c->to.greeting_ms);
}

static void connect_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct smtp_client *c = arg;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr != 0) {
        abort_session(c, SMTP_TEMPFAIL, "4.4.1", "connect failed: %s", strerror(soerr));
        return;
    }
    connected(c);
}

static void start_connect(struct smtp_client *c)
{
    c->fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        abort_session(c, SMTP_TEMPFAIL, "4.4.1", "socket: %s", strerror(errno));
        return;
    }
    if (connect(c->fd, (struct sockaddr *)&c->addr, c->addrlen) == 0) {
        connected(c);
        return;
    }
    if (errno != EINPROGRESS) {
        abort_session(c, SMTP_TEMPFAIL, "4.4.1", "connect failed: %s", strerror(errno));
        return;
    }
    c->ev_connect = event_new(c->base, c->fd, EV_WRITE, connect_cb, c);
    event_add(c->ev_connect, NULL);
    arm_timer(c, c->to.connect_ms);
}

/* ---- parameters ----------------------------------------------------------------------- */

/* An address we are willing to put between angle brackets. */
static bool valid_address(const char *a, bool allow_empty, bool *utf8)
{
    size_t n = strlen(a);
    if ((n == 0 && !allow_empty) || n > ADDR_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)a[i];
        if (ch <= 0x20 || ch == 0x7f || ch == '<' || ch == '>')
            return false;
        if (ch >= 0x80)
            *utf8 = true;
    }
    return true;
}

/* A host name: LDH labels (and '_', seen in the wild), 253 bytes at most. */
static bool valid_host(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > NAME_MAX_LEN || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '.') {
            if (label == 0 && i + 1 < n)
                return false;
            label = 0;
        } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                   (ch >= '0' && ch <= '9') || ch == '-' || ch == '_') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return true;
}

/* EHLO argument: a host name or an address literal, printable, no spaces. */
static bool valid_helo(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* Copy of a host name without its trailing dot. */
static char *host_copy(const char *s)
{
    size_t n = strlen(s);
    if (n > 1 && s[n - 1] == '.')
        n--;
    return sm_strndup(s, n);
}

bool smtp_sts_mx_match(const char *pattern, const char *host)
{
    size_t pn = strlen(pattern), hn = strlen(host);
    if (pn > 0 && pattern[pn - 1] == '.')
        pn--;
    if (hn > 0 && host[hn - 1] == '.')
        hn--;
    if (pn >= 2 && pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = memchr(host, '.', hn);
        if (dot == NULL || dot == host)
            return false;
        size_t rest = hn - (size_t)(dot - host) - 1;
        return rest == pn - 2 && rest > 0 && strncasecmp(dot + 1, pattern + 2, rest) == 0;
    }
    return pn == hn && pn > 0 && strncasecmp(pattern, host, hn) == 0;
}

static int check_params(const struct smtp_client_params *p, bool *utf8, char *err, size_t errlen)
{
    const char *why = NULL;
    if (p->addr == NULL || (p->addr->sa_family != AF_INET && p->addr->sa_family != AF_INET6) ||
        p->addrlen > sizeof(struct sockaddr_storage))
        why = "destination must be an IPv4 or IPv6 address";
    else if (p->mx_host == NULL || !valid_host(p->mx_host))
        why = "invalid MX host name";
    else if (p->helo_name == NULL || !valid_helo(p->helo_name))
        why = "invalid EHLO name";
    else if (p->tls != SMTP_TLS_NONE && p->tls_ctx == NULL)
        why = "TLS policy without a TLS context";
    else if (p->tls == SMTP_TLS_DANE && p->tlsa_base != NULL && !valid_host(p->tlsa_base))
        why = "invalid TLSA base domain";
    else if (p->n_tlsa > 0 && p->tlsa == NULL)
        why = "TLSA records missing";
    else if (p->n_sts_mx > 0 && p->sts_mx == NULL)
        why = "MTA-STS patterns missing";
    else if (p->mail_from == NULL || !valid_address(p->mail_from, true, utf8))
        why = "invalid sender address";
    else if (p->rcpts == NULL || p->n_rcpts == 0 || p->n_rcpts > SMTP_CLIENT_RCPTS_MAX)
        why = "between 1 and 1000 recipients are needed";
    else if (p->msg_fd < 0)
        why = "no message";
    for (size_t i = 0; why == NULL && i < p->n_rcpts; i++)
        if (p->rcpts[i] == NULL || !valid_address(p->rcpts[i], false, utf8))
            why = "invalid recipient address";
    for (size_t i = 0; why == NULL && i < p->n_tlsa; i++)
        if (p->tlsa[i].data == NULL && p->tlsa[i].len > 0)
            why = "TLSA record without data";
    if (why != NULL) {
        snprintf(err, errlen, "smtp client: %s", why);
        return -1;
    }
    return 0;
}

static void copy_params(struct smtp_client *c, const struct smtp_client_params *p)
{
    memcpy(&c->addr, p->addr, p->addrlen);
    c->addrlen = p->addrlen;
    c->mx_host = host_copy(p->mx_host);
    c->tlsa_base = host_copy(p->tlsa_base ? p->tlsa_base : p->mx_host);
    c->helo_name = sm_strdup(p->helo_name);
    c->mail_from = sm_strdup(p->mail_from);
    c->n_rcpts = p->n_rcpts;
    c->rcpts = sm_calloc(p->n_rcpts, sizeof *c->rcpts);
    for (size_t i = 0; i < p->n_rcpts; i++)
        c->rcpts[i] = sm_strdup(p->rcpts[i]);
    c->n_tlsa = p->n_tlsa;
    c->tlsa = sm_calloc(p->n_tlsa ? p->n_tlsa : 1, sizeof *c->tlsa);
    for (size_t i = 0; i < p->n_tlsa; i++) {
        c->tlsa[i] = p->tlsa[i];
        unsigned char *d = sm_malloc(p->tlsa[i].len ? p->tlsa[i].len : 1);
        if (p->tlsa[i].len)
            memcpy(d, p->tlsa[i].data, p->tlsa[i].len);
        c->tlsa[i].data = d;
    }
    c->policy = p->tls;
    c->tls_ctx = p->tls_ctx;
    c->msg_fd = p->msg_fd;
    c->body_8bit = p->body_8bit;
    c->log_id = p->log_id;
    const struct smtp_client_timeouts *t = &p->timeouts;
    c->to.connect_ms = pick(t->connect_ms, 30 * 1000);
    c->to.greeting_ms = pick(t->greeting_ms, 300 * 1000);
    c->to.helo_ms = pick(t->helo_ms, 300 * 1000);
    c->to.starttls_ms = pick(t->starttls_ms, 300 * 1000);
    c->to.mail_ms = pick(t->mail_ms, 300 * 1000);
    c->to.rcpt_ms = pick(t->rcpt_ms, 300 * 1000);
    c->to.data_init_ms = pick(t->data_init_ms, 120 * 1000);
    c->to.data_block_ms = pick(t->data_block_ms, 180 * 1000);
    c->to.data_end_ms = pick(t->data_end_ms, 600 * 1000);
    c->to.quit_ms = pick(t->quit_ms, 60 * 1000);
}

/* MTA-STS: the MX host must be one the policy names (RFC 8461 §4.1). */
static bool sts_allows(const struct smtp_client_params *p)
{
    if (p->tls != SMTP_TLS_VERIFY_NAME || p->n_sts_mx == 0)
        return true;
    for (size_t i = 0; i < p->n_sts_mx; i++)
        if (p->sts_mx[i] != NULL && smtp_sts_mx_match(p->sts_mx[i], p->mx_host))
            return true;
    return false;
}

static void first_step_cb(evutil_socket_t fd, short what, void *arg);

struct smtp_client *smtp_client_start(struct event_base *base, const struct smtp_client_params *p,
                                      smtp_client_done_cb *cb, void *arg, char *err,
                                      size_t errlen)
{
    bool utf8 = false;
    if (base == NULL || cb == NULL || p == NULL) {
        snprintf(err, errlen, "smtp client: missing event base, callback or parameters");
        return NULL;
    }
    if (check_params(p, &utf8, err, errlen) < 0)
        return NULL;
    struct stat st;
    if (fstat(p->msg_fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "smtp client: the message must be a regular file");
        return NULL;
    }
    struct smtp_client *c = sm_malloc(sizeof *c);
    c->base = base;
    c->cb = cb;
    c->arg = arg;
    c->fd = -1;
    copy_params(c, p);
    c->smtputf8 = p->smtputf8 || utf8;
    c->msg_size = (uint64_t)st.st_size;
    c->rcpt_ok = sm_calloc(c->n_rcpts, sizeof *c->rcpt_ok);
    c->res.rcpts = sm_calloc(c->n_rcpts, sizeof *c->res.rcpts);
    c->res.n_rcpts = c->n_rcpts;
    c->res.dane_depth = -1;
    c->timer = evtimer_new(base, timer_cb, c);
    c->ev_tls = event_new(base, -1, 0, tls_start_cb, c);
    c->ev_done = event_new(base, -1, 0, done_cb, c);
    linereader_init(&c->lr, SMTP_REPLY_LINE_MAX);
    smtp_reply_init(&c->rp);
    c->stage = SMTP_STAGE_CONNECT;
    /* everything else, failures included, happens from the loop */
    c->ev_connect = event_new(base, -1, 0, first_step_cb, c);
    c->sts_mismatch = !sts_allows(p);
    event_active(c->ev_connect, EV_TIMEOUT, 0);
    return c;
}

static void first_step_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct smtp_client *c = arg;
    event_free(c->ev_connect);
    c->ev_connect = NULL;
    if (c->sts_mismatch) {
        abort_session(c, SMTP_TEMPFAIL, "4.7.5",
                      "the MX host does not match the MTA-STS policy's mx patterns");
        return;
    }
    start_connect(c);
}

void smtp_client_free(struct smtp_client **cp)
{
    struct smtp_client *c = cp ? *cp : NULL;
    if (c == NULL)
        return;
    close_connection(c);
    if (c->ev_connect)
        event_free(c->ev_connect);
    event_free(c->timer);
    event_free(c->ev_tls);
    event_free(c->ev_done);
    for (size_t i = 0; i < c->n_rcpts; i++)
        free(c->rcpts[i]);
    free(c->rcpts);
    for (size_t i = 0; i < c->n_tlsa; i++)
        free((void *)(uintptr_t)c->tlsa[i].data);
    free(c->tlsa);
    free(c->mx_host);
    free(c->tlsa_base);
    free(c->helo_name);
    free(c->mail_from);
    free(c->rcpt_ok);
    free(c->res.rcpts);
    free(c);
    *cp = NULL;
}
