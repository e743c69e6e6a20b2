/* queue.c — `sealmail queue list|show`: the spooled messages.
 *
 * Listing and envelopes need no secret: the envelope is stored in clear.
 * The message itself needs the spool secret key, which only queued holds,
 * so `show --key PATH` is for an operator who has it; the public key is
 * derived from that secret, so a copy of the key file works anywhere.
 * The body is written only as the spool authenticates it (see spool.h):
 * a damaged or foreign file ends in an error, never in wrong content.
 *
 * Envelope fields come from files an attacker may have planted, so
 * control characters are printed escaped (\xNN); UTF-8 text (SMTPUTF8
 * addresses) passes through.  The message body is printed as stored. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/fileio.h"
#include "crypto/seal.h"
#include "daemon/keys.h"
#include "store/spool.h"

static int queue_usage(FILE *out, int status)
{
    fprintf(out, "usage: sealmail [--config FILE] queue list\n"
                 "       sealmail [--config FILE] queue show ID [--key SPOOL_SECRET_KEY]\n"
                 "\n"
                 "list  one line per spooled message: queue id, time received (UTC),\n"
                 "      size in bytes, sender, number of recipients.\n"
                 "show  the envelope of one message; with --key (data_dir/keys/spool.key,\n"
                 "      readable by its owner only) also the decrypted message, after a\n"
                 "      blank line.\n");
    return status;
}

/* Length of the valid, printable UTF-8 sequence at p (2-4 bytes), or 0
 * for a stray byte, an overlong form, a surrogate or a C1 control. */
static size_t utf8_printable(const unsigned char *p)
{
    size_t n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
    if (n == 0 || p[0] > 0xf4)
        return 0;
    uint32_t cp = p[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) /* also stops at the NUL terminator */
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp <= 0x9f)
        return 0;
    return n;
}

/* Print at most max bytes of untrusted text to out: printable ASCII and
 * valid UTF-8 as they are; C0 and C1 controls, DEL, backslash and every
 * byte that is not part of valid UTF-8 (a lone 0x9b is an 8-bit CSI to a
 * terminal) as \xNN. */
static void put_safe(FILE *out, const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t n = 0; *p != '\0' && n < max;) {
        size_t len = *p >= 0x80 ? utf8_printable(p) : 0;
        if (len > 0) {
            fwrite(p, 1, len, out);
        } else if (*p < 0x20 || *p >= 0x7f || *p == '\\') {
            fprintf(out, "\\x%02x", *p);
            len = 1;
        } else {
            putc(*p, out);
            len = 1;
        }
        p += len;
        n += len;
    }
}

static void format_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "@%" PRId64, t);
}

struct list_ctx {
    const char *dir;
    int failures;
};

static void list_one(void *arg, const char *id)
{
    struct list_ctx *lc = arg;
    struct spool_envelope env;
    const char *error;
    char when[32];

    if (spool_read_envelope(lc->dir, id, &env, &error) < 0) {
        /* delivered (and removed) between the directory listing and now:
         * a running server does that all the time; it is not an error */
        if (strcmp(error, "no such message in the spool") == 0)
            return;
        fprintf(stderr, "sealmail queue: %s: %s\n", id, error);
        lc->failures++;
        return;
    }
    format_time(env.received, when);
    printf("%s  %s  %10" PRIu64 "  <", id, when, env.size);
    put_safe(stdout, env.mail_from, SIZE_MAX);
    printf(">  %zu\n", env.n_rcpts);
    spool_envelope_free(&env);
}

static int queue_list(const char *dir)
{
    struct list_ctx lc = {dir, 0};
    const char *error;
    if (spool_list(dir, list_one, &lc, &error) < 0) {
        fprintf(stderr, "sealmail queue: %s/incoming: %s\n", dir, error);
        return 1;
    }
    return lc.failures > 0 ? 1 : 0;
}

static void print_field(const char *name, const char *value, bool brackets)
{
    printf("%s: %s", name, brackets ? "<" : "");
    put_safe(stdout, value, SIZE_MAX);
    printf("%s\n", brackets ? ">" : "");
}

static void print_envelope(const char *id, const struct spool_envelope *env)
{
    char when[32];
    format_time(env->received, when);
    printf("id: %s\n", id);
    print_field("helo", env->helo, false);
    print_field("client", env->client, false);
    print_field("from", env->mail_from, true);
    for (size_t i = 0; i < env->n_rcpts; i++)
        print_field("rcpt", env->rcpts[i], true);
    print_field("body", env->body_type, false);
    printf("smtputf8: %s\nsize: %" PRIu64 "\nreceived: %s\n", env->smtputf8 ? "yes" : "no",
           env->size, when);
}

