/* spoolchain.c — segment record keys from a hash chain (see spoolchain.h). */
#include "store/spoolchain.h"

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

/* Put r at E(0) = seed, nothing entered. */
static void walk_start(struct spool_chain_reader *r)
{
    memcpy(r->epoch, r->seed, CHAIN_SEED_BYTES);
    r->j = r->i = 0;
    r->entered = false;
}

void spool_chain_reader_init(struct spool_chain_reader *r, const uint8_t seed[CHAIN_SEED_BYTES])
{
    memcpy(r->seed, seed, CHAIN_SEED_BYTES);
    walk_start(r);
}

void spool_chain_reader_key(struct spool_chain_reader *r, uint32_t ticket,
                            uint8_t key[CHAIN_KEY_BYTES])
{
    uint32_t tj = ticket / CHAIN_LINKS, ti = ticket % CHAIN_LINKS;
    if (tj < r->j)
        walk_start(r); /* an earlier epoch: E(j) cannot go back */
    if (!r->entered || r->j != tj || r->i > ti) {
        while (r->j < tj) {
            step(r->epoch, "epoch");
            r->j++;
        }
        derive(r->link, r->epoch, "link"); /* E(j) is kept */
        r->i = 0;
        r->entered = true;
    }
    for (; r->i < ti; r->i++)
        step(r->link, "link");
    derive(key, r->link, "key");
}

void spool_chain_key(const uint8_t seed[CHAIN_SEED_BYTES], uint32_t ticket,
                     uint8_t key[CHAIN_KEY_BYTES])
{
    struct spool_chain_reader r;
    spool_chain_reader_init(&r, seed);
    spool_chain_reader_key(&r, ticket, key);
    seal_wipe(&r, sizeof r);
}
