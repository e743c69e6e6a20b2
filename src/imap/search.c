/* search.c — SEARCH (with ESEARCH, SEARCHRES, CONDSTORE's MODSEQ) and SORT
 * over the selected folder.
 *
 * The search program (parse.h) is evaluated message by message on the
 * fields the store keeps (flags, sizes, dates, first addresses, subject).
 * Keys on one header field (FROM, TO, CC, BCC, SUBJECT, HEADER) are
 * case-insensitive substring matches on that field's decoded values,
 * which the store keeps for the address fields and Subject; HEADER on any
 * other field reads the message's own header (header_field_raw: it
 * decrypts the body file, and evaluation stops at the first key of an AND
 * that fails, so cheaper keys written first spare it).  BODY and TEXT use
 * the store's full-text index,
 * which matches words, not arbitrary substrings: "BODY ell" does not find
 * "hello" (Dovecot with a full-text plugin behaves alike; docs/imap.md
 * says so). */
#include <ctype.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/mem.h"
#include "imap/session.h"
#include "mime/mime.h"
#include "mime/section.h"

#define FTS_QUERY_MAX 2048

/* The text sort keys, compared as i;unicode-casemap keys (RFC 5256 §7). */
enum sort_key { K_SUBJECT, K_FROM, K_TO, K_CC, K_DISPLAYFROM, K_DISPLAYTO, SORT_KEYS };

struct msg {
    uint32_t uid, seq;
    unsigned flags;
    uint64_t size, modseq;
    int64_t internaldate, date;
    char *keywords, *subject, *from, *to, *cc, *file, *parts;
    char *envelope;           /* only for SORT DISPLAYFROM/DISPLAYTO */
    char *key[SORT_KEYS];     /* collation keys, made for SORT (sort_keys_make) */
    bool hit;
};

/* A full-text result for one node of the program. */
struct fts_set {
    const struct imap_search_node *node;
    uint32_t *uids; /* ascending */
    size_t n, cap;
    bool failed;    /* the text has nothing to index: substring match only */
};

struct search_ctx {
    struct imap *s;
    struct mailbox *mb;
    struct msg *msgs;
    size_t n, cap;
    struct fts_set *fts;
    size_t n_fts;
    uint32_t max_uid;
    const char *headers;     /* search_headers of the message being evaluated */
    struct mailbox_body *body; /* bodies read for HEADER on a raw field, one buffer */
    bool envelopes;          /* keep each message's ENVELOPE (display sort keys) */
};

static void collect(void *arg, const struct mailbox_message *m)
{
    struct search_ctx *x = arg;
    uint32_t seq = view_seq(&x->s->view, m->uid);
    if (seq == 0)
        return; /* arrived after the view: not visible to the client yet */
    if (x->n == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 64;
        x->msgs = sm_realloc(x->msgs, x->cap * sizeof *x->msgs);
    }
    x->msgs[x->n++] = (struct msg){
        .uid = m->uid, .seq = seq, .flags = m->flags, .size = m->size, .modseq = m->modseq,
        .internaldate = m->internaldate, .date = m->date, .keywords = sm_strdup(m->keywords),
        .subject = sm_strdup(m->subject), .from = sm_strdup(m->from), .to = sm_strdup(m->to),
        .cc = sm_strdup(m->cc), .file = sm_strdup(m->file), .parts = sm_strdup(m->parts),
        .envelope = x->envelopes ? sm_strdup(m->envelope) : NULL};
}

/* ---- full-text sets --------------------------------------------------------------- */

static void fts_add(void *arg, uint32_t uid)
{
    struct fts_set *f = arg;
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 64;
        f->uids = sm_realloc(f->uids, f->cap * sizeof *f->uids);
    }
    f->uids[f->n++] = uid;
}

/* A phrase query on column (or on the whole index when NULL). */
static int fts_query(char *q, const char *column, const char *text)
{
    size_t n = 0;
    if (column != NULL)
        n += (size_t)snprintf(q, FTS_QUERY_MAX, "%s : ", column);
    q[n++] = '"';
    for (; *text != '\0' && n < FTS_QUERY_MAX - 4; text++) {
        if (*text == '"')
            q[n++] = '"';
        q[n++] = *text;
    }
    q[n++] = '"';
    q[n] = '\0';
    return *text == '\0' ? 0 : -1;
}

