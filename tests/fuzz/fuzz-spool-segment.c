/* fuzz-spool-segment.c — the spool segment scanner on arbitrary files.
 *
 * A segment is read by `sealmail queue list` (as root) and by queued; a
 * crash tears it, a local attacker may write one.  The input is the file:
 * if it starts with the segment magic, its own number is taken as the
 * name's.  Invariants checked: the scan ends inside the file, at or after
 * the header; records come at increasing offsets, each inside what was
 * scanned, with a bounded length; every record found reads back alone
 * with the same payload; a scan resumed from any record's start ends
 * where the whole scan ended; the .done parser only reports bounded
 * tickets; the name parser accepts only "seg-" + 8 hex digits [+ .done]. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/bytes.h"
#include "store/spoolseg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEEN_MAX 64

struct seen {
    size_t n;
    uint64_t last;
    uint64_t off[SEEN_MAX];
    uint32_t ticket[SEEN_MAX];
    uint32_t len[SEEN_MAX];
    uint8_t *payload[SEEN_MAX];
    uint64_t size;
    uint64_t start; /* where records begin: the header's length */
    size_t sum_len; /* of the records of this segment's version */
};

static int on_record(void *arg, uint32_t ticket, uint64_t off, const uint8_t *payload,
                     uint32_t len)
{
    struct seen *s = arg;
    if (off < s->start || (s->n > 0 && off <= s->last) || len == 0 || len > SEG_PAYLOAD_MAX ||
        ticket >= SEG_TICKETS_MAX || off + REC_HDR_LEN + len + s->sum_len > s->size)
        abort();
    s->last = off;
    if (s->n < SEEN_MAX) {
        s->off[s->n] = off;
        s->ticket[s->n] = ticket;
        s->len[s->n] = len;
        s->payload[s->n] = malloc(len);
        memcpy(s->payload[s->n], payload, len);
    }
    s->n++;
    return 0;
}

static void on_done(void *arg, uint32_t ticket)
{
    (void)arg;
    if (ticket >= SEG_TICKETS_MAX)
        abort();
}

static void check_name(const uint8_t *data, size_t size)
{
    char name[32];
    uint32_t num;
    bool done;
    size_t n = size < sizeof name - 1 ? size : sizeof name - 1;
    memcpy(name, data, n);
    name[n] = '\0';
    if (seg_name_parse(name, &num, &done)) {
        char back[32];
        seg_name(back, sizeof back, num, done);
        if (strcmp(back, name) != 0 || num > SEG_NUM_MAX)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct seg_header h;
    const char *error;
    struct seen s = {0};

    check_name(data, size);
    int fd = memfd_create("fuzz-seg", MFD_CLOEXEC);
    if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size))
        abort();
    uint32_t segnum = size >= 12 ? sm_get_be32(data + 8) : 0;
    if (seg_header_read(fd, segnum, &h, &error) == 0) {
        s.size = size;
        s.start = h.len;
        s.sum_len = h.crc ? REC_SUM_LEN : REC_SUM_LEN_V1;
        if (h.len != (h.chained ? SEG_HDR_LEN : SEG_HDR_LEN_V1) || (h.crc && !h.chained))
            abort();
        int64_t end = seg_scan(fd, &h, h.len, on_record, &s);
        if (end < h.len || (uint64_t)end > size)
            abort();
        for (size_t i = 0; i < s.n && i < SEEN_MAX; i++) {
            size_t len;
            uint8_t *p = seg_read_record(fd, &h, s.off[i], s.ticket[i], &len, &error);
            if (p == NULL || len != s.len[i] || memcmp(p, s.payload[i], len) != 0)
                abort();
            free(p);
            if (seg_scan(fd, &h, s.off[i], NULL, NULL) != end)
                abort();
            free(s.payload[i]);
        }
        seg_done_parse(data, size / DONE_ENTRY_LEN * DONE_ENTRY_LEN, &h, on_done, NULL);
    }
    close(fd);
    return 0;
}
