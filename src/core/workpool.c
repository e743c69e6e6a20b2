/* workpool.c — fixed pool of threads for blocking work (see workpool.h).
 *
 * Design: one mutex guards two FIFO lists, the jobs waiting for a worker
 * and the jobs whose work() has finished.  Workers sleep on a condition
 * variable; a finished job is appended to the done list and the loop is
 * woken through an eventfd registered as a persistent read event on the
 * caller's event_base.  The event callback takes the whole done list in
 * one locked step and runs each done() on the loop thread, in the order
 * the jobs completed, without holding the lock (so done() may submit).
 * Workers never touch libevent, so the base needs no locking
 * (evthread_use_pthreads() is not required).
 *
 * Worker threads get a 512 KiB stack (GMime needs at least 256 KiB) and
 * start with every signal blocked: signals belong to the loop thread.
 * A pool has 1..256 threads (0 asks for one).  Failing to start a thread
 * or to create the eventfd is fatal: a role cannot work without its pool.
 * workpool_free() runs, on the calling (loop) thread, the done() of every
 * job still pending as the workers complete them, including jobs those
 * callbacks submit meanwhile, and only then stops and joins the workers:
 * work() always runs on a pool thread, and nothing is lost. */
#include "core/workpool.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"

#define WORKPOOL_STACK (512u * 1024u)
#define WORKPOOL_MAX_THREADS 256u

struct job {
    workpool_fn *work;
    workpool_fn *done;
    void *arg;
    struct job *next;
};

struct job_list {
    struct job *head;
    struct job **tail;
};

struct workpool {
    struct event_base *base;
    struct event *ev;
    int efd;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* a job was queued, or stopping */
    pthread_cond_t done_cv; /* a job was appended to done */
    struct job_list queue;  /* waiting for a worker */
    struct job_list done;   /* work finished, done() not yet run */
    bool stopping;
    atomic_uint pending; /* submitted, done() not yet run */
    unsigned nthreads;
    pthread_t *threads;
};

static void list_init(struct job_list *l)
{
    l->head = NULL;
    l->tail = &l->head;
}

static void list_push(struct job_list *l, struct job *j)
{
    j->next = NULL;
    *l->tail = j;
    l->tail = &j->next;
}

static struct job *list_pop(struct job_list *l)
{
    struct job *j = l->head;
    if (j != NULL) {
        l->head = j->next;
        if (l->head == NULL)
            l->tail = &l->head;
    }
    return j;
}

/* Take the whole list, leaving it empty. */
static struct job *list_take(struct job_list *l)
{
    struct job *all = l->head;
    list_init(l);
    return all;
}

static void lock(struct workpool *wp)
{
    int rc = pthread_mutex_lock(&wp->mu);
    if (rc != 0)
        sm_panic("workpool: mutex lock: %s", strerror(rc));
}

static void unlock(struct workpool *wp)
{
    int rc = pthread_mutex_unlock(&wp->mu);
    if (rc != 0)
        sm_panic("workpool: mutex unlock: %s", strerror(rc));
}

/* Wake the loop: add 1 to the eventfd counter (never blocks: the counter
 * cannot realistically reach its 2^64-2 limit). */
static void wake_loop(struct workpool *wp)
{
    uint64_t one = 1;
    while (write(wp->efd, &one, sizeof one) < 0) {
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            sm_panic("workpool: eventfd write: %s", strerror(errno));
        break; /* counter saturated: the loop is already woken */
    }
}

static void *worker_main(void *p)
{
    struct workpool *wp = p;

    lock(wp);
    for (;;) {
        struct job *j = list_pop(&wp->queue);
        if (j == NULL) {
            if (wp->stopping)
                break;
            pthread_cond_wait(&wp->cv, &wp->mu);
            continue;
        }
        unlock(wp);
        j->work(j->arg);
        lock(wp);
        list_push(&wp->done, j);
        pthread_cond_signal(&wp->done_cv);
        wake_loop(wp);
    }
    unlock(wp);
    return NULL;
}

/* Run the done() callbacks of a taken list, in order, on this thread. */
static void run_done(struct workpool *wp, struct job *j)
{
    while (j != NULL) {
        struct job *next = j->next;
        workpool_fn *done = j->done;
        void *arg = j->arg;
        free(j);
        atomic_fetch_sub(&wp->pending, 1); /* done() sees itself completed */
        if (done != NULL)
            done(arg);
        j = next;
    }
}

