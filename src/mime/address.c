/* address.c — RFC 5322 address lists for the IMAP ENVELOPE.
 *
 * The ENVELOPE carries addresses as raw words: display names keep their
 * RFC 2047 encoded words, quoted strings are unquoted, comments are
 * dropped except that "addr (Name)" gives the name "Name".  Groups become
 * a start marker (NIL NIL "name" NIL) and an end marker (NIL NIL NIL NIL)
 * around their members (RFC 9051 §7.5.2).
 *
 * Parsing is lenient and never fails: like UW-IMAP and Dovecot, an address
 * missing its local part or domain is completed with MISSING_MAILBOX or
 * MISSING_DOMAIN, an unterminated <...> gets the domain SYNTAX_ERROR, a
 * route without ':' gets INVALID_ROUTE, and parsing stops at the first
 * byte that cannot continue the list (a NUL byte, for one).  As in Dovecot,
 * dot-atoms are strict ("example." is no domain) and an unterminated
 * quoted string is an error, not the rest of the header.  8-bit bytes are
 * accepted in words (RFC 6532).  The caller's budget bounds the number of
 * addresses. */
#include "mime/internal.h"

#include <string.h>

#include "core/mem.h"

struct ap {
    const char *p, *end;
    struct sm_buf comment; /* content of the last comment seen */
};

static bool at(const struct ap *ap, char c)
{
    return ap->p < ap->end && *ap->p == c;
}

static bool atext(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c >= 0x80 || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Cut b back to its first keep bytes. */
static void truncate_to(struct sm_buf *b, size_t keep)
{
    b->len = keep;
    if (b->data != NULL)
        b->data[keep] = '\0';
}

/* Skip a comment at ap->p, keeping its text (nested parentheses and all,
 * quoted pairs unescaped) in ap->comment. */
static void skip_comment(struct ap *ap)
{
    unsigned depth = 0;
    sm_buf_reset(&ap->comment);
    for (; ap->p < ap->end; ap->p++) {
        char c = *ap->p;
        if (c == '\\' && ap->p + 1 < ap->end) {
            sm_buf_append(&ap->comment, ++ap->p, 1);
            continue;
        }
        if (c == '(' && depth++ == 0)
            continue;
        if (c == ')' && --depth == 0) {
            ap->p++;
            return;
        }
        if (c != '\r' && c != '\n' && c != '\0')
            sm_buf_append(&ap->comment, &c, 1);
    }
}

static void skip_cfws(struct ap *ap)
{
    while (ap->p < ap->end) {
        char c = *ap->p;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            ap->p++;
        else if (c == '(')
            skip_comment(ap);
        else
            break;
    }
}

/* A quoted string at ap->p, unquoted into b (line breaks and NULs
 * dropped); false, with b as it was, if it is not terminated. */
static bool quoted_string(struct ap *ap, struct sm_buf *b)
{
    size_t keep = b->len;
    for (ap->p++; ap->p < ap->end; ap->p++) {
        char c = *ap->p;
        if (c == '"') {
            ap->p++;
            return true;
        }
        if (c == '\\' && ap->p + 1 < ap->end)
            c = *++ap->p;
        if (c == '\r' || c == '\n' || c == '\0')
            continue;
        sm_buf_append(b, &c, 1);
    }
    truncate_to(b, keep);
    return false;
}

/* A run of atext (and dots when dots is true) into b; false if empty. */
static bool atom(struct ap *ap, struct sm_buf *b, bool dots)
{
    const char *start = ap->p;
    while (ap->p < ap->end && (atext((unsigned char)*ap->p) || (dots && *ap->p == '.')))
        ap->p++;
    sm_buf_append(b, start, (size_t)(ap->p - start));
    return ap->p > start;
}

/* phrase = 1*word, words joined by one space (obs-phrase: dots allowed).
 * Returns the number of words, or -1 if a quoted string is unterminated
 * (the words before it stay in b). */
static int phrase(struct ap *ap, struct sm_buf *b)
{
    int words = 0;
    for (;;) {
        skip_cfws(ap);
        if (!at(ap, '"') && (ap->p >= ap->end || !(atext((unsigned char)*ap->p) || *ap->p == '.')))
            return words;
        size_t keep = b->len;
        if (words++ > 0)
            sm_buf_append(b, " ", 1);
        if (!at(ap, '"')) {
            atom(ap, b, true);
        } else if (!quoted_string(ap, b)) {
            truncate_to(b, keep);
            return -1;
        }
    }
}

/* local-part = dot-atom / quoted-string (unquoted); false if none or
 * broken (a dot not followed by an atom, an unterminated quote). */
static bool local_part(struct ap *ap, struct sm_buf *b)
{
    skip_cfws(ap);
    if (at(ap, '"'))
        return quoted_string(ap, b);
    if (!atom(ap, b, false))
        return false;
    for (;;) {
        skip_cfws(ap);
        if (!at(ap, '.'))
            return true;
        ap->p++;
        sm_buf_append(b, ".", 1);
        skip_cfws(ap);
        if (!atom(ap, b, false))
            return false;
    }
}

/* domain = dot-atom / domain-literal (kept with its brackets). */
static bool domain(struct ap *ap, struct sm_buf *b)
{
    skip_cfws(ap);
    if (at(ap, '[')) { /* kept as written; unterminated: no domain */
        const char *start = ap->p;
        while (ap->p < ap->end && *ap->p != ']')
            ap->p++;
        if (ap->p >= ap->end)
            return false;
        ap->p++;
        sm_buf_append(b, start, (size_t)(ap->p - start));
        skip_cfws(ap);
        return true;
    }
    bool any = !at(ap, '"') && local_part(ap, b) && b->len > 0;
    skip_cfws(ap);
    return any;
}

static char *take(struct sm_buf *b)
{
    char *s = sm_strdup(sm_buf_str(b));
    sm_buf_reset(b);
    return s;
}

static void add(struct addr_list *l, struct addr *a)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4;
        l->a = sm_realloc(l->a, l->cap * sizeof *l->a);
    }
    l->a[l->n++] = *a;
    memset(a, 0, sizeof *a);
}

