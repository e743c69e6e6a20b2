/* user.c — `sealmail user ...`: mailbox accounts.
 *
 * Every subcommand that creates or opens a mailbox first becomes the
 * service user (files stay usable by the daemons; the process holding a
 * password is not dumpable).  Passwords are read from the terminal with
 * echo off, or one per line from standard input with --password-stdin
 * (for scripts; never on the command line, where `ps` would show them).
 * The recovery key is printed once, at creation and after a recovery:
 * the server keeps no way to show it again. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/config.h"
#include "crypto/seal.h"
#include "store/account.h"
#include "store/directory.h"

static int user_usage(FILE *out, int status)
{
    fprintf(out,
            "usage: sealmail [--config FILE] user add ADDRESS [--quota SIZE] [--password-stdin]\n"
            "       sealmail [--config FILE] user passwd ADDRESS [--password-stdin]\n"
            "       sealmail [--config FILE] user recover ADDRESS [--password-stdin]\n"
            "       sealmail [--config FILE] user app-password ADDRESS LABEL [--password-stdin]\n"
            "       sealmail [--config FILE] user app-password-remove ADDRESS LABEL\n"
            "       sealmail [--config FILE] user quota ADDRESS SIZE\n"
            "       sealmail [--config FILE] user remove ADDRESS\n"
            "       sealmail [--config FILE] user list\n"
            "\n"
            "add           create a mailbox: its encrypted store, its keys, and a recovery key\n"
            "              that is printed once (keep it offline: it replaces a lost password)\n"
            "passwd        change the password (asks the old one); the store is not re-encrypted\n"
            "recover       set a new password with the recovery key; prints a new recovery key\n"
            "app-password  create a random extra password named LABEL (asks the password;\n"
            "              at most 8 per mailbox, the same LABEL replaces the old one)\n"
            "app-password-remove  that password stops working at once\n"
            "quota         set the quota (e.g. 2G; 0: none); over it, senders get 452 at RCPT\n"
            "remove        destroy the mailbox's keys, then its files (cannot be undone)\n"
            "list          addresses, quota, usage (as counted at delivery)\n"
            "\n"
            "With --password-stdin, secrets are read one per line from standard input in the\n"
            "order they would be asked (passwd: old, new; recover: recovery key, new).\n");
    return status;
}

struct user_cmd {
    const struct cli_ctx *ctx;
    struct directory *dir;
    struct keywrap_params params;
    bool from_stdin;
};

static void print_recovery(const char *text)
{
    printf("recovery key (shown once; store it offline):\n  %s\n", text);
}

static int user_add(struct user_cmd *c, const char *address, const char *quota_text)
{
    char *recovery = seal_secret_alloc(KEYWRAP_RECOVERY_TEXT_MAX);
    uint64_t quota = c->ctx->cfg->mailbox_default_quota;
    const char *error;
    int ret = -1;

    if (quota_text != NULL && config_parse_size(quota_text, &quota) < 0) {
        fprintf(stderr, "sealmail user: invalid quota '%s' (e.g. 500M, 2G, 0)\n", quota_text);
        seal_secret_free(&recovery);
        return -1;
    }
    char *pw = cli_new_password(c->from_stdin);
    if (pw == NULL)
        fprintf(stderr, "sealmail user: no password given\n");
    else if (account_create(c->dir, c->ctx->cfg->data_dir, address, pw, strlen(pw), &c->params,
                            quota, recovery, &error) < 0)
        fprintf(stderr, "sealmail user: %s\n", error);
    else {
        printf("created mailbox %s\n", address);
        print_recovery(recovery);
        ret = 0;
    }
    seal_secret_free(&pw);
    seal_secret_free(&recovery);
    return ret;
}

/* Ask the current password and unlock; prints the reason on failure. */
static int unlock(struct user_cmd *c, const char *address, struct account *acct)
{
    const char *error;
    char *pw = cli_read_secret("Password: ", c->from_stdin);
    if (pw == NULL) {
        fprintf(stderr, "sealmail user: no password given\n");
        return -1;
    }
    int r = account_unlock(c->dir, address, pw, strlen(pw), &c->params, acct, &error);
    seal_secret_free(&pw);
    if (r != KEYWRAP_OK)
        fprintf(stderr, "sealmail user: %s\n", error);
    return r == KEYWRAP_OK ? 0 : -1;
}

/* Set a new password on an unlocked account. */
static int set_password(struct user_cmd *c, struct account *acct)
{
    const char *error;
    char *pw = cli_new_password(c->from_stdin);
    int r = pw == NULL ? -1
                       : account_set_password(c->dir, acct, pw, strlen(pw), &c->params, &error);
    if (pw == NULL)
        fprintf(stderr, "sealmail user: no new password given\n");
    else if (r < 0)
        fprintf(stderr, "sealmail user: %s\n", error);
    seal_secret_free(&pw);
    return r;
}

static int user_passwd(struct user_cmd *c, const char *address)
{
    struct account acct;
    if (unlock(c, address, &acct) < 0)
        return -1;
    int r = set_password(c, &acct);
    if (r == 0)
        printf("password changed for %s\n", acct.user.address);
    account_free(&acct);
    return r;
}

