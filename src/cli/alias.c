/* alias.c — `sealmail alias ...`: addresses that deliver to mailboxes here
 * or forward to other servers, the catch-all of a domain ("@domain"), and
 * the policy of each (disabled, allow-list).
 *
 * An alias never holds mail or keys of its own: delivery resolves it to
 * its target mailboxes (directory_resolve) and seals a copy to each, and
 * hands its forwards to queued's outbound queue (store/forwards.h). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "store/directory.h"
#include "store/forwards.h"

static int alias_usage(FILE *out, int status)
{
    fprintf(out, "usage: sealmail [--config FILE] alias add SOURCE MAILBOX\n"
                 "       sealmail [--config FILE] alias add SOURCE --to ADDRESS\n"
                 "       sealmail [--config FILE] alias remove SOURCE [TARGET]\n"
                 "       sealmail [--config FILE] alias disable|enable SOURCE\n"
                 "       sealmail [--config FILE] alias allow SOURCE [SENDER|DOMAIN...]\n"
                 "       sealmail [--config FILE] alias list\n"
                 "\n"
                 "SOURCE is an address in a hosted domain that is not a mailbox, or @DOMAIN\n"
                 "for the domain's catch-all (mail for any unknown address of DOMAIN).\n"
                 "add SOURCE MAILBOX   deliver to an existing mailbox here;\n"
                 "add SOURCE --to ADDRESS   forward to an address on another server (SRS,\n"
                 "                     ARC; see docs/forwarding.md).  A source may have\n"
                 "                     several targets of both kinds (at most 16 forwards).\n"
                 "remove               without TARGET, drops every target of SOURCE.\n"
                 "disable              refuse mail for SOURCE at RCPT (550 5.2.1) and keep its\n"
                 "                     targets; enable takes mail again.\n"
                 "allow                accept mail for SOURCE only from these senders\n"
                 "                     (addresses) and domains; without any, from everyone.\n"
                 "Mail for me+tag@DOMAIN reaches me@DOMAIN (mailbox or alias) unless a\n"
                 "catch-all is the only match.  `sealmail domain forwarding DOMAIN off`\n"
                 "switches a domain's forwards off without removing them.\n");
    return status;
}

static void print_alias(void *arg, const char *source, const char *target)
{
    (void)arg;
    printf("%s -> %s\n", source, target);
}

static void print_forward(void *arg, const char *source, const char *target)
{
    (void)arg;
    printf("%s => %s (forward)\n", source, target);
}

static void print_policy(void *arg, const char *source, bool disabled, const char *allow)
{
    (void)arg;
    if (disabled)
        printf("%s disabled\n", source);
    if (allow[0] != '\0')
        printf("%s allows %s\n", source, allow);
}

static int alias_list(struct directory *dir)
{
    if (directory_alias_list(dir, print_alias, NULL) < 0 ||
        directory_forward_list(dir, print_forward, NULL) < 0 ||
        directory_alias_policies(dir, print_policy, NULL) < 0)
        return -1;
    return 0;
}

/* remove SOURCE [TARGET]: from the local targets and the forwards. */
static int alias_remove(struct directory *dir, const char *source, const char *target)
{
    char why[256];
    int local = directory_alias_remove(dir, source, target);
    snprintf(why, sizeof why, "%s", directory_error(dir));
    int remote = directory_forward_remove(dir, source, target);
    if (local < 0 && remote < 0) {
        fprintf(stderr, "sealmail alias: %s\n", why);
        return -1;
    }
    printf("removed %s%s%s\n", source, target ? " -> " : "", target ? target : "");
    return 0;
}

/* allow SOURCE [ITEM...]: the items joined into one list. */
static int alias_allow(struct directory *dir, int argc, char **argv)
{
    char list[DIRECTORY_ALLOW_MAX + 1] = "";
    size_t used = 0;
    for (int i = 3; i < argc; i++) {
        int n = snprintf(list + used, sizeof list - used, "%s%s", used ? " " : "", argv[i]);
        if (n < 0 || (size_t)n >= sizeof list - used) {
            fprintf(stderr, "sealmail alias: the allow-list is too long\n");
            return 1;
        }
        used += (size_t)n;
    }
    if (directory_alias_set_allow(dir, argv[2], list) < 0)
        return -1;
    printf(used ? "%s takes mail only from: %s\n" : "%s takes mail from everyone%s\n", argv[2],
           list);
    return 0;
}

static int alias_run(struct directory *dir, int argc, char **argv)
{
    const char *op = argv[1];
    if (argc == 2 && strcmp(op, "list") == 0)
        return alias_list(dir);
    if (argc == 5 && strcmp(op, "add") == 0 && strcmp(argv[3], "--to") == 0) {
        if (directory_forward_add(dir, argv[2], argv[4]) < 0)
            return -1;
        printf("added %s => %s (forward)\n", argv[2], argv[4]);
        return 0;
    }
    if (argc == 4 && strcmp(op, "add") == 0) {
        if (directory_alias_add(dir, argv[2], argv[3]) < 0)
            return -1;
        printf("added %s -> %s\n", argv[2], argv[3]);
        return 0;
    }
    if ((argc == 3 || argc == 4) && strcmp(op, "remove") == 0)
        return alias_remove(dir, argv[2], argc == 4 ? argv[3] : NULL) < 0 ? 1 : 0;
    if (argc == 3 && (strcmp(op, "disable") == 0 || strcmp(op, "enable") == 0)) {
        bool off = strcmp(op, "disable") == 0;
        if (directory_alias_set_disabled(dir, argv[2], off) < 0)
            return -1;
        printf("%s %s\n", argv[2], off ? "disabled: its mail is refused" : "enabled");
        return 0;
    }
    if (argc >= 3 && strcmp(op, "allow") == 0)
        return alias_allow(dir, argc, argv);
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
    return r != 0 || fflush(stdout) != 0 ? 1 : 0;
}
