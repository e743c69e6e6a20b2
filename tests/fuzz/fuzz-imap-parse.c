/* fuzz-imap-parse.c — the IMAP command reader and parser on arbitrary
 * client input.
 *
 * The first byte picks the limits (default or tiny, LITERAL+ or LITERAL-,
 * big APPEND literals in memory, to a memfd, or refused by the session);
 * the rest is what a client sends.  It goes through the reader twice, whole and in uneven pieces,
 * and both runs must give the same results and the same commands: the
 * reader must not depend on how TCP splits the input.  Every command is
 * then parsed and the result checked against parse.h's contract: bounds
 * on every list, well-formed sequence sets whose membership agrees with
 * their iteration, a search tree within its depth and size, and mailbox
 * names whose modified UTF-7 form, when it decodes, encodes back to
 * itself (strict decoding means one spelling per name).  After a command
 * ending in " IDLE" the next line is read as a bare line, as the session
 * does for "DONE". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "core/buf.h"
#include "imap/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RESULTS_MAX 64

static void fail(const char *what)
{
    fprintf(stderr, "fuzz-imap-parse: %s\n", what);
    abort();
}

static int make_memfd(void *ctx, uint64_t size)
{
    (void)size;
    if (ctx != NULL)
        return -1; /* the session refuses: the reader must discard the literal */
    return memfd_create("fuzz-literal", MFD_CLOEXEC);
}

struct outcome {
    size_t n;
    int res[RESULTS_MAX];
    struct imap_raw *raw[RESULTS_MAX];
    int continues;
    bool want_line;   /* after IDLE: the session reads a bare line ("DONE") */
    unsigned lines;   /* bare lines read, and overlong ones (counted apart) */
    unsigned long_lines;
};

/* Like the session after IDLE: the next line is a bare one. */
static bool is_idle(const struct imap_raw *raw)
{
    return raw->len >= 5 && strncasecmp(raw->data + raw->len - 5, " IDLE", 5) == 0;
}

/* 1 when the bare line was read (or refused), 0 when more input is needed. */
static int bare_line(struct imap_reader *r, struct evbuffer *in, struct outcome *out)
{
    const char *line;
    size_t len;
    int got = imap_reader_line(r, in, &line, &len);
    if (got == 0)
        return 0;
    if (got > 0 && (strlen(line) > len || len >= IMAP_LINE_MAX_DEFAULT))
        fail("bare line longer than said");
    got > 0 ? out->lines++ : out->long_lines++;
    out->want_line = false;
    return 1;
}

static void collect(struct imap_reader *r, struct evbuffer *in, struct outcome *out)
{
    for (;;) {
        if (out->want_line && bare_line(r, in, out) == 0)
            return;
        enum imap_read_result res = imap_reader_read(r, in);
        if (res == IMAP_READ_MORE || out->n == RESULTS_MAX)
            return;
        if (res == IMAP_READ_CONTINUE) {
            out->continues++;
            continue;
        }
        if (res != IMAP_READ_COMMAND) {
            const struct imap_read_error *e = imap_reader_error(r);
            if (e->tag == NULL || e->status == NULL || e->text == NULL || e->tag[0] == '\0')
                fail("error without a reply");
        }
        out->raw[out->n] = res == IMAP_READ_COMMAND ? imap_reader_take(r) : NULL;
        out->want_line = out->raw[out->n] != NULL && is_idle(out->raw[out->n]);
        out->res[out->n++] = res;
    }
}

/* Feed data whole (split == 0) or in pieces whose sizes come from split. */
static void run(const struct imap_reader_limits *lim, uint8_t mode, const uint8_t *data,
                size_t size, unsigned split, struct outcome *out)
{
    void *refuse = (mode & 8) ? (void *)1 : NULL;
    struct imap_reader *r = imap_reader_new(lim, (mode & 4) ? make_memfd : NULL, refuse);
    struct evbuffer *in = evbuffer_new();
    memset(out, 0, sizeof *out);
    for (size_t pos = 0; pos < size;) {
        size_t n = split == 0 ? size : 1 + (pos * 7 + split) % 13;
        if (n > size - pos)
            n = size - pos;
        evbuffer_add(in, data + pos, n);
        pos += n;
        collect(r, in, out);
    }
    evbuffer_free(in);
    imap_reader_free(&r);
}

