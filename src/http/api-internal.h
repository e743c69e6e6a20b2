/* api-internal.h — what the loop side (api.c) and the worker side
 * (api-work.c) of the web application share.  Private to src/http. */
#ifndef SM_HTTP_API_INTERNAL_H
#define SM_HTTP_API_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "http/api.h"
#include "http/ratelimit.h"
#include "store/directory.h"

#define API_DOMAINS_MAX 32
#define API_DIRS_MAX 8
#define API_TEXT_MAX (2u * 1024 * 1024) /* bytes of a text or HTML body shown */

enum api_op {
    OP_CREATE,
    OP_STATE,
    OP_LIST,
    OP_GET,
    OP_RAW,
    OP_PART,
    OP_DELETE_MESSAGE,
    OP_EXTEND,
    OP_DELETE_INBOX,
    OP_STREAM_OPEN,
    OP_STREAM_POLL,
    OP_SWEEP,
};

struct api_stream;

struct api {
    /* configuration (read-only after api_new, read by workers) */
    char *data_dir;
    char *domains[API_DOMAINS_MAX];
    size_t n_domains;
    int64_t ttl, max_ttl;
    uint64_t quota, max_message; /* max_message: [smtp] max_message_size */
    unsigned max_streams;
    /* loop side */
    struct event_base *base;
    struct workpool *wp;
    struct http_server *srv;
    struct ratelimit *create_limit;
    struct api_stream *streams;
    size_t n_streams;
    struct event *heartbeat_ev, *sweep_ev;
    bool sweeping;
    struct dirpool *dirs; /* directory handles for the workers */
};

/* One piece of work on an inbox, and its result. */
struct api_job {
    struct api *api;
    enum api_op op;
    uint64_t conn_id;
    struct evhttp_request *req;
    struct api_stream *stream;
    char *token; /* secret memory, INBOX_TOKEN_TEXT_LEN + 1 */
    uint32_t uid;
    unsigned part;
    bool remote_images;
    char domain[DIRECTORY_DOMAIN_MAX + 1];
    char local[DIRECTORY_LOCAL_MAX + 1];
    int64_t now;
    /* result */
    int status;
    const char *code;        /* error code, NULL on success */
    char message[192];       /* error message */
    const char *content_type;
    char disposition[640];   /* Content-Disposition, "" for none */
    struct evbuffer *body;
    char mailbox[DIRECTORY_MAILBOX_ID_LEN + 1]; /* the inbox touched */
    int64_t expires;
    uint32_t last_uid;       /* streams: the highest UID announced */
    char (*swept)[DIRECTORY_MAILBOX_ID_LEN + 1]; /* sweeps: the inboxes removed */
    size_t n_swept;
};

/* Worker thread: do job->op, fill the result fields. */
void api_work(void *arg);

#endif
