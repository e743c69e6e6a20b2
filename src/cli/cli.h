/* cli.h — the `sealmail` subcommands, one file per family.
 *
 * Each family exports one function taking the arguments after the family
 * name (argv[0] is the family, e.g. "queue") and the loaded configuration.
 * It prints results on stdout, errors on stderr ("sealmail queue: ..."),
 * answers --help/-h with its usage on stdout, and returns the exit status:
 * 0 success, 1 failure, 2 usage error. */
#ifndef SM_CLI_H
#define SM_CLI_H

#include <stdbool.h>

#include "core/config.h"

/* Shared by all subcommands: the configuration as loaded from --config (or
 * the embedded default) and finished (paths resolved). */
struct cli_ctx {
    struct sm_config *cfg;
    const char *config_path; /* NULL when running on the embedded default */
};

int cli_init(int argc, char **argv, const struct cli_ctx *ctx);      /* cli/init.c */
int cli_serve(int argc, char **argv, const struct cli_ctx *ctx);     /* cli/serve.c */
int cli_check_config(int argc, char **argv, const struct cli_ctx *ctx); /* cli/check-config.c */
int cli_domain(int argc, char **argv, const struct cli_ctx *ctx);    /* cli/domain.c */
int cli_queue(int argc, char **argv, const struct cli_ctx *ctx);     /* cli/queue.c */

int cli_user(int argc, char **argv, const struct cli_ctx *ctx);      /* cli/user.c */
int cli_alias(int argc, char **argv, const struct cli_ctx *ctx);     /* cli/alias.c */
int cli_mailbox(int argc, char **argv, const struct cli_ctx *ctx);   /* cli/mailbox.c */

/* True when argv[1..argc-1] contains -h or --help. */
int cli_wants_help(int argc, char **argv);

#define CLI_SECRET_MAX 1024 /* bytes of a password typed or piped in */

/* Read a secret: from the terminal with echo off (prompt shown there), or
 * one line of standard input when from_stdin.  Returns it NUL-terminated
 * in secret memory (free with seal_secret_free), or NULL (no input, empty,
 * longer than CLI_SECRET_MAX). */
char *cli_read_secret(const char *prompt, bool from_stdin);
/* A new password: asked twice on the terminal (NULL if they differ), or
 * one line of standard input. */
char *cli_new_password(bool from_stdin);
/* Remove flag from argv if present; 1 if it was there. */
int cli_find_flag(int *argc, char **argv, const char *flag);
/* Remove "flag VALUE" from argv if present and return VALUE, else NULL. */
const char *cli_take_option(int *argc, char **argv, const char *flag);
/* As root, become the service user ([server] user) for good: commands
 * that create or open mailboxes leave files the daemons can use, and hold
 * passwords in a process that is not dumpable. */
void cli_drop_privileges(const struct cli_ctx *ctx);
/* Undo what LeakSanitizer needs undone (sanitizer builds only). */
void cli_before_exit(void);

/* DKIM keys and the DNS records of a hosted domain (issue #5). */
int cli_dkim(int argc, char **argv, const struct cli_ctx *ctx);      /* cli/dkim.c */
int cli_dns(int argc, char **argv, const struct cli_ctx *ctx);       /* cli/dns.c */
struct directory;
/* Print every DKIM key of domain (a comment line, then its TXT record);
 * returns how many, or -1 with directory_error(). */
int cli_dkim_records(struct directory *dir, const char *domain);     /* cli/dkim.c */
/* Print "OWNER TTL IN TXT ..." in zone-file syntax on stdout, the value
 * split into character-strings of at most 255 bytes. */
void cli_print_txt(const char *owner, const char *value);            /* cli/dns.c */

#endif
