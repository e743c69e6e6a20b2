/* parse-mailbox.c — commands about mailboxes: SELECT/EXAMINE (CONDSTORE,
 * QRESYNC), CREATE (USE), LIST (LIST-EXTENDED, LIST-STATUS, SPECIAL-USE),
 * LSUB, STATUS and APPEND (MULTIAPPEND, BINARY, UTF8).
 *
 * Unknown options get BAD, as RFC 5258 §3 asks for LIST: silently
 * ignoring an option would answer a question the client did not ask. */
#include "imap/parse-internal.h"

#include <string.h>
#include <strings.h>

/* Look the next word up in a table of {name, bit}; 0 if absent. */
struct word_bit {
    const char *name;
    unsigned bit;
};

static unsigned word_lookup(struct cur *c, const struct word_bit *table, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cur_keyword(c, table[i].name))
            return table[i].bit;
    return 0;
}

/* "(" item *(SP item) ")" of words from table, OR-ed into *bits.  empty_ok:
 * "()" is allowed. */
static int word_list(struct cur *c, const struct word_bit *table, size_t n, bool empty_ok,
                     unsigned *bits, const char *why)
{
    if (cur_expect(c, '(', why) < 0)
        return -1;
    if (cur_peek(c) == ')' && !empty_ok)
        return cur_fail(c, why);
    for (bool first = true; cur_peek(c) != ')'; first = false) {
        if (!first && cur_sp(c) < 0)
            return -1;
        unsigned bit = word_lookup(c, table, n);
        if (bit == 0)
            return cur_fail(c, why);
        *bits |= bit;
    }
    c->p++;
    return 0;
}

/* ---- SELECT / EXAMINE ---- */

/* A sequence set without '*' or '$' (QRESYNC known-uids and friends). */
static int known_set(struct cur *c, struct imap_seqset *set)
{
    if (cur_seqset(c, false, set) < 0)
        return -1;
    for (size_t i = 0; i < set->n; i++)
        if (set->ranges[i].lo == IMAP_SEQ_STAR || set->ranges[i].hi == IMAP_SEQ_STAR)
            return cur_fail(c, "* is not allowed in QRESYNC sets");
    return 0;
}

/* "(" uidvalidity SP modseq [SP known-uids] [SP "(" seqs SP uids ")"] ")" */
static int qresync(struct cur *c, struct imap_args_select *a)
{
    a->qresync = true;
    if (cur_sp(c) < 0 || cur_expect(c, '(', "Expected QRESYNC parameters") < 0 ||
        cur_nz_number(c, &a->uidvalidity) < 0 || cur_sp(c) < 0 ||
        cur_number64(c, &a->modseq) < 0)
        return -1;
    if (cur_peek(c) == ' ' && c->p + 1 < c->end && c->p[1] != '(') {
        c->p++;
        if (known_set(c, &a->known_uids) < 0)
            return -1;
    }
    if (cur_peek(c) == ' ') {
        c->p++;
        if (cur_expect(c, '(', "Expected QRESYNC sequence match data") < 0 ||
            known_set(c, &a->seq_match) < 0 || cur_sp(c) < 0 ||
            known_set(c, &a->uid_match) < 0 || cur_expect(c, ')', "Expected )") < 0)
            return -1;
    }
    return cur_expect(c, ')', "Expected ) after QRESYNC parameters");
}

int parse_select(struct cur *c)
{
    struct imap_args_select *a = &c->cmd->args.select;
    if (cur_sp(c) < 0 || cur_mailbox(c, &a->mailbox) < 0)
        return -1;
    if (cur_at_end(c))
        return 0;
    if (cur_sp(c) < 0 || cur_expect(c, '(', "Expected select parameters") < 0)
        return -1;
    for (bool first = true; cur_peek(c) != ')'; first = false) {
        if (!first && cur_sp(c) < 0)
            return -1;
        if (cur_keyword(c, "CONDSTORE") && !a->condstore)
            a->condstore = true;
        else if (cur_keyword(c, "QRESYNC") && !a->qresync) {
            if (qresync(c, a) < 0)
                return -1;
        } else
            return cur_fail(c, "Unknown or repeated select parameter");
    }
    c->p++;
    return cur_end(c);
}

/* ---- CREATE ---- */

static const struct word_bit use_attrs[] = {
    {"\\All", IMAP_USE_ALL},       {"\\Archive", IMAP_USE_ARCHIVE},
    {"\\Drafts", IMAP_USE_DRAFTS}, {"\\Flagged", IMAP_USE_FLAGGED},
    {"\\Junk", IMAP_USE_JUNK},     {"\\Sent", IMAP_USE_SENT},
    {"\\Trash", IMAP_USE_TRASH},
};

