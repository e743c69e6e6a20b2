/* session.h — what the files of the IMAP session share (private to imap/;
 * see imap.h for the map). */
#ifndef SM_IMAP_SESSION_H
#define SM_IMAP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"
#include "imap/imap.h"
#include "imap/parse.h"
#include "imap/uidmap.h"
#include "store/mailbox.h"

struct evbuffer;

/* The selected folder as the client knows it.  Every idle session that
 * has a folder selected keeps this, so its UIDs are a uidmap (runs of
 * consecutive UIDs: a few bytes for a folder without holes) and not an
 * array of 4 bytes per message (issue #4, bench/README.md). */
struct imap_view {
    bool selected, readonly;
    char folder[MAILBOX_FOLDER_MAX + 1]; /* UTF-8, as the store names it */
    uint32_t uidvalidity;
    struct uidmap uids;      /* sequence number n is uidmap_uid(&uids, n): view_uid() */
    uint64_t modseq;         /* changes up to here have been reported */
    uint64_t token;          /* mailbox_change_token() at the last sync */
    struct uidmap recent;    /* the UIDs of the view that are \Recent to this session */
};

enum imap_state { IMAP_NOTAUTH, IMAP_AUTH, IMAP_SELECTED, IMAP_LOGOUT };

struct imap {
    struct client *c;
    enum imap_state state;
    struct imap_reader *reader;
    unsigned errors;
    bool utf8;               /* ENABLE UTF8=ACCEPT: mailbox names are UTF-8 */
    bool rev2;               /* ENABLE IMAP4rev2 */
    bool condstore, qresync; /* enabled (or CONDSTORE implied by a command) */
    bool idling;
    bool auth_wait;          /* AUTHENTICATE PLAIN: waiting for the response line */
    char pending_tag[IMAP_TAG_MAX + 1];
    struct imap_view view;
    struct imap_command *cmd;/* the command of the job out, or of a sliced FETCH */
    struct evbuffer *out;    /* replies being built (loop or job) */
    struct evbuffer *tagged; /* a job's tagged reply, sent after its final sync */
    bool in_job;             /* on the worker: tagged replies go to s->tagged */
    bool job_more;           /* the command continues in another job (FETCH slices) */
    uint64_t job_cursor;     /* where the next slice starts: a position in job_uids */
    struct uidmap job_uids;  /* the UIDs a sliced FETCH works through (FETCH 1:* of a
                              * folder without holes: one run, however slow the client) */
    int job_failure;         /* a sliced FETCH's first failure (enum section_status) */
    bool notify_others;      /* the job changed the mailbox: tell the other sessions */
    struct deflate_pair *zip;/* COMPRESS=DEFLATE is active */
    struct evbuffer *zin;    /* with zip: the inflated input */
    uint32_t *saved;         /* SEARCHRES ("$"): UIDs, ascending */
    size_t n_saved;
    bool saved_valid;
};

/* ---- replies (into s->out) ---- */
void imap_printf(struct imap *s, const char *fmt, ...) SM_PRINTF(2, 3);
/* "<tag> <status> <text>\r\n" for the current command. */
void imap_tagged(struct imap *s, const char *status, const char *fmt, ...) SM_PRINTF(3, 4);
/* An IMAP string: quoted when it can be, else a literal; NIL for NULL. */
void imap_put_string(struct imap *s, const char *str, size_t len);
/* A mailbox name from the store (UTF-8) in the client's encoding. */
void imap_put_mailbox(struct imap *s, const char *utf8_name);
/* Not a stored flag: \Recent to this session (view_recent()). */
#define IMAP_FLAG_RECENT 0x100u
/* The flag list "(\Seen $Label)" of flags (with IMAP_FLAG_RECENT: \Recent,
 * except in IMAP4rev2, which has none) and keywords. */
void imap_put_flags(struct imap *s, unsigned flags, const char *keywords);
/* The store's answer to a failed call: "NO [NONEXISTENT] ..." and friends. */
void imap_store_failed(struct imap *s, int status, const char *error);

/* A mailbox name from the client into the store's UTF-8 (out: at least
 * MAILBOX_FOLDER_MAX + 1 bytes).  Returns 0, or -1 after a BAD/NO reply. */
int imap_mailbox_arg(struct imap *s, const char *name, char *out);

/* Parse flags as sent ("\Seen", "$Forwarded") into system bits and a
 * space-separated keyword text (kw: MAILBOX_KEYWORDS_TEXT_MAX + 1 bytes).
 * Returns 0, or -1 after a BAD reply. */
int imap_flags_arg(struct imap *s, const char **flags, size_t n, unsigned *bits, char *kw);

