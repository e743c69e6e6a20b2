/* test-imap-parse.c — the IMAP command reader and parser (imap/parse.h).
 *
 * Every command goes through the reader first, then the parser, as in the
 * session; each reader case runs twice: the input whole, then one byte at
 * a time, and both runs must give the same results. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/mem.h"
#include "imap/parse.h"

/* ---- driving the reader ---- */

#define RUN_MAX 8

struct run {
    int continues;                      /* IMAP_READ_CONTINUE results */
    size_t n;                           /* results other than MORE/CONTINUE */
    enum imap_read_result res[RUN_MAX];
    char reply[RUN_MAX][160];           /* "tag STATUS text" for errors */
    bool close[RUN_MAX];
    struct imap_raw *raw[RUN_MAX];      /* for IMAP_READ_COMMAND */
};

static int fds_made;

static int make_memfd(void *ctx, uint64_t size)
{
    (void)size;
    if (ctx != NULL)
        return -1; /* "refuse" */
    fds_made++;
    return memfd_create("imap-literal", MFD_CLOEXEC);
}

static void collect(struct imap_reader *r, struct evbuffer *in, struct run *out)
{
    for (;;) {
        enum imap_read_result res = imap_reader_read(r, in);
        if (res == IMAP_READ_MORE)
            return;
        if (res == IMAP_READ_CONTINUE) {
            out->continues++;
            continue;
        }
        assert_true(out->n < RUN_MAX);
        out->res[out->n] = res;
        if (res == IMAP_READ_COMMAND) {
            out->raw[out->n] = imap_reader_take(r);
        } else {
            const struct imap_read_error *e = imap_reader_error(r);
            snprintf(out->reply[out->n], sizeof out->reply[0], "%s %s %s", e->tag, e->status,
                     e->text);
            out->close[out->n] = e->close;
        }
        out->n++;
    }
}

static void run_reader(const struct imap_reader_limits *lim, void *fd_ctx, const char *wire,
                       size_t len, bool bytewise, struct run *out)
{
    struct imap_reader *r = imap_reader_new(lim, make_memfd, fd_ctx);
    struct evbuffer *in = evbuffer_new();
    memset(out, 0, sizeof *out);
    if (bytewise) {
        for (size_t i = 0; i < len; i++) {
            evbuffer_add(in, wire + i, 1);
            collect(r, in, out);
        }
    } else {
        evbuffer_add(in, wire, len);
        collect(r, in, out);
    }
    evbuffer_free(in);
    imap_reader_free(&r);
}

static void run_free(struct run *run)
{
    for (size_t i = 0; i < run->n; i++)
        imap_raw_free(&run->raw[i]);
}

static void default_limits(struct imap_reader_limits *lim)
{
    imap_reader_limits_default(lim);
}

/* Read and parse exactly one command of len bytes; fails the test if the
 * reader does not produce exactly one.  Returns imap_parse()'s result. */
static int parse_wire_n(const char *wire, size_t len, struct imap_command **cmd,
                        const char **err)
{
    struct imap_reader_limits lim;
    struct run whole, bytes;
    default_limits(&lim);
    run_reader(&lim, NULL, wire, len, false, &whole);
    run_reader(&lim, NULL, wire, len, true, &bytes);
    if (whole.n != 1 || whole.res[0] != IMAP_READ_COMMAND)
        fail_msg("'%s': reader gave %zu results, first %d %s", wire, whole.n,
                 whole.n ? (int)whole.res[0] : -1, whole.reply[0]);
    assert_int_equal(bytes.n, 1);
    assert_int_equal(bytes.continues, whole.continues);
    assert_int_equal(bytes.raw[0]->len, whole.raw[0]->len);
    assert_memory_equal(bytes.raw[0]->data, whole.raw[0]->data, whole.raw[0]->len);
    int r = imap_parse(whole.raw[0], cmd, err);
    run_free(&whole);
    run_free(&bytes);
    return r;
}

static int parse_wire(const char *wire, struct imap_command **cmd, const char **err)
{
    return parse_wire_n(wire, strlen(wire), cmd, err);
}

/* For inputs with NUL bytes: the length of a string literal. */
#define PARSE_BYTES(lit, cmd, err) parse_wire_n(lit, sizeof lit - 1, cmd, err)

/* A command line (CRLF added) that must parse. */
static struct imap_command *must_parse(const char *text)
{
    char wire[4096];
    snprintf(wire, sizeof wire, "%s\r\n", text);
    struct imap_command *cmd;
    const char *err = NULL;
    if (parse_wire(wire, &cmd, &err) != 0)
        fail_msg("'%s': %s", text, err);
    return cmd;
}

/* ---- every command: accepted and refused forms ---- */

