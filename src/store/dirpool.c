/* dirpool.c — directory handles for worker threads (see dirpool.h). */
#include "store/dirpool.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/log.h"
#include "core/mem.h"
#include "store/directory.h"

struct dirpool {
    pthread_mutex_t mu;
    char *data_dir;
    struct directory **idle;
    unsigned n, max;
};

struct dirpool *dirpool_new(const char *data_dir, unsigned max)
{
    struct dirpool *p = sm_calloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    p->data_dir = sm_strdup(data_dir);
    p->max = max ? max : 1;
    p->idle = sm_calloc(p->max, sizeof *p->idle);
    return p;
}

void dirpool_free(struct dirpool **pp)
{
    struct dirpool *p = *pp;
    if (p == NULL)
        return;
    for (unsigned i = 0; i < p->n; i++)
        directory_close(&p->idle[i]);
    pthread_mutex_destroy(&p->mu);
    free(p->idle);
    free(p->data_dir);
    free(p);
    *pp = NULL;
}

struct directory *dirpool_take(struct dirpool *p)
{
    struct directory *d = NULL;
    const char *error;
    pthread_mutex_lock(&p->mu);
    if (p->n > 0)
        d = p->idle[--p->n];
    pthread_mutex_unlock(&p->mu);
    if (d == NULL && (d = directory_open(p->data_dir, false, &error)) == NULL)
        log_warn("directory-error=\"%s\"", error);
    return d;
}

void dirpool_give(struct dirpool *p, struct directory *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    if (p->n < p->max) {
        p->idle[p->n++] = d;
        d = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    directory_close(&d);
}
