/* spoolseg.c — segment framing, scanning and removal marks (see spoolseg.h). */
#include "store/spoolseg.h"

#include <errno.h>
#include <isa-l/crc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "core/fileio.h"
#include "core/mem.h"
#include "crypto/seal.h"

_Static_assert(REC_SUM_LEN_V1 == SEAL_HASH_BYTES, "SGR1 records end in a BLAKE2b-256 sum");
_Static_assert(REC_SUM_LEN <= REC_SUM_LEN_V1, "REC_SUM_LEN is the shortest sum");

/* Records are read this many bytes at a time: one pread covers many small
 * records. */
#define SCAN_WINDOW (256u * 1024)

void seg_header_encode(uint8_t out[SEG_HDR_LEN], const struct seg_header *h)
{
    memset(out, 0, SEG_HDR_LEN);
    memcpy(out, h->crc ? SEG_MAGIC : SEG_MAGIC_V2, 8);
    sm_put_be32(out + 8, h->segnum);
    sm_put_be64(out + 16, h->nonce);
    sm_put_be32(out + 24, h->count_hint);
    memcpy(out + SEG_HDR_LEN_V1, h->sealed_seed, SEG_SEED_SEALED);
}

int seg_header_read(int fd, uint32_t segnum, struct seg_header *h, const char **error_r)
{
    uint8_t b[SEG_HDR_LEN];
    ssize_t n = sm_pread_full(fd, b, sizeof b, 0);

    memset(h, 0, sizeof *h);
    if (n < 0) {
        *error_r = "cannot read spool segment";
        return -1;
    }
    bool v3 = (size_t)n >= SEG_HDR_LEN && memcmp(b, SEG_MAGIC, 8) == 0;
    bool v2 = (size_t)n >= SEG_HDR_LEN && (v3 || memcmp(b, SEG_MAGIC_V2, 8) == 0);
    bool v1 = (size_t)n >= SEG_HDR_LEN_V1 && memcmp(b, SEG_MAGIC_V1, 8) == 0;
    if ((!v1 && !v2) || sm_get_be32(b + 8) != segnum) {
        *error_r = "not a spool segment (bad header)";
        return -1;
    }
    h->segnum = segnum;
    h->nonce = sm_get_be64(b + 16);
    h->count_hint = sm_get_be32(b + 24);
    h->len = v2 ? SEG_HDR_LEN : SEG_HDR_LEN_V1;
    h->chained = v2;
    h->crc = v3;
    if (v2)
        memcpy(h->sealed_seed, b + SEG_HDR_LEN_V1, SEG_SEED_SEALED);
    return 0;
}

static void record_header(uint8_t out[REC_HDR_LEN], size_t len, const struct seg_header *h,
                          uint32_t ticket)
{
    sm_put_be32(out, REC_MAGIC);
    sm_put_be32(out + 4, (uint32_t)len);
    sm_put_be32(out + 8, h->segnum);
    sm_put_be32(out + 12, ticket);
    sm_put_be64(out + 16, h->nonce);
}

/* CRC-32 of len bytes, the same as zlib's crc32() (gzip's reflected
 * polynomial): ISA-L's folds with PCLMULQDQ and takes 1.2 us for 64 KiB,
 * where zlib's table code takes 11.5 us, on the sync thread for every
 * record and again for every read. */
static uint32_t record_crc(const uint8_t *p, size_t len)
{
    return crc32_gzip_refl(0, p, len);
}

void seg_record_frame(uint8_t *rec, size_t len, const struct seg_header *h, uint32_t ticket)
{
    record_header(rec, len, h, ticket);
    sm_put_be32(rec + REC_HDR_LEN + len, record_crc(rec, REC_HDR_LEN + len));
}

/* Check the header of a record: -1 if it is not one of this segment's
 * (of the kind its version writes), else its payload length (and ticket,
 * and the length of its sum). */
static int64_t record_check_header(const uint8_t *p, const struct seg_header *h,
                                   uint32_t *ticket_r, size_t *sum_len_r)
{
    uint32_t magic = sm_get_be32(p), len = sm_get_be32(p + 4);
    if (magic != (h->crc ? REC_MAGIC : REC_MAGIC_V1) || len < 1 || len > SEG_PAYLOAD_MAX ||
        sm_get_be32(p + 8) != h->segnum || sm_get_be64(p + 16) != h->nonce ||
        sm_get_be32(p + 12) >= SEG_TICKETS_MAX)
        return -1;
    *ticket_r = sm_get_be32(p + 12);
    *sum_len_r = h->crc ? REC_SUM_LEN : REC_SUM_LEN_V1;
    return len;
}

/* The sum after the payload matches the header and payload; the kind of
 * sum is the one record_check_header() found (by its length). */
static bool record_sum_ok(const uint8_t *rec, uint32_t len, size_t sum_len)
{
    size_t n = REC_HDR_LEN + (size_t)len;
    if (sum_len == REC_SUM_LEN)
        return sm_get_be32(rec + n) == record_crc(rec, n);
    uint8_t sum[REC_SUM_LEN_V1];
    seal_hash(sum, rec, n);
    return memcmp(sum, rec + n, REC_SUM_LEN_V1) == 0;
}