static const struct cmd_case {
    const char *label;
    const char *line;
    bool ok;
    enum imap_cmd cmd;     /* when ok */
    const char *error;     /* when not: prefix of the reason */
} cmd_cases[] = {
    {"capability", "a CAPABILITY", 1, IMAP_CMD_CAPABILITY, NULL},
    {"lowercase", "a capability", 1, IMAP_CMD_CAPABILITY, NULL},
    {"noop", "a1 NOOP", 1, IMAP_CMD_NOOP, NULL},
    {"noop extra", "a1 NOOP x", 0, 0, "Unexpected extra"},
    {"trailing space", "a1 NOOP ", 0, 0, "Unexpected extra"},
    {"logout", "a LOGOUT", 1, IMAP_CMD_LOGOUT, NULL},
    {"starttls", "a STARTTLS", 1, IMAP_CMD_STARTTLS, NULL},
    {"authenticate", "a AUTHENTICATE plain", 1, IMAP_CMD_AUTHENTICATE, NULL},
    {"authenticate ir", "a AUTHENTICATE PLAIN AGJvYgBwd2Q=", 1, IMAP_CMD_AUTHENTICATE, NULL},
    {"authenticate empty ir", "a AUTHENTICATE PLAIN =", 1, IMAP_CMD_AUTHENTICATE, NULL},
    {"authenticate bad ir", "a AUTHENTICATE PLAIN AGJ=vYgB", 0, 0, "Bad base64"},
    {"authenticate no mech", "a AUTHENTICATE", 0, 0, "Missing argument"},
    {"login", "a LOGIN bob secret", 1, IMAP_CMD_LOGIN, NULL},
    {"login quoted", "a LOGIN \"bob\" \"se \\\"c\\\\ret\"", 1, IMAP_CMD_LOGIN, NULL},
    {"login one arg", "a LOGIN bob", 0, 0, "Missing argument"},
    {"login two spaces", "a LOGIN  bob x", 0, 0, "Expected a string"},
    {"login bad escape", "a LOGIN \"b\\ob\" x", 0, 0, "Bad escape"},
    {"login unterminated", "a LOGIN \"bob x", 0, 0, "Unterminated"},
    {"enable", "a ENABLE CONDSTORE QRESYNC UTF8=ACCEPT", 1, IMAP_CMD_ENABLE, NULL},
    {"enable none", "a ENABLE", 0, 0, "Missing argument"},
    {"select", "a SELECT INBOX", 1, IMAP_CMD_SELECT, NULL},
    {"select condstore", "a SELECT INBOX (CONDSTORE)", 1, IMAP_CMD_SELECT, NULL},
    {"select qresync", "a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))",
     1, IMAP_CMD_SELECT, NULL},
    {"select unknown param", "a SELECT INBOX (FOO)", 0, 0, "Unknown or repeated"},
    {"examine", "a EXAMINE \"Sent\"", 1, IMAP_CMD_EXAMINE, NULL},
    {"create", "a CREATE Archive/2024", 1, IMAP_CMD_CREATE, NULL},
    {"create use", "a CREATE MySent (USE (\\Sent))", 1, IMAP_CMD_CREATE, NULL},
    {"create bad param", "a CREATE x (FOO (\\Sent))", 0, 0, "Unknown create"},
    {"delete", "a DELETE x", 1, IMAP_CMD_DELETE, NULL},
    {"rename", "a RENAME x y", 1, IMAP_CMD_RENAME, NULL},
    {"rename one", "a RENAME x", 0, 0, "Missing argument"},
    {"subscribe", "a SUBSCRIBE x", 1, IMAP_CMD_SUBSCRIBE, NULL},
    {"unsubscribe", "a UNSUBSCRIBE x", 1, IMAP_CMD_UNSUBSCRIBE, NULL},
    {"list", "a LIST \"\" *", 1, IMAP_CMD_LIST, NULL},
    {"list percent", "a LIST \"\" %/x%", 1, IMAP_CMD_LIST, NULL},
    {"list recursivematch alone", "a LIST (RECURSIVEMATCH) \"\" *", 0, 0, "RECURSIVEMATCH"},
    {"list unknown sel", "a LIST (FOO) \"\" *", 0, 0, "Unknown LIST selection"},
    {"list unknown ret", "a LIST \"\" * RETURN (FOO)", 0, 0, "Unknown LIST return"},
    {"lsub", "a LSUB \"\" *", 1, IMAP_CMD_LSUB, NULL},
    {"namespace", "a NAMESPACE", 1, IMAP_CMD_NAMESPACE, NULL},
    {"status", "a STATUS INBOX (MESSAGES UNSEEN SIZE)", 1, IMAP_CMD_STATUS, NULL},
    {"status empty", "a STATUS INBOX ()", 0, 0, "Expected a list of status"},
    {"status unknown", "a STATUS INBOX (FOO)", 0, 0, "Expected a list of status"},
    {"append no literal", "a APPEND INBOX", 0, 0, "Missing argument"},
    {"append not literal", "a APPEND INBOX hello", 0, 0, "Expected a literal"},
    {"idle", "a IDLE", 1, IMAP_CMD_IDLE, NULL},
    {"check", "a CHECK", 1, IMAP_CMD_CHECK, NULL},
    {"close", "a CLOSE", 1, IMAP_CMD_CLOSE, NULL},
    {"unselect", "a UNSELECT", 1, IMAP_CMD_UNSELECT, NULL},
    {"expunge", "a EXPUNGE", 1, IMAP_CMD_EXPUNGE, NULL},
    {"expunge with set", "a EXPUNGE 1:3", 0, 0, "Unexpected extra"},
    {"uid expunge", "a UID EXPUNGE 1:3,7", 1, IMAP_CMD_EXPUNGE, NULL},
    {"uid expunge no set", "a UID EXPUNGE", 0, 0, "Missing argument"},
    {"search", "a SEARCH UNSEEN", 1, IMAP_CMD_SEARCH, NULL},
    {"search unknown key", "a SEARCH FOO", 0, 0, "Unknown search key"},
    {"search no key", "a SEARCH", 0, 0, "Missing argument"},
    {"search unbalanced", "a SEARCH (SEEN", 0, 0, "Expected )"},
    {"search bad date", "a SEARCH SINCE 30-Feb-2024", 0, 0, "Bad date"},
    {"uid search", "a UID SEARCH 1:*", 1, IMAP_CMD_SEARCH, NULL},
    {"sort", "a SORT (DATE) UTF-8 ALL", 1, IMAP_CMD_SORT, NULL},
    {"sort no charset", "a SORT (DATE) ALL", 0, 0, "Missing argument"},
    {"sort bad key", "a SORT (COLOUR) UTF-8 ALL", 0, 0, "Unknown sort"},
    {"fetch", "a FETCH 1 FLAGS", 1, IMAP_CMD_FETCH, NULL},
    {"fetch bad att", "a FETCH 1 FOO", 0, 0, "Unknown fetch attribute"},
    {"fetch zero", "a FETCH 0 FLAGS", 0, 0, "Invalid sequence set"},
    {"store", "a STORE 1 FLAGS (\\Seen)", 1, IMAP_CMD_STORE, NULL},
    {"store recent", "a STORE 1 +FLAGS \\Recent", 0, 0, "\\Recent cannot"},
    {"store star", "a STORE 1 +FLAGS \\*", 0, 0, "\\* is not"},
    {"store bad op", "a STORE 1 *FLAGS x", 0, 0, "Expected FLAGS"},
    {"copy", "a COPY 1:2 Trash", 1, IMAP_CMD_COPY, NULL},
    {"uid copy", "a UID COPY 1:2 Trash", 1, IMAP_CMD_COPY, NULL},
    {"move", "a MOVE $ Trash", 1, IMAP_CMD_MOVE, NULL},
    {"uid move", "a UID MOVE 4 Trash", 1, IMAP_CMD_MOVE, NULL},
    {"id nil", "a ID NIL", 1, IMAP_CMD_ID, NULL},
    {"id list", "a ID (\"name\" \"mutt\" \"version\" NIL)", 1, IMAP_CMD_ID, NULL},
    {"id odd", "a ID (\"name\")", 0, 0, "Expected a space"},
    {"id key too long", "a ID (\"0123456789012345678901234567890\" \"x\")", 0, 0, "ID field"},
    {"getquota", "a GETQUOTA \"\"", 1, IMAP_CMD_GETQUOTA, NULL},
    {"getquotaroot", "a GETQUOTAROOT INBOX", 1, IMAP_CMD_GETQUOTAROOT, NULL},
    {"setquota", "a SETQUOTA \"\" (STORAGE 512)", 1, IMAP_CMD_SETQUOTA, NULL},
    {"setquota bad", "a SETQUOTA \"\" (STORAGE)", 0, 0, "Expected a space"},
    {"compress", "a COMPRESS DEFLATE", 1, IMAP_CMD_COMPRESS, NULL},
    {"unknown", "a FROB", 0, 0, "Unknown command"},
    {"uid unknown", "a UID FROB", 0, 0, "Unknown UID command"},
    {"uid not allowed", "a UID SELECT x", 0, 0, "Command does not take UID"},
    {"tag with +", "a+ NOOP", 0, 0, "Invalid tag"},
    {"tag with *", "a* NOOP", 0, 0, "Invalid tag"},
    {"no command", "a", 0, 0, "Missing command"},
    {"literal8 in login", "a LOGIN ~{3}\r\nbob x", 0, 0, "literal8 is only"},
};

static void test_commands(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cmd_cases / sizeof cmd_cases[0]; i++) {
        const struct cmd_case *c = &cmd_cases[i];
        char wire[512];
        snprintf(wire, sizeof wire, "%s\r\n", c->line);
        struct imap_command *cmd;
        const char *err = NULL;
        int r = parse_wire(wire, &cmd, &err);
        if ((r == 0) != c->ok)
            fail_msg("case '%s': r=%d err=%s", c->label, r, err ? err : "-");
        if (c->ok && cmd->cmd != c->cmd)
            fail_msg("case '%s': cmd %d", c->label, (int)cmd->cmd);
        if (!c->ok && strncmp(err, c->error, strlen(c->error)) != 0)
            fail_msg("case '%s': error '%s'", c->label, err);
        imap_command_free(&cmd);
    }
}

static void test_tags(void **state)
{
    (void)state;
    struct imap_command *cmd = must_parse("A0001.x NOOP");
    assert_string_equal(cmd->tag, "A0001.x");
    assert_string_equal(imap_cmd_name(cmd->cmd), "NOOP");
    imap_command_free(&cmd);
    const char *err;
    assert_int_equal(parse_wire("a+b NOOP\r\n", &cmd, &err), -1);
    assert_string_equal(cmd->tag, "*"); /* unreadable tag: untagged BAD */
    imap_command_free(&cmd);
    assert_int_equal(parse_wire("t1 FROB x\r\n", &cmd, &err), -1);
    assert_string_equal(cmd->tag, "t1");
    imap_command_free(&cmd);
    assert_string_equal(imap_cmd_name(IMAP_CMD_UNKNOWN), "UNKNOWN");
}

/* ---- arguments ---- */

