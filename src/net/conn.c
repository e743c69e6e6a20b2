/* conn.c — network connections, plain or TLS (see conn.h).
 *
 * Two I/O paths behind one interface:
 *
 *  - Plain connections use their own small engine on raw libevent events:
 *    one recv() per readable event into the input evbuffer, and replies
 *    written with one writev() per loop turn, straight after the session
 *    produced them; EV_WRITE is registered only when the socket is full.
 *    A bufferevent costs two epoll_ctl() calls per reply (write interest on
 *    and off) and an ioctl(FIONREAD) per read, which dominated the cost of
 *    an SMTP transaction in the accept benchmark.
 *  - TLS connections (implicit TLS, and after STARTTLS) use libevent's
 *    OpenSSL bufferevent on the socket.  STARTTLS moves the socket from
 *    the plain engine to a TLS bufferevent once the clear-text 220 reply
 *    has left, and only then reads again, so the ClientHello can never be
 *    read into the clear-text buffer.
 *
 * Notes from ../shared/notes/engineering-notes.md §6: SSL_OP_IGNORE_UNEXPECTED_EOF
 * is set on the contexts (net/tls.c) because Debian's libevent 2.1.12
 * predates OpenSSL 3's EOF reporting; OpenSSL's error queue is cleared
 * after every TLS error so one connection's failure never shows in another.
 *
 * Callbacks to the owner are never re-entrant: closing, resuming and
 * flushing are deferred to the loop through events. */
#include "net/conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"

#define OUT_LOW_WATER (64 * 1024)
#define CLOSE_FLUSH_TIMEOUT 30 /* seconds a closing peer gets to read its last reply */
#define READ_CHUNK (64 * 1024)

struct conn {
    struct event_base *base;
    int fd;
    size_t in_max;
    unsigned timeout;
    bool closing, paused, out_high;
    conn_cb *cb;
    void *arg;
    struct event *kick;       /* deferred work: resume, close, start TLS */
    /* plain path */
    struct evbuffer *in, *out;
    struct event *rev, *wev, *timer, *flush;
    bool flush_pending;
    SSL *pending_ssl;         /* STARTTLS waiting for the 220 to leave */
    /* TLS path */
    struct bufferevent *bev;
    SSL *ssl;
};

static void conn_tls_setup(struct conn *c);

/* ---- plain path --------------------------------------------------------- */

static void conn_arm_timer(struct conn *c)
{
    unsigned secs = c->closing ? CLOSE_FLUSH_TIMEOUT : c->timeout;
    if (secs == 0 || (c->paused && !c->closing)) {
        event_del(c->timer);
        return;
    }
    struct timeval tv = {secs, 0};
    event_add(c->timer, &tv);
}

/* Read again unless paused, closing, starting TLS, or the input is full;
 * called after the owner had a chance to consume input. */
static void conn_plain_rearm_read(struct conn *c)
{
    if (!c->paused && !c->closing && c->pending_ssl == NULL &&
        evbuffer_get_length(c->in) < c->in_max && !event_pending(c->rev, EV_READ, NULL))
        event_add(c->rev, NULL);
}

/* Write what the session produced; EV_WRITE only if the socket is full. */
static void conn_plain_flush(struct conn *c)
{
    size_t before = evbuffer_get_length(c->out);
    if (before > 0) {
        int n = evbuffer_write(c->out, c->fd);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            c->cb(c, c->closing ? CONN_CLOSED : CONN_ERROR, c->arg);
            return;
        }
        if (n > 0)
            conn_arm_timer(c);
    }
    if (evbuffer_get_length(c->out) > 0) {
        event_add(c->wev, NULL);
        c->out_high = true; /* the session may have stopped for it: tell it when drained */
        return;
    }
    event_del(c->wev);
    if (c->closing) {
        c->cb(c, CONN_CLOSED, c->arg);
    } else if (c->pending_ssl != NULL) {
        event_active(c->kick, EV_TIMEOUT, 0); /* the 220 is out: start TLS */
    } else if (c->out_high) {
        c->out_high = false;
        c->cb(c, CONN_DRAINED, c->arg);
        conn_plain_rearm_read(c);
    }
}

