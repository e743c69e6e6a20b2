/* uidmap.h — an ascending set of UIDs indexed by position: the IMAP
 * session's map between sequence numbers and UIDs (issue #4).
 *
 * What: the UIDs of a selected folder as the client knows them, in
 * ascending order; sequence number n is the n-th UID.  The view of every
 * session holds one (and one more for its \Recent UIDs), so an idle
 * connection with a folder selected costs what this costs.
 *
 * Why not a plain array: 4 bytes per message per session, 39 KiB for a
 * 10,000-message INBOX in every connection that selects it.  UIDs are
 * given in ascending order and a folder's UIDs are mostly contiguous
 * (only expunges and moves out leave holes), so the set is kept as
 * maximal runs of consecutive UIDs: {first UID, index of that UID}, 8
 * bytes per run, whatever the run's length; 10,000 contiguous UIDs are
 * one run.  A run's length is the next run's index minus its own (the
 * count for the last one).  Lookups both ways are binary searches over
 * the runs: O(log runs).
 *
 * Worst case: a folder with many holes (every other UID gone) has nearly
 * as many runs as UIDs, 8 bytes per UID.  So the map switches to a plain
 * ascending array (4 bytes per UID, binary search by UID, direct index by
 * position) when runs would take more than 1 1/8 times the array's bytes,
 * and back when they would take less than 7/8 of them (the gap keeps a
 * map from flipping at every change; a switch is O(n), at most once per
 * n/32 changes).  The run count is kept exact in both forms (append and
 * remove see the neighbours), so a map never costs much more than the
 * array it replaced: at most 12.5% more (plus capacity slack: the storage
 * grows by an eighth at a time; uidmap_trim() gives the slack back).
 *
 * Changes: append (a UID above every UID held: new mail, or building a
 * map in order) in O(1) amortised; remove (an expunge) in O(runs) for
 * runs (a run splits in two or shrinks; the indexes of the runs after it
 * move down) or O(n) for the array, as the array's memmove was.
 *
 * Limits: UIDs are 1..4294967295 (0 is no UID: the lookups answer 0 for
 * "none"); at most UINT32_MAX - 1 of them.  sm_malloc never fails. */
#ifndef SM_IMAP_UIDMAP_H
#define SM_IMAP_UIDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A run of consecutive UIDs: first, first + 1, ... at positions idx, idx + 1, ... */
struct uidmap_run {
    uint32_t first;
    uint32_t idx;
};

/* Zero-initialised: empty.  The fields are private to uidmap.c. */
struct uidmap {
    struct uidmap_run *runs; /* runs form (uids == NULL) */
    uint32_t *uids;          /* array form */
    size_t n;                /* UIDs held */
    size_t n_runs;           /* maximal runs of consecutive UIDs, in either form */
    size_t cap;              /* allocated runs or uids */
};

/* How many UIDs the map holds (the highest sequence number). */
static inline size_t uidmap_count(const struct uidmap *m)
{
    return m->n;
}

/* The UID at sequence number seq (1-based), 0 when seq is 0 or > count. */
uint32_t uidmap_uid(const struct uidmap *m, size_t seq);
/* The highest UID, 0 when empty. */
uint32_t uidmap_max(const struct uidmap *m);
/* The sequence number of uid, 0 when absent. */
size_t uidmap_seq(const struct uidmap *m, uint32_t uid);
/* The sequence number of the first UID >= uid; count + 1 when none. */
size_t uidmap_seq_at_least(const struct uidmap *m, uint32_t uid);

/* Add uid above every UID held.  Returns false (and changes nothing) for
 * 0 or a UID not above uidmap_max(). */
bool uidmap_append(struct uidmap *m, uint32_t uid);
/* Remove uid.  Returns the sequence number it had, 0 when absent. */
size_t uidmap_remove(struct uidmap *m, uint32_t uid);
/* A map of uids[0..n) (ascending; a UID out of order is skipped), trimmed. */
void uidmap_from_array(struct uidmap *m, const uint32_t *uids, size_t n);
/* Give the storage's unused capacity back (a map that will stay as it is). */
void uidmap_trim(struct uidmap *m);
/* Free and empty. */
void uidmap_clear(struct uidmap *m);
/* Take src's content into dst (dst is cleared first; src is left empty). */
void uidmap_move(struct uidmap *dst, struct uidmap *src);
/* The bytes the map holds on the heap (its capacity), for tests and logs. */
size_t uidmap_bytes(const struct uidmap *m);
/* True when the map is in its runs form (for tests). */
static inline bool uidmap_is_runs(const struct uidmap *m)
{
    return m->uids == NULL;
}

/* Walk the UIDs in order from a sequence number:
 *     struct uidmap_iter it;
 *     for (uint32_t uid = uidmap_iter_start(&it, m, 1); uid != 0; uid = uidmap_iter_next(&it))
 * The map must not change during the walk. */
struct uidmap_iter {
    const struct uidmap *m;
    size_t pos; /* 0-based position of the UID returned last */
    size_t run; /* runs form: the run that holds it */
};
/* The UID at seq (0 when past the end), and the iterator on it. */
uint32_t uidmap_iter_start(struct uidmap_iter *it, const struct uidmap *m, size_t seq);
/* The next UID, 0 at the end. */
uint32_t uidmap_iter_next(struct uidmap_iter *it);

#endif