static void test_login_and_auth(void **state)
{
    (void)state;
    struct imap_command *cmd = must_parse("a LOGIN \"bob@example.org\" \"p\\\"w\\\\d\"");
    assert_string_equal(cmd->args.login.user, "bob@example.org");
    assert_string_equal(cmd->args.login.password, "p\"w\\d");
    imap_command_free(&cmd);

    cmd = must_parse("a AUTHENTICATE plain AGJvYgBwd2Q=");
    assert_string_equal(cmd->args.authenticate.mechanism, "PLAIN");
    assert_string_equal(cmd->args.authenticate.initial_response, "AGJvYgBwd2Q=");
    imap_command_free(&cmd);
    cmd = must_parse("a AUTHENTICATE PLAIN =");
    assert_string_equal(cmd->args.authenticate.initial_response, "");
    imap_command_free(&cmd);
    cmd = must_parse("a AUTHENTICATE PLAIN");
    assert_null(cmd->args.authenticate.initial_response);
    imap_command_free(&cmd);

    cmd = must_parse("a ENABLE condstore utf8=accept");
    assert_int_equal(cmd->args.enable.n_caps, 2);
    assert_string_equal(cmd->args.enable.caps[0], "CONDSTORE");
    assert_string_equal(cmd->args.enable.caps[1], "UTF8=ACCEPT");
    imap_command_free(&cmd);

    cmd = must_parse("a COMPRESS deflate");
    assert_string_equal(cmd->args.compress.mechanism, "DEFLATE");
    imap_command_free(&cmd);
}

static void test_literal_strings(void **state)
{
    (void)state;
    struct imap_reader_limits lim;
    default_limits(&lim);
    static const char wire[] = "a1 LOGIN {3}\r\nbob {4+}\r\np w\"\r\n";
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        struct run run;
        run_reader(&lim, NULL, wire, sizeof wire - 1, bytewise, &run);
        assert_int_equal(run.continues, 1); /* only for the synchronising one */
        assert_int_equal(run.n, 1);
        assert_int_equal(run.res[0], IMAP_READ_COMMAND);
        assert_int_equal(run.raw[0]->n_literals, 2);
        assert_true(run.raw[0]->literals[1].nonsync);
        struct imap_command *cmd;
        const char *err;
        assert_int_equal(imap_parse(run.raw[0], &cmd, &err), 0);
        assert_string_equal(cmd->args.login.user, "bob");
        assert_string_equal(cmd->args.login.password, "p w\"");
        imap_command_free(&cmd);
        run_free(&run);
    }
    /* an empty literal, and CRLF inside a literal */
    struct imap_command *cmd;
    const char *err;
    assert_int_equal(parse_wire("a LOGIN {0}\r\n {4}\r\na\r\nb\r\n", &cmd, &err), 0);
    assert_string_equal(cmd->args.login.user, "");
    assert_string_equal(cmd->args.login.password, "a\r\nb");
    imap_command_free(&cmd);
    /* NUL inside a literal string */
    assert_int_equal(PARSE_BYTES("a LOGIN {3}\r\na\0b x\r\n", &cmd, &err), -1);
    imap_command_free(&cmd);
    /* a literal announcement that is not at the end of a line is not one */
    assert_int_equal(parse_wire("a LOGIN {3} x\r\n", &cmd, &err), -1);
    imap_command_free(&cmd);
    /* a line without its literal (imap_raw_from_line) */
    struct imap_raw *raw = imap_raw_from_line("a LOGIN {3}", 11);
    assert_int_equal(imap_parse(raw, &cmd, &err), -1);
    assert_string_equal(err, "Missing literal data");
    imap_command_free(&cmd);
    imap_raw_free(&raw);
    /* UTF-8 in quoted strings, valid and not */
    assert_int_equal(parse_wire("a LOGIN \"j\xc3\xb6rg\" x\r\n", &cmd, &err), 0);
    assert_string_equal(cmd->args.login.user, "j\xc3\xb6rg");
    imap_command_free(&cmd);
    assert_int_equal(parse_wire("a LOGIN \"j\xc3rg\" x\r\n", &cmd, &err), -1);
    assert_string_equal(err, "Invalid UTF-8 in quoted string");
    imap_command_free(&cmd);
}

static void test_mailbox_commands(void **state)
{
    (void)state;
    struct imap_command *cmd = must_parse("a SELECT inBoX");
    assert_string_equal(cmd->args.select.mailbox, "INBOX");
    assert_false(cmd->args.select.condstore);
    imap_command_free(&cmd);

    cmd = must_parse("a EXAMINE \"INBOX.Sent\" (CONDSTORE)");
    assert_string_equal(cmd->args.select.mailbox, "INBOX.Sent");
    assert_true(cmd->args.select.condstore);
    imap_command_free(&cmd);

    cmd = must_parse("a SELECT x (QRESYNC (67890007 90060115194045000 41:211,214:541 "
                     "(1:5,7 3:9,12)))");
    const struct imap_args_select *s = &cmd->args.select;
    assert_true(s->qresync);
    assert_int_equal(s->uidvalidity, 67890007);
    assert_true(s->modseq == 90060115194045000ULL);
    assert_int_equal(s->known_uids.n, 2);
    assert_int_equal(s->seq_match.n, 2);
    assert_int_equal(s->uid_match.n, 2);
    imap_command_free(&cmd);

    cmd = must_parse("a SELECT x (QRESYNC (1 2 (1 3)))");
    assert_int_equal(cmd->args.select.known_uids.n, 0);
    assert_int_equal(cmd->args.select.seq_match.n, 1);
    imap_command_free(&cmd);

    const char *err;
    assert_int_equal(parse_wire("a SELECT x (QRESYNC (1 2 1:*))\r\n", &cmd, &err), -1);
    imap_command_free(&cmd);
    assert_int_equal(parse_wire("a SELECT x (QRESYNC (0 2))\r\n", &cmd, &err), -1);
    imap_command_free(&cmd);

    cmd = must_parse("a CREATE Stuff (USE (\\Archive \\junk \\X-Own))");
    assert_int_equal(cmd->args.create.use, IMAP_USE_ARCHIVE | IMAP_USE_JUNK | IMAP_USE_OTHER);
    imap_command_free(&cmd);

    cmd = must_parse("a RENAME \"Old\" {3+}\r\nNew");
    assert_string_equal(cmd->args.rename.from, "Old");
    assert_string_equal(cmd->args.rename.to, "New");
    imap_command_free(&cmd);

    cmd = must_parse("a STATUS \"Sent\" (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT "
                     "HIGHESTMODSEQ APPENDLIMIT)");
    assert_int_equal(cmd->args.status.items, 0x1ff);
    imap_command_free(&cmd);

    cmd = must_parse("a GETQUOTAROOT inbox");
    assert_string_equal(cmd->args.mailbox.mailbox, "INBOX");
    imap_command_free(&cmd);

    cmd = must_parse("a SETQUOTA \"\" (STORAGE 512 message 100)");
    assert_int_equal(cmd->args.quota.n_resources, 2);
    assert_string_equal(cmd->args.quota.resources[1].name, "MESSAGE");
    assert_true(cmd->args.quota.resources[1].limit == 100);
    imap_command_free(&cmd);

    cmd = must_parse("a ID (\"name\" \"Thunderbird\" \"os\" NIL)");
    assert_int_equal(cmd->args.id.n, 2);
    assert_string_equal(cmd->args.id.values[0], "Thunderbird");
    assert_null(cmd->args.id.values[1]);
    imap_command_free(&cmd);
}

