/* conn.h — one network connection: a libevent bufferevent, plain or TLS,
 * with STARTTLS, timeouts and bounded buffers.
 *
 * A connection reports to a single callback with one of a few events, so
 * a protocol session is one switch (STYLE.md §8):
 *   CONN_DATAIN   new input is in conn_input();
 *   CONN_DRAINED  the output fell below the low-water mark (resume work
 *                 that paused because the peer was not reading);
 *   CONN_TLSREADY the TLS handshake finished (implicit TLS or STARTTLS);
 *   CONN_TIMEOUT  no input for the configured time;
 *   CONN_CLOSED   the peer closed, or conn_close() finished flushing;
 *   CONN_ERROR    a socket or TLS error.
 * After CONN_CLOSED, CONN_TIMEOUT or CONN_ERROR the owner must free the
 * connection (it gets no further events); it must not free it while
 * handling CONN_DATAIN or CONN_DRAINED (conn_close() is the way out). */
#ifndef SM_CONN_H
#define SM_CONN_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct evbuffer;
struct conn;

enum conn_event { CONN_DATAIN, CONN_DRAINED, CONN_TLSREADY, CONN_TIMEOUT, CONN_CLOSED, CONN_ERROR };

typedef void conn_cb(struct conn *c, enum conn_event ev, void *arg);

/* Wrap an accepted socket (ownership passes to the connection).  With ssl
 * non-NULL the connection starts with a server-side TLS handshake
 * (implicit TLS); the SSL object is owned by the connection.  in_max
 * bounds the input buffered before reading pauses. */
struct conn *conn_new(struct event_base *base, int fd, SSL *ssl, size_t in_max, conn_cb *cb,
                      void *arg);
/* Close the socket (and TLS) at once; accepts NULL, sets *c to NULL. */
void conn_free(struct conn **c);

struct evbuffer *conn_input(struct conn *c);
struct evbuffer *conn_output(struct conn *c);
/* Bytes waiting to be written. */
size_t conn_output_pending(struct conn *c);
/* Idle timeout on reading, in seconds (0: none). */
void conn_set_timeout(struct conn *c, unsigned seconds);
/* Stop and restart reading (while waiting for asynchronous work).  Input
 * already buffered stays buffered: after resuming, the owner must process
 * conn_input() itself; conn_resume() schedules a CONN_DATAIN for that. */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);
/* Start the server side of TLS on a plain connection (STARTTLS).  Pending
 * input must have been drained by the caller (RFC 3207 §4.2); output
 * already queued is flushed in clear first.  CONN_TLSREADY follows. */
int conn_starttls(struct conn *c, SSL *ssl);
/* Flush the output, then close; CONN_CLOSED follows. */
void conn_close(struct conn *c);
/* The TLS object, or NULL for a plain connection. */
SSL *conn_ssl(struct conn *c);

#endif
