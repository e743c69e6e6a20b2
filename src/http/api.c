/* api.c — the loop side of the web application: routing, jobs handed to
 * the worker pool and their replies, live streams, the sweeper (api.h). */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/workpool.h"
#include "crypto/seal.h"
#include "http/api-internal.h"
#include "http/assets.h"
#include "store/dirpool.h"
#include "store/inbox.h"

#define HEARTBEAT_SECONDS 15
#define RATELIMIT_SLOTS 65536
#define SWEEP_BATCH 256

/* A live event stream of one inbox. */
struct api_stream {
    struct api_stream *prev, *next;
    struct api *api;
    struct evhttp_request *req;
    uint64_t conn_id;
    char *token; /* secret memory, kept while the stream is open */
    char mailbox[DIRECTORY_MAILBOX_ID_LEN + 1];
    int64_t expires;
    uint32_t last_uid;
    bool dead;    /* the client went away: the request is gone */
    bool polling; /* a poll job is running */
    bool dirty;   /* news arrived while it ran: poll again */
};

static int64_t now_unix(void)
{
    return (int64_t)time(NULL);
}

/* ---- streams ------------------------------------------------------------- */

static void stream_free(struct api_stream *s)
{
    struct api *a = s->api;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        a->streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    a->n_streams--;
    seal_secret_free(&s->token);
    free(s);
}

/* The connection closed: the request is gone; free unless a job holds it. */
static void stream_closed(void *arg)
{
    struct api_stream *s = arg;
    s->dead = true;
    http_request_release(s->req);
    s->req = NULL;
    if (!s->polling)
        stream_free(s);
}

/* End the stream with an event (the reply completes; the client may
 * reconnect, and learns then that the inbox is gone). */
static void stream_end(struct api_stream *s, const char *event)
{
    if (s->dead)
        return;
    struct http_conn *c = http_conn_find(s->api->srv, s->conn_id);
    if (c != NULL) {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "event: %s\ndata: {}\n\n", event);
        evhttp_send_reply_chunk(s->req, b);
        evbuffer_free(b);
        c->closed = NULL;
        evhttp_send_reply_end(s->req);
    }
    s->dead = true;
    s->req = NULL;
    if (!s->polling)
        stream_free(s);
}

static void submit(struct api *a, struct api_job *j);

static void stream_poll(struct api_stream *s)
{
    if (s->dead)
        return;
    if (s->polling) {
        s->dirty = true;
        return;
    }
    struct api_job *j = sm_calloc(1, sizeof *j);
    j->api = s->api;
    j->op = OP_STREAM_POLL;
    j->stream = s;
    j->conn_id = s->conn_id;
    j->token = seal_secret_alloc(INBOX_TOKEN_TEXT_LEN + 1);
    memcpy(j->token, s->token, INBOX_TOKEN_TEXT_LEN + 1);
    j->last_uid = s->last_uid;
    s->polling = true;
    s->dirty = false;
    submit(s->api, j);
}

void api_mailbox_changed(struct api *a, const char *mailbox)
{
    for (struct api_stream *s = a->streams; s != NULL; s = s->next)
        if (strcmp(s->mailbox, mailbox) == 0)
            stream_poll(s);
}

/* Every few seconds: a comment line on each stream (keeps proxies and
 * NATs from dropping it), and the end of the streams whose inbox expired. */
static void heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct api *a = arg;
    int64_t now = now_unix();
    struct api_stream *next;
    for (struct api_stream *s = a->streams; s != NULL; s = next) {
        next = s->next;
        if (s->dead)
            continue;
        if (now >= s->expires) {
            stream_end(s, "expired");
            continue;
        }
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, ": keep-alive\n\n");
        evhttp_send_reply_chunk(s->req, b);
        evbuffer_free(b);
    }
}

void api_close_streams(struct api *a)
{
    struct api_stream *next;
    for (struct api_stream *s = a->streams; s != NULL; s = next) {
        next = s->next;
        stream_end(s, "shutdown");
    }
}

