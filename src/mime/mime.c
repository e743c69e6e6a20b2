/* mime.c — analyse one message for the IMAP store (see mime.h).
 *
 * One call maps the file read-only (no copy, no change to the caller's
 * file offset), builds the part tree (tree.c), writes ENVELOPE, BODY and
 * BODYSTRUCTURE, and extracts the sort keys and search text.  Everything a
 * call allocates, GMime objects included, belongs to that call: its own
 * GMimeParserOptions, no shared state besides what g_mime_init() set up,
 * so calls may run in parallel threads.
 *
 * The sort keys come from the same header values as the ENVELOPE (the
 * last Date, Subject and Message-ID; the first address of From, To, Cc),
 * decoded with GMime (RFC 2047, raw 8-bit via the fallback charsets
 * UTF-8 then Windows-1252). */
#include "mime/mime.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/mem.h"
#include "mime/internal.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_gmime(void)
{
    g_mime_init();
}

int mime_init(void)
{
    pthread_once(&init_once, init_gmime);
    return 0;
}

void mime_shutdown(void)
{
    g_mime_shutdown();
}

static GMimeParserOptions *options_new(void)
{
    static const char *fallback[] = {"UTF-8", "windows-1252", NULL}; /* GMime wants it non-const */
    GMimeParserOptions *o = g_mime_parser_options_new();
    g_mime_parser_options_set_fallback_charsets(o, fallback);
    g_mime_parser_options_set_rfc2047_compliance_mode(o, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_parameter_compliance_mode(o, GMIME_RFC_COMPLIANCE_LOOSE);
    return o;
}

/* Last value of a field of the top header block, decoded; "" if none. */
char *mime_top_decoded(struct analysis *a, const struct mnode *root, const char *name)
{
    struct hfield f;
    if (!hdr_find(&a->m, root->hdr_start, root->hdr_end, name, true, &f))
        return sm_strdup("");
    char *raw = hdr_value(&a->m, &f, &a->truncated), *text = text_decode_header(a, raw);
    sm_freep(&raw);
    /* trim: sort keys compare from the first word */
    char *s = text;
    while (*s == ' ')
        s++;
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == ' ')
        n--;
    char *out = sm_strndup(s, n);
    sm_freep(&text);
    return out;
}

int64_t mime_top_date(struct analysis *a, const struct mnode *root)
{
    struct hfield f;
    if (!hdr_find(&a->m, root->hdr_start, root->hdr_end, "Date", true, &f))
        return 0;
    char *raw = hdr_value(&a->m, &f, &a->truncated);
    GDateTime *dt = g_mime_utils_header_decode_date(raw);
    sm_freep(&raw);
    if (dt == NULL)
        return 0;
    int64_t t = g_date_time_to_unix(dt);
    g_date_time_unref(dt);
    return t;
}

/* First address of every header of that name, as a sort key. */
static char *top_address(struct analysis *a, const struct mnode *root, const char *name)
{
    struct addr_list l = {NULL, 0, 0};
    struct hfield f;
    size_t pos = root->hdr_start;
    unsigned budget = 16; /* the first address is all we need */
    bool cut = false;
    while (l.n == 0 && hdr_next(&a->m, &pos, root->hdr_end, &f)) {
        if (f.name_len != strlen(name) ||
            strncasecmp((const char *)a->m.p + f.name, name, f.name_len) != 0)
            continue;
        size_t len;
        char *v = hdr_value_raw(&a->m, &f, &len, &cut);
        addr_parse(&l, v, len, &budget, &cut);
        sm_freep(&v);
    }
    char *key = addr_sort_key(&l);
    addr_list_free(&l);
    return key;
}

static void sort_keys(struct analysis *a, const struct mnode *root, struct mime_summary *out)
{
    out->date = mime_top_date(a, root);
    out->subject = mime_top_decoded(a, root, "Subject");
    out->message_id = mime_top_decoded(a, root, "Message-ID");
    out->from = top_address(a, root, "From");
    out->to = top_address(a, root, "To");
    out->cc = top_address(a, root, "Cc");
}

static char *take(struct sm_buf *b)
{
    char *s = sm_strdup(sm_buf_str(b));
    sm_buf_free(b);
    return s;
}

void analysis_begin(struct analysis *a, const unsigned char *p, size_t len)
{
    memset(a, 0, sizeof *a);
    a->m.p = p;
    a->m.len = len;
    a->addr_budget = MIME_ADDRESSES_MAX;
    a->opts = options_new();
    msg_index(&a->m);
}

void analysis_end(struct analysis *a)
{
    msg_free(&a->m);
    g_mime_parser_options_free(a->opts);
}

/* The analysis of the bytes p[0..len). */
static void analyse(const unsigned char *p, size_t len, struct mime_summary *out)
{
    struct analysis a;
    analysis_begin(&a, p, len);

    out->size = msg_vsize(&a.m, 0, len);
    struct mnode *root = tree_parse(&a);
    struct sm_buf b;
    sm_buf_init(&b, 0);
    envelope_write(&a, &b, root->hdr_start, root->hdr_end);
    out->envelope = take(&b);
    sm_buf_init(&b, 0);
    bodystructure_write(&b, root, true);
    out->bodystructure = take(&b);
    sm_buf_init(&b, 0);
    bodystructure_write(&b, root, false);
    out->body = take(&b);
    bodystructure_sections(root, out);
    sort_keys(&a, root, out);
    text_extract(&a, root, out);
    out->n_parts = a.n_parts;
    out->truncated = a.truncated;

    tree_free(&root);
    analysis_end(&a);
}

int mime_map_fd(int fd, const unsigned char **p_r, size_t *len_r, const char **error_r)
{
    struct stat st;
    *p_r = NULL;
    *len_r = 0;
    if (fstat(fd, &st) < 0) {
        *error_r = "mime: cannot stat the message file";
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t)st.st_size > SIZE_MAX) {
        *error_r = "mime: the message is not a regular file";
        return -1;
    }
    size_t len = (size_t)st.st_size;
    void *map = NULL;
    if (len > 0 && (map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED) {
        *error_r = errno == ENOMEM ? "mime: out of address space mapping the message"
                                   : "mime: cannot map the message file";
        return -1;
    }
    *p_r = map;
    *len_r = len;
    return 0;
}

void mime_unmap(const unsigned char *p, size_t len)
{
    if (p != NULL)
        munmap((void *)(uintptr_t)p, len);
}

int mime_analyse_fd(int fd, struct mime_summary *out, const char **error_r)
{
    const unsigned char *p;
    size_t len;
    memset(out, 0, sizeof *out);
    if (mime_map_fd(fd, &p, &len, error_r) < 0)
        return -1;
    analyse(p, len, out);
    mime_unmap(p, len);
    return 0;
}

void mime_summary_free(struct mime_summary *s)
{
    sm_freep(&s->envelope);
    sm_freep(&s->bodystructure);
    sm_freep(&s->body);
    sm_freep(&s->subject);
    sm_freep(&s->from);
    sm_freep(&s->to);
    sm_freep(&s->cc);
    sm_freep(&s->message_id);
    sm_freep(&s->search_headers);
    sm_freep(&s->search_text);
    for (unsigned i = 0; i < s->n_sections; i++)
        sm_freep(&s->parts[i].section);
    sm_freep(&s->parts);
    memset(s, 0, sizeof *s);
}
