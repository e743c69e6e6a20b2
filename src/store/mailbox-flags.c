/* mailbox-flags.c — changing the mail of a folder: UIDs and MODSEQs,
 * STORE of flags and keywords, EXPUNGE, COPY and MOVE (see mailbox.h).
 *
 * Keywords are IMAP atoms, compared case-insensitively; each folder keeps
 * the set it has used (the keywords table) and a message's keywords take
 * the folder's spelling, so "$junk" stored on a message of a folder that
 * knows "$Junk" stays "$Junk".  A message's keywords are one string of
 * space-separated words in mail.keywords.
 *
 * Mail rows share body rows: copy makes a new mail row for the same
 * message; removing a mail row deletes the body (its messages row now, its
 * file after the commit) only when no other row holds it. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "store/mailbox-internal.h"

/* --- keywords ------------------------------------------------------------------- */

static bool atom_char(unsigned char c)
{
    return c > 0x20 && c < 0x7F && strchr("(){%*\"\\]", c) == NULL;
}

static bool keyword_valid(const char *w)
{
    size_t n = 0;
    for (; w[n] != '\0'; n++)
        if (!atom_char((unsigned char)w[n]) || n >= MAILBOX_KEYWORD_MAX)
            return false;
    return n > 0;
}

static bool keywords_have(const struct mb_keywords *k, const char *w)
{
    for (unsigned i = 0; i < k->n; i++)
        if (strcasecmp(k->v[i], w) == 0)
            return true;
    return false;
}

static void keywords_push(struct mb_keywords *k, char *w)
{
    if ((k->n & (k->n + 1)) == 0) /* 0, 1, 3, 7, ...: grow */
        k->v = sm_realloc(k->v, (2 * (size_t)k->n + 2) * sizeof *k->v);
    k->v[k->n++] = w;
}

