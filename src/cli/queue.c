/* queue.c — `sealmail queue list|show`: the spooled messages.
 *
 * Listing and envelopes need no secret (the envelope is stored in clear);
 * the message body needs the spool secret key, which only queued holds,
 * so `show --key PATH` is for an operator who has it. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "daemon/keys.h"
#include "store/spool.h"

struct list_ctx {
    const char *dir;
    int failures;
};

static void format_time(int64_t t, char *out, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void list_one(void *arg, const char *id)
{
    struct list_ctx *lc = arg;
    struct spool_envelope env;
    const char *error;
    char when[32];
    if (spool_read_envelope(lc->dir, id, &env, &error) < 0) {
        fprintf(stderr, "sealmail queue: %s: %s\n", id, error);
        lc->failures++;
        return;
    }
    format_time(env.received, when, sizeof when);
    printf("%s  %s  %8" PRIu64 "  <%s>  %zu recipient%s\n", id, when, env.size, env.mail_from,
           env.n_rcpts, env.n_rcpts == 1 ? "" : "s");
    spool_envelope_free(&env);
}

static int queue_show(const char *dir, const char *id, const char *key_path, const char *data_dir)
{
    struct spool_envelope env;
    const char *error;
    char when[32], err[512];
    if (spool_read_envelope(dir, id, &env, &error) < 0) {
        fprintf(stderr, "sealmail queue: %s: %s\n", id, error);
        return 1;
    }
    format_time(env.received, when, sizeof when);
    printf("id: %s\nreceived: %s\nclient: %s\nhelo: %s\nfrom: <%s>\n", id, when, env.client,
           env.helo, env.mail_from);
    for (size_t i = 0; i < env.n_rcpts; i++)
        printf("to: <%s>\n", env.rcpts[i]);
    printf("body: %s\nsmtputf8: %s\nsize: %" PRIu64 "\n", env.body_type,
           env.smtputf8 ? "yes" : "no", env.size);
    spool_envelope_free(&env);
    if (key_path == NULL)
        return 0;
    uint8_t pk[SPOOL_PK_BYTES], *sk = NULL;
    if (keys_spool_public(data_dir, pk, err, sizeof err) < 0 ||
        keys_read_secret(key_path, &sk, err, sizeof err) < 0) {
        fprintf(stderr, "sealmail queue: %s\n", err);
        return 1;
    }
    printf("\n");
    fflush(stdout);
    int r = spool_read_body(dir, id, pk, sk, STDOUT_FILENO, &error);
    keys_secret_free(&sk);
    if (r < 0) {
        fprintf(stderr, "sealmail queue: %s: %s\n", id, error);
        return 1;
    }
    return 0;
}

static int queue_usage(FILE *out, int status)
{
    fprintf(out, "usage: sealmail [--config FILE] queue list\n"
                 "       sealmail [--config FILE] queue show ID [--key SPOOL_SECRET_KEY]\n\n"
                 "list: one line per spooled message: id, time received (UTC), size,\n"
                 "      sender, number of recipients.\n"
                 "show: the envelope of one message; with --key (data_dir/keys/spool.key,\n"
                 "      readable by root only) also the decrypted message after a blank line.\n");
    return status;
}

int cli_queue(int argc, char **argv, const struct cli_ctx *ctx)
{
    if (cli_wants_help(argc, argv))
        return queue_usage(stdout, 0);
    char dir[4096];
    const char *error;
    snprintf(dir, sizeof dir, "%s/spool", ctx->cfg->data_dir);
    if (argc == 2 && strcmp(argv[1], "list") == 0) {
        struct list_ctx lc = {dir, 0};
        int n = spool_list(dir, list_one, &lc, &error);
        if (n < 0) {
            fprintf(stderr, "sealmail queue: %s\n", error);
            return 1;
        }
        return lc.failures ? 1 : 0;
    }
    if (argc == 3 && strcmp(argv[1], "show") == 0)
        return queue_show(dir, argv[2], NULL, ctx->cfg->data_dir);
    if (argc == 5 && strcmp(argv[1], "show") == 0 && strcmp(argv[3], "--key") == 0)
        return queue_show(dir, argv[2], argv[4], ctx->cfg->data_dir);
    return queue_usage(stderr, 2);
}