static void test_list(void **state)
{
    (void)state;
    struct imap_command *cmd = must_parse("a LIST \"\" \"\"");
    const struct imap_args_list *l = &cmd->args.list;
    assert_false(l->extended);
    assert_int_equal(l->n_patterns, 1);
    assert_string_equal(l->patterns[0], "");
    imap_command_free(&cmd);

    cmd = must_parse("a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (INBOX \"Sent*\" %) "
                     "RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))");
    l = &cmd->args.list;
    assert_true(l->extended);
    assert_int_equal(l->select, IMAP_LIST_SEL_SUBSCRIBED | IMAP_LIST_SEL_RECURSIVEMATCH);
    assert_int_equal(l->n_patterns, 3);
    assert_string_equal(l->patterns[1], "Sent*");
    assert_int_equal(l->ret, IMAP_LIST_RET_CHILDREN | IMAP_LIST_RET_SPECIAL_USE |
                                 IMAP_LIST_RET_STATUS);
    assert_int_equal(l->status_items, IMAP_STATUS_MESSAGES | IMAP_STATUS_UNSEEN);
    imap_command_free(&cmd);

    cmd = must_parse("a LIST () \"\" % RETURN ()");
    assert_true(cmd->args.list.extended);
    assert_int_equal(cmd->args.list.select, 0);
    imap_command_free(&cmd);

    cmd = must_parse("a LIST \"~/\" ]x");
    assert_string_equal(cmd->args.list.reference, "~/");
    imap_command_free(&cmd);

    cmd = must_parse("a LSUB \"\" INBOX/%");
    assert_string_equal(cmd->args.list.patterns[0], "INBOX/%");
    imap_command_free(&cmd);
}

static void test_append(void **state)
{
    (void)state;
    struct imap_command *cmd = must_parse("a APPEND inbox (\\Seen $Label) \"05-Mar-2024 10:00:00 "
                                          "+0100\" {5}\r\nhello");
    const struct imap_args_append *a = &cmd->args.append;
    assert_string_equal(a->mailbox, "INBOX");
    assert_int_equal(a->n_msgs, 1);
    assert_int_equal(a->msgs[0].n_flags, 2);
    assert_string_equal(a->msgs[0].flags[0], "\\Seen");
    assert_true(a->msgs[0].has_date);
    assert_true(a->msgs[0].date == 1709629200); /* 2024-03-05 09:00:00 UTC */
    assert_int_equal(a->msgs[0].msg.size, 5);
    assert_int_equal(a->msgs[0].msg.fd, -1);
    assert_true(memcmp(a->msgs[0].msg.data, "hello", 5) == 0); /* ASan checks memcmp */
    imap_command_free(&cmd);

    /* MULTIAPPEND, literal8, UTF8 data */
    const char *err;
    assert_int_equal(PARSE_BYTES("a APPEND x {2+}\r\nab ~{3+}\r\na\0b UTF8 (~{1+}\r\nz) () {0+}"
                                 "\r\n\r\n", &cmd, &err), 0);
    a = &cmd->args.append;
    assert_int_equal(a->n_msgs, 4);
    assert_false(a->msgs[0].msg.binary);
    assert_true(a->msgs[1].msg.binary);
    assert_true(memcmp(a->msgs[1].msg.data, "a\0b", 3) == 0); /* ASan checks memcmp */
    assert_true(a->msgs[2].utf8);
    assert_int_equal(a->msgs[3].msg.size, 0);
    assert_int_equal(a->msgs[3].n_flags, 0);
    imap_command_free(&cmd);

    assert_int_equal(parse_wire("a APPEND x UTF8 ({1+}\r\nz)\r\n", &cmd, &err), -1);
    assert_string_equal(err, "UTF8 data must be a literal8");
    imap_command_free(&cmd);
    assert_int_equal(parse_wire("a APPEND x \"31-Apr-2024 10:00:00 +0000\" {1+}\r\nz\r\n", &cmd,
                                &err), -1);
    assert_string_equal(err, "Bad date-time");
    imap_command_free(&cmd);
}

/* Big APPEND literals go to the session's fd; the command owns it. */
static void test_external_literal(void **state)
{
    (void)state;
    struct imap_reader_limits lim;
    default_limits(&lim);
    lim.mem_literal_max = 16;
    char wire[256];
    int n = snprintf(wire, sizeof wire, "a APPEND INBOX {40}\r\n%s\r\nb NOOP\r\n",
                     "0123456789012345678901234567890123456789");
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        struct run run;
        fds_made = 0;
        run_reader(&lim, NULL, wire, (size_t)n, bytewise, &run);
        assert_int_equal(fds_made, 1);
        assert_int_equal(run.continues, 1);
        assert_int_equal(run.n, 2);
        assert_int_equal(run.raw[0]->n_literals, 1);
        int fd = run.raw[0]->literals[0].fd;
        assert_true(fd >= 0);
        struct imap_command *cmd;
        const char *err;
        assert_int_equal(imap_parse(run.raw[0], &cmd, &err), 0);
        assert_int_equal(run.raw[0]->literals[0].fd, -1); /* moved */
        const struct imap_literal *lit = &cmd->args.append.msgs[0].msg;
        assert_int_equal(lit->fd, fd);
        assert_null(lit->data);
        assert_int_equal(lit->size, 40);
        char back[41] = {0};
        assert_int_equal(pread(fd, back, 40, 0), 40);
        assert_string_equal(back, "0123456789012345678901234567890123456789");
        imap_command_free(&cmd);
        assert_int_equal(fcntl(fd, F_GETFD), -1); /* closed by the command */
        assert_int_equal(imap_parse(run.raw[1], &cmd, &err), 0);
        assert_int_equal(cmd->cmd, IMAP_CMD_NOOP);
        imap_command_free(&cmd);
        run_free(&run);
    }

    /* an external literal where a string is expected: refused, fd closed by raw */
    struct run run;
    static const char w1[] = "a APPEND {20}\r\n01234567890123456789 {1+}\r\nx\r\n";
    run_reader(&lim, NULL, w1, sizeof w1 - 1, false, &run);
    assert_int_equal(run.n, 1);
    struct imap_command *cmd;
    const char *err;
    assert_int_equal(imap_parse(run.raw[0], &cmd, &err), -1);
    assert_string_equal(err, "Literal too big for a string");
    imap_command_free(&cmd);
    run_free(&run);

    /* the session refuses an fd: NO, the literal is discarded, next command fine */
    static const char w2[] = "a APPEND x {20+}\r\n01234567890123456789\r\nb NOOP\r\n";
    run_reader(&lim, (void *)1, w2, sizeof w2 - 1, false, &run);
    assert_int_equal(run.n, 2);
    assert_int_equal(run.res[0], IMAP_READ_FAILED);
    assert_string_equal(run.reply[0], "a NO [SERVERBUG] Cannot store the message");
    assert_int_equal(run.res[1], IMAP_READ_COMMAND);
    run_free(&run);
}

/* ---- reader limits and resynchronisation ---- */

/* a wire text and its length (it may hold NUL bytes) */
#define W(lit) lit, sizeof lit - 1
#define LONG60 "012345678901234567890123456789012345678901234567890123456789"

