/* spoolseg.h — the spool's segment files: framing, scanning, removal marks.
 *
 * Internal to the spool (spool-internal.h); a module of its own so the scanner,
 * which reads files a hostile local user or a crash may have damaged, can
 * be fuzzed alone (tests/fuzz/fuzz-spool-segment.c).
 *
 * A segment incoming/seg-XXXXXXXX (8 hex digits: the segment number, top
 * bit clear) holds many spool entries as records, appended by ONE writer
 * process, which holds an exclusive flock on it for as long as it may
 * append.  All integers are big-endian.
 *
 *   segment header (SEG_HDR_LEN = 112 bytes; 32 in version 1)
 *     8  magic "SEALSG\0\3" (version 2: "SEALSG\0\2", version 1: "SEALSG\0\1")
 *     4  u32 segment number (must match the file name)
 *     4  u32 zero
 *     8  u64 nonce: random, names this segment's life (a reused number or
 *        stale blocks of a deleted segment never match it)
 *     4  u32 count hint: records written, set when the writer closes the
 *        segment (0: unknown); only ever used to skip work, never trusted
 *     4  u32 zero
 *     80 versions 2 and 3: the seed of the records' key chain, sealed with
 *        crypto_box_seal to the spool public key (spoolchain.h)
 *   then records, back to back:
 *     4  u32 magic "SGR2" in a version 3 segment, "SGR1" in the older ones
 *     4  u32 L: payload length, 1..SEG_PAYLOAD_MAX
 *     4  u32 segment number
 *     4  u32 ticket: the record's number in the segment, < SEG_TICKETS_MAX
 *     8  u64 nonce of the segment
 *     L  payload: the bytes of a spool file (see spool.c): of version 3
 *        (its file key from the chain) in a version 2 or 3 segment, of
 *        version 2 in a version 1 segment
 *     4  u32 CRC-32 (zlib's, the polynomial of gzip and PNG) of the 24
 *        header bytes and the payload; in versions 1 and 2 ("SGR1"), 32
 *        bytes: the BLAKE2b-256 of the same bytes
 *   Writers write version 3; all three read.  The record format changed
 *   with the header's version so that an older release, which knows only
 *   "SGR1", refuses a version 3 segment as a whole (it neither lists nor
 *   deletes it) instead of scanning it as empty and deleting it.
 *
 * The checksum is unkeyed: it tells a complete record from a torn one
 * without the spool key (`sealmail queue list`).  It is no defence against
 * someone who can write the spool, and need not be: whoever can change a
 * record can recompute any unkeyed sum.  Authenticity is the sealed
 * payload's business, as for spool files.  So the sum is the cheapest that
 * finds torn writes: CRC-32 catches every error burst of up to 32 bits
 * and misses a random change with odds of 2^-32, at about 1.2 us for a
 * 64 KiB record (ISA-L's; zlib's takes 11.5 us) where BLAKE2b took
 * 110 us on the writer's sync thread and again for each read.
 *
 * Scanning starts after the segment header and stops at the first record
 * that is cut, fails its checksum or breaks a bound: a writer appends
 * records only at increasing offsets and acknowledges them after an
 * fdatasync of the segment, so whatever a crash can tear lies after the
 * last acknowledged record, never before it.
 *
 * incoming/seg-XXXXXXXX.done lists removed records: entries of
 * DONE_ENTRY_LEN = 16 bytes (u32 segment number, u32 ticket, u64 nonce) at
 * 16-byte aligned offsets.  An entry that does not match the segment
 * (garbage, stale blocks, a torn tail) is ignored. */
