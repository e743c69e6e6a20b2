/* parse.c — gumbo, bounded.
 *
 * gumbo 0.10 has no limits of its own, and parts of the HTML5 tree builder
 * are linear in the depth of the tree for every token: "has a p element in
 * button scope" for each <div>, "is this formatting element open" for every
 * character of text.  100k nested <div> take seconds; 20k nested <div>,
 * a <b> and 2 MB of text take 15 s.  Its tree is also freed recursively.
 * We keep it bounded without changing it:
 *
 *   - gumbo allocates through our allocator, which keeps every block on a
 *     list.  It checks the memory budget on every call and the thread's CPU
 *     time on every 16th; over either, it longjmp()s out of gumbo.  Nothing
 *     of gumbo's is used after that, and we free the blocks ourselves (so
 *     gumbo_destroy_output(), which recurses over the tree, never runs).
 *   - Every tag token allocates (its name buffer), so work driven by tags is
 *     checked often.  Text is not: a run of characters allocates nothing, and
 *     each character may cost O(depth).  Before parsing, we therefore insert
 *     an empty comment "<!---->" into long runs of text (never inside a
 *     tag, a comment or a character reference) so that at most QUANTUM units of "depth x characters" pass
 *     between two checks; the depth is bounded from above by the number of
 *     start tags seen so far.  A comment allocates a node and does not change
 *     the tree otherwise (comments are dropped by the sanitiser, and text on
 *     both sides is written out as one run).  Inside raw-text elements
 *     (script, style, title, ...) it becomes part of their text; all of them
 *     are dropped but xmp and plaintext, where a very long text may show a
 *     stray "<!---->".  We pace there too because our scan cannot always
 *     tell raw text from svg content such as <svg><title/>.
 *   - The same pass replaces invalid UTF-8, NUL and the controls gumbo
 *     rejects (C0 but tab, LF, FF; C1; non-characters) by U+FFFD, turns CR LF
 *     and lone CR into LF, as the HTML input stream does, so that gumbo only
 *     ever sees well-formed UTF-8.
 * Parse errors are not recorded (max_errors = 0): gumbo copies the whole
 * stack of open elements into each one. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/mem.h"
#include "html/internal.h"

/* "depth x characters" allowed between two allocations of gumbo's; about
 * 4 ms of the worst case on a current x86 core. */
#define QUANTUM (UINT64_C(1) << 23)
/* CPU time is read on every CHECK_EVERY-th allocation (it costs a system
 * call). */
#define CHECK_EVERY 16
#define PACE_COMMENT "<!---->"

union blk {
    struct {
        union blk *prev, *next;
        size_t size;
    } h;
    max_align_t align;
};

struct html_parse {
    GumboOptions opts;
    GumboOutput *output;
    union blk *blocks;
    size_t live, max_live;
    int64_t deadline_ns;
    unsigned calls;
    jmp_buf fail;
    struct sm_buf text;  /* the cleaned, paced input gumbo reads */
};

int64_t html_cpu_now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the allocator ----------------------------------------------------- */

static void *arena_alloc(void *ud, size_t n)
{
    struct html_parse *p = ud;
    /* count what the block really costs: our header and malloc's */
    size_t cost = n + sizeof(union blk) + 16;
    if (n > p->max_live || cost > p->max_live - p->live)
        longjmp(p->fail, 1);
    if (++p->calls % CHECK_EVERY == 0 && html_cpu_now_ns() > p->deadline_ns)
        longjmp(p->fail, 1);
    union blk *b = sm_malloc(sizeof *b + n);
    b->h.size = cost;
    b->h.next = p->blocks;
    if (p->blocks != NULL)
        p->blocks->h.prev = b;
    p->blocks = b;
    p->live += cost;
    return b + 1;
}

