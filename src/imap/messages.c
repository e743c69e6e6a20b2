/* messages.c — commands on the messages of the selected folder: FETCH
 * (CONDSTORE, QRESYNC VANISHED, BINARY), STORE (UNCHANGEDSINCE), COPY and
 * MOVE (UIDPLUS), EXPUNGE and UID EXPUNGE, CLOSE.  On a worker with the
 * store locked (session.h).  FETCH works in slices of FETCH_SLICE_BYTES of
 * output so that a client asking for every body of a big folder costs
 * bounded memory: the loop sends a slice, then runs the next. */
#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/mem.h"
#include "imap/session.h"
#include "crypto/seal.h"
#include "mime/section.h"

#define FETCH_SLICE_BYTES (1024 * 1024)
#define FETCH_BODY_MAX ((size_t)2048 * 1024 * 1024)

/* ---- FETCH ----------------------------------------------------------------------- */

/* A message body opened for the items of one FETCH response. */
struct body {
    bool open, failed;
    unsigned char *data;
    size_t len;
    struct mime_part_offsets *parts;
    unsigned n_parts;
};

/* The body is read into the heap, not mapped: unmapping a mapping per
 * message made every CPU flush its TLB, a third of FETCH's time. */
static int body_open(struct mailbox *mb, const struct mailbox_message *m, struct body *b)
{
    const char *error;
    struct stat st;
    if (b->open || b->failed)
        return b->failed ? -1 : 0;
    int fd = mailbox_open_body(mb, m->file, &error);
    if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size > FETCH_BODY_MAX ||
        mailbox_parts_decode(m->parts, &b->parts, &b->n_parts) < 0) {
        log_warn("imap body-unreadable uid=%u error=\"%s\"", m->uid,
                 fd < 0 ? error : "bad part offsets");
        if (fd >= 0)
            close(fd);
        b->failed = true;
        return -1;
    }
    b->len = (size_t)st.st_size;
    b->data = sm_malloc(b->len + 1);
    size_t got = 0;
    while (got < b->len) {
        ssize_t n = pread(fd, b->data + got, b->len - got, (off_t)got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got != b->len) {
        b->failed = true;
        return -1;
    }
    b->open = true;
    return 0;
}

static void body_close(struct body *b)
{
    if (b->data != NULL)
        seal_wipe(b->data, b->len); /* plaintext of a message: leave nothing behind */
    free(b->data);
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
static enum section_status put_section(struct imap *s, const struct imap_fetch_item *it,
                                       const struct imap_section *sec, enum imap_fetch_att att,
                                       const char *name, struct body *b)
{
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
    struct sm_buf out;
    sm_buf_init(&out, FETCH_BODY_MAX);
    st = att == IMAP_FETCH_BINARY
             ? section_binary(&msg, &spec, it->partial ? &partial : NULL, &out, &res, &error)
             : section_body(&msg, &spec, it->partial ? &partial : NULL, &out, &res, &error);
    if (st == SECTION_OK) {
        if (name != NULL)
            imap_printf(s, "%s", name);
        else
            put_section_name(s, att == IMAP_FETCH_BINARY ? "BINARY" : "BODY", it);
        imap_printf(s, " %s{%zu}\r\n", res.has_nul ? "~" : "", out.len);
        evbuffer_add(s->out, out.data ? (const char *)out.data : "", out.len);
    }
    sm_buf_free(&out);
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

struct fetch_ctx {
    struct imap *s;
    struct mailbox *mb;
    const struct imap_args_fetch *a;
    enum section_status failure;
};

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
        if (body_open(x->mb, m, b) < 0)
            return SECTION_CORRUPT;
        if (it->att == IMAP_FETCH_RFC822)
            return put_section(s, it, &whole, IMAP_FETCH_BODY_SECTION, "RFC822", b);
        if (it->att == IMAP_FETCH_RFC822_HEADER)
            return put_section(s, it, &header, IMAP_FETCH_BODY_SECTION, "RFC822.HEADER", b);
        if (it->att == IMAP_FETCH_RFC822_TEXT)
            return put_section(s, it, &text, IMAP_FETCH_BODY_SECTION, "RFC822.TEXT", b);
        return put_section(s, it, &it->section, it->att, NULL, b);
    }
    return SECTION_OK;
}