static bool fts_key(enum imap_search_key k)
{
    return k == IMAP_SK_BODY || k == IMAP_SK_TEXT;
}

/* The header field a key tests, NULL for keys that test none. */
static const char *key_field(const struct imap_search_node *n)
{
    switch (n->key) {
    case IMAP_SK_FROM: return "From";
    case IMAP_SK_TO: return "To";
    case IMAP_SK_CC: return "Cc";
    case IMAP_SK_BCC: return "Bcc";
    case IMAP_SK_SUBJECT: return "Subject";
    case IMAP_SK_HEADER: return n->field;
    default: return NULL;
    }
}

static bool uses_headers(const struct imap_search_node *n)
{
    for (; n != NULL; n = n->next)
        if (key_field(n) != NULL || uses_headers(n->child))
            return true;
    return false;
}

static void fts_prepare(struct search_ctx *x, const struct imap_search_node *node)
{
    for (; node != NULL; node = node->next) {
        fts_prepare(x, node->child);
        if (!fts_key(node->key))
            continue;
        x->fts = sm_realloc(x->fts, (x->n_fts + 1) * sizeof *x->fts);
        struct fts_set *f = &x->fts[x->n_fts++];
        *f = (struct fts_set){.node = node};
        char q[FTS_QUERY_MAX];
        const char *column = node->key == IMAP_SK_BODY ? "search_text" : NULL;
        const char *error;
        f->failed = node->str[0] == '\0' || fts_query(q, column, node->str) < 0 ||
                    mailbox_search_text(x->mb, x->s->view.folder, q, fts_add, f, &error) < 0;
    }
}

static bool fts_has(const struct search_ctx *x, const struct imap_search_node *node, uint32_t uid)
{
    for (size_t i = 0; i < x->n_fts; i++) {
        const struct fts_set *f = &x->fts[i];
        if (f->node == node)
            return uid_find(f->uids, f->n, uid) < f->n;
    }
    return false;
}

/* ---- evaluation ------------------------------------------------------------------- */

static bool has_keyword(const char *keywords, const char *kw)
{
    size_t len = strlen(kw);
    for (const char *p = keywords; *p != '\0';) {
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && strncasecmp(p, kw, len) == 0)
            return true;
        p += n + (end != NULL);
    }
    return false;
}

static int64_t day_of(int64_t t)
{
    return t >= 0 ? t / 86400 : (t - 86399) / 86400;
}

static bool matches(const struct search_ctx *x, const struct imap_search_node *n,
                    const struct msg *m);

static bool all_match(const struct search_ctx *x, const struct imap_search_node *n,
                      const struct msg *m)
{
    for (; n != NULL; n = n->next)
        if (!matches(x, n, m))
            return false;
    return true;
}

/* The fields the store keeps decoded ("Name: value" lines of mime.h). */
static bool stored_field(const char *name)
{
    static const char *const names[] = {"From", "Sender", "Reply-To", "To", "Cc", "Bcc",
                                        "Subject"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i]) == 0)
            return true;
    return false;
}

/* Does a "Name: value" line of lines have name and contain str?  (An empty
 * str asks whether the field is there at all, RFC 9051 §6.4.4.) */
static bool lines_match(const char *lines, size_t len, const char *name, const char *str)
{
    size_t nlen = strlen(name);
    const char *p = lines, *end = lines + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl != NULL ? nl : end;
        if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            if (str[0] == '\0')
                return true;
            size_t vlen = (size_t)(eol - p) - nlen - 1;
            char *value = sm_malloc(vlen + 1);
            memcpy(value, p + nlen + 1, vlen);
            value[vlen] = '\0';
            bool found = strcasestr(value, str) != NULL;
            free(value);
            if (found)
                return true;
        }
        p = eol + 1;
    }
    return false;
}

/* HEADER on a field the store does not keep: the raw field from the
 * message itself (its header block through section.h), decrypted into the
 * search's one body buffer: the first chunk, or all of it when the header
 * goes on past that. */