/* Complete a mailbox with the placeholders clients expect. */
static void add_mailbox(struct addr_list *l, struct addr *a)
{
    if (a->mailbox == NULL)
        a->mailbox = sm_strdup("MISSING_MAILBOX");
    if (a->domain == NULL || *a->domain == '\0') {
        sm_freep(&a->domain);
        a->domain = sm_strdup("MISSING_DOMAIN");
    }
    add(l, a);
}

/* angle-addr = "<" [route ":"] [local-part "@" domain] ">" */
static void angle_addr(struct ap *ap, struct addr *a, struct sm_buf *b)
{
    ap->p++;
    skip_cfws(ap);
    if (at(ap, '@')) {
        while (at(ap, '@')) {
            if (b->len > 0)
                sm_buf_append(b, ",", 1);
            sm_buf_append(b, "@", 1);
            ap->p++;
            domain(ap, b);
            while (at(ap, ',')) {
                ap->p++;
                skip_cfws(ap);
            }
        }
        if (at(ap, ':')) {
            ap->p++;
            a->route = take(b);
        } else {
            sm_buf_reset(b);
            a->route = sm_strdup("INVALID_ROUTE");
        }
        skip_cfws(ap);
    }
    if (!at(ap, '>')) {
        if (local_part(ap, b))
            a->mailbox = take(b);
        sm_buf_reset(b);
        skip_cfws(ap);
        if (at(ap, '@')) {
            ap->p++;
            if (domain(ap, b))
                a->domain = take(b);
            sm_buf_reset(b);
        }
    }
    if (at(ap, '>')) {
        ap->p++;
    } else {
        sm_freep(&a->domain);
        a->domain = sm_strdup("SYNTAX_ERROR");
    }
}

/* mailbox = name-addr / addr-spec */
static void mailbox(struct ap *ap, struct addr_list *l)
{
    struct addr a = {NULL, NULL, NULL, NULL};
    struct sm_buf b;
    sm_buf_init(&b, 0);
    const char *start = ap->p;
    int words = phrase(ap, &b);
    skip_cfws(ap);
    if (words >= 0 && at(ap, '<')) {
        a.name = words > 0 ? take(&b) : NULL;
        sm_buf_reset(&b);
        angle_addr(ap, &a, &b);
        add_mailbox(l, &a);
        sm_buf_free(&b);
        return;
    }
    /* addr-spec, perhaps followed by a comment that names it */
    ap->p = start;
    sm_buf_reset(&b);
    sm_buf_reset(&ap->comment);
    if (local_part(ap, &b))
        a.mailbox = take(&b);
    sm_buf_reset(&b);
    skip_cfws(ap);
    if (at(ap, '@')) {
        ap->p++;
        if (domain(ap, &b))
            a.domain = take(&b);
    } else if (a.mailbox != NULL && phrase(ap, &b) != 0 && b.len > 0) {
        /* "some words" without an address: a name alone */
        a.name = sm_malloc(strlen(a.mailbox) + b.len + 2);
        memcpy(a.name, a.mailbox, strlen(a.mailbox));
        a.name[strlen(a.mailbox)] = ' ';
        memcpy(a.name + strlen(a.mailbox) + 1, b.data, b.len + 1);
        sm_freep(&a.mailbox);
    }
    skip_cfws(ap);
    if (a.name == NULL && ap->comment.len > 0)
        a.name = take(&ap->comment);
    add_mailbox(l, &a);
    sm_buf_free(&b);
}

