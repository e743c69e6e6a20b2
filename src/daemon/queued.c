/* queued.c — the queued role: routes spool entries to mailboxes and
 * remote recipients to the outbound queue, which it delivers (outbound.h).
 *
 * queued alone holds the spool secret key (DESIGN.md §2).  Each entry
 * smtpd reports over IPC, and every entry found at start or by the
 * periodic rescan, is delivered by store/deliver on a worker thread (it
 * decrypts, seals into mailbox drops and fsyncs: nothing of that may run
 * on the loop), each entry at most once in flight.
 *
 * Batches: entries wait in a FIFO; a worker takes up to BATCH_MAX of them
 * at once (deliver_spool_batch), so under load one sync of each drop
 * directory, one usage update per mailbox and one sync of the spool
 * directory serve a whole batch, while a single message still goes out at
 * once.  DELIVER_THREADS batches run at a time, each on its own directory
 * handle: one seals (CPU) while another waits for the disk.  Syncs of one
 * drop directory take turns (drop.c), so batches never weaken each
 * other's durability.
 *
 * A failed delivery stays in the spool and the rescan retries it, so
 * nothing accepted is dropped; mailboxes that received mail are announced
 * to the master (IPC_MAILBOX_CHANGED) for the roles that serve them, once
 * per batch.
 * With [spool] hold = yes nothing is delivered: entries wait in the spool
 * until the setting is turned off again (SIGHUP restarts queued).
 *
 * One queued at work at a time: a reload starts the new queued while the
 * old one still finishes its batches and sessions, and two processes
 * routing one entry at once would both write its outbound queue file (and
 * each would keep its own count of sessions per destination).  So queued
 * routes spool entries and starts outbound delivery only once it holds
 * the flock of spool/queued.lock, which the old process keeps until it
 * exits; until then the new one only retries the lock (LOCK_RETRY_MS),
 * then scans the spool for what it ignored. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/ipc.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/workpool.h"
#include "daemon/keys.h"
#include "daemon/forwarder.h"
#include "daemon/outbound.h"
#include "daemon/privsep.h"
#include "store/deliver.h"
#include "store/directory.h"
#include "store/spool.h"

#define RESCAN_SECONDS 30
#define LOCK_RETRY_MS 100 /* how often a new queued asks for the consumer flock */
#define CHANGED_MAX 64 /* mailboxes one job reports; more are rare and harmless to miss */
#ifndef DELIVER_THREADS    /* -D for measurements */
#define DELIVER_THREADS 2  /* batches in flight */
#endif
#ifndef BATCH_MAX
#define BATCH_MAX 32       /* entries per batch (<= DELIVER_BATCH_MAX) */
#endif
#define QUEUED_TRIM_THRESHOLD (16 * 1024 * 1024) /* free heap kept per arena (bytes) */
#define QUEUED_MMAP_THRESHOLD (4 * 1024 * 1024)   /* larger blocks are mapped apart */
/* Entries queued or in flight; past this, new ones wait in the spool for
 * a rescan (which lists them in id order, oldest first). */
#define IN_FLIGHT_MAX 10000

_Static_assert(BATCH_MAX <= DELIVER_BATCH_MAX, "a batch fits deliver_spool_batch()");

typedef char queue_id[SPOOL_ID_LEN + 1];

/* A worker's directory handle (SQLite connections are not shared). */
struct slot {
    struct directory *dir;
    bool busy;
};

struct queued {
    struct sm_config cfg;
    struct event_base *base;
    struct event *ctl_ev, *rescan_ev, *lock_ev;
    int lock_fd;           /* spool/queued.lock, flocked while this queued routes entries */
    bool consumer;         /* the flock is held */
    struct workpool *pool;
    struct slot slots[DELIVER_THREADS];
    bool stopping;
    int ctl_fd;
    uint8_t *sk;
    uint8_t pk[SPOOL_PK_BYTES];
    char spool_dir[4096];
    char **in_flight;      /* queue ids waiting or being delivered */
    size_t n_in_flight, cap_in_flight;
    queue_id *waiting;     /* FIFO of ids not yet in a batch */
    size_t n_waiting, cap_waiting;
    unsigned long delivered, failed;
    struct outbound *ob;   /* outbound delivery (queued-outbound.c) */
    struct forwarder *fw;  /* copies for aliases that forward (forwarder.c) */
    char queue_dir[4096];
};

struct job {
    struct queued *q;
    struct slot *slot;
    size_t n;
    queue_id ids[BATCH_MAX];
    struct deliver_result res[BATCH_MAX];
    char changed[CHANGED_MAX][DIRECTORY_MAILBOX_ID_LEN + 1];
    size_t n_changed;
};

