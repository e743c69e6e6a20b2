/* internal.h — shared by the sources of src/mime; not a public header.
 *
 * The module works on the message bytes directly (struct msg, a read-only
 * mapping): raw.c finds lines, header fields and boundary lines; tree.c
 * builds the MIME part tree with exact byte offsets; address.c,
 * envelope.c and imapstr.c produce the IMAP texts; bodystructure.c writes
 * BODY/BODYSTRUCTURE from the tree; text.c extracts search text.  GMime
 * supplies the field-level semantics (Content-Type parameters with RFC
 * 2231, dispositions, RFC 2047 decoding, dates, transfer decoding and
 * charset conversion) through one GMimeParserOptions per analysis. */
#ifndef SM_MIME_INTERNAL_H
#define SM_MIME_INTERNAL_H

#include <gmime/gmime.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "mime/mime.h"

/* ---- the input (raw.c) ---- */

struct msg {
    const unsigned char *p; /* the message; NULL when len == 0 */
    size_t len;
    uint64_t *cp_lf, *cp_bare; /* LF and bare-LF counts before each checkpoint */
    size_t n_cp;
};

/* A header field inside a header block: name [name, name+name_len),
 * value [value, value_end) without the leading blanks after ':' and
 * without the final line break; folding line breaks are kept. */
struct hfield {
    size_t name, name_len;
    size_t value, value_end;
};

/* Index of the LFs of m so that mime_count() is cheap; mime_msg_free()
 * releases it. */
void msg_index(struct msg *m);
void msg_free(struct msg *m);
/* Lines and IMAP size (bare LF counted as CRLF) of [start, end). */
uint64_t msg_lines(const struct msg *m, size_t start, size_t end);
uint64_t msg_vsize(const struct msg *m, size_t start, size_t end);

/* Offset just past the line at pos (after its LF, or m->len). */
size_t line_next(const struct msg *m, size_t pos);
/* Whether the line at pos is empty (LF or CRLF alone). */
bool line_blank(const struct msg *m, size_t pos);

/* Iterate the fields of the header block [*pos, end): fills *f and
 * advances *pos; false at the end.  Lines without a valid field name are
 * skipped with their continuation lines. */
bool hdr_next(const struct msg *m, size_t *pos, size_t end, struct hfield *f);
/* The first (last == false) or last field named name (ASCII case-
 * insensitive) in [start, end); false if none. */
bool hdr_find(const struct msg *m, size_t start, size_t end, const char *name, bool last,
              struct hfield *f);
/* Copy of a field value: NUL bytes become U+FFFD, at most MIME_HEADER_MAX
 * input bytes (*truncated set when cut).  Never NULL. */
char *hdr_value(const struct msg *m, const struct hfield *f, bool *truncated);
/* The value bytes as they are (NULs kept), at most MIME_HEADER_MAX; *len_r
 * is their number; the copy is NUL-terminated too. */
char *hdr_value_raw(const struct msg *m, const struct hfield *f, size_t *len_r, bool *truncated);

/* The boundaries of the open multiparts, innermost last. */
struct bstack {
    const char *s[MIME_DEPTH_MAX + 1];
    size_t len[MIME_DEPTH_MAX + 1];
    unsigned n;
    bool off; /* no boundary is recognised any more (part limit) */
};

/* If the line at pos is a boundary line of st, return the index of the
 * boundary (longest matching prefix, innermost first) and set *final for
 * "--boundary--"; otherwise -1. */
int bstack_match(const struct bstack *st, const struct msg *m, size_t pos, bool *final);
/* Start of the first boundary line at or after the line start pos, or
 * m->len. */
size_t bstack_scan(const struct bstack *st, const struct msg *m, size_t pos);

/* ---- IMAP strings (imapstr.c) ---- */

/* string: quoted, or a literal for CR, LF, 8-bit or many specials. */
void imap_string(struct sm_buf *b, const char *s);
/* nstring: NIL for NULL, else imap_string(). */
void imap_nstring(struct sm_buf *b, const char *s);
/* nstring with line breaks removed (a space kept between folded words). */
void imap_nstring_nolf(struct sm_buf *b, const char *s);
/* Text for humans (subject, display names): NIL for NULL; white space runs
 * collapsed to one space and trimmed. */
void imap_nstring_humans(struct sm_buf *b, const char *s);

/* Whether s[0..len) is one well-formed IMAP parenthesised list: NIL,
 * numbers, quoted strings (7-bit, no CR/LF, only \" and \\ escaped),
 * literals {n}CRLF<n bytes without NUL>, nested lists; items separated by
 * one space, lists may abut; nothing after the closing parenthesis.
 * *top_items counts the items of the outer list.  For tests and fuzzing. */
bool imap_syntax_check(const char *s, size_t len, unsigned *top_items);

/* ---- charset names (charset.c) ---- */

/* Whether GMime may be given the charset name[0..len): a plain name that
 * iconv or GMime's own alias table knows (bounds GMime's global cache). */
