/* submission.c — the author check of submitted mail (see submission.h). */
#include "smtp/submission.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "mailauth/dmarc.h"
#include "mailauth/msgstream.h"

#define FIELD_MAX (DMARC_FROM_MAX + 8) /* "From:" and CRLF around a value */
#define FIELDS_MAX 1000                /* header fields looked at */

struct submission {
    struct msgstream *ms;
    char *from[DMARC_FROM_FIELDS_MAX + 1];
    size_t n_from;
    bool from_cut;         /* a From field longer than FIELD_MAX */
    /* the sink of the write in progress */
    int (*out)(void *arg, const void *p, size_t n);
    void *out_arg;
    /* the ownership check in progress */
    submission_owner_fn *owned;
    void *owned_arg;
    const char *refusal;
};

static bool keep_field(void *arg, const char *field, size_t len, bool complete)
{
    struct submission *s = arg;
    if (len < 5 || strncasecmp(field, "From:", 5) != 0)
        return true;
    if (!complete) {
        s->from_cut = true;
    } else if (s->n_from <= DMARC_FROM_FIELDS_MAX) {
        /* the value without "From:" and the final CRLF */
        size_t n = len - 5;
        while (n > 0 && (field[5 + n - 1] == '\n' || field[5 + n - 1] == '\r'))
            n--;
        s->from[s->n_from++] = sm_strndup(field + 5, n);
    }
    return true;
}

static void headers_done(void *arg)
{
    (void)arg;
}

static void body(void *arg, const void *p, size_t n)
{
    (void)arg, (void)p, (void)n;
}

static int out(void *arg, const void *p, size_t n)
{
    struct submission *s = arg;
    return s->out(s->out_arg, p, n);
}

static const struct msgstream_sink sink = {keep_field, headers_done, body, out};

struct submission *submission_new(void)
{
    struct submission *s = sm_calloc(1, sizeof *s);
    s->ms = msgstream_new(&sink, s, FIELD_MAX, FIELDS_MAX);
    return s;
}

int submission_write(struct submission *s, const void *p, size_t n,
                     int (*sink_out)(void *arg, const void *p, size_t n), void *arg)
{
    s->out = sink_out;
    s->out_arg = arg;
    return msgstream_write(s->ms, p, n);
}

static void check_author(void *arg, const char *local, size_t len, const char *domain)
{
    struct submission *s = arg;
    char address[64 + 1 + 256];
    if (s->refusal != NULL)
        return;
    if (len > 64 || snprintf(address, sizeof address, "%.*s@%s", (int)len, local, domain) < 0) {
        s->refusal = "550 5.7.1 The From address is not one of yours";
        return;
    }
    s->refusal = s->owned(s->owned_arg, address);
}

const char *submission_finish(struct submission *s, submission_owner_fn *owned, void *owned_arg,
                              int (*sink_out)(void *arg, const void *p, size_t n), void *arg)
{
    struct dmarc_from from;
    s->out = sink_out;
    s->out_arg = arg;
    if (msgstream_end(s->ms) < 0)
        return "451 4.3.0 Error: queue file write error";
    if (s->n_from == 0 && !s->from_cut)
        return "550 5.6.0 The message has no From header field (RFC 5322 needs one)";
    if (s->from_cut || s->n_from > 1)
        return "550 5.6.0 The message needs exactly one From header field of sane length";
    s->owned = owned;
    s->owned_arg = owned_arg;
    enum dmarc_from_status st =
        dmarc_from_mailboxes((const char *const *)s->from, s->n_from, &from, check_author, s);
    if (st == DMARC_FROM_INVALID || st == DMARC_FROM_ABSENT)
        return "550 5.6.0 The From header field cannot be read";
    return s->refusal;
}

void submission_free(struct submission **sp)
{
    struct submission *s = *sp;
    if (s == NULL)
        return;
    msgstream_free(&s->ms);
    for (size_t i = 0; i < s->n_from; i++)
        free(s->from[i]);
    free(s);
    *sp = NULL;
}
