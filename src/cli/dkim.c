/* dkim.c — `sealmail dkim generate|rotate|show|remove`: the DKIM signing
 * keys of hosted domains (store/dkimkeys.h, docs/dkim.md).
 *
 * Each domain signs with a pair: RSA-2048 (rsa-sha256, which every
 * verifier knows) and Ed25519 (ed25519-sha256, RFC 8463: short records,
 * fast, but not yet checked everywhere).  Selectors are BASE + "r" and
 * BASE + "e"; the default BASE is "s" and the year and month in UTC
 * (s202611r, s202611e), with a counter when that month already has a pair
 * (s202611r2, s202611e2).  Dated selectors tell at a glance how old a
 * published key is.
 *
 * The private keys are generated here and stored at once sealed to the
 * spool public key, read before privileges are dropped (keys/ belongs to
 * root); this process is not dumpable while it holds them and can never
 * read them back.  Everything printed on stdout is zone-file text: the
 * messages are comments, so the output can be pasted as it is. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "cli/cli.h"
#include "daemon/keys.h"
#include "store/directory.h"
#include "store/dkimkeys.h"

#define DEFAULT_BASE_MAX 16
#define COUNTER_MAX 99 /* pairs per month with default selectors */

static int dkim_usage(FILE *out, int status)
{
    fprintf(out,
            "usage: sealmail [--config FILE] dkim generate DOMAIN [--selector BASE]\n"
            "       sealmail [--config FILE] dkim rotate DOMAIN [--selector BASE] [--now]\n"
            "       sealmail [--config FILE] dkim show DOMAIN\n"
            "       sealmail [--config FILE] dkim remove DOMAIN SELECTOR\n"
            "\n"
            "A hosted domain signs its mail with two keys: RSA-2048 (rsa-sha256) and\n"
            "Ed25519 (ed25519-sha256, RFC 8463), under the selectors BASE + \"r\" and\n"
            "BASE + \"e\".  Without --selector, BASE is \"s\" and the year and month (UTC):\n"
            "s202611r and s202611e; a second pair in one month gets s202611r2, s202611e2.\n"
            "\n"
            "generate  create the domain's first pair, signing at once; prints its records\n"
            "rotate    step 1: create the next pair, pending: publish its records (printed)\n"
            "          and wait a day, until resolvers see them;\n"
            "          step 2, the same command again: the pending pair starts signing and\n"
            "          the old pair is retired; keep its records a week, then remove them\n"
            "          --now: one step, the new pair signs at once (for a leaked key; mail\n"
            "          signed before its records are visible fails DKIM until then)\n"
            "show      every key with its state, and the TXT records to publish\n"
            "remove    forget a retired or pending key (never an active one); delete its\n"
            "          record from DNS too\n"
            "\n"
            "Private keys are stored sealed to the server's spool key: only the server\n"
            "(queued) can open them; no command shows them.  Output is zone-file text;\n"
            "`sealmail dns records DOMAIN` prints these records with the domain's others.\n");
    return status;
}

/* --- printing ---------------------------------------------------------------- */

static void date_of(int64_t t, char out[16])
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, 16, "%Y-%m-%d", &tm) == 0)
        snprintf(out, 16, "?");
}

/* What a key's state means for the operator, after its comment line. */
static const char *state_advice(const struct dkimkey *k)
{
    switch (k->state) {
    case DKIMKEY_ACTIVE:
        return "signs outgoing mail";
    case DKIMKEY_PENDING:
        return "publish now; signs after the next `sealmail dkim rotate`";
    case DKIMKEY_RETIRED:
        return "no longer signs; keep published about a week, then `sealmail dkim remove`";
    }
    return "";
}

static void print_key(void *arg, const struct dkimkey *k)
{
    char owner[DKIMKEY_SELECTOR_MAX + DIRECTORY_DOMAIN_MAX + 16];
    char rec[DKIMKEY_RECORD_MAX + 1], created[16], retired[16];
    (void)arg;
    date_of(k->created, created);
    date_of(k->retired, retired);
    printf("; %s  %s  %s (created %s%s%s): %s\n", k->selector, dkimkey_alg_name(k->alg),
           dkimkey_state_name(k->state), created, k->state == DKIMKEY_RETIRED ? ", retired " : "",
           k->state == DKIMKEY_RETIRED ? retired : "", state_advice(k));
    snprintf(owner, sizeof owner, "%s._domainkey.%s.", k->selector, k->domain);
    if (dkimkey_record(k, rec, sizeof rec) < 0)
        rec[0] = '\0'; /* cannot happen: the stored p= is bounded */
    cli_print_txt(owner, rec);
}