static void conn_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct conn *c = arg;
    c->flush_pending = false;
    conn_plain_flush(c);
}

/* Output grew: write it once the current callback has returned. */
static void conn_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    struct conn *c = arg;
    if (info->n_added > 0 && !c->flush_pending) {
        c->flush_pending = true;
        event_active(c->flush, EV_WRITE, 0);
    }
}

static void conn_read_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct conn *c = arg;
    struct evbuffer_iovec v;
    if (c->paused) {
        event_del(c->rev); /* the peer did not wait: now stop watching (conn_pause) */
        return;
    }
    if (evbuffer_reserve_space(c->in, READ_CHUNK, &v, 1) < 1)
        sm_panic("evbuffer_reserve_space");
    ssize_t n = recv(fd, v.iov_base, READ_CHUNK, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        c->cb(c, n == 0 ? CONN_CLOSED : CONN_ERROR, c->arg);
        return;
    }
    v.iov_len = (size_t)n;
    evbuffer_commit_space(c->in, &v, 1);
    conn_arm_timer(c);
    if (evbuffer_get_length(c->in) >= c->in_max)
        event_del(c->rev); /* bounded input */
    c->cb(c, CONN_DATAIN, c->arg);
    conn_plain_rearm_read(c); /* the owner never frees the connection during CONN_DATAIN */
}

static void conn_write_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    conn_plain_flush(arg);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct conn *c = arg;
    c->cb(c, c->closing ? CONN_CLOSED : CONN_TIMEOUT, c->arg);
}

static void conn_plain_setup(struct conn *c)
{
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    evbuffer_add_cb(c->out, conn_out_cb, c);
    c->rev = event_new(c->base, c->fd, EV_READ | EV_PERSIST, conn_read_ready, c);
    c->wev = event_new(c->base, c->fd, EV_WRITE | EV_PERSIST, conn_write_ready, c);
    c->timer = evtimer_new(c->base, conn_timer_cb, c);
    c->flush = event_new(c->base, -1, 0, conn_flush_cb, c);
    event_add(c->rev, NULL);
}

static void conn_plain_teardown(struct conn *c)
{
    struct event *evs[] = {c->rev, c->wev, c->timer, c->flush};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i] != NULL)
            event_free(evs[i]);
    c->rev = c->wev = c->timer = c->flush = NULL;
    if (c->in != NULL)
        evbuffer_free(c->in);
    if (c->out != NULL)
        evbuffer_free(c->out);
    c->in = c->out = NULL;
}

/* The clear-text reply to STARTTLS has left: hand the socket to OpenSSL. */
static void conn_start_tls(struct conn *c)
{
    SSL *ssl = c->pending_ssl;
    c->pending_ssl = NULL;
    conn_plain_teardown(c);
    c->ssl = ssl;
    conn_tls_setup(c);
}

/* ---- TLS path ------------------------------------------------------------- */

static void conn_tls_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    if (!c->closing)
        c->cb(c, CONN_DATAIN, c->arg);
}

static void conn_tls_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    if (c->closing) {
        if (conn_output_pending(c) == 0)
            c->cb(c, CONN_CLOSED, c->arg);
        return;
    }
    c->cb(c, CONN_DRAINED, c->arg);
}

static void conn_tls_event(struct bufferevent *bev, short what, void *arg)
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

static void conn_tls_setup(struct conn *c)
{
    c->bev = bufferevent_openssl_socket_new(c->base, c->fd, c->ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (c->bev == NULL)
        sm_panic("bufferevent_openssl_socket_new failed");
    bufferevent_setcb(c->bev, conn_tls_read, conn_tls_write, conn_tls_event, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, c->in_max);
    bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW_WATER, 0);
    conn_set_timeout(c, c->timeout);
    bufferevent_enable(c->bev, c->paused ? EV_WRITE : EV_READ | EV_WRITE);
}

/* ---- common ------------------------------------------------------------------ */

static void conn_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct conn *c = arg;
    if (c->closing && c->pending_ssl != NULL) {
        SSL_free(c->pending_ssl); /* closed before TLS started: never start it */
        c->pending_ssl = NULL;
    }
    if (c->pending_ssl != NULL) {
        conn_start_tls(c);
        return;
    }
    if (c->closing) {
        if (conn_output_pending(c) == 0)
            c->cb(c, CONN_CLOSED, c->arg);
        return;
    }
    if (!c->paused && evbuffer_get_length(conn_input(c)) > 0)
        c->cb(c, CONN_DATAIN, c->arg);
}

