/* parse.c — the IMAP command parser: the command table, the small
 * commands and imap_parse() itself (see parse.h).
 *
 * Recursive descent over the RFC 9051 grammar (with RFC 3501's rev1 forms
 * and the extensions' additions), strict where the grammar is: one SP
 * between arguments, no trailing space, atoms of ATOM-CHARs only.  Being
 * strict costs nothing with real clients and makes the parser's answer to
 * odd input predictable.  Each command family lives in its own file
 * (parse-search.c, parse-fetch.c, parse-mailbox.c), the tokens they share
 * in parse-token.c; this file has the commands too small for a file.
 *
 * Everything a parsed command points to lives in its arena, a list of
 * chunks freed in one go; the sizes are bounded by the command's length
 * and the IMAP_*_MAX counts, never by anything larger. */
#include "imap/parse-internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/mem.h"

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