/* A stream's job came back (loop thread). */
static void stream_job_done(struct api_job *j)
{
    struct api_stream *s = j->stream;
    s->polling = false;
    if (s->dead) {
        stream_free(s);
        return;
    }
    if (j->status == 401) { /* expired or deleted meanwhile */
        stream_end(s, "expired");
        return;
    }
    if (j->status == 200 && evbuffer_get_length(j->body) > 0)
        evhttp_send_reply_chunk(s->req, j->body);
    s->last_uid = j->last_uid;
    if (s->dirty)
        stream_poll(s);
}

/* The opening job of a stream came back: start the event stream. */
static void stream_start(struct api *a, struct api_job *j, struct http_conn *c)
{
    struct evhttp_request *req = j->req;
    if (a->n_streams >= a->max_streams) {
        http_reply_error(req, c, 503, "too_many_streams", "too many live streams; try later");
        return;
    }
    struct api_stream *s = sm_calloc(1, sizeof *s);
    s->api = a;
    s->req = req;
    s->conn_id = c->id;
    s->token = j->token; /* the stream keeps the job's copy */
    j->token = NULL;
    snprintf(s->mailbox, sizeof s->mailbox, "%s", j->mailbox);
    s->expires = j->expires;
    s->last_uid = j->last_uid;
    s->next = a->streams;
    if (a->streams != NULL)
        a->streams->prev = s;
    a->streams = s;
    a->n_streams++;
    c->closed = stream_closed;
    c->closed_arg = s;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    http_add_security_headers(req, c);
    evhttp_add_header(h, "Content-Type", "text/event-stream; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    evhttp_send_reply_start(req, 200, "OK");
    evhttp_send_reply_chunk(req, j->body);
}

/* Streams of an inbox learn its new expiry, or that it is gone. */
static void streams_update(struct api *a, const char *mailbox, int64_t expires, bool gone)
{
    struct api_stream *next;
    for (struct api_stream *s = a->streams; s != NULL; s = next) {
        next = s->next;
        if (strcmp(s->mailbox, mailbox) != 0)
            continue;
        if (gone)
            stream_end(s, "expired");
        else
            s->expires = expires;
    }
}

/* ---- jobs ------------------------------------------------------------------ */

static void job_free(struct api_job *j)
{
    seal_secret_free(&j->token);
    if (j->body != NULL)
        evbuffer_free(j->body);
    free(j->swept);
    free(j);
}

static void reply_job(struct api_job *j, struct http_conn *c)
{
    struct evhttp_request *req = j->req;
    if (j->code != NULL) {
        if (j->status == 401)
            evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                              "Bearer realm=\"sealmail\"");
        http_reply_error(req, c, j->status, j->code, j->message);
        return;
    }
    if (j->disposition[0] != '\0')
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Disposition",
                          j->disposition);
    http_reply(req, c, j->status, j->content_type, j->status == 204 ? NULL : j->body, false);
}

/* The client left while its job ran. */
static void job_orphaned(void *arg)
{
    struct api_job *j = arg;
    http_request_release(j->req);
    j->req = NULL;
}

static void job_done(void *arg)
{
    struct api_job *j = arg;
    struct api *a = j->api;
    if (j->op == OP_SWEEP) {
        a->sweeping = false;
        for (size_t i = 0; i < j->n_swept; i++)
            streams_update(a, j->swept[i], 0, true);
        job_free(j);
        return;
    }
    if (j->op == OP_STREAM_POLL) {
        stream_job_done(j);
        job_free(j);
        return;
    }
    if (j->code == NULL && j->op == OP_EXTEND)
        streams_update(a, j->mailbox, j->expires, false);
    if (j->code == NULL && j->op == OP_DELETE_INBOX)
        streams_update(a, j->mailbox, 0, true);
    struct http_conn *c = j->req != NULL ? http_conn_find(a->srv, j->conn_id) : NULL;
    if (c != NULL) { /* else the client left and its request is gone */
        c->closed = NULL;
        if (j->op == OP_STREAM_OPEN && j->code == NULL)
            stream_start(a, j, c);
        else
            reply_job(j, c);
    }
    job_free(j);
}

static void submit(struct api *a, struct api_job *j)
{
    j->now = now_unix();
    j->body = evbuffer_new();
    if (j->req != NULL) { /* learn if the client leaves meanwhile */
        struct http_conn *c = http_conn_find(a->srv, j->conn_id);
        if (c != NULL) {
            c->closed = job_orphaned;
            c->closed_arg = j;
        }
    }
    workpool_submit(a->wp, api_work, job_done, j);
}

