/* parse-search.c — SEARCH and SORT (RFC 9051 §6.4.4, RFC 4731 ESEARCH,
 * RFC 5182 SEARCHRES, RFC 7162 MODSEQ, RFC 5256 SORT, RFC 5267 ESORT,
 * RFC 5957 DISPLAYFROM/DISPLAYTO).
 *
 * The keys become a tree of struct imap_search_node: the top level and
 * each parenthesised group is an AND node, OR has two children, NOT one.
 * The tree is bounded in depth (recursion) and in size (IMAP_SEARCH_*), so
 * "NOT NOT NOT ..." or "(((((..." cost a BAD, not the stack.  A key the
 * table does not know is BAD: guessing would return wrong results. */
#include "imap/parse-internal.h"

#include <string.h>

enum key_arg {
    ARG_NONE, ARG_ASTRING, ARG_DATE, ARG_NUMBER, ARG_KEYWORD, ARG_HEADER, ARG_NOT, ARG_OR,
    ARG_UID, ARG_MODSEQ,
};

static const struct search_def {
    const char *name;
    enum imap_search_key key;
    enum key_arg arg;
} search_keys[] = {
    {"ALL", IMAP_SK_ALL, ARG_NONE},
    {"ANSWERED", IMAP_SK_ANSWERED, ARG_NONE},
    {"BCC", IMAP_SK_BCC, ARG_ASTRING},
    {"BEFORE", IMAP_SK_BEFORE, ARG_DATE},
    {"BODY", IMAP_SK_BODY, ARG_ASTRING},
    {"CC", IMAP_SK_CC, ARG_ASTRING},
    {"DELETED", IMAP_SK_DELETED, ARG_NONE},
    {"DRAFT", IMAP_SK_DRAFT, ARG_NONE},
    {"FLAGGED", IMAP_SK_FLAGGED, ARG_NONE},
    {"FROM", IMAP_SK_FROM, ARG_ASTRING},
    {"HEADER", IMAP_SK_HEADER, ARG_HEADER},
    {"KEYWORD", IMAP_SK_KEYWORD, ARG_KEYWORD},
    {"LARGER", IMAP_SK_LARGER, ARG_NUMBER},
    {"MODSEQ", IMAP_SK_MODSEQ, ARG_MODSEQ},
    {"NEW", IMAP_SK_NEW, ARG_NONE},
    {"NOT", IMAP_SK_NOT, ARG_NOT},
    {"OLD", IMAP_SK_OLD, ARG_NONE},
    {"ON", IMAP_SK_ON, ARG_DATE},
    {"OR", IMAP_SK_OR, ARG_OR},
    {"RECENT", IMAP_SK_RECENT, ARG_NONE},
    {"SEEN", IMAP_SK_SEEN, ARG_NONE},
    {"SENTBEFORE", IMAP_SK_SENTBEFORE, ARG_DATE},
    {"SENTON", IMAP_SK_SENTON, ARG_DATE},
    {"SENTSINCE", IMAP_SK_SENTSINCE, ARG_DATE},
    {"SINCE", IMAP_SK_SINCE, ARG_DATE},
    {"SMALLER", IMAP_SK_SMALLER, ARG_NUMBER},
    {"SUBJECT", IMAP_SK_SUBJECT, ARG_ASTRING},
    {"TEXT", IMAP_SK_TEXT, ARG_ASTRING},
    {"TO", IMAP_SK_TO, ARG_ASTRING},
    {"UID", IMAP_SK_UID, ARG_UID},
    {"UNANSWERED", IMAP_SK_UNANSWERED, ARG_NONE},
    {"UNDELETED", IMAP_SK_UNDELETED, ARG_NONE},
    {"UNDRAFT", IMAP_SK_UNDRAFT, ARG_NONE},
    {"UNFLAGGED", IMAP_SK_UNFLAGGED, ARG_NONE},
    {"UNKEYWORD", IMAP_SK_UNKEYWORD, ARG_KEYWORD},
    {"UNSEEN", IMAP_SK_UNSEEN, ARG_NONE},
};

static int search_key(struct cur *c, unsigned depth, struct imap_search_node **out);

static struct imap_search_node *new_node(struct cur *c, enum imap_search_key key)
{
    if (++c->nodes > IMAP_SEARCH_NODES_MAX) {
        cur_fail(c, "Too many search keys");
        return NULL;
    }
    struct imap_search_node *node = arena_alloc(&c->cmd->arena, sizeof *node);
    node->key = key;
    return node;
}