static int user_recover(struct user_cmd *c, const char *address)
{
    struct account acct;
    const char *error;
    char *text = cli_read_secret("Recovery key: ", c->from_stdin);
    if (text == NULL) {
        fprintf(stderr, "sealmail user: no recovery key given\n");
        return -1;
    }
    int r = account_unlock_recovery(c->dir, address, text, &acct, &error);
    seal_secret_free(&text);
    if (r != KEYWRAP_OK) {
        fprintf(stderr, "sealmail user: %s\n", error);
        return -1;
    }
    char *fresh = seal_secret_alloc(KEYWRAP_RECOVERY_TEXT_MAX);
    r = set_password(c, &acct);
    if (r == 0 && (r = account_new_recovery(c->dir, &acct, fresh, &error)) < 0)
        fprintf(stderr, "sealmail user: %s\n", error);
    if (r == 0) {
        printf("password set for %s; the old recovery key no longer works\n",
               acct.user.address);
        print_recovery(fresh);
    }
    seal_secret_free(&fresh);
    account_free(&acct);
    return r;
}

static int user_app_password(struct user_cmd *c, const char *address, const char *label)
{
    struct account acct;
    const char *error;
    if (unlock(c, address, &acct) < 0)
        return -1;
    char *pw = seal_secret_alloc(ACCOUNT_APP_PASSWORD_LEN + 1);
    int r = account_app_password_add(c->dir, &acct, label, &c->params, pw, &error);
    if (r < 0)
        fprintf(stderr, "sealmail user: %s\n", error);
    else
        printf("app password '%s' for %s (shown once):\n  %s\n", label, acct.user.address, pw);
    seal_secret_free(&pw);
    account_free(&acct);
    return r;
}

static int user_app_password_remove(struct user_cmd *c, const char *address, const char *label)
{
    struct directory_user u;
    if (directory_user_get(c->dir, address, &u) <= 0 ||
        directory_user_remove_wrap(c->dir, u.id, DIRECTORY_WRAP_APP_PASSWORD, label) < 0) {
        fprintf(stderr, "sealmail user: %s\n", directory_error(c->dir));
        return -1;
    }
    printf("app password '%s' of %s removed\n", label, u.address);
    return 0;
}

static int user_quota(struct user_cmd *c, const char *address, const char *text)
{
    struct directory_user u;
    uint64_t quota;
    if (config_parse_size(text, &quota) < 0) {
        fprintf(stderr, "sealmail user: invalid quota '%s' (e.g. 500M, 2G, 0)\n", text);
        return -1;
    }
    if (directory_user_get(c->dir, address, &u) <= 0 ||
        directory_user_set_quota(c->dir, u.id, quota) < 0) {
        fprintf(stderr, "sealmail user: %s\n", directory_error(c->dir));
        return -1;
    }
    printf("quota of %s: %llu bytes%s\n", u.address, (unsigned long long)quota,
           quota == 0 ? " (no limit)" : "");
    return 0;
}

static int user_remove(struct user_cmd *c, const char *address)
{
    const char *error;
    if (account_remove(c->dir, c->ctx->cfg->data_dir, address, &error) < 0) {
        fprintf(stderr, "sealmail user: %s\n", error);
        return -1;
    }
    printf("removed %s: keys destroyed, files deleted\n", address);
    return 0;
}

static void print_user(void *arg, const struct directory_user *u)
{
    (void)arg;
    printf("%-40s quota=%llu used=%llu mailbox=%s\n", u->address,
           (unsigned long long)u->quota_bytes, (unsigned long long)u->used_bytes, u->mailbox);
}

static int user_run(struct user_cmd *c, int argc, char **argv)
{
    const char *op = argv[1];
    if (strcmp(op, "list") == 0 && argc == 2)
        return directory_user_list(c->dir, print_user, NULL) < 0 ? -1 : 0;
    if (argc == 3 && strcmp(op, "passwd") == 0)
        return user_passwd(c, argv[2]);
    if (argc == 3 && strcmp(op, "recover") == 0)
        return user_recover(c, argv[2]);
    if (argc == 3 && strcmp(op, "remove") == 0)
        return user_remove(c, argv[2]);
    if (argc == 4 && strcmp(op, "quota") == 0)
        return user_quota(c, argv[2], argv[3]);
    if (argc == 4 && strcmp(op, "app-password") == 0)
        return user_app_password(c, argv[2], argv[3]);
    if (argc == 4 && strcmp(op, "app-password-remove") == 0)
        return user_app_password_remove(c, argv[2], argv[3]);
    return 2;
}

int cli_user(int argc, char **argv, const struct cli_ctx *ctx)
{
    const char *error;
    if (cli_wants_help(argc, argv))
        return user_usage(stdout, 0);
    struct user_cmd c = {.ctx = ctx,
                         .params = {ctx->cfg->mailbox_argon2_ops,
                                    (unsigned)(ctx->cfg->mailbox_argon2_memory / 1024)}};
    c.from_stdin = cli_find_flag(&argc, argv, "--password-stdin");
    const char *quota = cli_take_option(&argc, argv, "--quota");
    bool add = argc == 3 && strcmp(argv[1], "add") == 0;
    if (argc < 2 || (quota != NULL && !add))
        return user_usage(stderr, 2);
    error = "libsodium cannot be initialised";
    if (seal_init() < 0 || keywrap_params_check(&c.params, &error) < 0) {
        fprintf(stderr, "sealmail user: [mailbox] argon2: %s\n", error);
        return 1;
    }
    cli_drop_privileges(ctx);
    if ((c.dir = directory_open(ctx->cfg->data_dir, false, &error)) == NULL) {
        fprintf(stderr, "sealmail user: %s\n", error);
        cli_before_exit();
        return 1;
    }
    int r = add ? user_add(&c, argv[2], quota) : user_run(&c, argc, argv);
    directory_close(&c.dir);
    if (fflush(stdout) != 0)
        r = -1;
    cli_before_exit();
    if (r == 2)
        return user_usage(stderr, 2);
    return r < 0 ? 1 : 0;
}
