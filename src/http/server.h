/* server.h — the HTTP and HTTPS front of httpd (libevent's evhttp).
 *
 * WHY EVHTTP.  It runs on the same event loop and OpenSSL configuration as
 * SMTP and IMAP (engineering notes §6); Debian's libevent 2.1.12 carries
 * the recent fixes to its request parser.  What it lacks is added here:
 *   - a connection cap: every connection is registered as it is accepted
 *     (evhttp's bufferevent callback, then a deferred look-up of the
 *     connection from its bufferevent) and counted until its close
 *     callback; at the cap the listeners pause and new clients wait in
 *     the kernel's backlog;
 *   - security headers on every response (http_server_reply() and the
 *     error replies add them; nothing else sends);
 *   - HTTP -> HTTPS redirects when a certificate is configured;
 *   - requests are bounded: header block and body sizes, and the time to
 *     send a request or stay idle (evhttp's timeout);
 *   - an owner per connection (struct http_conn) whose id lets work done
 *     on other threads find out whether the client is still there.
 *
 * Handlers run on the loop thread.  A handler either replies at once or
 * holds the request while work runs elsewhere, then replies with the
 * connection's id checked (http_conn_find()).  Streams (server-sent
 * events) keep the request open; the owner learns of the close through
 * the stream callback of struct http_conn. */
#ifndef SM_HTTP_SERVER_H
#define SM_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct evhttp_request;
struct evhttp_connection;
struct evbuffer;
struct tls_server;

#define HTTP_MAX_HEADERS 16384   /* bytes of a request's header block */
#define HTTP_MAX_BODY 65536      /* bytes of a request body (the API takes small JSON) */

struct http_server;

/* One client connection. */
struct http_conn {
    struct http_conn *prev, *next;
    struct http_server *srv;
    struct evhttp_connection *evcon;
    uint64_t id;                 /* never reused; 0 is never an id */
    bool tls;
    struct sockaddr_storage peer;
    /* set by an owner that holds a request without having replied (work
     * in progress, a stream): called once when the connection closes.  If
     * the request was cut loose (evhttp_request_get_connection() is NULL:
     * the client left), it is the owner's to free (http_request_release());
     * otherwise evhttp frees it with the connection and the owner must
     * forget it. */
    void (*closed)(void *arg);
    void *closed_arg;
};

/* The application behind the server: called for each complete request.
 * conn is the request's connection (its id outlives it). */
typedef void http_handler_fn(void *arg, struct evhttp_request *req, struct http_conn *conn);

struct http_server_params {
    struct event_base *base;
    struct tls_server *tls;      /* NULL: HTTPS listeners are not served */
    unsigned max_connections;
    unsigned timeout;            /* seconds */
    bool redirect_http;          /* with tls: plain HTTP answers 308 to https:// */
    http_handler_fn *handler;
    void *handler_arg;
};

struct http_server *http_server_new(const struct http_server_params *p);
/* Serve the listening sockets fds[0..n) (plain or TLS). */
int http_server_listen(struct http_server *s, const int *fds, size_t n, bool tls);
/* Stop accepting (shutdown). */
void http_server_pause(struct http_server *s);
/* Close every connection and free; sets *s to NULL, accepts NULL. */
void http_server_free(struct http_server **s);

size_t http_server_connections(const struct http_server *s);

/* The live connection with this id, or NULL (it closed). */
struct http_conn *http_conn_find(struct http_server *s, uint64_t id);

/* For the closed callback: free req if the client's departure left it to
 * us (see struct http_conn).  Always forget req afterwards. */
void http_request_release(struct evhttp_request *req);

/* Reply with status, content type and body (may be NULL), adding the
 * security headers; cache: false sends Cache-Control: no-store. */
void http_reply(struct evhttp_request *req, const struct http_conn *conn, int status,
                const char *content_type, struct evbuffer *body, bool cache);
/* Add the security headers to req's output headers (for streams, which
 * start their reply themselves). */
void http_add_security_headers(struct evhttp_request *req, const struct http_conn *conn);
/* A JSON error: {"error":{"code":code,"message":message}}. */
void http_reply_error(struct evhttp_request *req, const struct http_conn *conn, int status,
                      const char *code, const char *message);

#endif
