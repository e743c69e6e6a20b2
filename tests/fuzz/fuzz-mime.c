/* fuzz-mime.c — the mime module on arbitrary messages.
 *
 * Each input is written to a memfd and analysed exactly as delivery does
 * (mime_analyse_fd).  Crashes, leaks, UB and timeouts are findings, and so
 * is any output that breaks the contract in mime.h: ENVELOPE, BODY and
 * BODYSTRUCTURE must be well-formed IMAP (balanced lists, valid quoted
 * strings, exact literals, no CR/LF/8-bit outside literals, ten ENVELOPE
 * fields), the decoded texts valid UTF-8 within their bounds, and every
 * part's offsets inside the message and in order. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mime/internal.h"
#include "mime/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *text)
{
    fprintf(stderr, "fuzz-mime: %s: %s\n", what, text != NULL ? text : "(null)");
    abort();
}

static void check_imap(const char *what, const char *text, unsigned min_items, unsigned max_items)
{
    unsigned items;
    if (text == NULL || !imap_syntax_check(text, strlen(text), &items) || items < min_items ||
        items > max_items)
        fail(what, text);
}

static void check_utf8(const char *what, const char *text, size_t max)
{
    if (text == NULL || !g_utf8_validate(text, -1, NULL) || strlen(text) > max)
        fail(what, text);
}

static void check(const struct mime_summary *s, size_t size)
{
    check_imap("envelope", s->envelope, 10, 10);
    check_imap("bodystructure", s->bodystructure, 2, 1000000);
    check_imap("body", s->body, 2, 1000000);
    check_utf8("subject", s->subject, (size_t)-1);
    check_utf8("search_headers", s->search_headers, MIME_SEARCH_HEADERS_MAX);
    check_utf8("search_text", s->search_text, MIME_SEARCH_TEXT_MAX);
    if (s->from == NULL || s->to == NULL || s->cc == NULL || s->message_id == NULL)
        fail("sort keys", "NULL");
    if (s->size < size)
        fail("size", "below the stored octets");
    /* the SORT keys read back from what was stored */
    static const unsigned fields[] = {MIME_ENV_FROM, MIME_ENV_TO};
    for (size_t i = 0; i < 2; i++) {
        char *display = mime_envelope_display(s->envelope, fields[i]);
        char *key = mime_casemap(display);
        check_utf8("display", key, (size_t)-1);
        free(display);
        free(key);
    }
    if (s->n_parts < 1 || s->n_parts > MIME_PARTS_MAX || s->n_sections < 1)
        fail("parts", s->bodystructure);
    for (unsigned i = 0; i < s->n_sections; i++) {
        const struct mime_part_offsets *p = &s->parts[i];
        if (p->header_start > p->body_start || p->body_start > p->body_end || p->body_end > size ||
            p->section == NULL || p->section[0] < '1' || p->section[0] > '9')
            fail("offsets", p->section);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    if (fd < 0) {
        mime_init();
        fd = memfd_create("fuzz-mime", MFD_CLOEXEC);
        if (fd < 0)
            abort();
    }
    if (ftruncate(fd, 0) < 0 || (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
        abort();
    struct mime_summary s;
    const char *error;
    if (mime_analyse_fd(fd, &s, &error) < 0)
        fail("analyse", error);
    check(&s, size);
    mime_summary_free(&s);
    return 0;
}
