/* spoolcommit.c — group commit: the sync threads make batches of
 * writers durable (GROUP COMMIT and SEGMENTS at the top of spool.c). */
#include "store/spool-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/mem.h"

/* Rename tmp to its final name without ever replacing an existing file. */
static int commit_rename(int dfd, const struct spool_writer *w)
{
    return spool_rename_noreplace(dfd, w->tmp_name, w->id);
}

/* Append the records of n inline writers, all of segment s, at its end
 * with one pwritev, then make them durable with ONE fdatasync of the
 * segment.  Only this thread writes or syncs s, one batch at a time: no
 * two syncs of the segment overlap (see SYNC_THREADS).  On any error the
 * segment takes no more records (what follows a torn write would be
 * unreachable); its records of this batch fail and are marked done, in
 * case they reached the disk whole. */
static void commit_segment(struct spool *sp, struct segment *s, struct spool_writer **items,
                           size_t n)
{
    struct iovec *iov = sm_calloc(n, sizeof *iov);
    uint32_t *tickets = sm_calloc(n, sizeof *tickets);
    size_t k = 0;
    uint64_t total = 0;
    const char *error = NULL;

    pthread_mutex_lock(&sp->mu);
    bool failed = s->failed;
    pthread_mutex_unlock(&sp->mu);
    for (size_t i = 0; i < n; i++) {
        struct spool_writer *w = items[i];
        w->ok = false;
        if (w->failed || failed)
            continue;
        seg_record_frame(w->rec, w->rec_len - REC_HDR_LEN, &s->h, w->ticket);
        iov[k].iov_base = w->rec;
        iov[k].iov_len = w->rec_len + REC_SUM_LEN;
        tickets[k] = w->ticket;
        total += iov[k].iov_len;
        k++;
    }
    if (k > 0 && sm_pwritev_full(s->fd, iov, (int)k, (off_t)s->end) < 0)
        error = spool_errno_msg("cannot append to spool segment");
    else if (k > 0 && fdatasync(s->fd) < 0)
        error = spool_errno_msg("fdatasync of spool segment");
    if (error == NULL) {
        s->end += total;
        s->records += (uint32_t)k;
        for (size_t i = 0; i < n; i++)
            items[i]->ok = !items[i]->failed && !failed;
    } else {
        const char *ignored;
        log_warn("spool commit-failed batch=%zu error=\"%s\"", k, error);
        pthread_mutex_lock(&sp->mu);
        s->failed = true;
        pthread_mutex_unlock(&sp->mu);
        seg_done_append(sp->incoming_fd, &s->h, tickets, k, &ignored);
    }
    free(tickets);
    free(iov);
}

/* Commit the inline writers of a batch, one segment at a time (usually
 * there is one). */
static void commit_inline(struct spool *sp, struct spool_writer **items, size_t n)
{
    struct spool_writer **group = sm_calloc(n, sizeof *group);
    bool *taken = sm_calloc(n, sizeof *taken);

    for (size_t i = 0; i < n; i++) {
        if (taken[i])
            continue;
        size_t k = 0;
        for (size_t j = i; j < n; j++)
            if (!taken[j] && items[j]->seg == items[i]->seg) {
                taken[j] = true;
                group[k++] = items[j];
            }
        commit_segment(sp, items[i]->seg, group, k);
    }
    free(taken);
    free(group);
}

/* Make one file's data durable and give it its final name (the name is
 * durable only after the directory sync); on failure remove it. */
static void commit_one(int dfd, struct spool_writer *w)
{
    if (!w->failed && fdatasync(w->fd) < 0) {
        log_warn("spool commit-failed queue=%s error=\"%s\"", w->id, spool_errno_msg("fdatasync"));
        w->failed = true;
    }
    if (!w->failed && commit_rename(dfd, w) < 0) {
        log_warn("spool commit-failed queue=%s error=\"%s\"", w->id, spool_errno_msg("rename"));
        w->failed = true;
    }
    if (w->failed)
        unlinkat(dfd, w->tmp_name, 0);
    close(w->fd); /* also drops the cleanup lock */
    w->fd = -1;
    w->ok = !w->failed;
}

/* Take files of the published batch and commit them until none is left. */
static void fanout_work(struct sync_group *f)
{
    for (;;) {
        pthread_mutex_lock(&f->mu);
        if (f->next >= f->n) {
            pthread_mutex_unlock(&f->mu);
            return;
        }
        struct spool_writer *w = f->items[f->next++];
        pthread_mutex_unlock(&f->mu);

        commit_one(f->dfd, w);
        pthread_mutex_lock(&f->mu);
        if (--f->left == 0)
            pthread_cond_signal(&f->done);
        pthread_mutex_unlock(&f->mu);
    }
}