/* key *(SP key) into parent's children, up to (not including) ')' or the
 * end of the command. */
static int key_list(struct cur *c, unsigned depth, struct imap_search_node *parent)
{
    struct imap_search_node **tail = &parent->child;
    do {
        if (*tail != NULL) {
            tail = &(*tail)->next;
            if (cur_sp(c) < 0)
                return -1;
        }
        if (search_key(c, depth, tail) < 0)
            return -1;
    } while (cur_peek(c) == ' ');
    return 0;
}

/* MODSEQ [SP entry-name SP entry-type-req] SP mod-sequence-valzer */
static int modseq_arg(struct cur *c, struct imap_search_node *node)
{
    if (cur_peek(c) == '"') {
        char *entry;
        const char *type;
        if (cur_string(c, &entry) < 0 || cur_sp(c) < 0)
            return -1;
        if (cur_keyword(c, "priv"))
            type = "priv";
        else if (cur_keyword(c, "shared"))
            type = "shared";
        else if (cur_keyword(c, "all"))
            type = "all";
        else
            return cur_fail(c, "Bad MODSEQ entry type");
        if (strncmp(entry, "/flags/", 7) != 0)
            return cur_fail(c, "Bad MODSEQ entry name");
        node->field = entry;
        node->str = type;
        if (cur_sp(c) < 0)
            return -1;
    }
    return cur_number64(c, &node->number);
}

/* The argument(s) of a named key. */
static int key_args(struct cur *c, unsigned depth, enum key_arg arg,
                    struct imap_search_node *node)
{
    char *s;
    if (arg == ARG_NONE)
        return 0;
    if (cur_sp(c) < 0)
        return -1;
    switch (arg) {
    case ARG_ASTRING:
        return cur_astring(c, &s) < 0 ? -1 : (node->str = s, 0);
    case ARG_DATE:
        return cur_date(c, &node->date);
    case ARG_NUMBER:
        return cur_number64(c, &node->number);
    case ARG_KEYWORD: {
        const char *kw;
        size_t len;
        if (cur_atom(c, &kw, &len) < 0)
            return -1;
        node->str = arena_strndup(&c->cmd->arena, kw, len);
        return 0;
    }
    case ARG_HEADER:
        if (cur_astring(c, &s) < 0 || cur_sp(c) < 0)
            return -1;
        node->field = s;
        return cur_astring(c, &s) < 0 ? -1 : (node->str = s, 0);
    case ARG_NOT:
        return search_key(c, depth + 1, &node->child);
    case ARG_OR:
        if (search_key(c, depth + 1, &node->child) < 0 || cur_sp(c) < 0)
            return -1;
        return search_key(c, depth + 1, &node->child->next);
    case ARG_UID:
        return cur_seqset(c, true, &node->set);
    case ARG_MODSEQ:
        return modseq_arg(c, node);
    default:
        return cur_fail(c, "Bad search key");
    }
}

static int search_key(struct cur *c, unsigned depth, struct imap_search_node **out)
{
    if (depth > IMAP_SEARCH_DEPTH_MAX)
        return cur_fail(c, "Search keys nested too deeply");
    int ch = cur_peek(c);
    if (ch == '(') {
        c->p++;
        if ((*out = new_node(c, IMAP_SK_AND)) == NULL || key_list(c, depth + 1, *out) < 0)
            return -1;
        return cur_expect(c, ')', "Expected ) after search keys");
    }
    if (ch == '*' || ch == '$' || (ch >= '0' && ch <= '9')) {
        if ((*out = new_node(c, IMAP_SK_SEQSET)) == NULL)
            return -1;
        return cur_seqset(c, true, &(*out)->set);
    }
    for (size_t i = 0; i < sizeof search_keys / sizeof search_keys[0]; i++) {
        const struct search_def *def = &search_keys[i];
        if (!cur_keyword(c, def->name))
            continue;
        if ((*out = new_node(c, def->key)) == NULL)
            return -1;
        return key_args(c, depth, def->arg, *out);
    }
    return cur_fail(c, ch < 0 ? "Missing search key" : "Unknown search key");
}

