/* envelope.c — the IMAP ENVELOPE of one header block (RFC 9051 §7.5.2).
 *
 * Fields come from the raw header values (see mime.h for the string
 * forms).  As in Dovecot, the last Date, Subject, In-Reply-To and
 * Message-ID win, and each address field gathers every header of its name
 * as if they were one comma-separated list: a second From: header is shown
 * rather than hidden, so a client cannot be shown one sender while a
 * filter checked another.  An empty Sender or Reply-To counts as absent
 * and is replaced by From (RFC 9051 §7.5.2). */
#include "mime/internal.h"

#include <string.h>
#include <strings.h>

#include "core/mem.h"

enum addr_field { AF_FROM, AF_SENDER, AF_REPLY_TO, AF_TO, AF_CC, AF_BCC, AF_COUNT };

static const char *const addr_names[AF_COUNT] = {"From", "Sender", "Reply-To", "To", "Cc", "Bcc"};

/* The last value of a string field, or NULL. */
static char *last_value(struct analysis *a, size_t start, size_t end, const char *name)
{
    struct hfield f;
    if (!hdr_find(&a->m, start, end, name, true, &f))
        return NULL;
    return hdr_value(&a->m, &f, &a->truncated);
}

static void parse_addresses(struct analysis *a, size_t start, size_t end,
                            struct addr_list lists[AF_COUNT])
{
    struct hfield f;
    size_t pos = start;
    while (hdr_next(&a->m, &pos, end, &f)) {
        for (int i = 0; i < AF_COUNT; i++) {
            if (f.name_len != strlen(addr_names[i]) ||
                strncasecmp((const char *)a->m.p + f.name, addr_names[i], f.name_len) != 0)
                continue;
            size_t len;
            char *v = hdr_value_raw(&a->m, &f, &len, &a->truncated);
            addr_parse(&lists[i], v, len, &a->addr_budget, &a->truncated);
            sm_freep(&v);
        }
    }
}

void envelope_write(struct analysis *a, struct sm_buf *b, size_t start, size_t end)
{
    struct addr_list lists[AF_COUNT];
    memset(lists, 0, sizeof lists);
    parse_addresses(a, start, end, lists);
    char *date = last_value(a, start, end, "Date");
    char *subject = last_value(a, start, end, "Subject");
    char *in_reply_to = last_value(a, start, end, "In-Reply-To");
    char *message_id = last_value(a, start, end, "Message-ID");

    sm_buf_puts(b, "(");
    imap_nstring_nolf(b, date);
    sm_buf_puts(b, " ");
    imap_nstring_humans(b, subject);
    for (int i = 0; i < AF_COUNT; i++) {
        const struct addr_list *l = &lists[i];
        if (l->n == 0 && (i == AF_SENDER || i == AF_REPLY_TO))
            l = &lists[AF_FROM];
        sm_buf_puts(b, " ");
        addr_write(b, l);
    }
    sm_buf_puts(b, " ");
    imap_nstring_nolf(b, in_reply_to);
    sm_buf_puts(b, " ");
    imap_nstring_nolf(b, message_id);
    sm_buf_puts(b, ")");

    for (int i = 0; i < AF_COUNT; i++)
        addr_list_free(&lists[i]);
    sm_freep(&date);
    sm_freep(&subject);
    sm_freep(&in_reply_to);
    sm_freep(&message_id);
}
