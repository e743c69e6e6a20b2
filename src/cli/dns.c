/* dns.c — `sealmail dns records|mta-sts-policy`: what a hosted domain
 * publishes in DNS (and on the web) for its mail to be delivered, trusted
 * and protected (docs/dkim.md).
 *
 * `dns records` prints, in zone-file syntax with absolute names, the MX,
 * SPF (RFC 7208), DKIM (RFC 6376, RFC 8463: every key, active, pending
 * and retired), DMARC (RFC 7489), MTA-STS (RFC 8461) and TLS-RPT
 * (RFC 8460) records, each after a comment that says what it does and
 * why it says what it says, so that the whole output loads as a zone
 * fragment.  TXT values longer than 255 bytes are split into several
 * character-strings (RFC 1035 §3.3.14; resolvers join them, RFC 6376
 * §3.6.2.2).
 *
 * Choices (explained in the output too): SPF "v=spf1 mx -all", since
 * this server's MX host sends the domain's mail; DMARC p=quarantine with
 * aggregate reports to postmaster@DOMAIN and no failure reports (they
 * carry message content); MTA-STS in mode testing until the operator
 * asks for enforce, because enforce makes senders refuse to deliver when
 * the certificate is not from a public CA.  The MTA-STS id is a hash of
 * the policy text, so it changes exactly when the policy does. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "crypto/seal.h"
#include "store/directory.h"
#include "store/dkimkeys.h"

#define TTL 3600
#define TXT_STRING_MAX 255 /* bytes of one character-string */
#define STS_ID_LEN 20      /* hex digits of the policy hash in id= (1..32 allowed) */
#define RUA_MAX (DIRECTORY_LOCAL_MAX + 1 + DIRECTORY_DOMAIN_MAX)

static int dns_usage(FILE *out, int status)
{
    fprintf(out,
            "usage: sealmail [--config FILE] dns records DOMAIN [--rua ADDRESS]\n"
            "                                            [--mta-sts-mode testing|enforce]\n"
            "       sealmail [--config FILE] dns mta-sts-policy DOMAIN\n"
            "                                            [--mta-sts-mode testing|enforce]\n"
            "\n"
            "records         every DNS record the hosted DOMAIN must publish, in zone-file\n"
            "                syntax, each with a comment that explains it: MX (this server,\n"
            "                [server] hostname), SPF, the DKIM keys (`sealmail dkim`), DMARC,\n"
            "                MTA-STS and SMTP TLS reporting\n"
            "mta-sts-policy  the MTA-STS policy file, to be served as text/plain at\n"
            "                https://mta-sts.DOMAIN/.well-known/mta-sts.txt\n"
            "\n"
            "--rua ADDRESS   where DMARC and TLS reports go (default postmaster@DOMAIN)\n"
            "--mta-sts-mode  testing (default): senders report TLS problems but deliver;\n"
            "                enforce: senders deliver only over TLS with a certificate that\n"
            "                is valid for the MX host (use it with a certificate from a\n"
            "                public CA, after the TLS reports are clean)\n");
    return status;
}

/* --- zone-file output --------------------------------------------------------- */

/* One character-string of at most TXT_STRING_MAX bytes, quoted. */
static void print_string(const char *p, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            printf("\\%03u", c);
        else
            putchar(c);
    }
    putchar('"');
}

void cli_print_txt(const char *owner, const char *value)
{
    size_t n = strlen(value);
    bool multi = n > TXT_STRING_MAX;
    printf("%s %d IN TXT %s", owner, TTL, multi ? "( " : "");
    for (size_t i = 0; i == 0 || i < n; i += TXT_STRING_MAX) {
        if (i > 0)
            printf("\n\t");
        print_string(value + i, n - i < TXT_STRING_MAX ? n - i : TXT_STRING_MAX);
    }
    printf("%s\n", multi ? " )" : "");
}

/* --- what is published --------------------------------------------------------- */

