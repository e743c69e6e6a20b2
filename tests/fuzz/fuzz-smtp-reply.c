/* fuzz-smtp-reply.c — what a hostile SMTP server can send the outbound
 * client: arbitrary bytes go through the same path as in smtp/client.c,
 * net/linereader (lines of at most SMTP_REPLY_LINE_MAX bytes) into the
 * smtp/reply parser, and every complete reply is checked against the
 * parser's contract:
 *   - code 200..559 with a second digit 0..5;
 *   - at most SMTP_REPLY_LINES_MAX lines, text within its buffer,
 *     NUL-terminated at text_len, printable ASCII and '\n' only;
 *   - an enhanced code is "c.s.d" with c the code's first digit;
 *   - smtp_reply_line() walks the kept lines without overrunning.
 * The input is fed in pieces whose sizes come from the first byte, so
 * replies split across reads are exercised too. */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/linereader.h"
#include "smtp/reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reply(const struct smtp_reply *r)
{
    if (r->code < 200 || r->code > 559 || (r->code / 10) % 10 > 5)
        abort();
    if (r->n_lines == 0 || r->n_lines > SMTP_REPLY_LINES_MAX)
        abort();
    if (r->text_len >= sizeof r->text || strlen(r->text) != r->text_len)
        abort();
    for (size_t i = 0; i < r->text_len; i++) {
        unsigned char c = (unsigned char)r->text[i];
        if (c != '\n' && (c < 0x20 || c >= 0x7f))
            abort();
    }
    size_t elen = strlen(r->enhanced);
    if (elen > 0 && (elen < 5 || r->enhanced[0] != '0' + r->code / 100 || r->enhanced[1] != '.'))
        abort();
    char line[SMTP_REPLY_LINE_MAX];
    size_t kept = 0;
    while (smtp_reply_line(r, kept, line, sizeof line)) {
        if (strlen(line) > r->text_len)
            abort();
        if (++kept > SMTP_REPLY_LINES_MAX + 1)
            abort();
    }
}

/* Take every line the reader has; false once the stream is unusable. */
static int drain(struct linereader *lr, struct evbuffer *in, struct smtp_reply_parser *p,
                 char *line)
{
    for (;;) {
        size_t len;
        enum lr_result r = linereader_next(lr, in, line, &len);
        if (r == LR_MORE)
            return 1;
        if (r == LR_TOOLONG)
            return 0; /* the client gives up here */
        const char *err = NULL;
        switch (smtp_reply_feed(p, line, len, &err)) {
        case SMTP_REPLY_MORE:
            break;
        case SMTP_REPLY_ERROR:
            if (err == NULL)
                abort();
            return 0;
        case SMTP_REPLY_DONE:
            check_reply(&p->r);
            smtp_reply_init(p);
            break;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char line[SMTP_REPLY_LINE_MAX];
    if (size < 1 || size > 256 * 1024)
        return 0;
    size_t step = (size_t)(data[0] % 64) + 1;
    if (data[0] >= 192)
        step = size; /* whole */
    data++;
    size--;
    struct evbuffer *in = evbuffer_new();
    struct linereader lr;
    struct smtp_reply_parser p;
    linereader_init(&lr, SMTP_REPLY_LINE_MAX);
    smtp_reply_init(&p);
    for (size_t off = 0; off < size;) {
        size_t n = size - off < step ? size - off : step;
        evbuffer_add(in, data + off, n);
        off += n;
        if (!drain(&lr, in, &p, line))
            break;
    }
    evbuffer_free(in);

    char enh[SMTP_ENHANCED_MAX];
    size_t n = smtp_reply_enhanced((const char *)data, size, enh);
    if (n > 9 || strlen(enh) != n)
        abort();
    return 0;
}