/* "(" "USE" SP "(" [use-attr *(SP use-attr)] ")" ")" (RFC 6154 §3) */
static int create_use(struct cur *c, struct imap_args_create *a)
{
    if (cur_expect(c, '(', "Expected create parameters") < 0)
        return -1;
    if (!cur_keyword(c, "USE"))
        return cur_fail(c, "Unknown create parameter");
    if (cur_sp(c) < 0 || cur_expect(c, '(', "Expected a USE list") < 0)
        return -1;
    for (size_t n = 0; cur_peek(c) != ')'; n++) {
        const char *flag;
        if ((n > 0 && cur_sp(c) < 0) || cur_flag(c, false, &flag) < 0)
            return -1;
        if (flag[0] != '\\' || n == IMAP_FLAGS_MAX)
            return cur_fail(c, "Bad USE attribute");
        unsigned bit = IMAP_USE_OTHER;
        for (size_t i = 0; i < sizeof use_attrs / sizeof use_attrs[0]; i++)
            if (strcasecmp(flag, use_attrs[i].name) == 0)
                bit = use_attrs[i].bit;
        a->use |= bit;
    }
    c->p++;
    return cur_expect(c, ')', "Expected ) after create parameters");
}

int parse_create(struct cur *c)
{
    struct imap_args_create *a = &c->cmd->args.create;
    if (cur_sp(c) < 0 || cur_mailbox(c, &a->mailbox) < 0)
        return -1;
    if (!cur_at_end(c) && (cur_sp(c) < 0 || create_use(c, a) < 0))
        return -1;
    return cur_end(c);
}

/* ---- STATUS ---- */

static const struct word_bit status_items[] = {
    {"MESSAGES", IMAP_STATUS_MESSAGES},
    {"UIDNEXT", IMAP_STATUS_UIDNEXT},
    {"UIDVALIDITY", IMAP_STATUS_UIDVALIDITY},
    {"UNSEEN", IMAP_STATUS_UNSEEN},
    {"DELETED", IMAP_STATUS_DELETED},
    {"SIZE", IMAP_STATUS_SIZE},
    {"RECENT", IMAP_STATUS_RECENT},
    {"HIGHESTMODSEQ", IMAP_STATUS_HIGHESTMODSEQ},
    {"APPENDLIMIT", IMAP_STATUS_APPENDLIMIT},
};

static int status_list(struct cur *c, unsigned *items)
{
    return word_list(c, status_items, sizeof status_items / sizeof status_items[0], false,
                     items, "Expected a list of status items");
}

int parse_status(struct cur *c)
{
    struct imap_args_status *a = &c->cmd->args.status;
    if (cur_sp(c) < 0 || cur_mailbox(c, &a->mailbox) < 0 || cur_sp(c) < 0 ||
        status_list(c, &a->items) < 0)
        return -1;
    return cur_end(c);
}

/* ---- LIST / LSUB ---- */

static bool list_char(unsigned char ch)
{
    return ch == '%' || ch == '*' || imap_is_astring_char(ch);
}

/* list-mailbox = 1*list-char / string */
static int list_mailbox(struct cur *c, const char **out)
{
    int ch = cur_peek(c);
    if (ch == '"' || ch == '{') {
        char *str;
        if (cur_string(c, &str) < 0)
            return -1;
        *out = str;
        return 0;
    }
    const char *s;
    size_t len;
    if (cur_span(c, list_char, &s, &len, "Expected a mailbox pattern") < 0)
        return -1;
    *out = arena_strndup(&c->cmd->arena, s, len);
    return 0;
}

static const struct word_bit list_select[] = {
    {"SUBSCRIBED", IMAP_LIST_SEL_SUBSCRIBED},
    {"REMOTE", IMAP_LIST_SEL_REMOTE},
    {"RECURSIVEMATCH", IMAP_LIST_SEL_RECURSIVEMATCH},
    {"SPECIAL-USE", IMAP_LIST_SEL_SPECIAL_USE},
};

static const struct word_bit list_return[] = {
    {"SUBSCRIBED", IMAP_LIST_RET_SUBSCRIBED},
    {"CHILDREN", IMAP_LIST_RET_CHILDREN},
    {"SPECIAL-USE", IMAP_LIST_RET_SPECIAL_USE},
};

static int list_patterns(struct cur *c, struct imap_args_list *a)
{
    a->patterns = arena_alloc(&c->cmd->arena, IMAP_LIST_PATTERNS_MAX * sizeof *a->patterns);
    if (cur_peek(c) != '(')
        return list_mailbox(c, &a->patterns[a->n_patterns++]);
    c->p++;
    a->extended = true;
    do {
        if (a->n_patterns > 0 && cur_sp(c) < 0)
            return -1;
        if (a->n_patterns == IMAP_LIST_PATTERNS_MAX)
            return cur_fail(c, "Too many patterns");
        if (list_mailbox(c, &a->patterns[a->n_patterns++]) < 0)
            return -1;
    } while (cur_peek(c) != ')');
    c->p++;
    return 0;
}