/* --- in-flight set ------------------------------------------------------------ */

static bool in_flight(struct queued *q, const char *id)
{
    for (size_t i = 0; i < q->n_in_flight; i++)
        if (strcmp(q->in_flight[i], id) == 0)
            return true;
    return false;
}

static void in_flight_add(struct queued *q, const char *id)
{
    if (q->n_in_flight == q->cap_in_flight) {
        q->cap_in_flight = q->cap_in_flight ? q->cap_in_flight * 2 : 64;
        q->in_flight = sm_realloc(q->in_flight, q->cap_in_flight * sizeof *q->in_flight);
    }
    q->in_flight[q->n_in_flight++] = sm_strdup(id);
}

static void in_flight_remove(struct queued *q, const char *id)
{
    for (size_t i = 0; i < q->n_in_flight; i++)
        if (strcmp(q->in_flight[i], id) == 0) {
            free(q->in_flight[i]);
            q->in_flight[i] = q->in_flight[--q->n_in_flight];
            return;
        }
}

/* --- jobs ------------------------------------------------------------------------ */

static void job_changed(void *arg, const char *mailbox)
{
    struct job *j = arg;
    for (size_t i = 0; i < j->n_changed; i++)
        if (strcmp(j->changed[i], mailbox) == 0)
            return;
    if (j->n_changed < CHANGED_MAX)
        snprintf(j->changed[j->n_changed++], sizeof j->changed[0], "%s", mailbox);
}

/* Worker thread: deliver.h's outbound hook, with this job's directory. */
static int job_outbound(void *arg, const char *id, const struct spool_envelope *env,
                        const char *const *rcpts, size_t n, const char *prefix,
                        size_t prefix_len, int body, const char **error_r)
{
    struct job *j = arg;
    return outbound_enqueue(j->q->ob, j->slot->dir, id, env, rcpts, n, prefix, prefix_len, body,
                            error_r);
}

/* Worker thread: deliver.h's forward hook. */
static int job_forward(void *arg, const char *id, const struct spool_envelope *env,
                       const char *domain, const char *const *targets, size_t n, int body,
                       const char **error_r)
{
    struct job *j = arg;
    return forwarder_enqueue(j->q->fw, j->slot->dir, j->q->queue_dir, id, env, domain, targets,
                             n, body, error_r);
}

/* Worker thread: deliver.h's srs_reverse hook. */
static bool job_srs_reverse(void *arg, const char *rcpt, char *out)
{
    struct job *j = arg;
    return forwarder_reverse(j->q->fw, rcpt, out);
}

/* Worker thread. */
static void job_work(void *arg)
{
    struct job *j = arg;
    struct queued *q = j->q;
    struct deliver_ctx c = {q->cfg.data_dir, q->spool_dir, j->slot->dir, q->pk, q->sk,
                            job_changed, j, job_outbound, q->cfg.disposable_domains,
                            job_forward, job_srs_reverse};
    const char *ids[BATCH_MAX];
    for (size_t i = 0; i < j->n; i++)
        ids[i] = j->ids[i];
    deliver_spool_batch(&c, ids, j->n, j->res);
}

static void queued_kick(struct queued *q);

/* Loop thread. */
static void job_done(void *arg)
{
    struct job *j = arg;
    struct queued *q = j->q;
    struct ipc_msg m;
    const char *routed[BATCH_MAX]; /* outbound entries (their ids are the spool ids) */
    size_t n_routed = 0;
    bool forwarded = false;

    for (size_t i = 0; i < j->n; i++) {
        const struct deliver_result *r = &j->res[i];
        if (r->result >= 0 && r->stats.outbound > 0)
            routed[n_routed++] = j->ids[i];
        forwarded |= r->stats.forwarded > 0;
        in_flight_remove(q, j->ids[i]);
        if (r->result < 0) {
            q->failed++;
            log_warn("queued deliver-deferred queue=%s error=\"%s\" retry=%ds", j->ids[i],
                     r->error, RESCAN_SECONDS);
        } else {
            q->delivered++;
            log_info("queued done queue=%s delivered=%u duplicates=%u gone=%u outbound=%u "
                     "forwarded=%u batch=%zu", j->ids[i], r->stats.delivered,
                     r->stats.duplicates, r->stats.gone, r->stats.outbound,
                     r->stats.forwarded, j->n);
        }
    }
    for (size_t i = 0; i < j->n_changed; i++) {
        ipc_init(&m, IPC_MAILBOX_CHANGED);
        ipc_add_str(&m, j->changed[i]);
        if (ipc_send(q->ctl_fd, &m) < 0)
            log_warn("queued notify-failed mailbox=%s", j->changed[i]);
    }
    j->slot->busy = false;
    if (!q->stopping)
        outbound_routed(q->ob, routed, n_routed); /* they go out at once */
    if (forwarded && !q->stopping)
        outbound_scan(q->ob); /* the forwarder's copies: found by reading the queue */
    free(j);
    queued_kick(q);
}