static bool header_field_raw(const struct search_ctx *x, const struct msg *m, const char *name,
                             const char *str)
{
    const char *error;
    struct mime_part_offsets *parts = NULL;
    unsigned n_parts = 0;
    bool found = false;
    struct mailbox_body *b = x->body;
    if (mailbox_body_read(x->mb, m->file, 1, SIZE_MAX, b, &error) < 0 ||
        (!b->whole && !section_header_complete(b->data, b->len) &&
         mailbox_body_read(x->mb, m->file, 0, SIZE_MAX, b, &error) < 0) ||
        mailbox_parts_decode(m->parts, &parts, &n_parts) < 0)
        return false;
    const char *fields[] = {name};
    struct section_spec spec = {NULL, 0, SECTION_HEADER_FIELDS, fields, 1};
    struct section_msg msg = {b->data, b->len, parts, n_parts};
    struct sm_buf out;
    sm_buf_init(&out, MIME_SEARCH_HEADERS_MAX);
    if (section_body(&msg, &spec, NULL, &out, NULL, &error) == SECTION_OK) {
        /* unfold: continuation lines join their field */
        for (size_t i = 0; i + 2 < out.len; i++)
            if (out.data[i] == '\r' && out.data[i + 1] == '\n' &&
                (out.data[i + 2] == ' ' || out.data[i + 2] == '\t'))
                out.data[i] = out.data[i + 1] = ' ';
        found = lines_match(sm_buf_str(&out), out.len, name, str);
    }
    sm_buf_wipe_free(&out);
    mailbox_parts_free(parts, n_parts);
    return found;
}

static bool text_match(const struct search_ctx *x, const struct imap_search_node *n,
                       const struct msg *m)
{
    const char *field = key_field(n);
    if (field == NULL) { /* BODY, TEXT: the full-text index */
        if (n->str[0] == '\0')
            return true;
        return fts_has(x, n, m->uid);
    }
    if (!stored_field(field))
        return header_field_raw(x, m, field, n->str);
    const char *h = x->headers != NULL ? x->headers : "";
    return lines_match(h, strlen(h), field, n->str);
}

static bool matches(const struct search_ctx *x, const struct imap_search_node *n,
                    const struct msg *m)
{
    switch (n->key) {
    case IMAP_SK_AND: return all_match(x, n->child, m);
    case IMAP_SK_OR: return matches(x, n->child, m) || matches(x, n->child->next, m);
    case IMAP_SK_NOT: return !matches(x, n->child, m);
    case IMAP_SK_SEQSET:
    case IMAP_SK_UID:
        if (n->set.saved) /* "$" stands for the saved UIDs either way (RFC 5182) */
            return x->s->saved_valid && uid_find(x->s->saved, x->s->n_saved, m->uid) < x->s->n_saved;
        if (n->key == IMAP_SK_SEQSET)
            return imap_seqset_contains(&n->set, m->seq, view_count(&x->s->view));
        return imap_seqset_contains(&n->set, m->uid, x->max_uid);
    case IMAP_SK_ALL: return true;
    /* \Recent to this session (RFC 3501 §6.4.4; RFC 9051 dropped these keys) */
    case IMAP_SK_OLD: return !view_recent(&x->s->view, m->uid);
    case IMAP_SK_RECENT: return view_recent(&x->s->view, m->uid);
    case IMAP_SK_NEW: return view_recent(&x->s->view, m->uid) && !(m->flags & MAILBOX_SEEN);
    case IMAP_SK_ANSWERED: return m->flags & MAILBOX_ANSWERED;
    case IMAP_SK_DELETED: return m->flags & MAILBOX_DELETED;
    case IMAP_SK_DRAFT: return m->flags & MAILBOX_DRAFT;
    case IMAP_SK_FLAGGED: return m->flags & MAILBOX_FLAGGED;
    case IMAP_SK_SEEN: return m->flags & MAILBOX_SEEN;
    case IMAP_SK_UNANSWERED: return !(m->flags & MAILBOX_ANSWERED);
    case IMAP_SK_UNDELETED: return !(m->flags & MAILBOX_DELETED);
    case IMAP_SK_UNDRAFT: return !(m->flags & MAILBOX_DRAFT);
    case IMAP_SK_UNFLAGGED: return !(m->flags & MAILBOX_FLAGGED);
    case IMAP_SK_UNSEEN: return !(m->flags & MAILBOX_SEEN);
    case IMAP_SK_KEYWORD: return has_keyword(m->keywords, n->str);
    case IMAP_SK_UNKEYWORD: return !has_keyword(m->keywords, n->str);
    case IMAP_SK_BCC: case IMAP_SK_BODY: case IMAP_SK_CC: case IMAP_SK_FROM:
    case IMAP_SK_SUBJECT: case IMAP_SK_TEXT: case IMAP_SK_TO: case IMAP_SK_HEADER:
        return text_match(x, n, m);
    case IMAP_SK_BEFORE: return day_of(m->internaldate) < day_of(n->date);
    case IMAP_SK_ON: return day_of(m->internaldate) == day_of(n->date);
    case IMAP_SK_SINCE: return day_of(m->internaldate) >= day_of(n->date);
    case IMAP_SK_SENTBEFORE: return m->date != 0 && day_of(m->date) < day_of(n->date);
    case IMAP_SK_SENTON: return m->date != 0 && day_of(m->date) == day_of(n->date);
    case IMAP_SK_SENTSINCE: return m->date != 0 && day_of(m->date) >= day_of(n->date);
    case IMAP_SK_LARGER: return m->size > n->number;
    case IMAP_SK_SMALLER: return m->size < n->number;
    case IMAP_SK_MODSEQ: return m->modseq >= n->number;
    }
    return false;
}

