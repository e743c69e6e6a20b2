/* util.c — small helpers shared by the subcommands. */
#include <string.h>

#include "cli/cli.h"

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}
