/* queued-outbound.c — outbound delivery in queued (see outbound.h).
 *
 * Everything but file I/O runs on queued's loop: DNS through libunbound
 * on the same event_base, SMTP sessions through smtp/client.h.  File work
 * (locking, decrypting, saving state, scans) goes to our own worker pool
 * (ob->files, apart from queued's routing batches); an attempt waits for
 * it, so the loop and the worker never touch an entry at the same time.
 *
 * The entries known live in ob->due, an array sorted by id with each
 * one's next attempt time: the router's new ids (outbound_routed(), once
 * their spool entries are gone), each attempt's outcome and the periodic full
 * scan (scan_merge()) keep it current, and start_due() starts attempts
 * from it, so the queue directory is read once per scan_interval, not
 * after every attempt.
 *
 * An attempt is a small state machine:
 *   OPEN (worker) -> per domain: MTA-STS, MX -> per host: A, AAAA, [TLSA] ->
 *   per address: SESSION -> [SAVE (worker)] -> next domain ... ->
 *   FINISH: schedule, expire, notices (spool writer, loop) -> SAVE or
 *   REMOVE (worker) -> end. */
#include "daemon/outbound.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/workpool.h"
#include "daemon/dsn.h"
#include "daemon/outbound-sts.h"
#include "dns/resolver.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "mailauth/msgstream.h"
#include "net/tls.h"
#include "smtp/client.h"
#include "store/dkimkeys.h"
#include "store/outq.h"
#include "store/spool.h"

#define MX_MAX 10         /* MX hosts tried per domain and attempt */
#define ADDRS_MAX 8       /* addresses tried per host */
#define SIGN_KEYS_MAX 4   /* active keys used per domain (one pair, normally) */
#define SIGN_FIELDS_MAX 1000
#define SIGN_HEADER_MAX (1024 * 1024)
#define ERROR_MAX 256

/* The fields signed (h=); absent ones are signed as absent, so they
 * cannot be added on the way (RFC 6376 §5.4). */
static const char *const SIGNED_FIELDS[] = {
    "from",        "to",       "cc",         "subject",      "date",
    "message-id",  "reply-to", "in-reply-to", "references",  "mime-version",
    "content-type", "content-transfer-encoding", "sender", "list-id", "list-unsubscribe",
};

#ifndef OUTBOUND_THREADS  /* -D for measurements */
#define OUTBOUND_THREADS 2  /* file work of attempts and scans in flight */
#endif

struct attempt;

/* A queue entry the loop knows of (ob->due, sorted by id). */
struct due {
    char id[OUTQ_ID_LEN + 1];
    int64_t next_attempt;  /* NOT_KNOWN: left to the next full scan */
    uint64_t touched;      /* ob->gen when an attempt or the router last set it */
    bool running;          /* an attempt holds it */
};
#define NOT_KNOWN INT64_MAX

struct outbound {
    const struct sm_config *cfg;
    struct event_base *base;
    struct workpool *pool;   /* queued's: MTA-STS fetches */
    struct workpool *files;  /* ours: attempts' file work, scans */
    const uint8_t *pk, *sk;
    char spool_dir[4096], queue_dir[4096];
    struct dns_resolver *dns;
    struct sts_resolver *sts; /* MTA-STS policies */
    bool dnssec;             /* a trust anchor is configured: DANE may apply */
    SSL_CTX *tls;
    struct spool *spool;     /* for notices */
    struct outq_schedule sched;
    void (*spool_ready)(void *arg, const char *id);
    void *arg;
    struct event *scan_ev;
    struct event *wake_ev;   /* resumes attempts waiting for a session slot */
    bool scanning, stopping;
    bool scan_again;         /* a scan was asked for while one ran */
    struct attempt *attempts;
    unsigned n_active;
    struct due *due;         /* every entry known, by id */
    size_t n_due, cap_due;
    uint64_t gen;            /* counts full scans started */
};

struct mxhost {
    char name[DNS_NAME_MAX + 1];
    uint16_t pref;
};

struct attempt {
    struct outbound *ob;
    struct attempt *next;
    char id[OUTQ_ID_LEN + 1];
    int skip;                /* OPEN: 1 nothing to do now, -1 error */
    bool gone;               /* the entry no longer exists */
    int64_t next_known;      /* its next attempt as saved, or NOT_KNOWN */
    char error[ERROR_MAX];
    struct outq_entry e;
    int msg_fd, lock_fd;
    /* the domain being delivered */
    char domain[DNS_NAME_MAX + 1];
    size_t *idx, n_idx;      /* its pending recipients (indices into e.rcpts) */
    bool *tried;             /* recipients whose domain had its turn in this attempt */
    struct mxhost mx[MX_MAX];
    size_t n_mx, cur_mx;
    bool mx_secure, addr_secure;
    struct sockaddr_storage addrs[ADDRS_MAX];
    socklen_t addrlens[ADDRS_MAX];
    size_t n_addrs, cur_addr;
    struct dns_answer *tlsa;
    enum smtp_tls_policy policy;
    bool plain_retry;
    struct dns_query *q;
    struct sts_lookup *sts_q;
    struct sts_policy *sts;  /* the domain's MTA-STS policy; NULL: none */
    struct smtp_client *client;
    bool waiting;            /* for a session slot to its domain (max_per_destination) */
    char last_error[OUTQ_REPLY_MAX + 1];
    bool dirty;              /* e changed since the last save */
    unsigned delivered, bounced;
    /* notices */
    struct spool_writer *w;  /* a notice being written (before its commit) */
    bool notice_pending;     /* a notice is being committed */
    bool notice_delayed;
};

static void next_domain(struct attempt *a);
static void next_host(struct attempt *a);
static void finish(struct attempt *a);
static void attempt_end(struct attempt *a);

int outbound_queue_dir(char *out, size_t outlen, const char *data_dir)
{
    int n = snprintf(out, outlen, "%s/queue", data_dir);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

/* --- routing: sign and queue (worker thread) ----------------------------------- */

struct signing {
    struct directory *dir;
    const uint8_t *sk;
    char **fields;
    size_t *lens, n_fields, bytes;
    bool too_big;
    struct dkim_signer *signers[SIGN_KEYS_MAX];
    size_t n_signers;
    struct dkimkey keys[SIGN_KEYS_MAX];
    size_t n_keys;
};

static bool sign_field(void *arg, const char *field, size_t len, bool complete)
{
    struct signing *s = arg;
    if (!complete || s->n_fields == SIGN_FIELDS_MAX || s->bytes + len > SIGN_HEADER_MAX) {
        s->too_big = true;
        return true;
    }
    s->fields = sm_realloc(s->fields, (s->n_fields + 1) * sizeof *s->fields);
    s->lens = sm_realloc(s->lens, (s->n_fields + 1) * sizeof *s->lens);
    s->fields[s->n_fields] = sm_strndup(field, len);
    s->lens[s->n_fields++] = len;
    s->bytes += len;
    return true;
}

static void key_found(void *arg, const struct dkimkey *k)
{
    struct signing *s = arg;
    if (s->n_keys < SIGN_KEYS_MAX)
        s->keys[s->n_keys++] = *k;
}

/* The author domain: the one domain of the one From field, else "". */
static void author_domain(const struct signing *s, char out[DNS_NAME_MAX + 1])
{
    const char *values[2];
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < s->n_fields; i++) {
        if (s->lens[i] > 5 && strncasecmp(s->fields[i], "from", 4) == 0) {
            const char *p = s->fields[i] + 4;
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p != ':')
                continue;
            if (n == 2)
                return;
            values[n++] = p + 1;
        }
    }
    struct dmarc_from df;
    if (n == 1 && dmarc_from_parse(values, n, &df) == DMARC_FROM_OK && df.n == 1)
        snprintf(out, DNS_NAME_MAX + 1, "%s", df.domain[0]);
}

