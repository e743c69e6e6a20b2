/* api-work.c — the worker side of the web application: each job opens
 * the inbox with its token, does one thing, closes it (see api.h). */
#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "crypto/seal.h"
#include "html/sanitize.h"
#include "http/api-internal.h"
#include "mime/view.h"
#include "store/dirpool.h"
#include "store/inbox.h"
#include "store/mailbox.h"

#define CREATE_ATTEMPTS 5

/* ---- results ------------------------------------------------------------- */

static void fail(struct api_job *j, int status, const char *code, const char *message)
{
    j->status = status;
    j->code = code;
    snprintf(j->message, sizeof j->message, "%s", message);
}

static void internal(struct api_job *j, const char *what, const char *error)
{
    log_warn("httpd %s-failed error=\"%s\"", what, error != NULL ? error : "?");
    fail(j, 500, "internal", "the server could not do this now; try again later");
}

/* Take ownership of o and make it the JSON body. */
static void reply_json(struct api_job *j, int status, json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text == NULL) {
        internal(j, "json", "cannot encode");
        return;
    }
    j->status = status;
    j->content_type = "application/json";
    evbuffer_add(j->body, text, strlen(text));
    evbuffer_add(j->body, "\n", 1);
    free(text);
}

static json_t *iso_time(int64_t t)
{
    char s[32];
    struct tm tm;
    time_t tt = (time_t)t;
    if (t <= 0 || gmtime_r(&tt, &tm) == NULL)
        return json_null();
    strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(s);
}

/* A UTF-8 string as JSON (our strings are valid UTF-8; NULL gives null). */
static json_t *str(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* ---- opening ------------------------------------------------------------ */

/* Open the job's inbox: true, or false with the error set. */
static bool open_inbox(struct api_job *j, struct directory *d, struct inbox_open *o)
{
    const char *error = NULL;
    int r = inbox_open(d, j->api->data_dir, j->token, strlen(j->token), j->now, o, &error);
    if (r == INBOX_OK) {
        snprintf(j->mailbox, sizeof j->mailbox, "%s", o->row.mailbox);
        j->expires = o->row.expires;
        return true;
    }
    if (r == INBOX_UNKNOWN)
        fail(j, 401, "unauthorized", "no live inbox opens with this token (it may have expired)");
    else
        internal(j, "inbox-open", error);
    return false;
}

static int64_t max_expires(const struct api *a, const struct directory_inbox *row)
{
    return row->created + a->max_ttl;
}

static json_t *inbox_json(const struct api *a, const struct directory_inbox *row)
{
    json_t *o = json_object();
    json_object_set_new(o, "address", str(row->address));
    json_object_set_new(o, "created", iso_time(row->created));
    json_object_set_new(o, "expires", iso_time(row->expires));
    json_object_set_new(o, "expires_unix", json_integer(row->expires));
    json_object_set_new(o, "max_expires", iso_time(max_expires(a, row)));
    json_object_set_new(o, "quota_bytes", json_integer((json_int_t)row->quota_bytes));
    return o;
}

/* ---- the operations ------------------------------------------------------ */

static void op_create(struct api_job *j, struct directory *d)
{
    struct api *a = j->api;
    struct directory_inbox row;
    char address[DIRECTORY_ADDRESS_MAX + 1], local[INBOX_LOCAL_RANDOM_LEN + 1];
    const char *error = NULL;
    int r = INBOX_TAKEN;
    char *token = seal_secret_alloc(INBOX_TOKEN_TEXT_LEN + 1);
    for (int i = 0; r == INBOX_TAKEN && i < (j->local[0] ? 1 : CREATE_ATTEMPTS); i++) {
        if (!j->local[0])
            inbox_random_local(local);
        snprintf(address, sizeof address, "%s@%s", j->local[0] ? j->local : local, j->domain);
        r = inbox_create(d, a->data_dir, address, j->now + a->ttl, a->quota, token, &row, &error);
    }
    if (r == INBOX_OK) {
        json_t *o = inbox_json(a, &row);
        json_object_set_new(o, "token", json_string(token));
        reply_json(j, 201, o);
        log_info("httpd inbox-created mailbox=%s", row.mailbox);
    } else if (r == INBOX_TAKEN) {
        fail(j, 409, "address_taken", "this address is in use or was used before; choose another");
    } else if (r == INBOX_INVALID) {
        fail(j, 400, "invalid_address", error);
    } else {
        internal(j, "inbox-create", error);
    }
    seal_secret_free(&token);
}

static void op_state(struct api_job *j, struct inbox_open *o)
{
    struct mailbox_folder f;
    const char *error;
    if (mailbox_folder_get(o->mb, "INBOX", &f, &error) <= 0) {
        internal(j, "folder", error);
        return;
    }
    json_t *s = inbox_json(j->api, &o->row);
    json_object_set_new(s, "messages", json_integer((json_int_t)f.messages));
    json_object_set_new(s, "unseen", json_integer((json_int_t)f.unseen));
    json_object_set_new(s, "used_bytes", json_integer((json_int_t)f.bytes));
    reply_json(j, 200, s);
}

static json_t *summary_json(const struct mailbox_message *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(m->uid));
    json_object_set_new(o, "from", str(m->from));
    json_object_set_new(o, "subject", str(m->subject));
    json_object_set_new(o, "date", iso_time(m->date));
    json_object_set_new(o, "received", iso_time(m->internaldate));
    json_object_set_new(o, "size", json_integer((json_int_t)m->size));
    json_object_set_new(o, "seen", json_boolean(m->flags & MAILBOX_SEEN));
    json_object_set_new(o, "junk", json_boolean(strstr(m->keywords, "$Junk") != NULL));
    return o;
}

