/* spoolremove.c — removing messages after delivery: files are unlinked,
 * records marked done (Removal at the top of spool.c). */
#include "store/spool-internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"

/* Mark the records tickets[0..n) of segment segnum done (one append and
 * one fdatasync of its .done file), then remove the segment if that
 * finished it.  A record not there is an error unless missing_ok. */
static int seg_remove(int dfd, uint32_t segnum, const uint32_t *tickets, size_t n, bool missing_ok,
                      const char **error_r)
{
    struct seg_header h;
    uint64_t off;
    const char *error;
    int ret = 0;

    int fd = seg_open(dfd, segnum, &h, &error);
    if (fd < 0) {
        if (missing_ok && strcmp(error, "no such message in the spool") == 0)
            return 0;
        *error_r = error;
        return -1;
    }
    uint32_t *live = sm_calloc(n, sizeof *live);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (seg_locate(dfd, fd, &h, tickets[i], &off, &error) == 0)
            live[k++] = tickets[i];
        else if (!missing_ok || strcmp(error, "no such message in the spool") != 0) {
            *error_r = error;
            ret = -1;
        }
    }
    close(fd);
    if (k > 0 && seg_done_append(dfd, &h, live, k, error_r) < 0)
        ret = -1;
    free(live);
    if (k > 0)
        seg_try_delete(dfd, segnum);
    return ret;
}

struct seg_ref {
    uint32_t segnum, ticket;
};

static int seg_ref_cmp(const void *a, const void *b)
{
    const struct seg_ref *x = a, *y = b;
    return x->segnum != y->segnum ? (x->segnum < y->segnum ? -1 : 1)
                                  : (x->ticket > y->ticket) - (x->ticket < y->ticket);
}

/* Remove ids: files are unlinked, then ONE fsync of the directory under
 * its flock (syncs of the spool directory take turns, see SYNC_THREADS;
 * the unlinks are plain changes and need not wait for the lock); records
 * of segments are marked done, one .done append and sync per segment.
 * A missing id is an error unless missing_ok.  Now and then (at most once
 * a second per process) finished segments are swept. */
static int remove_ids(const char *dir, const char *const ids[], size_t n, bool missing_ok,
                      const char **error_r)
{
    static pthread_mutex_t sweep_mu = PTHREAD_MUTEX_INITIALIZER;
    static time_t last_sweep;

    for (size_t i = 0; i < n; i++)
        if (!spool_id_valid(ids[i])) {
            *error_r = "invalid queue id (expected 16 lowercase hex digits)";
            return -1;
        }
    int dfd = spool_open_incoming(dir, false, error_r);
    if (dfd < 0)
        return -1;
    int ret = 0;
    size_t removed = 0, n_refs = 0;
    struct seg_ref *refs = sm_calloc(n ? n : 1, sizeof *refs);
    for (size_t i = 0; i < n; i++) {
        if (unlinkat(dfd, ids[i], 0) == 0) /* a file (a segment id: a spilled message) */
            removed++;
        else if (errno == ENOENT &&
                 seg_id_parse(ids[i], &refs[n_refs].segnum, &refs[n_refs].ticket))
            n_refs++;
        else if (errno != ENOENT || !missing_ok) {
            *error_r = errno == ENOENT ? "no such message in the spool"
                                       : spool_errno_msg("cannot remove message");
            ret = -1;
        }
    }
    if (removed > 0 && spool_dir_sync(dfd) < 0) {
        *error_r = spool_errno_msg("cannot sync spool directory");
        ret = -1;
    }
    qsort(refs, n_refs, sizeof *refs, seg_ref_cmp);
    uint32_t *tickets = sm_calloc(n_refs ? n_refs : 1, sizeof *tickets);
    for (size_t i = 0; i < n_refs;) {
        size_t k = 0, j = i;
        for (; j < n_refs && refs[j].segnum == refs[i].segnum; j++)
            tickets[k++] = refs[j].ticket;
        if (seg_remove(dfd, refs[i].segnum, tickets, k, missing_ok, error_r) < 0)
            ret = -1;
        i = j;
    }
    free(tickets);
    free(refs);
    pthread_mutex_lock(&sweep_mu);
    bool sweep = time(NULL) != last_sweep;
    last_sweep = time(NULL);
    pthread_mutex_unlock(&sweep_mu);
    if (sweep)
        seg_sweep(dfd);
    close(dfd);
    return ret;
}

void spool_sweep(const char *dir)
{
    const char *error;
    int dfd = spool_open_incoming(dir, false, &error);
    if (dfd >= 0) {
        seg_sweep(dfd);
        close(dfd);
    }
}

int spool_remove(const char *dir, const char *id, const char **error_r)
{
    return remove_ids(dir, &id, 1, false, error_r);
}

int spool_remove_many(const char *dir, const char *const ids[], size_t n, const char **error_r)
{
    return remove_ids(dir, ids, n, true, error_r);
}