/* "RETURN" SP "(" [return-option *(SP return-option)] ")" */
static int list_return_opts(struct cur *c, struct imap_args_list *a)
{
    if (!cur_keyword(c, "RETURN") || cur_sp(c) < 0 ||
        cur_expect(c, '(', "Expected return options") < 0)
        return cur_fail(c, "Expected RETURN options");
    a->extended = true;
    for (bool first = true; cur_peek(c) != ')'; first = false) {
        if (!first && cur_sp(c) < 0)
            return -1;
        if (cur_keyword(c, "STATUS")) {
            a->ret |= IMAP_LIST_RET_STATUS;
            if (cur_sp(c) < 0 || status_list(c, &a->status_items) < 0)
                return -1;
            continue;
        }
        unsigned bit = word_lookup(c, list_return, sizeof list_return / sizeof list_return[0]);
        if (bit == 0)
            return cur_fail(c, "Unknown LIST return option");
        a->ret |= bit;
    }
    c->p++;
    return 0;
}

int parse_list(struct cur *c)
{
    struct imap_args_list *a = &c->cmd->args.list;
    char *ref;
    if (cur_sp(c) < 0)
        return -1;
    if (cur_peek(c) == '(') {
        a->extended = true;
        if (word_list(c, list_select, sizeof list_select / sizeof list_select[0], true,
                      &a->select, "Unknown LIST selection option") < 0 ||
            cur_sp(c) < 0)
            return -1;
        if (a->select == IMAP_LIST_SEL_RECURSIVEMATCH ||
            a->select == (IMAP_LIST_SEL_RECURSIVEMATCH | IMAP_LIST_SEL_REMOTE))
            return cur_fail(c, "RECURSIVEMATCH needs another selection option");
    }
    if (cur_astring(c, &ref) < 0 || cur_sp(c) < 0 || list_patterns(c, a) < 0)
        return -1;
    a->reference = ref;
    if (!cur_at_end(c) && (cur_sp(c) < 0 || list_return_opts(c, a) < 0))
        return -1;
    return cur_end(c);
}

int parse_lsub(struct cur *c)
{
    struct imap_args_list *a = &c->cmd->args.list;
    char *ref;
    a->patterns = arena_alloc(&c->cmd->arena, sizeof *a->patterns);
    if (cur_sp(c) < 0 || cur_astring(c, &ref) < 0 || cur_sp(c) < 0 ||
        list_mailbox(c, &a->patterns[0]) < 0)
        return -1;
    a->reference = ref;
    a->n_patterns = 1;
    return cur_end(c);
}

/* ---- APPEND ---- */

/* [flag-list SP] [date-time SP] (literal / literal8 / "UTF8" SP "(" literal8 ")") */
static int append_message(struct cur *c, struct imap_args_append *a)
{
    if (a->n_msgs == IMAP_APPEND_MAX)
        return cur_fail(c, "Too many messages in one APPEND");
    struct imap_append_msg *m = &a->msgs[a->n_msgs];
    m->msg.fd = -1;
    if (cur_peek(c) == '(' && (cur_flag_list(c, &m->flags, &m->n_flags) < 0 || cur_sp(c) < 0))
        return -1;
    if (cur_peek(c) == '"') {
        if (cur_datetime(c, &m->date) < 0 || cur_sp(c) < 0)
            return -1;
        m->has_date = true;
    }
    if (cur_keyword(c, "UTF8")) {
        m->utf8 = true;
        if (cur_sp(c) < 0 || cur_expect(c, '(', "Expected ( after UTF8") < 0)
            return -1;
        if (cur_peek(c) != '~')
            return cur_fail(c, "UTF8 data must be a literal8");
    }
    if (cur_message_literal(c, &m->msg) < 0)
        return -1;
    a->n_msgs++; /* from here on the command owns the literal's fd */
    if (m->utf8 && cur_expect(c, ')', "Expected ) after UTF8 data") < 0)
        return -1;
    return 0;
}

int parse_append(struct cur *c)
{
    struct imap_args_append *a = &c->cmd->args.append;
    if (cur_sp(c) < 0 || cur_mailbox(c, &a->mailbox) < 0)
        return -1;
    a->msgs = arena_alloc(&c->cmd->arena, IMAP_APPEND_MAX * sizeof *a->msgs);
    do {
        if (cur_sp(c) < 0 || append_message(c, a) < 0)
            return -1;
    } while (!cur_at_end(c));
    return 0;
}
