/* subject.c — the base subject of RFC 5256 §2.1, what SORT (SUBJECT) compares.
 *
 * The RFC's grammar (case-insensitive, WSP is a space after step 1):
 *
 *   subj-refwd   = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
 *   subj-blob    = "[" *BLOBCHAR "]" *WSP        ; BLOBCHAR: any byte but [ ]
 *   subj-leader  = (*subj-blob subj-refwd) / WSP
 *   subj-trailer = "(fwd)" / WSP
 *   subj-fwd     = "[fwd:" subject "]"
 *
 * and its algorithm, which this file follows step by step:
 *   (1) whitespace runs (tabs and folds included) become one space;
 *   (2) trailers are removed from the end, as long as any is there;
 *   (3) leaders are removed from the start;
 *   (4) one leading blob is removed if something is left after it;
 *   (5) (3) and (4) repeat until neither changes anything;
 *   (6) a "[fwd:" ... "]" wrapper is removed, and the work goes back to (2).
 * Every step removes at least one byte, so the loops end. */
#include "mime/mime.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"

static bool is_wsp(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Step 1 into a new string: every run of whitespace becomes one space. */
static char *collapse_whitespace(const char *in)
{
    char *out = sm_malloc(strlen(in) + 1);
    size_t n = 0;
    for (; *in != '\0'; in++) {
        if (!is_wsp(*in))
            out[n++] = *in;
        else if (n == 0 || out[n - 1] != ' ')
            out[n++] = ' ';
    }
    out[n] = '\0';
    return out;
}

/* The length of the subj-blob at the start of s[0..len), or 0. */
static size_t blob_len(const char *s, size_t len)
{
    if (len == 0 || s[0] != '[')
        return 0;
    size_t i = 1;
    while (i < len && s[i] != '[' && s[i] != ']')
        i++;
    if (i == len || s[i] != ']')
        return 0;
    for (i++; i < len && s[i] == ' ';)
        i++;
    return i;
}

/* The length of the subj-refwd at the start of s[0..len), or 0. */
static size_t refwd_len(const char *s, size_t len)
{
    size_t i;
    if (len >= 3 && strncasecmp(s, "fwd", 3) == 0)
        i = 3;
    else if (len >= 2 && (strncasecmp(s, "re", 2) == 0 || strncasecmp(s, "fw", 2) == 0))
        i = 2;
    else
        return 0;
    while (i < len && s[i] == ' ')
        i++;
    i += blob_len(s + i, len - i);
    return i < len && s[i] == ':' ? i + 1 : 0;
}

/* The length of the subj-leader at the start of s[0..len), or 0. */
static size_t leader_len(const char *s, size_t len)
{
    if (len > 0 && s[0] == ' ')
        return 1;
    size_t i = 0, b;
    while ((b = blob_len(s + i, len - i)) > 0)
        i += b;
    size_t r = refwd_len(s + i, len - i);
    return r > 0 ? i + r : 0;
}

/* Step 2: drop "(fwd)" and spaces from the end of s[start..*end). */
static void strip_trailers(const char *s, size_t start, size_t *end)
{
    for (;;) {
        if (*end > start && s[*end - 1] == ' ')
            (*end)--;
        else if (*end - start >= 5 && strncasecmp(s + *end - 5, "(fwd)", 5) == 0)
            *end -= 5;
        else
            return;
    }
}

/* Steps 3 to 5 on s[*start..end).  After step 3 fails, step 4 drops one
 * leading blob and step 3 would fail again in the same place (the blobs
 * after it and what follows them are the same), so the blobs are dropped
 * in one run, while something is left after each.  Otherwise a subject of
 * thousands of "[a]" would be scanned again for each of them. */
static void strip_leaders_and_blobs(const char *s, size_t *start, size_t end)
{
    bool changed;
    do {
        size_t n;
        while ((n = leader_len(s + *start, end - *start)) > 0)
            *start += n;
        changed = false;
        while ((n = blob_len(s + *start, end - *start)) > 0 && *start + n < end) {
            *start += n;
            changed = true;
        }
    } while (changed);
}

char *mime_base_subject(const char *subject)
{
    char *s = collapse_whitespace(subject);
    size_t start = 0, end = strlen(s);
    for (;;) {
        strip_trailers(s, start, &end);
        strip_leaders_and_blobs(s, &start, end);
        if (end - start >= 6 && strncasecmp(s + start, "[fwd:", 5) == 0 && s[end - 1] == ']') {
            start += 5; /* step 6, then back to step 2 */
            end--;
            continue;
        }
        break;
    }
    memmove(s, s + start, end - start);
    s[end - start] = '\0';
    return s;
}