struct conn *conn_new(struct event_base *base, int fd, SSL *ssl, size_t in_max, conn_cb *cb,
                      void *arg)
{
    struct conn *c = sm_malloc(sizeof *c);
    c->base = base;
    c->fd = fd;
    c->in_max = in_max;
    c->cb = cb;
    c->arg = arg;
    c->kick = event_new(base, -1, 0, conn_kick_cb, c);
    c->ssl = ssl;
    if (ssl != NULL)
        conn_tls_setup(c);
    else
        conn_plain_setup(c);
    return c;
}

void conn_free(struct conn **cp)
{
    struct conn *c = *cp;
    if (c == NULL)
        return;
    if (c->pending_ssl != NULL)
        SSL_free(c->pending_ssl);
    event_free(c->kick);
    if (c->bev != NULL) {
        bufferevent_free(c->bev); /* frees the SSL object and closes the socket */
    } else {
        conn_plain_teardown(c);
        close(c->fd);
    }
    ERR_clear_error();
    free(c);
    *cp = NULL;
}

struct evbuffer *conn_input(struct conn *c)
{
    return c->bev ? bufferevent_get_input(c->bev) : c->in;
}

struct evbuffer *conn_output(struct conn *c)
{
    return c->bev ? bufferevent_get_output(c->bev) : c->out;
}

size_t conn_output_pending(struct conn *c)
{
    return evbuffer_get_length(conn_output(c));
}

void conn_set_timeout(struct conn *c, unsigned seconds)
{
    c->timeout = seconds;
    if (c->bev == NULL) {
        if (!c->closing)
            conn_arm_timer(c);
        return;
    }
    struct timeval tv = {seconds, 0};
    bufferevent_set_timeouts(c->bev, seconds ? &tv : NULL, seconds ? &tv : NULL);
}

/* A plain connection keeps its read event while paused: a client that
 * waits for our reply (one that does not pipeline, waiting for the 250
 * of a commit) sends nothing meanwhile, and taking the event off and
 * putting it back cost two epoll_ctl() calls per message.  If input does
 * come, conn_read_ready() takes the event off then, and leaves the bytes
 * in the socket. */
void conn_pause(struct conn *c)
{
    c->paused = true;
    if (c->bev != NULL) {
        bufferevent_disable(c->bev, EV_READ);
        return;
    }
    conn_arm_timer(c); /* no idle timeout while we are the ones waiting */
}

void conn_resume(struct conn *c)
{
    if (c->closing)
        return;
    c->paused = false;
    if (c->bev != NULL) {
        bufferevent_enable(c->bev, EV_READ);
    } else if (c->pending_ssl == NULL) {
        event_add(c->rev, NULL); /* no system call when still there (conn_pause) */
        conn_arm_timer(c);
    }
    event_active(c->kick, EV_TIMEOUT, 0); /* process input already buffered */
}

int conn_starttls(struct conn *c, SSL *ssl)
{
    if (c->bev != NULL || c->pending_ssl != NULL) {
        SSL_free(ssl);
        return -1;
    }
    evbuffer_drain(c->in, evbuffer_get_length(c->in));
    /* the ClientHello must stay in the socket until OpenSSL owns it */
    event_del(c->rev);
    c->pending_ssl = ssl;
    if (!c->flush_pending) {
        c->flush_pending = true;
        event_active(c->flush, EV_WRITE, 0);
    }
    return 0;
}

void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->bev != NULL) {
        bufferevent_disable(c->bev, EV_READ);
        struct timeval flush = {CLOSE_FLUSH_TIMEOUT, 0};
        bufferevent_set_timeouts(c->bev, NULL, &flush);
    } else {
        event_del(c->rev);
        conn_arm_timer(c);
    }
    event_active(c->kick, EV_TIMEOUT, 0); /* CONN_CLOSED from the loop once flushed */
}

SSL *conn_ssl(struct conn *c)
{
    return c->ssl;
}