static void arena_free(void *ud, void *ptr)
{
    struct html_parse *p = ud;
    if (ptr == NULL)
        return;
    union blk *b = (union blk *)ptr - 1;
    if (b->h.prev != NULL)
        b->h.prev->h.next = b->h.next;
    else
        p->blocks = b->h.next;
    if (b->h.next != NULL)
        b->h.next->h.prev = b->h.prev;
    p->live -= b->h.size;
    free(b);
}

static void arena_release(struct html_parse *p)
{
    while (p->blocks != NULL) {
        union blk *next = p->blocks->h.next;
        free(p->blocks);
        p->blocks = next;
    }
    p->live = 0;
}

/* ---- UTF-8 ------------------------------------------------------------- */

int32_t html_utf8_decode(const unsigned char *s, size_t n, size_t *len_r)
{
    *len_r = 1;
    if (s[0] < 0x80)
        return s[0];
    size_t len;
    int32_t cp, min;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2, cp = s[0] & 0x1f, min = 0x80;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3, cp = s[0] & 0x0f, min = 0x800;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4, cp = s[0] & 0x07, min = 0x10000;
    } else {
        return -1;
    }
    if (n < len)
        return -1;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *len_r = len;
    return cp;
}

bool html_forbidden_cp(int32_t cp)
{
    return (cp >= 0 && cp <= 0x8) || cp == 0xb || (cp >= 0xe && cp <= 0x1f) ||
           (cp >= 0x7f && cp <= 0x9f) || (cp >= 0xfdd0 && cp <= 0xfdef) ||
           (cp & 0xfffe) == 0xfffe;
}

/* Well-formed UTF-8, no NUL, LF line ends: what the HTML input stream
 * preprocessor would make of the bytes. */
static void clean_input(const char *in, size_t len, struct sm_buf *out)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0;
    while (i < len) {
        size_t n;
        int32_t cp = html_utf8_decode(s + i, len - i, &n);
        if (cp < 0 || html_forbidden_cp(cp)) {
            sm_buf_append(out, "\xef\xbf\xbd", 3);
        } else if (cp == '\r') {
            sm_buf_append(out, "\n", 1);
            if (i + 1 < len && s[i + 1] == '\n')
                n = 2;
        } else {
            sm_buf_append(out, s + i, n);
        }
        i += n;
    }
}

/* ---- pacing ---------------------------------------------------------- */

enum scan_state { SCAN_DATA, SCAN_TAG, SCAN_QUOTED, SCAN_COMMENT, SCAN_BOGUS, SCAN_RAW, SCAN_PLAIN };

struct pacer {
    const char *s;
    size_t n, i;
    struct sm_buf *out;
    enum scan_state state;
    char quote;
    bool after_eq;      /* in a tag, just after '=': a quote opens a value */
    bool in_charref;    /* in text after '&' */
    char raw[12];       /* the raw-text element we are in, or after its start tag */
    uint64_t start_tags, run;
};

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9');
}

static bool starts_with_ci(const struct pacer *pc, size_t at, const char *lit)
{
    size_t l = strlen(lit);
    return pc->n - at >= l && strncasecmp(pc->s + at, lit, l) == 0;
}

/* Elements whose content the tokenizer reads as text up to "</name". */
static const char *const raw_text_elements[] = {
    "script", "style", "xmp", "iframe", "noembed", "noframes", "noscript", "title", "textarea",
};

/* At '<' + letter: note the tag's name, so we know what state follows it. */
static void scan_start_tag(struct pacer *pc)
{
    char name[12];
    size_t l = 0, j = pc->i + 1;
    while (j < pc->n && is_alnum(pc->s[j]) && l < sizeof name - 1)
        name[l++] = pc->s[j++];
    name[l] = '\0';
    pc->raw[0] = '\0';
    if (j < pc->n && is_alnum(pc->s[j]))
        return;
    for (size_t k = 0; k < sizeof raw_text_elements / sizeof *raw_text_elements; k++)
        if (strcasecmp(name, raw_text_elements[k]) == 0)
            memcpy(pc->raw, name, l + 1);
    if (strcasecmp(name, "plaintext") == 0)
        memcpy(pc->raw, "plaintext", 10);
}

