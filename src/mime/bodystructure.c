/* bodystructure.c — IMAP BODY and BODYSTRUCTURE texts from the part tree,
 * and the part offsets by section number.
 *
 * The grammar is RFC 9051 §9 (body, body-type-1part, body-type-mpart,
 * body-ext-*); the choices within it follow Dovecot 2.3: type, subtype,
 * parameter names and values as written in the message (RFC 2231-decoded),
 * "message" "rfc822" in lowercase, "7bit" when there is no
 * Content-Transfer-Encoding, ("charset" "us-ascii") added to text parts
 * without a charset, Content-Language always as a list, NIL for absent
 * extension data.  Recursion follows the tree, so it is bounded by
 * MIME_DEPTH_MAX.
 *
 * Section numbers follow RFC 9051 §6.4.5: the parts of a multipart are
 * numbered from 1; a message (the top one or an encapsulated
 * message/rfc822) whose body is not multipart has that body as part 1;
 * a multipart that is the body of a message has no number of its own. */
#include "mime/internal.h"

#include <inttypes.h>
#include <strings.h>

#include "core/mem.h"

static void params_write(struct sm_buf *b, const struct mparam *p, unsigned n, bool default_charset)
{
    if (n == 0 && !default_charset) {
        sm_buf_puts(b, "NIL");
        return;
    }
    bool charset = false;
    sm_buf_puts(b, "(");
    for (unsigned i = 0; i < n; i++) {
        if (i > 0)
            sm_buf_puts(b, " ");
        charset |= strcasecmp(p[i].name, "charset") == 0;
        imap_string(b, p[i].name);
        sm_buf_puts(b, " ");
        imap_string(b, p[i].value);
    }
    if (default_charset && !charset)
        sm_buf_puts(b, n > 0 ? " \"charset\" \"us-ascii\"" : "\"charset\" \"us-ascii\"");
    sm_buf_puts(b, ")");
}

/* body-fld-dsp SP body-fld-lang SP body-fld-loc */
static void ext_common(struct sm_buf *b, const struct mnode *n)
{
    sm_buf_puts(b, " ");
    if (n->disposition == NULL) {
        sm_buf_puts(b, "NIL");
    } else {
        sm_buf_puts(b, "(");
        imap_string(b, n->disposition);
        sm_buf_puts(b, " ");
        params_write(b, n->disp_params, n->n_disp_params, false);
        sm_buf_puts(b, ")");
    }
    sm_buf_puts(b, " ");
    if (n->n_langs == 0) {
        sm_buf_puts(b, "NIL");
    } else {
        sm_buf_puts(b, "(");
        for (unsigned i = 0; i < n->n_langs; i++) {
            if (i > 0)
                sm_buf_puts(b, " ");
            imap_string(b, n->langs[i]);
        }
        sm_buf_puts(b, ")");
    }
    sm_buf_puts(b, " ");
    imap_nstring_nolf(b, n->location);
}

static void multipart_write(struct sm_buf *b, const struct mnode *n, bool extended)
{
    for (const struct mnode *c = n->child; c != NULL; c = c->next)
        bodystructure_write(b, c, extended);
    sm_buf_puts(b, " ");
    imap_string(b, n->subtype);
    if (!extended)
        return;
    sm_buf_puts(b, " ");
    params_write(b, n->params, n->n_params, false);
    ext_common(b, n);
}

/* body-type-basic, body-type-text and body-type-msg */
static void single_write(struct sm_buf *b, const struct mnode *n, bool extended)
{
    if (n->kind == MK_MESSAGE) {
        sm_buf_puts(b, "\"message\" \"rfc822\"");
    } else {
        imap_string(b, n->type);
        sm_buf_puts(b, " ");
        imap_string(b, n->subtype);
    }
    sm_buf_puts(b, " ");
    params_write(b, n->params, n->n_params, n->text);
    sm_buf_puts(b, " ");
    imap_nstring_nolf(b, n->id);
    sm_buf_puts(b, " ");
    imap_nstring_nolf(b, n->description);
    sm_buf_puts(b, " ");
    if (n->encoding != NULL)
        imap_string(b, n->encoding);
    else
        sm_buf_puts(b, "\"7bit\"");
    sm_buf_printf(b, " %" PRIu64, n->size);
    if (n->text) {
        sm_buf_printf(b, " %" PRIu64, n->lines);
    } else if (n->kind == MK_MESSAGE) {
        sm_buf_printf(b, " %s ", n->envelope);
        bodystructure_write(b, n->child, extended);
        sm_buf_printf(b, " %" PRIu64, n->lines);
    }
    if (!extended)
        return;
    sm_buf_puts(b, " ");
    imap_nstring_nolf(b, n->md5);
    ext_common(b, n);
}

void bodystructure_write(struct sm_buf *b, const struct mnode *n, bool extended)
{
    sm_buf_puts(b, "(");
    if (n->kind == MK_MULTIPART)
        multipart_write(b, n, extended);
    else
        single_write(b, n, extended);
    sm_buf_puts(b, ")");
}

static void section_add(struct mime_summary *out, const struct sm_buf *section,
                        const struct mnode *n)
{
    if ((out->n_sections & (out->n_sections - 1)) == 0) /* 0, 1, 2, 4, ...: grow */
        out->parts = sm_realloc(out->parts,
                                (out->n_sections ? 2 * out->n_sections : 1) * sizeof *out->parts);
    struct mime_part_offsets *p = &out->parts[out->n_sections++];
    p->section = sm_strdup(sm_buf_str(section));
    p->header_start = n->hdr_start;
    p->body_start = n->body_start;
    p->body_end = n->body_end;
}

static void number_body(struct mime_summary *out, struct sm_buf *prefix, const struct mnode *n);

/* Give n the section number in *section and number what it contains. */
static void number_part(struct mime_summary *out, struct sm_buf *section, const struct mnode *n)
{
    section_add(out, section, n);
    if (n->kind == MK_MULTIPART || n->kind == MK_MESSAGE) {
        sm_buf_puts(section, ".");
        if (n->kind == MK_MESSAGE)
            number_body(out, section, n->child);
        else
            number_body(out, section, n);
    }
}

/* Number the body n of a message, or the children of multipart n, below
 * prefix ("" or "2.1." ...). */
static void number_body(struct mime_summary *out, struct sm_buf *prefix, const struct mnode *n)
{
    size_t keep = prefix->len;
    unsigned i = 1;
    if (n->kind != MK_MULTIPART) {
        sm_buf_puts(prefix, "1");
        number_part(out, prefix, n);
    } else {
        for (const struct mnode *c = n->child; c != NULL; c = c->next, i++) {
            sm_buf_printf(prefix, "%u", i);
            number_part(out, prefix, c);
            prefix->len = keep;
            prefix->data[keep] = '\0';
        }
    }
    prefix->len = keep;
    if (prefix->data != NULL)
        prefix->data[keep] = '\0';
}

void bodystructure_sections(const struct mnode *root, struct mime_summary *out)
{
    struct sm_buf section;
    sm_buf_init(&section, 0);
    number_body(out, &section, root);
    sm_buf_free(&section);
}
