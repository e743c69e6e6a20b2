/* view.c — the selected folder as the client sees it (see session.h).
 *
 * The view is the UID list the client's sequence numbers index (a uidmap:
 * runs of consecutive UIDs, see uidmap.h).  It moves
 * only when the session reports a change: new messages are appended with
 * EXISTS; messages gone from the store are removed with EXPUNGE (or
 * VANISHED under QRESYNC) only when RFC 9051 §7.5.1 allows it (not during
 * FETCH, STORE or SEARCH); until then they keep their sequence numbers.
 * Flag changes by others are reported as FETCH (FLAGS ...) by MODSEQ.
 * mailbox_change_token() makes a sync with nothing new cost one query. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "imap/session.h"

static void view_reset(struct imap_view *v)
{
    uidmap_clear(&v->uids);
    uidmap_clear(&v->recent);
    memset(v, 0, sizeof *v);
}

/* The UIDs of the view above before (ascending, from index from on) are
 * recent to this session. */
static void recent_add(struct imap_view *v, size_t from, uint32_t before)
{
    struct uidmap_iter it;
    for (uint32_t uid = uidmap_iter_start(&it, &v->uids, from + 1); uid != 0;
         uid = uidmap_iter_next(&it))
        if (uid > before)
            uidmap_append(&v->recent, uid);
}

/* \Recent (RFC 3501 §2.3.2): the messages from index from on that no
 * session has been shown are recent to this one; a read-write session
 * claims them, so that no other session sees them as recent. */
static void recent_claim(struct imap_view *v, struct mailbox *mb, size_t from)
{
    uint32_t before;
    const char *error;
    uint32_t top = view_max_uid(v);
    if (from < view_count(v) &&
        mailbox_recent(mb, v->folder, v->readonly ? 0 : top, &before, NULL, &error) == 0)
        recent_add(v, from, before);
}

unsigned view_recent(const struct imap_view *v, uint32_t uid)
{
    return uidmap_seq(&v->recent, uid) != 0 ? IMAP_FLAG_RECENT : 0;
}

/* The recent UIDs are all in the view: an expunge leaves both. */
size_t view_recent_count(const struct imap_view *v)
{
    return uidmap_count(&v->recent);
}

size_t uid_find(const uint32_t *uids, size_t n, uint32_t uid)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (uids[mid] < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && uids[lo] == uid ? lo : n;
}

int view_select(struct imap *s, struct mailbox *mb, const char *folder, bool readonly)
{
    struct imap_view *v = &s->view;
    struct mailbox_folder f;
    const char *error;
    view_reset(v);
    s->saved_valid = false;
    int r = mailbox_folder_get(mb, folder, &f, &error);
    if (r <= 0)
        return r == 0 ? MAILBOX_NONEXISTENT : r;
    uint32_t *uids;
    size_t n;
    if (mailbox_change_token(mb, &v->token, &error) < 0 ||
        (r = mailbox_uids(mb, folder, &uids, &n, &error)) < 0)
        return r;
    uidmap_from_array(&v->uids, uids, n);
    free(uids);
    v->selected = true;
    v->readonly = readonly;
    v->uidvalidity = f.uidvalidity;
    v->modseq = f.highestmodseq;
    snprintf(v->folder, sizeof v->folder, "%s", folder);
    recent_claim(v, mb, 0);
    return 0;
}

void view_close(struct imap *s)
{
    view_reset(&s->view);
    s->saved_valid = false;
}

void imap_condstore_on(struct imap *s, struct mailbox *mb)
{
    struct mailbox_folder f;
    const char *error;
    if (s->condstore)
        return;
    s->condstore = true;
    if (s->view.selected && mailbox_folder_get(mb, s->view.folder, &f, &error) == 1)
        imap_printf(s, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
                    (unsigned long long)f.highestmodseq);
}

bool view_seqs_valid(const struct imap *s, const struct imap_seqset *set, bool uid)
{
    if (uid || set->saved)
        return true;
    for (size_t i = 0; i < set->n; i++) {
        uint32_t lo = set->ranges[i].lo, hi = set->ranges[i].hi;
        uint32_t n = view_count(&s->view);
        if ((lo != IMAP_SEQ_STAR && lo > n) || (hi != IMAP_SEQ_STAR && hi > n))
            return false;
    }
    return true;
}

void view_own_change(struct imap *s, uint64_t modseq)
{
    if (modseq == s->view.modseq + 1)
        s->view.modseq = modseq;
}

