/* linereader.c — bounded line extraction from an evbuffer (see linereader.h).
 *
 * evbuffer_search_range() limits the LF search to the first max bytes, so
 * the cost per call is bounded by the line limit whatever the peer sends. */
#include "net/linereader.h"

#include <event2/buffer.h>
#include <string.h>

void linereader_init(struct linereader *lr, size_t max)
{
    lr->max = max < 3 ? 3 : max;
    lr->skipping = lr->skip_last_cr = lr->last_bare = lr->bare_before = false;
}

/* The byte at position pos of in (pos < length). */
static char byte_at(struct evbuffer *in, size_t pos)
{
    struct evbuffer_ptr p;
    char c = 0;
    if (evbuffer_ptr_set(in, &p, pos, EVBUFFER_PTR_SET) == 0)
        evbuffer_copyout_from(in, &p, &c, 1);
    return c;
}

/* Position of the first LF within the first `limit` bytes, or -1. */
static ssize_t find_lf(struct evbuffer *in, size_t limit)
{
    struct evbuffer_ptr end;
    size_t avail = evbuffer_get_length(in);
    if (limit > avail)
        limit = avail;
    if (evbuffer_ptr_set(in, &end, limit, EVBUFFER_PTR_SET) < 0)
        return -1;
    struct evbuffer_ptr p = evbuffer_search_range(in, "\n", 1, NULL, &end);
    return p.pos;
}

static enum lr_result skip_rest(struct linereader *lr, struct evbuffer *in)
{
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            return LR_MORE;
        size_t chunk = avail < 65536 ? avail : 65536;
        ssize_t lf = find_lf(in, chunk);
        if (lf >= 0) {
            bool cr = lf > 0 ? byte_at(in, (size_t)lf - 1) == '\r' : lr->skip_last_cr;
            lr->last_bare = !cr;
            evbuffer_drain(in, (size_t)lf + 1);
            lr->skipping = false;
            return LR_MORE;
        }
        lr->skip_last_cr = byte_at(in, chunk - 1) == '\r';
        evbuffer_drain(in, chunk);
    }
}

enum lr_result linereader_next(struct linereader *lr, struct evbuffer *in, char *line,
                               size_t *len_r)
{
    if (lr->skipping) {
        skip_rest(lr, in);
        if (lr->skipping)
            return LR_MORE;
    }
    ssize_t lf = find_lf(in, lr->max);
    if (lf < 0) {
        if (evbuffer_get_length(in) < lr->max)
            return LR_MORE;
        lr->skipping = true;
        lr->skip_last_cr = false;
        skip_rest(lr, in);
        return LR_TOOLONG;
    }
    size_t n = (size_t)lf; /* bytes before the LF */
    evbuffer_remove(in, line, n + 1);
    bool cr = n > 0 && line[n - 1] == '\r';
    size_t len = cr ? n - 1 : n;
    line[len] = '\0';
    *len_r = len;
    lr->bare_before = lr->last_bare;
    lr->last_bare = !cr;
    if (!cr)
        return LR_BARE_LF;
    if (memchr(line, '\r', len) != NULL)
        return LR_BARE_CR;
    return LR_LINE;
}

size_t linereader_clean_prefix(struct linereader *lr, const char *p, size_t n, char stop)
{
    if (lr->skipping || lr->last_bare)
        return 0;
    size_t used = 0;
    while (used < n) {
        const char *line = p + used;
        size_t avail = n - used;
        /* the same bound as linereader_next(): the LF within max bytes */
        const char *lf = memchr(line, '\n', avail < lr->max ? avail : lr->max);
        if (lf == NULL || lf == line || line[0] == stop)
            break;
        size_t len = (size_t)(lf - line); /* bytes before the LF, the CR included */
        if (lf[-1] != '\r' || memchr(line, '\r', len - 1) != NULL)
            break; /* bare LF or bare CR: the caller must see it */
        used += len + 1;
    }
    return used;
}