int mb_keywords_parse(const char *text, struct mb_keywords *k, const char **error_r)
{
    memset(k, 0, sizeof *k);
    if (text == NULL)
        return 0;
    if (strnlen(text, MAILBOX_KEYWORDS_TEXT_MAX + 1) > MAILBOX_KEYWORDS_TEXT_MAX) {
        *error_r = "too many keywords";
        return -1;
    }
    k->buf = sm_strdup(text);
    char *save = NULL;
    for (char *w = strtok_r(k->buf, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) {
        if (!keyword_valid(w)) {
            *error_r = "invalid keyword";
            mb_keywords_free(k);
            return -1;
        }
        if (keywords_have(k, w))
            continue;
        if (k->n == MAILBOX_MESSAGE_KEYWORDS) {
            *error_r = "too many keywords";
            mb_keywords_free(k);
            return -1;
        }
        keywords_push(k, w);
    }
    return 0;
}

void mb_keywords_free(struct mb_keywords *k)
{
    free(k->buf);
    free(k->v);
    memset(k, 0, sizeof *k);
}

void mb_keywords_join(const struct mb_keywords *k, struct sm_buf *b)
{
    for (unsigned i = 0; i < k->n; i++) {
        if (i > 0)
            sm_buf_puts(b, " ");
        sm_buf_puts(b, k->v[i]);
    }
}

static const char SQL_KEYWORD_FIND[] =
    "SELECT keyword FROM keywords WHERE folder_id = ?1 AND keyword = ?2";
static const char SQL_KEYWORD_COUNT[] = "SELECT count(*) FROM keywords WHERE folder_id = ?1";
static const char SQL_KEYWORD_ADD[] = "INSERT INTO keywords (folder_id, keyword) VALUES (?1, ?2)";

static const char SQL_KEYWORD_PRUNE[] =
    "DELETE FROM keywords WHERE folder_id = ?1 AND NOT EXISTS (SELECT 1 FROM mail"
    " WHERE folder_id = ?1 AND"
    " instr(' ' || lower(mail.keywords) || ' ', ' ' || lower(keywords.keyword) || ' ') > 0)";

/* The number of keywords folder knows, or -1. */
static int64_t keyword_count(struct mailbox *mb, int64_t folder, const char **error_r)
{
    sqlite3_stmt *st = mb_stmt(mb, SQL_KEYWORD_COUNT, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, folder);
    int rc = sqlite3_step(st);
    int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    if (n < 0)
        *error_r = mb_db_error(mb, "store");
    mb_done(mb, st);
    return n;
}

/* Room for one more keyword in folder?  At the limit, the keywords no
 * message of the folder holds any more are forgotten first (a scan, but
 * only then).  0, or -1 with *error_r. */
static int keyword_room(struct mailbox *mb, int64_t folder, const char **error_r)
{
    int64_t n = keyword_count(mb, folder, error_r);
    if (n >= MAILBOX_FOLDER_KEYWORDS) {
        sqlite3_stmt *st = mb_stmt(mb, SQL_KEYWORD_PRUNE, error_r);
        if (st == NULL)
            return -1;
        sqlite3_bind_int64(st, 1, folder);
        if (mb_run(mb, st, error_r) != SQLITE_DONE)
            return -1;
        n = keyword_count(mb, folder, error_r);
    }
    if (n >= MAILBOX_FOLDER_KEYWORDS)
        *error_r = "too many keywords in this folder";
    return n >= 0 && n < MAILBOX_FOLDER_KEYWORDS ? 0 : -1;
}

/* Register w in folder: 1 when new, 0 when known (w takes the folder's
 * spelling: the same length, only the case differs), -1. */
static int keyword_adopt(struct mailbox *mb, int64_t folder, char *w, bool enforce,
                         const char **error_r)
{
    sqlite3_stmt *st = mb_stmt(mb, SQL_KEYWORD_FIND, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, folder);
    sqlite3_bind_text(st, 2, w, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && strlen(mb_col_text(st, 0)) == strlen(w))
        memcpy(w, mb_col_text(st, 0), strlen(w));
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        *error_r = mb_db_error(mb, "store");
    mb_done(mb, st);
    if (rc != SQLITE_DONE)
        return rc == SQLITE_ROW ? 0 : -1;
    if (enforce && keyword_room(mb, folder, error_r) < 0)
        return -1;
    if ((st = mb_stmt(mb, SQL_KEYWORD_ADD, error_r)) == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, folder);
    sqlite3_bind_text(st, 2, w, -1, SQLITE_STATIC);
    return mb_run(mb, st, error_r) == SQLITE_DONE ? 1 : -1;
}

int mb_keywords_adopt(struct mailbox *mb, int64_t folder, struct mb_keywords *k, bool enforce,
                      const char **error_r)
{
    for (unsigned i = 0; i < k->n; i++)
        if (keyword_adopt(mb, folder, k->v[i], enforce, error_r) < 0)
            return -1;
    return 0;
}

/* --- UIDs, MODSEQs and rows ----------------------------------------------------- */

static const char SQL_NEXT_UID[] =
    "UPDATE folders SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1"
    " WHERE id = ?1 AND uidnext < 4294967295 RETURNING uidnext - 1, highestmodseq";
static const char SQL_NEXT_MODSEQ[] = "UPDATE folders SET highestmodseq = highestmodseq + 1"
                                      " WHERE id = ?1 RETURNING highestmodseq";
static const char SQL_INSERT_MAIL[] =
    "INSERT INTO mail (folder_id, uid, message_id, flags, keywords, modseq)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/* Step an UPDATE ... RETURNING of folder that returns one or two numbers. */
static int returning(struct mailbox *mb, const char *sql, int64_t folder, int64_t *a,
                     int64_t *b, const char **error_r)
{
    sqlite3_stmt *st = mb_stmt(mb, sql, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, folder);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *a = sqlite3_column_int64(st, 0);
        if (b != NULL)
            *b = sqlite3_column_int64(st, 1);
    } else {
        *error_r = rc == SQLITE_DONE ? "folder has used all its UIDs" : mb_db_error(mb, "store");
    }
    mb_done(mb, st);
    return rc == SQLITE_ROW ? 0 : -1;
}