/* A command enabled CONDSTORE (RFC 7162 §3.1): with a folder selected,
 * the first time, tell the client its HIGHESTMODSEQ. */
void imap_condstore_on(struct imap *s, struct mailbox *mb);

/* ---- the view (view.c); all on a worker with the store locked ---- */
int view_select(struct imap *s, struct mailbox *mb, const char *folder, bool readonly);
void view_close(struct imap *s);
/* Bring the view up to date: new messages (EXISTS), flag changes
 * (FETCH), and, when expunges may be sent now, removed messages
 * (EXPUNGE, or VANISHED with QRESYNC). */
void view_sync(struct imap *s, struct mailbox *mb, bool may_expunge);
/* The index of uid in the ascending uids[0..n), or n when absent. */
size_t uid_find(const uint32_t *uids, size_t n, uint32_t uid);
/* How many messages the view holds: the highest sequence number. */
static inline uint32_t view_count(const struct imap_view *v)
{
    return (uint32_t)uidmap_count(&v->uids);
}
/* The UID of sequence number seq (0 when out of the view). */
static inline uint32_t view_uid(const struct imap_view *v, uint32_t seq)
{
    return uidmap_uid(&v->uids, seq);
}
/* The highest UID of the view (0 when empty). */
static inline uint32_t view_max_uid(const struct imap_view *v)
{
    return uidmap_max(&v->uids);
}
/* The sequence number of uid (0 when not in the view). */
static inline uint32_t view_seq(const struct imap_view *v, uint32_t uid)
{
    return (uint32_t)uidmap_seq(&v->uids, uid);
}
/* IMAP_FLAG_RECENT when uid is \Recent to this session (RFC 3501 §2.3.2:
 * it was the first session to see it), else 0. */
unsigned view_recent(const struct imap_view *v, uint32_t uid);
/* How many messages of the view are \Recent to this session. */
size_t view_recent_count(const struct imap_view *v);
/* Resolve a set (sequence numbers, or UIDs when uid) to UIDs in the view,
 * ascending, into *uids_r (malloc'd).  "$" uses the saved result.
 * Returns the count. */
size_t view_resolve(struct imap *s, const struct imap_seqset *set, bool uid, uint32_t **uids_r);
/* The same into a uidmap (out is cleared first): compact for long ranges. */
size_t view_resolve_map(struct imap *s, const struct imap_seqset *set, bool uid,
                        struct uidmap *out);
/* A change this session made and reported itself got MODSEQ modseq: if
 * it is the next one, the sync need not report it again. */
void view_own_change(struct imap *s, uint64_t modseq);
/* For a set of sequence numbers (not UIDs): are all of them at most the
 * number of messages?  RFC 9051 §9 makes a larger one invalid (BAD). */
bool view_seqs_valid(const struct imap *s, const struct imap_seqset *set, bool uid);
/* "* VANISHED (EARLIER) ..." for the UIDs expunged after since (only
 * those in filter, when filter is not NULL and not empty), as ranges, in
 * as many lines as it takes (RFC 7162 §3.2.5, §3.2.6). */
void view_vanished_earlier(struct imap *s, struct mailbox *mb, uint64_t since,
                           const struct imap_seqset *filter);
/* A copy of set with its ranges resolved against max (free(copy.ranges)):
 * membership is then a binary search. */
struct imap_seqset view_set_resolved(const struct imap_seqset *set, uint32_t max);
/* Remove uid from the view (our own EXPUNGE/MOVE), replying EXPUNGE or
 * VANISHED. */
void view_expunged(struct imap *s, uint32_t uid);

/* ---- commands (worker thread, store locked) ---- */
void cmd_select(struct imap *s, struct mailbox *mb);
void cmd_create(struct imap *s, struct mailbox *mb);
void cmd_delete(struct imap *s, struct mailbox *mb);
void cmd_rename(struct imap *s, struct mailbox *mb);
void cmd_subscribe(struct imap *s, struct mailbox *mb);
void cmd_list(struct imap *s, struct mailbox *mb);
void cmd_status(struct imap *s, struct mailbox *mb);
void cmd_append(struct imap *s, struct mailbox *mb);
void cmd_quota(struct imap *s, struct mailbox *mb);
void cmd_fetch(struct imap *s, struct mailbox *mb);
void cmd_store(struct imap *s, struct mailbox *mb);
void cmd_copy(struct imap *s, struct mailbox *mb);
void cmd_expunge(struct imap *s, struct mailbox *mb);
void cmd_close(struct imap *s, struct mailbox *mb);
void cmd_search(struct imap *s, struct mailbox *mb);

#endif