/* mailbox_search_headers() visits every message in UID order, as x->msgs
 * is sorted: evaluate each with its header lines at hand. */
static void eval_with_headers(void *arg, uint32_t uid, const char *headers)
{
    struct search_ctx *x = arg;
    size_t lo = 0, hi = x->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (x->msgs[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == x->n || x->msgs[lo].uid != uid)
        return; /* not in the client's view */
    x->headers = headers;
    x->msgs[lo].hit = matches(x, x->s->cmd->args.search.keys, &x->msgs[lo]);
    x->headers = NULL;
}

/* Resolve every set of the program once ('*' made concrete, ranges
 * sorted and merged), so that testing a message is a binary search, not
 * a walk over up to IMAP_SEQ_RANGES_MAX ranges per message and key. */
static void resolve_sets(struct imap_search_node *n, uint32_t max_seq, uint32_t max_uid)
{
    for (; n != NULL; n = n->next) {
        if (n->key == IMAP_SK_SEQSET)
            imap_seqset_resolve(&n->set, max_seq);
        else if (n->key == IMAP_SK_UID)
            imap_seqset_resolve(&n->set, max_uid);
        resolve_sets(n->child, max_seq, max_uid);
    }
}

static bool uses_modseq(const struct imap_search_node *n)
{
    for (; n != NULL; n = n->next)
        if (n->key == IMAP_SK_MODSEQ || uses_modseq(n->child))
            return true;
    return false;
}

/* ---- SORT (RFC 5256) ----------------------------------------------------------------- */

static _Thread_local const struct imap_args_search *sort_args;

static int cmp_u64(uint64_t a, uint64_t b)
{
    return a < b ? -1 : a > b;
}

static enum sort_key criterion_key(enum imap_sort_criterion c)
{
    switch (c) {
    case IMAP_SORT_SUBJECT: return K_SUBJECT;
    case IMAP_SORT_FROM: return K_FROM;
    case IMAP_SORT_TO: return K_TO;
    case IMAP_SORT_CC: return K_CC;
    case IMAP_SORT_DISPLAYFROM: return K_DISPLAYFROM;
    case IMAP_SORT_DISPLAYTO: return K_DISPLAYTO;
    default: return SORT_KEYS;
    }
}

/* The collation keys the sort program needs, once per message rather
 * than once per comparison. */
static void sort_keys_make(const struct imap_args_search *a, struct msg *m)
{
    for (size_t i = 0; i < a->n_sort; i++) {
        enum sort_key k = criterion_key(a->sort[i].criterion);
        if (k == SORT_KEYS || m->key[k] != NULL)
            continue;
        char *text = k == K_SUBJECT ? mime_base_subject(m->subject)
                     : k == K_FROM  ? sm_strdup(m->from)
                     : k == K_TO    ? sm_strdup(m->to)
                     : k == K_CC    ? sm_strdup(m->cc)
                                    : mime_envelope_display(m->envelope != NULL ? m->envelope : "",
                                                            k == K_DISPLAYFROM ? MIME_ENV_FROM
                                                                               : MIME_ENV_TO);
        m->key[k] = mime_casemap(text);
        free(text);
    }
}

static bool sorts_by_display(const struct imap_args_search *a)
{
    for (size_t i = 0; i < a->n_sort; i++)
        if (criterion_key(a->sort[i].criterion) >= K_DISPLAYFROM &&
            criterion_key(a->sort[i].criterion) < SORT_KEYS)
            return true;
    return false;
}

static int sort_cmp(const void *pa, const void *pb)
{
    const struct msg *a = *(const struct msg *const *)pa, *b = *(const struct msg *const *)pb;
    for (size_t i = 0; i < sort_args->n_sort; i++) {
        int c = 0;
        enum sort_key k = criterion_key(sort_args->sort[i].criterion);
        switch (sort_args->sort[i].criterion) {
        case IMAP_SORT_ARRIVAL: c = cmp_u64((uint64_t)a->internaldate, (uint64_t)b->internaldate);
            break;
        case IMAP_SORT_DATE:
            c = cmp_u64((uint64_t)(a->date ? a->date : a->internaldate),
                        (uint64_t)(b->date ? b->date : b->internaldate));
            break;
        case IMAP_SORT_SIZE: c = cmp_u64(a->size, b->size); break;
        default: c = strcmp(a->key[k], b->key[k]); break;
        }
        if (c != 0)
            return sort_args->sort[i].reverse ? -c : c;
    }
    return cmp_u64(a->seq, b->seq); /* RFC 5256: ties in sequence order */
}

/* ---- replies ------------------------------------------------------------------------ */

static void put_set(struct imap *s, const uint32_t *v, size_t n)
{
    /* ranges for ESEARCH ALL: "1:3,7" */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && v[j + 1] == v[j] + 1)
            j++;
        imap_printf(s, "%s%u", i ? "," : "", v[i]);
        if (j > i)
            imap_printf(s, ":%u", v[j]);
        i = j + 1;
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void reply_results(struct imap *s, const struct imap_args_search *a, struct msg **hits,
                          size_t n, bool sort)
{
    bool uid = s->cmd->uid;
    uint64_t top_modseq = 0;
    uint32_t *v = sm_calloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        v[i] = uid ? hits[i]->uid : hits[i]->seq;
        if (hits[i]->modseq > top_modseq)
            top_modseq = hits[i]->modseq;
    }
    bool modseq = uses_modseq(a->keys);
    if ((a->ret & IMAP_SEARCH_RET_SAVE) != 0) {
        free(s->saved);
        s->saved = sm_calloc(n + 1, sizeof *s->saved);
        for (size_t i = 0; i < n; i++)
            s->saved[i] = hits[i]->uid;
        qsort(s->saved, n, sizeof *s->saved, cmp_u32);
        s->n_saved = n;
        s->saved_valid = true;
        /* RFC 5182 §2.4: SAVE with MIN and/or MAX alone saves just those */
        unsigned mm = a->ret & (IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_MAX);
        if (mm != 0 && !(a->ret & (IMAP_SEARCH_RET_ALL | IMAP_SEARCH_RET_COUNT)) && n > 0) {
            uint32_t lo = s->saved[0], hi = s->saved[n - 1];
            s->n_saved = 0;
            if (mm & IMAP_SEARCH_RET_MIN)
                s->saved[s->n_saved++] = lo;
            if ((mm & IMAP_SEARCH_RET_MAX) && (s->n_saved == 0 || hi != lo))
                s->saved[s->n_saved++] = hi;
        }
    }
    bool esearch = a->esearch || (s->rev2 && !sort);
    unsigned ret = a->ret & ~(unsigned)IMAP_SEARCH_RET_SAVE;
    if (esearch && a->esearch && ret == 0 && (a->ret & IMAP_SEARCH_RET_SAVE))
        goto done; /* RETURN (SAVE) alone: no ESEARCH response (RFC 5182 §2.4) */
    if (!esearch) {
        imap_printf(s, "* %s", sort ? "SORT" : "SEARCH");
        for (size_t i = 0; i < n; i++)
            imap_printf(s, " %u", v[i]);
        if (modseq && n > 0)
            imap_printf(s, " (MODSEQ %llu)", (unsigned long long)top_modseq);
        imap_printf(s, "\r\n");
        goto done;
    }
    if (ret == 0)
        ret = IMAP_SEARCH_RET_ALL;
    imap_printf(s, "* ESEARCH (TAG \"%s\")%s", s->cmd->tag, uid ? " UID" : "");
    uint32_t *sorted = sm_calloc(n + 1, sizeof *sorted);
    memcpy(sorted, v, n * sizeof *v);
    if (!sort)
        qsort(sorted, n, sizeof *sorted, cmp_u32);
    if ((ret & IMAP_SEARCH_RET_MIN) && n > 0)
        imap_printf(s, " MIN %u", sorted[0] < sorted[n - 1] ? sorted[0] : sorted[n - 1]);
    if ((ret & IMAP_SEARCH_RET_MAX) && n > 0)
        imap_printf(s, " MAX %u", sorted[0] > sorted[n - 1] ? sorted[0] : sorted[n - 1]);
    if (ret & IMAP_SEARCH_RET_COUNT)
        imap_printf(s, " COUNT %zu", n);
    if ((ret & IMAP_SEARCH_RET_ALL) && n > 0) {
        imap_printf(s, " ALL ");
        put_set(s, sorted, n);
    }
    if (modseq && n > 0)
        imap_printf(s, " MODSEQ %llu", (unsigned long long)top_modseq);
    imap_printf(s, "\r\n");
    free(sorted);
done:
    free(v);
}

