/* fuzz-msgstream.c — the header/body splitter on arbitrary messages.
 *
 * Invariants checked: with every field kept the output is the input, byte
 * for byte; the result (fields seen, output) does not depend on how the
 * input is cut into pieces; the header ends exactly once, before any body
 * byte; fields are never longer than the bound. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "mailauth/msgstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIELD_MAX 48

struct run {
    bool drop;       /* drop fields whose first byte is 'A' */
    bool done;
    size_t fields;
    struct sm_buf out;
};

static bool on_field(void *arg, const char *f, size_t len, bool complete)
{
    struct run *r = arg;
    if (r->done || len == 0 || len > FIELD_MAX || (!complete && len != FIELD_MAX))
        abort();
    r->fields++;
    return !(r->drop && f[0] == 'A');
}

static void on_done(void *arg)
{
    struct run *r = arg;
    if (r->done)
        abort();
    r->done = true;
}

static void on_body(void *arg, const void *p, size_t n)
{
    struct run *r = arg;
    (void)p;
    if (!r->done || n == 0)
        abort();
}

static int on_out(void *arg, const void *p, size_t n)
{
    struct run *r = arg;
    sm_buf_append(&r->out, p, n);
    return 0;
}

static const struct msgstream_sink sink = {on_field, on_done, on_body, on_out};

static void run(struct run *r, const uint8_t *p, size_t n, size_t piece)
{
    sm_buf_init(&r->out, 0);
    struct msgstream *m = msgstream_new(&sink, r, FIELD_MAX, 20);
    for (size_t off = 0; off < n; off += piece)
        msgstream_write(m, p + off, n - off < piece ? n - off : piece);
    msgstream_end(m);
    if (!r->done)
        abort();
    msgstream_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    size_t piece = data[0] % 17 + 1;
    data++, size--;
    struct run whole = {0}, cut = {0}, dropped = {.drop = true}, dropped_cut = {.drop = true};
    run(&whole, data, size, size ? size : 1);
    run(&cut, data, size, piece);
    run(&dropped, data, size, size ? size : 1);
    run(&dropped_cut, data, size, piece);
    if (whole.out.len != size || memcmp(whole.out.data, data, size) != 0)
        abort();
    if (cut.out.len != size || memcmp(cut.out.data, data, size) != 0 || cut.fields != whole.fields)
        abort();
    if (dropped.out.len != dropped_cut.out.len ||
        memcmp(dropped.out.data, dropped_cut.out.data, dropped.out.len) != 0 ||
        dropped.out.len > size)
        abort();
    sm_buf_free(&whole.out);
    sm_buf_free(&cut.out);
    sm_buf_free(&dropped.out);
    sm_buf_free(&dropped_cut.out);
    return 0;
}
