/* store-import.c — the mailbox store's own figures for bench/store.
 *
 * 1. Import rate: N deterministic messages of about 4 KiB (one in ten
 *    multipart with a base64 attachment) are sealed into a new mailbox's
 *    drop/ with drop_deliver(), to a fresh X25519 key pair, then moved
 *    into the store with mailbox_import().  The same code runs on an
 *    encrypted store (sealvfs with a random mailbox key) and on a plain
 *    SQLite file (mailbox_create/mailbox_open with mk = NULL); only the
 *    import is timed.  Both sides decrypt the drop files and parse every
 *    message, so the ratio shows what page encryption costs.  Repeated
 *    (alternating which side goes first), medians reported.  The delivery
 *    rate (seal + fdatasync + rename + directory fsync per message, one
 *    writer) is reported beside it.
 * 2. Unlock time: a directory database with one account created with the
 *    given Argon2id cost (default: the configuration's, 3 passes, 64 MiB);
 *    account_unlock() with the right password, with a wrong one and for
 *    an unknown address, alternately, medians reported; and the time to
 *    open the store once the keys are unwrapped.
 *
 * Everything happens under a fresh temporary directory that is removed at
 * the end.  Output: readable lines, and one "RESULT key=value ..." line
 * per figure for bench/store to parse.  Exit status 0 only if every
 * message was delivered and imported and every unlock answered as it
 * should. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "crypto/keywrap.h"
#include "crypto/seal.h"
#include "mime/mime.h"
#include "store/account.h"
#include "store/directory.h"
#include "store/drop.h"
#include "store/mailbox.h"

#define MAX_MESSAGES 100000
#define MAX_REPS 20
#define MAX_UNLOCKS 50

struct opts {
    unsigned messages, reps, batch, unlocks;
    struct keywrap_params params;
    const char *tmpdir;
    bool no_import, no_unlock;
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of n values (sorts v). */
static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* --- messages -------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static const char *const words[] = {
    "lorem",   "ipsum",   "dolor",    "sit",      "amet",    "meeting", "report",  "invoice",
    "budget",  "schedule", "project", "review",   "draft",   "attached", "please", "thanks",
    "regards", "update",  "server",   "mail",     "secure",  "key",     "backup",  "release",
    "pelican", "harbour", "quarterly", "figures", "tomorrow", "agenda", "minutes", "travel",
};
#define N_WORDS (sizeof words / sizeof words[0])

static void add_words(struct sm_buf *b, uint64_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sm_buf_puts(b, words[rng_next(s) % N_WORDS]);
        sm_buf_puts(b, i + 1 < n ? " " : "");
    }
}

/* Text lines of about 70 characters until the buffer holds `until` bytes. */
static void add_text(struct sm_buf *b, uint64_t *s, size_t until)
{
    while (b->len < until) {
        add_words(b, s, 9 + rng_next(s) % 4);
        sm_buf_puts(b, "\r\n");
    }
}

/* Message i: 3,000-5,000 bytes, CRLF line ends (as SMTP delivers them),
 * every tenth multipart/mixed with text and a base64 attachment. */