void view_expunged(struct imap *s, uint32_t uid)
{
    struct imap_view *v = &s->view;
    size_t seq = uidmap_remove(&v->uids, uid);
    if (seq == 0)
        return;
    uidmap_remove(&v->recent, uid);
    if (s->qresync)
        imap_printf(s, "* VANISHED %u\r\n", uid);
    else
        imap_printf(s, "* %zu EXPUNGE\r\n", seq);
}

/* ---- sync ---------------------------------------------------------------- */

struct sync_ctx {
    struct imap *s;
    uint32_t last_known; /* the highest UID the client knew before this sync */
};

static void report_flags(void *arg, const struct mailbox_message *m)
{
    struct sync_ctx *x = arg;
    struct imap *s = x->s;
    uint32_t seq = m->uid <= x->last_known ? view_seq(&s->view, m->uid) : 0;
    if (seq == 0)
        return; /* a new message: EXISTS covers it */
    imap_printf(s, "* %u FETCH (", seq);
    if (s->qresync)
        imap_printf(s, "UID %u ", m->uid);
    imap_printf(s, "FLAGS ");
    imap_put_flags(s, m->flags | view_recent(&s->view, m->uid), m->keywords);
    if (s->condstore)
        imap_printf(s, " MODSEQ (%llu)", (unsigned long long)m->modseq);
    imap_printf(s, ")\r\n");
}

/* Messages of the view the store no longer holds, reported and removed:
 * the view is rebuilt from those kept (one pass, whatever the holes). */
static void sync_expunges(struct imap *s, const uint32_t *now, size_t n_now)
{
    struct imap_view *v = &s->view;
    struct uidmap kept = {0};
    struct uidmap_iter it;
    size_t j = 0, keep = 0;
    uint32_t first_gone = 0, last_gone = 0;
    for (uint32_t uid = uidmap_iter_start(&it, &v->uids, 1); uid != 0;
         uid = uidmap_iter_next(&it)) {
        while (j < n_now && now[j] < uid)
            j++;
        if (j < n_now && now[j] == uid) {
            uidmap_append(&kept, uid);
            keep++;
            continue;
        }
        uidmap_remove(&v->recent, uid);
        if (!s->qresync) {
            /* each EXPUNGE renumbers what follows: the next gone one has
             * the sequence number of the first kept after it, so far */
            imap_printf(s, "* %zu EXPUNGE\r\n", keep + 1);
            continue;
        }
        if (first_gone != 0 && uid != last_gone + 1) {
            imap_printf(s, "* VANISHED %u:%u\r\n", first_gone, last_gone);
            first_gone = 0;
        }
        if (first_gone == 0)
            first_gone = uid;
        last_gone = uid;
    }
    if (first_gone != 0)
        imap_printf(s, "* VANISHED %u:%u\r\n", first_gone, last_gone);
    if (keep < uidmap_count(&v->uids)) {
        uidmap_trim(&kept);
        uidmap_move(&v->uids, &kept);
    }
    uidmap_clear(&kept);
}

void view_sync(struct imap *s, struct mailbox *mb, bool may_expunge)
{
    struct imap_view *v = &s->view;
    const char *error;
    uint64_t token;
    if (!v->selected || mailbox_change_token(mb, &token, &error) < 0 || token == v->token)
        return;
    uint32_t *now;
    size_t n_now;
    struct mailbox_folder f;
    if (mailbox_folder_get(mb, v->folder, &f, &error) != 1 ||
        mailbox_uids(mb, v->folder, &now, &n_now, &error) < 0)
        return; /* the folder was deleted under us: the next command says so */
    struct sync_ctx x = {s, view_max_uid(v)};
    bool added = false;
    if (may_expunge)
        sync_expunges(s, now, n_now);
    size_t first_new = view_count(v);
    for (size_t i = 0; i < n_now; i++)
        if (now[i] > x.last_known)
            added |= uidmap_append(&v->uids, now[i]);
    if (added) {
        recent_claim(v, mb, first_new);
        imap_printf(s, "* %u EXISTS\r\n", view_count(v));
        if (!s->rev2)
            imap_printf(s, "* %zu RECENT\r\n", view_recent_count(v));
    }
    if (f.highestmodseq > v->modseq)
        mailbox_changes(mb, v->folder, v->modseq, report_flags, NULL, &x, &error);
    v->modseq = f.highestmodseq;
    free(now);
    /* the token is only consumed when expunges could be reported too, so
     * that pending ones are found by the next sync that may send them */
    if (may_expunge)
        v->token = token;
}

