/* buf.h — a growable, binary-safe byte buffer with an optional hard maximum.
 *
 * The content is always NUL-terminated (the NUL is not counted in len), so
 * text can be passed to C string functions.  Growing past `max` fails
 * instead of reallocating: that is how limits on outside input are kept. */
#ifndef SM_BUF_H
#define SM_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "core/log.h"

struct sm_buf {
    char *data;  /* NUL-terminated; NULL until the first append */
    size_t len;  /* bytes used, excluding the NUL */
    size_t cap;  /* bytes allocated */
    size_t max;  /* hard limit on len; 0 means unlimited */
};

/* Initialise an empty buffer that may hold at most max bytes (0: no limit). */
void sm_buf_init(struct sm_buf *b, size_t max);
/* Append n bytes; returns 0, or -1 (buffer unchanged) if max would be exceeded. */
int sm_buf_append(struct sm_buf *b, const void *p, size_t n);
/* Append a C string; same result as sm_buf_append(). */
int sm_buf_puts(struct sm_buf *b, const char *s);
/* Append formatted text; same result as sm_buf_append(). */
int sm_buf_printf(struct sm_buf *b, const char *fmt, ...) SM_PRINTF(2, 3);
int sm_buf_vprintf(struct sm_buf *b, const char *fmt, va_list ap) SM_PRINTF(2, 0);
/* Text of the buffer: never NULL ("" when empty). */
const char *sm_buf_str(const struct sm_buf *b);
/* Forget the content, keep the allocation. */
void sm_buf_reset(struct sm_buf *b);
/* Release the memory (after wiping it, for buffers that held secrets). */
void sm_buf_free(struct sm_buf *b);
void sm_buf_wipe_free(struct sm_buf *b);

#endif
