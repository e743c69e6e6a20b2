/* peerlimit.c — per-client connection counts (see peerlimit.h).
 *
 * A chained hash table keyed by the address prefix; entries are removed
 * when their count drops to zero, so memory follows live connections. */
#include "net/peerlimit.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#define PEER_BUCKETS 1024

struct peer {
    struct peer *next;
    uint8_t key[9]; /* family byte + IPv4 address or IPv6 /64 */
    unsigned count;
};

struct peerlimit {
    unsigned max;
    struct peer *buckets[PEER_BUCKETS];
};

struct peerlimit *peerlimit_new(unsigned max)
{
    struct peerlimit *pl = sm_malloc(sizeof *pl);
    pl->max = max;
    return pl;
}

void peerlimit_free(struct peerlimit **plp)
{
    struct peerlimit *pl = *plp;
    if (pl == NULL)
        return;
    for (size_t i = 0; i < PEER_BUCKETS; i++) {
        while (pl->buckets[i] != NULL) {
            struct peer *p = pl->buckets[i];
            pl->buckets[i] = p->next;
            free(p);
        }
    }
    free(pl);
    *plp = NULL;
}

void peerlimit_set_max(struct peerlimit *pl, unsigned max)
{
    pl->max = max;
}

static void peer_key(const struct sockaddr *sa, uint8_t key[9])
{
    memset(key, 0, 9);
    key[0] = (uint8_t)sa->sa_family;
    if (sa->sa_family == AF_INET)
        memcpy(key + 1, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    else if (sa->sa_family == AF_INET6)
        memcpy(key + 1, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 8);
}

static struct peer **peer_find(struct peerlimit *pl, const uint8_t key[9])
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < 9; i++)
        h = (h ^ key[i]) * 16777619u;
    struct peer **pp = &pl->buckets[h % PEER_BUCKETS];
    while (*pp != NULL && memcmp((*pp)->key, key, 9) != 0)
        pp = &(*pp)->next;
    return pp;
}

bool peerlimit_acquire(struct peerlimit *pl, const struct sockaddr *sa)
{
    uint8_t key[9];
    peer_key(sa, key);
    struct peer **pp = peer_find(pl, key);
    if (*pp == NULL) {
        *pp = sm_malloc(sizeof **pp);
        memcpy((*pp)->key, key, 9);
    }
    if ((*pp)->count >= pl->max)
        return false;
    (*pp)->count++;
    return true;
}

void peerlimit_release(struct peerlimit *pl, const struct sockaddr *sa)
{
    uint8_t key[9];
    peer_key(sa, key);
    struct peer **pp = peer_find(pl, key);
    struct peer *p = *pp;
    if (p == NULL)
        return;
    if (p->count > 0)
        p->count--;
    if (p->count == 0) {
        *pp = p->next;
        free(p);
    }
}