/* \Seen on a fetched body (not in EXAMINE); the new flags go with the reply. */
static bool mark_seen(struct fetch_ctx *x, struct mailbox_message *m)
{
    bool wants = false;
    for (size_t i = 0; i < x->a->n_items; i++)
        wants |= item_sets_seen(&x->a->items[i]);
    if (!wants || x->s->view.readonly || (m->flags & MAILBOX_SEEN))
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

static void fetch_one(struct fetch_ctx *x, uint32_t uid)
{
    struct imap *s = x->s;
    struct mailbox_message m;
    const char *error;
    if (mailbox_message_get(x->mb, s->view.folder, uid, &m, &error) != 1)
        return; /* expunged by someone else: reported at the next sync */
    if (x->a->has_changedsince && m.modseq <= x->a->changedsince)
        return;
    bool seen_now = mark_seen(x, &m);
    if (seen_now) /* the store reused its strings: read the message again */
        mailbox_message_get(x->mb, s->view.folder, uid, &m, &error);
    /* each item goes to a scratch buffer first: one that could not be
     * served (BINARY of an unknown encoding) leaves no trace, and when none
     * could, no empty "FETCH ()" is sent (it would not parse) */
    struct evbuffer *out = s->out, *list = evbuffer_new(), *item = evbuffer_new();
    bool uid_sent = false, flags_sent = false, modseq_sent = false;
    struct body b = {0};
    for (size_t i = 0; i < x->a->n_items; i++) {
        const struct imap_fetch_item *it = &x->a->items[i];
        s->out = item;
        enum section_status st = put_item(x, it, &m, &b);
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
        imap_printf(s, "%sUID %u", sep, uid);
    sep = evbuffer_get_length(list) > 0 ? " " : "";
    if (seen_now && !flags_sent) {
        imap_printf(s, "%sFLAGS ", sep);
        imap_put_flags(s, m.flags | view_recent(&s->view, m.uid), m.keywords);
    }
    sep = evbuffer_get_length(list) > 0 ? " " : "";
    if (s->condstore && !modseq_sent && (x->a->has_changedsince || seen_now))
        imap_printf(s, "%sMODSEQ (%llu)", sep, (unsigned long long)m.modseq);
    s->out = out;
    if (evbuffer_get_length(list) > 0) {
        imap_printf(s, "* %u FETCH (", view_seq(&s->view, uid));
        evbuffer_add_buffer(s->out, list);
        imap_printf(s, ")\r\n");
    }
    evbuffer_free(list);
    evbuffer_free(item);
    body_close(&b);
}

void cmd_fetch(struct imap *s, struct mailbox *mb)
{
    const struct imap_args_fetch *a = &s->cmd->args.fetch;
    struct fetch_ctx x = {s, mb, a, SECTION_OK};
    if (!s->job_more) {
        if (a->vanished && !s->qresync) {
            imap_tagged(s, "BAD", "VANISHED needs ENABLE QRESYNC");
            return;
        }
        if (!view_seqs_valid(s, &a->set, s->cmd->uid)) {
            imap_tagged(s, "BAD", "Invalid message sequence number");
            return;
        }
        if (!sections_valid(a)) {
            imap_tagged(s, "BAD", "Invalid section");
            return;
        }
        bool asks_modseq = a->has_changedsince;
        for (size_t i = 0; i < a->n_items; i++)
            asks_modseq |= a->items[i].att == IMAP_FETCH_MODSEQ;
        if (asks_modseq)
            imap_condstore_on(s, mb);
        s->job_n = view_resolve(s, &a->set, s->cmd->uid, &s->job_uids);
        s->job_cursor = 0;
        if (a->vanished) /* UID FETCH ... (CHANGEDSINCE n VANISHED): RFC 7162 §3.2.6 */
            view_vanished_earlier(s, mb, a->changedsince, &a->set);
    }
    s->job_more = false;
    while (s->job_cursor < s->job_n) {
        fetch_one(&x, s->job_uids[s->job_cursor++]);
        if (evbuffer_get_length(s->out) > FETCH_SLICE_BYTES && s->job_cursor < s->job_n) {
            s->job_more = true;
            return;
        }
    }
    free(s->job_uids);
    s->job_uids = NULL;
    switch (x.failure) {
    case SECTION_OK: imap_tagged(s, "OK", "FETCH completed"); break;
    case SECTION_BAD: imap_tagged(s, "BAD", "Invalid section"); break;
    case SECTION_TOO_BIG: imap_tagged(s, "NO", "[LIMIT] Section too big"); break;
    case SECTION_UNKNOWN_CTE: imap_tagged(s, "NO", "[UNKNOWN-CTE] Unknown encoding"); break;
    case SECTION_CORRUPT: imap_tagged(s, "NO", "[PARSE] Some message data could not be read");
        break;
    }
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
