/* messages.c — commands on the messages of the selected folder: FETCH
 * (CONDSTORE, QRESYNC VANISHED, BINARY), STORE (UNCHANGEDSINCE), COPY and
 * MOVE (UIDPLUS), EXPUNGE and UID EXPUNGE, CLOSE.  On a worker with the
 * store locked (session.h).  FETCH works in slices of FETCH_SLICE_BYTES of
 * output so that a client asking for every body of a big folder costs
 * bounded memory: the loop sends a slice, then runs the next.  Its cost is
 * per message, so a slice reads its rows in batches (one statement each,
 * only the columns the items print) and decrypts every body into one
 * buffer, and items that need only the header are served from the header
 * block the store keeps (format 9), else decrypt only the chunks that
 * hold it. */
#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/mem.h"
#include "imap/session.h"
#include "mime/section.h"

#define FETCH_SLICE_BYTES (1024 * 1024)
#define FETCH_BODY_MAX ((size_t)2048 * 1024 * 1024)

/* ---- FETCH ----------------------------------------------------------------------- */

/* The rows of a FETCH are read FETCH_ROWS at a time, with one statement
 * over their UID range (mailbox_messages_list()); a read ends early where
 * the UIDs asked for spread over more than FETCH_SPREAD times their count,
 * since the statement walks every row of the range. */
#define FETCH_ROWS 128
#define FETCH_SPREAD 4

/* The state of one FETCH slice (one cmd_fetch() call). */
struct fetch_ctx {
    struct imap *s;
    struct mailbox *mb;
    const struct imap_args_fetch *a;
    enum section_status failure;
    unsigned cols;             /* the store texts the items print (enum mailbox_cols) */
    bool sets_seen;            /* an item sets \Seen */
    bool headers_only;         /* every body item lies in the top header block */
    struct mailbox_body plain; /* the decrypted bodies: one buffer for the slice */
    struct sm_buf section;     /* one item's bytes (a literal needs its length first) */
};

/* A message body opened for the items of one FETCH response: its
 * plaintext is in the slice's buffer (fetch_ctx.plain), read into the
 * heap, never mapped: unmapping a mapping per message made every CPU
 * flush its TLB, a third of FETCH's time. */
struct body {
    bool open, failed;
    const unsigned char *data;
    size_t len;
    struct mime_part_offsets *parts;
    unsigned n_parts;
};

/* An end of the top header block no earlier than the real one: the first
 * part's body start when the top entity is that part, else where the first
 * part's header starts (after the top header and the preamble). */
static uint64_t header_bound(const struct body *b)
{
    if (b->n_parts == 0)
        return 0;
    const struct mime_part_offsets *p = &b->parts[0];
    return p->header_start == 0 ? p->body_start : p->header_start;
}

/* Decrypt the body into x->plain; for header items only the chunks that
 * hold the header.  The part offsets only bound it (tree.c and section.c
 * could read a malformed header differently), so the prefix is checked
 * and, short of the header's empty line, the whole body read. */
static int read_plain(struct fetch_ctx *x, const struct mailbox_message *m,
                      const struct body *b, const char **error_r)
{
    uint64_t want = x->headers_only ? header_bound(b) + 1 : 0;
    /* the row brought the file's key: no X25519, no lookup */
    if (mailbox_body_read_key(x->mb, m->file, m->file_key, want, FETCH_BODY_MAX, &x->plain,
                              error_r) < 0)
        return -1;
    if (x->plain.whole || section_header_complete(x->plain.data, x->plain.len))
        return 0;
    return mailbox_body_read_key(x->mb, m->file, m->file_key, 0, FETCH_BODY_MAX, &x->plain,
                                 error_r);
}

static int body_open(struct fetch_ctx *x, const struct mailbox_message *m, struct body *b)
{
    const char *error = "bad part offsets";
    if (b->open || b->failed)
        return b->failed ? -1 : 0;
    if (x->headers_only && m->header != NULL) {
        /* the stored block ends with the header's empty line: section.c
         * gives the same for a top-level header item as on the file
         * (section_header_length()); no part offsets are needed */
        b->data = m->header;
        b->len = m->header_len;
        b->open = true;
        return 0;
    }
    if (mailbox_parts_decode(m->parts, &b->parts, &b->n_parts) < 0 ||
        read_plain(x, m, b, &error) < 0) {
        log_warn("imap body-unreadable uid=%u error=\"%s\"", m->uid, error);
        b->failed = true;
        return -1;
    }
    b->data = x->plain.data;
    b->len = x->plain.len;
    b->open = true;
    return 0;
}

