/* parse-token.c — the parser's cursor and tokens: atoms, numbers,
 * strings and literals, flags, dates and sequence sets in the command
 * text, and the per-command arena they are copied into (see
 * parse-internal.h).
 *
 * A token never reads past the end of the current line: literals are the
 * only way from one line to the next, and take_literal() checks that the
 * announcement the parser sees is the one the reader acted on. */
#include "imap/parse-internal.h"

#include <ctype.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"

/* ---- arena ---- */

struct imap_arena {
    struct imap_arena *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
};

#define ARENA_CHUNK 4096

void *arena_alloc(struct imap_arena **a, size_t n)
{
    n = (n + 15) & ~(size_t)15; /* @UNSAFE: n is bounded by the command size */
    if (*a == NULL || (*a)->cap - (*a)->used < n) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        struct imap_arena *chunk = sm_malloc(sizeof *chunk + cap);
        chunk->cap = cap;
        chunk->next = *a;
        *a = chunk;
    }
    void *p = (*a)->data + (*a)->used;
    (*a)->used += n;
    return p; /* sm_malloc zeroed the chunk, and nothing is reused */
}

char *arena_strndup(struct imap_arena **a, const char *s, size_t n)
{
    char *copy = arena_alloc(a, n + 1);
    memcpy(copy, s, n);
    return copy;
}

void arena_free(struct imap_arena **a)
{
    while (*a != NULL) {
        struct imap_arena *next = (*a)->next;
        explicit_bzero((*a)->data, (*a)->used); /* LOGIN passwords were here */
        free(*a);
        *a = next;
    }
}

/* ---- character classes ---- */

bool imap_is_atom_char(unsigned char ch)
{
    if (ch <= 0x1f || ch >= 0x7f)
        return false;
    return strchr("(){ %*\"\\]", ch) == NULL;
}

bool imap_is_astring_char(unsigned char ch)
{
    return ch == ']' || imap_is_atom_char(ch);
}

bool imap_tag_valid(const char *s, size_t len)
{
    if (len == 0 || len > IMAP_TAG_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '+' || !imap_is_astring_char((unsigned char)s[i]))
            return false;
    return true;
}

bool imap_literal_announce(const char *line, size_t len, size_t *start_r, uint64_t *size_r,
                           bool *nonsync_r, bool *binary_r)
{
    if (len < 3 || line[len - 1] != '}')
        return false;
    size_t i = len - 1;
    *nonsync_r = line[i - 1] == '+';
    if (*nonsync_r)
        i--;
    size_t digits_end = i;
    while (i > 0 && isdigit((unsigned char)line[i - 1]))
        i--;
    if (i == digits_end || i == 0 || line[i - 1] != '{')
        return false;
    uint64_t size = 0;
    for (size_t k = i; k < digits_end && size != UINT64_MAX; k++) {
        unsigned d = (unsigned)(line[k] - '0');
        size = size > ((uint64_t)INT64_MAX - d) / 10 ? UINT64_MAX : size * 10 + d;
    }
    *size_r = size;
    *start_r = i - 1;
    *binary_r = i >= 2 && line[i - 2] == '~';
    if (*binary_r)
        (*start_r)--;
    return true;
}

/* ---- cursor basics ---- */

int cur_fail(struct cur *c, const char *why)
{
    if (c->error == NULL)
        c->error = why;
    return -1;
}

int cur_peek(const struct cur *c)
{
    return c->p < c->end ? (unsigned char)*c->p : -1;
}

bool cur_at_end(const struct cur *c)
{
    return c->p >= c->end && c->lit >= c->raw->n_literals;
}

int cur_expect(struct cur *c, char ch, const char *why)
{
    if (cur_peek(c) != (unsigned char)ch)
        return cur_fail(c, why);
    c->p++;
    return 0;
}

int cur_sp(struct cur *c)
{
    if (cur_peek(c) == ' ') {
        c->p++;
        return 0;
    }
    return cur_fail(c, cur_peek(c) < 0 ? "Missing argument" : "Expected a space");
}

int cur_end(struct cur *c)
{
    return cur_at_end(c) ? 0 : cur_fail(c, "Unexpected extra arguments");
}

int cur_span(struct cur *c, bool (*ok)(unsigned char), const char **s_r, size_t *len_r,
             const char *why)
{
    const char *start = c->p;
    while (c->p < c->end && ok((unsigned char)*c->p))
        c->p++;
    if (c->p == start)
        return cur_fail(c, why);
    *s_r = start;
    *len_r = (size_t)(c->p - start);
    return 0;
}

int cur_atom(struct cur *c, const char **s_r, size_t *len_r)
{
    return cur_span(c, imap_is_atom_char, s_r, len_r,
                    cur_peek(c) < 0 ? "Missing argument" : "Expected an atom");
}

static bool word_char(unsigned char ch)
{
    return isalnum(ch) || ch == '.' || ch == '-' || ch == '=' || ch == '_';
}