static void sign_headers_done(void *arg)
{
    struct signing *s = arg;
    char domain[DNS_NAME_MAX + 1];
    const char *why;
    if (s->too_big)
        return;
    author_domain(s, domain);
    if (domain[0] == '\0' || directory_dkim_list(s->dir, domain, true, key_found, s) <= 0)
        return;
    for (size_t i = 0; i < s->n_keys; i++) {
        EVP_PKEY *key = directory_dkim_private(s->dir, &s->keys[i], s->sk);
        if (key == NULL) {
            log_warn("outbound dkim-key-unusable domain=%s selector=%s error=\"%s\"", domain,
                     s->keys[i].selector, directory_error(s->dir));
            continue;
        }
        struct dkim_sign_params p = {
            .key = key, .domain = s->keys[i].domain, .selector = s->keys[i].selector,
            .headers = SIGNED_FIELDS, .n_headers = sizeof SIGNED_FIELDS / sizeof *SIGNED_FIELDS,
            .identity = NULL, .time = now_s(), .expire = -1};
        struct dkim_signer *sg = dkim_signer_new(&p, &why);
        EVP_PKEY_free(key); /* the signer keeps its own reference */
        if (sg == NULL) {
            log_warn("outbound dkim-signer domain=%s error=\"%s\"", domain, why);
            continue;
        }
        for (size_t f = 0; f < s->n_fields; f++)
            dkim_signer_header(sg, s->fields[f], s->lens[f]);
        dkim_signer_headers_done(sg);
        s->signers[s->n_signers++] = sg;
    }
}

static void sign_body(void *arg, const void *p, size_t n)
{
    struct signing *s = arg;
    for (size_t i = 0; i < s->n_signers; i++)
        dkim_signer_body(s->signers[i], p, n);
}

static int sign_out(void *arg, const void *p, size_t n)
{
    (void)arg, (void)p, (void)n;
    return 0;
}

/* The DKIM-Signature fields for the message (prefix, then body), or NULL
 * when it is not ours to sign. */
static char *dkim_sign(const struct outbound *ob, struct directory *dir, const char *prefix,
                       size_t prefix_len, int body)
{
    static const struct msgstream_sink sink = {sign_field, sign_headers_done, sign_body,
                                               sign_out};
    struct signing s = {.dir = dir, .sk = ob->sk};
    struct msgstream *m = msgstream_new(&sink, &s, 65536, SIGN_FIELDS_MAX);
    char *buf = sm_malloc(65536), *out = NULL;
    ssize_t n;
    off_t off = 0;
    if (prefix_len > 0)
        msgstream_write(m, prefix, prefix_len);
    while ((n = pread(body, buf, 65536, off)) > 0) {
        msgstream_write(m, buf, (size_t)n);
        off += n;
    }
    msgstream_end(m);
    msgstream_free(&m);
    free(buf);
    size_t len = 0;
    for (size_t i = 0; i < s.n_signers; i++) {
        const char *why = "read error";
        char *sig = n == 0 ? dkim_signer_finish(s.signers[i], &why) : NULL;
        if (sig != NULL) {
            size_t l = strlen(sig);
            out = sm_realloc(out, len + l + 1);
            memcpy(out + len, sig, l + 1);
            len += l;
            free(sig);
        } else {
            log_warn("outbound dkim-sign-failed error=\"%s\"", why);
        }
        dkim_signer_free(&s.signers[i]);
    }
    for (size_t i = 0; i < s.n_fields; i++)
        free(s.fields[i]);
    free(s.fields);
    free(s.lens);
    return out;
}

int outbound_enqueue(struct outbound *ob, struct directory *dir, const char *id,
                     const struct spool_envelope *env, const char *const *rcpts, size_t n,
                     const char *prefix, size_t prefix_len, int body, const char **error_r)
{
    struct outq_entry e = {0};
    struct stat st;
    char path[4200];
    if (n == 0 || n > OUTQ_RCPTS_MAX) {
        *error_r = "too many outbound recipients";
        return -1;
    }
    /* routed before (a crash before the spool entry went): nothing to do */
    if (snprintf(path, sizeof path, "%s/%s.st", ob->queue_dir, id) < (int)sizeof path &&
        stat(path, &st) == 0)
        return 0;
    snprintf(e.id, sizeof e.id, "%s", id);
    e.mail_from = env->mail_from;
    e.flags = (env->smtputf8 ? OUTQ_F_SMTPUTF8 : 0) |
              (strcmp(env->body_type, "7BIT") != 0 ? OUTQ_F_8BIT : 0) |
              (env->mail_from[0] == '\0' ? OUTQ_F_NOBOUNCE : 0);
    e.created = now_s();
    e.rcpts = sm_calloc(n, sizeof *e.rcpts);
    e.n_rcpts = n;
    for (size_t i = 0; i < n; i++)
        e.rcpts[i] = (struct outq_rcpt){(char *)(uintptr_t)rcpts[i], OUTQ_PENDING, 0,
                                        (char *)(uintptr_t)""};
    char *sigs = dkim_sign(ob, dir, prefix, prefix_len, body);
    size_t sig_len = sigs != NULL ? strlen(sigs) : 0;
    char *all = sm_malloc(sig_len + prefix_len + 1);
    if (sig_len > 0)
        memcpy(all, sigs, sig_len);
    if (prefix_len > 0)
        memcpy(all + sig_len, prefix, prefix_len);
    int r = outq_create(ob->queue_dir, &e, ob->pk, all, sig_len + prefix_len, body, error_r);
    if (r > 0)
        log_info("outbound queued queue=%s rcpts=%zu dkim=%s", id, n, sigs ? "signed" : "none");
    free(sigs);
    free(all);
    free(e.rcpts);
    return r < 0 ? -1 : 0;
}

/* --- worker jobs ---------------------------------------------------------------- */