/* Start batches while a worker is free and entries wait (oldest first). */
static void queued_kick(struct queued *q)
{
    for (size_t s = 0; s < DELIVER_THREADS && q->n_waiting > 0 && !q->stopping; s++) {
        if (q->slots[s].busy)
            continue;
        struct job *j = sm_calloc(1, sizeof *j);
        j->q = q;
        j->slot = &q->slots[s];
        j->n = q->n_waiting < BATCH_MAX ? q->n_waiting : BATCH_MAX;
        memcpy(j->ids, q->waiting, j->n * sizeof *j->ids);
        q->n_waiting -= j->n;
        memmove(q->waiting, q->waiting + j->n, q->n_waiting * sizeof *q->waiting);
        q->slots[s].busy = true;
        workpool_submit(q->pool, job_work, job_done, j);
    }
}

static void queued_submit(struct queued *q, const char *id)
{
    if (!q->consumer || q->cfg.spool_hold || !spool_id_valid(id) ||
        q->n_in_flight >= IN_FLIGHT_MAX || in_flight(q, id))
        return;
    in_flight_add(q, id);
    if (q->n_waiting == q->cap_waiting) {
        q->cap_waiting = q->cap_waiting ? q->cap_waiting * 2 : 64;
        q->waiting = sm_realloc(q->waiting, q->cap_waiting * sizeof *q->waiting);
    }
    snprintf(q->waiting[q->n_waiting++], sizeof(queue_id), "%s", id);
    queued_kick(q);
}

static void submit_listed(void *arg, const char *id)
{
    queued_submit(arg, id);
}

static void queued_rescan(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct queued *q = arg;
    const char *error;
    if (!q->consumer)
        return;
    if (spool_list(q->spool_dir, submit_listed, q, &error) < 0)
        log_warn("queued spool-error=\"%s\"", error);
    spool_sweep(q->spool_dir); /* segments finished while no removal came by */
}

/* --- control channel --------------------------------------------------------- */

static void queued_control(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct queued *q = arg;
    struct ipc_msg m;
    const char *ids[IPC_STRS_MAX];
    int r = ipc_recv(fd, &m);
    if (r < 0 && errno == EAGAIN)
        return;
    if (r <= 0 || m.type == IPC_SHUTDOWN) {
        event_base_loopexit(q->base, NULL);
        return;
    }
    int n;
    if (m.type == IPC_SPOOL_READY && (n = ipc_get_strs(&m, ids, IPC_STRS_MAX)) > 0) {
        for (int i = 0; i < n; i++)
            if (spool_id_valid(ids[i]))
                queued_submit(q, ids[i]);
            else
                log_warn("queued bad-queue-id");
        return;
    }
    log_warn("queued unexpected-ipc type=%s", ipc_type_name(m.type));
}

/* The secret key must open what smtpd seals: compare its public half. */
static void queued_load_key(struct queued *q)
{
    char err[512], path[4096];
    if (keys_spool_public(q->cfg.data_dir, q->pk, err, sizeof err) < 0)
        fatalx("%s", err);
    snprintf(path, sizeof path, "%s/keys/spool.key", q->cfg.data_dir);
    if (keys_read_secret(path, &q->sk, err, sizeof err) < 0)
        fatalx("%s", err);
    if (!keys_spool_matches(q->sk, q->pk))
        fatalx("%s does not match keys/spool.pub", path);
}

/* A notice (DSN) the outbound queue wrote to the spool. */
static void notice_ready(void *arg, const char *id)
{
    queued_submit(arg, id);
}

/* Take the consumer flock if it is free (see the top of this file). */
static bool consumer_lock_try(struct queued *q)
{
    if (flock(q->lock_fd, LOCK_EX | LOCK_NB) == 0)
        return q->consumer = true;
    if (errno != EWOULDBLOCK && errno != EINTR)
        fatal("queued: flock of spool/queued.lock");
    return false;
}

/* With the flock held: outbound delivery starts, and the spool is read
 * for what arrived while queued was down or waiting. */
static void consumer_start(struct queued *q)
{
    const char *error;
    struct outbound_params op = {&q->cfg, q->base, q->pool, q->pk, q->sk, q->spool_dir,
                                 notice_ready, q};
    if ((q->ob = outbound_new(&op, &error)) == NULL)
        fatalx("queued: outbound: %s", error);
    queued_rescan(-1, 0, q);
}

