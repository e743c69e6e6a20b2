/* folders.c — commands on folders: SELECT, EXAMINE, CREATE, DELETE, RENAME,
 * SUBSCRIBE, UNSUBSCRIBE, LIST (with LIST-EXTENDED, LIST-STATUS,
 * SPECIAL-USE), LSUB, STATUS, APPEND (UIDPLUS, MULTIAPPEND) and the QUOTA
 * queries.  All run on a worker with the store locked (session.h). */
#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/mem.h"
#include "imap/session.h"

/* ---- SELECT / EXAMINE ---------------------------------------------------------- */

static void put_keyword(void *arg, const char *kw)
{
    struct imap *s = arg;
    imap_printf(s, " %s", kw);
}

static void put_flag_lists(struct imap *s, struct mailbox *mb, const char *folder, bool readonly)
{
    const char *error;
    imap_printf(s, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
    mailbox_folder_keywords(mb, folder, put_keyword, s, &error);
    if (readonly) { /* RFC 9051 §7.1: nothing can be changed in EXAMINE */
        imap_printf(s, ")\r\n* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
        return;
    }
    imap_printf(s, ")\r\n* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
    mailbox_folder_keywords(mb, folder, put_keyword, s, &error);
    imap_printf(s, " \\*)] Flags permitted\r\n");
}

struct first_unseen {
    uint32_t uid;
};

static void find_unseen(void *arg, const struct mailbox_message *m)
{
    struct first_unseen *u = arg;
    if (u->uid == 0 && !(m->flags & MAILBOX_SEEN))
        u->uid = m->uid;
}

struct qresync_ctx {
    struct imap *s;
    const struct imap_seqset *known; /* n == 0: the client named none */
};

static void qresync_changed(void *arg, const struct mailbox_message *m)
{
    struct qresync_ctx *q = arg;
    uint32_t seq = view_seq(&q->s->view, m->uid);
    /* RFC 7162 §3.2.5.1: only the messages the client said it knows */
    if (seq == 0 || (q->known->n > 0 && !imap_seqset_contains(q->known, m->uid, UINT32_MAX)))
        return;
    imap_printf(q->s, "* %u FETCH (UID %u FLAGS ", seq, m->uid);
    imap_put_flags(q->s, m->flags | view_recent(&q->s->view, m->uid), m->keywords);
    imap_printf(q->s, " MODSEQ (%llu))\r\n", (unsigned long long)m->modseq);
}

/* RFC 7162 §3.2.5: what changed since the client's last session. */
static void select_qresync(struct imap *s, struct mailbox *mb, const struct imap_args_select *a)
{
    if (a->uidvalidity != s->view.uidvalidity)
        return; /* everything is new to the client: nothing to resynchronise */
    struct imap_seqset known = view_set_resolved(&a->known_uids, UINT32_MAX);
    struct qresync_ctx q = {s, &known};
    const char *error;
    view_vanished_earlier(s, mb, a->modseq, &a->known_uids);
    mailbox_changes(mb, s->view.folder, a->modseq, qresync_changed, NULL, &q, &error);
    free(known.ranges);
}

void cmd_select(struct imap *s, struct mailbox *mb)
{
    const struct imap_args_select *a = &s->cmd->args.select;
    bool examine = s->cmd->cmd == IMAP_CMD_EXAMINE;
    char folder[MAILBOX_FOLDER_MAX + 1];
    if (s->state == IMAP_SELECTED) {
        view_close(s);
        s->state = IMAP_AUTH;
        if (s->qresync)
            imap_printf(s, "* OK [CLOSED] Previous mailbox closed\r\n");
    }
    if (imap_mailbox_arg(s, a->mailbox, folder) < 0)
        return;
    if (a->qresync && !s->qresync) {
        imap_tagged(s, "BAD", "QRESYNC is not enabled");
        return;
    }
    if (a->condstore)
        s->condstore = true;
    int r = view_select(s, mb, folder, examine);
    if (r < 0) {
        imap_store_failed(s, r, r == MAILBOX_NONEXISTENT ? "No such mailbox" : "Cannot open");
        return;
    }
    struct mailbox_folder f;
    const char *error;
    if (mailbox_folder_get(mb, folder, &f, &error) != 1) {
        imap_store_failed(s, MAILBOX_ERR, error);
        return;
    }
    put_flag_lists(s, mb, folder, examine);
    imap_printf(s, "* %u EXISTS\r\n", view_count(&s->view));
    if (!s->rev2) /* RFC 3501 §7.3.2; RFC 9051 dropped it */
        imap_printf(s, "* %zu RECENT\r\n", view_recent_count(&s->view));
    struct first_unseen unseen = {0};
    if (!s->rev2 && f.unseen > 0 && /* RFC 3501 §6.3.1: REQUIRED for IMAP4rev1 */
        mailbox_messages(mb, folder, find_unseen, &unseen, &error) >= 0 && unseen.uid != 0)
        imap_printf(s, "* OK [UNSEEN %u] First unseen\r\n", view_seq(&s->view, unseen.uid));
    imap_printf(s, "* OK [UIDVALIDITY %u] UIDs valid\r\n* OK [UIDNEXT %u] Predicted next UID\r\n",
                f.uidvalidity, f.uidnext);
    if (s->condstore)
        imap_printf(s, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
                    (unsigned long long)f.highestmodseq);
    if (a->qresync)
        select_qresync(s, mb, a);
    s->state = IMAP_SELECTED;
    imap_tagged(s, "OK", "[READ-%s] %s completed", examine ? "ONLY" : "WRITE",
                examine ? "EXAMINE" : "SELECT");
}

/* ---- CREATE, DELETE, RENAME, SUBSCRIBE -------------------------------------------- */

static const struct {
    unsigned bit;
    const char *name;
} special_uses[] = {
    {IMAP_USE_ALL, "\\All"},       {IMAP_USE_ARCHIVE, "\\Archive"}, {IMAP_USE_DRAFTS, "\\Drafts"},
    {IMAP_USE_FLAGGED, "\\Flagged"}, {IMAP_USE_JUNK, "\\Junk"},     {IMAP_USE_SENT, "\\Sent"},
    {IMAP_USE_TRASH, "\\Trash"},
};

void cmd_create(struct imap *s, struct mailbox *mb)
{
    const struct imap_args_create *a = &s->cmd->args.create;
    char folder[MAILBOX_FOLDER_MAX + 1];
    const char *use = NULL, *error;
    if (imap_mailbox_arg(s, a->mailbox, folder) < 0)
        return;
    size_t len = strlen(folder);
    if (len > 0 && folder[len - 1] == '/')
        folder[len - 1] = '\0'; /* RFC 9051 §6.3.4: a trailing delimiter is dropped */
    for (size_t i = 0; i < sizeof special_uses / sizeof special_uses[0]; i++)
        if (a->use & special_uses[i].bit) {
            if (use != NULL || (a->use & ~special_uses[i].bit) != 0) {
                imap_tagged(s, "NO", "[USEATTR] One special use per mailbox");
                return;
            }
            use = special_uses[i].name;
        }
    if (a->use & IMAP_USE_OTHER) {
        imap_tagged(s, "NO", "[USEATTR] Unknown special use");
        return;
    }
    int r = mailbox_folder_create(mb, folder, use, &error);
    if (r < 0) {
        imap_store_failed(s, r, error);
        return;
    }
    imap_tagged(s, "OK", "CREATE completed");
}

void cmd_delete(struct imap *s, struct mailbox *mb)
{
    char folder[MAILBOX_FOLDER_MAX + 1];
    const char *error;
    if (imap_mailbox_arg(s, s->cmd->args.mailbox.mailbox, folder) < 0)
        return;
    if (s->state == IMAP_SELECTED && strcmp(folder, s->view.folder) == 0) {
        view_close(s);
        s->state = IMAP_AUTH;
    }
    int r = mailbox_folder_delete(mb, folder, &error);
    if (r < 0) {
        imap_store_failed(s, r, error);
        return;
    }
    s->notify_others = true;
    imap_tagged(s, "OK", "DELETE completed");
}

void cmd_rename(struct imap *s, struct mailbox *mb)
{
    char from[MAILBOX_FOLDER_MAX + 1], to[MAILBOX_FOLDER_MAX + 1];
    const char *error;
    if (imap_mailbox_arg(s, s->cmd->args.rename.from, from) < 0 ||
        imap_mailbox_arg(s, s->cmd->args.rename.to, to) < 0)
        return;
    int r = mailbox_folder_rename(mb, from, to, &error);
    if (r < 0) {
        imap_store_failed(s, r, error);
        return;
    }
    if (s->state == IMAP_SELECTED && strcmp(from, s->view.folder) == 0 &&
        strcmp(from, "INBOX") != 0)
        snprintf(s->view.folder, sizeof s->view.folder, "%s", to);
    s->notify_others = true;
    imap_tagged(s, "OK", "RENAME completed");
}

void cmd_subscribe(struct imap *s, struct mailbox *mb)
{
    char folder[MAILBOX_FOLDER_MAX + 1];
    const char *error;
    bool on = s->cmd->cmd == IMAP_CMD_SUBSCRIBE;
    if (imap_mailbox_arg(s, s->cmd->args.mailbox.mailbox, folder) < 0)
        return;
    int r = mailbox_folder_subscribe(mb, folder, on, &error);
    if (r < 0) {
        imap_store_failed(s, r, error);
        return;
    }
    imap_tagged(s, "OK", "%s completed", on ? "SUBSCRIBE" : "UNSUBSCRIBE");
}

/* ---- LIST, LSUB ------------------------------------------------------------------------ */

/* Does name match pattern ('*' anything, '%' anything but '/')?  A
 * dynamic programme over the name, one row per pattern character:
 * O(len(pattern) * len(name)) and no backtracking to exploit. */
static bool pattern_match(const char *pat, const char *name)
{
    size_t n = strlen(name);
    bool row[MAILBOX_FOLDER_MAX + 2], next[MAILBOX_FOLDER_MAX + 2];
    if (n > MAILBOX_FOLDER_MAX)
        return false;
    row[0] = true;
    for (size_t j = 1; j <= n; j++)
        row[j] = false;
    for (; *pat != '\0'; pat++) {
        for (size_t j = 0; j <= n; j++) {
            if (*pat == '*')
                next[j] = row[j] || (j > 0 && next[j - 1]);
            else if (*pat == '%')
                next[j] = row[j] || (j > 0 && next[j - 1] && name[j - 1] != '/');
            else
                next[j] = j > 0 && row[j - 1] && name[j - 1] == *pat;
        }
        memcpy(row, next, (n + 1) * sizeof *row);
    }
    return row[n];
}

/* The names LIST and LSUB consider: every folder, every subscribed name
 * (a subscription may outlive its folder) and every ancestor of those
 * (a level of the hierarchy that is no folder: after DELETE of a parent,
 * or above a subscribed name), each once, in byte order so that the
 * descendants of a name form one run (lower bound of "name/"). */
struct list_node {
    char *name;
    long folder;     /* index into list_ctx.folders, -1 when no folder has the name */
    bool subscribed;
    bool matched;    /* some pattern matches the name */
};

struct list_ctx {
    struct imap *s;
    struct mailbox *mb;
    const struct imap_args_list *a;
    char **patterns; /* UTF-8, reference applied */
    size_t n_patterns;
    bool lsub;
    struct mailbox_folder *folders;
    size_t n, cap;
    struct list_node *nodes;
    size_t n_nodes, cap_nodes;
};

static void collect_folder(void *arg, const struct mailbox_folder *f)
{
    struct list_ctx *x = arg;
    if (x->n == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 16;
        x->folders = sm_realloc(x->folders, x->cap * sizeof *x->folders);
    }
    x->folders[x->n++] = *f;
}

static void add_node(struct list_ctx *x, const char *name, size_t len, long folder,
                     bool subscribed)
{
    if (x->n_nodes == x->cap_nodes) {
        x->cap_nodes = x->cap_nodes ? 2 * x->cap_nodes : 32;
        x->nodes = sm_realloc(x->nodes, x->cap_nodes * sizeof *x->nodes);
    }
    x->nodes[x->n_nodes++] = (struct list_node){sm_strndup(name, len), folder, subscribed, false};
}

/* name, and each of its ancestors as a name of its own */
static void add_with_ancestors(struct list_ctx *x, const char *name, long folder,
                               bool subscribed)
{
    add_node(x, name, strlen(name), folder, subscribed);
    for (const char *p = strchr(name, '/'); p != NULL; p = strchr(p + 1, '/'))
        if (p > name)
            add_node(x, name, (size_t)(p - name), -1, false);
}

static void collect_subscription(void *arg, const char *name)
{
    add_with_ancestors(arg, name, -1, true);
}

static int node_cmp(const void *a, const void *b)
{
    return strcmp(((const struct list_node *)a)->name, ((const struct list_node *)b)->name);
}

static bool matches_any(const struct list_ctx *x, const char *name)
{
    for (size_t i = 0; i < x->n_patterns; i++)
        if (pattern_match(x->patterns[i], name))
            return true;
    return false;
}

/* Sort the names and merge the duplicates. */
static void nodes_merge(struct list_ctx *x)
{
    qsort(x->nodes, x->n_nodes, sizeof *x->nodes, node_cmp);
    size_t out = 0;
    for (size_t i = 0; i < x->n_nodes; i++) {
        struct list_node *n = &x->nodes[i];
        if (out > 0 && strcmp(x->nodes[out - 1].name, n->name) == 0) {
            struct list_node *keep = &x->nodes[out - 1];
            if (n->folder >= 0)
                keep->folder = n->folder;
            keep->subscribed |= n->subscribed;
            free(n->name);
            continue;
        }
        x->nodes[out++] = *n;
    }
    x->n_nodes = out;
    for (size_t i = 0; i < x->n_nodes; i++)
        x->nodes[i].matched = matches_any(x, x->nodes[i].name);
}

struct below {
    bool folder;           /* a folder below the name: \HasChildren */
    bool subscribed_unmatched; /* a subscribed name below that no pattern matches */
};

/* What lies below node i: the run of names starting with "name/". */
static struct below nodes_below(const struct list_ctx *x, size_t i)
{
    struct below b = {false, false};
    const char *name = x->nodes[i].name;
    size_t len = strlen(name);
    for (size_t j = i + 1; j < x->n_nodes; j++) {
        const struct list_node *d = &x->nodes[j];
        int c = strncmp(d->name, name, len);
        if (c > 0)
            break;
        if (d->name[len] != '/')
            continue; /* "name-x" sorts between "name" and "name/x" */
        b.folder |= d->folder >= 0;
        b.subscribed_unmatched |= d->subscribed && !d->matched;
    }
    return b;
}

static void put_status(struct imap *s, struct mailbox *mb, const struct mailbox_folder *f,
                       unsigned items);

/* LSUB (RFC 3501 §6.3.9): the subscribed names; with "%", a level above a
 * subscribed name the pattern does not reach, flagged \Noselect. */
static void lsub_one(struct list_ctx *x, const struct list_node *n, const struct below *b)
{
    if (!n->subscribed && !b->subscribed_unmatched)
        return;
    imap_printf(x->s, "* LSUB (%s) \"/\" ", n->subscribed ? "" : "\\Noselect");
    imap_put_mailbox(x->s, n->name);
    imap_printf(x->s, "\r\n");
}

/* LIST (RFC 9051 §6.3.9, RFC 5258): folders, levels of the hierarchy with
 * folders below (\Noselect, or \NonExistent in the extended syntax) and,
 * with the SUBSCRIBED selection, subscribed names (\NonExistent when no
 * folder has them) and, with RECURSIVEMATCH, names above subscribed names
 * the patterns do not reach (CHILDINFO). */
static void list_one(struct list_ctx *x, const struct list_node *n, const struct below *b)
{
    struct imap *s = x->s;
    const struct imap_args_list *a = x->a;
    const struct mailbox_folder *f = n->folder >= 0 ? &x->folders[n->folder] : NULL;
    bool sub_only = (a->select & IMAP_LIST_SEL_SUBSCRIBED) != 0;
    bool childinfo = sub_only && (a->select & IMAP_LIST_SEL_RECURSIVEMATCH) &&
                     b->subscribed_unmatched;
    if (sub_only ? !n->subscribed && !childinfo : f == NULL && !b->folder)
        return;
    if ((a->select & IMAP_LIST_SEL_SPECIAL_USE) && (f == NULL || f->special_use[0] == '\0'))
        return;
    /* a name no folder has: \NonExistent implies \Noselect (RFC 5258 §3.4), and
     * "no children" says nothing of a name that is not there, unless asked (as Dovecot) */
    struct sm_buf attrs;
    sm_buf_init(&attrs, 0);
    if (f == NULL)
        sm_buf_printf(&attrs, " %s", a->extended ? "\\NonExistent" : "\\Noselect");
    if (f != NULL || b->folder || (a->ret & IMAP_LIST_RET_CHILDREN))
        sm_buf_printf(&attrs, " %s", b->folder ? "\\HasChildren" : "\\HasNoChildren");
    if (n->subscribed && (sub_only || (a->ret & IMAP_LIST_RET_SUBSCRIBED)))
        sm_buf_printf(&attrs, " \\Subscribed");
    if (f != NULL && f->special_use[0] != '\0')
        sm_buf_printf(&attrs, " %s", f->special_use);
    imap_printf(s, "* LIST (%s) \"/\" ", attrs.len > 0 ? sm_buf_str(&attrs) + 1 : "");
    sm_buf_free(&attrs);
    imap_put_mailbox(s, n->name);
    if (childinfo)
        imap_printf(s, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
    imap_printf(s, "\r\n");
    if (f != NULL && (a->ret & IMAP_LIST_RET_STATUS))
        put_status(s, x->mb, f, a->status_items);
}

static void list_node(struct list_ctx *x, size_t i)
{
    const struct list_node *n = &x->nodes[i];
    if (!n->matched)
        return;
    struct below b = nodes_below(x, i);
    if (x->lsub)
        lsub_one(x, n, &b);
    else
        list_one(x, n, &b);
}

static int list_patterns(struct list_ctx *x)
{
    const struct imap_args_list *a = x->a;
    char ref[MAILBOX_FOLDER_MAX + 1], pat[MAILBOX_FOLDER_MAX + 1];
    if (imap_mailbox_arg(x->s, a->reference, ref) < 0)
        return -1;
    x->patterns = sm_calloc(a->n_patterns + 1, sizeof *x->patterns);
    for (size_t i = 0; i < a->n_patterns; i++) {
        if (imap_mailbox_arg(x->s, a->patterns[i], pat) < 0)
            return -1;
        /* "inbox" in any case names INBOX (RFC 9051 §5.1) */
        if (strncasecmp(pat, "INBOX", 5) == 0 && (pat[5] == '\0' || pat[5] == '/'))
            memcpy(pat, "INBOX", 5);
        size_t n = strlen(ref) + strlen(pat) + 1;
        x->patterns[i] = sm_malloc(n);
        snprintf(x->patterns[i], n, "%s%s", pat[0] == '/' ? "" : ref, pat);
        x->n_patterns++;
    }
    return 0;
}

/* Every name LIST or LSUB may show; 0 or -1 with *error_r. */
static int list_gather(struct list_ctx *x, const char **error_r)
{
    if (mailbox_folders(x->mb, collect_folder, x, error_r) < 0)
        return -1;
    for (size_t i = 0; i < x->n; i++)
        add_with_ancestors(x, x->folders[i].name, (long)i, false);
    if (mailbox_subscriptions(x->mb, collect_subscription, x, error_r) < 0)
        return -1;
    nodes_merge(x);
    return 0;
}

void cmd_list(struct imap *s, struct mailbox *mb)
{
    struct list_ctx x = {.s = s, .mb = mb, .a = &s->cmd->args.list,
                         .lsub = s->cmd->cmd == IMAP_CMD_LSUB};
    const char *error;
    if (x.a->n_patterns == 1 && x.a->patterns[0][0] == '\0' && !x.a->extended) {
        /* the hierarchy delimiter query (RFC 9051 §6.3.9) */
        imap_printf(s, "* %s (\\Noselect) \"/\" \"\"\r\n", x.lsub ? "LSUB" : "LIST");
        imap_tagged(s, "OK", "%s completed", x.lsub ? "LSUB" : "LIST");
        return;
    }
    if (list_patterns(&x) == 0) {
        if (list_gather(&x, &error) < 0)
            imap_store_failed(s, MAILBOX_ERR, error);
        else {
            /* INBOX first, then byte order */
            for (size_t i = 0; i < x.n_nodes; i++)
                if (strcmp(x.nodes[i].name, "INBOX") == 0)
                    list_node(&x, i);
            for (size_t i = 0; i < x.n_nodes; i++)
                if (strcmp(x.nodes[i].name, "INBOX") != 0)
                    list_node(&x, i);
            imap_tagged(s, "OK", "%s completed", x.lsub ? "LSUB" : "LIST");
        }
    }
    for (size_t i = 0; i < x.n_patterns; i++)
        free(x.patterns[i]);
    free(x.patterns);
    free(x.folders);
    for (size_t i = 0; i < x.n_nodes; i++)
        free(x.nodes[i].name);
    free(x.nodes);
}

/* ---- STATUS ------------------------------------------------------------------------- */

static void put_status(struct imap *s, struct mailbox *mb, const struct mailbox_folder *f,
                       unsigned items)
{
    const char *sep = "";
    uint64_t recent = 0;
    uint32_t before;
    const char *error;
    if (items & IMAP_STATUS_RECENT) /* the messages no session has been shown yet */
        mailbox_recent(mb, f->name, 0, &before, &recent, &error);
    imap_printf(s, "* STATUS ");
    imap_put_mailbox(s, f->name);
    imap_printf(s, " (");
#define ITEM(bit, fmt, value)                                    \
    if (items & (bit)) {                                         \
        imap_printf(s, "%s" fmt, sep, value);                    \
        sep = " ";                                               \
    }
    ITEM(IMAP_STATUS_MESSAGES, "MESSAGES %llu", (unsigned long long)f->messages)
    ITEM(IMAP_STATUS_UIDNEXT, "UIDNEXT %u", f->uidnext)
    ITEM(IMAP_STATUS_UIDVALIDITY, "UIDVALIDITY %u", f->uidvalidity)
    ITEM(IMAP_STATUS_UNSEEN, "UNSEEN %llu", (unsigned long long)f->unseen)
    ITEM(IMAP_STATUS_DELETED, "DELETED %llu", (unsigned long long)f->deleted)
    ITEM(IMAP_STATUS_SIZE, "SIZE %llu", (unsigned long long)f->bytes)
    ITEM(IMAP_STATUS_RECENT, "RECENT %llu", (unsigned long long)recent)
    ITEM(IMAP_STATUS_HIGHESTMODSEQ, "HIGHESTMODSEQ %llu", (unsigned long long)f->highestmodseq)
    ITEM(IMAP_STATUS_APPENDLIMIT, "APPENDLIMIT %llu",
         (unsigned long long)client_cfg(s->c)->imap_append_limit)
#undef ITEM
    imap_printf(s, ")\r\n");
}

void cmd_status(struct imap *s, struct mailbox *mb)
{
    const struct imap_args_status *a = &s->cmd->args.status;
    char folder[MAILBOX_FOLDER_MAX + 1];
    struct mailbox_folder f;
    const char *error = "No such mailbox";
    if (imap_mailbox_arg(s, a->mailbox, folder) < 0)
        return;
    int r = mailbox_folder_get(mb, folder, &f, &error);
    if (r != 1) {
        imap_store_failed(s, r == 0 ? MAILBOX_NONEXISTENT : r, error);
        return;
    }
    if (a->items & IMAP_STATUS_HIGHESTMODSEQ)
        s->condstore = true;
    put_status(s, mb, &f, a->items);
    imap_tagged(s, "OK", "STATUS completed");
}

/* ---- APPEND ------------------------------------------------------------------------- */

/* The message as a file the store can read from offset 0. */
static int append_fd(const struct imap_literal *lit)
{
    if (lit->fd >= 0)
        return dup(lit->fd);
    int fd = memfd_create("imap-append", MFD_CLOEXEC);
    if (fd >= 0 && write(fd, lit->data, lit->size) != (ssize_t)lit->size) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static int quota_check(struct imap *s, struct mailbox *mb, uint64_t adding, const char **error_r)
{
    uint64_t quota = unlocked_quota(client_mailbox(s->c)), used;
    if (quota == 0)
        return 0;
    if (mailbox_usage(mb, &used, error_r) < 0)
        return MAILBOX_ERR;
    if (used + adding > quota) {
        *error_r = "Mailbox is over its quota";
        return MAILBOX_OVERQUOTA;
    }
    return 0;
}

static int append_one(struct imap *s, struct mailbox *mb, const char *folder,
                      const struct imap_append_msg *m, uint32_t *uid, uint32_t *validity,
                      const char **error_r)
{
    unsigned flags;
    char *kw = sm_malloc(MAILBOX_KEYWORDS_TEXT_MAX + 1);
    int r = imap_flags_arg(s, m->flags, m->n_flags, &flags, kw);
    if (r == 0) {
        int fd = append_fd(&m->msg);
        r = fd < 0 ? MAILBOX_ERR
                   : mailbox_append(mb, folder, fd, flags, kw, m->has_date ? m->date : 0, uid,
                                    validity, error_r);
        if (fd < 0)
            *error_r = "cannot stage the message";
        else
            close(fd);
    } else {
        r = 1; /* replied already */
    }
    free(kw);
    return r;
}

void cmd_append(struct imap *s, struct mailbox *mb)
{
    const struct imap_args_append *a = &s->cmd->args.append;
    char folder[MAILBOX_FOLDER_MAX + 1];
    const char *error = "";
    uint64_t total = 0;
    if (imap_mailbox_arg(s, a->mailbox, folder) < 0)
        return;
    for (size_t i = 0; i < a->n_msgs; i++) {
        if (a->msgs[i].msg.size == 0) {
            imap_tagged(s, "NO", "Empty message");
            return;
        }
        total += a->msgs[i].msg.size;
    }
    int r = quota_check(s, mb, total, &error);
    if (r < 0 || (a->n_msgs > 1 && (r = mailbox_begin(mb, &error)) < 0)) {
        imap_store_failed(s, r, error);
        return;
    }
    struct sm_buf uids;
    sm_buf_init(&uids, 0);
    uint32_t uid = 0, validity = 0;
    for (size_t i = 0; r == 0 && i < a->n_msgs; i++) {
        r = append_one(s, mb, folder, &a->msgs[i], &uid, &validity, &error);
        if (r == 0)
            sm_buf_printf(&uids, "%s%u", i ? "," : "", uid);
    }
    if (a->n_msgs > 1 && r == 0)
        r = mailbox_commit(mb, &error);
    else if (a->n_msgs > 1)
        mailbox_rollback(mb);
    if (r == 0) {
        s->notify_others = true;
        imap_tagged(s, "OK", "[APPENDUID %u %s] APPEND completed", validity, sm_buf_str(&uids));
    } else if (r == MAILBOX_NONEXISTENT) {
        imap_tagged(s, "NO", "[TRYCREATE] No such mailbox"); /* RFC 9051 §6.3.12 */
    } else if (r < 0) {
        imap_store_failed(s, r, error);
    }
    sm_buf_free(&uids);
}

/* ---- QUOTA (RFC 9208) ------------------------------------------------------------- */

void cmd_quota(struct imap *s, struct mailbox *mb)
{
    uint64_t quota = unlocked_quota(client_mailbox(s->c)), used = 0;
    const char *error;
    if (s->cmd->cmd == IMAP_CMD_GETQUOTAROOT) {
        imap_printf(s, "* QUOTAROOT ");
        imap_put_string(s, s->cmd->args.mailbox.mailbox, strlen(s->cmd->args.mailbox.mailbox));
        imap_printf(s, quota ? " \"\"\r\n" : "\r\n");
    } else if (strcmp(s->cmd->args.quota.root, "") != 0 || quota == 0) {
        imap_tagged(s, "NO", "[NONEXISTENT] No such quota root");
        return;
    }
    if (quota != 0) {
        if (mailbox_usage(mb, &used, &error) < 0) {
            imap_store_failed(s, MAILBOX_ERR, error);
            return;
        }
        imap_printf(s, "* QUOTA \"\" (STORAGE %llu %llu)\r\n",
                    (unsigned long long)((used + 1023) / 1024),
                    (unsigned long long)(quota / 1024));
    }
    imap_tagged(s, "OK", "%s completed", imap_cmd_name(s->cmd->cmd));
}