int mb_next_uid(struct mailbox *mb, int64_t folder, uint32_t *uid_r, uint64_t *modseq_r,
                const char **error_r)
{
    int64_t uid, modseq;
    if (returning(mb, SQL_NEXT_UID, folder, &uid, &modseq, error_r) < 0)
        return -1;
    *uid_r = (uint32_t)uid;
    *modseq_r = (uint64_t)modseq;
    return 0;
}

int mb_next_modseq(struct mailbox *mb, int64_t folder, uint64_t *modseq_r,
                   const char **error_r)
{
    int64_t modseq;
    if (returning(mb, SQL_NEXT_MODSEQ, folder, &modseq, NULL, error_r) < 0)
        return -1;
    *modseq_r = (uint64_t)modseq;
    return 0;
}

int mb_insert_mail(struct mailbox *mb, int64_t folder, int64_t message, unsigned flags,
                   const char *keywords, uint32_t *uid_r, const char **error_r)
{
    uint64_t modseq;
    if (mb_next_uid(mb, folder, uid_r, &modseq, error_r) < 0)
        return -1;
    sqlite3_stmt *st = mb_stmt(mb, SQL_INSERT_MAIL, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, folder);
    sqlite3_bind_int64(st, 2, *uid_r);
    sqlite3_bind_int64(st, 3, message);
    sqlite3_bind_int(st, 4, (int)flags);
    sqlite3_bind_text(st, 5, keywords, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)modseq);
    return mb_run(mb, st, error_r) == SQLITE_DONE ? 0 : -1;
}

static const char SQL_REFERENCED[] = "SELECT 1 FROM mail WHERE message_id = ?1 LIMIT 1";
static const char SQL_MESSAGE_FILE[] = "SELECT file FROM messages WHERE id = ?1";
/* Not "DELETE ... RETURNING file": with the FTS5 delete trigger firing, a
 * RETURNING statement reset after its row fails with "SQL logic error" on
 * Debian 12's SQLite 3.40 and rolls the whole transaction back. */
static const char SQL_DELETE_MESSAGE[] = "DELETE FROM messages WHERE id = ?1";

int mb_release_message(struct mailbox *mb, int64_t message, const char **error_r)
{
    sqlite3_stmt *st = mb_stmt(mb, SQL_REFERENCED, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, message);
    int rc = mb_run(mb, st, error_r);
    if (rc != SQLITE_DONE)
        return rc == SQLITE_ROW ? 0 : -1; /* another folder holds it */
    if ((st = mb_stmt(mb, SQL_MESSAGE_FILE, error_r)) == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, message);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        mb_names_add(&mb->doomed, mb_col_text(st, 0)); /* removed after the commit */
    else
        *error_r = rc == SQLITE_DONE ? "message row vanished" : mb_db_error(mb, "store");
    mb_done(mb, st);
    if (rc != SQLITE_ROW || (st = mb_stmt(mb, SQL_DELETE_MESSAGE, error_r)) == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, message);
    return mb_run(mb, st, error_r) == SQLITE_DONE ? 0 : -1;
}

static const char SQL_EXPUNGED[] =
    "INSERT OR REPLACE INTO expunged (folder_id, uid, modseq) VALUES (?1, ?2, ?3)";

int mb_record_expunged(struct mailbox *mb, int64_t folder, const uint32_t *uids, size_t n,
                       const char **error_r)
{
    uint64_t modseq;
    if (mb_next_modseq(mb, folder, &modseq, error_r) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *st = mb_stmt(mb, SQL_EXPUNGED, error_r);
        if (st == NULL)
            return -1;
        sqlite3_bind_int64(st, 1, folder);
        sqlite3_bind_int64(st, 2, uids[i]);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)modseq);
        if (mb_run(mb, st, error_r) != SQLITE_DONE)
            return -1;
    }
    return 0;
}