/* OPEN: lock, load, check that it is due and not being routed, decrypt. */
static void open_work(void *arg)
{
    struct attempt *a = arg;
    struct outbound *ob = a->ob;
    const char *error;

    a->lock_fd = outq_lock(ob->queue_dir, a->id, false, &error);
    if (a->lock_fd < 0) {
        a->gone = strcmp(error, "no such entry") == 0;
        a->skip = strcmp(error, "busy") == 0 || a->gone ? 1 : -1;
        snprintf(a->error, sizeof a->error, "%s", error);
        return;
    }
    if (outq_load(ob->queue_dir, a->id, &a->e, &error) < 0) {
        a->skip = -1;
        snprintf(a->error, sizeof a->error, "%s", error);
        return;
    }
    if (a->e.next_attempt > now_s())
        a->next_known = a->e.next_attempt; /* the CLI or a crash changed it */
    if (a->e.next_attempt > now_s() || spool_has(ob->spool_dir, a->id)) {
        a->skip = 1;
        return;
    }
    a->msg_fd = memfd_create("sealmail-outbound", MFD_CLOEXEC);
    if (a->msg_fd < 0 ||
        outq_read_message(ob->queue_dir, &a->e, ob->pk, ob->sk, a->msg_fd, &error) < 0) {
        a->skip = -1;
        snprintf(a->error, sizeof a->error, "%s",
                 a->msg_fd < 0 ? "memfd_create failed" : error);
    }
}

static void save_work(void *arg)
{
    struct attempt *a = arg;
    const char *error;
    if (outq_save(a->ob->queue_dir, &a->e, &error) < 0) {
        a->skip = -1;
        snprintf(a->error, sizeof a->error, "%s", error);
    } else {
        a->dirty = false;
    }
}

static void remove_work(void *arg)
{
    struct attempt *a = arg;
    const char *error;
    if (outq_remove(a->ob->queue_dir, a->id, &error) < 0) {
        a->skip = -1;
        snprintf(a->error, sizeof a->error, "%s", error);
    } else {
        a->gone = true;
    }
}

/* --- one domain ----------------------------------------------------------------- */

static const char *domain_of(const char *addr)
{
    const char *at = strrchr(addr, '@');
    return at != NULL ? at + 1 : "";
}

static void reply_text(const struct smtp_client_reply *r, char out[OUTQ_REPLY_MAX + 1])
{
    if (r->code == 0)
        snprintf(out, OUTQ_REPLY_MAX + 1, "%s", r->text);
    else if (r->enhanced[0] != '\0')
        snprintf(out, OUTQ_REPLY_MAX + 1, "%d %s %s", r->code, r->enhanced, r->text);
    else
        snprintf(out, OUTQ_REPLY_MAX + 1, "%d %s", r->code, r->text);
}

/* Every pending recipient of the current domain gets state s. */
static void domain_settle(struct attempt *a, enum outq_rcpt_state s, const char *reply)
{
    for (size_t i = 0; i < a->n_idx; i++) {
        struct outq_rcpt *r = &a->e.rcpts[a->idx[i]];
        if (r->state != OUTQ_PENDING)
            continue;
        if (s == OUTQ_PENDING) {
            outq_set_rcpt(&a->e, a->idx[i], OUTQ_PENDING, r->when, reply);
        } else {
            outq_set_rcpt(&a->e, a->idx[i], s, now_s(), reply);
            a->dirty = true;
        }
    }
}

static void save_done_next(void *arg)
{
    struct attempt *a = arg;
    if (a->ob->stopping) {
        attempt_end(a);
        return;
    }
    if (a->skip < 0) { /* the state could not be saved: stop here, retry later */
        log_warn("outbound state-not-saved queue=%s error=\"%s\"", a->id, a->error);
        attempt_end(a);
        return;
    }
    next_domain(a);
}

/* True when every recipient is settled for good (delivered or bounced):
 * then the attempt's end removes the entry and no other session or
 * notice comes first, so a save now would only cost two more syncs. */
static bool all_settled(const struct attempt *a)
{
    return outq_count(&a->e, OUTQ_PENDING) == 0 && outq_count(&a->e, OUTQ_FAILED) == 0;
}

/* The current domain is done for this attempt: save what was decided
 * before anything else is sent. */
static void domain_done(struct attempt *a)
{
    dns_answer_free(a->tlsa);
    a->tlsa = NULL;
    if (a->dirty && !all_settled(a))
        workpool_submit(a->ob->files, save_work, save_done_next, a);
    else
        next_domain(a); /* finish() removes a settled entry durably */
}

static void domain_fail(struct attempt *a, bool permanent, const char *why)
{
    log_info("outbound %s queue=%s domain=%s reason=\"%s\"", permanent ? "bounced" : "deferred",
             a->id, a->domain, why);
    domain_settle(a, permanent ? OUTQ_FAILED : OUTQ_PENDING, why);
    domain_done(a);
}

static void on_mx(void *arg, struct dns_answer *ans);
static void on_sts(void *arg, const struct sts_policy *p, const char *source);