/* The plaintext stays in the slice's buffer until the slice ends. */
static void body_close(struct body *b)
{
    mailbox_parts_free(b->parts, b->n_parts);
    memset(b, 0, sizeof *b);
}

static void put_date(struct imap *s, int64_t t)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    imap_printf(s, "\"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday, months[tm.tm_mon],
                tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The name of a section in the response: "BODY[1.2.HEADER.FIELDS (A B)]<0>". */
static void put_section_name(struct imap *s, const char *att, const struct imap_fetch_item *it)
{
    static const char *const kinds[] = {"", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT",
                                        "TEXT", "MIME"};
    const struct imap_section *sec = &it->section;
    imap_printf(s, "%s[", att);
    for (size_t i = 0; i < sec->n_parts; i++)
        imap_printf(s, "%s%u", i ? "." : "", sec->parts[i]);
    if (sec->text != IMAP_SECTION_ALL)
        imap_printf(s, "%s%s", sec->n_parts ? "." : "", kinds[sec->text]);
    if (sec->text == IMAP_SECTION_HEADER_FIELDS || sec->text == IMAP_SECTION_HEADER_FIELDS_NOT) {
        imap_printf(s, " (");
        for (size_t i = 0; i < sec->n_fields; i++)
            imap_printf(s, "%s%s", i ? " " : "", sec->fields[i]);
        imap_printf(s, ")");
    }
    imap_printf(s, "]");
    if (it->partial)
        imap_printf(s, "<%llu>", (unsigned long long)it->offset);
}

static const enum section_kind section_kinds[] = {
    [IMAP_SECTION_ALL] = SECTION_NONE,
    [IMAP_SECTION_HEADER] = SECTION_HEADER,
    [IMAP_SECTION_HEADER_FIELDS] = SECTION_HEADER_FIELDS,
    [IMAP_SECTION_HEADER_FIELDS_NOT] = SECTION_HEADER_FIELDS_NOT,
    [IMAP_SECTION_TEXT] = SECTION_TEXT,
    [IMAP_SECTION_MIME] = SECTION_MIME,
};

/* Serve one body item; returns a status other than SECTION_OK for the
 * tagged reply (the response so far stays: it is well-formed). */
static enum section_status put_section(struct fetch_ctx *x, const struct imap_fetch_item *it,
                                       const struct imap_section *sec, enum imap_fetch_att att,
                                       const char *name, struct body *b)
{
    struct imap *s = x->s;
    unsigned parts[IMAP_SECTION_PARTS_MAX];
    for (size_t i = 0; i < sec->n_parts; i++)
        parts[i] = sec->parts[i];
    struct section_spec spec = {parts, (unsigned)sec->n_parts, section_kinds[sec->text],
                                sec->fields, (unsigned)sec->n_fields};
    struct section_msg msg = {b->data, b->len, b->parts, b->n_parts};
    struct section_partial partial = {it->offset, it->length};
    struct section_result res = {0};
    const char *error;
    enum section_status st;
    if (att == IMAP_FETCH_BINARY_SIZE) {
        uint64_t size;
        struct imap_fetch_item whole_item = *it;
        whole_item.partial = false;
        if ((st = section_binary_size(&msg, &spec, &size, &error)) == SECTION_OK) {
            put_section_name(s, "BINARY.SIZE", &whole_item);
            imap_printf(s, " %llu", (unsigned long long)size);
        }
        return st;
    }
    struct sm_buf *out = &x->section;
    sm_buf_reset(out);
    st = att == IMAP_FETCH_BINARY
             ? section_binary(&msg, &spec, it->partial ? &partial : NULL, out, &res, &error)
             : section_body(&msg, &spec, it->partial ? &partial : NULL, out, &res, &error);
    if (st == SECTION_OK) {
        if (name != NULL)
            imap_printf(s, "%s", name);
        else
            put_section_name(s, att == IMAP_FETCH_BINARY ? "BINARY" : "BODY", it);
        imap_printf(s, " %s{%zu}\r\n", res.has_nul ? "~" : "", out->len);
        evbuffer_add(s->out, out->data ? (const char *)out->data : "", out->len);
    }
    return st;
}

/* Is every section of the request one section.c serves?  Its rules are
 * checked on an empty message, before any message is touched: a BAD
 * found halfway would come after \Seen was set on earlier messages, and
 * BAD tells the client nothing was done.  (The parser's bounds and
 * section.c's differ: more names, longer names.) */
static bool sections_valid(const struct imap_args_fetch *a)
{
    static const struct section_msg empty = {NULL, 0, NULL, 0};
    for (size_t i = 0; i < a->n_items; i++) {
        const struct imap_fetch_item *it = &a->items[i];
        if (it->att != IMAP_FETCH_BODY_SECTION && it->att != IMAP_FETCH_BINARY &&
            it->att != IMAP_FETCH_BINARY_SIZE)
            continue;
        unsigned parts[IMAP_SECTION_PARTS_MAX];
        for (size_t k = 0; k < it->section.n_parts; k++)
            parts[k] = it->section.parts[k];
        struct section_spec spec = {parts, (unsigned)it->section.n_parts,
                                    section_kinds[it->section.text], it->section.fields,
                                    (unsigned)it->section.n_fields};
        struct sm_buf out;
        const char *error;
        sm_buf_init(&out, 0);
        enum section_status st = it->att == IMAP_FETCH_BODY_SECTION
                                     ? section_body(&empty, &spec, NULL, &out, NULL, &error)
                                     : section_binary(&empty, &spec, NULL, &out, NULL, &error);
        sm_buf_free(&out);
        if (st == SECTION_BAD)
            return false;
    }
    return true;
}

static bool item_sets_seen(const struct imap_fetch_item *it)
{
    switch (it->att) {
    case IMAP_FETCH_RFC822: case IMAP_FETCH_RFC822_TEXT:
        return true;
    case IMAP_FETCH_BODY_SECTION: case IMAP_FETCH_BINARY:
        return !it->peek;
    default:
        return false;
    }
}

static enum section_status put_item(struct fetch_ctx *x, const struct imap_fetch_item *it,
                                    const struct mailbox_message *m, struct body *b)
{
    struct imap *s = x->s;
    static const struct imap_section whole = {.text = IMAP_SECTION_ALL};
    static const struct imap_section header = {.text = IMAP_SECTION_HEADER};
    static const struct imap_section text = {.text = IMAP_SECTION_TEXT};
    switch (it->att) {
    case IMAP_FETCH_ENVELOPE: imap_printf(s, "ENVELOPE %s", m->envelope); break;
    case IMAP_FETCH_FLAGS:
        imap_printf(s, "FLAGS ");
        imap_put_flags(s, m->flags | view_recent(&s->view, m->uid), m->keywords);
        break;
    case IMAP_FETCH_INTERNALDATE:
        imap_printf(s, "INTERNALDATE ");
        put_date(s, m->internaldate);
        break;
    case IMAP_FETCH_RFC822_SIZE: imap_printf(s, "RFC822.SIZE %" PRIu64, m->size); break;
    case IMAP_FETCH_BODY: imap_printf(s, "BODY %s", m->body); break;
    case IMAP_FETCH_BODYSTRUCTURE: imap_printf(s, "BODYSTRUCTURE %s", m->bodystructure); break;
    case IMAP_FETCH_UID: imap_printf(s, "UID %u", m->uid); break;
    case IMAP_FETCH_MODSEQ: imap_printf(s, "MODSEQ (%llu)", (unsigned long long)m->modseq); break;
    default:
        if (body_open(x, m, b) < 0)
            return SECTION_CORRUPT;
        if (it->att == IMAP_FETCH_RFC822)
            return put_section(x, it, &whole, IMAP_FETCH_BODY_SECTION, "RFC822", b);
        if (it->att == IMAP_FETCH_RFC822_HEADER)
            return put_section(x, it, &header, IMAP_FETCH_BODY_SECTION, "RFC822.HEADER", b);
        if (it->att == IMAP_FETCH_RFC822_TEXT)
            return put_section(x, it, &text, IMAP_FETCH_BODY_SECTION, "RFC822.TEXT", b);
        return put_section(x, it, &it->section, it->att, NULL, b);
    }
    return SECTION_OK;
}

/* \Seen on a fetched body (not in EXAMINE); the new flags go with the reply. */
static bool mark_seen(struct fetch_ctx *x, struct mailbox_message *m)
{
    if (!x->sets_seen || x->s->view.readonly || (m->flags & MAILBOX_SEEN))
        return false;
    struct mailbox_message after;
    const char *error;
    if (mailbox_store_flags(x->mb, x->s->view.folder, m->uid, MAILBOX_FLAGS_ADD, MAILBOX_SEEN,
                            NULL, 0, &after, &error) != 1)
        return false;
    m->flags = after.flags;
    m->modseq = after.modseq;
    view_own_change(x->s, after.modseq);
    x->s->notify_others = true;
    return true;
}

static void fetch_one(struct fetch_ctx *x, struct mailbox_message *m)
{
    struct imap *s = x->s;
    if (x->a->has_changedsince && m->modseq <= x->a->changedsince)
        return;
    bool seen_now = mark_seen(x, m);
    /* each item goes to a scratch buffer first: one that could not be
     * served (BINARY of an unknown encoding) leaves no trace, and when none
     * could, no empty "FETCH ()" is sent (it would not parse) */
    struct evbuffer *out = s->out, *list = evbuffer_new(), *item = evbuffer_new();
    bool uid_sent = false, flags_sent = false, modseq_sent = false;
    struct body b = {0};
    for (size_t i = 0; i < x->a->n_items; i++) {
        const struct imap_fetch_item *it = &x->a->items[i];
        s->out = item;
        enum section_status st = put_item(x, it, m, &b);
        if (st != SECTION_OK && x->failure == SECTION_OK)
            x->failure = st;
        if (evbuffer_get_length(item) > 0) {
            if (evbuffer_get_length(list) > 0)
                evbuffer_add(list, " ", 1);
            evbuffer_add_buffer(list, item);
        }
        uid_sent |= it->att == IMAP_FETCH_UID;
        flags_sent |= it->att == IMAP_FETCH_FLAGS;
        modseq_sent |= it->att == IMAP_FETCH_MODSEQ;
    }
    s->out = list;
    const char *sep = evbuffer_get_length(list) > 0 ? " " : "";
    if (s->cmd->uid && !uid_sent)
        imap_printf(s, "%sUID %u", sep, m->uid);
    sep = evbuffer_get_length(list) > 0 ? " " : "";
    if (seen_now && !flags_sent) {
        imap_printf(s, "%sFLAGS ", sep);
        imap_put_flags(s, m->flags | view_recent(&s->view, m->uid), m->keywords);
    }
    sep = evbuffer_get_length(list) > 0 ? " " : "";
    if (s->condstore && !modseq_sent && (x->a->has_changedsince || seen_now))
        imap_printf(s, "%sMODSEQ (%llu)", sep, (unsigned long long)m->modseq);
    s->out = out;
    if (evbuffer_get_length(list) > 0) {
        imap_printf(s, "* %u FETCH (", view_seq(&s->view, m->uid));
        evbuffer_add_buffer(s->out, list);
        imap_printf(s, ")\r\n");
    }
    evbuffer_free(list);
    evbuffer_free(item);
    body_close(&b);
}

/* What the items need, once per slice: which store texts, whether a body
 * item sets \Seen, whether every body item lies in the top header. */
static void fetch_plan(struct fetch_ctx *x)
{
    bool reads_body = false;
    x->headers_only = true;
    for (size_t i = 0; i < x->a->n_items; i++) {
        const struct imap_fetch_item *it = &x->a->items[i];
        struct section_spec spec = {NULL, (unsigned)it->section.n_parts,
                                    section_kinds[it->section.text], NULL, 0};
        x->sets_seen |= item_sets_seen(it);
        x->cols |= it->att == IMAP_FETCH_ENVELOPE        ? MAILBOX_COL_ENVELOPE
                   : it->att == IMAP_FETCH_BODYSTRUCTURE ? MAILBOX_COL_BODYSTRUCTURE
                   : it->att == IMAP_FETCH_BODY          ? MAILBOX_COL_BODY
                                                         : 0;
        if (it->att == IMAP_FETCH_RFC822 || it->att == IMAP_FETCH_RFC822_TEXT ||
            it->att == IMAP_FETCH_BINARY || it->att == IMAP_FETCH_BINARY_SIZE ||
            (it->att == IMAP_FETCH_BODY_SECTION && !section_header_only(&spec)))
            x->headers_only = false;
        reads_body |= it->att == IMAP_FETCH_RFC822_HEADER || it->att == IMAP_FETCH_BODY_SECTION;
    }
    /* header items only: the rows bring the stored header blocks */
    if (x->headers_only && reads_body)
        x->cols |= MAILBOX_COL_HEADER;
}

/* How many of uids[0..n) one read takes: ascending, at most FETCH_ROWS,
 * their range at most FETCH_SPREAD times their count. */
static size_t batch_len(const uint32_t *uids, size_t n)
{
    size_t k = 1;
    while (k < n && k < FETCH_ROWS && uids[k] > uids[k - 1] &&
           uids[k] - uids[0] < FETCH_SPREAD * (k + 1))
        k++;
    return k;
}

/* Serve the next batch of s->job_uids; false when the slice is full. */
static bool fetch_batch(struct fetch_ctx *x)
{
    struct imap *s = x->s;
    struct mailbox_list l;
    const char *error;
    uint32_t uids[FETCH_ROWS];
    size_t avail = 0, total = uidmap_count(&s->job_uids);
    struct uidmap_iter it;
    for (uint32_t u = uidmap_iter_start(&it, &s->job_uids, s->job_cursor + 1);
         u != 0 && avail < FETCH_ROWS; u = uidmap_iter_next(&it))
        uids[avail++] = u;
    size_t k = batch_len(uids, avail), row = 0;
    int r = mailbox_messages_list(x->mb, s->view.folder, uids, k, x->cols, &l, &error);
    if (r == -1) {
        log_warn("%016" PRIx64 " imap fetch-read-failed error=\"%s\"", client_id(s->c), error);
        x->failure = SECTION_CORRUPT;
    }
    /* a UID with no row was expunged by someone else: reported at the next sync */
    for (size_t i = 0; i < k; i++) {
        s->job_cursor++;
        if (row < l.n && l.v[row].uid == uids[i])
            fetch_one(x, &l.v[row++]);
        if (evbuffer_get_length(s->out) > FETCH_SLICE_BYTES && s->job_cursor < total)
            break;
    }
    mailbox_list_free(&l);
    return !(evbuffer_get_length(s->out) > FETCH_SLICE_BYTES && s->job_cursor < total);
}

/* The first slice: checks, then the UIDs to work through. */
static bool fetch_start(struct imap *s, struct mailbox *mb)
{
    const struct imap_args_fetch *a = &s->cmd->args.fetch;
    if (a->vanished && !s->qresync) {
        imap_tagged(s, "BAD", "VANISHED needs ENABLE QRESYNC");
        return false;
    }
    if (!view_seqs_valid(s, &a->set, s->cmd->uid)) {
        imap_tagged(s, "BAD", "Invalid message sequence number");
        return false;
    }
    if (!sections_valid(a)) {
        imap_tagged(s, "BAD", "Invalid section");
        return false;
    }
    bool asks_modseq = a->has_changedsince;
    for (size_t i = 0; i < a->n_items; i++)
        asks_modseq |= a->items[i].att == IMAP_FETCH_MODSEQ;
    if (asks_modseq)
        imap_condstore_on(s, mb);
    view_resolve_map(s, &a->set, s->cmd->uid, &s->job_uids);
    s->job_cursor = 0;
    s->job_failure = SECTION_OK;
    if (a->vanished) /* UID FETCH ... (CHANGEDSINCE n VANISHED): RFC 7162 §3.2.6 */
        view_vanished_earlier(s, mb, a->changedsince, &a->set);
    return true;
}

static void fetch_done(struct imap *s, enum section_status failure)
{
    uidmap_clear(&s->job_uids);
    switch (failure) {
    case SECTION_OK: imap_tagged(s, "OK", "FETCH completed"); break;
    case SECTION_BAD: imap_tagged(s, "BAD", "Invalid section"); break;
    case SECTION_TOO_BIG: imap_tagged(s, "NO", "[LIMIT] Section too big"); break;
    case SECTION_UNKNOWN_CTE: imap_tagged(s, "NO", "[UNKNOWN-CTE] Unknown encoding"); break;
    case SECTION_CORRUPT: imap_tagged(s, "NO", "[PARSE] Some message data could not be read");
        break;
    }
}

void cmd_fetch(struct imap *s, struct mailbox *mb)
{
    struct fetch_ctx x = {.s = s, .mb = mb, .a = &s->cmd->args.fetch, .failure = SECTION_OK};
    if (!s->job_more && !fetch_start(s, mb))
        return;
    /* a failure in an earlier slice decides the tagged reply too */
    x.failure = (enum section_status)s->job_failure;
    s->job_more = false;
    fetch_plan(&x);
    sm_buf_init(&x.section, FETCH_BODY_MAX);
    while (s->job_cursor < uidmap_count(&s->job_uids) && !s->job_more)
        s->job_more = !fetch_batch(&x);
    sm_buf_wipe_free(&x.section); /* message content: leave nothing behind */
    mailbox_body_release(&x.plain);
    s->job_failure = (int)x.failure;
    if (!s->job_more)
        fetch_done(s, x.failure);
}

/* ---- STORE ---------------------------------------------------------------------------- */

void cmd_store(struct imap *s, struct mailbox *mb)
{
    const struct imap_args_store *a = &s->cmd->args.store;
    static const enum mailbox_flag_op ops[] = {
        [IMAP_STORE_SET] = MAILBOX_FLAGS_SET, [IMAP_STORE_ADD] = MAILBOX_FLAGS_ADD,
        [IMAP_STORE_REMOVE] = MAILBOX_FLAGS_REMOVE};
    unsigned bits;
    const char *error = "";
    if (!view_seqs_valid(s, &a->set, s->cmd->uid)) {
        imap_tagged(s, "BAD", "Invalid message sequence number");
        return;
    }
    if (s->view.readonly) {
        imap_tagged(s, "NO", "[READ-ONLY] Mailbox is read-only");
        return;
    }
    char *kw = sm_malloc(MAILBOX_KEYWORDS_TEXT_MAX + 1);
    if (imap_flags_arg(s, a->flags, a->n_flags, &bits, kw) < 0) {
        free(kw);
        return;
    }
    if (a->has_unchangedsince)
        imap_condstore_on(s, mb);
    uint32_t *uids;
    size_t n = view_resolve(s, &a->set, s->cmd->uid, &uids);
    struct sm_buf modified;
    sm_buf_init(&modified, 1024 * 1024);
    int r = mailbox_begin(mb, &error);
    for (size_t i = 0; r == 0 && i < n; i++) {
        struct mailbox_message after;
        /* RFC 7162 §3.1.3: UNCHANGEDSINCE 0 always fails (to the store, 0 is "no condition") */
        int k = a->has_unchangedsince && a->unchangedsince == 0
                    ? 2
                    : mailbox_store_flags(mb, s->view.folder, uids[i], ops[a->op], bits, kw,
                                          a->has_unchangedsince ? a->unchangedsince : 0, &after,
                                          &error);
        if (k == MAILBOX_NONEXISTENT)
            continue;
        if (k < 0) {
            r = k;
            break;
        }
        if (k == 1)
            view_own_change(s, after.modseq);
        if (k == 2) {
            sm_buf_printf(&modified, "%s%u", modified.len ? "," : "",
                          s->cmd->uid ? uids[i] : view_seq(&s->view, uids[i]));
            continue;
        }
        if (a->silent && !(a->has_unchangedsince && k == 1))
            continue;
        imap_printf(s, "* %u FETCH (", view_seq(&s->view, uids[i]));
        if (s->cmd->uid)
            imap_printf(s, "UID %u ", uids[i]);
        if (a->silent) { /* RFC 7162 §3.1.3: a silent conditional STORE tells the MODSEQ only */
            imap_printf(s, "MODSEQ (%llu))\r\n", (unsigned long long)after.modseq);
            continue;
        }
        imap_printf(s, "FLAGS ");
        imap_put_flags(s, after.flags | view_recent(&s->view, after.uid), after.keywords);
        if (s->condstore)
            imap_printf(s, " MODSEQ (%llu)", (unsigned long long)after.modseq);
        imap_printf(s, ")\r\n");
    }
    if (r == 0)
        r = mailbox_commit(mb, &error);
    else
        mailbox_rollback(mb);
    if (r < 0)
        imap_store_failed(s, r, error);
    else if (modified.len > 0)
        imap_tagged(s, "OK", "[MODIFIED %s] Conditional STORE failed", sm_buf_str(&modified));
    else
        imap_tagged(s, "OK", "STORE completed");
    if (r == 0)
        s->notify_others = true;
    sm_buf_free(&modified);
    free(uids);
    free(kw);
}

/* ---- COPY, MOVE ----------------------------------------------------------------------- */

static void moved_away(void *arg, uint32_t uid)
{
    view_expunged(arg, uid);
}

static void put_uid_list(struct sm_buf *b, const uint32_t *uids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (uids[i] != 0)
            sm_buf_printf(b, "%s%u", b->len ? "," : "", uids[i]);
}

void cmd_copy(struct imap *s, struct mailbox *mb)
{
    const struct imap_args_copy *a = &s->cmd->args.copy;
    bool move = s->cmd->cmd == IMAP_CMD_MOVE;
    char to[MAILBOX_FOLDER_MAX + 1];
    const char *error = "";
    if (!view_seqs_valid(s, &a->set, s->cmd->uid)) {
        imap_tagged(s, "BAD", "Invalid message sequence number");
        return;
    }
    if (imap_mailbox_arg(s, a->mailbox, to) < 0)
        return;
    if (move && s->view.readonly) {
        imap_tagged(s, "NO", "[READ-ONLY] Mailbox is read-only");
        return;
    }
    uint32_t *uids, validity = 0;
    size_t n = view_resolve(s, &a->set, s->cmd->uid, &uids);
    uint32_t *new_uids = sm_calloc(n + 1, sizeof *new_uids);
    int r = n == 0 ? 0
                   : mailbox_copy(mb, s->view.folder, uids, n, to, move, new_uids, &validity,
                                  move ? moved_away : NULL, s, &error);
    if (r == MAILBOX_NONEXISTENT) {
        imap_tagged(s, "NO", "[TRYCREATE] No such mailbox");
    } else if (r < 0) {
        imap_store_failed(s, r, error);
    } else if (r == 0) {
        imap_tagged(s, "OK", "%s completed (nothing to do)", move ? "MOVE" : "COPY");
    } else {
        struct sm_buf from, dest;
        sm_buf_init(&from, 0);
        sm_buf_init(&dest, 0);
        for (size_t i = 0; i < n; i++)
            if (new_uids[i] != 0)
                sm_buf_printf(&from, "%s%u", from.len ? "," : "", uids[i]);
        put_uid_list(&dest, new_uids, n);
        s->notify_others = true;
        /* RFC 6851 §4.3: with MOVE the COPYUID goes in an untagged OK
         * before the expunges; here the expunges were written by the
         * callback already, which RFC 6851 §3.3 also allows */
        imap_tagged(s, "OK", "[COPYUID %u %s %s] %s completed", validity, sm_buf_str(&from),
                    sm_buf_str(&dest), move ? "MOVE" : "COPY");
        sm_buf_free(&from);
        sm_buf_free(&dest);
    }
    free(new_uids);
    free(uids);
}

/* ---- EXPUNGE, CLOSE ------------------------------------------------------------------ */

static int expunge(struct imap *s, struct mailbox *mb, bool report, const char **error_r)
{
    const struct imap_args_expunge *a = &s->cmd->args.expunge;
    uint32_t *uids = NULL;
    size_t n = 0;
    if (s->cmd->cmd == IMAP_CMD_EXPUNGE && s->cmd->uid)
        n = view_resolve(s, &a->set, true, &uids);
    int r = s->cmd->uid && n == 0
                ? 0
                : mailbox_expunge(mb, s->view.folder, uids, n, report ? moved_away : NULL, s,
                                  error_r);
    free(uids);
    if (r > 0)
        s->notify_others = true;
    return r;
}

void cmd_expunge(struct imap *s, struct mailbox *mb)
{
    const char *error;
    if (s->view.readonly) {
        imap_tagged(s, "NO", "[READ-ONLY] Mailbox is read-only");
        return;
    }
    int r = expunge(s, mb, true, &error);
    struct mailbox_folder f;
    if (r < 0)
        imap_store_failed(s, r, error);
    else if (s->qresync && mailbox_folder_get(mb, s->view.folder, &f, &error) == 1)
        /* RFC 7162 §3.2.7: the new HIGHESTMODSEQ goes with the reply */
        imap_tagged(s, "OK", "[HIGHESTMODSEQ %llu] EXPUNGE completed",
                    (unsigned long long)f.highestmodseq);
    else
        imap_tagged(s, "OK", "EXPUNGE completed");
}

/* CLOSE expunges silently (RFC 9051 §6.4.2), then deselects. */
void cmd_close(struct imap *s, struct mailbox *mb)
{
    const char *error;
    if (!s->view.readonly && expunge(s, mb, false, &error) < 0)
        log_warn("%016" PRIx64 " imap close-expunge-failed error=\"%s\"", client_id(s->c), error);
    view_close(s);
    s->state = IMAP_AUTH;
    imap_tagged(s, "OK", "CLOSE completed");
}