/* Prepare sql, bind ?1 = folder and ?2 = uid (and ?3 = extra when not
 * negative), step it once: *rc is the result (*error_r set unless it is
 * SQLITE_ROW or SQLITE_DONE).  Give the statement back with mb_done(). */
static sqlite3_stmt *step_mail(struct mailbox *mb, const char *sql, int64_t folder, uint32_t uid,
                               int64_t extra, int *rc, const char **error_r)
{
    sqlite3_stmt *st = mb_stmt(mb, sql, error_r);
    *rc = SQLITE_ERROR;
    if (st == NULL)
        return NULL;
    sqlite3_bind_int64(st, 1, folder);
    sqlite3_bind_int64(st, 2, uid);
    if (extra >= 0)
        sqlite3_bind_int64(st, 3, extra);
    *rc = sqlite3_step(st);
    if (*rc != SQLITE_ROW && *rc != SQLITE_DONE)
        *error_r = mb_db_error(mb, "store");
    return st;
}

static const char SQL_REMOVE_MAIL[] = "DELETE FROM mail WHERE folder_id = ?1 AND uid = ?2"
                                      " AND (flags & ?3) = ?3 RETURNING message_id";

/* Remove uid from folder if it has all the flags of mask; its body goes
 * with the last reference.  1 removed, 0 not there (or not flagged), -1. */
static int remove_mail(struct mailbox *mb, int64_t folder, uint32_t uid, unsigned mask,
                       const char **error_r)
{
    int rc;
    sqlite3_stmt *st = step_mail(mb, SQL_REMOVE_MAIL, folder, uid, mask, &rc, error_r);
    int64_t message = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    mb_done(mb, st);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? 0 : -1;
    return mb_release_message(mb, message, error_r) < 0 ? -1 : 1;
}

/* --- STORE ---------------------------------------------------------------------- */

static const char SQL_MAIL_STATE[] =
    "SELECT flags, keywords, modseq FROM mail WHERE folder_id = ?1 AND uid = ?2";
static const char SQL_SET_FLAGS[] = "UPDATE mail SET flags = ?3, keywords = ?4, modseq = ?5"
                                    " WHERE folder_id = ?1 AND uid = ?2";

/* A message's state: flags, keywords, modseq. */
struct state {
    unsigned flags;
    char *keywords;
    uint64_t modseq;
};

