/* auth-verify.c — sealmail's DKIM verification rate, for bench/auth.
 *
 * Verifies N copies of one signed message, one after the other, on one
 * thread, by the path smtpd takes at end of data (mailauth/check.c): the
 * raw bytes go through a msgstream in CHUNK-byte pieces, which hands each
 * header field and the body to a fresh dkim_verifier; then
 * dkim_verifier_result() runs over a fresh dnsview, asks for the key
 * (MAILAUTH_NEED_DNS), gets a copy of the key TXT answer from memory
 * (instead of the resolver) and runs again to MAILAUTH_DONE.  Each
 * verification therefore parses the signature and the key record, hashes
 * the body and the signed header fields and checks the RSA or Ed25519
 * signature, as it would for a real message; only the DNS round trip is
 * left out.  No DNS code runs at all: nothing can leave the machine.
 *
 * Every verification must give exactly one signature with "pass", and the
 * only question asked must be the TXT record of KEYNAME; otherwise the
 * program stops with status 1.  Startup and reading the files are not
 * timed; WARMUP verifications run before the clock starts.
 *
 * Output: one line per repetition, then
 *   RESULT verify n=N reps=R bytes=.. per_s=MEDIAN min_per_s=.. max_per_s=..
 *          per_cpu_s=.. key_bits=..
 * (per_s by the wall clock, per_cpu_s by the process's CPU time)
 * for bench/auth to parse. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/mem.h"
#include "dns/answer.h"
#include "mailauth/dkim.h"
#include "mailauth/dnsview.h"
#include "mailauth/msgstream.h"

#define MAX_COUNT 10000000u
#define MAX_REPS 50u
#define MAX_MESSAGE (16u * 1024 * 1024)
#define MAX_RECORD 8192u
#define FIELD_MAX (64 * 1024)   /* as mailauth/check.c */
#define FIELDS_MAX 1000

struct opts {
    unsigned count, warmup, reps, chunk;
    const char *message_path, *key_name, *record_path;
};

/* What one verification needs; read once, never changed. */
struct input {
    char *msg;
    size_t msg_len;
    struct dns_answer *key;   /* the TXT answer for key_name */
    const char *key_name;
    unsigned chunk;
};

static double clock_s(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
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

/* The whole of a file of at most max bytes, NUL-terminated; NULL on error. */
static char *read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "auth-verify: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *data = sm_malloc(max + 1);
    size_t n = fread(data, 1, max + 1, f);
    bool bad = ferror(f) || n > max;
    fclose(f);
    if (bad || n == 0) {
        fprintf(stderr, "auth-verify: %s: %s\n", path,
                n > max ? "too large" : n == 0 ? "empty" : "read error");
        free(data);
        return NULL;
    }
    data[n] = '\0';
    *len = n;
    return data;
}

/* --- one verification, as smtpd does it ------------------------------------------ */

static bool on_field(void *arg, const char *f, size_t len, bool complete)
{
    if (complete)
        dkim_verifier_header(arg, f, len);
    return true;
}

static void on_headers_done(void *arg)
{
    dkim_verifier_headers_done(arg);
}

static void on_body(void *arg, const void *p, size_t n)
{
    dkim_verifier_body(arg, p, n);
}

static int on_out(void *arg, const void *p, size_t n)
{
    (void)arg, (void)p, (void)n;
    return 0; /* smtpd writes these bytes to the spool; the bench drops them */
}

static const struct msgstream_sink sink = {on_field, on_headers_done, on_body, on_out};

/* Answer the pending questions from memory: only the key's TXT record is
 * expected.  Returns 0, or -1 for any other question. */
static int answer_pending(const struct input *in, struct dnsview *view)
{
    size_t n = dnsview_pending(view);
    for (size_t i = 0; i < n; i++) {
        const char *name;
        uint16_t type;
        /* answering removes the question from the pending list */
        dnsview_pending_at(view, 0, &name, &type);
        if (type != DNS_T_TXT || strcasecmp(name, in->key_name) != 0) {
            fprintf(stderr, "auth-verify: unexpected question: %s type %u\n", name, type);
            return -1;
        }
        char copy[DNS_NAME_MAX + 1];
        snprintf(copy, sizeof copy, "%s", name);
        dnsview_put(view, copy, type, dns_answer_dup(in->key));
    }
    return 0;
}

