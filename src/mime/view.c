/* view.c — a message as the web page shows it (see view.h).
 *
 * The part tree is the one IMAP uses (tree.c), so what the page calls a
 * part is what BODYSTRUCTURE describes; decoding is text.c's (GMime's
 * filters).  The walk is recursive, bounded by MIME_DEPTH_MAX. */
#include "mime/view.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "mime/internal.h"

struct walk_view {
    struct analysis *a;
    struct mime_view *v;
    size_t max_text;
    unsigned next_part;
};

static const char *param_value(const struct mparam *p, unsigned n, const char *name)
{
    for (unsigned i = 0; i < n; i++)
        if (p[i].name != NULL && strcasecmp(p[i].name, name) == 0)
            return p[i].value;
    return NULL;
}

/* A filename safe to show and to put in a Content-Disposition. */
static char *clean_filename(const char *raw)
{
    if (raw == NULL)
        return sm_strdup("");
    char *s = text_utf8_sanitise(raw, strlen(raw));
    for (char *c = s; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == '/' || *c == '\\' || *c == '"')
            *c = '_';
    const char *start = s;
    while (*start == '.' || *start == ' ')
        start++;
    size_t n = strlen(start);
    if (n > MIME_VIEW_FILENAME_MAX) {
        n = MIME_VIEW_FILENAME_MAX;
        while (n > 0 && ((unsigned char)start[n] & 0xc0) == 0x80)
            n--;
    }
    char *out = sm_strndup(start, n);
    sm_freep(&s);
    return out;
}

static char *clean_content_id(const char *raw)
{
    if (raw == NULL)
        return sm_strdup("");
    while (*raw == ' ' || *raw == '\t' || *raw == '<')
        raw++;
    size_t n = strcspn(raw, "> \t\r\n");
    char *s = text_utf8_sanitise(raw, n);
    return s;
}

static void describe(const struct mnode *n, unsigned part, struct mime_view_attachment *out)
{
    const char *name = param_value(n->disp_params, n->n_disp_params, "filename");
    if (name == NULL)
        name = param_value(n->params, n->n_params, "name");
    out->part = part;
    out->filename = clean_filename(name);
    size_t tlen = strlen(n->type) + 1 + strlen(n->subtype) + 1;
    out->content_type = sm_malloc(tlen);
    snprintf(out->content_type, tlen, "%s/%s", n->type, n->subtype);
    for (char *c = out->content_type; *c != '\0'; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c + 32);
    out->content_id = clean_content_id(n->id);
    out->size = n->body_end > n->body_start ? n->body_end - n->body_start : 0;
}

/* Decode a text leaf into *text (NULL before), bounded. */
static void take_text(struct walk_view *w, const struct mnode *n, char **text, size_t *len,
                      bool *truncated)
{
    struct sm_buf b;
    size_t input = 8 * w->max_text + 4096;
    sm_buf_init(&b, w->max_text);
    bool complete = decode_part(w->a, n, DECODE_TEXT, &b, &input);
    *text = text_utf8_sanitise(b.data != NULL ? b.data : "", b.len);
    *len = strlen(*text);
    *truncated = !complete;
    sm_buf_free(&b);
}

static void add_attachment(struct walk_view *w, const struct mnode *n, unsigned part)
{
    struct mime_view *v = w->v;
    if (v->n_attachments == MIME_VIEW_ATTACHMENTS_MAX) {
        v->attachments_truncated = true;
        return;
    }
    v->attachments = sm_realloc(v->attachments, (v->n_attachments + 1) * sizeof *v->attachments);
    describe(n, part, &v->attachments[v->n_attachments++]);
}

static bool is_body_text(const struct mnode *n, const char *subtype)
{
    return n->kind == MK_LEAF && n->text && !n->attachment && strcasecmp(n->subtype, subtype) == 0;
}

