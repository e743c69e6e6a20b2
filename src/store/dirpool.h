/* dirpool.h — directory handles for worker threads.
 *
 * A SQLite connection is used by one thread at a time, and opening one per
 * job costs a file open and a schema check.  A pool keeps the handles that
 * jobs gave back (up to a bound) for the next job on any thread.
 * Thread-safe. */
#ifndef SM_DIRPOOL_H
#define SM_DIRPOOL_H

struct directory;
struct dirpool;

/* Handles of data_dir/directory.db; at most max are kept idle. */
struct dirpool *dirpool_new(const char *data_dir, unsigned max);
/* Closes the idle handles; every taken one must have been given back. */
void dirpool_free(struct dirpool **p);
/* A handle for this job (an idle one, or a new one); NULL when the
 * directory cannot be opened (logged). */
struct directory *dirpool_take(struct dirpool *p);
/* Give a handle back (NULL is ignored). */
void dirpool_give(struct dirpool *p, struct directory *d);

#endif
