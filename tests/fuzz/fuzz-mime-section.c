/* fuzz-mime-section.c — FETCH BODY[section] and BINARY on arbitrary messages.
 *
 * Each input is a message, written to a memfd, analysed by mime_analyse_fd
 * and mapped by section_file_open() exactly as an IMAP session without
 * stored offsets does.  Then every section of every part (up to a bound,
 * so an input with thousands of parts stays fast) is served whole, sized,
 * and in partial windows.  Crashes, leaks, UB and timeouts are findings,
 * and so is any answer that breaks section.h: a size that differs from the
 * octets served, a partial that is not a slice of the whole, a NUL in
 * BODY, BODY[n] not of its BODYSTRUCTURE size, HEADER and TEXT not making
 * up the message, an error for a valid request, BINARY and BINARY.SIZE
 * disagreeing, a header item served from the header block the store keeps
 * (section_header_length()) differing from the one served from the message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/buf.h"
#include "mime/mime.h"
#include "mime/section.h"

#define PARTS_CHECKED 64 /* parts served per input */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *section)
{
    fprintf(stderr, "fuzz-mime-section: %s (section %s)\n", what, section);
    abort();
}

static enum section_status serve(const struct section_msg *m, const struct section_spec *spec,
                                 bool binary, const struct section_partial *p, struct sm_buf *out,
                                 struct section_result *res)
{
    const char *error;
    sm_buf_reset(out);
    return binary ? section_binary(m, spec, p, out, res, &error)
                  : section_body(m, spec, p, out, res, &error);
}

/* One section: whole, sized, and as slices of it. */
static void check_section(const struct section_msg *m, const struct section_spec *spec,
                          bool binary, const char *label, struct sm_buf *whole)
{
    struct sm_buf out;
    struct section_result res;
    const char *error;
    uint64_t size;
    sm_buf_init(&out, 0);
    enum section_status st = serve(m, spec, binary, NULL, whole, &res);
    enum section_status st2 = binary ? section_binary_size(m, spec, &size, &error)
                                     : section_body_size(m, spec, &size, &error);
    if (st != st2)
        fail("size and content disagree on the status", label);
    if (!binary && st != SECTION_OK)
        fail("BODY refused a valid section", label);
    if (binary && st != SECTION_OK && st != SECTION_UNKNOWN_CTE && st != SECTION_CORRUPT)
        fail("BINARY refused a valid section", label);
    if (st == SECTION_OK) {
        if (size != whole->len || res.size != whole->len)
            fail("size differs from the octets served", label);
        bool nul = memchr(sm_buf_str(whole), '\0', whole->len) != NULL;
        if (nul != res.has_nul || (nul && !binary))
            fail("NUL in the output not as promised", label);
        const uint64_t w = whole->len;
        const struct section_partial slices[] = {{0, 1}, {1, 2}, {w / 3, w / 3 + 1}, {w - w / 4, UINT64_MAX},
                                                 {w, 3}, {UINT64_MAX, 1}};
        for (size_t k = 0; k < sizeof slices / sizeof slices[0]; k++) {
            if (serve(m, spec, binary, &slices[k], &out, &res) != SECTION_OK)
                fail("a partial failed where the whole did not", label);
            uint64_t o = slices[k].origin < w ? slices[k].origin : w;
            uint64_t n = w - o < slices[k].count ? w - o : slices[k].count;
            if (out.len != n || res.size != n ||
                (n > 0 && memcmp(out.data, whole->data + o, n) != 0))
                fail("a partial is not a slice of the whole", label);
        }
    }
    sm_buf_free(&out);
}

static uint64_t vsize(const uint8_t *p, uint64_t a, uint64_t b)
{
    uint64_t n = b - a;
    for (uint64_t i = a; i < b; i++)
        n += p[i] == '\n' && (i == 0 || p[i - 1] != '\r');
    return n;
}

