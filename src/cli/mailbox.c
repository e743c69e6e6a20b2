/* mailbox.c — `sealmail mailbox ...`: the owner's view of a mailbox.
 *
 * Each subcommand asks the owner's password, unlocks the mailbox (the
 * server cannot do it alone), imports what waits in its drop/ exactly as
 * a login will, then checks, lists, searches or prints.  The usage the
 * quota is enforced against is recounted from the store on the way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "crypto/seal.h"
#include "mime/mime.h"
#include "store/account.h"
#include "store/directory.h"
#include "store/mailbox.h"

static int cli_mailbox_usage(FILE *out, int status)
{
    fprintf(out,
            "usage: sealmail [--config FILE] mailbox verify ADDRESS [--deep] [--password-stdin]\n"
            "       sealmail [--config FILE] mailbox list ADDRESS [FOLDER] [--password-stdin]\n"
            "       sealmail [--config FILE] mailbox show ADDRESS UID [FOLDER] [--password-stdin]\n"
            "       sealmail [--config FILE] mailbox search ADDRESS QUERY [--password-stdin]\n"
            "\n"
            "Every subcommand asks the mailbox password (or an app password) and first\n"
            "imports the mail waiting in the mailbox, as a login does.\n"
            "verify  check the encrypted store (SQLite integrity check), count folders and\n"
            "        messages; --deep also opens and authenticates every message file\n"
            "list    UID, arrival time, size, sender and subject of each message (INBOX)\n"
            "show    the message with that UID, as received\n"
            "search  UIDs in INBOX whose headers or text match QUERY (FTS5 syntax)\n");
    return status;
}

struct open_mailbox {
    struct directory *dir;
    struct account acct;
    struct mailbox *mb;
};

static int open_mailbox(const struct cli_ctx *ctx, const char *address, bool from_stdin,
                        struct open_mailbox *o)
{
    struct keywrap_params params = {ctx->cfg->mailbox_argon2_ops,
                                    (unsigned)(ctx->cfg->mailbox_argon2_memory / 1024)};
    struct mailbox_import_stats st;
    char mdir[4096];
    const char *error;

    memset(o, 0, sizeof *o);
    if ((o->dir = directory_open(ctx->cfg->data_dir, false, &error)) == NULL)
        goto fail;
    char *pw = cli_read_secret("Password: ", from_stdin);
    if (pw == NULL) {
        error = "no password given";
        goto fail;
    }
    int r = account_unlock(o->dir, address, pw, strlen(pw), &params, &o->acct, &error);
    seal_secret_free(&pw);
    if (r != KEYWRAP_OK ||
        account_mailbox_dir(mdir, sizeof mdir, ctx->cfg->data_dir, o->acct.user.mailbox) < 0)
        goto fail;
    o->mb = mailbox_open(mdir, o->acct.mk, o->acct.user.public_key, o->acct.sk, &error);
    if (o->mb == NULL || mailbox_import(o->mb, &st, &error) < 0)
        goto fail;
    if (st.imported > 0 || st.refused > 0)
        fprintf(stderr, "imported %u new message%s%s\n", st.imported, st.imported == 1 ? "" : "s",
                st.refused > 0 ? " (some files were damaged and left in drop/)" : "");
    uint64_t used;
    if (mailbox_usage(o->mb, &used, &error) == 0)
        directory_user_usage(o->dir, o->acct.user.mailbox, (int64_t)used, true);
    return 0;
fail:
    fprintf(stderr, "sealmail mailbox: %s\n", error);
    return -1;
}

static void close_mailbox(struct open_mailbox *o)
{
    mailbox_close(&o->mb);
    account_free(&o->acct);
    directory_close(&o->dir);
}

static int do_verify(struct open_mailbox *o, bool deep)
{
    struct mailbox_check c;
    const char *error;
    if (mailbox_verify(o->mb, deep, &c, &error) < 0) {
        fprintf(stderr, "sealmail mailbox: %s\n", error);
        return -1;
    }
    printf("integrity: %s\nfolders: %u\nmessages: %llu\nbytes: %llu\npending: %u\n",
           c.integrity, c.folders, (unsigned long long)c.messages, (unsigned long long)c.bytes,
           c.pending);
    if (deep)
        printf("bodies checked: %u, damaged: %u\n", c.bodies_checked, c.bodies_bad);
    return c.integrity_ok && c.bodies_bad == 0 ? 0 : -1;
}

/* Print a stored text field on one line, control characters as '?'. */
static void put_field(const char *s, size_t max)
{
    for (size_t i = 0; s[i] != '\0' && i < max; i++)
        putchar((unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i]);
}