void cmd_search(struct imap *s, struct mailbox *mb)
{
    const struct imap_args_search *a = &s->cmd->args.search;
    bool sort = s->cmd->cmd == IMAP_CMD_SORT;
    const char *error;
    if (a->charset != NULL && strcmp(a->charset, "UTF-8") != 0 &&
        strcmp(a->charset, "US-ASCII") != 0) {
        imap_tagged(s, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
        return;
    }
    struct mailbox_body body = MAILBOX_BODY_INIT;
    struct search_ctx x = {.s = s, .mb = mb, .body = &body,
                           .envelopes = sort && sorts_by_display(a)};
    x.max_uid = view_max_uid(&s->view);
    resolve_sets(a->keys, view_count(&s->view), x.max_uid);
    if (uses_modseq(a->keys))
        imap_condstore_on(s, mb);
    if (mailbox_messages(mb, s->view.folder, collect, &x, &error) < 0) {
        imap_store_failed(s, MAILBOX_ERR, error);
        goto out;
    }
    fts_prepare(&x, a->keys);
    if (uses_headers(a->keys)) {
        if (mailbox_search_headers(mb, s->view.folder, eval_with_headers, &x, &error) < 0) {
            imap_store_failed(s, MAILBOX_ERR, error);
            goto out;
        }
    } else {
        for (size_t i = 0; i < x.n; i++)
            x.msgs[i].hit = matches(&x, a->keys, &x.msgs[i]);
    }
    struct msg **hits = sm_calloc(x.n + 1, sizeof *hits);
    size_t n = 0;
    for (size_t i = 0; i < x.n; i++)
        if (x.msgs[i].hit)
            hits[n++] = &x.msgs[i];
    if (sort) {
        for (size_t i = 0; i < n; i++)
            sort_keys_make(a, hits[i]);
        sort_args = a;
        qsort(hits, n, sizeof *hits, sort_cmp);
    }
    reply_results(s, a, hits, n, sort);
    imap_tagged(s, "OK", "%s completed", sort ? "SORT" : "SEARCH");
    free(hits);
out:
    for (size_t i = 0; i < x.n; i++) {
        free(x.msgs[i].keywords);
        free(x.msgs[i].subject);
        free(x.msgs[i].from);
        free(x.msgs[i].to);
        free(x.msgs[i].cc);
        free(x.msgs[i].file);
        free(x.msgs[i].parts);
        free(x.msgs[i].envelope);
        for (size_t k = 0; k < SORT_KEYS; k++)
            free(x.msgs[i].key[k]);
    }
    free(x.msgs);
    mailbox_body_release(&body); /* wipes the plaintext */
    for (size_t i = 0; i < x.n_fts; i++)
        free(x.fts[i].uids);
    free(x.fts);
}
