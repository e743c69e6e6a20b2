/* buf.c — bounded growable buffers (see buf.h). */
#include "core/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"

void sm_buf_init(struct sm_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

static int buf_reserve(struct sm_buf *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len)
        return -1;
    if (b->max != 0 && b->len + extra > b->max)
        return -1;
    size_t need = b->len + extra + 1; /* @UNSAFE: +1 for the NUL, bounded above */
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = sm_realloc(b->data, cap);
    b->cap = cap;
    return 0;
}

int sm_buf_append(struct sm_buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int sm_buf_puts(struct sm_buf *b, const char *s)
{
    return sm_buf_append(b, s, strlen(s));
}

int sm_buf_vprintf(struct sm_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0 || buf_reserve(b, (size_t)n) < 0)
        return -1;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int sm_buf_printf(struct sm_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = sm_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return r;
}

const char *sm_buf_str(const struct sm_buf *b)
{
    return b->data ? b->data : "";
}

void sm_buf_reset(struct sm_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void sm_buf_free(struct sm_buf *b)
{
    sm_freep(&b->data);
    b->len = b->cap = 0;
}

void sm_buf_wipe_free(struct sm_buf *b)
{
    if (b->data)
        explicit_bzero(b->data, b->cap);
    sm_buf_free(b);
}