struct dns_plan {
    char domain[DIRECTORY_DOMAIN_MAX + 1];
    char mx[DIRECTORY_DOMAIN_MAX + 1]; /* [server] hostname */
    char rua[RUA_MAX + 1];      /* report address */
    bool enforce;               /* MTA-STS mode */
    char policy[1024];          /* the MTA-STS policy file */
    char sts_id[STS_ID_LEN + 1];
};

/* The policy and its id (RFC 8461 §3.2: lines end in CRLF or LF). */
static void make_policy(struct dns_plan *p)
{
    uint8_t hash[SEAL_HASH_BYTES];
    static const char hex[] = "0123456789abcdef";
    snprintf(p->policy, sizeof p->policy, "version: STSv1\nmode: %s\nmx: %s\nmax_age: %d\n",
             p->enforce ? "enforce" : "testing", p->mx, p->enforce ? 604800 : 86400);
    seal_hash(hash, p->policy, strlen(p->policy));
    for (size_t i = 0; i < STS_ID_LEN; i++)
        p->sts_id[i] = hex[(hash[i / 2] >> (i % 2 ? 0 : 4)) & 15];
    p->sts_id[STS_ID_LEN] = '\0';
}

static void print_header(const struct dns_plan *p)
{
    printf("; DNS records of %s, as `sealmail dns records` prints them: zone-file syntax,\n"
           "; absolute names, TTL %d.  Publish every one of them.  The mail host %s\n"
           "; also needs A/AAAA records for this server, and each of those addresses a\n"
           "; PTR record naming %s (receivers check that it matches).\n\n",
           p->domain, TTL, p->mx, p->mx);
}

static void print_mx_spf(const struct dns_plan *p)
{
    printf("; MX: mail for %s is delivered to this server ([server] hostname).\n", p->domain);
    printf("%s. %d IN MX 10 %s.\n\n", p->domain, TTL, p->mx);
    printf("; SPF (RFC 7208): the domain's MX hosts send its mail; any other host fails\n"
           "; (-all).  Add their mechanisms before -all if other services send as %s.\n",
           p->domain);
    char owner[DIRECTORY_DOMAIN_MAX + 2];
    snprintf(owner, sizeof owner, "%s.", p->domain);
    cli_print_txt(owner, "v=spf1 mx -all");
    putchar('\n');
}

static int print_dkim(const struct dns_plan *p, struct directory *dir)
{
    printf("; DKIM (RFC 6376, RFC 8463): the keys that sign the domain's mail, RSA for\n"
           "; every verifier and Ed25519 for those that know it.  Retired keys stay until\n"
           "; removed (mail signed with them may still be checked); `sealmail dkim` manages\n"
           "; them.\n");
    int n = cli_dkim_records(dir, p->domain);
    if (n == 0) {
        printf("; (no keys yet: `sealmail dkim generate %s`)\n", p->domain);
        fprintf(stderr, "sealmail dns: warning: %s has no DKIM keys; run `sealmail dkim "
                        "generate %s` and print the records again\n", p->domain, p->domain);
    }
    putchar('\n');
    return n < 0 ? -1 : 0;
}

/* Is name domain or below it?  (Reports sent elsewhere need consent.) */
static bool in_domain(const char *name, const char *domain)
{
    size_t n = strlen(name), d = strlen(domain);
    return strcmp(name, domain) == 0 ||
           (n > d && name[n - d - 1] == '.' && strcmp(name + n - d, domain) == 0);
}

