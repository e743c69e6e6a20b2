/* domain.c — `sealmail domain add|list|remove`: the hosted domains.
 *
 * Mail is accepted only for hosted domains (no open relay).  The command
 * opens the existing directory database and never creates it: `sealmail
 * init` does that and gives it to the service user, which a database
 * created here by root would not be.  A running smtpd notices changes by
 * polling directory_version(), so no reload is needed.  Names are printed
 * in their stored form (lowercase, no trailing dot). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "store/directory.h"
#include "store/forwards.h"

enum domain_op { OP_NONE, OP_ADD, OP_LIST, OP_REMOVE, OP_FORWARDING };

static int domain_usage(FILE *out, int status)
{
    fprintf(out, "usage: sealmail [--config FILE] domain add NAME\n"
                 "       sealmail [--config FILE] domain remove NAME\n"
                 "       sealmail [--config FILE] domain list\n"
                 "       sealmail [--config FILE] domain forwarding NAME on|off\n"
                 "\n"
                 "Mail is accepted only for hosted domains; any other recipient domain is\n"
                 "refused at RCPT (no open relay).  Names are ASCII letters, digits and\n"
                 "hyphens in dot-separated labels (use the A-label form, xn--..., for\n"
                 "internationalised names); they are stored in lowercase.\n"
                 "forwarding off keeps the domain's forwards (alias add --to) but refuses\n"
                 "mail for addresses that only forward (550 5.2.1) until it is on again.\n"
                 "Changes reach a running server within a second.\n");
    return status;
}

static void print_domain(void *arg, const char *domain)
{
    (void)arg;
    printf("%s\n", domain);
}

static enum domain_op parse_op(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "list") == 0)
        return OP_LIST;
    if (argc == 3 && strcmp(argv[1], "add") == 0)
        return OP_ADD;
    if (argc == 3 && strcmp(argv[1], "remove") == 0)
        return OP_REMOVE;
    if (argc == 4 && strcmp(argv[1], "forwarding") == 0 &&
        (strcmp(argv[3], "on") == 0 || strcmp(argv[3], "off") == 0))
        return OP_FORWARDING;
    return OP_NONE;
}

static int run_op(struct directory *dir, enum domain_op op, const char *arg, const char *arg2)
{
    char name[DIRECTORY_DOMAIN_MAX + 1];
    const char *why;

    if (op == OP_LIST)
        return directory_domain_list(dir, print_domain, NULL) < 0 ? -1 : 0;
    if (op == OP_FORWARDING) {
        bool on = strcmp(arg2, "on") == 0;
        if (directory_domain_set_forwarding(dir, arg, on) < 0)
            return -1;
        printf("forwarding %s for %s\n", on ? "on" : "off", arg);
        return 0;
    }
    int r = op == OP_ADD ? directory_domain_add(dir, arg) : directory_domain_remove(dir, arg);
    if (r == 0 && directory_domain_normalise(arg, name, &why) == 0)
        printf("%s %s\n", op == OP_ADD ? "added" : "removed", name);
    return r;
}

int cli_domain(int argc, char **argv, const struct cli_ctx *ctx)
{
    const char *error;

    if (cli_wants_help(argc, argv))
        return domain_usage(stdout, 0);
    enum domain_op op = parse_op(argc, argv);
    if (op == OP_NONE)
        return domain_usage(stderr, 2);
    struct directory *dir = directory_open(ctx->cfg->data_dir, false, &error);
    if (dir == NULL) {
        fprintf(stderr, "sealmail domain: %s\n", error);
        return 1;
    }
    int r = run_op(dir, op, op == OP_LIST ? NULL : argv[2], op == OP_FORWARDING ? argv[3] : NULL);
    if (r < 0)
        fprintf(stderr, "sealmail domain: %s\n", directory_error(dir));
    directory_close(&dir);
    if (fflush(stdout) != 0) {
        perror("sealmail domain: stdout");
        return 1;
    }
    return r < 0 ? 1 : 0;
}