/* In the data state at '<': which state does it start? */
static void scan_lt(struct pacer *pc)
{
    const char *s = pc->s;
    size_t i = pc->i;
    char next = i + 1 < pc->n ? s[i + 1] : '\0';
    pc->run = 0;
    pc->in_charref = false;
    if (is_alpha(next)) {
        pc->start_tags++;
        scan_start_tag(pc);
        pc->state = SCAN_TAG;
    } else if (next == '/' && i + 2 < pc->n && is_alpha(s[i + 2])) {
        pc->raw[0] = '\0';
        pc->state = SCAN_TAG;
    } else if (starts_with_ci(pc, i, "<!--")) {
        sm_buf_append(pc->out, s + i, 4);
        pc->i += 4;
        /* "<!-->" and "<!--->" are whole comments */
        if (starts_with_ci(pc, pc->i, ">") || starts_with_ci(pc, pc->i, "->"))
            pc->state = SCAN_BOGUS;
        else
            pc->state = SCAN_COMMENT;
        return;
    } else if (next == '!' || next == '?' || next == '/') {
        pc->state = SCAN_BOGUS;
    } else {
        pc->run = 1; /* a lone '<' is text */
    }
    sm_buf_append(pc->out, s + i, 1);
    pc->i++;
}

/* One character of text (data, raw text or plaintext state). */
static void scan_text(struct pacer *pc)
{
    char c = pc->s[pc->i];
    /* depth <= 5 x start tags + a few implied elements (tbody, tr, clones
     * of formatting elements: at most a handful per start tag) */
    uint64_t weight = 5 * pc->start_tags + 16;
    if (!pc->in_charref && pc->run * weight >= QUANTUM) {
        sm_buf_puts(pc->out, PACE_COMMENT);
        pc->run = 0;
    }
    if (c == '&')
        pc->in_charref = true;
    else if (pc->in_charref && !is_alnum(c) && c != '#')
        pc->in_charref = false;
    sm_buf_append(pc->out, &c, 1);
    pc->run++;
    pc->i++;
}

static void scan_data(struct pacer *pc)
{
    if (pc->s[pc->i] == '<')
        scan_lt(pc);
    else
        scan_text(pc);
}

static void scan_tag(struct pacer *pc)
{
    char c = pc->s[pc->i];
    if (c == '>') {
        if (strcmp(pc->raw, "plaintext") == 0)
            pc->state = SCAN_PLAIN;
        else
            pc->state = pc->raw[0] != '\0' ? SCAN_RAW : SCAN_DATA;
        pc->after_eq = false;
    } else if ((c == '"' || c == '\'') && pc->after_eq) {
        pc->state = SCAN_QUOTED;
        pc->quote = c;
        pc->after_eq = false;
    } else if (c == '=') {
        pc->after_eq = true;
    } else if (c != ' ' && c != '\t' && c != '\n' && c != '\f') {
        pc->after_eq = false;
    }
    sm_buf_append(pc->out, &c, 1);
    pc->i++;
}

/* Offset of the next lit from pc->i, or pc->n. */
static size_t find(const struct pacer *pc, const char *lit)
{
    size_t l = strlen(lit);
    for (size_t j = pc->i; j + l <= pc->n; j++)
        if (pc->s[j] == lit[0] && memcmp(pc->s + j, lit, l) == 0)
            return j;
    return pc->n;
}

/* Copy up to and including the end of the current construct. */
static void scan_until(struct pacer *pc, const char *end, enum scan_state next)
{
    size_t hit = find(pc, end);
    size_t stop = hit < pc->n ? hit + strlen(end) : pc->n;
    sm_buf_append(pc->out, pc->s + pc->i, stop - pc->i);
    pc->i = stop;
    pc->state = next;
}