/* The decrypted message after a blank line, straight to stdout. */
/* Copy the decrypted message from fd (at its start) to standard output. */
static int copy_out(int fd)
{
    char buf[65536];
    ssize_t n;
    if (lseek(fd, 0, SEEK_SET) < 0)
        return -1;
    while ((n = sm_read_full(fd, buf, sizeof buf)) > 0)
        if (sm_write_full(STDOUT_FILENO, buf, (size_t)n) < 0)
            return -1;
    return n < 0 ? -1 : 0;
}

/* With the key: decrypt into memory first, so that the envelope and the
 * message are printed only once the whole file, envelope included, has
 * been authenticated from one open. */
static int show_authenticated(const char *dir, const char *id, const uint8_t *sk)
{
    uint8_t pk[SPOOL_PK_BYTES];
    struct spool_envelope env;
    const char *error;

    if (seal_public_from_secret(pk, sk) < 0) {
        fprintf(stderr, "sealmail queue: the key is not a usable X25519 secret key\n");
        return 1;
    }
    int mfd = memfd_create("sealmail-message", MFD_CLOEXEC);
    if (mfd < 0) {
        perror("sealmail queue: memfd_create");
        return 1;
    }
    if (spool_read_message(dir, id, pk, sk, mfd, &env, &error) < 0) {
        fprintf(stderr, "sealmail queue: %s: %s\n", id, error);
        close(mfd);
        return 1;
    }
    print_envelope(id, &env);
    if (env.flags & SPOOL_F_JUNK)
        printf("Deliver-To-Folder: Junk\n");
    printf("\n");
    if (env.prefix_len > 0)
        fwrite(env.prefix, 1, env.prefix_len, stdout); /* added on delivery */
    spool_envelope_free(&env);
    int r = fflush(stdout) == 0 ? copy_out(mfd) : -1;
    close(mfd);
    if (r < 0)
        perror("sealmail queue: stdout");
    return r < 0 ? 1 : 0;
}

static int queue_show(const char *dir, const char *id, const char *key_path)
{
    struct spool_envelope env;
    const char *error;
    uint8_t *sk = NULL;
    char err[512];
    int status = 0;

    if (key_path != NULL) {
        if (keys_read_secret(key_path, &sk, err, sizeof err) < 0) {
            fprintf(stderr, "sealmail queue: %s\n", err);
            return 1;
        }
        status = show_authenticated(dir, id, sk);
        keys_secret_free(&sk);
        return status;
    }
    if (spool_read_envelope(dir, id, &env, &error) < 0) {
        fprintf(stderr, "sealmail queue: %s: %s\n", id, error);
        return 1;
    }
    print_envelope(id, &env);
    spool_envelope_free(&env);
    return status;
}

/* `show ID [--key PATH | --key=PATH]`, options in any position. */
static int parse_show(int argc, char **argv, const char **id_r, const char **key_r)
{
    *id_r = *key_r = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--key") == 0 && i + 1 < argc && *key_r == NULL)
            *key_r = argv[++i];
        else if (strncmp(argv[i], "--key=", 6) == 0 && argv[i][6] != '\0' && *key_r == NULL)
            *key_r = argv[i] + 6;
        else if (argv[i][0] != '-' && *id_r == NULL)
            *id_r = argv[i];
        else
            return -1;
    }
    return *id_r == NULL ? -1 : 0;
}

int cli_queue(int argc, char **argv, const struct cli_ctx *ctx)
{
    char dir[4096];
    const char *id, *key;

    if (cli_wants_help(argc, argv))
        return queue_usage(stdout, 0);
    if ((size_t)snprintf(dir, sizeof dir, "%s/spool", ctx->cfg->data_dir) >= sizeof dir) {
        fprintf(stderr, "sealmail queue: data_dir path too long\n");
        return 1;
    }
    if (argc == 2 && strcmp(argv[1], "list") == 0)
        return queue_list(dir);
    if (argc < 2 || strcmp(argv[1], "show") != 0 || parse_show(argc, argv, &id, &key) < 0)
        return queue_usage(stderr, 2);
    if (!spool_id_valid(id)) {
        fprintf(stderr, "sealmail queue: '");
        put_safe(stderr, id, 40);
        fprintf(stderr, "' is not a queue id (16 lowercase hex digits)\n");
        return 2;
    }
    int status = queue_show(dir, id, key);
    if (fflush(stdout) != 0) {
        perror("sealmail queue: stdout");
        return 1;
    }
    return status;
}
