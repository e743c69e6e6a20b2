/* parse-fetch.c — FETCH (RFC 9051 §6.4.5, RFC 3516 BINARY, RFC 7162
 * CHANGEDSINCE/VANISHED) and STORE (UNCHANGEDSINCE).
 *
 * Sections are validated to the grammar here, so the session only has to
 * check them against the message: "MIME" needs a part number, BINARY takes
 * part numbers only, HEADER.FIELDS needs a non-empty list of header names
 * that RFC 5322 allows.  The macros ALL, FAST and FULL are expanded into
 * their items, so the session sees one list. */
#include "imap/parse-internal.h"

#include <ctype.h>
#include <string.h>

static struct imap_fetch_item *new_item(struct cur *c, enum imap_fetch_att att)
{
    struct imap_args_fetch *a = &c->cmd->args.fetch;
    if (a->n_items == IMAP_FETCH_ITEMS_MAX) {
        cur_fail(c, "Too many fetch items");
        return NULL;
    }
    struct imap_fetch_item *item = &a->items[a->n_items++];
    item->att = att;
    return item;
}

/* RFC 5322 §3.6.8: field-name = 1*ftext, printable ASCII but ':' */
static bool header_name_ok(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (*s < 33 || *s > 126 || *s == ':')
            return false;
    return true;
}