static struct api_job *job_new(struct api *a, enum api_op op, struct evhttp_request *req,
                               const struct http_conn *c, const char *token)
{
    struct api_job *j = sm_calloc(1, sizeof *j);
    j->api = a;
    j->op = op;
    j->req = req;
    j->conn_id = c->id;
    if (token != NULL) {
        j->token = seal_secret_alloc(INBOX_TOKEN_TEXT_LEN + 1);
        memcpy(j->token, token, INBOX_TOKEN_TEXT_LEN);
        j->token[INBOX_TOKEN_TEXT_LEN] = '\0';
    }
    return j;
}

void api_sweep(struct api *a)
{
    if (a->sweeping)
        return;
    a->sweeping = true;
    struct api_job *j = sm_calloc(1, sizeof *j);
    j->api = a;
    j->op = OP_SWEEP;
    submit(a, j);
}

static void sweep_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    api_sweep(arg);
}

/* ---- requests ---------------------------------------------------------------- */

/* The bearer token of req (64 hex digits), or NULL. */
static const char *bearer(struct evhttp_request *req)
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    size_t n = strspn(h, "0123456789abcdefABCDEF");
    return n == INBOX_TOKEN_TEXT_LEN && (h[n] == '\0' || h[n] == ' ') ? h : NULL;
}

static void unauthorized(struct evhttp_request *req, const struct http_conn *c)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                      "Bearer realm=\"sealmail\"");
    http_reply_error(req, c, 401, "unauthorized",
                     "send the inbox's token as \"Authorization: Bearer <token>\"");
}

static void method_not_allowed(struct evhttp_request *req, const struct http_conn *c,
                               const char *allow)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    http_reply_error(req, c, 405, "method_not_allowed", "this method is not allowed here");
}

static bool domain_offered(const struct api *a, const char *domain)
{
    for (size_t i = 0; i < a->n_domains; i++)
        if (strcasecmp(a->domains[i], domain) == 0)
            return true;
    return false;
}

static void config_reply(struct api *a, struct evhttp_request *req, const struct http_conn *c)
{
    json_t *o = json_object(), *domains = json_array();
    for (size_t i = 0; i < a->n_domains; i++)
        json_array_append_new(domains, json_string(a->domains[i]));
    json_object_set_new(o, "domains", domains);
    json_object_set_new(o, "ttl_seconds", json_integer(a->ttl));
    json_object_set_new(o, "max_ttl_seconds", json_integer(a->max_ttl));
    json_object_set_new(o, "quota_bytes", json_integer((json_int_t)a->quota));
    json_object_set_new(o, "max_message_bytes", json_integer((json_int_t)a->max_message));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, text, strlen(text));
    free(text);
    http_reply(req, c, 200, "application/json", b, false);
    evbuffer_free(b);
}

/* The optional JSON body of a create: {"domain": "...", "local": "..."}. */
static bool create_args(struct api *a, struct evhttp_request *req, const struct http_conn *c,
                        struct api_job *j)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *domain = a->domains[0], *local = NULL;
    json_t *o = NULL;
    if (len > 0) {
        json_error_t err;
        o = json_loadb((const char *)evbuffer_pullup(in, -1), len, JSON_REJECT_DUPLICATES, &err);
        json_t *d = o != NULL ? json_object_get(o, "domain") : NULL;
        json_t *l = o != NULL ? json_object_get(o, "local") : NULL;
        if (o == NULL || !json_is_object(o) || (d != NULL && !json_is_string(d)) ||
            (l != NULL && !json_is_string(l))) {
            json_decref(o);
            http_reply_error(req, c, 400, "bad_request",
                             "the body must be a JSON object with optional strings"
                             " \"domain\" and \"local\"");
            return false;
        }
        if (d != NULL)
            domain = json_string_value(d);
        if (l != NULL && json_string_length(l) > 0)
            local = json_string_value(l);
    }
    bool ok = domain_offered(a, domain);
    if (!ok)
        http_reply_error(req, c, 400, "unknown_domain", "inboxes are not offered on this domain");
    else if (local != NULL && (strlen(local) > DIRECTORY_LOCAL_MAX || strchr(local, '@') != NULL ||
                               strchr(local, '+') != NULL)) {
        http_reply_error(req, c, 400, "invalid_address", "the local part is not acceptable");
        ok = false;
    }
    if (ok) {
        snprintf(j->domain, sizeof j->domain, "%s", domain);
        snprintf(j->local, sizeof j->local, "%s", local != NULL ? local : "");
    }
    json_decref(o);
    return ok;
}