static const struct reader_case {
    const char *label;
    size_t max_line, max_command; /* 0: default */
    const char *wire;
    size_t len;
    int continues;
    const char *results; /* one letter per result: C command, L line, T command too long,
                          * B literal too big, F failed, N NUL byte */
    const char *reply;   /* the first error's reply, if any */
    bool close;
} reader_cases[] = {
    {"one", 0, 0, W("a NOOP\r\n"), 0, "C", NULL, 0},
    {"pipelined", 0, 0, W("a NOOP\r\nb NOOP\r\nc NOOP\r\n"), 0, "CCC", NULL, 0},
    {"bare lf", 0, 0, W("a NOOP\nb NOOP\n"), 0, "CC", NULL, 0},
    {"empty lines", 0, 0, W("\r\n\r\na NOOP\r\n"), 0, "C", NULL, 0},
    {"incomplete", 0, 0, W("a NOOP"), 0, "", NULL, 0},
    {"sync waits", 0, 0, W("a LOGIN {3}\r\n"), 1, "", NULL, 0},
    {"line too long", 64, 0, W("t1 NOOP " LONG60 "\r\nt2 NOOP\r\n"), 0, "LC",
     "t1 BAD Line too long", 0},
    {"long line, bad tag", 64, 0, W("t+1 NOOP " LONG60 "\r\n"), 0, "L", "* BAD Line too long",
     0},
    {"long line announcing {N+}", 64, 0, W("t1 X " LONG60 " {4+}\r\nabcd\r\nt2 NOOP\r\n"), 0,
     "LC", "t1 BAD Line too long", 0},
    {"long line announcing {N}", 64, 0, W("t1 X " LONG60 " {4}\r\nt2 NOOP\r\n"), 0, "LC",
     "t1 BAD Line too long", 0},
    {"literal over the command space", 64, 100, W("t1 LOGIN {90}\r\nt2 NOOP\r\n"), 0, "BC",
     "t1 BAD [TOOBIG] Literal too big", 0},
    {"lines too long together", 64, 128,
     W("t1 X {1+}\r\na 0123456789012345678901234567890123456789012345678901234 {1+}\r\n"
       "b 0123456789012345678901234567890123456789012345678901234 {1+}\r\nc y\r\nt2 NOOP\r\n"),
     0, "TC", "t1 BAD Command too long", 0},
    {"nonsync over LITERAL-", 0, 0, W("t1 LOGIN {4097+}\r\n"), 0, "B",
     "t1 BAD [TOOBIG] Non-synchronizing literal too big, use {N}", 0},
    {"nonsync too big is skipped", 64, 100,
     W("t1 LOGIN {120+}\r\n" LONG60 LONG60 " {2+}\r\nab x\r\nt2 NOOP\r\n"), 0, "BC",
     "t1 BAD [TOOBIG] Literal too big", 0},
    {"sync literal too big", 0, 0, W("t1 LOGIN {100000}\r\nt2 NOOP\r\n"), 0, "BC",
     "t1 BAD [TOOBIG] Literal too big", 0},
    {"append too big", 0, 0, W("t1 APPEND x {60000000}\r\nt2 NOOP\r\n"), 0, "BC",
     "t1 NO [TOOBIG] Message too big", 0},
    {"nonsync beyond skipping", 0, 0, W("t1 LOGIN {99999999999+}\r\n"), 0, "B", NULL, 1},
    {"number overflow", 0, 0, W("t1 LOGIN {99999999999999999999999+}\r\n"), 0, "B", NULL, 1},
    {"nul byte", 0, 0, W("t1 NO\0OP\r\nt2 NOOP\r\n"), 0, "NC", "t1 BAD NUL byte in command", 0},
    {"literal8", 0, 0, W("t1 APPEND x ~{3}\r\na\0b\r\n"), 1, "C", NULL, 0},
    {"discarded line announces too much", 64, 0, W("t1 X " LONG60 " {99999999999+}\r\n"), 0,
     "LB", "t1 BAD Line too long", 0},
    {"long line, zero-padded {N+}", 64, 0,
     W("t1 X " LONG60 " {0000000000000000000000000000000000000004+}\r\nabcd\r\nt2 NOOP\r\n"), 0,
     "LC", "t1 BAD Line too long", 0},
    {"long line, CR before the end", 64, 0, W("t1 X " LONG60 " {4+}\r \r\nt2 NOOP\r\n"), 0,
     "LC", "t1 BAD Line too long", 0},
    {"zero-padded literal", 0, 0, W("t1 LOGIN {000000000000000000000000000003}\r\nabc x\r\n"), 1,
     "C", NULL, 0},
    {"too many literals", 0, 0, W(""), 0, "TC", "t1 BAD Too many literals in one command", 0},
};

static char result_letter(enum imap_read_result r)
{
    switch (r) {
    case IMAP_READ_COMMAND: return 'C';
    case IMAP_READ_LINE_TOO_LONG: return 'L';
    case IMAP_READ_COMMAND_TOO_LONG: return 'T';
    case IMAP_READ_LITERAL_TOO_BIG: return 'B';
    case IMAP_READ_FAILED: return 'F';
    case IMAP_READ_BAD_LINE: return 'N';
    default: return '?';
    }
}

static void test_reader(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof reader_cases / sizeof reader_cases[0]; i++) {
        const struct reader_case *c = &reader_cases[i];
        struct imap_reader_limits lim;
        default_limits(&lim);
        if (c->max_line)
            lim.max_line = c->max_line;
        if (c->max_command)
            lim.max_command = c->max_command;
        const char *wire = c->wire;
        size_t len = c->len;
        static char many[IMAP_LITERALS_MAX * 8 + 64];
        if (len == 0) { /* "too many literals": built here */
            len = (size_t)snprintf(many, sizeof many, "t1 X");
            for (int k = 0; k <= IMAP_LITERALS_MAX; k++)
                len += (size_t)snprintf(many + len, sizeof many - len, " {1+}\r\nx");
            len += (size_t)snprintf(many + len, sizeof many - len, "\r\nt2 NOOP\r\n");
            wire = many;
        }
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            struct run run;
            char got[RUN_MAX + 1] = {0};
            run_reader(&lim, NULL, wire, len, bytewise, &run);
            for (size_t k = 0; k < run.n; k++)
                got[k] = result_letter(run.res[k]);
            if (strcmp(got, c->results) != 0 || run.continues != c->continues)
                fail_msg("case '%s' (%s): results '%s' continues %d", c->label,
                         bytewise ? "bytewise" : "whole", got, run.continues);
            for (size_t k = 0; k < run.n; k++) {
                if (run.res[k] == IMAP_READ_COMMAND || c->reply == NULL)
                    continue;
                if (strcmp(run.reply[k], c->reply) != 0)
                    fail_msg("case '%s': reply '%s'", c->label, run.reply[k]);
                break;
            }
            if (run.n > 0 && run.res[0] != IMAP_READ_COMMAND && run.close[0] != c->close)
                fail_msg("case '%s': close %d", c->label, run.close[0]);
            /* whatever followed the error parses as the next command */
            for (size_t k = 1; k < run.n && run.res[0] != IMAP_READ_COMMAND; k++) {
                struct imap_command *cmd;
                const char *err;
                if (run.res[k] != IMAP_READ_COMMAND)
                    continue;
                if (imap_parse(run.raw[k], &cmd, &err) != 0 || strcmp(cmd->tag, "t2") != 0)
                    fail_msg("case '%s': after the error: %s", c->label, cmd->tag);
                imap_command_free(&cmd);
            }
            run_free(&run);
        }
    }
}

static void test_reader_state(void **state)
{
    (void)state;
    struct imap_reader_limits lim;
    default_limits(&lim);
    lim.max_line = 64;
    struct imap_reader *r = imap_reader_new(&lim, NULL, NULL);
    struct evbuffer *in = evbuffer_new();
    const char *line;
    size_t len;

    /* bare lines: IDLE's DONE, AUTHENTICATE responses */
    assert_false(imap_reader_busy(r));
    evbuffer_add(in, "DO", 2);
    assert_int_equal(imap_reader_line(r, in, &line, &len), 0);
    evbuffer_add(in, "NE\r\nAGJvYg==\n", 13);
    assert_int_equal(imap_reader_line(r, in, &line, &len), 1);
    assert_string_equal(line, "DONE");
    assert_int_equal(imap_reader_line(r, in, &line, &len), 1);
    assert_string_equal(line, "AGJvYg==");
    char big[200];
    memset(big, 'x', sizeof big);
    evbuffer_add(in, big, sizeof big);
    assert_int_equal(imap_reader_line(r, in, &line, &len), -1);
    assert_true(imap_reader_busy(r));
    evbuffer_add(in, "xx\r\nnext\r\n", 10);
    assert_int_equal(imap_reader_line(r, in, &line, &len), 1);
    assert_string_equal(line, "next");
    assert_false(imap_reader_busy(r));

    /* busy in the middle of a command; a command not taken is freed */
    evbuffer_add(in, "a LOGIN {1}\r\n", 13);
    assert_int_equal(imap_reader_read(r, in), IMAP_READ_CONTINUE);
    assert_true(imap_reader_busy(r));
    assert_int_equal(imap_reader_read(r, in), IMAP_READ_MORE);
    evbuffer_add(in, "x y\r\nb NOOP\r\n", 13);
    assert_int_equal(imap_reader_read(r, in), IMAP_READ_COMMAND);
    assert_false(imap_reader_busy(r));
    assert_int_equal(imap_reader_read(r, in), IMAP_READ_COMMAND);
    struct imap_raw *raw = imap_reader_take(r);
    assert_string_equal(raw->data, "b NOOP");
    assert_null(imap_reader_take(r));
    imap_raw_free(&raw);
    imap_raw_free(&raw);
    evbuffer_free(in);
    imap_reader_free(&r);
    imap_reader_free(&r);
}

