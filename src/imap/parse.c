/* parse.c — the IMAP command parser: cursor, tokens and the command table
 * (see parse.h).
 *
 * Recursive descent over the RFC 9051 grammar (with RFC 3501's rev1 forms
 * and the extensions' additions), strict where the grammar is: one SP
 * between arguments, no trailing space, atoms of ATOM-CHARs only.  Being
 * strict costs nothing with real clients and makes the parser's answer to
 * odd input predictable.  Each command family lives in its own file
 * (parse-search.c, parse-fetch.c, parse-mailbox.c); this file has the
 * tokens they share and the commands too small to deserve a file.
 *
 * Everything a parsed command points to lives in its arena, a list of
 * chunks freed in one go; the sizes are bounded by the command's length
 * and the IMAP_*_MAX counts, never by anything larger. */
#include "imap/parse-internal.h"

#include <ctype.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

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

int cur_number(struct cur *c, uint32_t *v)
{
    uint64_t n;
    if (digits(c, UINT32_MAX, false, &n) < 0)
        return -1;
    *v = (uint32_t)n;
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
    if (cur_peek(c) == '{')
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
        out->data = c->raw->data + lit->offset;
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

/* ---- small commands ---- */

static int p_none(struct cur *c)
{
    return cur_end(c);
}

static bool base64_char(unsigned char ch)
{
    return isalnum(ch) || ch == '+' || ch == '/' || ch == '=';
}

/* Base64 with its padding: a multiple of 4, '=' only in the last two. */
static bool valid_base64(const char *s, size_t len)
{
    if (len % 4 != 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '=' && (i < len - 2 || s[len - 1] != '='))
            return false;
    return true;
}

/* AUTHENTICATE mech [SP initial-response] (RFC 4959 SASL-IR) */
static int p_authenticate(struct cur *c)
{
    struct imap_args_authenticate *a = &c->cmd->args.authenticate;
    if (cur_sp(c) < 0 || cur_atom_upper(c, &a->mechanism) < 0)
        return -1;
    if (cur_peek(c) == ' ') {
        const char *s;
        size_t len;
        c->p++;
        if (cur_span(c, base64_char, &s, &len, "Expected an initial response") < 0)
            return -1;
        if (len == 1 && s[0] == '=')
            len = 0;
        else if (!valid_base64(s, len))
            return cur_fail(c, "Bad base64 in the initial response");
        a->initial_response = arena_strndup(&c->cmd->arena, s, len);
    }
    return cur_end(c);
}

static int p_login(struct cur *c)
{
    struct imap_args_login *a = &c->cmd->args.login;
    char *user, *pass;
    if (cur_sp(c) < 0 || cur_astring(c, &user) < 0 || cur_sp(c) < 0 ||
        cur_astring(c, &pass) < 0)
        return -1;
    a->user = user;
    a->password = pass;
    return cur_end(c);
}

static int p_enable(struct cur *c)
{
    struct imap_args_enable *a = &c->cmd->args.enable;
    a->caps = arena_alloc(&c->cmd->arena, IMAP_ENABLE_MAX * sizeof *a->caps);
    do {
        if (a->n_caps == IMAP_ENABLE_MAX)
            return cur_fail(c, "Too many capabilities");
        if (cur_sp(c) < 0 || cur_atom_upper(c, &a->caps[a->n_caps++]) < 0)
            return -1;
    } while (!cur_at_end(c));
    return 0;
}

/* DELETE, SUBSCRIBE, UNSUBSCRIBE, GETQUOTAROOT */
static int p_mailbox(struct cur *c)
{
    if (cur_sp(c) < 0 || cur_mailbox(c, &c->cmd->args.mailbox.mailbox) < 0)
        return -1;
    return cur_end(c);
}

static int p_rename(struct cur *c)
{
    struct imap_args_rename *a = &c->cmd->args.rename;
    if (cur_sp(c) < 0 || cur_mailbox(c, &a->from) < 0 || cur_sp(c) < 0 ||
        cur_mailbox(c, &a->to) < 0)
        return -1;
    return cur_end(c);
}

/* COPY, MOVE: seqset SP mailbox */
static int p_copy(struct cur *c)
{
    struct imap_args_copy *a = &c->cmd->args.copy;
    if (cur_sp(c) < 0 || cur_seqset(c, true, &a->set) < 0 || cur_sp(c) < 0 ||
        cur_mailbox(c, &a->mailbox) < 0)
        return -1;
    return cur_end(c);
}

/* EXPUNGE, or UID EXPUNGE seqset (RFC 4315) */
static int p_expunge(struct cur *c)
{
    if (c->cmd->uid && (cur_sp(c) < 0 || cur_seqset(c, true, &c->cmd->args.expunge.set) < 0))
        return -1;
    return cur_end(c);
}

/* ID ("(" [string SP nstring *(SP string SP nstring)] ")" / NIL), RFC 2971 */
static int id_pair(struct cur *c, struct imap_args_id *a)
{
    char *key, *value;
    if (a->n == IMAP_ID_PAIRS_MAX)
        return cur_fail(c, "Too many ID fields");
    if (cur_string(c, &key) < 0 || cur_sp(c) < 0 || cur_nstring(c, &value) < 0)
        return -1;
    if (strlen(key) > IMAP_ID_FIELD_MAX || (value != NULL && strlen(value) > IMAP_ID_VALUE_MAX))
        return cur_fail(c, "ID field too long");
    a->keys[a->n] = key;
    a->values[a->n++] = value;
    return 0;
}

static int p_id(struct cur *c)
{
    struct imap_args_id *a = &c->cmd->args.id;
    if (cur_sp(c) < 0)
        return -1;
    if (cur_keyword(c, "NIL")) {
        a->nil = true;
        return cur_end(c);
    }
    if (cur_expect(c, '(', "Expected ( or NIL") < 0)
        return -1;
    a->keys = arena_alloc(&c->cmd->arena, IMAP_ID_PAIRS_MAX * sizeof *a->keys);
    a->values = arena_alloc(&c->cmd->arena, IMAP_ID_PAIRS_MAX * sizeof *a->values);
    while (cur_peek(c) != ')') {
        if ((a->n > 0 && cur_sp(c) < 0) || id_pair(c, a) < 0)
            return -1;
    }
    c->p++;
    return cur_end(c);
}

static int p_getquota(struct cur *c)
{
    char *root;
    if (cur_sp(c) < 0 || cur_astring(c, &root) < 0)
        return -1;
    c->cmd->args.quota.root = root;
    return cur_end(c);
}

/* SETQUOTA root "(" [resource SP number64 *(SP resource SP number64)] ")" */
static int p_setquota(struct cur *c)
{
    struct imap_args_quota *a = &c->cmd->args.quota;
    char *root;
    if (cur_sp(c) < 0 || cur_astring(c, &root) < 0 || cur_sp(c) < 0 ||
        cur_expect(c, '(', "Expected a resource list") < 0)
        return -1;
    a->root = root;
    a->resources = arena_alloc(&c->cmd->arena, IMAP_QUOTA_RESOURCES_MAX * sizeof *a->resources);
    while (cur_peek(c) != ')') {
        if (a->n_resources == IMAP_QUOTA_RESOURCES_MAX)
            return cur_fail(c, "Too many quota resources");
        struct imap_quota_resource *r = &a->resources[a->n_resources++];
        if ((a->n_resources > 1 && cur_sp(c) < 0) || cur_atom_upper(c, &r->name) < 0 ||
            cur_sp(c) < 0 || cur_number64(c, &r->limit) < 0)
            return -1;
    }
    c->p++;
    return cur_end(c);
}

static int p_compress(struct cur *c)
{
    if (cur_sp(c) < 0 || cur_atom_upper(c, &c->cmd->args.compress.mechanism) < 0)
        return -1;
    return cur_end(c);
}

/* ---- the command table ---- */

static const struct command_def {
    const char *name;
    enum imap_cmd cmd;
    bool uid;                      /* may follow "UID" */
    int (*parse)(struct cur *c);
} commands[] = {
    {"CAPABILITY", IMAP_CMD_CAPABILITY, false, p_none},
    {"NOOP", IMAP_CMD_NOOP, false, p_none},
    {"LOGOUT", IMAP_CMD_LOGOUT, false, p_none},
    {"STARTTLS", IMAP_CMD_STARTTLS, false, p_none},
    {"AUTHENTICATE", IMAP_CMD_AUTHENTICATE, false, p_authenticate},
    {"LOGIN", IMAP_CMD_LOGIN, false, p_login},
    {"ENABLE", IMAP_CMD_ENABLE, false, p_enable},
    {"SELECT", IMAP_CMD_SELECT, false, parse_select},
    {"EXAMINE", IMAP_CMD_EXAMINE, false, parse_select},
    {"CREATE", IMAP_CMD_CREATE, false, parse_create},
    {"DELETE", IMAP_CMD_DELETE, false, p_mailbox},
    {"RENAME", IMAP_CMD_RENAME, false, p_rename},
    {"SUBSCRIBE", IMAP_CMD_SUBSCRIBE, false, p_mailbox},
    {"UNSUBSCRIBE", IMAP_CMD_UNSUBSCRIBE, false, p_mailbox},
    {"LIST", IMAP_CMD_LIST, false, parse_list},
    {"LSUB", IMAP_CMD_LSUB, false, parse_lsub},
    {"NAMESPACE", IMAP_CMD_NAMESPACE, false, p_none},
    {"STATUS", IMAP_CMD_STATUS, false, parse_status},
    {"APPEND", IMAP_CMD_APPEND, false, parse_append},
    {"IDLE", IMAP_CMD_IDLE, false, p_none},
    {"CHECK", IMAP_CMD_CHECK, false, p_none},
    {"CLOSE", IMAP_CMD_CLOSE, false, p_none},
    {"UNSELECT", IMAP_CMD_UNSELECT, false, p_none},
    {"EXPUNGE", IMAP_CMD_EXPUNGE, true, p_expunge},
    {"SEARCH", IMAP_CMD_SEARCH, true, parse_search},
    {"SORT", IMAP_CMD_SORT, true, parse_sort},
    {"FETCH", IMAP_CMD_FETCH, true, parse_fetch},
    {"STORE", IMAP_CMD_STORE, true, parse_store},
    {"COPY", IMAP_CMD_COPY, true, p_copy},
    {"MOVE", IMAP_CMD_MOVE, true, p_copy},
    {"ID", IMAP_CMD_ID, false, p_id},
    {"GETQUOTA", IMAP_CMD_GETQUOTA, false, p_getquota},
    {"GETQUOTAROOT", IMAP_CMD_GETQUOTAROOT, false, p_mailbox},
    {"SETQUOTA", IMAP_CMD_SETQUOTA, false, p_setquota},
    {"COMPRESS", IMAP_CMD_COMPRESS, false, p_compress},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

const char *imap_cmd_name(enum imap_cmd cmd)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i].cmd == cmd)
            return commands[i].name;
    return "UNKNOWN";
}

