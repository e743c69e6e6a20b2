/* uidmap.c — ascending UIDs by position, as runs or as an array (see uidmap.h). */
#include "imap/uidmap.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

/* ---- the two forms ------------------------------------------------------- */

/* The runs form is worth keeping while its 8 bytes per run stay under
 * 9/8 of the array's 4 bytes per UID, and worth taking again below 7/8;
 * the constant keeps tiny maps (a few UIDs, one malloc chunk either way)
 * from switching at all. */
static bool runs_too_big(size_t n_runs, size_t n)
{
    return 16 * n_runs > 9 * n + 32;
}

static bool runs_small_enough(size_t n_runs, size_t n)
{
    return 16 * n_runs + 32 < 7 * n;
}

/* Capacity for need elements of size elem.  It grows by an eighth, not
 * by doubling: a map lives as long as its session, mostly idle, and
 * doubling would leave up to half of it unused (a 10,000-UID array that
 * gets one new message would take 80 KB); an eighth still makes appends
 * O(1) amortised. */
static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t c = *cap;
    while (c < need)
        c += c / 8 + 4;
    *cap = c;
    return sm_realloc(p, c * elem);
}

/* The number of UIDs in run k. */
static size_t run_len(const struct uidmap *m, size_t k)
{
    size_t end = k + 1 < m->n_runs ? m->runs[k + 1].idx : m->n;
    return end - m->runs[k].idx;
}

/* The last run whose first UID is <= uid; n_runs when none. */
static size_t run_of_uid(const struct uidmap *m, uint32_t uid)
{
    size_t lo = 0, hi = m->n_runs; /* the answer + 1 is in [lo, hi] */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->runs[mid].first <= uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 ? m->n_runs : lo - 1;
}

/* The run that holds position pos (< n). */
static size_t run_of_pos(const struct uidmap *m, size_t pos)
{
    size_t lo = 0, hi = m->n_runs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->runs[mid].idx <= pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo - 1; /* runs[0].idx is 0: lo >= 1 */
}

/* The first position whose UID is >= uid in the array form; n when none. */
static size_t array_lower_bound(const struct uidmap *m, uint32_t uid)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->uids[mid] < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void to_array(struct uidmap *m)
{
    uint32_t *a = sm_calloc(m->n + 1, sizeof *a);
    size_t pos = 0;
    for (size_t k = 0; k < m->n_runs; k++)
        for (size_t i = 0, len = run_len(m, k); i < len; i++)
            a[pos++] = m->runs[k].first + (uint32_t)i;
    free(m->runs);
    m->runs = NULL;
    m->uids = a;
    m->cap = m->n + 1;
}

static void to_runs(struct uidmap *m)
{
    struct uidmap_run *r = sm_calloc(m->n_runs + 1, sizeof *r);
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++)
        if (i == 0 || m->uids[i] != m->uids[i - 1] + 1)
            r[k++] = (struct uidmap_run){m->uids[i], (uint32_t)i};
    free(m->uids);
    m->uids = NULL;
    m->runs = r;
    m->cap = m->n_runs + 1;
}

/* After a change: the smaller form, with some hysteresis (uidmap.h). */
static void choose_form(struct uidmap *m)
{
    if (uidmap_is_runs(m) && runs_too_big(m->n_runs, m->n))
        to_array(m);
    else if (!uidmap_is_runs(m) && runs_small_enough(m->n_runs, m->n))
        to_runs(m);
}

/* ---- lookups ------------------------------------------------------------- */

uint32_t uidmap_uid(const struct uidmap *m, size_t seq)
{
    if (seq == 0 || seq > m->n)
        return 0;
    if (!uidmap_is_runs(m))
        return m->uids[seq - 1];
    size_t k = run_of_pos(m, seq - 1);
    return m->runs[k].first + (uint32_t)(seq - 1 - m->runs[k].idx);
}

uint32_t uidmap_max(const struct uidmap *m)
{
    return uidmap_uid(m, m->n);
}

size_t uidmap_seq(const struct uidmap *m, uint32_t uid)
{
    if (uid == 0 || m->n == 0)
        return 0;
    if (!uidmap_is_runs(m)) {
        size_t pos = array_lower_bound(m, uid);
        return pos < m->n && m->uids[pos] == uid ? pos + 1 : 0;
    }
    size_t k = run_of_uid(m, uid);
    if (k == m->n_runs)
        return 0;
    size_t off = uid - m->runs[k].first;
    return off < run_len(m, k) ? m->runs[k].idx + off + 1 : 0;
}

size_t uidmap_seq_at_least(const struct uidmap *m, uint32_t uid)
{
    if (!uidmap_is_runs(m))
        return array_lower_bound(m, uid) + 1;
    size_t k = run_of_uid(m, uid);
    if (k == m->n_runs) /* below the first UID, or empty */
        return 1;
    size_t off = uid - m->runs[k].first, len = run_len(m, k);
    return off < len ? m->runs[k].idx + off + 1 : m->runs[k].idx + len + 1;
}

/* ---- changes ------------------------------------------------------------- */

bool uidmap_append(struct uidmap *m, uint32_t uid)
{
    uint32_t max = uidmap_max(m);
    if (uid == 0 || (m->n > 0 && uid <= max) || m->n >= UINT32_MAX - 1)
        return false;
    bool extends = m->n > 0 && uid == max + 1;
    if (uidmap_is_runs(m)) {
        if (!extends) {
            m->runs = grow(m->runs, &m->cap, m->n_runs + 1, sizeof *m->runs);
            m->runs[m->n_runs] = (struct uidmap_run){uid, (uint32_t)m->n};
        }
    } else {
        m->uids = grow(m->uids, &m->cap, m->n + 1, sizeof *m->uids);
        m->uids[m->n] = uid;
    }
    m->n++;
    m->n_runs += !extends;
    choose_form(m);
    return true;
}

