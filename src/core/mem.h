/* mem.h — allocation that never fails for its callers.
 *
 * Every sm_* allocator aborts the process on out-of-memory (there is no
 * sensible recovery for a mail daemon half-way through a transaction), so
 * callers never test for NULL.  Returned memory is zeroed. */
#ifndef SM_MEM_H
#define SM_MEM_H

#include <stddef.h>

/* Zeroed allocation of n bytes (n may be 0); never returns NULL. */
void *sm_malloc(size_t n);
/* Zeroed allocation of count*size bytes; aborts on overflow. */
void *sm_calloc(size_t count, size_t size);
/* Resize p to n bytes; new bytes are not zeroed; never returns NULL. */
void *sm_realloc(void *p, size_t n);
/* Copy of a NUL-terminated string. */
char *sm_strdup(const char *s);
/* Copy of at most n bytes of s, always NUL-terminated. */
char *sm_strndup(const char *s, size_t n);
/* free(*pp) and set *pp to NULL; accepts NULL and *pp == NULL. */
void sm_freep(void *pp);

#endif