static void walk(struct walk_view *w, const struct mnode *n)
{
    for (; n != NULL; n = n->next) {
        unsigned part = w->next_part++;
        if (n->kind == MK_MULTIPART) {
            walk(w, n->child);
        } else if (w->v->text == NULL && is_body_text(n, "plain")) {
            take_text(w, n, &w->v->text, &w->v->text_len, &w->v->text_truncated);
        } else if (w->v->html == NULL && is_body_text(n, "html")) {
            take_text(w, n, &w->v->html, &w->v->html_len, &w->v->html_truncated);
        } else {
            /* a leaf, or an attached message: one attachment, whole */
            add_attachment(w, n, part);
        }
    }
}

static void view_headers(struct analysis *a, const struct mnode *root, struct mime_view *v)
{
    v->subject = mime_top_decoded(a, root, "Subject");
    v->from = mime_top_decoded(a, root, "From");
    v->to = mime_top_decoded(a, root, "To");
    v->cc = mime_top_decoded(a, root, "Cc");
    v->reply_to = mime_top_decoded(a, root, "Reply-To");
    v->date = mime_top_decoded(a, root, "Date");
    v->message_id = mime_top_decoded(a, root, "Message-ID");
    v->date_unix = mime_top_date(a, root);
}

int mime_view_fd(int fd, size_t max_text, struct mime_view *out, const char **error_r)
{
    const unsigned char *p;
    size_t len;
    struct analysis a;
    memset(out, 0, sizeof *out);
    if (mime_map_fd(fd, &p, &len, error_r) < 0)
        return -1;
    analysis_begin(&a, p, len);
    struct mnode *root = tree_parse(&a);
    view_headers(&a, root, out);
    struct walk_view w = {&a, out, max_text, 0};
    /* the root is part 0: a single-part message is its own body */
    walk(&w, root);
    tree_free(&root);
    analysis_end(&a);
    mime_unmap(p, len);
    return 0;
}

void mime_view_attachment_free(struct mime_view_attachment *a)
{
    sm_freep(&a->filename);
    sm_freep(&a->content_type);
    sm_freep(&a->content_id);
}

void mime_view_free(struct mime_view *v)
{
    char **fields[] = {&v->subject, &v->from,       &v->to,   &v->cc,  &v->reply_to,
                       &v->date,    &v->message_id, &v->text, &v->html};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        sm_freep(fields[i]);
    for (unsigned i = 0; i < v->n_attachments; i++)
        mime_view_attachment_free(&v->attachments[i]);
    sm_freep(&v->attachments);
    memset(v, 0, sizeof *v);
}

/* The node numbered part in walk order (multiparts are walked into,
 * attached messages are not), or NULL. */
static const struct mnode *find_part(const struct mnode *n, unsigned part, unsigned *next)
{
    for (; n != NULL; n = n->next) {
        unsigned mine = (*next)++;
        if (mine == part)
            return n;
        if (n->kind == MK_MULTIPART) {
            const struct mnode *found = find_part(n->child, part, next);
            if (found != NULL)
                return found;
        }
    }
    return NULL;
}

int mime_view_part_fd(int fd, unsigned part, size_t max, struct sm_buf *out,
                      struct mime_view_attachment *info, const char **error_r)
{
    const unsigned char *p;
    size_t len;
    struct analysis a;
    memset(info, 0, sizeof *info);
    if (mime_map_fd(fd, &p, &len, error_r) < 0)
        return -1;
    analysis_begin(&a, p, len);
    struct mnode *root = tree_parse(&a);
    unsigned next = 0;
    const struct mnode *n = find_part(root, part, &next);
    int r = 0;
    if (n != NULL && n->kind != MK_MULTIPART) {
        size_t input = SIZE_MAX;
        out->max = max;
        describe(n, part, info);
        r = decode_part(&a, n, DECODE_BYTES, out, &input) ? 1 : -1;
        if (r < 0) {
            *error_r = "the part is larger than allowed";
            mime_view_attachment_free(info);
        }
    }
    tree_free(&root);
    analysis_end(&a);
    mime_unmap(p, len);
    return r;
}