static void check_part(const struct section_msg *m, const unsigned *num, unsigned n,
                       const char *label, struct sm_buf *whole)
{
    static const char *const names[] = {"From", "subject", "RECEIVED", "Content-Type", "X"};
    struct section_spec spec = {num, n, SECTION_NONE, names, 5};
    for (int k = SECTION_NONE; k <= SECTION_MIME; k++) {
        spec.kind = (enum section_kind)k;
        if (k != SECTION_MIME || n > 0)
            check_section(m, &spec, false, label, whole);
    }
    spec.kind = SECTION_NONE;
    check_section(m, &spec, true, label, whole);
}

/* BODY[HEADER] and BODY[TEXT] make up BODY[]. */
static void check_top(const struct section_msg *m, struct sm_buf *whole)
{
    struct section_spec spec = {NULL, 0, SECTION_HEADER, NULL, 0};
    struct sm_buf all;
    struct section_result res;
    sm_buf_init(&all, 0);
    serve(m, &spec, false, NULL, whole, &res);
    const char *error;
    spec.kind = SECTION_TEXT;
    if (section_body(m, &spec, NULL, whole, &res, &error) != SECTION_OK)
        fail("TEXT failed", "");
    spec.kind = SECTION_NONE;
    serve(m, &spec, false, NULL, &all, &res);
    if (all.len != whole->len || (all.len > 0 && memcmp(all.data, whole->data, all.len) != 0) ||
        all.len != vsize(m->data, 0, m->len))
        fail("HEADER and TEXT do not make up the message", "");
    sm_buf_free(&all);
}

/* The top header block alone (as the store keeps it, no part offsets)
 * gives every header item as the whole message does. */
static void check_stored_header(const struct section_msg *m, struct sm_buf *whole)
{
    static const char *const names[] = {"From", "subject", "X"};
    size_t block = section_header_length(m->data, m->len);
    if (block == 0)
        return;
    if (block > m->len || m->data[block - 1] != '\n')
        fail("the header block is not a prefix ending in LF", "");
    struct section_msg stored = {m->data, block, NULL, 0};
    struct sm_buf out;
    struct section_result res;
    sm_buf_init(&out, 0);
    for (int k = SECTION_HEADER; k <= SECTION_HEADER_FIELDS_NOT; k++) {
        struct section_spec spec = {NULL, 0, (enum section_kind)k, names, 3};
        if (serve(m, &spec, false, NULL, whole, &res) != SECTION_OK ||
            serve(&stored, &spec, false, NULL, &out, &res) != SECTION_OK ||
            out.len != whole->len || (out.len > 0 && memcmp(out.data, whole->data, out.len) != 0))
            fail("a header item from the stored block differs", "");
    }
    sm_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    if (fd < 0) {
        mime_init();
        fd = memfd_create("fuzz-mime-section", MFD_CLOEXEC);
        if (fd < 0)
            abort();
    }
    if (ftruncate(fd, 0) < 0 || (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
        abort();
    struct section_file f;
    const char *error;
    if (section_file_open(fd, &f, &error) < 0)
        fail(error, "");
    struct sm_buf whole;
    sm_buf_init(&whole, 0);
    check_top(&f.msg, &whole);
    check_stored_header(&f.msg, &whole);
    check_part(&f.msg, NULL, 0, "", &whole);
    static const unsigned missing[] = {1, 99};
    check_part(&f.msg, missing, 2, "1.99", &whole);
    for (unsigned i = 0; i < f.msg.n_parts && i < PARTS_CHECKED; i++) {
        unsigned num[SECTION_PART_MAX + 1], n = 0;
        char *e = f.msg.parts[i].section;
        while (*e != '\0' && n <= SECTION_PART_MAX) {
            num[n++] = (unsigned)strtoul(e, &e, 10);
            e += *e == '.';
        }
        check_part(&f.msg, num, n, f.msg.parts[i].section, &whole);
        struct section_spec spec = {num, n, SECTION_NONE, NULL, 0};
        uint64_t sz;
        if (section_body_size(&f.msg, &spec, &sz, &error) != SECTION_OK ||
            sz != vsize(data, f.msg.parts[i].body_start, f.msg.parts[i].body_end))
            fail("BODY[n] is not of its BODYSTRUCTURE size", f.msg.parts[i].section);
    }
    sm_buf_free(&whole);
    section_file_close(&f);
    return 0;
}