static void next_domain(struct attempt *a)
{
    a->domain[0] = '\0';
    a->n_idx = 0;
    /* the first domain with a pending recipient not tried yet */
    for (size_t i = 0; i < a->e.n_rcpts && a->domain[0] == '\0'; i++)
        if (a->e.rcpts[i].state == OUTQ_PENDING && !a->tried[i]) {
            snprintf(a->domain, sizeof a->domain, "%s", domain_of(a->e.rcpts[i].addr));
            for (char *p = a->domain; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        }
    if (a->domain[0] == '\0') {
        finish(a);
        return;
    }
    for (size_t i = 0; i < a->e.n_rcpts; i++)
        if (a->e.rcpts[i].state == OUTQ_PENDING && !a->tried[i] &&
            strcasecmp(domain_of(a->e.rcpts[i].addr), a->domain) == 0) {
            a->idx[a->n_idx++] = i;
            a->tried[i] = true;
        }
    a->n_mx = a->cur_mx = 0;
    a->last_error[0] = '\0';
    free(a->sts);
    a->sts = NULL;
    a->sts_q = sts_lookup_start(a->ob->sts, a->domain, on_sts, a);
}

/* The domain's MTA-STS policy is known (or that it has none): its MX. */
static void on_sts(void *arg, const struct sts_policy *p, const char *source)
{
    struct attempt *a = arg;
    a->sts_q = NULL;
    if (p != NULL && p->mode != STS_MODE_NONE) {
        a->sts = sm_malloc(sizeof *a->sts);
        *a->sts = *p;
        log_info("outbound mta-sts queue=%s domain=%s mode=%s source=%s", a->id, a->domain,
                 sts_mode_name(p->mode), source);
    }
    a->q = dns_resolve(a->ob->dns, a->domain, DNS_T_MX, on_mx, a);
}

static int cmp_mx(const void *x, const void *y)
{
    const struct mxhost *a = x, *b = y;
    return (int)a->pref - (int)b->pref;
}

static void on_mx(void *arg, struct dns_answer *ans)
{
    struct attempt *a = arg;
    a->q = NULL;
    if (ans->status == DNS_TEMPFAIL || ans->status == DNS_PERMFAIL) {
        dns_answer_free(ans);
        domain_fail(a, false, "4.4.3 MX lookup failed (DNS error); will retry");
        return;
    }
    if (ans->status == DNS_NXDOMAIN) {
        dns_answer_free(ans);
        domain_fail(a, true, "550 5.1.2 the recipient domain does not exist (NXDOMAIN)");
        return;
    }
    a->mx_secure = ans->secure;
    if (ans->n == 0) { /* no MX: the domain is its own mail host (RFC 5321 §5.1) */
        snprintf(a->mx[0].name, sizeof a->mx[0].name, "%s", a->domain);
        a->n_mx = 1;
    }
    for (size_t i = 0; i < ans->n && a->n_mx < MX_MAX; i++) {
        if (ans->rr[i].type != DNS_T_MX || ans->rr[i].name == NULL)
            continue;
        if (ans->rr[i].name[0] == '\0' || strcmp(ans->rr[i].name, ".") == 0) {
            /* null MX (RFC 7505): the domain accepts no mail */
            dns_answer_free(ans);
            domain_fail(a, true, "556 5.1.10 the recipient domain accepts no mail (null MX)");
            return;
        }
        snprintf(a->mx[a->n_mx].name, sizeof a->mx[0].name, "%s", ans->rr[i].name);
        a->mx[a->n_mx++].pref = ans->rr[i].pref;
    }
    dns_answer_free(ans);
    if (a->n_mx == 0) {
        domain_fail(a, false, "4.4.3 no usable MX host; will retry");
        return;
    }
    qsort(a->mx, a->n_mx, sizeof *a->mx, cmp_mx);
    next_host(a);
}

/* --- one host --------------------------------------------------------------------- */

static void on_a(void *arg, struct dns_answer *ans);
static void on_aaaa(void *arg, struct dns_answer *ans);
static void on_tlsa(void *arg, struct dns_answer *ans);
static void connect_next(struct attempt *a);
static bool sts_decide(struct attempt *a);

static void host_failed(struct attempt *a, const char *fmt, const char *host)
{
    snprintf(a->last_error, sizeof a->last_error, fmt, host);
    log_info("outbound host-skipped queue=%s mx=%s reason=\"%s\"", a->id, host, a->last_error);
    a->cur_mx++;
    next_host(a);
}

static void next_host(struct attempt *a)
{
    if (a->cur_mx >= a->n_mx) {
        domain_fail(a, false, a->last_error[0] ? a->last_error : "4.4.1 no MX host answered");
        return;
    }
    a->n_addrs = a->cur_addr = 0;
    a->addr_secure = true;
    a->plain_retry = false;
    dns_answer_free(a->tlsa);
    a->tlsa = NULL;
    a->q = dns_resolve(a->ob->dns, a->mx[a->cur_mx].name, DNS_T_A, on_a, a);
}

static void add_addrs(struct attempt *a, const struct dns_answer *ans, int family)
{
    unsigned port = a->ob->cfg->queue_remote_port;
    for (size_t i = 0; i < ans->n && a->n_addrs < ADDRS_MAX; i++) {
        struct sockaddr_storage *ss = &a->addrs[a->n_addrs];
        memset(ss, 0, sizeof *ss);
        if (family == AF_INET && ans->rr[i].type == DNS_T_A) {
            struct sockaddr_in *sin = (struct sockaddr_in *)ss;
            sin->sin_family = AF_INET;
            sin->sin_port = htons((uint16_t)port);
            memcpy(&sin->sin_addr, ans->rr[i].addr, 4);
            a->addrlens[a->n_addrs++] = sizeof *sin;
        } else if (family == AF_INET6 && ans->rr[i].type == DNS_T_AAAA) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons((uint16_t)port);
            memcpy(&sin6->sin6_addr, ans->rr[i].addr, 16);
            a->addrlens[a->n_addrs++] = sizeof *sin6;
        }
    }
}

static void on_a(void *arg, struct dns_answer *ans)
{
    struct attempt *a = arg;
    a->q = NULL;
    if (ans->status == DNS_OK) {
        add_addrs(a, ans, AF_INET);
        a->addr_secure = ans->secure;
    } else if (ans->status != DNS_NXDOMAIN) {
        a->addr_secure = false;
    }
    dns_answer_free(ans);
    a->q = dns_resolve(a->ob->dns, a->mx[a->cur_mx].name, DNS_T_AAAA, on_aaaa, a);
}

static void on_aaaa(void *arg, struct dns_answer *ans)
{
    struct attempt *a = arg;
    const char *host = a->mx[a->cur_mx].name;
    a->q = NULL;
    if (ans->status == DNS_OK)
        add_addrs(a, ans, AF_INET6);
    a->addr_secure = a->addr_secure && ans->secure;
    dns_answer_free(ans);
    if (a->n_addrs == 0) {
        host_failed(a, "4.4.4 no address for MX host %s", host);
        return;
    }
    /* DANE applies only along a DNSSEC-secure path: MX and addresses
     * (RFC 7672 §2.2) */
    if (a->ob->dnssec && a->mx_secure && a->addr_secure) {
        char name[DNS_NAME_MAX + 16];
        snprintf(name, sizeof name, "_%u._tcp.%s", a->ob->cfg->queue_remote_port, host);
        a->q = dns_resolve(a->ob->dns, name, DNS_T_TLSA, on_tlsa, a);
        return;
    }
    if (sts_decide(a))
        connect_next(a);
}

/* A host without DANE: a policy in mode "enforce" (RFC 8461 §5) lets mail
 * go only to an MX host it lists, over TLS with a certificate valid for
 * the host's name; "testing" and no policy leave TLS opportunistic.
 * false when the host was skipped. */
static bool sts_decide(struct attempt *a)
{
    const char *host = a->mx[a->cur_mx].name;
    if (a->sts == NULL || a->sts->mode != STS_MODE_ENFORCE) {
        a->policy = SMTP_TLS_OPPORTUNISTIC;
        return true;
    }
    if (!sts_policy_allows_mx(a->sts, host)) {
        host_failed(a, "4.7.5 MX host %s is not in the domain's MTA-STS policy", host);
        return false;
    }
    a->policy = SMTP_TLS_VERIFY_NAME;
    return true;
}

static void on_tlsa(void *arg, struct dns_answer *ans)
{
    struct attempt *a = arg;
    a->q = NULL;
    if (ans->status == DNS_TEMPFAIL || ans->bogus) {
        dns_answer_free(ans);
        /* never a downgrade: a TLSA answer we cannot trust skips the host */
        host_failed(a, "4.7.5 TLSA lookup for %s failed (DNSSEC bogus or DNS error)",
                    a->mx[a->cur_mx].name);
        return;
    }
    if (ans->status == DNS_OK && ans->secure && ans->n > 0) {
        a->tlsa = ans;
        a->policy = SMTP_TLS_DANE;
    } else {
        dns_answer_free(ans);
        if (!sts_decide(a))
            return;
    }
    connect_next(a);
}

