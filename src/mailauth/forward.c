/* forward.c — SRS and an ARC set for a forwarded message (see forward.h). */
#include "mailauth/forward.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/mem.h"
#include "mailauth/arc-seal.h"
#include "mailauth/arc.h"
#include "mailauth/authres.h"
#include "mailauth/msgstream.h"

#define CHUNK 65536
#define FIELD_MAX 65536
#define FIELDS_MAX 2000

/* The header fields the ARC-Message-Signature covers (those a receiver
 * shows or that DMARC and MIME depend on; RFC 8617 §4.1.2 forbids ARC
 * fields and Authentication-Results here). */
static const char *const signed_headers[] = {
    "from", "to", "cc", "subject", "date", "message-id", "reply-to", "in-reply-to",
    "references", "mime-version", "content-type", "content-transfer-encoding",
    "dkim-signature", "list-id", "list-unsubscribe",
};

/* "arc=" in our Authentication-Results field(s) of the note. */
static enum forward_arc chain_of(const char *note, size_t len, const char *authserv_id,
                                 enum arc_cv *cv)
{
    static const char name[] = "Authentication-Results:";
    const char *p = note, *end = note + len;
    *cv = ARC_NONE;
    while (p < end) {
        const char *e = p;
        do { /* one field with its continuation lines */
            const char *nl = memchr(e, '\n', (size_t)(end - e));
            e = nl != NULL ? nl + 1 : end;
        } while (e < end && (*e == ' ' || *e == '\t'));
        size_t n = (size_t)(e - p);
        const char *error;
        if (n > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0) {
            struct authres *a = authres_parse(p + sizeof name - 1, n - (sizeof name - 1), false,
                                              &error);
            for (size_t i = 0; a != NULL && i < a->n; i++) {
                if (strcmp(a->ri[i].method, "arc") != 0 ||
                    strcasecmp(a->authserv_id, authserv_id) != 0)
                    continue;
                const char *r = a->ri[i].result;
                *cv = strcmp(r, "pass") == 0 ? ARC_PASS : strcmp(r, "fail") == 0 ? ARC_FAIL : ARC_NONE;
                bool temp = strcmp(r, "temperror") == 0;
                authres_free(&a);
                return temp ? FORWARD_ARC_TEMPERROR : FORWARD_ARC_SEALED;
            }
            authres_free(&a);
        }
        p = e;
    }
    return FORWARD_ARC_SEALED;
}

/* msgstream sink: every field and the body to the sealer. */
static bool to_sealer_field(void *arg, const char *field, size_t len, bool complete)
{
    (void)complete;
    arc_sealer_header(arg, field, len);
    return true;
}

static void to_sealer_done(void *arg)
{
    arc_sealer_headers_done(arg);
}

static void to_sealer_body(void *arg, const void *p, size_t n)
{
    arc_sealer_body(arg, p, n);
}

static int discard(void *arg, const void *p, size_t n)
{
    (void)arg, (void)p, (void)n;
    return 0;
}

/* Stream the note, then the message, through the sealer. */
static int feed(struct arc_sealer *s, const char *note, size_t note_len, int fd,
                const char **error_r)
{
    static const struct msgstream_sink sink = {to_sealer_field, to_sealer_done, to_sealer_body,
                                               discard};
    struct msgstream *m = msgstream_new(&sink, s, FIELD_MAX, FIELDS_MAX);
    int r = msgstream_write(m, note, note_len);
    char *buf = sm_malloc(CHUNK);
    for (off_t off = 0; r == 0;) {
        ssize_t n = pread(fd, buf, CHUNK, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0) {
                *error_r = "forward: cannot read the message";
                r = -1;
            }
            break;
        }
        r = msgstream_write(m, buf, (size_t)n);
        off += n;
    }
    if (r == 0)
        r = msgstream_end(m);
    free(buf);
    msgstream_free(&m);
    return r;
}

static int seal(const struct forward_params *p, enum arc_cv cv, const char *note,
                size_t note_len, int fd, struct forward_result *out, const char **error_r)
{
    struct arc_seal_params sp = {
        .key = p->arc_key, .domain = p->domain, .selector = p->arc_selector,
        .headers = signed_headers, .n_headers = sizeof signed_headers / sizeof signed_headers[0],
        .time = p->now, .authserv_id = p->authserv_id, .results = NULL, .chain = cv,
    };
    struct arc_seal_fields f;
    struct arc_sealer *s = arc_sealer_new(&sp, error_r);
    if (s == NULL)
        return -1;
    enum arc_seal_status st = feed(s, note, note_len, fd, error_r) < 0
                                  ? ARC_SEAL_ERROR
                                  : arc_sealer_finish(s, &f, error_r);
    arc_sealer_free(&s);
    if (st == ARC_SEAL_ERROR)
        return -1;
    if (st == ARC_SEAL_SKIPPED) {
        out->arc = FORWARD_ARC_NONE;
        return 0;
    }
    sm_buf_printf(&out->prefix, "%s%s%s", f.seal, f.ams, f.aar);
    arc_seal_fields_free(&f);
    out->arc = FORWARD_ARC_SEALED;
    return 0;
}

int forward_prepare(const struct forward_params *p, const char *mail_from, const char *note,
                    size_t note_len, int body_fd, struct forward_result *out,
                    const char **error_r)
{
    memset(out, 0, sizeof *out);
    sm_buf_init(&out->prefix, 0);
    enum srs_result sr = srs_forward(p->srs, mail_from, p->domain, (time_t)p->now, out->mail_from);
    if (sr != SRS_OK && sr != SRS_UNCHANGED) {
        /* too long or unusual syntax: sent as it was (SPF may then fail) */
        snprintf(out->mail_from, sizeof out->mail_from, "%s", mail_from);
        out->srs_kept = true;
    }
    enum arc_cv cv;
    out->arc = chain_of(note, note_len, p->authserv_id, &cv);
    if (out->arc == FORWARD_ARC_SEALED && p->arc_key == NULL)
        out->arc = FORWARD_ARC_NONE;
    if (out->arc == FORWARD_ARC_SEALED &&
        seal(p, cv, note, note_len, body_fd, out, error_r) < 0) {
        forward_result_free(out);
        return -1;
    }
    sm_buf_append(&out->prefix, note, note_len);
    return 0;
}

void forward_result_free(struct forward_result *r)
{
    sm_buf_free(&r->prefix);
}
