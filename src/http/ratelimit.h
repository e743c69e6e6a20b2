/* ratelimit.h — "at most N events per client per window", in bounded memory.
 *
 * Used for inbox creation (N per hour per client address).  Clients are
 * keyed by network, as elsewhere in sealmail: an IPv4 address, or the /64
 * of an IPv6 address (one subscriber's allocation).  The table has a fixed
 * number of slots; a client whose window ended frees its slot, and when
 * every slot of a client's probe run is taken by live windows the oldest
 * is evicted (so a flood of addresses cannot grow memory; its cost is that
 * an evicted client starts a fresh window).  Loop thread only. */
#ifndef SM_HTTP_RATELIMIT_H
#define SM_HTTP_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct ratelimit;

struct ratelimit *ratelimit_new(unsigned limit, unsigned window_seconds, unsigned slots);
void ratelimit_free(struct ratelimit **r);

/* Count one event of the client at time now.  true: allowed; false:
 * over the limit, *retry_after_r = seconds until the window ends. */
bool ratelimit_take(struct ratelimit *r, const struct sockaddr_storage *client, int64_t now,
                    unsigned *retry_after_r);

#endif