/* group = display-name ":" [mailbox-list] ";" — false if not a group. */
static bool group(struct ap *ap, struct addr_list *l, unsigned *budget)
{
    struct sm_buf b;
    sm_buf_init(&b, 0);
    const char *start = ap->p;
    bool ok = phrase(ap, &b) > 0;
    skip_cfws(ap);
    if (!ok || !at(ap, ':')) {
        ap->p = start;
        sm_buf_free(&b);
        return false;
    }
    ap->p++;
    struct addr a = {NULL, NULL, take(&b), NULL};
    add(l, &a);
    skip_cfws(ap);
    while (ap->p < ap->end && !at(ap, ';') && *budget > 1) {
        (*budget)--;
        mailbox(ap, l);
        skip_cfws(ap);
        if (!at(ap, ','))
            break;
        ap->p++;
        skip_cfws(ap);
    }
    if (at(ap, ';'))
        ap->p++;
    add(l, &a); /* the end marker */
    sm_buf_free(&b);
    return true;
}

void addr_parse(struct addr_list *l, const char *value, size_t len, unsigned *budget,
                bool *truncated)
{
    struct ap ap = {value, value + len, {NULL, 0, 0, 0}};
    sm_buf_init(&ap.comment, 0);
    for (;;) {
        skip_cfws(&ap);
        if (ap.p >= ap.end)
            break;
        if (*budget < 2) {
            *truncated = true;
            break;
        }
        (*budget)--;
        if (!group(&ap, l, budget))
            mailbox(&ap, l);
        skip_cfws(&ap);
        if (!at(&ap, ','))
            break;
        ap.p++;
    }
    sm_buf_free(&ap.comment);
}

void addr_list_free(struct addr_list *l)
{
    for (unsigned i = 0; i < l->n; i++) {
        sm_freep(&l->a[i].name);
        sm_freep(&l->a[i].route);
        sm_freep(&l->a[i].mailbox);
        sm_freep(&l->a[i].domain);
    }
    sm_freep(&l->a);
    l->n = l->cap = 0;
}

void addr_write(struct sm_buf *b, const struct addr_list *l)
{
    if (l->n == 0) {
        sm_buf_puts(b, "NIL");
        return;
    }
    sm_buf_puts(b, "(");
    for (unsigned i = 0; i < l->n; i++) {
        const struct addr *a = &l->a[i];
        sm_buf_puts(b, "(");
        imap_nstring_humans(b, a->name);
        sm_buf_puts(b, " ");
        imap_nstring(b, a->route);
        sm_buf_puts(b, " ");
        imap_nstring(b, a->mailbox);
        sm_buf_puts(b, " ");
        imap_nstring(b, a->domain);
        sm_buf_puts(b, ")");
    }
    sm_buf_puts(b, ")");
}

static bool placeholder(const char *s)
{
    return strcmp(s, "MISSING_MAILBOX") == 0 || strcmp(s, "MISSING_DOMAIN") == 0 ||
           strcmp(s, "SYNTAX_ERROR") == 0;
}

char *addr_sort_key(const struct addr_list *l)
{
    for (unsigned i = 0; i < l->n; i++) {
        const struct addr *a = &l->a[i];
        if (a->domain == NULL)
            continue; /* group marker */
        if (placeholder(a->mailbox))
            return sm_strdup("");
        size_t ml = strlen(a->mailbox), dl = placeholder(a->domain) ? 0 : strlen(a->domain);
        char *key = sm_malloc(ml + dl + 2);
        memcpy(key, a->mailbox, ml);
        if (dl > 0) {
            key[ml] = '@';
            memcpy(key + ml + 1, a->domain, dl);
        }
        for (char *c = key; *c != '\0'; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        return key;
    }
    return sm_strdup("");
}
