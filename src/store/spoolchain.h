/* spoolchain.h — the file keys of a spool segment's records: a
 * forward-only hash chain from one sealed seed.
 *
 * Why: sealing every message's own file key to the spool public key
 * (crypto_box_seal) takes two X25519 operations, about 70 µs on the
 * target machines: after the network, the largest cost of accepting a
 * small message.  A segment instead carries one random seed, sealed once
 * to the spool public key in its header (spoolseg.h), and the file key of
 * record t is derived from the seed by hashing.
 *
 * What it keeps: smtpd can never read back what it accepted.  The writer
 * holds only the chain's current links and moves them forward as it hands
 * out tickets, wiping the old ones; a hash cannot be run backwards, so
 * whoever takes over smtpd can derive the keys of records it has yet to
 * write (whose plaintext it would see anyway), never the keys of those
 * already written.  Readers (queued, the CLI with the secret key) open
 * the seed and walk the chain to the ticket.
 *
 * The chain has two levels so a reader reaches any ticket in at most
 * SEG_TICKETS_MAX / CHAIN_LINKS + CHAIN_LINKS hashes (1,280; 0.3 ms):
 *
 *   E(0) = seed                    E(j+1) = H(E(j), "epoch")
 *   L(j, 0) = H(E(j), "link")      L(j, i+1) = H(L(j, i), "link")
 *   key(t) = H(L(j, i), "key")     for t = CHAIN_LINKS * j + i
 *
 * H(k, m) is keyed BLAKE2b-256 (seal_keyed_hash2) with the label in the
 * first part; the labels keep the three uses apart. */
#ifndef SM_SPOOLCHAIN_H
#define SM_SPOOLCHAIN_H

#include <stdbool.h>
#include <stdint.h>

#define CHAIN_SEED_BYTES 32
#define CHAIN_KEY_BYTES 32
#define CHAIN_LINKS 256 /* tickets per epoch link */

/* The writer's end of a chain, in secret memory. */
struct spool_chain;

/* A chain at ticket 0 from seed (which the caller wipes). */
struct spool_chain *spool_chain_new(const uint8_t seed[CHAIN_SEED_BYTES]);
/* The key of the chain's next ticket into key (the caller wipes it), and
 * that ticket's number; the chain moves past it and forgets it. */
uint32_t spool_chain_next(struct spool_chain *c, uint8_t key[CHAIN_KEY_BYTES]);
/* How many tickets the chain has handed out: the next one's number. */
uint32_t spool_chain_tickets(const struct spool_chain *c);
/* Wipe and free; accepts NULL and *c == NULL. */
void spool_chain_free(struct spool_chain **c);

/* The reader's way: the key of ticket straight from the seed. */
void spool_chain_key(const uint8_t seed[CHAIN_SEED_BYTES], uint32_t ticket,
                     uint8_t key[CHAIN_KEY_BYTES]);

/* A reader that keeps its place: from the last ticket it reached, a
 * later ticket of the same epoch costs one hash per ticket and a later
 * epoch starts from that epoch's link; an earlier ticket of the same
 * epoch starts from the epoch's first link, and only an earlier epoch
 * walks again from the seed.  queued reads a segment's records mostly in
 * the order they were written, so a kept reader turns the up to 1,280
 * hashes of spool_chain_key() into a few.  It holds the seed: keep it in
 * secret memory, and wipe copies (it is a plain value, so a caller can
 * copy it out of a shared place, walk, and copy it back). */
struct spool_chain_reader {
    uint8_t seed[CHAIN_SEED_BYTES];
    uint8_t epoch[CHAIN_SEED_BYTES]; /* E(j) */
    uint8_t link[CHAIN_SEED_BYTES];  /* L(j, i), once entered */
    uint32_t j, i;
    bool entered;
};

/* A reader at the start of the chain of seed (which the caller wipes). */
void spool_chain_reader_init(struct spool_chain_reader *r, const uint8_t seed[CHAIN_SEED_BYTES]);
/* The key of ticket (any ticket, in any order) into key (the caller wipes it). */
void spool_chain_reader_key(struct spool_chain_reader *r, uint32_t ticket,
                            uint8_t key[CHAIN_KEY_BYTES]);

#endif
