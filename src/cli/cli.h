/* cli.h — the `sealmail` subcommands, one file per family.
 *
 * Each family exports one function taking the arguments after the family
 * name (argv[0] is the family, e.g. "queue") and the loaded configuration.
 * It prints results on stdout, errors on stderr ("sealmail queue: ..."),
 * answers --help/-h with its usage on stdout, and returns the exit status:
 * 0 success, 1 failure, 2 usage error. */
#ifndef SM_CLI_H
#define SM_CLI_H

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

/* True when argv[1..argc-1] contains -h or --help. */
int cli_wants_help(int argc, char **argv);

#endif