/* SP "RETURN" SP "(" [opt *(SP opt)] ")", when present. */
static int search_return(struct cur *c, struct imap_args_search *a)
{
    static const struct {
        const char *name;
        unsigned bit;
    } opts[] = {
        {"MIN", IMAP_SEARCH_RET_MIN}, {"MAX", IMAP_SEARCH_RET_MAX},
        {"ALL", IMAP_SEARCH_RET_ALL}, {"COUNT", IMAP_SEARCH_RET_COUNT},
        {"SAVE", IMAP_SEARCH_RET_SAVE},
    };
    if (!cur_keyword(c, "RETURN"))
        return 0;
    a->esearch = true;
    if (cur_sp(c) < 0 || cur_expect(c, '(', "Expected search return options") < 0)
        return -1;
    for (bool first = true; cur_peek(c) != ')'; first = false) {
        if (!first && cur_sp(c) < 0)
            return -1;
        size_t i = 0;
        while (i < sizeof opts / sizeof opts[0] && !cur_keyword(c, opts[i].name))
            i++;
        if (i == sizeof opts / sizeof opts[0])
            return cur_fail(c, "Unknown search return option");
        a->ret |= opts[i].bit;
    }
    c->p++;
    if (a->ret == 0)
        a->ret = IMAP_SEARCH_RET_ALL; /* RFC 4731 §3.1: "RETURN ()" means ALL */
    return cur_sp(c);
}

/* charset = atom / quoted, upper-cased */
static int charset(struct cur *c, struct imap_args_search *a)
{
    char *s;
    if (cur_peek(c) == '"') {
        if (cur_string(c, &s) < 0)
            return -1;
        for (char *p = s; *p; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
        a->charset = s;
        return 0;
    }
    return cur_atom_upper(c, &a->charset);
}

/* search-key *(SP search-key) as an AND node, to the end of the command. */
static int program(struct cur *c, struct imap_args_search *a)
{
    if ((a->keys = new_node(c, IMAP_SK_AND)) == NULL || key_list(c, 1, a->keys) < 0)
        return -1;
    return cur_end(c);
}

int parse_search(struct cur *c)
{
    struct imap_args_search *a = &c->cmd->args.search;
    if (cur_sp(c) < 0 || search_return(c, a) < 0)
        return -1;
    if (cur_keyword(c, "CHARSET") && (cur_sp(c) < 0 || charset(c, a) < 0 || cur_sp(c) < 0))
        return -1;
    return program(c, a);
}

/* "(" ["REVERSE" SP] key *(SP ["REVERSE" SP] key) ")" */
static int sort_criteria(struct cur *c, struct imap_args_search *a)
{
    static const char *const names[] = {
        [IMAP_SORT_ARRIVAL] = "ARRIVAL", [IMAP_SORT_CC] = "CC", [IMAP_SORT_DATE] = "DATE",
        [IMAP_SORT_FROM] = "FROM", [IMAP_SORT_SIZE] = "SIZE", [IMAP_SORT_SUBJECT] = "SUBJECT",
        [IMAP_SORT_TO] = "TO", [IMAP_SORT_DISPLAYFROM] = "DISPLAYFROM",
        [IMAP_SORT_DISPLAYTO] = "DISPLAYTO",
    };
    if (cur_expect(c, '(', "Expected sort criteria") < 0)
        return -1;
    do {
        if (a->n_sort > 0 && cur_sp(c) < 0)
            return -1;
        if (a->n_sort == IMAP_SORT_KEYS_MAX)
            return cur_fail(c, "Too many sort criteria");
        struct imap_sort_key *k = &a->sort[a->n_sort++];
        if (cur_keyword(c, "REVERSE") && (k->reverse = true, cur_sp(c) < 0))
            return -1;
        size_t i = 0;
        while (i < sizeof names / sizeof names[0] && !cur_keyword(c, names[i]))
            i++;
        if (i == sizeof names / sizeof names[0])
            return cur_fail(c, "Unknown sort criterion");
        k->criterion = (enum imap_sort_criterion)i;
    } while (cur_peek(c) != ')');
    c->p++;
    return 0;
}

int parse_sort(struct cur *c)
{
    struct imap_args_search *a = &c->cmd->args.search;
    if (cur_sp(c) < 0 || search_return(c, a) < 0 || sort_criteria(c, a) < 0 ||
        cur_sp(c) < 0 || charset(c, a) < 0 || cur_sp(c) < 0)
        return -1;
    return program(c, a);
}