static void print_dmarc(const struct dns_plan *p)
{
    char owner[DIRECTORY_DOMAIN_MAX + 16], value[RUA_MAX + 64];
    printf("; DMARC (RFC 7489): p=quarantine: mail with From: %s that passes neither an\n"
           "; aligned SPF nor an aligned DKIM check goes to the receiver's spam folder.\n"
           "; Quarantine rather than reject while the setup is new: a mistake (a service\n"
           "; sending as %s that is not in SPF and does not sign) costs a spam folder,\n"
           "; not lost mail.  Move to p=reject once the aggregate reports (rua, daily XML)\n"
           "; show only your own servers.  No ruf=: failure reports carry message content.\n",
           p->domain, p->domain);
    const char *at = strrchr(p->rua, '@');
    if (!in_domain(at + 1, p->domain))
        printf("; %s is outside %s: its domain must publish\n"
               ";   %s._report._dmarc.%s. IN TXT \"v=DMARC1\"  (RFC 7489 section 7.1)\n",
               p->rua, p->domain, p->domain, at + 1);
    snprintf(owner, sizeof owner, "_dmarc.%s.", p->domain);
    snprintf(value, sizeof value, "v=DMARC1; p=quarantine; rua=mailto:%s", p->rua);
    cli_print_txt(owner, value);
    putchar('\n');
}

static void print_mta_sts(const struct dns_plan *p)
{
    char owner[DIRECTORY_DOMAIN_MAX + 16], value[64];
    printf("; MTA-STS (RFC 8461): senders that support it deliver to %s only over\n"
           "; TLS with a certificate valid for %s.\n", p->domain, p->mx);
    if (p->enforce)
        printf("; mode enforce: a sender that cannot verify the certificate does not deliver.\n");
    else
        printf("; mode testing: problems are only reported (TLS-RPT, below); switch to\n"
               "; --mta-sts-mode enforce once the certificate is from a public CA and the\n"
               "; reports are clean.\n");
    printf("; The id changes whenever the policy does (it is a hash of the policy).\n");
    snprintf(owner, sizeof owner, "_mta-sts.%s.", p->domain);
    snprintf(value, sizeof value, "v=STSv1; id=%s", p->sts_id);
    cli_print_txt(owner, value);
    printf("; The policy is fetched from https://mta-sts.%s/.well-known/mta-sts.txt:\n"
           "; a web server with a certificate valid for mta-sts.%s serves it as\n"
           "; text/plain (`sealmail dns mta-sts-policy %s` prints it).  Point the name at\n"
           "; that server; here, at the mail host:\n",
           p->domain, p->domain, p->domain);
    for (const char *l = p->policy; *l;) {
        const char *nl = strchr(l, '\n');
        printf(";   %.*s\n", (int)(nl - l), l);
        l = nl + 1;
    }
    printf("mta-sts.%s. %d IN CNAME %s.\n\n", p->domain, TTL, p->mx);
}

static void print_tlsrpt(const struct dns_plan *p)
{
    char owner[DIRECTORY_DOMAIN_MAX + 16], value[RUA_MAX + 32];
    printf("; SMTP TLS reporting (RFC 8460): senders send a daily report of TLS successes\n"
           "; and failures in reaching %s to %s.\n", p->mx, p->rua);
    snprintf(owner, sizeof owner, "_smtp._tls.%s.", p->domain);
    snprintf(value, sizeof value, "v=TLSRPTv1; rua=mailto:%s", p->rua);
    cli_print_txt(owner, value);
}

/* --- options ------------------------------------------------------------------- */

static bool rua_local_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-' || c == '+';
}

/* An address for mailto: in a DMARC or TLS-RPT record: a plain local part
 * (no characters with a meaning in those URIs: , ! ; %) and a domain. */
static int parse_rua(const char *text, char out[RUA_MAX + 1])
{
    const char *at = strrchr(text, '@'), *why = "no @";
    char domain[DIRECTORY_DOMAIN_MAX + 1];
    if (at != NULL) {
        size_t n = (size_t)(at - text);
        why = n == 0 || n > DIRECTORY_LOCAL_MAX ? "local part of 1 to 64 characters" : NULL;
        for (size_t i = 0; why == NULL && i < n; i++)
            if (!rua_local_ok(text[i]))
                why = "the local part may hold letters, digits and . _ - + only";
        if (why == NULL && directory_domain_normalise(at + 1, domain, &why) == 0) {
            snprintf(out, RUA_MAX + 1, "%.*s@%s", (int)n, text, domain);
            return 0;
        }
    }
    fprintf(stderr, "sealmail dns: --rua: not a usable address: %s\n", why);
    return -1;
}

