/* parse-seqset.c — sequence sets and dates (see parse.h).
 *
 * A sequence set stays as the client sent it, range by range, with '*'
 * kept symbolic (IMAP_SEQ_STAR): what '*' means depends on the mailbox at
 * the time the command runs, not when it was parsed.  The number of ranges
 * is counted before anything is allocated, so "1,1,1,..." costs at most
 * IMAP_SEQ_RANGES_MAX ranges, and membership needs no allocation at all.
 *
 * Dates are computed with the proleptic Gregorian calendar directly
 * (days from 1970-01-01), not with timegm()/mktime(), which depend on the
 * process's time zone and are not required to accept every year. */
#include "imap/parse-internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"

/* ---- sequence sets ---- */

bool seqset_char(unsigned char ch)
{
    return isdigit(ch) || ch == ':' || ch == ',' || ch == '*' || ch == '$';
}

long seqset_count(const char *text, size_t len)
{
    long n = 1;
    for (size_t i = 0; i < len; i++)
        if (text[i] == ',' && ++n > IMAP_SEQ_RANGES_MAX)
            return -1;
    return n;
}

/* seq-number = nz-number / "*" */
static int seq_number(const char **p, const char *end, uint32_t *v)
{
    if (*p < end && **p == '*') {
        (*p)++;
        *v = IMAP_SEQ_STAR;
        return 0;
    }
    if (*p >= end || **p < '1' || **p > '9')
        return -1;
    uint64_t n = 0;
    while (*p < end && isdigit((unsigned char)**p)) {
        n = n * 10 + (unsigned)(*(*p)++ - '0');
        if (n > UINT32_MAX)
            return -1;
    }
    *v = (uint32_t)n;
    return 0;
}

int seqset_parse_into(const char *text, size_t len, bool allow_saved, struct imap_seqset *set,
                      struct imap_seq_range *ranges, const char **error_r)
{
    const char *p = text, *end = text + len;
    *set = (struct imap_seqset){.ranges = ranges};
    if (len == 1 && text[0] == '$') {
        if (!allow_saved) {
            *error_r = "$ is not allowed here";
            return -1;
        }
        set->saved = true;
        return 0;
    }
    for (;;) {
        struct imap_seq_range *r = &ranges[set->n++];
        if (seq_number(&p, end, &r->lo) < 0)
            break;
        r->hi = r->lo;
        if (p < end && *p == ':' && (p++, seq_number(&p, end, &r->hi) < 0))
            break;
        if (p == end)
            return 0;
        if (*p++ != ',')
            break;
    }
    *error_r = "Invalid sequence set";
    return -1;
}

int imap_seqset_parse(const char *text, size_t len, bool allow_saved, struct imap_seqset *set,
                      const char **error_r)
{
    *set = (struct imap_seqset){0};
    for (size_t i = 0; i < len; i++)
        if (!seqset_char((unsigned char)text[i])) {
            *error_r = "Invalid sequence set";
            return -1;
        }
    long n = seqset_count(text, len);
    if (n < 0) {
        *error_r = "Too many ranges in sequence set";
        return -1;
    }
    struct imap_seq_range *ranges = sm_calloc((size_t)n, sizeof *ranges);
    if (len == 0 || seqset_parse_into(text, len, allow_saved, set, ranges, error_r) < 0) {
        if (len == 0)
            *error_r = "Invalid sequence set";
        free(ranges);
        *set = (struct imap_seqset){0};
        return -1;
    }
    return 0;
}

/* A range with '*' replaced by max and its ends in order. */
static struct imap_seq_range resolve_range(struct imap_seq_range r, uint32_t max)
{
    if (r.lo == IMAP_SEQ_STAR)
        r.lo = max;
    if (r.hi == IMAP_SEQ_STAR)
        r.hi = max;
    if (r.lo > r.hi) {
        uint32_t t = r.lo;
        r.lo = r.hi;
        r.hi = t;
    }
    return r;
}

/* Binary search in sorted, disjoint ranges. */
static bool resolved_contains(const struct imap_seqset *set, uint32_t value)
{
    size_t lo = 0, hi = set->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (value < set->ranges[mid].lo)
            hi = mid;
        else if (value > set->ranges[mid].hi)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t value, uint32_t max)
{
    if (set->resolved)
        return resolved_contains(set, value);
    for (size_t i = 0; i < set->n; i++) {
        struct imap_seq_range r = resolve_range(set->ranges[i], max);
        if (r.lo <= value && value <= r.hi && value != 0)
            return true;
    }
    return false;
}

