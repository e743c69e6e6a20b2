/* test-workpool.c — jobs run on pool threads, completions on the loop.
 *
 * Each job records the thread its work() and done() ran on; done() must
 * always run on the loop thread (the one calling event_base_dispatch or
 * workpool_free), work() never on it. */
#include <event2/event.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/workpool.h"

#define MAX_JOBS 1000

struct run {
    struct event_base *base;
    struct workpool *wp;
    pthread_t loop;
    unsigned expected;
    unsigned done;
    unsigned order[MAX_JOBS]; /* job index, in done() order */
    atomic_uint worked;
    bool sleepy;     /* work() sleeps a little */
    bool resubmit;   /* done() of job 0 submits one more job */
    bool bad_thread; /* a callback ran on the wrong thread */
};

struct job {
    struct run *run;
    unsigned index;
    bool worked;
};

static struct job jobs[MAX_JOBS + 1];

static void job_work(void *arg)
{
    struct job *j = arg;
    if (pthread_equal(pthread_self(), j->run->loop))
        j->run->bad_thread = true;
    if (j->run->sleepy)
        usleep(200);
    j->worked = true;
    atomic_fetch_add(&j->run->worked, 1);
}

static void job_done(void *arg)
{
    struct job *j = arg;
    struct run *r = j->run;
    if (!pthread_equal(pthread_self(), r->loop))
        r->bad_thread = true;
    if (r->done < MAX_JOBS)
        r->order[r->done] = j->index;
    r->done++;
    if (r->resubmit && j->index == 0) {
        jobs[MAX_JOBS] = (struct job){.run = r, .index = MAX_JOBS};
        workpool_submit(r->wp, job_work, job_done, &jobs[MAX_JOBS]);
    }
    if (r->done == r->expected && r->base != NULL)
        event_base_loopbreak(r->base);
}

static const struct pool_case {
    const char *label;
    unsigned threads;
    unsigned jobs;
    bool done_only; /* work == NULL */
    bool ordered;   /* done() order must equal submission order */
} pool_cases[] = {
    {"1000 jobs on 4 threads", 4, 1000, false, false},
    {"one thread completes in submission order", 1, 300, false, true},
    {"done-only jobs keep submission order", 3, 100, true, true},
    {"zero threads means one", 0, 20, false, true},
};

static void test_jobs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++) {
        const struct pool_case *t = &pool_cases[i];
        static struct run r;
        print_message("case: %s\n", t->label);
        memset(&r, 0, sizeof r);
        r.base = event_base_new();
        r.loop = pthread_self();
        r.expected = t->jobs;
        r.wp = workpool_new(r.base, t->threads);
        for (unsigned k = 0; k < t->jobs; k++) {
            jobs[k] = (struct job){.run = &r, .index = k};
            workpool_submit(r.wp, t->done_only ? NULL : job_work, job_done, &jobs[k]);
        }
        assert_true(workpool_pending(r.wp) > 0);
        struct timeval limit = {.tv_sec = 30};
        event_base_loopexit(r.base, &limit);
        assert_int_equal(event_base_dispatch(r.base), 0);

        assert_int_equal(r.done, t->jobs);
        assert_int_equal(workpool_pending(r.wp), 0);
        assert_int_equal(atomic_load(&r.worked), t->done_only ? 0 : t->jobs);
        assert_false(r.bad_thread);
        for (unsigned k = 0; t->ordered && k < t->jobs; k++)
            assert_int_equal(r.order[k], k);
        workpool_free(&r.wp);
        assert_null(r.wp);
        event_base_free(r.base);
    }
}

/* workpool_free with jobs still queued runs every work() and done(),
 * done() on the freeing thread, even jobs a done() submits meanwhile. */
static void test_free_runs_pending(void **state)
{
    static struct run r;
    (void)state;
    memset(&r, 0, sizeof r);
    struct event_base *base = event_base_new();
    r.loop = pthread_self();
    r.sleepy = true;
    r.resubmit = true;
    r.expected = 201;
    r.wp = workpool_new(base, 2);
    for (unsigned k = 0; k < 200; k++) {
        jobs[k] = (struct job){.run = &r, .index = k};
        workpool_submit(r.wp, job_work, job_done, &jobs[k]);
    }
    workpool_free(&r.wp); /* no dispatch at all */
    assert_null(r.wp);
    assert_int_equal(r.done, 201);
    assert_int_equal(atomic_load(&r.worked), 201);
    for (unsigned k = 0; k <= 200; k++)
        assert_true(jobs[k].worked);
    assert_false(r.bad_thread);
    workpool_free(&r.wp); /* NULL is a no-op */
    event_base_free(base);
}

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;

static void gated_work(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gate_mu);
    while (!gate_open)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
}

static void count_done(void *arg)
{
    struct run *r = arg;
    r->done++;
    if (r->done == r->expected)
        event_base_loopbreak(r->base);
}

static void test_pending_counts(void **state)
{
    static struct run r;
    (void)state;
    memset(&r, 0, sizeof r);
    r.base = event_base_new();
    r.expected = 5;
    r.wp = workpool_new(r.base, 2);
    assert_int_equal(workpool_pending(r.wp), 0);
    for (int k = 0; k < 5; k++)
        workpool_submit(r.wp, gated_work, count_done, &r);
    assert_int_equal(workpool_pending(r.wp), 5);
    usleep(20000);
    assert_int_equal(workpool_pending(r.wp), 5); /* blocked work is not complete */

    pthread_mutex_lock(&gate_mu);
    gate_open = true;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    struct timeval limit = {.tv_sec = 30};
    event_base_loopexit(r.base, &limit);
    event_base_dispatch(r.base);
    assert_int_equal(r.done, 5);
    assert_int_equal(workpool_pending(r.wp), 0);
    workpool_free(&r.wp);
    event_base_free(r.base);
}

static size_t stack_size_seen;
static bool deep_stack_ok;

static void stack_work(void *arg)
{
    pthread_attr_t attr;
    (void)arg;
    /* No cmocka assertions here: they must not fire on a pool thread. */
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstacksize(&attr, &stack_size_seen);
        pthread_attr_destroy(&attr);
    }
    /* What GMime may need: a quarter of a megabyte of stack.  (Under
     * ThreadSanitizer, its own thread-local state fills the stack area.) */
#ifdef __SANITIZE_THREAD__
    volatile unsigned char deep[16 * 1024];
#else
    volatile unsigned char deep[256 * 1024];
#endif
    for (size_t i = 0; i < sizeof deep; i++)
        deep[i] = (unsigned char)i;
    deep_stack_ok = deep[sizeof deep - 1] == (unsigned char)(sizeof deep - 1);
}

static void test_worker_stack(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct workpool *wp = workpool_new(base, 1);
    workpool_submit(wp, stack_work, NULL, NULL);
    workpool_free(&wp);
    event_base_free(base);
    assert_true(stack_size_seen >= 512 * 1024);
    assert_true(deep_stack_ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jobs),
        cmocka_unit_test(test_free_runs_pending),
        cmocka_unit_test(test_pending_counts),
        cmocka_unit_test(test_worker_stack),
    };
    log_init("test-workpool", false, LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