static int state_load(struct mailbox *mb, int64_t folder, uint32_t uid, struct state *s,
                      const char **error_r)
{
    int rc;
    sqlite3_stmt *st = step_mail(mb, SQL_MAIL_STATE, folder, uid, -1, &rc, error_r);
    if (rc == SQLITE_ROW) {
        s->flags = (unsigned)sqlite3_column_int(st, 0);
        s->keywords = sm_strdup(mb_col_text(st, 1));
        s->modseq = (uint64_t)sqlite3_column_int64(st, 2);
    } else if (rc == SQLITE_DONE) {
        *error_r = "no such message";
    }
    mb_done(mb, st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? MAILBOX_NONEXISTENT : -1;
}

/* The keywords after op: old with k set, added or removed, into out. */
static int keywords_apply(const char *old_text, enum mailbox_flag_op op,
                          const struct mb_keywords *k, struct mb_keywords *out,
                          const char **error_r)
{
    struct mb_keywords old;
    if (mb_keywords_parse(old_text, &old, error_r) < 0)
        return -1;
    memset(out, 0, sizeof *out);
    out->buf = old.buf; /* the words of both stay alive in old.buf and k->buf */
    for (unsigned i = 0; op != MAILBOX_FLAGS_SET && i < old.n; i++)
        if (op == MAILBOX_FLAGS_ADD || !keywords_have(k, old.v[i]))
            keywords_push(out, old.v[i]);
    for (unsigned i = 0; op != MAILBOX_FLAGS_REMOVE && i < k->n; i++)
        if (!keywords_have(out, k->v[i]))
            keywords_push(out, k->v[i]);
    free(old.v);
    if (out->n > MAILBOX_MESSAGE_KEYWORDS) {
        *error_r = "too many keywords on one message";
        mb_keywords_free(out);
        return -1;
    }
    return 0;
}

/* Same words, whatever the order? */
static bool keywords_same(const char *old_text, const struct mb_keywords *now)
{
    struct mb_keywords old;
    const char *error;
    if (mb_keywords_parse(old_text, &old, &error) < 0)
        return false;
    bool same = old.n == now->n;
    for (unsigned i = 0; same && i < now->n; i++)
        same = keywords_have(&old, now->v[i]);
    mb_keywords_free(&old);
    return same;
}

static unsigned flags_apply(unsigned old, enum mailbox_flag_op op, unsigned flags)
{
    return op == MAILBOX_FLAGS_SET ? flags : op == MAILBOX_FLAGS_ADD ? old | flags : old & ~flags;
}

static int state_save(struct mailbox *mb, int64_t folder, uint32_t uid, struct state *s,
                      const struct mb_keywords *now, const char **error_r)
{
    struct sm_buf b;
    if (mb_next_modseq(mb, folder, &s->modseq, error_r) < 0)
        return -1;
    sm_buf_init(&b, 0);
    mb_keywords_join(now, &b);
    free(s->keywords);
    s->keywords = sm_strdup(sm_buf_str(&b));
    sm_buf_free(&b);
    sqlite3_stmt *st = mb_stmt(mb, SQL_SET_FLAGS, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, folder);
    sqlite3_bind_int64(st, 2, uid);
    sqlite3_bind_int(st, 3, (int)s->flags);
    sqlite3_bind_text(st, 4, s->keywords, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)s->modseq);
    return mb_run(mb, st, error_r) == SQLITE_DONE ? 0 : -1;
}

/* The STORE of one message inside the caller's transaction: 1, 0, 2 as
 * for mailbox_store_flags(), with the result in *s. */
static int store_one(struct mailbox *mb, int64_t folder, uint32_t uid, enum mailbox_flag_op op,
                     unsigned flags, struct mb_keywords *k, uint64_t unchangedsince,
                     struct state *s, const char **error_r)
{
    struct mb_keywords now;
    int r = state_load(mb, folder, uid, s, error_r);
    if (r < 0)
        return r;
    if (unchangedsince > 0 && s->modseq > unchangedsince)
        return 2;
    if (op != MAILBOX_FLAGS_REMOVE && mb_keywords_adopt(mb, folder, k, true, error_r) < 0)
        return -1;
    if (keywords_apply(s->keywords, op, k, &now, error_r) < 0)
        return -1;
    unsigned new_flags = flags_apply(s->flags, op, flags);
    r = 0;
    if (new_flags != s->flags || !keywords_same(s->keywords, &now)) {
        s->flags = new_flags;
        r = state_save(mb, folder, uid, s, &now, error_r) < 0 ? -1 : 1;
    }
    mb_keywords_free(&now);
    return r;
}