static int range_cmp(const void *a, const void *b)
{
    const struct imap_seq_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

void imap_seqset_resolve(struct imap_seqset *set, uint32_t max)
{
    if (set->saved || set->resolved)
        return;
    size_t n = 0;
    for (size_t i = 0; i < set->n; i++) {
        struct imap_seq_range r = resolve_range(set->ranges[i], max);
        if (r.hi == 0)
            continue; /* "*" of an empty mailbox */
        if (r.lo == 0)
            r.lo = 1;
        set->ranges[n++] = r;
    }
    if (n > 1)
        qsort(set->ranges, n, sizeof set->ranges[0], range_cmp);
    /* merge overlapping and adjacent ranges */
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        struct imap_seq_range *last = out > 0 ? &set->ranges[out - 1] : NULL;
        if (last != NULL && (uint64_t)last->hi + 1 >= set->ranges[i].lo) {
            if (set->ranges[i].hi > last->hi)
                last->hi = set->ranges[i].hi;
        } else {
            set->ranges[out++] = set->ranges[i];
        }
    }
    set->n = out;
    set->resolved = true;
}

bool imap_seqset_next(const struct imap_seqset *set, uint64_t *cursor, uint32_t *value_r)
{
    uint64_t idx = *cursor >> 32, off = *cursor & UINT32_MAX;
    for (; idx < set->n; idx++, off = 0) {
        const struct imap_seq_range *r = &set->ranges[idx];
        if (r->lo == 0 || r->lo > r->hi || off > (uint64_t)(r->hi - r->lo))
            continue; /* unresolved or finished */
        *value_r = (uint32_t)(r->lo + off);
        *cursor = idx << 32 | (off + 1); /* off + 1 <= hi - lo + 1 < 2^32 as lo >= 1 */
        return true;
    }
    *cursor = idx << 32;
    return false;
}

/* ---- dates ---- */

static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Days since 1970-01-01 of a Gregorian date (month 1..12). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
    static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

/* n decimal digits at s into *v. */
static bool fixed_digits(const char *s, size_t n, unsigned *v)
{
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        *v = *v * 10 + (unsigned)(s[i] - '0');
    }
    return true;
}

/* "D-Mon-YYYY" or "DD-Mon-YYYY" (day already split off as day_len). */
static int parse_dmy(const char *s, size_t len, size_t day_len, time_t *t_r)
{
    unsigned d, m, y;
    if (len != day_len + 9 || s[day_len] != '-' || s[day_len + 4] != '-')
        return -1;
    if (day_len == 2 && s[0] == ' ') {
        if (!fixed_digits(s + 1, 1, &d))
            return -1;
    } else if (!fixed_digits(s, day_len, &d)) {
        return -1;
    }
    for (m = 0; m < 12 && strncasecmp(s + day_len + 1, months[m], 3) != 0; m++)
        ;
    if (m == 12 || !fixed_digits(s + day_len + 5, 4, &y) || y < 1900)
        return -1;
    if (d < 1 || d > days_in_month(y, m + 1))
        return -1;
    *t_r = (time_t)(days_from_civil(y, m + 1, d) * 86400);
    return 0;
}

int imap_parse_date(const char *s, size_t len, time_t *t_r)
{
    if (len < 10)
        return -1;
    size_t day_len = s[1] == '-' ? 1 : 2;
    if (s[0] == ' ')
        return -1; /* date-day is 1*2DIGIT: no space here */
    return parse_dmy(s, len, day_len, t_r);
}

int imap_parse_datetime(const char *s, size_t len, time_t *t_r)
{
    /* date-day-fixed "-" date-month "-" date-year SP time SP zone:
     * "DD-Mon-YYYY HH:MM:SS +HHMM" is 26 bytes */
    unsigned hh, mm, ss, zh, zm;
    time_t day;
    if (len != 26 || parse_dmy(s, 11, 2, &day) < 0 || s[11] != ' ' || s[20] != ' ')
        return -1;
    if (!fixed_digits(s + 12, 2, &hh) || s[14] != ':' || !fixed_digits(s + 15, 2, &mm) ||
        s[17] != ':' || !fixed_digits(s + 18, 2, &ss))
        return -1;
    if ((s[21] != '+' && s[21] != '-') || !fixed_digits(s + 22, 2, &zh) ||
        !fixed_digits(s + 24, 2, &zm))
        return -1;
    if (hh > 23 || mm > 59 || ss > 60 || zh > 23 || zm > 59)
        return -1;
    int64_t zone = (int64_t)(zh * 3600 + zm * 60) * (s[21] == '-' ? -1 : 1);
    *t_r = (time_t)(day + (int64_t)(hh * 3600 + mm * 60 + ss) - zone);
    return 0;
}
