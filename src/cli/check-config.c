/* check-config.c — `sealmail check-config`: validate and print. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cli_check_config(int argc, char **argv, const struct cli_ctx *ctx)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: sealmail [--config FILE] check-config [--print | --sample]\n\n"
               "Read the configuration and report the file, line and key of the first\n"
               "error (exit 1).  --print shows the effective configuration, --sample\n"
               "prints a commented file with every option and its default.\n");
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--sample") == 0) {
        config_print_sample(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--print") == 0) {
        config_print(ctx->cfg, stdout);
        return 0;
    }
    if (argc != 1) {
        fprintf(stderr, "sealmail check-config: unknown argument (see --help)\n");
        return 2;
    }
    /* loading already succeeded, or main() would have reported the error */
    printf("%s: ok\n", ctx->config_path ? ctx->config_path : "embedded default configuration");
    return 0;
}
