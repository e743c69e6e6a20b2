/* serve.c — `sealmail serve`: run the master in the foreground. */
#include <stdio.h>

#include "cli/cli.h"
#include "core/log.h"
#include "daemon/master.h"

int cli_serve(int argc, char **argv, const struct cli_ctx *ctx)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: sealmail [--config FILE] serve\n\n"
               "Run the mail server in the foreground (for systemd or a terminal).\n"
               "Initialises an empty data directory first.  Signals: SIGHUP reloads the\n"
               "configuration and certificates, SIGTERM/SIGINT stop after running\n"
               "transactions finish ([server] shutdown_grace).\n");
        return 0;
    }
    if (argc != 1) {
        fprintf(stderr, "sealmail serve: takes no arguments (see --help)\n");
        return 2;
    }
    enum log_level level = LOG_LEVEL_INFO;
    log_level_parse(ctx->cfg->log_level, &level);
    log_init("master", ctx->cfg->log_syslog, level);
    return master_main(ctx->cfg, ctx->config_path);
}
