/* server.c — evhttp with a connection cap, TLS and security headers (see
 * server.h).
 *
 * Registration of a connection: evhttp asks bevcb for a bufferevent, then
 * builds its connection around it and sets the bufferevent's callback
 * argument to that connection.  bevcb remembers the bufferevent and
 * activates `adopt_ev`; when the loop runs it (after evhttp finished
 * setting up, before any byte is read) adopt() reads the connection back
 * with bufferevent_getcb() and sets our close callback.  The count goes
 * up in bevcb and down in the close callback, so it never misses one. */
#include "http/server.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "net/tls.h"

#define LISTENERS_MAX 32
#define ADOPT_MAX 64 /* connections accepted in one loop iteration */

static const char csp[] =
    /* the page: our own script and styles only; e-mail is shown in a
     * sandboxed srcdoc frame that inherits this policy and narrows it
     * further with its own (see http/api.c); remote images load only
     * after the reader asked, which the sanitiser enforces */
    "default-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data: https: http:; connect-src 'self'; frame-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct http_front {
    struct http_server *srv;
    struct evhttp *http;
    bool tls;
    struct evconnlistener *listeners[LISTENERS_MAX];
    size_t n_listeners;
};

struct http_server {
    struct http_server_params p;
    struct http_front plain, secure;
    struct http_conn *conns;
    size_t n_conns;
    uint64_t next_id;
    bool paused, stopping;
    unsigned https_port; /* of the first HTTPS listener: where redirects point */
    struct bufferevent *adopt[ADOPT_MAX];
    bool adopt_tls[ADOPT_MAX];
    size_t n_adopt;
    struct event *adopt_ev;
};

static void front_pause(struct http_front *f, bool pause)
{
    for (size_t i = 0; i < f->n_listeners; i++) {
        if (pause)
            evconnlistener_disable(f->listeners[i]);
        else
            evconnlistener_enable(f->listeners[i]);
    }
}

/* At the cap, new clients wait in the backlog until a connection closes. */
static void update_pause(struct http_server *s)
{
    bool full = s->n_conns + s->n_adopt >= s->p.max_connections;
    if (s->stopping || full == s->paused)
        return;
    s->paused = full;
    front_pause(&s->plain, full);
    front_pause(&s->secure, full);
    if (full)
        log_warn("httpd connections=%zu at max_connections: accepting paused", s->n_conns);
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct http_conn *c = arg;
    struct http_server *s = c->srv;
    if (c->closed != NULL)
        c->closed(c->closed_arg);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->n_conns--;
    free(c);
    update_pause(s);
}

static void adopt(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct http_server *s = arg;
    for (size_t i = 0; i < s->n_adopt; i++) {
        bufferevent_data_cb r, w;
        bufferevent_event_cb e;
        void *cbarg = NULL;
        bufferevent_getcb(s->adopt[i], &r, &w, &e, &cbarg);
        if (cbarg == NULL)
            continue;
        struct http_conn *c = sm_calloc(1, sizeof *c);
        c->srv = s;
        c->evcon = cbarg;
        c->id = ++s->next_id;
        c->tls = s->adopt_tls[i];
        socklen_t len = sizeof c->peer;
        evutil_socket_t sock = bufferevent_getfd(s->adopt[i]);
        if (sock < 0 || getpeername(sock, (struct sockaddr *)&c->peer, &len) < 0)
            c->peer.ss_family = AF_UNSPEC;
        /* a TLS reply leaves as several small records: without this, the
         * last waits for the client's delayed ACK (about 40 ms, measured
         * by bench/http) */
        int one = 1;
        if (sock >= 0)
            setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->next = s->conns;
        if (s->conns != NULL)
            s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
        evhttp_connection_set_closecb(c->evcon, conn_closed, c);
    }
    s->n_adopt = 0;
    update_pause(s);
}

