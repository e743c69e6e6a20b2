/* workpool.h — a small fixed pool of threads for blocking work.
 *
 * The event loop never blocks on disk, DNS or CPU-heavy work; it submits a
 * job here.  work() runs on a pool thread; done() then runs on the loop
 * thread.  The job's arg should carry an id (a session id), never a raw
 * pointer to something the loop may free meanwhile: done() looks the
 * owner up and drops the result if it is gone. */
#ifndef SM_WORKPOOL_H
#define SM_WORKPOOL_H

struct event_base;
struct workpool;

typedef void workpool_fn(void *arg);

/* Start `threads` workers delivering completions to base. */
struct workpool *workpool_new(struct event_base *base, unsigned threads);
/* Queue a job; work may be NULL (done only, deferred to the loop). */
void workpool_submit(struct workpool *wp, workpool_fn *work, workpool_fn *done, void *arg);
/* Jobs submitted and not yet completed. */
unsigned workpool_pending(const struct workpool *wp);
/* Finish every queued job (running done() for each), stop, free. */
void workpool_free(struct workpool **wp);

#endif
