/* main.c — argument dispatch for the `sealmail` binary, nothing else.
 *
 *   sealmail [--config FILE] COMMAND [ARGS]      the CLI (cli/)
 *   sealmail _role ROLE CONFIG FDS               a child of `serve` (daemon/) */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "daemon/privsep.h"
#include "version.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv, const struct cli_ctx *ctx);
    const char *summary;
} commands[] = {
    {"init", cli_init, "create the data directory, server keys and a self-signed certificate"},
    {"serve", cli_serve, "run the mail server (master and its roles)"},
    {"check-config", cli_check_config, "validate the configuration; print it or a sample"},
    {"domain", cli_domain, "add, list and remove hosted domains"},
    {"queue", cli_queue, "list spooled messages and show their envelopes"},
    {"user", cli_user, "create, re-key, recover and remove mailbox accounts"},
    {"alias", cli_alias, "addresses and catch-alls that deliver to mailboxes"},
    {"mailbox", cli_mailbox, "unlock a mailbox with its password: verify, list, show, search"},
    {"dkim", cli_dkim, "DKIM signing keys of hosted domains: generate, rotate, show"},
    {"dns", cli_dns, "the DNS records (MX, SPF, DKIM, DMARC, MTA-STS) a domain publishes"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: sealmail [--config FILE] COMMAND [ARGS]\n\n"
                 "Without --config, sealmail runs on its embedded defaults (data in ./var,\n"
                 "SMTP on 127.0.0.1:2525, SMTPS 2465, submission 2587).\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-14s %s\n", "version", "print the version");
    fprintf(out, "\n`sealmail COMMAND --help` describes each command.\n");
}

static int run_role(int argc, char **argv)
{
    struct role_args ra;
    int status;
    if (privsep_parse_role_args(argc, argv, &ra) < 0)
        fatalx("bad role arguments");
    if (strcmp(ra.role, "smtpd") == 0)
        status = smtpd_main(&ra);
    else if (strcmp(ra.role, "queued") == 0)
        status = queued_main(&ra);
    else if (strcmp(ra.role, "imapd") == 0)
        status = imapd_main(&ra);
    else if (strcmp(ra.role, "httpd") == 0)
        status = httpd_main(&ra);
    else
        fatalx("unknown role '%s'", ra.role);
    privsep_before_exit();
    return status;
}

static int load_config(struct sm_config *cfg, const char *path)
{
    char err[512];
    config_defaults(cfg);
    if ((path != NULL && config_load(cfg, path, err, sizeof err) < 0) ||
        config_finish(cfg, err, sizeof err) < 0) {
        fprintf(stderr, "sealmail: %s\n", err);
        config_free(cfg);
        return -1;
    }
    log_set_anonymise(cfg->log_anonymise_ip);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "_role") == 0)
        return run_role(argc - 1, argv + 1);
    int i = 1;
    const char *config_path = NULL;
    if (i + 1 < argc && (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0)) {
        config_path = argv[i + 1];
        i += 2;
    }
    if (i >= argc || strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 ||
        strcmp(argv[i], "help") == 0) {
        usage(i >= argc ? stderr : stdout);
        return i >= argc ? 2 : 0;
    }
    if (strcmp(argv[i], "version") == 0 || strcmp(argv[i], "--version") == 0) {
        if (i + 1 < argc && (strcmp(argv[i + 1], "--help") == 0 || strcmp(argv[i + 1], "-h") == 0))
            printf("usage: sealmail version\n\nPrint the version of sealmail.\n");
        else
            printf("sealmail %s\n", SEALMAIL_VERSION);
        return 0;
    }
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++) {
        if (strcmp(argv[i], commands[k].name) != 0)
            continue;
        struct sm_config cfg;
        if (load_config(&cfg, config_path) < 0)
            return 1;
        struct cli_ctx ctx = {&cfg, config_path};
        int status = commands[k].run(argc - i, argv + i, &ctx);
        config_free(&cfg);
        return status;
    }
    fprintf(stderr, "sealmail: unknown command '%s'\n", argv[i]);
    usage(stderr);
    return 2;
}