static void add_summary(void *arg, const struct mailbox_message *m)
{
    json_array_insert_new(arg, 0, summary_json(m)); /* newest first */
}

static void op_list(struct api_job *j, struct inbox_open *o)
{
    const char *error;
    json_t *list = json_array();
    if (mailbox_messages(o->mb, "INBOX", add_summary, list, &error) < 0) {
        json_decref(list);
        internal(j, "list", error);
        return;
    }
    json_t *r = json_object();
    json_object_set_new(r, "messages", list);
    reply_json(j, 200, r);
}

/* The message's body in a memfd (-1 with the error set). */
static int open_message(struct api_job *j, struct inbox_open *o, struct mailbox_message *m)
{
    const char *error = NULL;
    int r = mailbox_message_get(o->mb, "INBOX", j->uid, m, &error);
    if (r == 0) {
        fail(j, 404, "not_found", "no such message");
        return -1;
    }
    int fd = r > 0 ? mailbox_open_body(o->mb, m->file, &error) : -1;
    if (fd < 0)
        internal(j, "message-open", error);
    return fd;
}

/* The sanitised document of the view: its HTML, else its text. */
static void add_document(struct api_job *j, json_t *out, const struct mime_view *v)
{
    struct sm_buf doc;
    struct sm_html_stats stats = {0};
    struct sm_html_options opts = {.allow_remote_images = j->remote_images};
    enum sm_html_status st;
    const char *source = v->html != NULL ? "html" : "text";
    if (v->html != NULL)
        st = sm_html_sanitize(v->html, v->html_len, &opts, &doc, &stats);
    else
        st = sm_html_from_text(v->text != NULL ? v->text : "", v->text_len, &doc);
    if (st == SM_HTML_OK) {
        json_object_set_new(out, "html", json_stringn(doc.data, doc.len));
    } else {
        json_object_set_new(out, "html", json_null());
        json_object_set_new(out, "html_error", json_string(sm_html_strerror(st)));
    }
    sm_buf_free(&doc);
    json_object_set_new(out, "html_source", json_string(source));
    json_object_set_new(out, "remote_images", json_integer(stats.remote_images));
    json_object_set_new(out, "remote_images_allowed", json_boolean(j->remote_images));
}

static json_t *attachments_json(const struct mime_view *v, uint32_t uid)
{
    json_t *list = json_array();
    for (unsigned i = 0; i < v->n_attachments; i++) {
        const struct mime_view_attachment *at = &v->attachments[i];
        json_t *o = json_object();
        char url[96];
        snprintf(url, sizeof url, "/api/v1/inbox/messages/%u/parts/%u", uid, at->part);
        json_object_set_new(o, "part", json_integer(at->part));
        json_object_set_new(o, "filename", str(at->filename));
        json_object_set_new(o, "content_type", str(at->content_type));
        json_object_set_new(o, "content_id", str(at->content_id));
        json_object_set_new(o, "size", json_integer((json_int_t)at->size));
        json_object_set_new(o, "url", json_string(url));
        json_array_append_new(list, o);
    }
    return list;
}