/* --- one session ---------------------------------------------------------------- */

static void on_session(struct smtp_client *c, const struct smtp_client_result *r, void *arg);

/* Sessions running to a recipient domain.  RFC 5321 §4.5.4.1 asks
 * senders to limit their connections to one destination; a domain's MX
 * hosts serve it together, so the domain is the unit. */
static unsigned sessions_to(const struct outbound *ob, const char *domain)
{
    unsigned n = 0;
    for (const struct attempt *a = ob->attempts; a != NULL; a = a->next)
        if (a->client != NULL && strcmp(a->domain, domain) == 0)
            n++;
    return n;
}

/* A session ended: the attempts waiting for a slot get their turn, from
 * the loop's next turn (not inside the ending session's callback). */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct outbound *ob = arg;
    for (struct attempt *a = ob->attempts, *next; a != NULL && !ob->stopping; a = next) {
        next = a->next; /* connect_next() may end a */
        if (a->waiting && sessions_to(ob, a->domain) < ob->cfg->queue_max_per_destination) {
            a->waiting = false;
            connect_next(a);
        }
    }
}

static void connect_next(struct attempt *a)
{
    if (a->cur_addr >= a->n_addrs) {
        a->cur_mx++;
        next_host(a);
        return;
    }
    struct outbound *ob = a->ob;
    if (sessions_to(ob, a->domain) >= ob->cfg->queue_max_per_destination) {
        if (!a->waiting)
            log_info("outbound wait queue=%s domain=%s (max_per_destination sessions run)",
                     a->id, a->domain);
        a->waiting = true;
        return;
    }
    const char **rcpts = sm_calloc(a->n_idx, sizeof *rcpts);
    struct smtp_tlsa tlsa[DNS_ANSWER_RR_MAX];
    size_t n_tlsa = 0, n_sts_mx = 0;
    const char *sts_mx[STS_MX_MAX];
    for (size_t i = 0; a->policy == SMTP_TLS_VERIFY_NAME && i < a->sts->n_mx; i++)
        sts_mx[n_sts_mx++] = a->sts->mx[i];
    for (size_t i = 0; i < a->n_idx; i++)
        rcpts[i] = a->e.rcpts[a->idx[i]].addr;
    for (size_t i = 0; a->tlsa != NULL && i < a->tlsa->n; i++)
        if (a->tlsa->rr[i].type == DNS_T_TLSA)
            tlsa[n_tlsa++] = (struct smtp_tlsa){a->tlsa->rr[i].tlsa_usage,
                                                a->tlsa->rr[i].tlsa_selector,
                                                a->tlsa->rr[i].tlsa_mtype, a->tlsa->rr[i].data,
                                                a->tlsa->rr[i].len};
    struct smtp_client_params p = {
        .addr = (const struct sockaddr *)&a->addrs[a->cur_addr],
        .addrlen = a->addrlens[a->cur_addr],
        .mx_host = a->mx[a->cur_mx].name,
        .helo_name = ob->cfg->hostname,
        .tls = a->policy,
        .tls_ctx = ob->tls,
        .sts_mx = n_sts_mx ? sts_mx : NULL,
        .n_sts_mx = n_sts_mx,
        .tlsa = n_tlsa ? tlsa : NULL,
        .n_tlsa = n_tlsa,
        .mail_from = a->e.mail_from,
        .rcpts = rcpts,
        .n_rcpts = a->n_idx,
        .msg_fd = a->msg_fd,
        .smtputf8 = (a->e.flags & OUTQ_F_SMTPUTF8) != 0,
        .body_8bit = (a->e.flags & OUTQ_F_8BIT) != 0,
        .log_id = strtoull(a->id, NULL, 16),
    };
    char err[256];
    a->client = smtp_client_start(ob->base, &p, on_session, a, err, sizeof err);
    free(rcpts);
    if (a->client == NULL) { /* parameters we cannot send: permanent */
        char why[OUTQ_REPLY_MAX + 1];
        snprintf(why, sizeof why, "554 5.6.0 cannot be sent: %s", err);
        domain_fail(a, true, why);
    }
}

static const char *policy_name(enum smtp_tls_policy p)
{
    static const char *const names[] = {"none", "opportunistic", "mta-sts", "dane"};
    return (unsigned)p < 4 ? names[p] : "?";
}

static void on_session(struct smtp_client *c, const struct smtp_client_result *r, void *arg)
{
    struct attempt *a = arg;
    char text[OUTQ_REPLY_MAX + 1];
    size_t decided = 0;
    for (size_t i = 0; i < a->n_idx && i < r->n_rcpts; i++) {
        const struct smtp_client_rcpt_result *rr = &r->rcpts[i];
        reply_text(&rr->reply, text);
        if (rr->status == SMTP_DELIVERED) {
            outq_set_rcpt(&a->e, a->idx[i], OUTQ_DELIVERED, now_s(), text);
            a->delivered++;
        } else if (rr->status == SMTP_PERMFAIL) {
            outq_set_rcpt(&a->e, a->idx[i], OUTQ_FAILED, now_s(), text);
        } else {
            outq_set_rcpt(&a->e, a->idx[i], OUTQ_PENDING, a->e.rcpts[a->idx[i]].when, text);
            continue;
        }
        decided++;
        a->dirty = true;
    }
    reply_text(&r->reply, text);
    log_info("outbound session queue=%s domain=%s mx=%s result=%s stage=%s tls=%s%s%s "
             "sts=%s policy=%s verified=%s decided=%zu/%zu reply=\"%.120s\"",
             a->id, a->domain, a->mx[a->cur_mx].name, smtp_delivery_name(r->status),
             smtp_client_stage_name(r->stage), r->tls ? r->tls_version : "no",
             r->tls ? " " : "", r->tls ? r->tls_cipher : "",
             a->sts ? sts_mode_name(a->sts->mode) : "-", policy_name(a->policy),
             r->tls_verified ? "yes" : "no", decided, a->n_idx, text);
    enum smtp_client_stage stage = r->stage;
    smtp_client_free(&c); /* r is gone with it */
    a->client = NULL;
    event_active(a->ob->wake_ev, 0, 0);
    if (decided > 0 || stage >= SMTP_STAGE_MAIL) {
        domain_done(a);
        return;
    }
    /* the whole session failed before any recipient was answered */
    snprintf(a->last_error, sizeof a->last_error, "%s", text[0] ? text : "session failed");
    if (stage == SMTP_STAGE_TLS && a->policy == SMTP_TLS_OPPORTUNISTIC && !a->plain_retry) {
        /* RFC 7435: opportunistic security may fall back to clear text */
        a->plain_retry = true;
        a->policy = SMTP_TLS_NONE;
        log_info("outbound tls-fallback queue=%s mx=%s (handshake failed; clear text)", a->id,
                 a->mx[a->cur_mx].name);
    } else {
        a->cur_addr++;
        a->plain_retry = false;
        if (a->policy == SMTP_TLS_NONE)
            a->policy = SMTP_TLS_OPPORTUNISTIC;
    }
    connect_next(a);
}