int mailbox_store_flags(struct mailbox *mb, const char *folder, uint32_t uid,
                        enum mailbox_flag_op op, unsigned flags, const char *keywords,
                        uint64_t unchangedsince, struct mailbox_message *after,
                        const char **error_r)
{
    struct mb_keywords k;
    struct mb_txn t;
    struct state s = {0};
    int64_t id;
    if ((flags & ~MB_FLAGS_ALL) != 0 || op > MAILBOX_FLAGS_REMOVE) {
        *error_r = "invalid flags";
        return -1;
    }
    int r = mb_folder_id(mb, folder, &id, NULL, error_r);
    if (r < 0 || mb_keywords_parse(keywords, &k, error_r) < 0)
        return r < 0 ? r : -1;
    if ((r = mb_txn_begin(mb, &t, error_r)) == 0) {
        r = store_one(mb, id, uid, op, flags, &k, unchangedsince, &s, error_r);
        if (r < 0)
            mb_txn_abort(mb, &t);
        else if (mb_txn_commit(mb, &t, error_r) < 0)
            r = -1;
    }
    mb_keywords_free(&k);
    if (r >= 0 && after != NULL) {
        free(mb->kept_keywords);
        mb->kept_keywords = s.keywords;
        s.keywords = NULL;
        memset(after, 0, sizeof *after);
        *after = (struct mailbox_message){
            .uid = uid, .flags = s.flags, .keywords = mb->kept_keywords, .modseq = s.modseq};
    }
    free(s.keywords);
    return r;
}

/* --- EXPUNGE -------------------------------------------------------------------- */

static const char SQL_DELETED_UIDS[] =
    "SELECT uid FROM mail WHERE folder_id = ?1 AND (flags & 8) <> 0 ORDER BY uid";

struct uids {
    uint32_t *v;
    size_t n, cap;
};

