/* queue.c — `sealmail queue list|show|retry|remove`: the spooled messages
 * and the outbound queue (store/outq.h).
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
 * addresses) passes through.  The message body is printed as stored.
 *
 * retry and remove change outbound entries under the entry's lock
 * (outq_lock), which queued holds while it tries the entry: they wait for
 * a running attempt to end (at most LOCK_WAIT_SECONDS).  retry makes the
 * entry due at once (queued's next scan, [queue] scan_interval, picks it
 * up); remove deletes it without a notice to the sender. */
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
#include "daemon/outbound.h"
#include "store/outq.h"
#include "store/spool.h"

#define LOCK_WAIT_SECONDS 30

static int queue_usage(FILE *out, int status)
{
    fprintf(out, "usage: sealmail [--config FILE] queue list\n"
                 "       sealmail [--config FILE] queue show ID [--key SPOOL_SECRET_KEY]\n"
                 "       sealmail [--config FILE] queue retry ID\n"
                 "       sealmail [--config FILE] queue remove ID\n"
                 "\n"
                 "list    one line per spooled message: queue id, time received (UTC),\n"
                 "        size in bytes, sender, number of recipients; then one line per\n"
                 "        outbound message: queue id, time queued, \"outbound\", sender,\n"
                 "        recipients pending/delivered/failed, attempts, next attempt.\n"
                 "show    the envelope of one message; with --key (data_dir/keys/spool.key,\n"
                 "        readable by its owner only) also the decrypted message, after a\n"
                 "        blank line.  For an outbound message: its delivery state.\n"
                 "retry   try an outbound message again at once (queued's next scan).\n"
                 "remove  delete an outbound message without telling its sender.\n");
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

static void print_field(const char *name, const char *value, bool brackets);

static void list_outbound(void *arg, const char *id)
{
    struct list_ctx *lc = arg;
    struct outq_entry e;
    const char *error;
    char when[32], next[32];
    if (outq_load(lc->dir, id, &e, &error) < 0) {
        if (strcmp(error, "no such entry") != 0) { /* done meanwhile: not an error */
            fprintf(stderr, "sealmail queue: %s: %s\n", id, error);
            lc->failures++;
        }
        return;
    }
    format_time(e.created, when);
    format_time(e.next_attempt, next);
    printf("%s  %s  outbound  <", id, when);
    put_safe(stdout, e.mail_from, SIZE_MAX);
    printf(">  %zu pending, %zu delivered, %zu failed  attempts=%u next=%s\n",
           outq_count(&e, OUTQ_PENDING), outq_count(&e, OUTQ_DELIVERED),
           outq_count(&e, OUTQ_FAILED) + outq_count(&e, OUTQ_BOUNCED), e.attempts,
           outq_count(&e, OUTQ_PENDING) > 0 ? (e.next_attempt > 0 ? next : "now") : "-");
    outq_entry_free(&e);
}

static int queue_list(const char *dir, const char *qdir)
{
    struct list_ctx lc = {dir, 0};
    const char *error;
    if (spool_list(dir, list_one, &lc, &error) < 0) {
        fprintf(stderr, "sealmail queue: %s/incoming: %s\n", dir, error);
        return 1;
    }
    lc.dir = qdir;
    if (outq_list(qdir, list_outbound, &lc, &error) < 0) {
        fprintf(stderr, "sealmail queue: %s: %s\n", qdir, error);
        return 1;
    }
    return lc.failures > 0 ? 1 : 0;
}

/* `show ID` of an outbound entry: its envelope and delivery state. */
static int show_outbound(const char *qdir, const char *id)
{
    struct outq_entry e;
    const char *error;
    char when[32];
    if (outq_load(qdir, id, &e, &error) < 0)
        return -1;
    printf("id: %s\nqueue: outbound\n", id);
    print_field("from", e.mail_from, true);
    format_time(e.created, when);
    printf("queued: %s\nattempts: %u\n", when, e.attempts);
    format_time(e.last_attempt, when);
    printf("last-attempt: %s\n", e.last_attempt ? when : "-");
    format_time(e.next_attempt, when);
    printf("next-attempt: %s\n", outq_count(&e, OUTQ_PENDING) ? when : "-");
    for (size_t i = 0; i < e.n_rcpts; i++) {
        printf("rcpt: <");
        put_safe(stdout, e.rcpts[i].addr, SIZE_MAX);
        printf("> %s", outq_state_name(e.rcpts[i].state));
        if (e.rcpts[i].reply[0] != '\0') {
            printf(" \"");
            put_safe(stdout, e.rcpts[i].reply, OUTQ_REPLY_MAX);
            printf("\"");
        }
        printf("\n");
    }
    outq_entry_free(&e);
    return 0;
}

/* The entry's lock, waiting up to LOCK_WAIT_SECONDS for queued's attempt. */
static int lock_entry(const char *qdir, const char *id)
{
    const char *error;
    for (int i = 0; i < LOCK_WAIT_SECONDS * 10; i++) {
        int fd = outq_lock(qdir, id, false, &error);
        if (fd >= 0)
            return fd;
        if (strcmp(error, "busy") != 0)
            break;
        usleep(100 * 1000);
    }
    fprintf(stderr, "sealmail queue: %s: %s\n", id,
            strcmp(error, "busy") == 0 ? "being delivered right now; try again" : error);
    return -1;
}

static int queue_retry(const char *qdir, const char *id)
{
    struct outq_entry e;
    const char *error;
    int fd = lock_entry(qdir, id);
    if (fd < 0)
        return 1;
    int rc = outq_load(qdir, id, &e, &error);
    if (rc == 0) {
        e.next_attempt = 0;
        rc = outq_save(qdir, &e, &error);
        outq_entry_free(&e);
    }
    outq_unlock(fd);
    if (rc < 0) {
        fprintf(stderr, "sealmail queue: %s: %s\n", id, error);
        return 1;
    }
    printf("%s: will be retried at queued's next queue scan\n", id);
    return 0;
}

static int queue_remove(const char *qdir, const char *id)
{
    const char *error;
    int fd = lock_entry(qdir, id);
    if (fd < 0)
        return 1;
    int rc = outq_remove(qdir, id, &error);
    outq_unlock(fd);
    if (rc < 0) {
        fprintf(stderr, "sealmail queue: %s: %s\n", id, error);
        return 1;
    }
    printf("%s: removed from the outbound queue\n", id);
    return 0;
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

static int bad_id(const char *id)
{
    fprintf(stderr, "sealmail queue: '");
    put_safe(stderr, id, 40);
    fprintf(stderr, "' is not a queue id (16 lowercase hex digits)\n");
    return 2;
}

int cli_queue(int argc, char **argv, const struct cli_ctx *ctx)
{
    char dir[4096], qdir[4096];
    const char *id, *key;

    if (cli_wants_help(argc, argv))
        return queue_usage(stdout, 0);
    if ((size_t)snprintf(dir, sizeof dir, "%s/spool", ctx->cfg->data_dir) >= sizeof dir ||
        outbound_queue_dir(qdir, sizeof qdir, ctx->cfg->data_dir) < 0) {
        fprintf(stderr, "sealmail queue: data_dir path too long\n");
        return 1;
    }
    if (argc == 2 && strcmp(argv[1], "list") == 0)
        return queue_list(dir, qdir);
    if (argc == 3 && (strcmp(argv[1], "retry") == 0 || strcmp(argv[1], "remove") == 0)) {
        if (!outq_id_valid(argv[2]))
            return bad_id(argv[2]);
        int st = argv[1][2] == 't' ? queue_retry(qdir, argv[2]) : queue_remove(qdir, argv[2]);
        return fflush(stdout) != 0 ? 1 : st;
    }
    if (argc < 2 || strcmp(argv[1], "show") != 0 || parse_show(argc, argv, &id, &key) < 0)
        return queue_usage(stderr, 2);
    if (!spool_id_valid(id))
        return bad_id(id);
    struct spool_envelope probe;
    const char *error;
    if (spool_read_envelope(dir, id, &probe, &error) == 0)
        spool_envelope_free(&probe);
    else if (show_outbound(qdir, id) == 0) /* not in the spool: in the outbound queue? */
        return fflush(stdout) != 0 ? 1 : 0;
    int status = queue_show(dir, id, key);
    if (fflush(stdout) != 0) {
        perror("sealmail queue: stdout");
        return 1;
    }
    return status;
}
