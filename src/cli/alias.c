/* alias.c — `sealmail alias add|remove|list`: addresses that deliver to
 * mailboxes, and the catch-all of a domain ("@domain").
 *
 * An alias never holds mail or keys of its own: delivery resolves it to
 * its target mailboxes (directory_resolve) and seals a copy to each. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "store/directory.h"

static int alias_usage(FILE *out, int status)
{
    fprintf(out, "usage: sealmail [--config FILE] alias add SOURCE TARGET\n"
                 "       sealmail [--config FILE] alias remove SOURCE [TARGET]\n"
                 "       sealmail [--config FILE] alias list\n"
                 "\n"
                 "SOURCE is an address in a hosted domain that is not a mailbox, or @DOMAIN\n"
                 "for the domain's catch-all (mail for any unknown address of DOMAIN).\n"
                 "TARGET is an existing mailbox; a source may have several targets.\n"
                 "Without TARGET, remove drops every target of SOURCE.\n"
                 "Mail for me+tag@DOMAIN reaches me@DOMAIN (mailbox or alias) unless a\n"
                 "catch-all is the only match.\n");
    return status;
}

static void print_alias(void *arg, const char *source, const char *target)
{
    (void)arg;
    printf("%s -> %s\n", source, target);
}

static int alias_run(struct directory *dir, int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "list") == 0)
        return directory_alias_list(dir, print_alias, NULL) < 0 ? -1 : 0;
    if (argc == 4 && strcmp(argv[1], "add") == 0) {
        if (directory_alias_add(dir, argv[2], argv[3]) < 0)
            return -1;
        printf("added %s -> %s\n", argv[2], argv[3]);
        return 0;
    }
    if ((argc == 3 || argc == 4) && strcmp(argv[1], "remove") == 0) {
        if (directory_alias_remove(dir, argv[2], argc == 4 ? argv[3] : NULL) < 0)
            return -1;
        printf("removed %s%s%s\n", argv[2], argc == 4 ? " -> " : "", argc == 4 ? argv[3] : "");
        return 0;
    }
    return 2;
}

int cli_alias(int argc, char **argv, const struct cli_ctx *ctx)
{
    const char *error;
    if (cli_wants_help(argc, argv))
        return alias_usage(stdout, 0);
    if (argc < 2)
        return alias_usage(stderr, 2);
    struct directory *dir = directory_open(ctx->cfg->data_dir, false, &error);
    if (dir == NULL) {
        fprintf(stderr, "sealmail alias: %s\n", error);
        return 1;
    }
    int r = alias_run(dir, argc, argv);
    if (r < 0)
        fprintf(stderr, "sealmail alias: %s\n", directory_error(dir));
    directory_close(&dir);
    if (r == 2)
        return alias_usage(stderr, 2);
    return r < 0 || fflush(stdout) != 0 ? 1 : 0;
}
