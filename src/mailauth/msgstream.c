/* msgstream.c — header fields and body of a streamed message (msgstream.h).
 *
 * The header is scanned byte by byte (it is small, and a field's end is
 * only known when the next line does not start with whitespace); the body
 * passes through in the pieces it came in. */
#include "mailauth/msgstream.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

enum where {
    LINE_START,     /* header: at the start of a line */
    CR_AT_START,    /* header: a line that began with CR */
    IN_LINE,        /* header: inside a line */
    BODY,
};

enum field_mode {
    BUFFER,         /* collecting the field for the callback */
    STREAM_KEEP,    /* oversized or unchecked: bytes go straight out */
    STREAM_DROP,    /* oversized and dropped: bytes are discarded */
};

#define STAGE_MAX 4096
#define FIELD_START 1024

struct msgstream {
    const struct msgstream_sink *sink;
    void *arg;
    size_t field_max, max_fields;
    enum where where;
    enum field_mode mode;
    bool in_field;          /* a field has started and not been flushed */
    bool failed;
    char *field;            /* field_cap bytes, grown up to field_max: most */
    size_t field_len, field_cap; /* fields are short, and a 64 KiB calloc per
                                  * message cost more than parsing it */
    size_t fields, unchecked;
    char stage[STAGE_MAX];  /* header bytes to send out */
    size_t stage_len;
};

struct msgstream *msgstream_new(const struct msgstream_sink *sink, void *arg, size_t field_max,
                                size_t max_fields)
{
    struct msgstream *m = sm_malloc(sizeof *m);
    m->sink = sink;
    m->arg = arg;
    m->field_max = field_max > 0 ? field_max : 1;
    m->max_fields = max_fields;
    m->where = LINE_START;
    return m;
}

void msgstream_free(struct msgstream **mp)
{
    struct msgstream *m = *mp;
    if (m == NULL)
        return;
    free(m->field);
    free(m);
    *mp = NULL;
}

size_t msgstream_fields(const struct msgstream *m)
{
    return m->fields;
}

size_t msgstream_fields_unchecked(const struct msgstream *m)
{
    return m->unchecked;
}

static void out(struct msgstream *m, const void *p, size_t n)
{
    if (!m->failed && n > 0 && m->sink->out(m->arg, p, n) != 0)
        m->failed = true;
}

static void stage_flush(struct msgstream *m)
{
    out(m, m->stage, m->stage_len);
    m->stage_len = 0;
}

static void stage_byte(struct msgstream *m, char c)
{
    if (m->stage_len == STAGE_MAX)
        stage_flush(m);
    m->stage[m->stage_len++] = c;
}

/* The current field is complete: hand it over and send it out if kept. */
static void field_end(struct msgstream *m)
{
    if (!m->in_field)
        return;
    if (m->mode == BUFFER && m->sink->field(m->arg, m->field, m->field_len, true)) {
        stage_flush(m);
        out(m, m->field, m->field_len);
    }
    m->in_field = false;
    m->field_len = 0;
}

static void field_start(struct msgstream *m)
{
    field_end(m);
    m->in_field = true;
    m->fields++;
    m->mode = BUFFER;
    if (m->fields > m->max_fields) {
        m->unchecked++;
        m->mode = STREAM_KEEP;
    }
}

/* One byte of the current field. */
static void field_byte(struct msgstream *m, char c)
{
    if (m->mode == STREAM_KEEP) {
        stage_byte(m, c);
        return;
    }
    if (m->mode == STREAM_DROP)
        return;
    if (m->field_len == m->field_max) {
        /* oversized: the caller decides on what it can see */
        bool keep = m->sink->field(m->arg, m->field, m->field_len, false);
        m->mode = keep ? STREAM_KEEP : STREAM_DROP;
        if (keep) {
            stage_flush(m);
            out(m, m->field, m->field_len);
            stage_byte(m, c);
        }
        m->field_len = 0;
        return;
    }
    if (m->field_len == m->field_cap) {
        m->field_cap = m->field_cap == 0 ? FIELD_START : m->field_cap * 2;
        if (m->field_cap > m->field_max)
            m->field_cap = m->field_max;
        m->field = sm_realloc(m->field, m->field_cap);
    }
    m->field[m->field_len++] = c;
}

static void headers_end(struct msgstream *m)
{
    field_end(m);
    stage_flush(m);
    m->where = BODY;
    m->sink->headers_done(m->arg);
}

/* Header bytes; returns how many were consumed (less than n only when
 * the header ended: the rest is body). */
static size_t header_bytes(struct msgstream *m, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        switch (m->where) {
        case LINE_START:
            if (c == '\r') {
                m->where = CR_AT_START;
                continue;
            }
            if (c == '\n') { /* a bare LF line: the header ends too */
                field_end(m);
                stage_byte(m, c);
                headers_end(m);
                return i + 1;
            }
            if ((c != ' ' && c != '\t') || !m->in_field)
                field_start(m);
            m->where = IN_LINE;
            break;
        case CR_AT_START:
            if (c == '\n') {
                field_end(m);
                stage_byte(m, '\r');
                stage_byte(m, '\n');
                headers_end(m);
                return i + 1;
            }
            /* a line starting with a bare CR: a (malformed) field */
            field_start(m);
            field_byte(m, '\r');
            m->where = IN_LINE;
            break;
        case IN_LINE:
        case BODY:
            break;
        }
        field_byte(m, c);
        if (c == '\n')
            m->where = LINE_START;
    }
    return n;
}

int msgstream_write(struct msgstream *m, const void *data, size_t n)
{
    const char *p = data;
    if (m->where != BODY) {
        size_t used = header_bytes(m, p, n);
        p += used;
        n -= used;
        if (m->where != BODY)
            stage_flush(m);
    }
    if (m->where == BODY && n > 0) {
        m->sink->body(m->arg, p, n);
        out(m, p, n);
    }
    return m->failed ? -1 : 0;
}

int msgstream_end(struct msgstream *m)
{
    if (m->where == CR_AT_START) {
        /* a lone CR at the very end: part of a last, malformed field */
        field_start(m);
        field_byte(m, '\r');
    }
    if (m->where != BODY)
        headers_end(m);
    return m->failed ? -1 : 0;
}