static void create_inbox(struct api *a, struct evhttp_request *req, struct http_conn *c)
{
    unsigned retry;
    if (a->n_domains == 0) {
        http_reply_error(req, c, 503, "no_domains", "this server offers no disposable domains");
        return;
    }
    if (!ratelimit_take(a->create_limit, &c->peer, now_unix(), &retry)) {
        char v[16];
        snprintf(v, sizeof v, "%u", retry);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", v);
        http_reply_error(req, c, 429, "rate_limited", "too many inboxes from your address; wait");
        return;
    }
    struct api_job *j = job_new(a, OP_CREATE, req, c, NULL);
    if (!create_args(a, req, c, j)) {
        job_free(j);
        return;
    }
    submit(a, j);
}

/* Numbers in paths: 1..4294967295, digits only. */
static bool parse_u32(const char *s, size_t len, uint32_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 10 || s[0] == '0')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

struct route {
    enum api_op op;
    uint32_t uid;
    unsigned part;
};

/* /api/v1/inbox/messages/N[/raw | /parts/M]: 1 matched, 0 not. */
static int message_route(const char *rest, enum evhttp_cmd_type m, struct route *r,
                         const char **allow)
{
    size_t n = strcspn(rest, "/");
    uint32_t part = 0;
    if (!parse_u32(rest, n, &r->uid))
        return 0;
    rest += n;
    if (*rest == '\0') {
        *allow = "GET, DELETE";
        r->op = m == EVHTTP_REQ_DELETE ? OP_DELETE_MESSAGE : OP_GET;
        return m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD || m == EVHTTP_REQ_DELETE ? 1 : -1;
    }
    *allow = "GET";
    if (strcmp(rest, "/raw") == 0)
        r->op = OP_RAW;
    else if (strncmp(rest, "/parts/", 7) == 0 && (strcmp(rest + 7, "0") == 0 ||
                                                  parse_u32(rest + 7, strlen(rest + 7), &part)))
        r->op = OP_PART, r->part = part;
    else
        return 0;
    return m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD ? 1 : -1;
}

/* The inbox routes: 1 matched (r set), 0 unknown path, -1 wrong method. */
static int inbox_route(const char *path, enum evhttp_cmd_type m, struct route *r,
                       const char **allow)
{
    bool get = m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD;
    if (strcmp(path, "/api/v1/inbox") == 0) {
        *allow = "GET, DELETE";
        r->op = m == EVHTTP_REQ_DELETE ? OP_DELETE_INBOX : OP_STATE;
        return get || m == EVHTTP_REQ_DELETE ? 1 : -1;
    }
    if (strcmp(path, "/api/v1/inbox/extend") == 0) {
        *allow = "POST";
        r->op = OP_EXTEND;
        return m == EVHTTP_REQ_POST ? 1 : -1;
    }
    if (strcmp(path, "/api/v1/inbox/events") == 0) {
        *allow = "GET";
        r->op = OP_STREAM_OPEN;
        return m == EVHTTP_REQ_GET ? 1 : -1;
    }
    if (strcmp(path, "/api/v1/inbox/messages") == 0) {
        *allow = "GET";
        r->op = OP_LIST;
        return get ? 1 : -1;
    }
    if (strncmp(path, "/api/v1/inbox/messages/", 23) == 0)
        return message_route(path + 23, m, r, allow);
    return 0;
}

static bool query_flag(const struct evhttp_uri *uri, const char *name)
{
    const char *q = evhttp_uri_get_query(uri);
    struct evkeyvalq params;
    if (q == NULL || evhttp_parse_query_str(q, &params) < 0)
        return false;
    const char *v = evhttp_find_header(&params, name);
    bool on = v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
    evhttp_clear_headers(&params);
    return on;
}