static void check_seqset(struct imap_seqset *set)
{
    if (set->n > IMAP_SEQ_RANGES_MAX || (set->saved && set->n != 0))
        fail("sequence set bounds");
    for (size_t i = 0; i < set->n; i++) {
        uint32_t max = 37;
        const struct imap_seq_range *r = &set->ranges[i];
        if (r->lo != IMAP_SEQ_STAR && r->hi != IMAP_SEQ_STAR &&
            !imap_seqset_contains(set, r->lo, max < r->lo ? r->lo : max))
            fail("a range's own end is not in its set");
    }
    /* membership against iteration for the numbers 1..40, '*' = 37 */
    bool in_set[41] = {false};
    for (uint32_t v = 1; v <= 40; v++)
        in_set[v] = imap_seqset_contains(set, v, 37);
    imap_seqset_resolve(set, 37);
    for (uint32_t k = 1; k <= 40; k++)
        if (imap_seqset_contains(set, k, 37) != in_set[k])
            fail("membership changed by resolving");
    uint64_t cursor = 0;
    uint32_t v, last = 0;
    bool seen[41] = {false};
    for (int k = 0; k < 200 && imap_seqset_next(set, &cursor, &v); k++) {
        if (v <= last)
            fail("iteration not increasing");
        last = v;
        if (v <= 40)
            seen[v] = true;
    }
    /* the iteration is increasing, so 1..40 come within its first 40 values */
    for (uint32_t k = 1; k <= 40; k++)
        if (seen[k] != in_set[k])
            fail("membership and iteration disagree");
}

static void check_mailbox(const char *name)
{
    if (name == NULL || strlen(name) > IMAP_MAILBOX_MAX)
        fail("mailbox name");
    struct sm_buf utf8, back;
    sm_buf_init(&utf8, 0);
    sm_buf_init(&back, 0);
    if (imap_mutf7_decode(name, strlen(name), &utf8) == 0) {
        if (!imap_utf8_valid(sm_buf_str(&utf8), utf8.len))
            fail("mUTF-7 decoded to invalid UTF-8");
        if (imap_mutf7_encode(sm_buf_str(&utf8), utf8.len, &back) != 0 ||
            strcmp(sm_buf_str(&back), name) != 0)
            fail("mUTF-7 does not round-trip");
    }
    sm_buf_free(&utf8);
    sm_buf_free(&back);
}

static size_t check_tree(const struct imap_search_node *n, unsigned depth)
{
    size_t count = 1, children = 0;
    if (depth > IMAP_SEARCH_DEPTH_MAX + 2)
        fail("search tree too deep");
    for (const struct imap_search_node *c = n->child; c != NULL; c = c->next, children++)
        count += check_tree(c, depth + 1);
    if ((n->key == IMAP_SK_OR && children != 2) || (n->key == IMAP_SK_NOT && children != 1) ||
        (n->key == IMAP_SK_AND && children == 0))
        fail("search node with the wrong number of children");
    if (n->key == IMAP_SK_SEQSET || n->key == IMAP_SK_UID) {
        struct imap_seqset copy = n->set; /* resolving rewrites the ranges: fine, owned */
        check_seqset(&copy);
    }
    return count;
}

static void check_fetch(const struct imap_args_fetch *f)
{
    if (f->n_items == 0 || f->n_items > IMAP_FETCH_ITEMS_MAX)
        fail("fetch items");
    for (size_t i = 0; i < f->n_items; i++) {
        const struct imap_section *s = &f->items[i].section;
        if (s->n_parts > IMAP_SECTION_PARTS_MAX || s->n_fields > IMAP_HEADER_FIELDS_MAX)
            fail("section bounds");
        if (s->text == IMAP_SECTION_MIME && s->n_parts == 0)
            fail("MIME without a part");
        if (f->items[i].partial && f->items[i].length == 0)
            fail("empty partial");
    }
}