/* --- the end of an attempt -------------------------------------------------------- */

static void finish_saved(void *arg);
static void notices(struct attempt *a);

/* The header of the message (for notices), read from the memfd. */
static char *read_header(int fd, size_t *len_r)
{
    char *h = sm_malloc(DSN_HEADERS_MAX + 1);
    ssize_t n = pread(fd, h, DSN_HEADERS_MAX, 0);
    if (n < 0)
        n = 0;
    h[n] = '\0';
    char *end = strstr(h, "\r\n\r\n");
    char *end2 = strstr(h, "\n\n");
    if (end != NULL)
        n = end - h + 2;
    else if (end2 != NULL)
        n = end2 - h + 1;
    *len_r = (size_t)n;
    return h;
}

static void notice_committed(void *arg, bool ok, const char *queue_id)
{
    struct attempt *a = arg;
    a->notice_pending = false;
    if (a->ob->stopping) {
        attempt_end(a);
        return;
    }
    if (!ok) {
        log_warn("outbound notice-not-written queue=%s (retried at the next attempt)", a->id);
        workpool_submit(a->ob->files, save_work, finish_saved, a);
        return;
    }
    log_info("outbound notice queue=%s notice=%s action=%s", a->id, queue_id,
             a->notice_delayed ? "delayed" : "failed");
    if (a->notice_delayed) {
        a->e.delay_notified = true;
    } else {
        for (size_t i = 0; i < a->e.n_rcpts; i++)
            if (a->e.rcpts[i].state == OUTQ_FAILED) {
                a->e.rcpts[i].state = OUTQ_BOUNCED;
                a->bounced++;
            }
        a->e.failed_notified = true;
    }
    a->dirty = true;
    if (a->ob->spool_ready != NULL)
        a->ob->spool_ready(a->ob->arg, queue_id);
    notices(a);
}

/* Write a notice for the recipients in state s (FAILED: failed; PENDING:
 * delayed) into the spool; false when it could not be started. */
static bool write_notice(struct attempt *a, bool delayed)
{
    struct outbound *ob = a->ob;
    enum outq_rcpt_state s = delayed ? OUTQ_PENDING : OUTQ_FAILED;
    struct dsn_rcpt *rc = sm_calloc(a->e.n_rcpts, sizeof *rc);
    size_t n = 0, hlen, len;
    for (size_t i = 0; i < a->e.n_rcpts; i++)
        if (a->e.rcpts[i].state == s) {
            const char *reply = a->e.rcpts[i].reply;
            rc[n++] = (struct dsn_rcpt){a->e.rcpts[i].addr, reply,
                                        strstr(reply, "expired") == reply ? "4.4.7" : NULL};
        }
    char *headers = read_header(a->msg_fd, &hlen);
    struct dsn_params p = {ob->cfg->hostname, a->e.mail_from, a->id, delayed, a->e.created,
                           now_s(), rc, n, headers, hlen};
    char *text = dsn_build(&p, &len);
    free(headers);
    free(rc);
    char *rcpts[1] = {a->e.mail_from};
    struct spool_envelope env = {
        .helo = ob->cfg->hostname, .client = (char *)(uintptr_t)"127.0.0.1",
        .mail_from = (char *)(uintptr_t)"", .body_type = (char *)(uintptr_t)"7BIT",
        .smtputf8 = (a->e.flags & OUTQ_F_SMTPUTF8) != 0, .rcpts = rcpts, .n_rcpts = 1,
        .received = now_s()};
    const char *error;
    a->w = spool_writer_new(ob->spool, &env, &error);
    if (a->w == NULL || spool_writer_write(a->w, text, len, &error) < 0) {
        log_warn("outbound notice-failed queue=%s error=\"%s\"", a->id, error);
        spool_writer_abort(&a->w);
        free(text);
        return false;
    }
    free(text);
    a->notice_delayed = delayed;
    a->notice_pending = true;
    struct spool_writer *w = a->w;
    a->w = NULL; /* the spool owns it from the commit on */
    spool_writer_commit(w, notice_committed, a);
    return true;
}

/* Send what notices are due, one at a time, then save. */
static void notices(struct attempt *a)
{
    const struct sm_config *cfg = a->ob->cfg;
    bool nobounce = a->e.mail_from[0] == '\0' || (a->e.flags & OUTQ_F_NOBOUNCE);
    int64_t age = now_s() - a->e.created;
    if (outq_count(&a->e, OUTQ_FAILED) > 0) {
        if (nobounce) { /* a bounce is never bounced */
            for (size_t i = 0; i < a->e.n_rcpts; i++)
                if (a->e.rcpts[i].state == OUTQ_FAILED)
                    a->e.rcpts[i].state = OUTQ_BOUNCED, a->bounced++;
            log_info("outbound bounced-silently queue=%s (null sender)", a->id);
            a->dirty = true;
        } else if (write_notice(a, false)) {
            return;
        }
    }
    if (!nobounce && cfg->queue_delay_notice > 0 && !a->e.delay_notified &&
        outq_count(&a->e, OUTQ_PENDING) > 0 && age >= (int64_t)cfg->queue_delay_notice) {
        a->e.delay_notified = true; /* once, even if writing it fails */
        a->dirty = true;
        if (write_notice(a, true))
            return;
    }
    workpool_submit(a->ob->files, all_settled(a) ? remove_work : save_work, finish_saved, a);
}

static void finish(struct attempt *a)
{
    const struct sm_config *cfg = a->ob->cfg;
    int64_t now = now_s();
    a->e.attempts++;
    a->e.last_attempt = now;
    if (outq_count(&a->e, OUTQ_PENDING) > 0) {
        if (now - a->e.created >= (int64_t)cfg->queue_max_age) {
            for (size_t i = 0; i < a->e.n_rcpts; i++)
                if (a->e.rcpts[i].state == OUTQ_PENDING) {
                    char why[OUTQ_REPLY_MAX + 1];
                    snprintf(why, sizeof why, "expired after %u attempts; last error: %.400s",
                             a->e.attempts, a->e.rcpts[i].reply);
                    outq_set_rcpt(&a->e, i, OUTQ_FAILED, now, why);
                }
            log_info("outbound expired queue=%s attempts=%u", a->id, a->e.attempts);
        } else {
            a->e.next_attempt = now + outq_next_delay(&a->ob->sched, a->e.attempts);
        }
    }
    if (outq_count(&a->e, OUTQ_FAILED) > 0)
        a->e.next_attempt = now + outq_next_delay(&a->ob->sched, a->e.attempts);
    a->dirty = true;
    notices(a);
}

