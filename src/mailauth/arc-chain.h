/* arc-chain.h — the ARC set bookkeeping that the verifier (arc.c) and the
 * sealer (arc-seal.c) share; not a public interface.
 *
 * Both see the message header as a hdrlist (dkim-core.h).  ARC fields are
 * noted as they arrive (at most ARC_MAX_SETS of each kind), then placed by
 * instance with the structural checks of RFC 8617 §5.2 step 3.  The seal
 * hash (RFC 8617 §5.1.1) takes the sets in increasing instance order, each
 * set's fields in the order AAR, AMS, AS, relaxed; the AS of the newest
 * set with its b= value blanked and without its final CRLF.  Both sides
 * build that hash from arc_hash_fields(), so they cannot drift apart. */
#ifndef SM_MAILAUTH_ARC_CHAIN_H
#define SM_MAILAUTH_ARC_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "core/buf.h"
#include "mailauth/arc.h"
#include "mailauth/dkim-core.h"

enum arc_kind {
    ARC_K_AAR,
    ARC_K_AMS,
    ARC_K_AS,
};
#define ARC_KINDS 3

/* "ARC-Authentication-Results", "ARC-Message-Signature", "ARC-Seal". */
extern const char *const arc_kind_name[ARC_KINDS];

struct arc_sig {
    struct dkim_sig sig;
    uint8_t hh[32];   /* header hash */
    size_t body;      /* AMS: index in the body digests */
};

struct arc_chain {
    size_t field[ARC_KINDS][ARC_MAX_SETS]; /* header indices of the ARC fields, by kind */
    size_t nfield[ARC_KINDS];
    bool too_many;                         /* a 51st field of one kind */
    unsigned n;                            /* N, once collected */
    size_t set[ARC_KINDS][ARC_MAX_SETS];   /* header index of each field of instance i + 1 */
    struct arc_sig *ams[ARC_MAX_SETS], *as[ARC_MAX_SETS];
};

/* Note the newest field of hl if it is an ARC field. */
void arc_chain_note(struct arc_chain *c, const struct hdrlist *hl);
/* ARC fields noted, of every kind. */
size_t arc_chain_fields(const struct arc_chain *c);
/* Place every field at its instance, parsing the AMS and AS fields: 0, or
 * -1 with why on a broken structure (malformed field, duplicate, gap). */
int arc_chain_collect(struct arc_chain *c, const struct hdrlist *hl, char *why, size_t wl);
/* The highest instance any noted field names, read field by field so that
 * a broken chain still has one (0: none readable); *newest_fail tells
 * whether the newest readable ARC-Seal says cv=fail (RFC 8617 §5.1 step 1). */
unsigned arc_chain_highest(const struct arc_chain *c, const struct hdrlist *hl,
                           bool *newest_fail);
/* Feed one set's fields f[k], len[k] (kind order) into md, relaxed; with
 * seal_last the AS has its b= blanked and no final CRLF (the seal being
 * made or checked), else all three are hashed whole. */
void arc_hash_fields(EVP_MD_CTX *md, const char *const f[ARC_KINDS],
                     const size_t len[ARC_KINDS], bool seal_last, struct sm_buf *scratch);
/* The same for the collected set of instance i (1-based). */
void arc_chain_hash_set(EVP_MD_CTX *md, const struct arc_chain *c, const struct hdrlist *hl,
                        unsigned i, bool seal_last, struct sm_buf *scratch);
void arc_chain_free(struct arc_chain *c);

#endif