static void op_get(struct api_job *j, struct inbox_open *o)
{
    struct mailbox_message m;
    struct mime_view v;
    const char *error;
    int fd = open_message(j, o, &m);
    if (fd < 0)
        return;
    uint32_t uid = m.uid;
    uint64_t size = m.size;
    int64_t received = m.internaldate;
    bool junk = strstr(m.keywords, "$Junk") != NULL;
    int r = mime_view_fd(fd, API_TEXT_MAX, &v, &error);
    close(fd);
    if (r < 0) {
        internal(j, "view", error);
        return;
    }
    json_t *out = json_object();
    json_object_set_new(out, "id", json_integer(uid));
    json_object_set_new(out, "from", str(v.from));
    json_object_set_new(out, "to", str(v.to));
    json_object_set_new(out, "cc", str(v.cc));
    json_object_set_new(out, "reply_to", str(v.reply_to));
    json_object_set_new(out, "subject", str(v.subject));
    json_object_set_new(out, "date", iso_time(v.date_unix));
    json_object_set_new(out, "received", iso_time(received));
    json_object_set_new(out, "size", json_integer((json_int_t)size));
    json_object_set_new(out, "junk", json_boolean(junk));
    json_object_set_new(out, "text", str(v.text));
    json_object_set_new(out, "text_truncated", json_boolean(v.text_truncated));
    add_document(j, out, &v);
    json_object_set_new(out, "attachments", attachments_json(&v, uid));
    mime_view_free(&v);
    /* reading marks it seen, as a mail client does */
    if (mailbox_store_flags(o->mb, "INBOX", uid, MAILBOX_FLAGS_ADD, MAILBOX_SEEN, NULL, 0, NULL,
                            &error) < 0)
        log_warn("httpd mark-seen-failed error=\"%s\"", error);
    reply_json(j, 200, out);
}

static void op_raw(struct api_job *j, struct inbox_open *o)
{
    struct mailbox_message m;
    int fd = open_message(j, o, &m);
    if (fd < 0)
        return;
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < 0 || evbuffer_add_file(j->body, fd, 0, size) < 0) { /* takes fd */
        internal(j, "raw", "cannot read the message");
        return;
    }
    j->status = 200;
    j->content_type = "message/rfc822";
    snprintf(j->disposition, sizeof j->disposition, "attachment; filename=\"message-%u.eml\"",
             m.uid);
}

/* filename="ascii fallback"; filename*=UTF-8''percent-encoded (RFC 6266). */
static void set_disposition(struct api_job *j, const char *name, unsigned part)
{
    char ascii[MIME_VIEW_FILENAME_MAX + 1], enc[3 * MIME_VIEW_FILENAME_MAX + 1];
    size_t a = 0, e = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL;
        ascii[a++] = plain ? (char)*p : '_';
        e += (size_t)snprintf(enc + e, sizeof enc - e, plain ? "%c" : "%%%02X", *p);
    }
    ascii[a] = '\0';
    if (a == 0)
        snprintf(j->disposition, sizeof j->disposition, "attachment; filename=\"part-%u.bin\"",
                 part);
    else
        snprintf(j->disposition, sizeof j->disposition,
                 "attachment; filename=\"%s\"; filename*=UTF-8''%s", ascii, enc);
}

static void op_part(struct api_job *j, struct inbox_open *o)
{
    struct mailbox_message m;
    struct mime_view_attachment info;
    struct sm_buf b;
    const char *error = NULL;
    int fd = open_message(j, o, &m);
    if (fd < 0)
        return;
    sm_buf_init(&b, 0);
    int r = mime_view_part_fd(fd, j->part, (size_t)m.size + 1024, &b, &info, &error);
    close(fd);
    if (r == 0)
        fail(j, 404, "not_found", "no such part");
    else if (r < 0)
        internal(j, "part", error);
    else {
        evbuffer_add(j->body, b.data != NULL ? b.data : "", b.len);
        j->status = 200;
        /* never the sender's type: a browser must not render it */
        j->content_type = "application/octet-stream";
        set_disposition(j, info.filename, j->part);
        mime_view_attachment_free(&info);
    }
    sm_buf_free(&b);
}

static void op_delete_message(struct api_job *j, struct inbox_open *o, struct directory *d)
{
    struct mailbox_message m;
    const char *error = NULL;
    int r = mailbox_message_get(o->mb, "INBOX", j->uid, &m, &error);
    uint64_t size = r > 0 ? m.size : 0;
    if (r > 0)
        r = mailbox_store_flags(o->mb, "INBOX", j->uid, MAILBOX_FLAGS_ADD, MAILBOX_DELETED, NULL,
                                0, NULL, &error) < 0
                ? -1
                : 1;
    if (r > 0)
        r = mailbox_expunge(o->mb, "INBOX", &j->uid, 1, NULL, NULL, &error);
    if (r == 0 || r == MAILBOX_NONEXISTENT) {
        fail(j, 404, "not_found", "no such message");
        return;
    }
    if (r < 0) {
        internal(j, "delete", error);
        return;
    }
    directory_user_usage(d, o->row.mailbox, -(int64_t)size, false);
    j->status = 204;
}