static const struct command_def *find_command(const char *s, size_t len)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strlen(commands[i].name) == len && strncasecmp(s, commands[i].name, len) == 0)
            return &commands[i];
    return NULL;
}

static bool not_space(unsigned char ch)
{
    return ch != ' ';
}

/* tag SP ["UID" SP] command-name: fills cmd->tag, cmd->cmd, cmd->uid. */
static const struct command_def *parse_head(struct cur *c)
{
    const char *s;
    size_t len;
    if (cur_span(c, not_space, &s, &len, "Empty command") < 0)
        return NULL;
    if (!imap_tag_valid(s, len)) {
        cur_fail(c, "Invalid tag");
        return NULL;
    }
    memcpy(c->cmd->tag, s, len);
    c->cmd->tag[len] = '\0';
    if (cur_sp(c) < 0 || cur_atom(c, &s, &len) < 0) {
        c->error = "Missing command";
        return NULL;
    }
    if (len == 3 && strncasecmp(s, "UID", 3) == 0) {
        c->cmd->uid = true;
        if (cur_sp(c) < 0 || cur_atom(c, &s, &len) < 0) {
            c->error = "Missing command after UID";
            return NULL;
        }
    }
    const struct command_def *def = find_command(s, len);
    if (def == NULL) {
        cur_fail(c, c->cmd->uid ? "Unknown UID command" : "Unknown command");
        return NULL;
    }
    c->cmd->cmd = def->cmd;
    if (c->cmd->uid && !def->uid) {
        cur_fail(c, "Command does not take UID");
        return NULL;
    }
    return def;
}