/* One verification of the message; 0 when it passed.  *bits gets the key size. */
static int verify_once(const struct input *in, unsigned *bits)
{
    struct dkim_verifier *v = dkim_verifier_new(NULL);
    struct msgstream *ms = msgstream_new(&sink, v, FIELD_MAX, FIELDS_MAX);
    struct dnsview *view = dnsview_new();
    int ret = -1;

    for (size_t off = 0; off < in->msg_len; off += in->chunk) {
        size_t n = in->msg_len - off < in->chunk ? in->msg_len - off : in->chunk;
        msgstream_write(ms, in->msg + off, n);
    }
    msgstream_end(ms);
    dkim_verifier_body_done(v);

    int64_t t = (int64_t)time(NULL);
    int step = dkim_verifier_result(v, view, t);
    for (int round = 0; step == MAILAUTH_NEED_DNS && round < 4; round++) {
        if (answer_pending(in, view) < 0)
            goto out;
        step = dkim_verifier_result(v, view, t);
    }
    if (step != MAILAUTH_DONE) {
        fprintf(stderr, "auth-verify: the verifier still wants DNS answers\n");
        goto out;
    }
    if (dkim_verifier_count(v) != 1) {
        fprintf(stderr, "auth-verify: %zu signatures evaluated, expected 1\n",
                dkim_verifier_count(v));
        goto out;
    }
    const struct dkim_sig_result *r = dkim_verifier_get(v, 0);
    if (r->result != DKIM_PASS) {
        fprintf(stderr, "auth-verify: dkim=%s (%s)\n", dkim_result_name(r->result), r->reason);
        goto out;
    }
    *bits = r->key_bits;
    ret = 0;
out:
    dnsview_free(&view);
    msgstream_free(&ms);
    dkim_verifier_free(&v);
    return ret;
}

/* --- main ------------------------------------------------------------------------ */

static int load_input(const struct opts *o, struct input *in)
{
    size_t rlen = 0;
    memset(in, 0, sizeof *in);
    in->msg = read_file(o->message_path, MAX_MESSAGE, &in->msg_len);
    if (in->msg == NULL)
        return -1;
    char *record = read_file(o->record_path, MAX_RECORD, &rlen);
    if (record == NULL)
        return -1;
    while (rlen > 0 && (record[rlen - 1] == '\n' || record[rlen - 1] == '\r'))
        record[--rlen] = '\0';
    /* one TXT record; its strings joined, as answer.h stores it */
    struct dns_rr rr = {.type = DNS_T_TXT, .data = (uint8_t *)record, .len = rlen};
    in->key = dns_answer_new(DNS_OK);
    dns_answer_add(in->key, &rr);
    free(record);
    in->key_name = o->key_name;
    in->chunk = o->chunk;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: auth-verify [-n COUNT] [-w WARMUP] [-r REPS] [-c CHUNK]\n"
               "                   MESSAGE KEYNAME RECORDFILE\n"
               "Verifies COUNT copies of the DKIM-signed MESSAGE (CRLF line ends), with\n"
               "the TXT record in RECORDFILE as the answer for KEYNAME (e.g.\n"
               "sel._domainkey.example.test), REPS times; prints verifications/s.\n"
               "defaults: -n 2000 -w 200 -r 1 -c 4096 (bytes per msgstream_write)\n");
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
    struct opts o = {.count = 2000, .warmup = 200, .reps = 1, .chunk = 4096};
    static const struct option longs[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, bad = 0;
    while ((c = getopt_long(argc, argv, "n:w:r:c:h", longs, NULL)) != -1) {
        switch (c) {
        case 'n': bad |= parse_uint(optarg, 1, MAX_COUNT, &o.count); break;
        case 'w': bad |= parse_uint(optarg, 0, MAX_COUNT, &o.warmup); break;
        case 'r': bad |= parse_uint(optarg, 1, MAX_REPS, &o.reps); break;
        case 'c': bad |= parse_uint(optarg, 1, MAX_MESSAGE, &o.chunk); break;
        case 'h': usage(stdout); return 0;
        default: bad = -1; break;
        }
    }
    if (bad || argc - optind != 3) {
        usage(stderr);
        return 2;
    }
    o.message_path = argv[optind];
    o.key_name = argv[optind + 1];
    o.record_path = argv[optind + 2];

    log_init("auth-verify", false, LOG_LEVEL_WARN);
    struct input in;
    if (load_input(&o, &in) < 0) {
        free(in.msg);
        return 1;
    }
    double rate[MAX_REPS], cpu_rate[MAX_REPS];
    unsigned bits = 0;
    int ret = 0;
    for (unsigned i = 0; i < o.warmup && ret == 0; i++)
        ret = verify_once(&in, &bits);
    for (unsigned rep = 0; rep < o.reps && ret == 0; rep++) {
        double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        for (unsigned i = 0; i < o.count && ret == 0; i++)
            ret = verify_once(&in, &bits);
        double dt = clock_s(CLOCK_MONOTONIC) - t0, dc = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        if (ret == 0) {
            rate[rep] = o.count / dt;
            cpu_rate[rep] = o.count / dc;
            printf("rep %u: %u verifications in %.3f s (%.3f s of CPU): %.0f/s\n", rep + 1,
                   o.count, dt, dc, rate[rep]);
        }
    }
    if (ret == 0) {
        double lo = rate[0], hi = rate[0];
        for (unsigned i = 1; i < o.reps; i++) {
            lo = rate[i] < lo ? rate[i] : lo;
            hi = rate[i] > hi ? rate[i] : hi;
        }
        printf("RESULT verify n=%u reps=%u bytes=%zu per_s=%.1f min_per_s=%.1f max_per_s=%.1f "
               "per_cpu_s=%.1f key_bits=%u\n", o.count, o.reps, in.msg_len, median(rate, o.reps),
               lo, hi, median(cpu_rate, o.reps), bits);
    }
    dns_answer_free(in.key);
    free(in.msg);
    return ret < 0 ? 1 : 0;
}