/* Loop-thread callback: the eventfd became readable. */
static void on_wake(evutil_socket_t fd, short what, void *p)
{
    struct workpool *wp = p;
    uint64_t count;
    (void)what;

    while (read(fd, &count, sizeof count) < 0 && errno == EINTR)
        ;
    lock(wp);
    struct job *all = list_take(&wp->done);
    unlock(wp);
    run_done(wp, all);
}

/* Start the workers with a 512 KiB stack and all signals blocked. */
static void start_threads(struct workpool *wp)
{
    pthread_attr_t attr;
    sigset_t all, old;
    int rc;

    if ((rc = pthread_attr_init(&attr)) != 0 ||
        (rc = pthread_attr_setstacksize(&attr, WORKPOOL_STACK)) != 0)
        fatalx("workpool: thread attributes: %s", strerror(rc));
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < wp->nthreads; i++) {
        rc = pthread_create(&wp->threads[i], &attr, worker_main, wp);
        if (rc != 0)
            fatalx("workpool: cannot start thread %u of %u: %s", i + 1, wp->nthreads, strerror(rc));
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
}

struct workpool *workpool_new(struct event_base *base, unsigned threads)
{
    struct workpool *wp = sm_malloc(sizeof *wp);

    if (threads == 0)
        threads = 1;
    if (threads > WORKPOOL_MAX_THREADS)
        threads = WORKPOOL_MAX_THREADS;
    wp->base = base;
    wp->nthreads = threads;
    wp->threads = sm_calloc(threads, sizeof *wp->threads);
    list_init(&wp->queue);
    list_init(&wp->done);
    atomic_init(&wp->pending, 0);
    if (pthread_mutex_init(&wp->mu, NULL) != 0 || pthread_cond_init(&wp->cv, NULL) != 0 ||
        pthread_cond_init(&wp->done_cv, NULL) != 0)
        fatalx("workpool: cannot create mutex or condition variables");

    wp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wp->efd < 0)
        fatal("workpool: eventfd");
    wp->ev = event_new(base, wp->efd, EV_READ | EV_PERSIST, on_wake, wp);
    if (wp->ev == NULL || event_add(wp->ev, NULL) < 0)
        fatalx("workpool: cannot register the completion event");
    start_threads(wp);
    return wp;
}

void workpool_submit(struct workpool *wp, workpool_fn *work, workpool_fn *done, void *arg)
{
    struct job *j = sm_malloc(sizeof *j);
    j->work = work;
    j->done = done;
    j->arg = arg;
    atomic_fetch_add(&wp->pending, 1);

    lock(wp);
    if (work == NULL) { /* nothing to run: straight to the loop */
        list_push(&wp->done, j);
        pthread_cond_signal(&wp->done_cv);
        wake_loop(wp);
    } else {
        list_push(&wp->queue, j);
        pthread_cond_signal(&wp->cv);
    }
    unlock(wp);
}

unsigned workpool_pending(const struct workpool *wp)
{
    return atomic_load(&wp->pending);
}

/* Run done() for every pending job as the workers finish them; done()
 * may submit more, which keeps the count above zero until those finish. */
static void drain_pending(struct workpool *wp)
{
    while (atomic_load(&wp->pending) > 0) {
        lock(wp);
        while (wp->done.head == NULL)
            pthread_cond_wait(&wp->done_cv, &wp->mu);
        struct job *all = list_take(&wp->done);
        unlock(wp);
        run_done(wp, all);
    }
}

void workpool_free(struct workpool **wpp)
{
    struct workpool *wp = wpp ? *wpp : NULL;
    if (wp == NULL)
        return;

    drain_pending(wp);
    lock(wp);
    wp->stopping = true;
    pthread_cond_broadcast(&wp->cv);
    unlock(wp);
    for (unsigned i = 0; i < wp->nthreads; i++) {
        int rc = pthread_join(wp->threads[i], NULL);
        if (rc != 0)
            sm_panic("workpool: join: %s", strerror(rc));
    }

    event_free(wp->ev);
    close(wp->efd);
    pthread_cond_destroy(&wp->cv);
    pthread_cond_destroy(&wp->done_cv);
    pthread_mutex_destroy(&wp->mu);
    free(wp->threads);
    free(wp);
    *wpp = NULL;
}
