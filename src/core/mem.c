/* mem.c — never-failing allocation wrappers (see mem.h). */
#include "core/mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

void *sm_malloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (p == NULL)
        sm_panic("out of memory allocating %zu bytes", n);
    return p;
}

void *sm_calloc(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        sm_panic("allocation overflow %zu*%zu", count, size);
    return sm_malloc(count * size);
}

void *sm_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        sm_panic("out of memory reallocating %zu bytes", n);
    return q;
}

char *sm_strdup(const char *s)
{
    return sm_strndup(s, strlen(s));
}

char *sm_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = sm_malloc(len + 1);
    memcpy(p, s, len);
    return p;
}

void sm_freep(void *pp)
{
    void **p = pp;
    free(*p);
    *p = NULL;
}