static void make_message(struct sm_buf *b, unsigned i)
{
    uint64_t s = 0x5ea1a11u + i;
    size_t target = 3000 + (size_t)(rng_next(&s) % 2001);
    time_t t = 1790000000 + (time_t)i * 37;
    char date[64];
    struct tm tm;

    sm_buf_reset(b);
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    sm_buf_printf(b,
               "Received: from client.bench.test (client.bench.test [127.0.0.1])\r\n"
               "\tby mx.bench.test with ESMTP id %016x; %s\r\n"
               "From: %s %s <%s.%u@example%u.test>\r\n"
               "To: User One <user1@bench.test>\r\n"
               "Subject: ",
               i + 1, date, words[rng_next(&s) % N_WORDS], words[rng_next(&s) % N_WORDS],
               words[rng_next(&s) % N_WORDS], i, (unsigned)(rng_next(&s) % 20));
    add_words(b, &s, 2 + rng_next(&s) % 6);
    sm_buf_printf(b, " #%u\r\nDate: %s\r\nMessage-ID: <%u.%ld@gen.bench.test>\r\n"
                  "MIME-Version: 1.0\r\n", i, date, i, (long)t);
    if (i % 10 == 3) {
        sm_buf_printf(b, "Content-Type: multipart/mixed; boundary=\"=-=b%u\"\r\n\r\n"
                      "This is a multi-part message in MIME format.\r\n\r\n"
                      "--=-=b%u\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", i, i);
        add_text(b, &s, target / 2);
        sm_buf_printf(b, "\r\n--=-=b%u\r\nContent-Type: application/octet-stream; name=\"r%u.bin\"\r\n"
                      "Content-Disposition: attachment; filename=\"r%u.bin\"\r\n"
                      "Content-Transfer-Encoding: base64\r\n\r\n", i, i, i);
        static const char b64[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        while (b->len < target) {
            char line[79];
            for (size_t k = 0; k < 76; k++)
                line[k] = b64[rng_next(&s) % 64];
            memcpy(line + 76, "\r\n", 3);
            sm_buf_puts(b, line);
        }
        sm_buf_printf(b, "--=-=b%u--\r\n", i);
    } else {
        sm_buf_puts(b, "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
        add_text(b, &s, target);
    }
}

/* --- import ---------------------------------------------------------------------- */

struct keys {
    uint8_t pk[32];
    uint8_t *sk, *mk;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Deliver messages [first, first + n) into dir's drop/; adds the time to
 * *deliver_s.  Returns 0 or -1. */
static int deliver_range(const char *dir, const struct keys *k, int fd, struct sm_buf *msg,
                         unsigned first, unsigned n, double *deliver_s)
{
    for (unsigned i = first; i < first + n; i++) {
        char name[17];
        const char *error = NULL;
        uint64_t sealed;
        make_message(msg, i);
        if (ftruncate(fd, 0) < 0 || pwrite(fd, msg->data, msg->len, 0) != (ssize_t)msg->len) {
            fprintf(stderr, "store-import: memfd: %s\n", strerror(errno));
            return -1;
        }
        snprintf(name, sizeof name, "%016x", i + 1);
        double t0 = now();
        int r = drop_deliver(dir, name, k->pk, 1790000000 + (int64_t)i, fd, &sealed, &error);
        *deliver_s += now() - t0;
        if (r != 1) {
            fprintf(stderr, "store-import: drop_deliver %s: %s\n", name,
                    r < 0 ? error : "already there");
            return -1;
        }
    }
    return 0;
}

struct run {
    double import_s, deliver_s;
    uint64_t bytes;
};

/* One mailbox (encrypted when mk != NULL): deliver and import all messages
 * in batches of o->batch.  Returns 0 or -1. */
static int import_run(const struct opts *o, const char *root, const char *label,
                      const struct keys *k, const uint8_t *mk, struct run *r)
{
    char dir[4096];
    const char *error = NULL;
    struct sm_buf msg;
    int ret = -1;

    memset(r, 0, sizeof *r);
    snprintf(dir, sizeof dir, "%s/%s", root, label);
    if (mailbox_create(dir, mk, &error) < 0) {
        fprintf(stderr, "store-import: mailbox_create %s: %s\n", dir, error);
        return -1;
    }
    int fd = memfd_create("store-import", MFD_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "store-import: memfd_create: %s\n", strerror(errno));
        mailbox_destroy(dir, &error);
        return -1;
    }
    sm_buf_init(&msg, 0);
    struct mailbox *mb = mailbox_open(dir, mk, k->pk, k->sk, &error);
    if (mb == NULL) {
        fprintf(stderr, "store-import: mailbox_open %s: %s\n", dir, error);
        goto out;
    }
    for (unsigned first = 0; first < o->messages; first += o->batch) {
        unsigned n = o->messages - first < o->batch ? o->messages - first : o->batch;
        struct mailbox_import_stats st;
        if (deliver_range(dir, k, fd, &msg, first, n, &r->deliver_s) < 0)
            goto out;
        double t0 = now();
        int rc = mailbox_import(mb, &st, &error);
        r->import_s += now() - t0;
        if (rc < 0 || st.imported != n || st.refused != 0 || st.already != 0) {
            fprintf(stderr, "store-import: %s import: %s (imported %u of %u, refused %u)\n",
                    label, rc < 0 ? error : "wrong count", st.imported, n, st.refused);
            goto out;
        }
        r->bytes += st.bytes;
    }
    ret = 0;
out:
    mailbox_close(&mb);
    sm_buf_free(&msg);
    close(fd);
    if (mailbox_destroy(dir, &error) < 0)
        fprintf(stderr, "store-import: cannot remove %s: %s\n", dir, error);
    return ret;
}

/* Check once, untimed, that an encrypted store of every message is sound. */
static int verify_encrypted(const struct opts *o, const char *root, const struct keys *k)
{
    char dir[4096];
    const char *error = NULL;
    struct sm_buf msg;
    struct mailbox_check c;
    struct mailbox_import_stats st;
    double ignored = 0;
    int ret = -1;

    snprintf(dir, sizeof dir, "%s/verify", root);
    if (mailbox_create(dir, k->mk, &error) < 0)
        return -1;
    int fd = memfd_create("store-import", MFD_CLOEXEC);
    sm_buf_init(&msg, 0);
    struct mailbox *mb = mailbox_open(dir, k->mk, k->pk, k->sk, &error);
    unsigned n = o->messages < 200 ? o->messages : 200;
    if (fd >= 0 && mb != NULL && deliver_range(dir, k, fd, &msg, 0, n, &ignored) == 0 &&
        mailbox_import(mb, &st, &error) == 0 && mailbox_verify(mb, true, &c, &error) == 0) {
        printf("encrypted store check: %u messages, integrity %s, %u bodies authenticated, "
               "%u bad\n", (unsigned)c.messages, c.integrity, c.bodies_checked, c.bodies_bad);
        ret = c.integrity_ok && c.messages == n && c.bodies_bad == 0 ? 0 : -1;
    } else {
        fprintf(stderr, "store-import: verify: %s\n", error ? error : strerror(errno));
    }
    mailbox_close(&mb);
    sm_buf_free(&msg);
    if (fd >= 0)
        close(fd);
    mailbox_destroy(dir, &error);
    return ret;
}

static int bench_import(const struct opts *o, const char *root)
{
    struct keys k;
    double enc[MAX_REPS], plain[MAX_REPS], ratio[MAX_REPS], denc[MAX_REPS], dplain[MAX_REPS];
    struct sm_buf sample;
    uint64_t total = 0;
    unsigned multipart = 0;
    int ret = 0;

    k.sk = seal_secret_alloc(32);
    k.mk = seal_secret_alloc(MAILBOX_KEY_BYTES);
    seal_keypair(k.pk, k.sk);
    seal_random(k.mk, MAILBOX_KEY_BYTES);

    sm_buf_init(&sample, 0);
    for (unsigned i = 0; i < o->messages; i++) {
        make_message(&sample, i);
        total += sample.len;
        multipart += i % 10 == 3;
    }
    sm_buf_free(&sample);
    printf("import: %u messages, %.0f bytes on average, %u multipart; "
           "%u import(s) of %u per mailbox; %u repetitions\n",
           o->messages, (double)total / o->messages, multipart,
           (o->messages + o->batch - 1) / o->batch, o->batch, o->reps);

    for (unsigned rep = 0; rep < o->reps && ret == 0; rep++) {
        struct run re, rp;
        char le[32], lp[32];
        snprintf(le, sizeof le, "enc-%u", rep);
        snprintf(lp, sizeof lp, "plain-%u", rep);
        bool enc_first = rep % 2 == 0;
        for (int side = 0; side < 2 && ret == 0; side++) {
            bool do_enc = (side == 0) == enc_first;
            ret = do_enc ? import_run(o, root, le, &k, k.mk, &re)
                         : import_run(o, root, lp, &k, NULL, &rp);
        }
        if (ret < 0)
            break;
        enc[rep] = o->messages / re.import_s;
        plain[rep] = o->messages / rp.import_s;
        ratio[rep] = enc[rep] / plain[rep];
        denc[rep] = o->messages / re.deliver_s;
        dplain[rep] = o->messages / rp.deliver_s;
        printf("  rep %u: import encrypted %.0f msg/s (%.2f s), plain %.0f msg/s (%.2f s), "
               "ratio %.2f; drop_deliver %.0f / %.0f msg/s\n",
               rep + 1, enc[rep], re.import_s, plain[rep], rp.import_s, ratio[rep], denc[rep],
               dplain[rep]);
        fflush(stdout);
    }
    if (ret == 0) {
        double me = median(enc, o->reps), mp = median(plain, o->reps);
        double lo = ratio[0], hi = ratio[0];
        for (unsigned i = 1; i < o->reps; i++) {
            lo = ratio[i] < lo ? ratio[i] : lo;
            hi = ratio[i] > hi ? ratio[i] : hi;
        }
        double dd[2 * MAX_REPS];
        memcpy(dd, denc, o->reps * sizeof *dd);
        memcpy(dd + o->reps, dplain, o->reps * sizeof *dd);
        double md = median(dd, 2 * (size_t)o->reps);
        printf("import medians: encrypted %.0f msg/s, plain %.0f msg/s, ratio %.2f "
               "(per repetition %.2f-%.2f; target >= 0.80)\n", me, mp, me / mp, lo, hi);
        printf("drop_deliver (seal, fdatasync, rename, fsync drop/; one writer): %.0f msg/s\n",
               md);
        printf("RESULT import messages=%u batch=%u reps=%u enc_msg_s=%.1f plain_msg_s=%.1f "
               "ratio=%.3f ratio_min=%.3f ratio_max=%.3f deliver_msg_s=%.1f\n",
               o->messages, o->batch, o->reps, me, mp, me / mp, lo, hi, md);
        if (verify_encrypted(o, root, &k) < 0) {
            fprintf(stderr, "store-import: the encrypted store failed its check\n");
            ret = -1;
        }
    }
    seal_secret_free(&k.sk);
    seal_secret_free(&k.mk);
    return ret;
}

/* --- unlock ---------------------------------------------------------------------- */

static int bench_unlock(const struct opts *o, const char *root)
{
    char data[4096], mdir[4096];
    const char *error = NULL;
    static const char right[] = "correct horse battery staple", wrong[] = "correct horse battery stapler";
    double t_right[MAX_UNLOCKS], t_wrong[MAX_UNLOCKS], t_unknown[MAX_UNLOCKS], t_open[MAX_UNLOCKS];
    int ret = -1;

    snprintf(data, sizeof data, "%s/unlock", root);
    snprintf(mdir, sizeof mdir, "%s/mailboxes", data);
    if (mkdir(data, 0700) < 0 || mkdir(mdir, 0700) < 0) {
        fprintf(stderr, "store-import: mkdir %s: %s\n", mdir, strerror(errno));
        return -1;
    }
    struct directory *dir = directory_open(data, true, &error);
    if (dir == NULL) {
        fprintf(stderr, "store-import: directory_open: %s\n", error);
        return -1;
    }
    char *recovery = seal_secret_alloc(KEYWRAP_RECOVERY_TEXT_MAX);
    if (directory_domain_add(dir, "bench.test") < 0) {
        fprintf(stderr, "store-import: domain add: %s\n", directory_error(dir));
        goto out;
    }
    double t0 = now();
    if (account_create(dir, data, "user1@bench.test", right, strlen(right), &o->params, 0,
                       recovery, &error) < 0) {
        fprintf(stderr, "store-import: account_create: %s\n", error);
        goto out;
    }
    double t_create = now() - t0;
    printf("unlock: Argon2id %u passes, %u MiB, one lane; account created in %.0f ms; "
           "%u runs of each\n", o->params.ops, o->params.mem_kib / 1024, t_create * 1e3,
           o->unlocks);
    for (unsigned i = 0; i < o->unlocks; i++) {
        struct account a;
        /* the order rotates so no attempt always follows the same one */
        for (unsigned step = 0; step < 3; step++) {
            unsigned which = (step + i) % 3;
            const char *addr = which == 2 ? "nobody@bench.test" : "user1@bench.test";
            const char *pw = which == 0 ? right : wrong;
            t0 = now();
            int r = account_unlock(dir, addr, pw, strlen(pw), &o->params, &a, &error);
            double t = now() - t0;
            if (which == 0) {
                if (r != KEYWRAP_OK) {
                    fprintf(stderr, "store-import: unlock with the password: %s\n", error);
                    goto out;
                }
                char box[4096];
                struct mailbox *mb = NULL;
                t_right[i] = t;
                t0 = now();
                if (account_mailbox_dir(box, sizeof box, data, a.user.mailbox) == 0)
                    mb = mailbox_open(box, a.mk, a.user.public_key, a.sk, &error);
                t_open[i] = now() - t0;
                account_free(&a);
                if (mb == NULL) {
                    fprintf(stderr, "store-import: open after unlock: %s\n", error);
                    goto out;
                }
                mailbox_close(&mb);
            } else if (r != KEYWRAP_WRONG) {
                fprintf(stderr, "store-import: a %s password answered %d, not \"wrong\"\n",
                        which == 1 ? "wrong" : "unknown user's", r);
                if (r == KEYWRAP_OK)
                    account_free(&a);
                goto out;
            } else {
                (which == 1 ? t_wrong : t_unknown)[i] = t;
            }
        }
    }
    double mr = median(t_right, o->unlocks), mw = median(t_wrong, o->unlocks);
    double mu = median(t_unknown, o->unlocks), mo = median(t_open, o->unlocks);
    printf("unlock medians: right password %.1f ms (then opening the store %.1f ms), "
           "wrong password %.1f ms, unknown address %.1f ms; wrong/right %.2f\n",
           mr * 1e3, mo * 1e3, mw * 1e3, mu * 1e3, mw / mr);
    printf("  right: %.1f-%.1f ms, wrong: %.1f-%.1f ms, unknown: %.1f-%.1f ms (min-max)\n",
           t_right[0] * 1e3, t_right[o->unlocks - 1] * 1e3, t_wrong[0] * 1e3,
           t_wrong[o->unlocks - 1] * 1e3, t_unknown[0] * 1e3, t_unknown[o->unlocks - 1] * 1e3);
    printf("RESULT unlock ops=%u mem_kib=%u runs=%u right_ms=%.2f wrong_ms=%.2f unknown_ms=%.2f "
           "open_ms=%.2f\n", o->params.ops, o->params.mem_kib, o->unlocks, mr * 1e3, mw * 1e3,
           mu * 1e3, mo * 1e3);
    ret = 0;
out:
    seal_secret_free(&recovery);
    directory_close(&dir);
    return ret;
}

/* --- main ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f, "usage: store-import [-n MESSAGES] [-r REPS] [-b BATCH] [-u UNLOCKS]\n"
               "         [--argon2-ops N] [--argon2-memory-kib N] [--tmpdir DIR]\n"
               "         [--no-import] [--no-unlock]\n"
               "defaults: -n 2000 -r 3 -b MESSAGES (one import) -u 5, Argon2id %u passes,\n"
               "%u KiB (the configuration defaults), --tmpdir /tmp\n",
               KEYWRAP_DEFAULT_OPS, KEYWRAP_DEFAULT_MEM_KIB);
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {.messages = 2000, .reps = 3, .unlocks = 5,
                     .params = {KEYWRAP_DEFAULT_OPS, KEYWRAP_DEFAULT_MEM_KIB},
                     .tmpdir = "/tmp"};
    static const struct option longs[] = {
        {"argon2-ops", required_argument, NULL, 'O'},
        {"argon2-memory-kib", required_argument, NULL, 'M'},
        {"tmpdir", required_argument, NULL, 'T'},
        {"no-import", no_argument, NULL, 'I'},
        {"no-unlock", no_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, bad = 0;
    while ((c = getopt_long(argc, argv, "n:r:b:u:h", longs, NULL)) != -1) {
        switch (c) {
        case 'n': bad |= parse_uint(optarg, 1, MAX_MESSAGES, &o.messages); break;
        case 'r': bad |= parse_uint(optarg, 1, MAX_REPS, &o.reps); break;
        case 'b': bad |= parse_uint(optarg, 1, MAX_MESSAGES, &o.batch); break;
        case 'u': bad |= parse_uint(optarg, 1, MAX_UNLOCKS, &o.unlocks); break;
        case 'O': bad |= parse_uint(optarg, 1, KEYWRAP_MAX_OPS, &o.params.ops); break;
        case 'M': bad |= parse_uint(optarg, 8, KEYWRAP_MAX_MEM_KIB, &o.params.mem_kib); break;
        case 'T': o.tmpdir = optarg; break;
        case 'I': o.no_import = true; break;
        case 'U': o.no_unlock = true; break;
        case 'h': usage(stdout); return 0;
        default: bad = -1; break;
        }
    }
    if (bad || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (o.batch == 0 || o.batch > o.messages)
        o.batch = o.messages;

    log_init("store-import", false, LOG_LEVEL_WARN);
    if (seal_init() < 0 || mime_init() < 0) {
        fprintf(stderr, "store-import: cannot initialise libsodium or GMime\n");
        return 1;
    }
    char root[4096];
    snprintf(root, sizeof root, "%s/store-import.XXXXXX", o.tmpdir);
    if (mkdtemp(root) == NULL) {
        fprintf(stderr, "store-import: mkdtemp %s: %s\n", root, strerror(errno));
        mime_shutdown();
        return 1;
    }
    printf("store-import: temp dir %s\n", root);
    int ret = 0;
    if (!o.no_import)
        ret = bench_import(&o, root);
    if (ret == 0 && !o.no_unlock)
        ret = bench_unlock(&o, root);
    if (nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
        fprintf(stderr, "store-import: cannot remove %s: %s\n", root, strerror(errno));
    mime_shutdown();
    return ret < 0 ? 1 : 0;
}