/* ---- SEARCH and SORT ---- */

/* The tree as text, to compare with the expected shape. */
static void tree_text(const struct imap_search_node *n, char *out, size_t size)
{
    static const char *const names[] = {
        [IMAP_SK_AND] = "AND", [IMAP_SK_OR] = "OR", [IMAP_SK_NOT] = "NOT",
        [IMAP_SK_SEQSET] = "SET", [IMAP_SK_UID] = "UID", [IMAP_SK_ALL] = "ALL",
        [IMAP_SK_SEEN] = "SEEN", [IMAP_SK_UNSEEN] = "UNSEEN", [IMAP_SK_FROM] = "FROM",
        [IMAP_SK_HEADER] = "HEADER", [IMAP_SK_SINCE] = "SINCE", [IMAP_SK_LARGER] = "LARGER",
        [IMAP_SK_MODSEQ] = "MODSEQ", [IMAP_SK_KEYWORD] = "KEYWORD", [IMAP_SK_TEXT] = "TEXT",
        [IMAP_SK_DELETED] = "DELETED", [IMAP_SK_SENTON] = "SENTON",
    };
    size_t len = strlen(out);
    const char *name = (size_t)n->key < sizeof names / sizeof names[0] && names[n->key]
                           ? names[n->key] : "?";
    snprintf(out + len, size - len, "%s%s", name, n->child ? "(" : "");
    for (const struct imap_search_node *c = n->child; c != NULL; c = c->next) {
        tree_text(c, out, size);
        len = strlen(out);
        snprintf(out + len, size - len, "%s", c->next ? " " : ")");
    }
}

static const struct search_case {
    const char *line;
    const char *tree;
} search_cases[] = {
    {"a SEARCH ALL", "AND(ALL)"},
    {"a SEARCH UNSEEN FROM bob", "AND(UNSEEN FROM)"},
    {"a SEARCH OR SEEN (DELETED TEXT x) NOT 1:5", "AND(OR(SEEN AND(DELETED TEXT)) NOT(SET))"},
    {"a SEARCH NOT NOT NOT ALL", "AND(NOT(NOT(NOT(ALL))))"},
    {"a SEARCH $", "AND(SET)"},
    {"a SEARCH UID 1:* LARGER 100 SENTON \"1-Jan-2024\"", "AND(UID LARGER SENTON)"},
    {"a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338", "AND(MODSEQ)"},
    {"a SEARCH MODSEQ 5 KEYWORD $Junk", "AND(MODSEQ KEYWORD)"},
    {"a SEARCH CHARSET UTF-8 HEADER Message-ID {5}\r\n<a@b>", "AND(HEADER)"},
    {"a SEARCH RETURN () ALL", "AND(ALL)"},
    {"a SEARCH ((SEEN))", "AND(AND(AND(SEEN)))"},
};

static void test_search(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof search_cases / sizeof search_cases[0]; i++) {
        struct imap_command *cmd = must_parse(search_cases[i].line);
        char text[512] = "";
        tree_text(cmd->args.search.keys, text, sizeof text);
        if (strcmp(text, search_cases[i].tree) != 0)
            fail_msg("'%s': tree %s", search_cases[i].line, text);
        imap_command_free(&cmd);
    }
    struct imap_command *cmd = must_parse("a UID SEARCH RETURN (MIN MAX COUNT SAVE) CHARSET "
                                          "\"utf-8\" SINCE 1-Feb-2024 HEADER X-Spam yes");
    const struct imap_args_search *s = &cmd->args.search;
    assert_true(cmd->uid);
    assert_true(s->esearch);
    assert_int_equal(s->ret, IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_MAX | IMAP_SEARCH_RET_COUNT |
                                 IMAP_SEARCH_RET_SAVE);
    assert_string_equal(s->charset, "UTF-8");
    assert_true(s->keys->child->date == 1706745600);
    assert_string_equal(s->keys->child->next->field, "X-Spam");
    assert_string_equal(s->keys->child->next->str, "yes");
    imap_command_free(&cmd);

    cmd = must_parse("a SEARCH RETURN () ALL");
    assert_int_equal(cmd->args.search.ret, IMAP_SEARCH_RET_ALL);
    imap_command_free(&cmd);

    cmd = must_parse("a SEARCH MODSEQ \"/flags/\\\\draft\" priv 7");
    assert_string_equal(cmd->args.search.keys->child->field, "/flags/\\draft");
    assert_string_equal(cmd->args.search.keys->child->str, "priv");
    assert_true(cmd->args.search.keys->child->number == 7);
    imap_command_free(&cmd);

    /* bounds: depth and node count */
    char line[8192];
    const char *err;
    strcpy(line, "a SEARCH");
    for (int i = 0; i < IMAP_SEARCH_DEPTH_MAX + 2; i++)
        strcat(line, " NOT");
    strcat(line, " ALL\r\n");
    assert_int_equal(parse_wire(line, &cmd, &err), -1);
    assert_string_equal(err, "Search keys nested too deeply");
    imap_command_free(&cmd);
    strcpy(line, "a SEARCH");
    for (int i = 0; i < IMAP_SEARCH_NODES_MAX + 1; i++)
        strcat(line, " ALL");
    strcat(line, "\r\n");
    assert_int_equal(parse_wire(line, &cmd, &err), -1);
    assert_string_equal(err, "Too many search keys");
    imap_command_free(&cmd);
    assert_int_equal(parse_wire("a SEARCH RETURN (PARTIAL) ALL\r\n", &cmd, &err), -1);
    imap_command_free(&cmd);
    assert_int_equal(parse_wire("a SEARCH OR SEEN\r\n", &cmd, &err), -1);
    imap_command_free(&cmd);
    assert_int_equal(parse_wire("a SEARCH MODSEQ \"/x\" all 5\r\n", &cmd, &err), -1);
    imap_command_free(&cmd);

    cmd = must_parse("a UID SORT RETURN (COUNT) (REVERSE ARRIVAL cc DISPLAYFROM) us-ascii "
                     "NOT DELETED");
    s = &cmd->args.search;
    assert_int_equal(s->n_sort, 3);
    assert_true(s->sort[0].reverse);
    assert_int_equal(s->sort[0].criterion, IMAP_SORT_ARRIVAL);
    assert_int_equal(s->sort[1].criterion, IMAP_SORT_CC);
    assert_false(s->sort[1].reverse);
    assert_int_equal(s->sort[2].criterion, IMAP_SORT_DISPLAYFROM);
    assert_string_equal(s->charset, "US-ASCII");
    assert_int_equal(s->ret, IMAP_SEARCH_RET_COUNT);
    imap_command_free(&cmd);
}

/* ---- FETCH and STORE ---- */