static struct bufferevent *new_bev(struct http_front *f)
{
    struct http_server *s = f->srv;
    struct bufferevent *bev;
    if (f->tls) {
        SSL *ssl = tls_server_ssl_new(s->p.tls);
        bev = ssl != NULL ? bufferevent_openssl_socket_new(s->p.base, -1, ssl,
                                                           BUFFEREVENT_SSL_ACCEPTING,
                                                           BEV_OPT_CLOSE_ON_FREE)
                          : NULL;
        if (bev == NULL && ssl != NULL)
            SSL_free(ssl);
    } else {
        bev = bufferevent_socket_new(s->p.base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (bev == NULL)
        fatalx("httpd: cannot create a bufferevent");
    return bev;
}

static struct bufferevent *bevcb(struct event_base *base, void *arg)
{
    (void)base;
    struct http_front *f = arg;
    struct http_server *s = f->srv;
    struct bufferevent *bev = new_bev(f);
    if (s->n_adopt == ADOPT_MAX)
        adopt(-1, 0, s); /* cannot happen with the pause below; stays safe if it does */
    s->adopt[s->n_adopt] = bev;
    s->adopt_tls[s->n_adopt++] = f->tls;
    event_active(s->adopt_ev, EV_TIMEOUT, 0);
    update_pause(s);
    return bev;
}

static struct http_conn *conn_of(struct http_server *s, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    for (struct http_conn *c = s->conns; c != NULL; c = c->next)
        if (c->evcon == evcon)
            return c;
    return NULL;
}

void http_request_release(struct evhttp_request *req)
{
    /* evhttp (2.1) detaches a request the application still holds when its
     * client goes away (EOF or timeout) and frees the connection; such a
     * request is freed only by a reply or by us */
    if (req != NULL && evhttp_request_get_connection(req) == NULL)
        evhttp_request_free(req);
}

struct http_conn *http_conn_find(struct http_server *s, uint64_t id)
{
    for (struct http_conn *c = s->conns; c != NULL; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

void http_add_security_headers(struct evhttp_request *req, const struct http_conn *conn)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Security-Policy", csp);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "X-Frame-Options", "DENY");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    evhttp_add_header(h, "Cross-Origin-Opener-Policy", "same-origin");
    evhttp_add_header(h, "Cross-Origin-Resource-Policy", "same-origin");
    evhttp_add_header(h, "Permissions-Policy", "camera=(), microphone=(), geolocation=()");
    if (conn != NULL && conn->tls)
        evhttp_add_header(h, "Strict-Transport-Security", "max-age=31536000");
}

void http_reply(struct evhttp_request *req, const struct http_conn *conn, int status,
                const char *content_type, struct evbuffer *body, bool cache)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    http_add_security_headers(req, conn);
    if (content_type != NULL)
        evhttp_add_header(h, "Content-Type", content_type);
    evhttp_add_header(h, "Cache-Control", cache ? "public, max-age=300" : "no-store");
    evhttp_send_reply(req, status, NULL, body);
}

/* JSON string escaping for the fixed texts of errors (ASCII, no controls). */
void http_reply_error(struct evhttp_request *req, const struct http_conn *conn, int status,
                      const char *code, const char *message)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "{\"error\":{\"code\":\"%s\",\"message\":\"", code);
    for (const char *p = message; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            evbuffer_add_printf(b, "\\%c", *p);
        else if ((unsigned char)*p >= 0x20)
            evbuffer_add(b, p, 1);
    }
    evbuffer_add(b, "\"}}\n", 4);
    http_reply(req, conn, status, "application/json", b, false);
    evbuffer_free(b);
}

/* Plain HTTP with a certificate configured: everything moves to HTTPS,
 * same host and path (308 keeps the method). */