int cli_dkim_records(struct directory *dir, const char *domain)
{
    return directory_dkim_list(dir, domain, false, print_key, NULL);
}

/* --- creating keys ----------------------------------------------------------- */

struct dkim_cmd {
    const struct cli_ctx *ctx;
    struct directory *dir;
    char domain[DIRECTORY_DOMAIN_MAX + 1];
    uint8_t spool_pk[DKIMKEY_SPOOL_PK_BYTES];
};

/* 1 if the domain has a key with selector BASE+letter+suffix, 0, -1. */
static int taken(struct dkim_cmd *c, const char *base, char letter, const char *suffix)
{
    char sel[DKIMKEY_SELECTOR_MAX + 8];
    struct dkimkey k;
    snprintf(sel, sizeof sel, "%s%c%s", base, letter, suffix);
    if (strlen(sel) > DKIMKEY_SELECTOR_MAX)
        return 0; /* the store refuses it with the reason */
    return directory_dkim_get(c->dir, c->domain, sel, &k);
}

/* The two selectors: BASE given (no counter: a clash is the store's
 * error), or the month's default with the first free counter. */
static int choose_selectors(struct dkim_cmd *c, const char *base, char rsa[80], char ed[80])
{
    char month[DEFAULT_BASE_MAX], suffix[8] = "";
    if (base != NULL) {
        snprintf(rsa, 80, "%.70sr", base);
        snprintf(ed, 80, "%.70se", base);
        return 0;
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(month, sizeof month, "s%Y%m", &tm);
    for (int n = 1; n <= COUNTER_MAX; n++) {
        if (n > 1)
            snprintf(suffix, sizeof suffix, "%d", n);
        int r = taken(c, month, 'r', suffix), e = r == 0 ? taken(c, month, 'e', suffix) : r;
        if (r < 0 || e < 0)
            return -1;
        if (r == 0 && e == 0) {
            snprintf(rsa, 80, "%sr%s", month, suffix);
            snprintf(ed, 80, "%se%s", month, suffix);
            return 0;
        }
    }
    fprintf(stderr, "sealmail dkim: %d key pairs this month already: give --selector\n",
            COUNTER_MAX);
    return -2;
}

/* Generate a pair and store it in mode; prints what was done. */
static int add_pair(struct dkim_cmd *c, const char *base, enum dkimkey_mode mode)
{
    char rsa_sel[80], ed_sel[80];
    const char *why = NULL;
    int r = choose_selectors(c, base, rsa_sel, ed_sel);
    if (r == -2)
        return -2;
    if (r < 0)
        return -1;
    EVP_PKEY *rsa = dkimkey_generate(DKIMKEY_RSA_SHA256, &why);
    EVP_PKEY *ed = rsa != NULL ? dkimkey_generate(DKIMKEY_ED25519_SHA256, &why) : NULL;
    if (ed == NULL) {
        fprintf(stderr, "sealmail dkim: %s\n", why);
        EVP_PKEY_free(rsa);
        return -2;
    }
    struct dkimkey_new keys[] = {{rsa_sel, rsa}, {ed_sel, ed}};
    r = directory_dkim_add(c->dir, c->domain, keys, 2, mode, c->spool_pk);
    EVP_PKEY_free(rsa); /* clears the private key */
    EVP_PKEY_free(ed);
    return r;
}

static int dkim_generate(struct dkim_cmd *c, const char *base)
{
    int r = add_pair(c, base, DKIMKEY_FIRST);
    if (r < 0)
        return r;
    printf("; generated the DKIM keys of %s; they sign at once.  Publish:\n", c->domain);
    return cli_dkim_records(c->dir, c->domain) < 0 ? -1 : 0;
}

static void count_pending(void *arg, const struct dkimkey *k)
{
    if (k->state == DKIMKEY_PENDING)
        ++*(int *)arg;
}

static int dkim_rotate(struct dkim_cmd *c, const char *base, bool now)
{
    int pending = 0;
    if (directory_dkim_list(c->dir, c->domain, false, count_pending, &pending) < 0)
        return -1;
    if (pending > 0 && now) {
        fprintf(stderr, "sealmail dkim: %s has a pending pair: `sealmail dkim rotate %s` "
                        "activates it at once (or remove it first)\n", c->domain, c->domain);
        return -2;
    }
    if (pending > 0) {
        if (base != NULL) {
            fprintf(stderr, "sealmail dkim: %s has a pending pair already; rotate again "
                            "without --selector to activate it\n", c->domain);
            return -2;
        }
        if (directory_dkim_activate(c->dir, c->domain) < 0)
            return -1;
        printf("; the pending DKIM keys of %s sign from now on; the old ones are retired\n"
               "; (keep their records published for about a week, then remove them):\n",
               c->domain);
    } else {
        int r = add_pair(c, base, now ? DKIMKEY_REPLACE : DKIMKEY_NEXT);
        if (r < 0)
            return r;
        if (now)
            printf("; new DKIM keys of %s sign at once; the old ones are retired.  Publish\n"
                   "; the new records now and keep the old ones for about a week:\n", c->domain);
        else
            printf("; new DKIM keys of %s, pending.  Publish their records now, wait a day,\n"
                   "; then run `sealmail dkim rotate %s` again to start signing with them:\n",
                   c->domain, c->domain);
    }
    return cli_dkim_records(c->dir, c->domain) < 0 ? -1 : 0;
}

static int dkim_show(struct dkim_cmd *c)
{
    printf("; DKIM keys of %s: publish every record below\n", c->domain);
    int n = cli_dkim_records(c->dir, c->domain);
    if (n == 0)
        printf("; (none: `sealmail dkim generate %s` creates them)\n", c->domain);
    return n < 0 ? -1 : 0;
}

static int dkim_remove(struct dkim_cmd *c, const char *selector)
{
    if (directory_dkim_remove(c->dir, c->domain, selector) < 0)
        return -1;
    printf("; removed DKIM key %s of %s: delete %s._domainkey.%s. from DNS\n", selector,
           c->domain, selector, c->domain);
    return 0;
}

/* --- dispatch ------------------------------------------------------------------ */

enum dkim_op { OP_NONE, OP_GENERATE, OP_ROTATE, OP_SHOW, OP_REMOVE };

static enum dkim_op parse_op(int argc, char **argv, bool have_selector, bool now)
{
    if (argc == 3 && strcmp(argv[1], "generate") == 0 && !now)
        return OP_GENERATE;
    if (argc == 3 && strcmp(argv[1], "rotate") == 0)
        return OP_ROTATE;
    if (have_selector || now)
        return OP_NONE;
    if (argc == 3 && strcmp(argv[1], "show") == 0)
        return OP_SHOW;
    if (argc == 4 && strcmp(argv[1], "remove") == 0)
        return OP_REMOVE;
    return OP_NONE;
}

static int run_op(struct dkim_cmd *c, enum dkim_op op, char **argv, const char *base, bool now)
{
    switch (op) {
    case OP_GENERATE:
        return dkim_generate(c, base);
    case OP_ROTATE:
        return dkim_rotate(c, base, now);
    case OP_SHOW:
        return dkim_show(c);
    case OP_REMOVE:
        return dkim_remove(c, argv[3]);
    case OP_NONE:
        break;
    }
    return -2;
}

int cli_dkim(int argc, char **argv, const struct cli_ctx *ctx)
{
    struct dkim_cmd c = {.ctx = ctx};
    char err[512];
    const char *error;

    if (cli_wants_help(argc, argv))
        return dkim_usage(stdout, 0);
    const char *base = cli_take_option(&argc, argv, "--selector");
    bool now = cli_find_flag(&argc, argv, "--now");
    enum dkim_op op = parse_op(argc, argv, base != NULL, now);
    if (op == OP_NONE)
        return dkim_usage(stderr, 2);
    /* keys/ is root's: read the public spool key before dropping root */
    if ((op == OP_GENERATE || op == OP_ROTATE) &&
        keys_spool_public(ctx->cfg->data_dir, c.spool_pk, err, sizeof err) < 0) {
        fprintf(stderr, "sealmail dkim: %s (run `sealmail init`)\n", err);
        return 1;
    }
    cli_drop_privileges(ctx);
    if ((c.dir = directory_open(ctx->cfg->data_dir, false, &error)) == NULL) {
        fprintf(stderr, "sealmail dkim: %s\n", error);
        cli_before_exit();
        return 1;
    }
    int r = directory_dkim_domain(c.dir, argv[2], c.domain) < 0 ? -1
                                                                : run_op(&c, op, argv, base, now);
    if (r == -1)
        fprintf(stderr, "sealmail dkim: %s\n", directory_error(c.dir));
    directory_close(&c.dir);
    if (fflush(stdout) != 0) {
        perror("sealmail dkim: stdout");
        r = r < 0 ? r : -1;
    }
    cli_before_exit();
    return r < 0 ? 1 : 0;
}