bool charset_ok(const char *name, size_t len);
/* A copy of a header value in which every RFC 2047 or RFC 2231 charset name
 * that charset_ok() refuses is replaced by "us-ascii"; never NULL. */
char *charset_guard(const char *value);

/* ---- addresses (address.c) ---- */

/* One address; a group start has only mailbox (the group name), a group
 * end has nothing (all NULL).  Strings are owned by the list. */
struct addr {
    char *name, *route, *mailbox, *domain;
};

struct addr_list {
    struct addr *a;
    unsigned n, cap;
};

/* Parse an RFC 5322 address list (raw header value of len bytes, NULs
 * included) and append to l; at most *budget addresses, *budget is
 * decremented (sets *truncated at 0). */
void addr_parse(struct addr_list *l, const char *value, size_t len, unsigned *budget,
                bool *truncated);
void addr_list_free(struct addr_list *l);
/* IMAP address list: NIL when empty. */
void addr_write(struct sm_buf *b, const struct addr_list *l);
/* First real address as lowercase "mailbox@domain" ("" if none). */
char *addr_sort_key(const struct addr_list *l);

/* ---- envelope (envelope.c) ---- */

struct analysis {
    struct msg m;
    GMimeParserOptions *opts;
    unsigned addr_budget;
    unsigned n_parts;
    bool truncated;
};

/* Set up a for the message p[0..len) (indexes it, makes the GMime
 * options); analysis_end() releases what it holds. */
void analysis_begin(struct analysis *a, const unsigned char *p, size_t len);
void analysis_end(struct analysis *a);
/* Map the regular file fd read-only: 0 with *p_r (NULL when empty) and
 * *len_r, or -1 with *error_r.  mime_unmap() undoes it. */
int mime_map_fd(int fd, const unsigned char **p_r, size_t *len_r, const char **error_r);
void mime_unmap(const unsigned char *p, size_t len);

/* Write the ENVELOPE of the header block [start, end) to b. */
void envelope_write(struct analysis *a, struct sm_buf *b, size_t start, size_t end);

/* ---- the part tree (tree.c) ---- */

enum mkind { MK_LEAF, MK_MULTIPART, MK_MESSAGE };

struct mparam {
    char *name, *value;
};

struct mnode {
    struct mnode *child, *next;
    enum mkind kind;
    bool text;       /* text/<any>: default charset, line count */
    bool attachment; /* Content-Disposition: attachment */
    char *type, *subtype;
    struct mparam *params;
    unsigned n_params;
    char *id, *description, *encoding, *md5, *location; /* NULL: absent */
    char *disposition;
    struct mparam *disp_params;
    unsigned n_disp_params;
    char **langs;
    unsigned n_langs;
    char *charset;  /* the charset parameter, or NULL */
    char *envelope; /* MK_MESSAGE: ENVELOPE of the encapsulated message */
    size_t hdr_start, hdr_end, body_start, body_end;
    bool keep_nl; /* the line break before the boundary that ended this part
                   * ends a header line, the header separator or a close
                   * delimiter, not a body line, so the part keeps it */
    uint64_t size, lines;
};

/* Parse the whole message into a tree (never NULL). */
struct mnode *tree_parse(struct analysis *a);
/* Free a tree; sets *n to NULL. */
void tree_free(struct mnode **n);

/* ---- outputs (bodystructure.c, text.c) ---- */

/* BODYSTRUCTURE (extended) or BODY text of the tree rooted at n. */
void bodystructure_write(struct sm_buf *b, const struct mnode *n, bool extended);
/* The part offsets of the tree in IMAP section order. */
void bodystructure_sections(const struct mnode *root, struct mime_summary *out);
/* search_text and search_headers. */
void text_extract(struct analysis *a, const struct mnode *root, struct mime_summary *out);
/* Header value decoded to one line of valid UTF-8 (RFC 2047, raw 8-bit
 * through fallback charsets). */
char *text_decode_header(struct analysis *a, const char *raw);
/* How decode_part() treats a leaf: search text (HTML stripped of tags),
 * text to show (charset converted, markup kept), or bytes (transfer
 * decoding only: attachments). */
enum decode_mode { DECODE_SEARCH, DECODE_TEXT, DECODE_BYTES };
/* Decode the body of leaf n into out (bounded by out->max) using at most
 * *input bytes of input; false if it did not all fit. */
bool decode_part(struct analysis *a, const struct mnode *n, enum decode_mode mode,
                 struct sm_buf *out, size_t *input);
/* The last value of field name in the top header block, decoded to one
 * trimmed line of UTF-8; "" if none (mime.c). */
char *mime_top_decoded(struct analysis *a, const struct mnode *root, const char *name);
/* The last Date of the top header block as unix time; 0 if none. */
int64_t mime_top_date(struct analysis *a, const struct mnode *root);
/* Make s valid UTF-8 in place-copy: invalid bytes read as Latin-1. */
char *text_utf8_sanitise(const char *s, size_t len);

#endif