static void api_request(struct api *a, struct evhttp_request *req, struct http_conn *c,
                        const struct evhttp_uri *uri, const char *path)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    struct route r = {0};
    const char *allow = "GET";
    if (strcmp(path, "/api/v1/config") == 0) {
        if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
            config_reply(a, req, c);
        else
            method_not_allowed(req, c, "GET");
        return;
    }
    if (strcmp(path, "/api/v1/inboxes") == 0) {
        if (m == EVHTTP_REQ_POST)
            create_inbox(a, req, c);
        else
            method_not_allowed(req, c, "POST");
        return;
    }
    int found = inbox_route(path, m, &r, &allow);
    if (found == 0) {
        http_reply_error(req, c, 404, "not_found", "no such endpoint");
        return;
    }
    if (found < 0) {
        method_not_allowed(req, c, allow);
        return;
    }
    const char *token = bearer(req);
    if (token == NULL) {
        unauthorized(req, c);
        return;
    }
    struct api_job *j = job_new(a, r.op, req, c, token);
    j->uid = r.uid;
    j->part = r.part;
    j->remote_images = query_flag(uri, "remote_images");
    submit(a, j);
}

static void asset_request(struct evhttp_request *req, struct http_conn *c, const char *path)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    const struct asset *as = assets_find(path);
    if (as == NULL) {
        http_reply_error(req, c, 404, "not_found", "no such page");
        return;
    }
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
        method_not_allowed(req, c, "GET");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_reference(b, as->data, as->len, NULL, NULL);
    http_reply(req, c, 200, as->content_type, b, true);
    evbuffer_free(b);
}

void api_handle(void *arg, struct evhttp_request *req, struct http_conn *c)
{
    struct api *a = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    if (path == NULL || path[0] != '/' || strlen(path) > 512) {
        http_reply_error(req, c, 400, "bad_request", "bad request target");
        return;
    }
    if (strncmp(path, "/api/", 5) == 0)
        api_request(a, req, c, uri, path);
    else
        asset_request(req, c, path);
}

/* ---- life ------------------------------------------------------------------------ */

static void add_domain(void *arg, const char *domain)
{
    struct api *a = arg;
    if (a->n_domains < API_DOMAINS_MAX)
        a->domains[a->n_domains++] = sm_strdup(domain);
}

struct api *api_new(const struct sm_config *cfg, struct event_base *base, struct workpool *wp)
{
    struct api *a = sm_calloc(1, sizeof *a);
    a->data_dir = sm_strdup(cfg->data_dir);
    if (directory_domains_each(cfg->disposable_domains, add_domain, a) == 0 &&
        strspn(cfg->disposable_domains, " ,\t") != strlen(cfg->disposable_domains))
        log_warn("httpd [disposable] domains holds no valid domain name");
    a->ttl = cfg->disposable_ttl;
    a->max_ttl = cfg->disposable_max_ttl;
    a->quota = cfg->disposable_quota;
    a->max_message = cfg->smtp_max_message_size;
    a->max_streams = cfg->web_max_streams;
    a->base = base;
    a->wp = wp;
    a->create_limit = ratelimit_new(cfg->disposable_create_per_hour, 3600, RATELIMIT_SLOTS);
    a->dirs = dirpool_new(a->data_dir, API_DIRS_MAX);
    struct timeval hb = {HEARTBEAT_SECONDS, 0}, sw = {cfg->disposable_sweep_interval, 0};
    a->heartbeat_ev = event_new(base, -1, EV_PERSIST, heartbeat, a);
    event_add(a->heartbeat_ev, &hb);
    a->sweep_ev = event_new(base, -1, EV_PERSIST, sweep_timer, a);
    event_add(a->sweep_ev, &sw);
    return a;
}

void api_set_server(struct api *a, struct http_server *srv)
{
    a->srv = srv;
}

void api_free(struct api **ap)
{
    struct api *a = *ap;
    if (a == NULL)
        return;
    while (a->streams != NULL)
        stream_free(a->streams);
    event_free(a->heartbeat_ev);
    event_free(a->sweep_ev);
    ratelimit_free(&a->create_limit);
    dirpool_free(&a->dirs);
    for (size_t i = 0; i < a->n_domains; i++)
        free(a->domains[i]);
    free(a->data_dir);
    free(a);
    *ap = NULL;
}