static void test_fetch(void **state)
{
    (void)state;
    struct imap_command *cmd = must_parse("a FETCH 1:* ALL");
    assert_int_equal(cmd->args.fetch.n_items, 4);
    imap_command_free(&cmd);
    cmd = must_parse("a FETCH 1 full");
    assert_int_equal(cmd->args.fetch.n_items, 5);
    assert_int_equal(cmd->args.fetch.items[4].att, IMAP_FETCH_BODY);
    imap_command_free(&cmd);

    cmd = must_parse("a UID FETCH 1:5,9 (UID FLAGS BODY.PEEK[1.2.HEADER.FIELDS (from \"To\")]"
                     "<0.2048> BINARY[3]<10.5> BINARY.SIZE[2] BODY[] BODY[TEXT] BODY[2.MIME] "
                     "BODYSTRUCTURE RFC822.SIZE MODSEQ) (CHANGEDSINCE 12345 VANISHED)");
    const struct imap_args_fetch *f = &cmd->args.fetch;
    assert_int_equal(f->n_items, 11);
    const struct imap_fetch_item *it = &f->items[2];
    assert_int_equal(it->att, IMAP_FETCH_BODY_SECTION);
    assert_true(it->peek);
    assert_int_equal(it->section.n_parts, 2);
    assert_int_equal(it->section.parts[1], 2);
    assert_int_equal(it->section.text, IMAP_SECTION_HEADER_FIELDS);
    assert_int_equal(it->section.n_fields, 2);
    assert_string_equal(it->section.fields[0], "FROM");
    assert_string_equal(it->section.fields[1], "TO");
    assert_true(it->partial && it->offset == 0 && it->length == 2048);
    assert_int_equal(f->items[3].att, IMAP_FETCH_BINARY);
    assert_true(f->items[3].offset == 10 && f->items[3].length == 5);
    assert_int_equal(f->items[4].att, IMAP_FETCH_BINARY_SIZE);
    assert_int_equal(f->items[5].section.text, IMAP_SECTION_ALL);
    assert_int_equal(f->items[5].section.n_parts, 0);
    assert_false(f->items[5].peek);
    assert_int_equal(f->items[6].section.text, IMAP_SECTION_TEXT);
    assert_int_equal(f->items[7].section.text, IMAP_SECTION_MIME);
    assert_true(f->has_changedsince && f->changedsince == 12345 && f->vanished);
    imap_command_free(&cmd);

    static const struct {
        const char *line, *error;
    } bad[] = {
        {"a FETCH 1 BODY[MIME]", "Bad section"},
        {"a FETCH 1 BODY[1.]", "Bad section"},
        {"a FETCH 1 BODY[0]", "Expected a non-zero number"},
        {"a FETCH 1 BINARY[HEADER]", "Bad section"},
        {"a FETCH 1 BINARY[1.TEXT]", "BINARY takes part numbers only"},
        {"a FETCH 1 BODY[HEADER.FIELDS ()]", "Expected a string or atom"},
        {"a FETCH 1 BODY[HEADER.FIELDS (a:b)]", "Bad header name"},
        {"a FETCH 1 BODY[]<1.0>", "Expected a non-zero number"},
        {"a FETCH 1 BODY.PEEK", "Expected a section"},
        {"a FETCH 1 (FLAGS ALL)", "Unknown fetch attribute"},
        {"a FETCH 1 (FLAGS", "Missing argument"},
        {"a FETCH 1 FLAGS (VANISHED)", "VANISHED needs"},
        {"a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)", "VANISHED needs"},
        {"a FETCH 1 FLAGS (FOO)", "Unknown or repeated"},
        {"a FETCH 1:2: FLAGS", "Invalid sequence set"},
        {"a FETCH 4294967296 FLAGS", "Invalid sequence set"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char wire[256];
        const char *err;
        snprintf(wire, sizeof wire, "%s\r\n", bad[i].line);
        if (parse_wire(wire, &cmd, &err) == 0 ||
            strncmp(err, bad[i].error, strlen(bad[i].error)) != 0)
            fail_msg("'%s': %s", bad[i].line, err);
        imap_command_free(&cmd);
    }

    /* sections nested to the limit and one more */
    char line[512] = "a FETCH 1 BODY[1";
    for (int i = 1; i < IMAP_SECTION_PARTS_MAX; i++)
        strcat(line, ".1");
    strcat(line, "]");
    cmd = must_parse(line);
    imap_command_free(&cmd);
    strcpy(line + strlen(line) - 1, ".1]\r\n");
    const char *err;
    assert_int_equal(parse_wire(line, &cmd, &err), -1);
    imap_command_free(&cmd);
}

static void test_store(void **state)
{
    (void)state;
    struct imap_command *cmd = must_parse("a STORE 2:4 +FLAGS.SILENT (\\seen \\Flagged $Work)");
    const struct imap_args_store *s = &cmd->args.store;
    assert_int_equal(s->op, IMAP_STORE_ADD);
    assert_true(s->silent);
    assert_int_equal(s->n_flags, 3);
    assert_string_equal(s->flags[0], "\\Seen"); /* canonical spelling */
    assert_string_equal(s->flags[2], "$Work");
    imap_command_free(&cmd);

    cmd = must_parse("a UID STORE 7 (UNCHANGEDSINCE 320162338) -FLAGS \\Deleted \\Draft");
    s = &cmd->args.store;
    assert_true(cmd->uid);
    assert_true(s->has_unchangedsince && s->unchangedsince == 320162338);
    assert_int_equal(s->op, IMAP_STORE_REMOVE);
    assert_false(s->silent);
    assert_int_equal(s->n_flags, 2);
    imap_command_free(&cmd);

    cmd = must_parse("a STORE 1 FLAGS ()");
    assert_int_equal(cmd->args.store.op, IMAP_STORE_SET);
    assert_int_equal(cmd->args.store.n_flags, 0);
    imap_command_free(&cmd);

    cmd = must_parse("a COPY 1:3,5 \"Saved\"");
    assert_int_equal(cmd->args.copy.set.n, 2);
    assert_string_equal(cmd->args.copy.mailbox, "Saved");
    imap_command_free(&cmd);

    cmd = must_parse("a UID EXPUNGE 3:1");
    assert_int_equal(cmd->args.expunge.set.ranges[0].lo, 3);
    assert_int_equal(cmd->args.expunge.set.ranges[0].hi, 1);
    imap_command_free(&cmd);
}

/* ---- sequence sets ---- */

static void test_seqset(void **state)
{
    (void)state;
    struct imap_seqset set;
    const char *err;
    assert_int_equal(imap_seqset_parse("1,3:5,7:*", 9, false, &set, &err), 0);
    assert_int_equal(set.n, 3);
    assert_int_equal(set.ranges[2].hi, IMAP_SEQ_STAR);
    assert_true(imap_seqset_contains(&set, 1, 10));
    assert_false(imap_seqset_contains(&set, 2, 10));
    assert_true(imap_seqset_contains(&set, 4, 10));
    assert_false(imap_seqset_contains(&set, 6, 10));
    assert_true(imap_seqset_contains(&set, 10, 10));
    assert_true(imap_seqset_contains(&set, 7, 10));
    assert_true(imap_seqset_contains(&set, 5, 3)); /* 7:* with max 3 is 3:7 */
    assert_false(imap_seqset_contains(&set, 0, 10));
    imap_seqset_resolve(&set, 8);
    assert_true(set.resolved);
    assert_true(imap_seqset_contains(&set, 8, 0)); /* resolved: max no longer counts */
    assert_false(imap_seqset_contains(&set, 9, 100));
    assert_false(imap_seqset_contains(&set, 6, 100));
    assert_true(imap_seqset_contains(&set, 1, 100));
    imap_seqset_resolve(&set, 100); /* a second time changes nothing */
    assert_int_equal(set.ranges[set.n - 1].hi, 8);
    uint64_t cursor = 0;
    uint32_t v;
    char got[64] = "";
    while (imap_seqset_next(&set, &cursor, &v))
        snprintf(got + strlen(got), sizeof got - strlen(got), "%u,", v);
    assert_string_equal(got, "1,3,4,5,7,8,");
    sm_freep(&set.ranges);

    /* overlapping, reversed and adjacent ranges merge; '*' of an empty mailbox */
    assert_int_equal(imap_seqset_parse("9:7,1:2,3,*,5:6", 15, false, &set, &err), 0);
    imap_seqset_resolve(&set, 20);
    assert_int_equal(set.n, 3);
    assert_int_equal(set.ranges[0].lo, 1);
    assert_int_equal(set.ranges[0].hi, 3);
    assert_int_equal(set.ranges[1].lo, 5);
    assert_int_equal(set.ranges[1].hi, 9);
    assert_int_equal(set.ranges[2].lo, 20);
    sm_freep(&set.ranges);
    assert_int_equal(imap_seqset_parse("*", 1, false, &set, &err), 0);
    imap_seqset_resolve(&set, 0);
    assert_int_equal(set.n, 0);
    cursor = 0;
    assert_false(imap_seqset_next(&set, &cursor, &v));
    sm_freep(&set.ranges);
    assert_int_equal(imap_seqset_parse("4294967295", 10, false, &set, &err), 0);
    imap_seqset_resolve(&set, 4294967295u);
    cursor = 0;
    assert_true(imap_seqset_next(&set, &cursor, &v));
    assert_int_equal(v, 4294967295u);
    assert_false(imap_seqset_next(&set, &cursor, &v));
    sm_freep(&set.ranges);

    assert_int_equal(imap_seqset_parse("$", 1, true, &set, &err), 0);
    assert_true(set.saved);
    assert_false(imap_seqset_contains(&set, 1, 1));
    sm_freep(&set.ranges);

    static const char *const bad[] = {"", "0", "1,", ",1", "1::2", "1:0", "01", "$", "1,$",
                                      "4294967296", "a", "1:2:3", "**"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (imap_seqset_parse(bad[i], strlen(bad[i]), false, &set, &err) == 0)
            fail_msg("'%s' accepted", bad[i]);
        assert_null(set.ranges);
    }

    /* the range bound: 10,000 accepted, one more refused (in a command too) */
    static char text[IMAP_SEQ_RANGES_MAX * 2 + 16];
    size_t len = 0;
    for (int i = 0; i < IMAP_SEQ_RANGES_MAX; i++) {
        text[len++] = '1';
        text[len++] = ',';
    }
    assert_int_equal(imap_seqset_parse(text, len - 1, false, &set, &err), 0);
    assert_int_equal(set.n, IMAP_SEQ_RANGES_MAX);
    sm_freep(&set.ranges);
    text[len] = '1';
    assert_int_equal(imap_seqset_parse(text, len + 1, false, &set, &err), -1);
    assert_string_equal(err, "Too many ranges in sequence set");

    struct imap_raw *raw = imap_raw_from_line("a FETCH ", 8);
    struct imap_command *cmd;
    free(raw->data);
    raw->data = malloc(8 + len + 1 + 6 + 1);
    memcpy(raw->data, "a FETCH ", 8);
    memcpy(raw->data + 8, text, len + 1);
    memcpy(raw->data + 8 + len + 1, " FLAGS", 7);
    raw->len = 8 + len + 1 + 6;
    assert_int_equal(imap_parse(raw, &cmd, &err), -1);
    assert_string_equal(err, "Too many ranges in sequence set");
    imap_command_free(&cmd);
    imap_raw_free(&raw);
}

/* ---- dates ---- */

static void test_dates(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bool datetime;
        long long t; /* -1: refused */
    } cases[] = {
        {"1-Jan-1970", false, 0},
        {"01-jan-2024", false, 1704067200},
        {"29-Feb-2024", false, 1709164800},
        {"29-Feb-2023", false, -1},
        {"29-Feb-2000", false, 951782400},
        {"29-Feb-1900", false, -1},
        {"31-Dec-9999", false, 253402214400},
        {"1-Jan-1899", false, -1},
        {"0-Jan-2024", false, -1},
        {"32-Jan-2024", false, -1},
        {"1-Foo-2024", false, -1},
        {"1-Jan-24", false, -1},
        {" 1-Jan-2024", false, -1},
        {"001-Jan-2024", false, -1},
        {"01-Jan-2024 10:00:00 +0000", true, 1704103200},
        {" 1-Jan-2024 10:00:00 +0000", true, 1704103200},
        {"01-Jan-2024 10:00:00 -0130", true, 1704108600},
        {"01-Jan-2024 10:00:00 +1400", true, 1704052800},
        {"1-Jan-2024 10:00:00 +0000", true, -1},
        {"01-Jan-2024 24:00:00 +0000", true, -1},
        {"01-Jan-2024 10:60:00 +0000", true, -1},
        {"01-Jan-2024 10:00:00 0000", true, -1},
        {"01-Jan-2024 10:00:00 +0060", true, -1},
        {"01-Jan-2024 10:00 +0000", true, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        time_t t = 0;
        int r = cases[i].datetime ? imap_parse_datetime(cases[i].text, strlen(cases[i].text), &t)
                                  : imap_parse_date(cases[i].text, strlen(cases[i].text), &t);
        if (cases[i].t < 0 ? r == 0 : (r != 0 || (long long)t != cases[i].t))
            fail_msg("'%s': r=%d t=%lld", cases[i].text, r, (long long)t);
    }
}

/* ---- modified UTF-7 ---- */

static void test_mutf7(void **state)
{
    (void)state;
    static const struct {
        const char *utf8, *mutf7;
    } pairs[] = {
        {"INBOX", "INBOX"},
        {"", ""},
        {"a&b", "a&-b"},
        {"~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
         "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
        {"Entw\xc3\xbc" "rfe", "Entw&APw-rfe"},
        {"\xc3\xa4\xc3\xb6\xc3\xbc", "&AOQA9gD8-"},
        {"\xf0\x9f\x93\xa7 Mail", "&2D3c5w- Mail"},
        {"&&", "&-&-"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        struct sm_buf b;
        sm_buf_init(&b, 0);
        if (imap_mutf7_encode(pairs[i].utf8, strlen(pairs[i].utf8), &b) != 0 ||
            strcmp(sm_buf_str(&b), pairs[i].mutf7) != 0)
            fail_msg("encode '%s': '%s'", pairs[i].utf8, sm_buf_str(&b));
        sm_buf_reset(&b);
        if (imap_mutf7_decode(pairs[i].mutf7, strlen(pairs[i].mutf7), &b) != 0 ||
            strcmp(sm_buf_str(&b), pairs[i].utf8) != 0)
            fail_msg("decode '%s': '%s'", pairs[i].mutf7, sm_buf_str(&b));
        sm_buf_free(&b);
    }
    static const char *const bad[] = {
        "&", "&AOQ", "&AGE-",          /* unterminated; 'a' encoded */
        "&AOQ-&APY-",                  /* two shifts in a row */
        "&AOQx-",                      /* leftover bits */
        "&AO-",                        /* half a unit */
        "&2D0-",                       /* a lone high surrogate */
        "&3ADcAA-",                    /* low surrogates alone */
        "&AOQ*-",                      /* not base64 */
        "&AOQ=-",                      /* padding */
        "a\xc3\xa4",                   /* raw 8-bit */
        "tab\there",                   /* control */
        "&AAk-",                       /* an encoded control */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sm_buf b;
        sm_buf_init(&b, 0);
        if (imap_mutf7_decode(bad[i], strlen(bad[i]), &b) == 0)
            fail_msg("decode accepted '%s' as '%s'", bad[i], sm_buf_str(&b));
        sm_buf_free(&b);
    }
    static const char *const bad_utf8[] = {"\xc3", "\xc0\x80", "\xed\xa0\x80", "a\x01",
                                           "\xf4\x90\x80\x80"};
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        struct sm_buf b;
        sm_buf_init(&b, 0);
        assert_int_equal(imap_mutf7_encode(bad_utf8[i], strlen(bad_utf8[i]), &b), -1);
        assert_false(imap_utf8_valid(bad_utf8[i], strlen(bad_utf8[i])));
        sm_buf_free(&b);
    }
    assert_true(imap_utf8_valid("Entw\xc3\xbc" "rfe", 9));
    /* the output limit is honoured */
    struct sm_buf b;
    sm_buf_init(&b, 4);
    assert_int_equal(imap_mutf7_encode("\xc3\xa4\xc3\xb6", 4, &b), -1);
    sm_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_login_and_auth),
        cmocka_unit_test(test_literal_strings),
        cmocka_unit_test(test_mailbox_commands),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_append),
        cmocka_unit_test(test_external_literal),
        cmocka_unit_test(test_reader),
        cmocka_unit_test(test_reader_state),
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_fetch),
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_seqset),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_mutf7),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