static void print_message(void *arg, const struct mailbox_message *m)
{
    (void)arg;
    char when[32];
    time_t t = (time_t)m->internaldate;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", gmtime(&t));
    printf("%u\t%s\t%llu\t", m->uid, when, (unsigned long long)m->size);
    put_field(m->from, 80);
    putchar('\t');
    put_field(m->subject, 200);
    putchar('\n');
}

struct find_uid {
    uint32_t uid;
    char file[64];
};

static void match_uid(void *arg, const struct mailbox_message *m)
{
    struct find_uid *f = arg;
    if (m->uid == f->uid)
        snprintf(f->file, sizeof f->file, "%s", m->file);
}

static int do_show(struct open_mailbox *o, const char *uid_text, const char *folder)
{
    struct find_uid f = {0};
    const char *error;
    char *end;
    unsigned long uid = strtoul(uid_text, &end, 10);
    if (*end != '\0' || uid == 0 || uid > UINT32_MAX) {
        fprintf(stderr, "sealmail mailbox: invalid UID '%s'\n", uid_text);
        return -1;
    }
    f.uid = (uint32_t)uid;
    if (mailbox_messages(o->mb, folder, match_uid, &f, &error) < 0 || f.file[0] == '\0') {
        fprintf(stderr, "sealmail mailbox: %s\n", f.file[0] ? error : "no message with that UID");
        return -1;
    }
    fflush(stdout);
    if (mailbox_read_body(o->mb, f.file, STDOUT_FILENO, &error) < 0) {
        fprintf(stderr, "sealmail mailbox: %s\n", error);
        return -1;
    }
    return 0;
}

static void print_uid(void *arg, uint32_t uid)
{
    (void)arg;
    printf("%u\n", uid);
}

static int do_op(struct open_mailbox *o, int argc, char **argv, bool deep)
{
    const char *op = argv[1], *error;
    int r = 0;
    if (strcmp(op, "verify") == 0)
        return do_verify(o, deep);
    if (strcmp(op, "show") == 0)
        return do_show(o, argv[3], argc == 5 ? argv[4] : "INBOX");
    if (strcmp(op, "list") == 0)
        r = mailbox_messages(o->mb, argc == 4 ? argv[3] : "INBOX", print_message, NULL, &error);
    else
        r = mailbox_search_text(o->mb, "INBOX", argv[3], print_uid, NULL, &error);
    if (r < 0)
        fprintf(stderr, "sealmail mailbox: %s\n", error);
    return r < 0 ? -1 : 0;
}

static bool args_ok(int argc, char **argv)
{
    if (argc < 3)
        return false;
    const char *op = argv[1];
    return (strcmp(op, "verify") == 0 && argc == 3) ||
           (strcmp(op, "list") == 0 && (argc == 3 || argc == 4)) ||
           (strcmp(op, "show") == 0 && (argc == 4 || argc == 5)) ||
           (strcmp(op, "search") == 0 && argc == 4);
}

int cli_mailbox(int argc, char **argv, const struct cli_ctx *ctx)
{
    struct open_mailbox o;
    if (cli_wants_help(argc, argv))
        return cli_mailbox_usage(stdout, 0);
    bool from_stdin = cli_find_flag(&argc, argv, "--password-stdin");
    bool deep = cli_find_flag(&argc, argv, "--deep");
    if (!args_ok(argc, argv) || (deep && strcmp(argv[1], "verify") != 0))
        return cli_mailbox_usage(stderr, 2);
    if (seal_init() < 0 || mime_init() < 0) {
        fprintf(stderr, "sealmail mailbox: libsodium or GMime cannot be initialised\n");
        return 1;
    }
    cli_drop_privileges(ctx);
    int r = open_mailbox(ctx, argv[2], from_stdin, &o);
    if (r == 0)
        r = do_op(&o, argc, argv, deep);
    close_mailbox(&o);
    mime_shutdown();
    if (fflush(stdout) != 0)
        r = -1;
    cli_before_exit();
    return r < 0 ? 1 : 0;
}