static bool redirect_to_https(struct http_server *s, struct evhttp_request *req,
                              struct http_conn *c)
{
    if (c == NULL || c->tls || s->p.tls == NULL || !s->p.redirect_http)
        return false;
    const char *host = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
    const char *uri = evhttp_request_get_uri(req);
    if (host == NULL || strlen(host) > 255 || strpbrk(host, "\r\n\"<>\\ /") != NULL || uri == NULL ||
        uri[0] != '/' || strlen(uri) > 2048) {
        http_reply_error(req, c, 400, "bad_request", "a Host header is needed");
        return true;
    }
    /* the host without its port ("[v6]:port" keeps its brackets) */
    const char *end = host[0] == '[' ? strchr(host, ']') : strrchr(host, ':');
    size_t hlen = end == NULL ? strlen(host) : (size_t)(end - host) + (host[0] == '[');
    char location[2400], port[8] = "";
    if (s->https_port != 443)
        snprintf(port, sizeof port, ":%u", s->https_port);
    snprintf(location, sizeof location, "https://%.*s%s%s", (int)hlen, host, port, uri);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location", location);
    http_reply(req, c, 308, NULL, NULL, false);
    return true;
}

static void dispatch(struct evhttp_request *req, void *arg)
{
    struct http_front *f = arg;
    struct http_server *s = f->srv;
    adopt(-1, 0, s); /* a request can arrive in the iteration that accepted it */
    struct http_conn *c = conn_of(s, req);
    if (c == NULL) {
        http_reply_error(req, NULL, 503, "unavailable", "connection not registered");
        return;
    }
    if (redirect_to_https(s, req, c))
        return;
    s->p.handler(s->p.handler_arg, req, c);
}

static void front_init(struct http_server *s, struct http_front *f, bool tls)
{
    f->srv = s;
    f->tls = tls;
    f->http = evhttp_new(s->p.base);
    if (f->http == NULL)
        fatalx("httpd: evhttp_new failed");
    evhttp_set_max_headers_size(f->http, HTTP_MAX_HEADERS);
    evhttp_set_max_body_size(f->http, HTTP_MAX_BODY);
    evhttp_set_timeout(f->http, (int)s->p.timeout);
    /* every method evhttp knows reaches dispatch, which answers the ones a
     * path does not take with a JSON 405 and Allow (evhttp's own has neither) */
    evhttp_set_allowed_methods(f->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_PATCH | EVHTTP_REQ_TRACE |
                                            EVHTTP_REQ_CONNECT);
    evhttp_set_default_content_type(f->http, "text/plain; charset=utf-8");
    evhttp_set_bevcb(f->http, bevcb, f);
    evhttp_set_gencb(f->http, dispatch, f);
}

struct http_server *http_server_new(const struct http_server_params *p)
{
    struct http_server *s = sm_calloc(1, sizeof *s);
    s->p = *p;
    s->adopt_ev = event_new(p->base, -1, 0, adopt, s);
    front_init(s, &s->plain, false);
    front_init(s, &s->secure, true);
    return s;
}

int http_server_listen(struct http_server *s, const int *fds, size_t n, bool tls)
{
    struct http_front *f = tls ? &s->secure : &s->plain;
    for (size_t i = 0; i < n; i++) {
        if (f->n_listeners == LISTENERS_MAX)
            return -1;
        struct evconnlistener *l = evconnlistener_new(s->p.base, NULL, NULL,
                                                      LEV_OPT_CLOSE_ON_FREE, -1, fds[i]);
        if (l == NULL || evhttp_bind_listener(f->http, l) == NULL)
            return -1;
        f->listeners[f->n_listeners++] = l;
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (tls && s->https_port == 0 && getsockname(fds[i], (struct sockaddr *)&ss, &len) == 0)
            s->https_port = ntohs(ss.ss_family == AF_INET6
                                      ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                      : ((struct sockaddr_in *)&ss)->sin_port);
    }
    return 0;
}

void http_server_pause(struct http_server *s)
{
    s->stopping = true;
    front_pause(&s->plain, true);
    front_pause(&s->secure, true);
}

size_t http_server_connections(const struct http_server *s)
{
    return s->n_conns;
}

void http_server_free(struct http_server **sp)
{
    struct http_server *s = *sp;
    if (s == NULL)
        return;
    adopt(-1, 0, s);
    /* evhttp_free closes the connections (each closes through conn_closed)
     * and frees the bound listeners */
    evhttp_free(s->plain.http);
    evhttp_free(s->secure.http);
    event_free(s->adopt_ev);
    free(s);
    *sp = NULL;
}
