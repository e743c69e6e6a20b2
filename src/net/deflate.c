/* deflate.c — COMPRESS=DEFLATE streams (see deflate.h). */
#include "net/deflate.h"

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdlib.h>
#include <zlib.h>

#include "core/mem.h"

#define CHUNK (16 * 1024)
#define LEVEL 6 /* zlib's default: RFC 4978 leaves it to the server */

struct deflate_pair {
    z_stream in, out;
    bool in_ok, out_ok;
};

struct deflate_pair *deflate_pair_new(void)
{
    struct deflate_pair *dp = sm_calloc(1, sizeof *dp);
    dp->in_ok = inflateInit2(&dp->in, -15) == Z_OK;
    dp->out_ok = deflateInit2(&dp->out, LEVEL, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK;
    if (!dp->in_ok || !dp->out_ok)
        deflate_pair_free(&dp);
    return dp;
}

void deflate_pair_free(struct deflate_pair **dpp)
{
    struct deflate_pair *dp = *dpp;
    if (dp == NULL)
        return;
    if (dp->in_ok)
        inflateEnd(&dp->in);
    if (dp->out_ok)
        deflateEnd(&dp->out);
    free(dp);
    *dpp = NULL;
}

int deflate_pair_inflate(struct deflate_pair *dp, struct evbuffer *in, struct evbuffer *out,
                         size_t max)
{
    unsigned char buf[CHUNK];
    /* zlib may hold output back when buf fills: call it again even with
     * no input left, until it produces nothing more */
    while (evbuffer_get_length(out) < max) {
        size_t avail = evbuffer_get_length(in);
        size_t take = avail > CHUNK ? CHUNK : avail;
        dp->in.next_in = take > 0 ? evbuffer_pullup(in, (ev_ssize_t)take) : NULL;
        dp->in.avail_in = (uInt)take;
        uInt offered = dp->in.avail_in;
        dp->in.next_out = buf;
        dp->in.avail_out = sizeof buf;
        int z = inflate(&dp->in, Z_SYNC_FLUSH);
        if (z != Z_OK && z != Z_BUF_ERROR)
            return -1; /* Z_STREAM_END too: a client may not end the stream */
        size_t used = offered - dp->in.avail_in, made = sizeof buf - dp->in.avail_out;
        evbuffer_drain(in, used);
        evbuffer_add(out, buf, made);
        if (used == 0 && made == 0)
            break;
    }
    return 0;
}

int deflate_pair_deflate(struct deflate_pair *dp, struct evbuffer *in, struct evbuffer *out)
{
    unsigned char buf[CHUNK];
    int flush;
    do {
        size_t avail = evbuffer_get_length(in);
        size_t take = avail > CHUNK ? CHUNK : avail;
        flush = avail == take ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        dp->out.next_in = take > 0 ? evbuffer_pullup(in, (ev_ssize_t)take) : NULL;
        dp->out.avail_in = (uInt)take;
        do {
            dp->out.next_out = buf;
            dp->out.avail_out = sizeof buf;
            if (deflate(&dp->out, flush) == Z_STREAM_ERROR)
                return -1;
            evbuffer_add(out, buf, sizeof buf - dp->out.avail_out);
        } while (dp->out.avail_out == 0);
        evbuffer_drain(in, take);
    } while (flush != Z_SYNC_FLUSH);
    return 0;
}