static int parse_options(int *argc, char **argv, bool *enforce, const char **rua)
{
    const char *mode = cli_take_option(argc, argv, "--mta-sts-mode");
    *rua = cli_take_option(argc, argv, "--rua");
    *enforce = mode != NULL && strcmp(mode, "enforce") == 0;
    if (mode != NULL && !*enforce && strcmp(mode, "testing") != 0) {
        fprintf(stderr, "sealmail dns: --mta-sts-mode is testing or enforce\n");
        return -1;
    }
    return 0;
}

/* --- dispatch -------------------------------------------------------------------- */

static int dns_records(struct dns_plan *p, struct directory *dir)
{
    print_header(p);
    print_mx_spf(p);
    if (print_dkim(p, dir) < 0)
        return -1;
    print_dmarc(p);
    print_mta_sts(p);
    print_tlsrpt(p);
    return 0;
}

/* Fill the plan; -1 (message printed) when something is unusable. */
static int make_plan(struct dns_plan *p, struct directory *dir, const struct cli_ctx *ctx,
                     const char *domain, const char *rua, bool enforce)
{
    if (directory_dkim_domain(dir, domain, p->domain) < 0) {
        fprintf(stderr, "sealmail dns: %s\n", directory_error(dir));
        return -1;
    }
    const char *why;
    if (directory_domain_normalise(ctx->cfg->hostname, p->mx, &why) < 0) {
        fprintf(stderr, "sealmail dns: [server] hostname '%s' is not a domain name: %s\n",
                ctx->cfg->hostname, why);
        return -1;
    }
    p->enforce = enforce;
    if (strchr(p->mx, '.') == NULL)
        fprintf(stderr, "sealmail dns: warning: [server] hostname '%s' is not a fully qualified "
                        "name; set the name other servers reach this one by\n", p->mx);
    if (rua != NULL && parse_rua(rua, p->rua) < 0)
        return -1;
    if (rua == NULL)
        snprintf(p->rua, sizeof p->rua, "postmaster@%s", p->domain);
    make_policy(p);
    return 0;
}

int cli_dns(int argc, char **argv, const struct cli_ctx *ctx)
{
    struct dns_plan plan;
    const char *error, *rua;
    bool enforce;

    if (cli_wants_help(argc, argv))
        return dns_usage(stdout, 0);
    if (parse_options(&argc, argv, &enforce, &rua) < 0)
        return 2;
    bool records = argc == 3 && strcmp(argv[1], "records") == 0;
    bool policy = argc == 3 && strcmp(argv[1], "mta-sts-policy") == 0 && rua == NULL;
    if (!records && !policy)
        return dns_usage(stderr, 2);
    if (seal_init() < 0) {
        fprintf(stderr, "sealmail dns: libsodium cannot be initialised\n");
        return 1;
    }
    struct directory *dir = directory_open(ctx->cfg->data_dir, false, &error);
    if (dir == NULL) {
        fprintf(stderr, "sealmail dns: %s\n", error);
        return 1;
    }
    memset(&plan, 0, sizeof plan);
    int r = make_plan(&plan, dir, ctx, argv[2], rua, enforce);
    if (r == 0 && policy)
        fputs(plan.policy, stdout);
    else if (r == 0 && (r = dns_records(&plan, dir)) < 0)
        fprintf(stderr, "sealmail dns: %s\n", directory_error(dir));
    directory_close(&dir);
    if (fflush(stdout) != 0) {
        perror("sealmail dns: stdout");
        r = -1;
    }
    return r < 0 ? 1 : 0;
}
