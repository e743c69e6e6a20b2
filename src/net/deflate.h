/* deflate.h — COMPRESS=DEFLATE (RFC 4978): raw deflate both ways.
 *
 * A pair of zlib streams (windowBits -15, no header, as RFC 4978 §4
 * says): what the peer sends is inflated, what we send is deflated with a
 * sync flush per batch so the peer can act on every reply at once.
 * Inflating is bounded: a small compressed input can expand a thousand
 * times, so the caller says how much plain text it will hold, and the
 * rest of the input waits until the plain text has been consumed. */
#ifndef SM_DEFLATE_H
#define SM_DEFLATE_H

#include <stddef.h>

struct evbuffer;
struct deflate_pair;

/* A new pair; NULL when zlib cannot allocate. */
struct deflate_pair *deflate_pair_new(void);
void deflate_pair_free(struct deflate_pair **dp);

/* Inflate from in (the consumed bytes are drained) into out until in is
 * empty or out holds at least max bytes.  Returns 0, or -1 when the input
 * is not valid deflate data (the connection cannot continue). */
int deflate_pair_inflate(struct deflate_pair *dp, struct evbuffer *in, struct evbuffer *out,
                         size_t max);

/* Deflate all of in (drained) onto out, ending with a sync flush.
 * Returns 0, or -1 on a zlib failure. */
int deflate_pair_deflate(struct deflate_pair *dp, struct evbuffer *in, struct evbuffer *out);

#endif
