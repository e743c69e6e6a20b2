/* init.c — `sealmail init`: create the data directory and server keys. */
#include <stdio.h>

#include "cli/cli.h"
#include "daemon/datadir.h"

int cli_init(int argc, char **argv, const struct cli_ctx *ctx)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: sealmail [--config FILE] init\n\n"
               "Create the data directory ([server] data_dir), the spool key pair\n"
               "(keys/spool.pub, keys/spool.key) and, unless [tls] cert exists, a\n"
               "self-signed certificate for [server] hostname.  Never overwrites\n"
               "anything; safe to run again.\n");
        return 0;
    }
    if (argc != 1) {
        fprintf(stderr, "sealmail init: takes no arguments (see --help)\n");
        return 2;
    }
    char err[512];
    if (datadir_init(ctx->cfg, true, err, sizeof err) < 0) {
        fprintf(stderr, "sealmail init: %s\n", err);
        return 1;
    }
    printf("data directory %s is ready\n", ctx->cfg->data_dir);
    return 0;
}