static void check_command(struct imap_command *cmd)
{
    struct imap_args_append *a = &cmd->args.append;
    switch (cmd->cmd) {
    case IMAP_CMD_SELECT:
    case IMAP_CMD_EXAMINE:
        check_mailbox(cmd->args.select.mailbox);
        break;
    case IMAP_CMD_DELETE:
    case IMAP_CMD_SUBSCRIBE:
    case IMAP_CMD_UNSUBSCRIBE:
    case IMAP_CMD_GETQUOTAROOT:
        check_mailbox(cmd->args.mailbox.mailbox);
        break;
    case IMAP_CMD_RENAME:
        check_mailbox(cmd->args.rename.from);
        check_mailbox(cmd->args.rename.to);
        break;
    case IMAP_CMD_APPEND:
        check_mailbox(a->mailbox);
        if (a->n_msgs == 0 || a->n_msgs > IMAP_APPEND_MAX)
            fail("append messages");
        for (size_t i = 0; i < a->n_msgs; i++)
            if ((a->msgs[i].msg.fd < 0) == (a->msgs[i].msg.data == NULL) &&
                a->msgs[i].msg.size > 0)
                fail("append literal neither in memory nor external");
        break;
    case IMAP_CMD_SEARCH:
    case IMAP_CMD_SORT:
        if (check_tree(cmd->args.search.keys, 0) > IMAP_SEARCH_NODES_MAX)
            fail("search tree too big");
        break;
    case IMAP_CMD_FETCH:
        check_seqset(&cmd->args.fetch.set);
        check_fetch(&cmd->args.fetch);
        break;
    case IMAP_CMD_STORE:
        check_seqset(&cmd->args.store.set);
        if (cmd->args.store.n_flags > IMAP_FLAGS_MAX)
            fail("store flags");
        break;
    case IMAP_CMD_COPY:
    case IMAP_CMD_MOVE:
        check_seqset(&cmd->args.copy.set);
        check_mailbox(cmd->args.copy.mailbox);
        break;
    default:
        break;
    }
}

/* The helpers the session calls on its own, on the start of the input. */
static void check_helpers(const char *text, size_t len)
{
    struct imap_seqset set;
    const char *err;
    time_t t;
    size_t n = len < 64 ? len : 64;
    if (imap_seqset_parse(text, n, true, &set, &err) == 0) {
        if (set.n == 0 && !set.saved)
            fail("empty sequence set accepted");
        check_seqset(&set);
        free(set.ranges);
    } else if (set.ranges != NULL || err == NULL) {
        fail("sequence set error without a reason");
    }
    if (imap_parse_date(text, len < 11 ? len : 11, &t) == 0 && t % 86400 != 0)
        fail("a date that is not midnight");
    imap_parse_datetime(text, len < 26 ? len : 26, &t);
}

static void limits_for(uint8_t mode, struct imap_reader_limits *lim)
{
    imap_reader_limits_default(lim);
    if (mode & 1) { /* tiny: reach every limit with small inputs */
        lim->max_line = 64;
        lim->max_command = 200;
        lim->max_literal = 300;
        lim->mem_literal_max = 20;
        lim->nonsync_max = 100;
    }
    if (mode & 2)
        lim->nonsync_max = lim->max_literal; /* LITERAL+ */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    struct imap_reader_limits lim;
    limits_for(data[0], &lim);
    struct outcome whole, split;
    run(&lim, data[0], data + 1, size - 1, 0, &whole);
    run(&lim, data[0], data + 1, size - 1, 1u + data[0] / 16u, &split);
    check_helpers((const char *)data + 1, size - 1);
    if (whole.n != split.n || whole.continues != split.continues || whole.lines != split.lines ||
        whole.long_lines != split.long_lines)
        fail("results depend on how the input is split");
    for (size_t i = 0; i < whole.n; i++) {
        if (whole.res[i] != split.res[i])
            fail("results depend on how the input is split");
        if (whole.raw[i] == NULL)
            continue;
        if (whole.raw[i]->len != split.raw[i]->len ||
            memcmp(whole.raw[i]->data, split.raw[i]->data, whole.raw[i]->len) != 0 ||
            whole.raw[i]->n_literals != split.raw[i]->n_literals)
            fail("commands depend on how the input is split");
        struct imap_command *cmd;
        const char *err;
        if (imap_parse(whole.raw[i], &cmd, &err) == 0)
            check_command(cmd);
        else if (err == NULL || cmd->tag[0] == '\0')
            fail("parse error without a reason or tag");
        imap_command_free(&cmd);
    }
    for (size_t i = 0; i < whole.n; i++) {
        imap_raw_free(&whole.raw[i]);
        imap_raw_free(&split.raw[i]);
    }
    return 0;
}