static void finish_saved(void *arg)
{
    struct attempt *a = arg;
    if (a->skip == 0 && !a->gone)
        a->next_known = a->e.next_attempt;
    if (a->skip < 0)
        log_warn("outbound state-not-saved queue=%s error=\"%s\"", a->id, a->error);
    else if (all_settled(a))
        log_info("outbound done queue=%s delivered=%zu bounced=%zu", a->id,
                 outq_count(&a->e, OUTQ_DELIVERED), outq_count(&a->e, OUTQ_BOUNCED));
    else
        log_info("outbound retry queue=%s pending=%zu attempts=%u next_in=%" PRId64 "s", a->id,
                 outq_count(&a->e, OUTQ_PENDING), a->e.attempts, a->e.next_attempt - now_s());
    attempt_end(a);
}

/* --- the entries known (loop) ------------------------------------------------------ */

/* Where id is in ob->due, or where it would go; *found says which. */
static size_t due_pos(const struct outbound *ob, const char *id, bool *found)
{
    size_t lo = 0, hi = ob->n_due;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ob->due[mid].id, id);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* Record id with its next attempt time (added when new). */
static struct due *due_set(struct outbound *ob, const char *id, int64_t next_attempt)
{
    bool found;
    size_t i = due_pos(ob, id, &found);
    if (!found) {
        if (ob->n_due == ob->cap_due) {
            ob->cap_due = ob->cap_due ? ob->cap_due * 2 : 256;
            ob->due = sm_realloc(ob->due, ob->cap_due * sizeof *ob->due);
        }
        memmove(ob->due + i + 1, ob->due + i, (ob->n_due - i) * sizeof *ob->due);
        ob->n_due++;
        ob->due[i] = (struct due){.running = false};
        snprintf(ob->due[i].id, sizeof ob->due[i].id, "%s", id);
    }
    ob->due[i].next_attempt = next_attempt;
    ob->due[i].touched = ob->gen;
    return &ob->due[i];
}

static void due_drop(struct outbound *ob, const char *id)
{
    bool found;
    size_t i = due_pos(ob, id, &found);
    if (found) {
        memmove(ob->due + i, ob->due + i + 1, (ob->n_due - i - 1) * sizeof *ob->due);
        ob->n_due--;
    }
}

static void attempt_start(struct outbound *ob, const char *id);

/* Start attempts for the due entries, oldest id first, while there is room. */
static void start_due(struct outbound *ob)
{
    int64_t now = now_s();
    for (size_t i = 0; i < ob->n_due && !ob->stopping; i++) {
        if (ob->n_active >= ob->cfg->queue_max_parallel)
            return;
        struct due *d = &ob->due[i];
        if (!d->running && d->next_attempt <= now) {
            d->running = true;
            attempt_start(ob, d->id);
        }
    }
}

/* An attempt ended: what it learnt about its entry.  While a scan runs,
 * an entry that went stays as NOT_KNOWN (newer than the scan, so its
 * merge keeps it, and the next scan drops it): the scan may have listed
 * it before it went, and it must not come back as due. */
static void due_update(struct outbound *ob, const struct attempt *a)
{
    if (a->gone && !ob->scanning)
        due_drop(ob, a->id);
    else
        due_set(ob, a->id, a->gone ? NOT_KNOWN : a->next_known)->running = false;
}

/* --- attempts ------------------------------------------------------------------- */

static void attempt_end(struct attempt *a)
{
    struct outbound *ob = a->ob;
    dns_query_cancel(&a->q);
    sts_lookup_cancel(&a->sts_q);
    free(a->sts);
    smtp_client_free(&a->client);
    spool_writer_abort(&a->w);
    dns_answer_free(a->tlsa);
    outq_unlock(a->lock_fd);
    if (a->msg_fd >= 0)
        close(a->msg_fd);
    due_update(ob, a);
    outq_entry_free(&a->e);
    free(a->idx);
    free(a->tried);
    for (struct attempt **pp = &ob->attempts; *pp != NULL; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    ob->n_active--;
    free(a);
    if (!ob->stopping)
        start_due(ob); /* from memory: no scan */
}

static void open_done(void *arg)
{
    struct attempt *a = arg;
    if (a->ob->stopping || a->skip != 0) {
        if (a->skip < 0)
            log_warn("outbound open-failed queue=%s error=\"%s\"", a->id, a->error);
        attempt_end(a);
        return;
    }
    a->idx = sm_calloc(a->e.n_rcpts, sizeof *a->idx);
    a->tried = sm_calloc(a->e.n_rcpts, sizeof *a->tried);
    log_info("outbound attempt queue=%s attempt=%u pending=%zu", a->id, a->e.attempts + 1,
             outq_count(&a->e, OUTQ_PENDING));
    next_domain(a);
}

static void attempt_start(struct outbound *ob, const char *id)
{
    struct attempt *a = sm_calloc(1, sizeof *a);
    a->ob = ob;
    snprintf(a->id, sizeof a->id, "%s", id);
    a->msg_fd = a->lock_fd = -1;
    a->next_known = NOT_KNOWN;
    a->next = ob->attempts;
    ob->attempts = a;
    ob->n_active++;
    workpool_submit(ob->files, open_work, open_done, a);
}

/* --- scanning: the safety net (the CLI, forwarded copies, what we missed) ---- */

struct scan {
    struct outbound *ob;
    uint64_t gen;          /* ob->gen when it started */
    struct due *found;     /* every entry, by id */
    size_t n, cap;
    /* entries due or running when it started, by id: their state files
     * are not read (an attempt reads them anyway, and the CLI can only
     * make an entry due or remove it, which the listing shows) */
    char (*known)[OUTQ_ID_LEN + 1];
    size_t n_known;
};

static int cmp_id(const void *x, const void *y)
{
    return strcmp(x, y);
}

static void scan_one(void *arg, const char *id)
{
    struct scan *s = arg;
    struct outq_entry e;
    const char *error;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->found = sm_realloc(s->found, s->cap * sizeof *s->found);
    }
    struct due *d = &s->found[s->n++];
    *d = (struct due){.next_attempt = NOT_KNOWN};
    snprintf(d->id, sizeof d->id, "%s", id);
    if (bsearch(id, s->known, s->n_known, sizeof *s->known, cmp_id) != NULL) {
        d->next_attempt = 0;
        return;
    }
    if (outq_load(s->ob->queue_dir, id, &e, &error) == 0)
        d->next_attempt = e.next_attempt;
    outq_entry_free(&e);
}

/* The ids scan_one() need not read (ob->due is sorted: so is this). */
static void scan_known(struct scan *s, const struct outbound *ob)
{
    int64_t now = now_s();
    s->known = sm_calloc(ob->n_due ? ob->n_due : 1, sizeof *s->known);
    for (size_t i = 0; i < ob->n_due; i++)
        if (ob->due[i].running || ob->due[i].next_attempt <= now)
            memcpy(s->known[s->n_known++], ob->due[i].id, sizeof *s->known);
}

