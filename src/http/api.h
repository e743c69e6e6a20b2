/* api.h — the disposable-inbox web application: JSON API /api/v1/, live
 * event streams and the page (docs/api.md describes every endpoint).
 *
 * Requests are routed on the loop thread; everything that touches an
 * inbox (the directory, the encrypted store, MIME, the HTML sanitiser)
 * runs as a job on the worker pool.  A job carries a copy of the bearer
 * token in secret memory, opens the inbox with it, does its one thing,
 * closes the inbox (the keys are wiped) and leaves the reply for the loop,
 * which sends it only if the client is still connected.
 *
 * Live streams (GET /api/v1/inbox/events, text/event-stream) keep the
 * token for as long as they are open: when queued reports new mail for
 * the inbox (api_mailbox_changed(), from IPC_MAILBOX_CHANGED) a job opens
 * it and pushes one "message" event per new message.  A comment line every
 * few seconds keeps proxies from closing the stream; an "expired" event
 * ends it when the inbox's time is up or it was deleted. */
#ifndef SM_HTTP_API_H
#define SM_HTTP_API_H

#include <stddef.h>

#include "http/server.h"

struct sm_config;
struct workpool;
struct api;

struct api *api_new(const struct sm_config *cfg, struct event_base *base, struct workpool *wp);
/* The server whose requests api_handle() answers (for connection look-ups). */
void api_set_server(struct api *a, struct http_server *srv);
/* The request handler (http_handler_fn). */
void api_handle(void *arg, struct evhttp_request *req, struct http_conn *conn);
/* New mail for mailbox (an inbox's id, or a mailbox's: ignored). */
void api_mailbox_changed(struct api *a, const char *mailbox);
/* Shred the expired inboxes now (also runs on a timer). */
void api_sweep(struct api *a);
/* End every stream (shutdown). */
void api_close_streams(struct api *a);
/* The worker pool must have been freed (its jobs finished) before this. */
void api_free(struct api **a);

#endif