bool cur_keyword(struct cur *c, const char *kw)
{
    size_t n = strlen(kw);
    if ((size_t)(c->end - c->p) < n || strncasecmp(c->p, kw, n) != 0)
        return false;
    if (c->p + n < c->end && word_char((unsigned char)c->p[n]))
        return false;
    c->p += n;
    return true;
}

int cur_atom_upper(struct cur *c, const char **out)
{
    const char *s;
    size_t len;
    if (cur_atom(c, &s, &len) < 0)
        return -1;
    char *copy = arena_strndup(&c->cmd->arena, s, len);
    for (size_t i = 0; i < len; i++)
        copy[i] = (char)toupper((unsigned char)copy[i]);
    *out = copy;
    return 0;
}

/* ---- numbers ---- */

static int digits(struct cur *c, uint64_t max, bool nz, uint64_t *v)
{
    const char *start = c->p;
    uint64_t n = 0;
    while (c->p < c->end && isdigit((unsigned char)*c->p)) {
        unsigned d = (unsigned)(*c->p++ - '0');
        if (n > (max - d) / 10)
            return cur_fail(c, "Number too big");
        n = n * 10 + d;
    }
    if (c->p == start)
        return cur_fail(c, "Expected a number");
    if (nz && (*start == '0'))
        return cur_fail(c, "Expected a non-zero number");
    *v = n;
    return 0;
}

int cur_nz_number(struct cur *c, uint32_t *v)
{
    uint64_t n;
    if (digits(c, UINT32_MAX, true, &n) < 0)
        return -1;
    *v = (uint32_t)n;
    return 0;
}

int cur_number64(struct cur *c, uint64_t *v)
{
    return digits(c, INT64_MAX, false, v);
}

int cur_nz_number64(struct cur *c, uint64_t *v)
{
    return digits(c, INT64_MAX, true, v);
}

/* ---- strings ---- */

/* Step over the literal announced at the end of the current line. */
static const struct imap_raw_literal *take_literal(struct cur *c)
{
    size_t start;
    uint64_t size = 0;
    bool nonsync = false, binary = false;
    size_t len = (size_t)(c->end - c->p);
    if (!imap_literal_announce(c->p, len, &start, &size, &nonsync, &binary) || start != 0) {
        cur_fail(c, "Bad literal");
        return NULL;
    }
    if (c->lit >= c->raw->n_literals) {
        cur_fail(c, "Missing literal data");
        return NULL;
    }
    const struct imap_raw_literal *lit = &c->raw->literals[c->lit++];
    if (lit->size != size || lit->binary != binary) {
        cur_fail(c, "Bad literal");
        return NULL;
    }
    size_t next = lit->offset + (lit->fd >= 0 ? 0 : (size_t)lit->size);
    c->p = c->raw->data + next;
    c->end = c->raw->data + (c->lit < c->raw->n_literals ? c->raw->literals[c->lit].offset
                                                          : c->raw->len);
    return lit;
}

static int literal_string(struct cur *c, char **out)
{
    const struct imap_raw_literal *lit = take_literal(c);
    if (lit == NULL)
        return -1;
    if (lit->binary)
        return cur_fail(c, "literal8 is only allowed for APPEND data");
    if (lit->fd >= 0)
        return cur_fail(c, "Literal too big for a string");
    const char *s = c->raw->data + lit->offset;
    if (memchr(s, '\0', (size_t)lit->size) != NULL)
        return cur_fail(c, "NUL byte in a literal");
    *out = arena_strndup(&c->cmd->arena, s, (size_t)lit->size);
    return 0;
}

static int quoted_string(struct cur *c, char **out)
{
    c->p++; /* the opening quote */
    const char *start = c->p;
    size_t n = 0;
    bool eight_bit = false;
    for (;; c->p++, n++) {
        if (c->p >= c->end)
            return cur_fail(c, "Unterminated quoted string");
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"')
            break;
        if (ch == '\\') {
            if (++c->p >= c->end || (*c->p != '"' && *c->p != '\\'))
                return cur_fail(c, "Bad escape in quoted string");
        } else if (ch == '\r' || ch == '\n' || ch == '\0') {
            return cur_fail(c, "Bad character in quoted string");
        } else if (ch >= 0x80) {
            eight_bit = true;
        }
    }
    char *copy = arena_alloc(&c->cmd->arena, n + 1);
    for (size_t i = 0; start < c->p; start++) {
        if (*start == '\\')
            start++;
        copy[i++] = *start;
    }
    c->p++; /* the closing quote */
    if (eight_bit && !imap_utf8_check(copy, n, true))
        return cur_fail(c, "Invalid UTF-8 in quoted string");
    *out = copy;
    return 0;
}

int cur_string(struct cur *c, char **out)
{
    int ch = cur_peek(c);
    if (ch == '"')
        return quoted_string(c, out);
    if (ch == '{' || ch == '~')
        return literal_string(c, out);
    return cur_fail(c, ch < 0 ? "Missing argument" : "Expected a string");
}