int64_t seg_scan(int fd, const struct seg_header *h, uint64_t from, seg_record_fn *fn, void *arg)
{
    /* a window of the file; grows to hold the largest record */
    size_t cap = SCAN_WINDOW;
    uint8_t *buf = sm_malloc(cap);
    uint64_t win_off = from; /* file offset of buf[0] */
    size_t win_len = 0;      /* valid bytes in buf */
    uint64_t off = from;
    int64_t ret = -1;

    if (from < h->len || from > INT64_MAX / 2)
        goto out_end;
    for (;;) {
        size_t at = (size_t)(off - win_off);
        size_t need = REC_HDR_LEN;
        uint32_t ticket = 0;
        size_t sum_len = 0;
        int64_t len = -1;
        for (int pass = 0; pass < 2; pass++) {
            if (win_len - at < need) { /* slide the window to off and fill it */
                if (need > cap) {
                    cap = need;
                    buf = sm_realloc(buf, cap);
                }
                memmove(buf, buf + at, win_len - at);
                win_len -= at;
                win_off = off;
                at = 0;
                ssize_t n = sm_pread_full(fd, buf + win_len, cap - win_len,
                                          (off_t)(win_off + win_len));
                if (n < 0)
                    goto out;
                win_len += (size_t)n;
                if (win_len < need)
                    goto out_end; /* cut: the end */
            }
            if (pass == 0) {
                len = record_check_header(buf + at, h, &ticket, &sum_len);
                if (len < 0)
                    goto out_end;
                need = REC_HDR_LEN + (size_t)len + sum_len;
            }
        }
        if (!record_sum_ok(buf + at, (uint32_t)len, sum_len))
            goto out_end;
        if (fn != NULL && fn(arg, ticket, off, buf + at + REC_HDR_LEN, (uint32_t)len) != 0) {
            off += REC_HDR_LEN + (uint64_t)len + sum_len;
            goto out_end;
        }
        off += REC_HDR_LEN + (uint64_t)len + sum_len;
    }
out_end:
    ret = (int64_t)off;
out:
    free(buf);
    return ret;
}

uint8_t *seg_read_record(int fd, const struct seg_header *h, uint64_t off, uint32_t ticket,
                         size_t *len_r, const char **error_r)
{
    uint8_t hdr[REC_HDR_LEN];
    uint32_t found;
    size_t sum_len = 0;
    ssize_t n = off > INT64_MAX / 2 ? -1 : sm_pread_full(fd, hdr, sizeof hdr, (off_t)off);
    int64_t len = n == (ssize_t)sizeof hdr ? record_check_header(hdr, h, &found, &sum_len) : -1;

    if (len < 0 || found != ticket) {
        *error_r = n < 0 ? "cannot read spool segment" : "no such message in the spool";
        return NULL;
    }
    size_t total = REC_HDR_LEN + (size_t)len + sum_len;
    uint8_t *rec = sm_malloc(total);
    n = sm_pread_full(fd, rec, total, (off_t)off);
    if (n != (ssize_t)total || !record_sum_ok(rec, (uint32_t)len, sum_len)) {
        *error_r = n < 0 ? "cannot read spool segment" : "damaged record in spool segment";
        free(rec);
        return NULL;
    }
    memmove(rec, rec + REC_HDR_LEN, (size_t)len);
    *len_r = (size_t)len;
    return rec;
}

void seg_done_encode(uint8_t out[DONE_ENTRY_LEN], const struct seg_header *h, uint32_t ticket)
{
    sm_put_be32(out, h->segnum);
    sm_put_be32(out + 4, ticket);
    sm_put_be64(out + 8, h->nonce);
}

void seg_done_parse(const uint8_t *buf, size_t len, const struct seg_header *h,
                    void (*fn)(void *arg, uint32_t ticket), void *arg)
{
    for (size_t i = 0; i + DONE_ENTRY_LEN <= len; i += DONE_ENTRY_LEN) {
        const uint8_t *e = buf + i;
        uint32_t ticket = sm_get_be32(e + 4);
        if (sm_get_be32(e) == h->segnum && sm_get_be64(e + 8) == h->nonce &&
            ticket < SEG_TICKETS_MAX)
            fn(arg, ticket);
    }
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

bool seg_name_parse(const char *name, uint32_t *segnum_r, bool *done_r)
{
    uint32_t v = 0;

    if (strncmp(name, SEG_PREFIX, sizeof SEG_PREFIX - 1) != 0)
        return false;
    name += sizeof SEG_PREFIX - 1;
    for (int i = 0; i < 8; i++) {
        int d = hexval(name[i]);
        if (d < 0)
            return false;
        v = v << 4 | (uint32_t)d;
    }
    bool done = strcmp(name + 8, DONE_SUFFIX) == 0;
    if ((name[8] != '\0' && !done) || v > SEG_NUM_MAX)
        return false;
    *segnum_r = v;
    if (done_r != NULL)
        *done_r = done;
    return true;
}

void seg_name(char *out, size_t size, uint32_t segnum, bool done)
{
    snprintf(out, size, SEG_PREFIX "%08x%s", (unsigned)segnum, done ? DONE_SUFFIX : "");
}