/* A resolved copy of set (free its ranges): membership by binary search. */
struct imap_seqset view_set_resolved(const struct imap_seqset *set, uint32_t max)
{
    struct imap_seqset copy = *set;
    copy.ranges = sm_calloc(set->n + 1, sizeof *copy.ranges);
    memcpy(copy.ranges, set->ranges, set->n * sizeof *copy.ranges);
    imap_seqset_resolve(&copy, max);
    return copy;
}

/* ---- VANISHED (EARLIER) ------------------------------------------------- */

#define VANISHED_PER_LINE 500 /* ranges in one response line; more lines follow */

struct vanished_out {
    struct imap *s;
    const struct imap_seqset *filter; /* NULL: every UID */
    uint32_t lo, hi;                  /* the range being built; lo 0: none */
    unsigned in_line;
};

static void vanished_flush(struct vanished_out *v)
{
    if (v->lo == 0)
        return;
    imap_printf(v->s, "%s%u", v->in_line == 0 ? "* VANISHED (EARLIER) " : ",", v->lo);
    if (v->hi != v->lo)
        imap_printf(v->s, ":%u", v->hi);
    v->lo = 0;
    if (++v->in_line == VANISHED_PER_LINE) {
        imap_printf(v->s, "\r\n");
        v->in_line = 0;
    }
}

static void vanished_add(void *arg, uint32_t uid)
{
    struct vanished_out *v = arg;
    if (v->filter != NULL && !imap_seqset_contains(v->filter, uid, UINT32_MAX))
        return;
    if (v->lo != 0 && uid == v->hi + 1) {
        v->hi = uid;
        return;
    }
    vanished_flush(v);
    v->lo = v->hi = uid;
}

void view_vanished_earlier(struct imap *s, struct mailbox *mb, uint64_t since,
                           const struct imap_seqset *filter)
{
    struct imap_seqset resolved = {0};
    if (filter != NULL && filter->n > 0)
        resolved = view_set_resolved(filter, UINT32_MAX);
    struct vanished_out v = {s, resolved.ranges != NULL ? &resolved : NULL, 0, 0, 0};
    const char *error;
    mailbox_changes(mb, s->view.folder, since, NULL, vanished_add, &v, &error);
    vanished_flush(&v);
    if (v.in_line > 0)
        imap_printf(s, "\r\n");
    free(resolved.ranges);
}

/* ---- sets --------------------------------------------------------------- */

static void resolve_saved(struct imap *s, struct uidmap *out)
{
    for (size_t i = 0; s->saved_valid && i < s->n_saved; i++)
        if (view_seq(&s->view, s->saved[i]) != 0)
            uidmap_append(out, s->saved[i]);
}

size_t view_resolve_map(struct imap *s, const struct imap_seqset *set, bool uid,
                        struct uidmap *out)
{
    struct imap_view *v = &s->view;
    uidmap_clear(out);
    if (set->saved) {
        resolve_saved(s, out);
        return uidmap_count(out);
    }
    uint32_t max = uid ? view_max_uid(v) : view_count(v);
    struct imap_seqset copy = view_set_resolved(set, max);
    /* the ranges are sorted and disjoint: each is one walk of the view,
     * from the first message it holds to the last */
    for (size_t r = 0; r < copy.n; r++) {
        const struct imap_seq_range *q = &copy.ranges[r];
        struct uidmap_iter it;
        size_t seq = uid ? uidmap_seq_at_least(&v->uids, q->lo) : q->lo;
        size_t last = uid ? uidmap_seq_at_least(&v->uids, q->hi) : q->hi;
        if (uid && view_uid(v, (uint32_t)last) != q->hi)
            last--; /* hi itself is not in the view: the one below it is the last */
        for (uint32_t u = uidmap_iter_start(&it, &v->uids, seq); u != 0 && seq <= last;
             u = uidmap_iter_next(&it), seq++)
            uidmap_append(out, u);
    }
    free(copy.ranges);
    uidmap_trim(out);
    return uidmap_count(out);
}

size_t view_resolve(struct imap *s, const struct imap_seqset *set, bool uid, uint32_t **uids_r)
{
    struct uidmap m = {0};
    size_t n = view_resolve_map(s, set, uid, &m), i = 0;
    uint32_t *out = sm_calloc(n + 1, sizeof *out);
    struct uidmap_iter it;
    for (uint32_t u = uidmap_iter_start(&it, &m, 1); u != 0; u = uidmap_iter_next(&it))
        out[i++] = u;
    uidmap_clear(&m);
    *uids_r = out;
    return n;
}