/* SP "(" header-fld-name *(SP header-fld-name) ")", upper-cased */
static int header_list(struct cur *c, struct imap_section *s)
{
    if (cur_sp(c) < 0 || cur_expect(c, '(', "Expected a list of header names") < 0)
        return -1;
    s->fields = arena_alloc(&c->cmd->arena, IMAP_HEADER_FIELDS_MAX * sizeof *s->fields);
    do {
        char *name;
        if (s->n_fields > 0 && cur_sp(c) < 0)
            return -1;
        if (s->n_fields == IMAP_HEADER_FIELDS_MAX)
            return cur_fail(c, "Too many header names");
        if (cur_astring(c, &name) < 0)
            return -1;
        if (!header_name_ok(name))
            return cur_fail(c, "Bad header name");
        for (char *p = name; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        s->fields[s->n_fields++] = name;
    } while (cur_peek(c) != ')');
    c->p++;
    return 0;
}

/* section-msgtext / "MIME" (the latter only after a part number) */
static int section_text(struct cur *c, struct imap_section *s)
{
    if (cur_keyword(c, "HEADER.FIELDS.NOT")) {
        s->text = IMAP_SECTION_HEADER_FIELDS_NOT;
        return header_list(c, s);
    }
    if (cur_keyword(c, "HEADER.FIELDS")) {
        s->text = IMAP_SECTION_HEADER_FIELDS;
        return header_list(c, s);
    }
    if (cur_keyword(c, "HEADER"))
        s->text = IMAP_SECTION_HEADER;
    else if (cur_keyword(c, "TEXT"))
        s->text = IMAP_SECTION_TEXT;
    else if (s->n_parts > 0 && cur_keyword(c, "MIME"))
        s->text = IMAP_SECTION_MIME;
    else
        return cur_fail(c, "Bad section");
    return 0;
}

/* "[" [section-part ["." section-text] / section-msgtext] "]"; binary:
 * "[" [section-part] "]" */
static int section(struct cur *c, bool binary, struct imap_section *s)
{
    if (cur_expect(c, '[', "Expected a section") < 0)
        return -1;
    while (isdigit(cur_peek(c))) {
        if (s->n_parts == IMAP_SECTION_PARTS_MAX)
            return cur_fail(c, "Section nested too deeply");
        if (cur_nz_number(c, &s->parts[s->n_parts++]) < 0)
            return -1;
        if (cur_peek(c) != '.')
            break;
        c->p++;
        if (!isdigit(cur_peek(c)) && section_text(c, s) < 0)
            return -1;
    }
    if (binary && s->text != IMAP_SECTION_ALL)
        return cur_fail(c, "BINARY takes part numbers only");
    if (!binary && s->n_parts == 0 && cur_peek(c) != ']' && section_text(c, s) < 0)
        return -1;
    return cur_expect(c, ']', "Bad section");
}

/* "<" number64 "." nz-number64 ">" */
static int partial(struct cur *c, struct imap_fetch_item *item)
{
    if (cur_peek(c) != '<')
        return 0;
    c->p++;
    item->partial = true;
    if (cur_number64(c, &item->offset) < 0 || cur_expect(c, '.', "Bad partial range") < 0 ||
        cur_nz_number64(c, &item->length) < 0)
        return -1;
    return cur_expect(c, '>', "Bad partial range");
}

static const struct {
    const char *name;
    enum imap_fetch_att att;
} simple_atts[] = {
    {"ENVELOPE", IMAP_FETCH_ENVELOPE},
    {"FLAGS", IMAP_FETCH_FLAGS},
    {"INTERNALDATE", IMAP_FETCH_INTERNALDATE},
    {"RFC822", IMAP_FETCH_RFC822},
    {"RFC822.HEADER", IMAP_FETCH_RFC822_HEADER},
    {"RFC822.SIZE", IMAP_FETCH_RFC822_SIZE},
    {"RFC822.TEXT", IMAP_FETCH_RFC822_TEXT},
    {"BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE},
    {"UID", IMAP_FETCH_UID},
    {"MODSEQ", IMAP_FETCH_MODSEQ},
};

/* BODY, BODY[...], BODY.PEEK[...], BINARY[.PEEK][...], BINARY.SIZE[...] */
static int section_att(struct cur *c)
{
    struct imap_fetch_item *item;
    bool body_peek = cur_keyword(c, "BODY.PEEK");
    if (body_peek || cur_keyword(c, "BODY")) {
        if (!body_peek && cur_peek(c) != '[')
            return new_item(c, IMAP_FETCH_BODY) == NULL ? -1 : 0;
        if ((item = new_item(c, IMAP_FETCH_BODY_SECTION)) == NULL)
            return -1;
        item->peek = body_peek;
        return section(c, false, &item->section) < 0 ? -1 : partial(c, item);
    }
    if (cur_keyword(c, "BINARY.SIZE")) {
        if ((item = new_item(c, IMAP_FETCH_BINARY_SIZE)) == NULL)
            return -1;
        return section(c, true, &item->section);
    }
    bool bin_peek = cur_keyword(c, "BINARY.PEEK");
    if (bin_peek || cur_keyword(c, "BINARY")) {
        if ((item = new_item(c, IMAP_FETCH_BINARY)) == NULL)
            return -1;
        item->peek = bin_peek;
        return section(c, true, &item->section) < 0 ? -1 : partial(c, item);
    }
    return cur_fail(c, cur_peek(c) < 0 ? "Missing fetch attribute" : "Unknown fetch attribute");
}

static int fetch_att(struct cur *c)
{
    for (size_t i = 0; i < sizeof simple_atts / sizeof simple_atts[0]; i++)
        if (cur_keyword(c, simple_atts[i].name))
            return new_item(c, simple_atts[i].att) == NULL ? -1 : 0;
    return section_att(c);
}

/* ALL, FAST and FULL (RFC 9051 §6.4.5) */
static int fetch_macro(struct cur *c, bool *matched)
{
    static const enum imap_fetch_att all[] = {IMAP_FETCH_FLAGS, IMAP_FETCH_INTERNALDATE,
                                              IMAP_FETCH_RFC822_SIZE, IMAP_FETCH_ENVELOPE,
                                              IMAP_FETCH_BODY};
    size_t n = cur_keyword(c, "FAST") ? 3 : cur_keyword(c, "ALL") ? 4 : cur_keyword(c, "FULL") ? 5
                                                                                             : 0;
    *matched = n > 0;
    for (size_t i = 0; i < n; i++)
        new_item(c, all[i]);
    return 0;
}

/* SP "(" modifier *(SP modifier) ")": CHANGEDSINCE n, VANISHED */
static int fetch_modifiers(struct cur *c, struct imap_args_fetch *a)
{
    if (cur_sp(c) < 0 || cur_expect(c, '(', "Expected fetch modifiers") < 0)
        return -1;
    for (bool first = true; cur_peek(c) != ')'; first = false) {
        if (!first && cur_sp(c) < 0)
            return -1;
        if (!a->has_changedsince && cur_keyword(c, "CHANGEDSINCE")) {
            a->has_changedsince = true;
            if (cur_sp(c) < 0 || cur_number64(c, &a->changedsince) < 0)
                return -1;
        } else if (!a->vanished && cur_keyword(c, "VANISHED")) {
            a->vanished = true;
        } else {
            return cur_fail(c, "Unknown or repeated fetch modifier");
        }
    }
    c->p++;
    if (a->vanished && (!c->cmd->uid || !a->has_changedsince))
        return cur_fail(c, "VANISHED needs UID FETCH and CHANGEDSINCE"); /* RFC 7162 §3.2.6 */
    return 0;
}

int parse_fetch(struct cur *c)
{
    struct imap_args_fetch *a = &c->cmd->args.fetch;
    bool macro;
    if (cur_sp(c) < 0 || cur_seqset(c, true, &a->set) < 0 || cur_sp(c) < 0)
        return -1;
    a->items = arena_alloc(&c->cmd->arena, IMAP_FETCH_ITEMS_MAX * sizeof *a->items);
    fetch_macro(c, &macro);
    if (macro) {
        /* nothing more: the macro stands alone */
    } else if (cur_peek(c) == '(') {
        c->p++;
        do {
            if ((a->n_items > 0 && cur_sp(c) < 0) || fetch_att(c) < 0)
                return -1;
        } while (cur_peek(c) != ')');
        c->p++;
    } else if (fetch_att(c) < 0) {
        return -1;
    }
    if (!cur_at_end(c) && fetch_modifiers(c, a) < 0)
        return -1;
    return cur_end(c);
}

/* ---- STORE ---- */

/* SP "(" "UNCHANGEDSINCE" SP mod-sequence-valzer ")" */
static int store_modifiers(struct cur *c, struct imap_args_store *a)
{
    if (cur_expect(c, '(', "Expected store modifiers") < 0)
        return -1;
    if (!cur_keyword(c, "UNCHANGEDSINCE"))
        return cur_fail(c, "Unknown store modifier");
    a->has_unchangedsince = true;
    if (cur_sp(c) < 0 || cur_number64(c, &a->unchangedsince) < 0)
        return -1;
    if (cur_expect(c, ')', "Expected ) after store modifiers") < 0)
        return -1;
    return cur_sp(c);
}

/* flag-list / flag *(SP flag), without \Recent and \* */
static int store_flags(struct cur *c, struct imap_args_store *a)
{
    if (cur_peek(c) == '(') {
        if (cur_flag_list(c, &a->flags, &a->n_flags) < 0)
            return -1;
    } else {
        a->flags = arena_alloc(&c->cmd->arena, IMAP_FLAGS_MAX * sizeof *a->flags);
        do {
            if (a->n_flags > 0 && cur_sp(c) < 0)
                return -1;
            if (a->n_flags == IMAP_FLAGS_MAX)
                return cur_fail(c, "Too many flags");
            if (cur_flag(c, false, &a->flags[a->n_flags++]) < 0)
                return -1;
        } while (!cur_at_end(c));
    }
    for (size_t i = 0; i < a->n_flags; i++)
        if (strcmp(a->flags[i], "\\Recent") == 0)
            return cur_fail(c, "\\Recent cannot be stored");
    return cur_end(c);
}

int parse_store(struct cur *c)
{
    struct imap_args_store *a = &c->cmd->args.store;
    if (cur_sp(c) < 0 || cur_seqset(c, true, &a->set) < 0 || cur_sp(c) < 0)
        return -1;
    if (cur_peek(c) == '(' && store_modifiers(c, a) < 0)
        return -1;
    int ch = cur_peek(c);
    if (ch == '+' || ch == '-') {
        a->op = ch == '+' ? IMAP_STORE_ADD : IMAP_STORE_REMOVE;
        c->p++;
    }
    if (cur_keyword(c, "FLAGS.SILENT"))
        a->silent = true;
    else if (!cur_keyword(c, "FLAGS"))
        return cur_fail(c, "Expected FLAGS, +FLAGS or -FLAGS");
    if (cur_sp(c) < 0)
        return -1;
    return store_flags(c, a);
}