/* A comment ends at "-->" or "--!>", whichever comes first. */
static void scan_comment(struct pacer *pc)
{
    size_t j = pc->i, stop = pc->n;
    for (; j + 3 <= pc->n; j++) {
        if (memcmp(pc->s + j, "-->", 3) == 0) {
            stop = j + 3;
            break;
        }
        if (j + 4 <= pc->n && memcmp(pc->s + j, "--!>", 4) == 0) {
            stop = j + 4;
            break;
        }
    }
    sm_buf_append(pc->out, pc->s + pc->i, stop - pc->i);
    pc->i = stop;
    pc->state = SCAN_DATA;
}

static void scan_raw(struct pacer *pc)
{
    size_t l = strlen(pc->raw);
    while (pc->i < pc->n) {
        if (pc->s[pc->i] == '<' && pc->i + 2 + l <= pc->n && pc->s[pc->i + 1] == '/' &&
            strncasecmp(pc->s + pc->i + 2, pc->raw, l) == 0 &&
            (pc->i + 2 + l == pc->n || strchr(" \t\n\f/>", pc->s[pc->i + 2 + l]) != NULL)) {
            pc->raw[0] = '\0';
            pc->state = SCAN_TAG;
            pc->run = 0;
            return;
        }
        scan_text(pc);
    }
}

static void pace(const char *s, size_t n, struct sm_buf *out)
{
    if (s == NULL || n == 0)
        return;
    struct pacer pc = {.s = s, .n = n, .out = out, .state = SCAN_DATA};
    while (pc.i < pc.n) {
        switch (pc.state) {
        case SCAN_DATA:
            scan_data(&pc);
            break;
        case SCAN_TAG:
            scan_tag(&pc);
            break;
        case SCAN_QUOTED: {
            char q[2] = {pc.quote, '\0'};
            scan_until(&pc, q, SCAN_TAG);
            break;
        }
        case SCAN_COMMENT:
            scan_comment(&pc);
            break;
        case SCAN_BOGUS:
            scan_until(&pc, ">", SCAN_DATA);
            break;
        case SCAN_RAW:
            scan_raw(&pc);
            break;
        case SCAN_PLAIN:
            scan_text(&pc);
            break;
        }
    }
}

/* ---- the parse ----------------------------------------------------------- */

/* setjmp() lives in its own small function: nothing here changes after it. */
static GumboOutput *run_gumbo(struct html_parse *p)
{
    if (setjmp(p->fail) != 0)
        return NULL;
    return gumbo_parse_with_options(&p->opts, p->text.data, p->text.len);
}

enum sm_html_status html_parse(const char *in, size_t len, const struct html_budget *budget,
                               struct html_parse **p_r)
{
    struct html_parse *p = sm_malloc(sizeof *p);
    struct sm_buf clean;
    sm_buf_init(&clean, 0);
    clean_input(in, len, &clean);
    sm_buf_init(&p->text, 0);
    pace(sm_buf_str(&clean), clean.len, &p->text);
    sm_buf_free(&clean);

    p->opts = kGumboDefaultOptions;
    p->opts.allocator = arena_alloc;
    p->opts.deallocator = arena_free;
    p->opts.userdata = p;
    p->opts.max_errors = 0;
    p->max_live = budget->max_memory;
    p->deadline_ns = budget->deadline_ns;
    p->output = run_gumbo(p);
    *p_r = p;
    if (p->output == NULL) {
        html_parse_free(p_r);
        return SM_HTML_TOO_COMPLEX;
    }
    return SM_HTML_OK;
}

const GumboOutput *html_parse_output(const struct html_parse *p)
{
    return p->output;
}

void html_parse_free(struct html_parse **pp)
{
    struct html_parse *p = *pp;
    if (p == NULL)
        return;
    arena_release(p);
    sm_buf_free(&p->text);
    free(p);
    *pp = NULL;
}