void *spool_fanout_helper(void *arg)
{
    struct sync_group *f = arg;
    uint64_t seen = 0;

    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (f->gen == seen && !f->stop)
            pthread_cond_wait(&f->start, &f->mu);
        if (f->gen == seen) /* stopping, nothing new */
            break;
        seen = f->gen;
        pthread_mutex_unlock(&f->mu);
        fanout_work(f);
        pthread_mutex_lock(&f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* fdatasync every file of the batch, SYNC_THREADS at a time. */
static void fanout_run(struct sync_group *f, struct spool_writer **items, size_t n)
{
    pthread_mutex_lock(&f->mu);
    f->items = items;
    f->n = n;
    f->next = 0;
    f->left = n;
    f->gen++;
    pthread_cond_broadcast(&f->start);
    pthread_mutex_unlock(&f->mu);

    fanout_work(f);

    pthread_mutex_lock(&f->mu);
    while (f->left > 0)
        pthread_cond_wait(&f->done, &f->mu);
    f->items = NULL;
    f->n = 0;
    pthread_mutex_unlock(&f->mu);
}

/* Make a batch durable: each file's data then name (SYNC_THREADS files at
 * a time), then ONE directory sync for all the names.  Sets w->ok; failed
 * files are removed. */
static void commit_files(struct sync_group *g, struct spool_writer **items, size_t n)
{
    struct spool *sp = g->sp;
    size_t renamed = 0;

    /* sibling processes sync this directory too: one at a time (see
     * SYNC_THREADS).  Without the lock, sync nothing: a file's first sync
     * syncs the directory too, and beside a sibling's directory sync it
     * could let that one return before its names are on disk. */
    if (spool_dir_lock(sp->incoming_fd) < 0) {
        log_warn("spool commit-failed batch=%zu error=\"%s\"", n,
                 spool_errno_msg("lock of spool directory"));
        for (size_t i = 0; i < n; i++) {
            items[i]->failed = true;
            commit_one(sp->incoming_fd, items[i]); /* removes it, syncs nothing */
        }
        return;
    }
    fanout_run(g, items, n);
    for (size_t i = 0; i < n; i++)
        renamed += items[i]->ok;
    int synced = renamed == 0 ? 0 : fsync(sp->incoming_fd);
    spool_dir_unlock(sp->incoming_fd);
    if (synced == 0)
        return;
    log_warn("spool commit-failed batch=%zu error=\"%s\"", renamed,
             spool_errno_msg("fsync of spool directory"));
    for (size_t i = 0; i < n; i++) {
        if (items[i]->ok)
            unlinkat(sp->incoming_fd, items[i]->id, 0);
        items[i]->ok = false;
    }
}

/* Make a batch durable: the records of inline writers by segment, the
 * files of the others (big messages) with their directory sync. */
static void commit_batch(struct sync_group *g, struct spool_writer **items, size_t n)
{
    struct spool_writer **inl = sm_calloc(n, sizeof *inl), **files = sm_calloc(n, sizeof *files);
    size_t n_inl = 0, n_files = 0;

    for (size_t i = 0; i < n; i++) {
        if (items[i]->seg != NULL)
            inl[n_inl++] = items[i];
        else
            files[n_files++] = items[i];
    }
    if (n_inl > 0)
        commit_inline(g->sp, inl, n_inl);
    if (n_files > 0)
        commit_files(g, files, n_files);
    free(files);
    free(inl);
}

/* Hand a finished batch to the loop thread. */
static void post_done(struct spool *sp, struct spool_writer **items, size_t n)
{
    uint64_t one = 1;

    pthread_mutex_lock(&sp->mu);
    for (size_t i = 0; i < n; i++) {
        items[i]->next = NULL;
        *sp->done_tail = items[i];
        sp->done_tail = &items[i]->next;
    }
    pthread_mutex_unlock(&sp->mu);
    if (write(sp->done_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("spool eventfd-write-failed error=\"%s\"", spool_errno_msg("write"));
}

void *spool_sync_main(void *arg)
{
    struct sync_group *g = arg;
    struct spool *sp = g->sp;
    struct spool_writer **items = sm_calloc(sp->sync_batch, sizeof *items);

    pthread_mutex_lock(&sp->mu);
    for (;;) {
        while (sp->queue == NULL && !sp->stop)
            pthread_cond_wait(&sp->work, &sp->mu);
        if (sp->queue == NULL)
            break; /* stopping and drained */
        size_t n = 0;
        while (sp->queue != NULL && n < sp->sync_batch) {
            items[n++] = sp->queue;
            sp->queue = sp->queue->next;
        }
        if (sp->queue == NULL)
            sp->queue_tail = &sp->queue;
        pthread_mutex_unlock(&sp->mu);
        commit_batch(g, items, n);
        post_done(sp, items, n);
        pthread_mutex_lock(&sp->mu);
    }
    pthread_mutex_unlock(&sp->mu);
    free(items);
    return NULL;
}