static void op_extend(struct api_job *j, struct inbox_open *o, struct directory *d)
{
    struct api *a = j->api;
    int64_t limit = max_expires(a, &o->row);
    int64_t want = (o->row.expires > j->now ? o->row.expires : j->now) + a->ttl;
    if (o->row.expires >= limit) {
        fail(j, 409, "max_ttl", "this inbox cannot live longer");
        return;
    }
    o->row.expires = want < limit ? want : limit;
    if (directory_inbox_set_expiry(d, o->row.id, o->row.expires) < 0) {
        internal(j, "extend", directory_error(d));
        return;
    }
    j->expires = o->row.expires;
    reply_json(j, 200, inbox_json(a, &o->row));
}

static void op_delete_inbox(struct api_job *j, struct inbox_open *o, struct directory *d)
{
    struct directory_inbox row = o->row;
    const char *error = NULL;
    inbox_close(o);
    if (inbox_remove(d, j->api->data_dir, &row, &error) < 0) {
        internal(j, "inbox-remove", error);
        return;
    }
    j->status = 204;
}

/* Highest UID so far: where the stream's news start. */
static void op_stream_open(struct api_job *j, struct inbox_open *o)
{
    struct mailbox_folder f;
    const char *error;
    if (mailbox_folder_get(o->mb, "INBOX", &f, &error) <= 0) {
        internal(j, "folder", error);
        return;
    }
    j->last_uid = f.uidnext > 0 ? f.uidnext - 1 : 0;
    json_t *state = inbox_json(j->api, &o->row);
    char *s = json_dumps(state, JSON_COMPACT);
    json_decref(state);
    j->status = 200;
    evbuffer_add_printf(j->body, "event: ready\ndata: %s\n\n", s != NULL ? s : "{}");
    free(s);
}

static void add_event(void *arg, const struct mailbox_message *m)
{
    struct api_job *j = arg;
    json_t *o = summary_json(m);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s != NULL)
        evbuffer_add_printf(j->body, "event: message\ndata: %s\n\n", s);
    free(s);
    if (m->uid > j->last_uid)
        j->last_uid = m->uid;
}

static void op_stream_poll(struct api_job *j, struct inbox_open *o)
{
    const char *error;
    j->status = 200;
    if (mailbox_messages_range(o->mb, "INBOX", j->last_uid + 1, MAILBOX_UID_ANY, add_event, j,
                               &error) < 0)
        internal(j, "stream-poll", error);
}

static void note_swept(void *arg, const struct directory_inbox *in)
{
    struct api_job *j = arg;
    j->swept = sm_realloc(j->swept, (j->n_swept + 1) * sizeof *j->swept);
    memcpy(j->swept[j->n_swept++], in->mailbox, sizeof *j->swept);
}

static void op_sweep(struct api_job *j, struct directory *d)
{
    const char *error = NULL;
    int n = inbox_sweep(d, j->api->data_dir, j->now, 256, note_swept, j, &error);
    if (n < 0)
        log_warn("httpd sweep-failed error=\"%s\"", error);
    else if (n > 0)
        log_info("httpd swept inboxes=%d", n);
}

void api_work(void *arg)
{
    struct api_job *j = arg;
    struct directory *d = dirpool_take(j->api->dirs);
    struct inbox_open o = {0};
    if (d == NULL) {
        internal(j, "directory", "cannot open");
        return;
    }
    if (j->op == OP_CREATE)
        op_create(j, d);
    else if (j->op == OP_SWEEP)
        op_sweep(j, d);
    else if (open_inbox(j, d, &o)) {
        switch (j->op) {
        case OP_STATE: op_state(j, &o); break;
        case OP_LIST: op_list(j, &o); break;
        case OP_GET: op_get(j, &o); break;
        case OP_RAW: op_raw(j, &o); break;
        case OP_PART: op_part(j, &o); break;
        case OP_DELETE_MESSAGE: op_delete_message(j, &o, d); break;
        case OP_EXTEND: op_extend(j, &o, d); break;
        case OP_DELETE_INBOX: op_delete_inbox(j, &o, d); break;
        case OP_STREAM_OPEN: op_stream_open(j, &o); break;
        case OP_STREAM_POLL: op_stream_poll(j, &o); break;
        default: break;
        }
    }
    inbox_close(&o);
    dirpool_give(j->api->dirs, d);
}