int cur_astring(struct cur *c, char **out)
{
    int ch = cur_peek(c);
    if (ch == '"' || ch == '{')
        return cur_string(c, out);
    const char *s;
    size_t len;
    if (cur_span(c, imap_is_astring_char, &s, &len,
                 ch < 0 ? "Missing argument" : "Expected a string or atom") < 0)
        return -1;
    if (len == 1 && s[0] == '~' && cur_peek(c) == '{')
        return cur_fail(c, "literal8 is only allowed for APPEND data");
    *out = arena_strndup(&c->cmd->arena, s, len);
    return 0;
}

int cur_nstring(struct cur *c, char **out)
{
    if (cur_keyword(c, "NIL")) {
        *out = NULL;
        return 0;
    }
    return cur_string(c, out);
}

int cur_message_literal(struct cur *c, struct imap_literal *out)
{
    int ch = cur_peek(c);
    if (ch != '{' && ch != '~')
        return cur_fail(c, "Expected a literal");
    const struct imap_raw_literal *lit = take_literal(c);
    if (lit == NULL)
        return -1;
    out->size = lit->size;
    out->binary = lit->binary;
    out->fd = -1;
    if (lit->fd >= 0) {
        out->fd = lit->fd; /* the command owns it from now on */
        c->raw->literals[c->lit - 1].fd = -1;
    } else {
        /* a copy: the command must outlive raw (parse.h) */
        out->data = arena_strndup(&c->cmd->arena, c->raw->data + lit->offset, (size_t)lit->size);
    }
    return 0;
}

int cur_mailbox(struct cur *c, const char **out)
{
    char *name;
    if (cur_astring(c, &name) < 0)
        return -1;
    if (strlen(name) > IMAP_MAILBOX_MAX)
        return cur_fail(c, "Mailbox name too long");
    *out = strcasecmp(name, "INBOX") == 0 ? "INBOX" : name;
    return 0;
}

/* ---- flags ---- */

static const char *const system_flags[] = {
    "\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent",
};

int cur_flag(struct cur *c, bool allow_star, const char **out)
{
    const char *start = c->p;
    if (cur_peek(c) == '\\') {
        c->p++;
        if (cur_peek(c) == '*') {
            c->p++;
            if (!allow_star)
                return cur_fail(c, "\\* is not a flag here");
            *out = "\\*";
            return 0;
        }
    }
    const char *s;
    size_t len;
    if (cur_atom(c, &s, &len) < 0)
        return cur_fail(c, "Expected a flag");
    len += (size_t)(s - start);
    for (size_t i = 0; i < sizeof system_flags / sizeof system_flags[0]; i++)
        if (strlen(system_flags[i]) == len && strncasecmp(start, system_flags[i], len) == 0) {
            *out = system_flags[i]; /* canonical spelling */
            return 0;
        }
    *out = arena_strndup(&c->cmd->arena, start, len);
    return 0;
}

int cur_flag_list(struct cur *c, const char ***flags, size_t *n)
{
    if (cur_expect(c, '(', "Expected a flag list") < 0)
        return -1;
    const char **list = arena_alloc(&c->cmd->arena, IMAP_FLAGS_MAX * sizeof *list);
    *n = 0;
    while (cur_peek(c) != ')') {
        if (*n > 0 && cur_sp(c) < 0)
            return -1;
        if (*n == IMAP_FLAGS_MAX)
            return cur_fail(c, "Too many flags");
        if (cur_flag(c, false, &list[*n]) < 0)
            return -1;
        (*n)++;
    }
    c->p++;
    *flags = list;
    return 0;
}

/* ---- dates and sequence sets in the token stream ---- */

static bool date_char(unsigned char ch)
{
    return isalnum(ch) || ch == '-';
}

int cur_date(struct cur *c, time_t *t)
{
    bool quoted = cur_peek(c) == '"';
    if (quoted)
        c->p++;
    const char *s;
    size_t len;
    if (cur_span(c, date_char, &s, &len, "Expected a date") < 0)
        return -1;
    if (quoted && cur_expect(c, '"', "Bad date") < 0)
        return -1;
    if (imap_parse_date(s, len, t) < 0)
        return cur_fail(c, "Bad date");
    return 0;
}

int cur_datetime(struct cur *c, time_t *t)
{
    if (cur_expect(c, '"', "Expected a date-time") < 0)
        return -1;
    const char *close = memchr(c->p, '"', (size_t)(c->end - c->p));
    if (close == NULL || imap_parse_datetime(c->p, (size_t)(close - c->p), t) < 0)
        return cur_fail(c, "Bad date-time");
    c->p = close + 1;
    return 0;
}

int cur_seqset(struct cur *c, bool allow_saved, struct imap_seqset *set)
{
    const char *s;
    size_t len;
    if (cur_span(c, seqset_char, &s, &len,
                 cur_peek(c) < 0 ? "Missing argument" : "Expected a sequence set") < 0)
        return -1;
    long n = seqset_count(s, len);
    if (n < 0)
        return cur_fail(c, "Too many ranges in sequence set");
    struct imap_seq_range *ranges = arena_alloc(&c->cmd->arena, (size_t)n * sizeof *ranges);
    const char *why;
    if (seqset_parse_into(s, len, allow_saved, set, ranges, &why) < 0)
        return cur_fail(c, why);
    return 0;
}