static void consumer_lock_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct queued *q = arg;
    if (!consumer_lock_try(q))
        return;
    event_del(q->lock_ev);
    log_info("queued spool-lock acquired");
    consumer_start(q);
}

static void consumer_lock_open(struct queued *q)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/queued.lock", q->spool_dir);
    q->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (q->lock_fd < 0)
        fatal("queued: open %s", path);
    struct timeval retry = {0, LOCK_RETRY_MS * 1000};
    q->lock_ev = event_new(q->base, -1, EV_PERSIST, consumer_lock_retry, q);
    if (consumer_lock_try(q))
        consumer_start(q);
    else {
        log_info("queued spool-lock wait (another queued is finishing)");
        event_add(q->lock_ev, &retry);
    }
}

static void queued_start_loop(struct queued *q)
{
    struct timeval every = {RESCAN_SECONDS, 0};
    q->base = event_base_new();
    q->pool = workpool_new(q->base, DELIVER_THREADS);
    q->ctl_ev = event_new(q->base, q->ctl_fd, EV_READ | EV_PERSIST, queued_control, q);
    q->rescan_ev = event_new(q->base, -1, EV_PERSIST, queued_rescan, q);
    event_add(q->ctl_ev, NULL);
    event_add(q->rescan_ev, &every);
    consumer_lock_open(q);
}

int queued_main(const struct role_args *ra)
{
    struct queued q = {.ctl_fd = ra->ctl_fd};
    const char *error;
#ifdef M_TRIM_THRESHOLD
    /* Every delivery allocates and frees 64 KiB chunk buffers (sealfile.c,
     * spoolreader.c) on a worker thread.  By default glibc hands that memory
     * back to the kernel after each message (madvise(MADV_DONTNEED) on the
     * thread's arena), which in a multi-threaded process costs a TLB
     * shootdown on every CPU, then page faults to get it back: about a
     * third of queued's CPU per message, measured.  Keep up to this much. */
    mallopt(M_TRIM_THRESHOLD, QUEUED_TRIM_THRESHOLD);
#endif
#ifdef M_MMAP_THRESHOLD
    /* Setting the trim threshold freezes glibc's mmap threshold at 128
     * KiB, and an SMTP client's buffers (2 x 64 KiB + 8, smtp/client.c)
     * are just above it: an mmap and a munmap (a TLB shootdown) for every
     * outbound session.  Buffers up to this size come from the heap. */
    mallopt(M_MMAP_THRESHOLD, QUEUED_MMAP_THRESHOLD);
#endif
    privsep_role_config(ra, &q.cfg);
    queued_load_key(&q);
    if ((q.fw = forwarder_new(&q.cfg, q.pk, q.sk, &error)) == NULL) /* as root: keys/ */
        fatalx("queued: SRS secrets: %s", error);
    if (outbound_queue_dir(q.queue_dir, sizeof q.queue_dir, q.cfg.data_dir) < 0)
        fatalx("queued: data_dir path too long");
    privsep_drop(q.cfg.user);
    snprintf(q.spool_dir, sizeof q.spool_dir, "%s/spool", q.cfg.data_dir);
    for (size_t i = 0; i < DELIVER_THREADS; i++)
        if ((q.slots[i].dir = directory_open(q.cfg.data_dir, false, &error)) == NULL)
            fatalx("%s", error);

    if (ipc_send_hello(ra->ctl_fd, "queued") < 0)
        fatal("ipc hello");
    queued_start_loop(&q);
    log_info("queued ready%s", q.cfg.spool_hold ? " hold=yes (delivery paused)" : "");
    event_base_dispatch(q.base);

    q.stopping = true;      /* waiting entries stay in the spool for the next start */
    outbound_stop(q.ob);    /* sessions dropped; the queue keeps what was decided */
    workpool_free(&q.pool); /* finishes the batches in progress */
    outbound_free(&q.ob);
    forwarder_free(&q.fw);
    event_free(q.ctl_ev);
    event_free(q.rescan_ev);
    event_free(q.lock_ev);
    event_base_free(q.base);
    close(q.lock_fd); /* the batches are done: the next queued may route */
    for (size_t i = 0; i < q.n_in_flight; i++)
        free(q.in_flight[i]);
    free(q.in_flight);
    free(q.waiting);
    for (size_t i = 0; i < DELIVER_THREADS; i++)
        directory_close(&q.slots[i].dir);
    keys_secret_free(&q.sk);
    config_free(&q.cfg);
    log_info("queued stopped delivered=%lu deferred=%lu", q.delivered, q.failed);
    return 0;
}