#ifndef SM_SPOOLSEG_H
#define SM_SPOOLSEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEG_MAGIC "SEALSG\0\3"
#define SEG_MAGIC_V2 "SEALSG\0\2" /* records end in BLAKE2b-256: still read */
#define SEG_MAGIC_V1 "SEALSG\0\1" /* no key chain either: still read */
#define SEG_HDR_LEN 112
#define SEG_HDR_LEN_V1 32
#define SEG_SEED_SEALED 80          /* crypto_box_seal of a 32-byte seed */
#define REC_MAGIC 0x53475232u    /* "SGR2": ends in a CRC-32 (version 3) */
#define REC_MAGIC_V1 0x53475231u /* "SGR1": ends in a BLAKE2b-256 (versions 1, 2) */
#define REC_HDR_LEN 24
#define REC_SUM_LEN 4            /* of SGR2 */
#define REC_SUM_LEN_V1 32
#define SEG_PAYLOAD_MAX (1u << 20)   /* readers' bound; writers stay far below */
#define SEG_TICKETS_MAX (1u << 18)   /* records per segment (64 MiB of the smallest: 200k) */
#define SEG_NUM_MAX 0x7fffffffu      /* segment numbers are 31 bits */
#define DONE_ENTRY_LEN 16
#define SEG_PREFIX "seg-"
#define SEG_NAME_LEN 12              /* "seg-" + 8 hex digits */
#define DONE_SUFFIX ".done"

struct seg_header {
    uint32_t segnum;
    uint64_t nonce;
    uint32_t count_hint;
    uint32_t len;    /* header bytes: where records start */
    bool chained;    /* version 2 or 3: record keys come from the sealed seed */
    bool crc;        /* version 3: records are "SGR2", ending in a CRC-32 */
    uint8_t sealed_seed[SEG_SEED_SEALED];
};

/* The segment header bytes of h (version 3 if h->crc, else 2; h->len is
 * ignored). */
void seg_header_encode(uint8_t out[SEG_HDR_LEN], const struct seg_header *h);
/* Read and check the header of the segment open at fd (segnum: the number
 * its name gives).  Returns 0, or -1 with *error_r. */
int seg_header_read(int fd, uint32_t segnum, struct seg_header *h, const char **error_r);

/* Frame a record in place: rec holds REC_HDR_LEN free bytes, then the
 * payload (len bytes), then REC_SUM_LEN free bytes. */
void seg_record_frame(uint8_t *rec, size_t len, const struct seg_header *h, uint32_t ticket);

/* Called for each complete record: its ticket, offset and payload length;
 * payload points to the payload (valid during the call).  Return 0 to go
 * on, 1 to stop. */
typedef int seg_record_fn(void *arg, uint32_t ticket, uint64_t off, const uint8_t *payload,
                          uint32_t len);
/* Scan the records of the segment open at fd from offset from (h->len
 * for the start, or an end offset an earlier scan returned).  Returns the
 * offset where the complete records end (the scan stopped there), or -1
 * on a read error (errno set). */
int64_t seg_scan(int fd, const struct seg_header *h, uint64_t from, seg_record_fn *fn, void *arg);
/* Read the complete record at off, expecting ticket.  Returns the payload
 * (malloc'd, *len_r bytes), or NULL with *error_r. */
uint8_t *seg_read_record(int fd, const struct seg_header *h, uint64_t off, uint32_t ticket,
                         size_t *len_r, const char **error_r);

/* The entry that marks ticket done. */
void seg_done_encode(uint8_t out[DONE_ENTRY_LEN], const struct seg_header *h, uint32_t ticket);
/* Parse the .done bytes buf[0..len) (len a multiple of DONE_ENTRY_LEN; a
 * torn tail is the caller's to cut): fn(arg, ticket) for each entry that
 * matches h. */
void seg_done_parse(const uint8_t *buf, size_t len, const struct seg_header *h,
                    void (*fn)(void *arg, uint32_t ticket), void *arg);

/* Parse a name "seg-XXXXXXXX" (lowercase hex, a 31-bit number);
 * done_r (may be NULL) says whether it had the ".done" suffix. */
bool seg_name_parse(const char *name, uint32_t *segnum_r, bool *done_r);
/* "seg-XXXXXXXX" (+ ".done" when done) into out (at least 24 bytes). */
void seg_name(char *out, size_t size, uint32_t segnum, bool done);

#endif