int imap_parse(struct imap_raw *raw, struct imap_command **cmd_r, const char **error_r)
{
    struct imap_command *cmd = sm_calloc(1, sizeof *cmd);
    strcpy(cmd->tag, "*"); /* @UNSAFE: fits */
    struct cur c = {
        .raw = raw, .cmd = cmd, .p = raw->data,
        .end = raw->data + (raw->n_literals > 0 ? raw->literals[0].offset : raw->len),
    };
    *cmd_r = cmd;
    const struct command_def *def = parse_head(&c);
    if (def != NULL && def->parse(&c) == 0 && c.error == NULL)
        return 0;
    *error_r = c.error != NULL ? c.error : "Syntax error";
    return -1;
}

static void close_literal(struct imap_literal *lit)
{
    if (lit->fd >= 0)
        close(lit->fd);
    lit->fd = -1;
}

void imap_command_free(struct imap_command **cmdp)
{
    struct imap_command *cmd = *cmdp;
    if (cmd == NULL)
        return;
    if (cmd->cmd == IMAP_CMD_APPEND)
        for (size_t i = 0; i < cmd->args.append.n_msgs; i++)
            close_literal(&cmd->args.append.msgs[i].msg);
    arena_free(&cmd->arena);
    sm_freep(cmdp);
}
