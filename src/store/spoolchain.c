/* spoolchain.c — segment record keys from a hash chain (see spoolchain.h). */
#include "store/spoolchain.h"

#include <stdbool.h>
#include <string.h>

#include "crypto/seal.h"

_Static_assert(CHAIN_KEY_BYTES == SEAL_FILE_KEY_BYTES, "record keys are file keys");
_Static_assert(CHAIN_SEED_BYTES == SEAL_HASH_BYTES, "links are BLAKE2b-256 keys");

struct spool_chain {
    uint8_t epoch[CHAIN_SEED_BYTES]; /* E(j + 1): the next epoch link */
    uint8_t link[CHAIN_SEED_BYTES];  /* L(j, i): the next ticket's link */
    uint32_t next;                   /* t = CHAIN_LINKS * j + i */
};

/* in = H(in, label): a step along the chain, the old link overwritten. */
static void step(uint8_t link[CHAIN_SEED_BYTES], const char *label)
{
    uint8_t out[CHAIN_SEED_BYTES];
    seal_keyed_hash2(out, link, label, strlen(label), "", 0);
    memcpy(link, out, sizeof out);
    seal_wipe(out, sizeof out);
}

/* out = H(in, label), in kept. */
static void derive(uint8_t out[CHAIN_SEED_BYTES], const uint8_t in[CHAIN_SEED_BYTES],
                   const char *label)
{
    seal_keyed_hash2(out, in, label, strlen(label), "", 0);
}

/* From E(j) in c->epoch: L(j, 0) into c->link, E(j + 1) into c->epoch. */
static void enter_epoch(struct spool_chain *c)
{
    derive(c->link, c->epoch, "link");
    step(c->epoch, "epoch");
}

struct spool_chain *spool_chain_new(const uint8_t seed[CHAIN_SEED_BYTES])
{
    struct spool_chain *c = seal_secret_alloc(sizeof *c);
    memcpy(c->epoch, seed, CHAIN_SEED_BYTES);
    c->next = 0;
    enter_epoch(c);
    return c;
}

uint32_t spool_chain_next(struct spool_chain *c, uint8_t key[CHAIN_KEY_BYTES])
{
    uint32_t ticket = c->next++;
    derive(key, c->link, "key");
    if (c->next % CHAIN_LINKS == 0)
        enter_epoch(c); /* L(j, i) is overwritten there */
    else
        step(c->link, "link");
    return ticket;
}

uint32_t spool_chain_tickets(const struct spool_chain *c)
{
    return c->next;
}

void spool_chain_free(struct spool_chain **c)
{
    seal_secret_free(c);
}

/* A place on the chain: E(j) and, once entered, L(j, i). */
struct walk {
    uint8_t epoch[CHAIN_SEED_BYTES]; /* E(j) */
    uint8_t link[CHAIN_SEED_BYTES];  /* L(j, i), valid when entered */
    uint32_t j, i;
    bool entered;
};

struct spool_chain_reader {
    uint8_t seed[CHAIN_SEED_BYTES];
    struct walk w;
};

/* Start w at E(0) = seed. */
static void walk_start(struct walk *w, const uint8_t seed[CHAIN_SEED_BYTES])
{
    memcpy(w->epoch, seed, CHAIN_SEED_BYTES);
    w->j = w->i = 0;
    w->entered = false;
}

/* Move w to ticket and derive its key.  The caller has put w at or before
 * ticket's epoch. */
static void walk_key(struct walk *w, uint32_t ticket, uint8_t key[CHAIN_KEY_BYTES])
{
    uint32_t tj = ticket / CHAIN_LINKS, ti = ticket % CHAIN_LINKS;
    if (!w->entered || w->j != tj || w->i > ti) {
        while (w->j < tj) {
            step(w->epoch, "epoch");
            w->j++;
        }
        derive(w->link, w->epoch, "link");
        w->i = 0;
        w->entered = true;
    }
    for (; w->i < ti; w->i++)
        step(w->link, "link");
    derive(key, w->link, "key");
}

void spool_chain_key(const uint8_t seed[CHAIN_SEED_BYTES], uint32_t ticket,
                     uint8_t key[CHAIN_KEY_BYTES])
{
    struct walk w;
    walk_start(&w, seed);
    walk_key(&w, ticket, key);
    seal_wipe(&w, sizeof w);
}

struct spool_chain_reader *spool_chain_reader_new(const uint8_t seed[CHAIN_SEED_BYTES])
{
    struct spool_chain_reader *r = seal_secret_alloc(sizeof *r);
    memcpy(r->seed, seed, CHAIN_SEED_BYTES);
    walk_start(&r->w, seed);
    return r;
}

void spool_chain_reader_key(struct spool_chain_reader *r, uint32_t ticket,
                            uint8_t key[CHAIN_KEY_BYTES])
{
    if (ticket / CHAIN_LINKS < r->w.j)
        walk_start(&r->w, r->seed); /* an earlier epoch: E(j) cannot go back */
    walk_key(&r->w, ticket, key);
}

void spool_chain_reader_free(struct spool_chain_reader **r)
{
    seal_secret_free(r);
}