static void scan_work(void *arg)
{
    struct scan *s = arg;
    const char *error;
    if (outq_list(s->ob->queue_dir, scan_one, s, &error) < 0)
        log_warn("outbound scan-failed error=\"%s\"", error);
}

/* Take what the scan found, except for entries an attempt or the router
 * changed since it started (ours is newer); drop what it did not find. */
static void scan_merge(struct outbound *ob, const struct scan *s)
{
    struct due *old = ob->due;
    size_t n_old = ob->n_due, i = 0, j = 0;
    ob->due = NULL;
    ob->n_due = ob->cap_due = 0;
    while (i < n_old || j < s->n) {
        int c = i == n_old ? 1 : j == s->n ? -1 : strcmp(old[i].id, s->found[j].id);
        bool keep_ours = c <= 0 && (old[i].running || old[i].touched >= s->gen);
        if (keep_ours)
            *due_set(ob, old[i].id, old[i].next_attempt) = old[i];
        else if (c >= 0)
            due_set(ob, s->found[j].id, s->found[j].next_attempt);
        i += c <= 0;
        j += c >= 0;
    }
    free(old);
}

static void scan_done(void *arg)
{
    struct scan *s = arg;
    struct outbound *ob = s->ob;
    ob->scanning = false;
    if (!ob->stopping) {
        scan_merge(ob, s);
        start_due(ob);
    }
    free(s->found);
    free(s->known);
    free(s);
    if (ob->scan_again)
        outbound_scan(ob); /* it may have listed the directory too early */
}

void outbound_scan(struct outbound *ob)
{
    if (ob->stopping)
        return;
    if (ob->scanning) {
        ob->scan_again = true;
        return;
    }
    ob->scan_again = false;
    ob->scanning = true;
    struct scan *s = sm_calloc(1, sizeof *s);
    s->ob = ob;
    s->gen = ++ob->gen;
    scan_known(s, ob);
    workpool_submit(ob->files, scan_work, scan_done, s);
}

void outbound_routed(struct outbound *ob, const char *const *ids, size_t n)
{
    if (ob->stopping)
        return;
    for (size_t i = 0; i < n; i++)
        if (outq_id_valid(ids[i]))
            due_set(ob, ids[i], 0);
    start_due(ob);
}

static void on_scan_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct outbound *ob = arg;
    if (!ob->scanning) /* a long scan is not followed at once by another */
        outbound_scan(ob);
}

/* --- life cycle ----------------------------------------------------------------- */

struct outbound *outbound_new(const struct outbound_params *p, const char **error_r)
{
    const struct sm_config *cfg = p->cfg;
    struct outbound *ob = sm_calloc(1, sizeof *ob);
    char err[512];
    ob->cfg = cfg;
    ob->base = p->base;
    ob->pool = p->pool;
    ob->pk = p->pk;
    ob->sk = p->sk;
    ob->spool_ready = p->spool_ready;
    ob->arg = p->arg;
    ob->files = workpool_new(p->base, OUTBOUND_THREADS);
    snprintf(ob->spool_dir, sizeof ob->spool_dir, "%s", p->spool_dir);
    if (outbound_queue_dir(ob->queue_dir, sizeof ob->queue_dir, cfg->data_dir) < 0) {
        *error_r = "queue: data_dir path too long";
        goto fail;
    }
    if (outq_schedule_parse(cfg->queue_retry_schedule, &ob->sched, error_r) < 0 ||
        outq_recover(ob->queue_dir, error_r) < 0)
        goto fail;
    struct dns_resolver_options o = {
        .forwarders = cfg->dns_forwarders,
        .zone_file = cfg->dns_zone_file[0] ? cfg->dns_zone_file : NULL,
        .trust_anchor_file = cfg->dns_trust_anchor,
        .signed_zone_file = cfg->dns_signed_zone_file[0] ? cfg->dns_signed_zone_file : NULL,
        .timeout_ms = cfg->dns_timeout * 1000,
    };
    ob->dnssec = cfg->dns_trust_anchor[0] != '\0';
    if ((ob->dns = dns_resolver_new(p->base, &o, error_r)) == NULL)
        goto fail;
    char sts_dir[4096];
    snprintf(sts_dir, sizeof sts_dir, "%s/mta-sts", cfg->data_dir);
    struct sts_resolver_params sp = {p->base, ob->dns, p->pool, sts_dir, cfg->queue_mta_sts_port,
                                     cfg->queue_ca_file};
    if ((ob->sts = sts_resolver_new(&sp, error_r)) == NULL)
        goto fail;
    ob->tls = tls_client_ctx_new(cfg->queue_ca_file[0] ? cfg->queue_ca_file : NULL, err,
                                 sizeof err);
    if (ob->tls == NULL) {
        static _Thread_local char msg[600];
        snprintf(msg, sizeof msg, "queue: TLS client: %s", err);
        *error_r = msg;
        goto fail;
    }
    if ((ob->spool = spool_open(ob->spool_dir, p->pk, p->base, 16, error_r)) == NULL)
        goto fail;
    struct timeval every = {cfg->queue_scan_interval, 0};
    ob->wake_ev = event_new(p->base, -1, 0, on_wake, ob);
    ob->scan_ev = event_new(p->base, -1, EV_PERSIST, on_scan_timer, ob);
    event_add(ob->scan_ev, &every);
    outbound_scan(ob); /* what waited while queued was down */
    return ob;
fail:
    outbound_free(&ob);
    return NULL;
}

unsigned outbound_active(const struct outbound *ob)
{
    return ob != NULL ? ob->n_active : 0;
}

void outbound_stop(struct outbound *ob)
{
    if (ob == NULL)
        return;
    ob->stopping = true;
    if (ob->scan_ev != NULL)
        event_del(ob->scan_ev);
    /* attempts on the loop end here (a session without its dot sent
     * leaves nothing at the server); those waiting for a worker or a
     * spool commit end in their callbacks */
    for (struct attempt *a = ob->attempts, *next; a != NULL; a = next) {
        next = a->next;
        if (a->q != NULL || a->sts_q != NULL || a->client != NULL || a->waiting)
            attempt_end(a);
    }
    sts_resolver_stop(ob->sts);
}

void outbound_free(struct outbound **obp)
{
    struct outbound *ob = *obp;
    if (ob == NULL)
        return;
    outbound_stop(ob);
    workpool_free(&ob->files); /* attempts waiting for file work end in their callbacks */
    spool_close(&ob->spool); /* runs the commit callbacks still due */
    while (ob->attempts != NULL)
        attempt_end(ob->attempts);
    if (ob->scan_ev != NULL)
        event_free(ob->scan_ev);
    if (ob->wake_ev != NULL)
        event_free(ob->wake_ev);
    sts_resolver_free(&ob->sts);
    dns_resolver_free(&ob->dns);
    SSL_CTX_free(ob->tls);
    free(ob->due);
    free(ob);
    *obp = NULL;
}