static void uids_push(struct uids *u, uint32_t uid)
{
    if (u->n == u->cap) {
        u->cap = u->cap ? u->cap * 2 : 64;
        u->v = sm_realloc(u->v, u->cap * sizeof *u->v);
    }
    u->v[u->n++] = uid;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The candidates of an expunge in ascending order: the given UIDs, or
 * every \Deleted message of folder. */
static int expunge_candidates(struct mailbox *mb, int64_t folder, const uint32_t *uids,
                              size_t n, struct uids *out, const char **error_r)
{
    if (uids != NULL) {
        for (size_t i = 0; i < n; i++)
            uids_push(out, uids[i]);
        if (out->n > 1)
            qsort(out->v, out->n, sizeof *out->v, cmp_u32);
        return 0;
    }
    sqlite3_stmt *st = mb_stmt(mb, SQL_DELETED_UIDS, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, folder);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        uids_push(out, (uint32_t)sqlite3_column_int64(st, 0));
    if (rc != SQLITE_DONE)
        *error_r = mb_db_error(mb, "store");
    mb_done(mb, st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Remove the candidates (with mask's flags) and record them as expunged;
 * done keeps the UIDs removed, ascending.  The caller's transaction. */
static int remove_all(struct mailbox *mb, int64_t folder, const struct uids *cand,
                      unsigned mask, struct uids *done, const char **error_r)
{
    for (size_t i = 0; i < cand->n; i++) {
        if (i > 0 && cand->v[i] == cand->v[i - 1])
            continue;
        int r = remove_mail(mb, folder, cand->v[i], mask, error_r);
        if (r < 0)
            return -1;
        if (r > 0)
            uids_push(done, cand->v[i]);
    }
    return done->n > 0 ? mb_record_expunged(mb, folder, done->v, done->n, error_r) : 0;
}

int mailbox_expunge(struct mailbox *mb, const char *folder, const uint32_t *uids, size_t n,
                    void (*fn)(void *arg, uint32_t uid), void *arg, const char **error_r)
{
    struct uids cand = {0}, done = {0};
    struct mb_txn t;
    int64_t id;
    int r = mb_folder_id(mb, folder, &id, NULL, error_r);
    if (r < 0 || mb_txn_begin(mb, &t, error_r) < 0)
        return r < 0 ? r : -1;
    if (expunge_candidates(mb, id, uids, n, &cand, error_r) < 0 ||
        remove_all(mb, id, &cand, MAILBOX_DELETED, &done, error_r) < 0) {
        mb_txn_abort(mb, &t);
        r = -1;
    } else {
        r = mb_txn_commit(mb, &t, error_r);
    }
    for (size_t i = 0; r == 0 && fn != NULL && i < done.n; i++)
        fn(arg, done.v[i]);
    if (r == 0)
        r = done.n > INT32_MAX ? INT32_MAX : (int)done.n;
    free(cand.v);
    free(done.v);
    return r;
}

/* --- COPY and MOVE -------------------------------------------------------------- */

static const char SQL_MAIL_ROW[] =
    "SELECT message_id, flags, keywords FROM mail WHERE folder_id = ?1 AND uid = ?2";

/* Copy uid of from into to: 1 with *new_uid, 0 when from has no uid, -1. */
static int copy_one(struct mailbox *mb, int64_t from, uint32_t uid, int64_t to,
                    uint32_t *new_uid, const char **error_r)
{
    struct mb_keywords k;
    struct sm_buf kw;
    int rc;
    sqlite3_stmt *st = step_mail(mb, SQL_MAIL_ROW, from, uid, -1, &rc, error_r);
    int64_t message = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    unsigned flags = rc == SQLITE_ROW ? (unsigned)sqlite3_column_int(st, 1) : 0;
    int r = rc == SQLITE_ROW ? mb_keywords_parse(mb_col_text(st, 2), &k, error_r) : 0;
    mb_done(mb, st);
    if (rc != SQLITE_ROW || r < 0)
        return rc == SQLITE_DONE ? 0 : -1;
    sm_buf_init(&kw, 0);
    r = mb_keywords_adopt(mb, to, &k, false, error_r);
    mb_keywords_join(&k, &kw);
    if (r == 0)
        r = mb_insert_mail(mb, to, message, flags, sm_buf_str(&kw), new_uid, error_r);
    sm_buf_free(&kw);
    mb_keywords_free(&k);
    return r < 0 ? -1 : 1;
}

/* The copies (and removals of a move) inside the caller's transaction. */
static int copy_all(struct mailbox *mb, int64_t from, const uint32_t *uids, size_t n,
                    int64_t to, bool move, uint32_t *new_uids_r, struct uids *moved,
                    const char **error_r)
{
    int copied = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t uid = 0;
        int r = copy_one(mb, from, uids[i], to, &uid, error_r);
        if (r > 0 && move && remove_mail(mb, from, uids[i], 0, error_r) < 0)
            r = -1;
        if (r < 0)
            return -1;
        if (r > 0 && move)
            uids_push(moved, uids[i]);
        copied += r > 0 && copied < INT32_MAX;
        if (new_uids_r != NULL)
            new_uids_r[i] = uid;
    }
    if (moved->n > 1)
        qsort(moved->v, moved->n, sizeof *moved->v, cmp_u32);
    if (moved->n > 0 && mb_record_expunged(mb, from, moved->v, moved->n, error_r) < 0)
        return -1;
    return copied;
}

int mailbox_copy(struct mailbox *mb, const char *from, const uint32_t *uids, size_t n,
                 const char *to, bool move, uint32_t *new_uids_r, uint32_t *uidvalidity_r,
                 void (*fn)(void *arg, uint32_t uid), void *arg, const char **error_r)
{
    struct uids moved = {0};
    struct mb_txn t;
    int64_t src, dst;
    uint32_t validity;
    int r = mb_folder_id(mb, from, &src, NULL, error_r);
    if (r == 0)
        r = mb_folder_id(mb, to, &dst, &validity, error_r);
    if (r < 0 || mb_txn_begin(mb, &t, error_r) < 0)
        return r < 0 ? r : -1;
    r = copy_all(mb, src, uids, n, dst, move, new_uids_r, &moved, error_r);
    if (r < 0)
        mb_txn_abort(mb, &t);
    else if (mb_txn_commit(mb, &t, error_r) < 0)
        r = -1;
    for (size_t i = 0; r >= 0 && fn != NULL && i < moved.n; i++)
        fn(arg, moved.v[i]);
    if (r >= 0 && uidvalidity_r != NULL)
        *uidvalidity_r = validity;
    free(moved.v);
    return r;
}