static void array_remove(struct uidmap *m, size_t pos)
{
    uint32_t uid = m->uids[pos];
    bool prev = pos > 0 && m->uids[pos - 1] == uid - 1;
    bool next = pos + 1 < m->n && m->uids[pos + 1] == uid + 1;
    if (prev && next)
        m->n_runs++; /* a run splits */
    else if (!prev && !next)
        m->n_runs--; /* a run of one goes */
    memmove(&m->uids[pos], &m->uids[pos + 1], (m->n - pos - 1) * sizeof *m->uids);
    m->n--;
}

static void runs_remove(struct uidmap *m, size_t pos, uint32_t uid)
{
    size_t k = run_of_pos(m, pos), len = run_len(m, k);
    size_t off = pos - m->runs[k].idx, after = k + 1; /* the first run whose idx moves down */
    if (len == 1) {
        memmove(&m->runs[k], &m->runs[k + 1], (m->n_runs - k - 1) * sizeof *m->runs);
        m->n_runs--;
        after = k;
    } else if (off == 0) {
        m->runs[k].first++;
    } else if (off + 1 < len) {
        /* the middle: the run splits; uid + 1 takes uid's position */
        m->runs = grow(m->runs, &m->cap, m->n_runs + 1, sizeof *m->runs);
        memmove(&m->runs[k + 2], &m->runs[k + 1], (m->n_runs - k - 1) * sizeof *m->runs);
        m->runs[k + 1] = (struct uidmap_run){uid + 1, (uint32_t)pos};
        m->n_runs++;
        after = k + 2;
    } /* else the last UID of the run: only the runs after it move */
    for (size_t j = after; j < m->n_runs; j++)
        m->runs[j].idx--;
    m->n--;
}

size_t uidmap_remove(struct uidmap *m, uint32_t uid)
{
    size_t seq = uidmap_seq(m, uid);
    if (seq == 0)
        return 0;
    if (uidmap_is_runs(m))
        runs_remove(m, seq - 1, uid);
    else
        array_remove(m, seq - 1);
    choose_form(m);
    return seq;
}

void uidmap_from_array(struct uidmap *m, const uint32_t *uids, size_t n)
{
    uidmap_clear(m);
    size_t count = 0, n_runs = 0;
    uint32_t last = 0;
    for (size_t i = 0; i < n; i++) {
        if (uids[i] == 0 || (count > 0 && uids[i] <= last) || count >= UINT32_MAX - 1)
            continue;
        n_runs += count == 0 || uids[i] != last + 1;
        last = uids[i];
        count++;
    }
    /* the smaller form; inside the hysteresis band of choose_form() either way */
    bool runs = 2 * n_runs <= count;
    if (runs)
        m->runs = sm_calloc(n_runs + 1, sizeof *m->runs);
    else
        m->uids = sm_calloc(count + 1, sizeof *m->uids);
    m->cap = (runs ? n_runs : count) + 1;
    last = 0;
    for (size_t i = 0; i < n; i++) {
        if (uids[i] == 0 || (m->n > 0 && uids[i] <= last) || m->n >= UINT32_MAX - 1)
            continue;
        if (!runs)
            m->uids[m->n] = uids[i];
        else if (m->n == 0 || uids[i] != last + 1)
            m->runs[m->n_runs] = (struct uidmap_run){uids[i], (uint32_t)m->n};
        m->n_runs += m->n == 0 || uids[i] != last + 1;
        last = uids[i];
        m->n++;
    }
}

void uidmap_trim(struct uidmap *m)
{
    size_t need = (uidmap_is_runs(m) ? m->n_runs : m->n) + 1;
    if (need >= m->cap)
        return;
    if (uidmap_is_runs(m))
        m->runs = sm_realloc(m->runs, need * sizeof *m->runs);
    else
        m->uids = sm_realloc(m->uids, need * sizeof *m->uids);
    m->cap = need;
}

void uidmap_clear(struct uidmap *m)
{
    free(m->runs);
    free(m->uids);
    memset(m, 0, sizeof *m);
}

void uidmap_move(struct uidmap *dst, struct uidmap *src)
{
    uidmap_clear(dst);
    *dst = *src;
    memset(src, 0, sizeof *src);
}

size_t uidmap_bytes(const struct uidmap *m)
{
    return m->cap * (uidmap_is_runs(m) ? sizeof *m->runs : sizeof *m->uids);
}

/* ---- walking ------------------------------------------------------------- */

uint32_t uidmap_iter_start(struct uidmap_iter *it, const struct uidmap *m, size_t seq)
{
    it->m = m;
    it->run = 0;
    if (seq == 0 || seq > m->n) {
        it->pos = m->n;
        return 0;
    }
    it->pos = seq - 1;
    if (uidmap_is_runs(m))
        it->run = run_of_pos(m, it->pos);
    return uidmap_uid(m, seq);
}

uint32_t uidmap_iter_next(struct uidmap_iter *it)
{
    const struct uidmap *m = it->m;
    if (it->pos >= m->n || ++it->pos >= m->n)
        return 0;
    if (!uidmap_is_runs(m))
        return m->uids[it->pos];
    if (it->run + 1 < m->n_runs && it->pos >= m->runs[it->run + 1].idx)
        it->run++;
    return m->runs[it->run].first + (uint32_t)(it->pos - m->runs[it->run].idx);
}
