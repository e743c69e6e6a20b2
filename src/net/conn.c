/* conn.c — bufferevent-based connections with TLS (see conn.h).
 *
 * Design notes (../shared/notes/engineering-notes.md §6):
 *  - STARTTLS wraps the plain bufferevent in an OpenSSL filter; from then
 *    on only the filter is used and freed (BEV_OPT_CLOSE_ON_FREE frees the
 *    plain one and the SSL object).
 *  - The clear-text 220 reply must reach the peer before the filter takes
 *    over: conn_starttls() therefore waits until the plain output drained
 *    (a write callback), then wraps.
 *  - Reading pauses at in_max bytes of input (high-water mark): a peer
 *    cannot make a session buffer unbounded input.
 *  - OpenSSL's error queue is cleared after every TLS error so one
 *    connection's failure never shows up in another's. */
#include "net/conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"

#define OUT_LOW_WATER (64 * 1024)
#define CLOSE_FLUSH_TIMEOUT 30 /* seconds */

struct conn {
    struct event_base *base;
    struct bufferevent *bev;
    SSL *ssl;
    SSL *pending_ssl;      /* STARTTLS waiting for the clear output to drain */
    struct event *kick;    /* deferred CONN_DATAIN after conn_resume() */
    struct sockaddr_storage peer;
    size_t in_max;
    unsigned timeout;
    bool closing;
    bool paused;
    conn_cb *cb;
    void *arg;
};

static void conn_setup_bev(struct conn *c);
static void conn_kick_cb(evutil_socket_t fd, short what, void *arg);

/* Closing: report CONN_CLOSED once every byte left, through the TLS
 * filter and the socket bufferevent under it; the socket layer has no
 * callback of ours, so poll it briefly (bounded by the flush timeout). */
static void conn_check_flushed(struct conn *c)
{
    if (conn_output_pending(c) == 0) {
        c->cb(c, CONN_CLOSED, c->arg);
        return;
    }
    struct timeval soon = {0, 5000};
    event_add(c->kick, &soon);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    if (!c->closing)
        c->cb(c, CONN_DATAIN, c->arg);
}

static void conn_wrap_tls(struct conn *c)
{
    SSL *ssl = c->pending_ssl;
    c->pending_ssl = NULL;
    /* the filter reads through the plain bufferevent: enable it again right
     * before the filter replaces its callbacks, with no loop turn between */
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    struct bufferevent *tls = bufferevent_openssl_filter_new(
        c->base, c->bev, ssl, BUFFEREVENT_SSL_ACCEPTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (tls == NULL) {
        SSL_free(ssl);
        c->cb(c, CONN_ERROR, c->arg);
        return;
    }
    c->bev = tls;
    c->ssl = ssl;
    conn_setup_bev(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->pending_ssl != NULL) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            conn_wrap_tls(c);
        return;
    }
    if (c->closing) {
        conn_check_flushed(c);
        return;
    }
    c->cb(c, CONN_DRAINED, c->arg);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        c->cb(c, CONN_TLSREADY, c->arg);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        c->cb(c, c->closing ? CONN_CLOSED : CONN_TIMEOUT, c->arg);
        return;
    }
    if (what & BEV_EVENT_ERROR) {
        unsigned long e;
        while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
            log_debug("conn tls-error=\"%s\"", ERR_reason_error_string(e));
        ERR_clear_error();
        c->cb(c, c->closing ? CONN_CLOSED : CONN_ERROR, c->arg);
        return;
    }
    if (what & BEV_EVENT_EOF)
        c->cb(c, CONN_CLOSED, c->arg);
}

static void conn_setup_bev(struct conn *c)
{
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, c->in_max);
    bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW_WATER, 0);
    conn_set_timeout(c, c->timeout);
    if (!c->paused)
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void conn_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    if (c->closing) {
        conn_check_flushed(c);
        return;
    }
    if (!c->paused && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        c->cb(c, CONN_DATAIN, c->arg);
}

struct conn *conn_new(struct event_base *base, int fd, SSL *ssl, size_t in_max, conn_cb *cb,
                      void *arg)
{
    struct conn *c = sm_malloc(sizeof *c);
    socklen_t len = sizeof c->peer;
    if (getpeername(fd, (struct sockaddr *)&c->peer, &len) < 0)
        c->peer.ss_family = AF_UNSPEC;
    c->base = base;
    c->in_max = in_max;
    c->cb = cb;
    c->arg = arg;
    c->ssl = ssl;
    if (ssl != NULL)
        c->bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    else
        c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (c->bev == NULL)
        sm_panic("bufferevent_socket_new failed");
    c->kick = event_new(base, -1, 0, conn_kick_cb, c);
    conn_setup_bev(c);
    return c;
}

void conn_free(struct conn **cp)
{
    struct conn *c = *cp;
    if (c == NULL)
        return;
    if (c->pending_ssl != NULL)
        SSL_free(c->pending_ssl);
    if (c->kick != NULL)
        event_free(c->kick);
    bufferevent_free(c->bev);
    ERR_clear_error();
    free(c);
    *cp = NULL;
}

struct evbuffer *conn_input(struct conn *c)
{
    return bufferevent_get_input(c->bev);
}

struct evbuffer *conn_output(struct conn *c)
{
    return bufferevent_get_output(c->bev);
}

size_t conn_output_pending(struct conn *c)
{
    size_t n = evbuffer_get_length(bufferevent_get_output(c->bev));
    struct bufferevent *under = bufferevent_get_underlying(c->bev);
    if (under != NULL)
        n += evbuffer_get_length(bufferevent_get_output(under));
    return n;
}

void conn_set_timeout(struct conn *c, unsigned seconds)
{
    c->timeout = seconds;
    struct timeval tv = {seconds, 0};
    bufferevent_set_timeouts(c->bev, seconds ? &tv : NULL, seconds ? &tv : NULL);
}

void conn_pause(struct conn *c)
{
    c->paused = true;
    bufferevent_disable(c->bev, EV_READ);
}

void conn_resume(struct conn *c)
{
    if (c->closing)
        return;
    c->paused = false;
    bufferevent_enable(c->bev, EV_READ);
    event_active(c->kick, EV_TIMEOUT, 0);
}

int conn_starttls(struct conn *c, SSL *ssl)
{
    if (c->ssl != NULL || c->pending_ssl != NULL) {
        SSL_free(ssl);
        return -1;
    }
    evbuffer_drain(conn_input(c), evbuffer_get_length(conn_input(c)));
    /* the ClientHello must stay in the socket until the filter exists:
     * bytes read into the plain buffer now would never reach OpenSSL */
    bufferevent_disable(c->bev, EV_READ);
    c->pending_ssl = ssl;
    if (conn_output_pending(c) == 0)
        conn_wrap_tls(c);
    /* else conn_write_cb wraps once the 220 reply is out */
    return 0;
}

void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    bufferevent_disable(c->bev, EV_READ);
    /* a peer that stops reading must not hold the connection open */
    struct timeval flush = {CLOSE_FLUSH_TIMEOUT, 0};
    bufferevent_set_timeouts(c->bev, NULL, &flush);
    if (conn_output_pending(c) == 0)
        event_active(c->kick, EV_TIMEOUT, 0); /* CONN_CLOSED from the loop, never re-entrant */
}

SSL *conn_ssl(struct conn *c)
{
    return c->ssl;
}

const struct sockaddr *conn_peer(struct conn *c)
{
    return (const struct sockaddr *)&c->peer;
}
