/* domain.c — `sealmail domain add|list|remove`: the hosted domains.
 * A running smtpd notices changes within a second (it polls the
 * directory's version), so no reload is needed. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "store/directory.h"

static void print_domain(void *arg, const char *domain)
{
    (void)arg;
    printf("%s\n", domain);
}

static int domain_usage(FILE *out, int status)
{
    fprintf(out, "usage: sealmail [--config FILE] domain add NAME\n"
                 "       sealmail [--config FILE] domain remove NAME\n"
                 "       sealmail [--config FILE] domain list\n\n"
                 "Mail is accepted only for hosted domains; any other recipient domain is\n"
                 "refused at RCPT with 550 5.7.1 (no open relay).  Names are stored in\n"
                 "lowercase ASCII (use the A-label form, xn--..., for internationalised names).\n");
    return status;
}

int cli_domain(int argc, char **argv, const struct cli_ctx *ctx)
{
    if (cli_wants_help(argc, argv))
        return domain_usage(stdout, 0);
    bool list = argc == 2 && strcmp(argv[1], "list") == 0;
    bool add = argc == 3 && strcmp(argv[1], "add") == 0;
    bool remove = argc == 3 && strcmp(argv[1], "remove") == 0;
    if (!list && !add && !remove)
        return domain_usage(stderr, 2);
    const char *error;
    struct directory *dir = directory_open(ctx->cfg->data_dir, add, &error);
    if (dir == NULL) {
        fprintf(stderr, "sealmail domain: %s\n", error);
        return 1;
    }
    int r = list ? directory_domain_list(dir, print_domain, NULL)
          : add  ? directory_domain_add(dir, argv[2])
                 : directory_domain_remove(dir, argv[2]);
    if (r < 0)
        fprintf(stderr, "sealmail domain: %s\n", directory_error(dir));
    else if (!list)
        printf("%s %s\n", add ? "added" : "removed", argv[2]);
    directory_close(&dir);
    return r < 0 ? 1 : 0;
}
