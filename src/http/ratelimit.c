/* ratelimit.c — fixed windows per client network (see ratelimit.h). */
#include "http/ratelimit.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#define PROBES 8

struct slot {
    uint8_t key[8]; /* IPv4 address, or the first 64 bits of IPv6 */
    uint8_t family;
    int64_t start;  /* window start; 0: free */
    unsigned count;
};

struct ratelimit {
    unsigned limit, window, n;
    struct slot *slots;
};

struct ratelimit *ratelimit_new(unsigned limit, unsigned window_seconds, unsigned slots)
{
    struct ratelimit *r = sm_calloc(1, sizeof *r);
    r->limit = limit;
    r->window = window_seconds;
    r->n = slots ? slots : 1;
    r->slots = sm_calloc(r->n, sizeof *r->slots);
    return r;
}

void ratelimit_free(struct ratelimit **r)
{
    if (*r == NULL)
        return;
    free((*r)->slots);
    free(*r);
    *r = NULL;
}

static void client_key(const struct sockaddr_storage *ss, uint8_t key[8], uint8_t *family)
{
    memset(key, 0, 8);
    *family = (uint8_t)ss->ss_family;
    if (ss->ss_family == AF_INET)
        memcpy(key, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    else if (ss->ss_family == AF_INET6)
        memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 8);
}

static unsigned hash(const uint8_t key[8], uint8_t family)
{
    uint64_t h = 1469598103934665603ull ^ family; /* FNV-1a */
    for (int i = 0; i < 8; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    return (unsigned)(h ^ (h >> 32));
}

/* The client's slot: its own, else a free or expired one, else the
 * oldest of the probe run (evicted). */
static struct slot *find(struct ratelimit *r, const uint8_t key[8], uint8_t family, int64_t now)
{
    unsigned h = hash(key, family);
    struct slot *spare = NULL, *oldest = NULL;
    for (unsigned i = 0; i < PROBES && i < r->n; i++) {
        struct slot *s = &r->slots[(h + i) % r->n];
        bool live = s->start != 0 && now - s->start < (int64_t)r->window;
        if (live && s->family == family && memcmp(s->key, key, 8) == 0)
            return s;
        if (!live && spare == NULL)
            spare = s;
        if (oldest == NULL || s->start < oldest->start)
            oldest = s;
    }
    struct slot *s = spare != NULL ? spare : oldest;
    memcpy(s->key, key, 8);
    s->family = family;
    s->start = now;
    s->count = 0;
    return s;
}

bool ratelimit_take(struct ratelimit *r, const struct sockaddr_storage *client, int64_t now,
                    unsigned *retry_after_r)
{
    uint8_t key[8], family;
    client_key(client, key, &family);
    struct slot *s = find(r, key, family, now > 0 ? now : 1);
    if (s->count >= r->limit) {
        int64_t left = s->start + (int64_t)r->window - now;
        *retry_after_r = left > 0 ? (unsigned)left : 1;
        return false;
    }
    s->count++;
    return true;
}
