/* section.h — the bytes of IMAP FETCH BODY[section]<partial> and BINARY[part].
 *
 * A pure module over one raw stored message (bytes and length, mapped or
 * read by the caller) and the part offsets mime_analyse_fd() computed at
 * delivery (struct mime_part_offsets, section "1", "2.1", ..., in document
 * order).  Nothing is parsed again beyond the header blocks a request
 * touches; no GMime; every call is O(message size) and bounded.
 *
 * Semantics: RFC 9051 §6.4.5 as Dovecot 2.3 serves it (golden files from
 * Dovecot in tests/unit/data/mime-section/, whose README lists the few
 * deliberate differences):
 *  - BODY[] the whole message; [HEADER] the top header block including
 *    the empty line that ends it; [TEXT] everything after that line;
 *    [HEADER.FIELDS (list)] / [HEADER.FIELDS.NOT (list)] the fields of that
 *    header whose names are (not) in the list, ASCII case-insensitive, in
 *    message order, each with its continuation lines, then an empty line
 *    (none when the header has none: RFC 9051 "except in the case of a
 *    message which has no body and no blank line").
 *  - BODY[n] (n = 1.2.3 ...) the body of part n: for a message/rfc822 part
 *    the whole encapsulated message, for a multipart its preamble, parts and
 *    epilogue; BODY[1] of a message that is not multipart is its body.
 *    [n.MIME] the MIME header of part n with its empty line (for the part
 *    that a non-multipart message/rfc822 encapsulates, that is its header).
 *    [n.HEADER], [n.TEXT], [n.HEADER.FIELDS ...] are the header and text
 *    of the message that part n encapsulates; they exist only when part n
 *    is message/rfc822.  When a part's body is empty and a boundary line
 *    follows, the line break before that line belongs to the boundary
 *    (RFC 2046 §5.1.1) even if it ends a header: [n.MIME], or [n.HEADER] of
 *    such an encapsulated message, is served without it (as Dovecot does).
 *  - A section that does not exist (no such part, HEADER or TEXT of a part
 *    that is not message/rfc822) is served as the empty string, as Dovecot
 *    does: RFC 9051 defines no error for it and a client asking for a part
 *    it did not see in BODYSTRUCTURE gets nothing.  Only what the grammar
 *    forbids is an error (SECTION_BAD): MIME without a part number
 *    (section-text "MIME" follows a section-part only), a part number 0
 *    (nz-number), an empty HEADER.FIELDS list (header-list = "("
 *    1*astring ")"), and requests over the bounds below.
 *  - Output is in IMAP form: every LF not preceded by CR becomes CRLF (so
 *    BODY[n] has exactly the octet count BODYSTRUCTURE gives for part n),
 *    a lone CR stays, and NUL becomes 0x80 (a literal cannot carry NUL;
 *    Dovecot does the same).  HEADER.FIELDS lines always end in CRLF.
 *  - Partial <origin.count> counts octets of that converted form; an
 *    origin at or past the end gives the empty string.
 *  - BINARY[n] (RFC 3516, RFC 9051) is part n with its
 *    Content-Transfer-Encoding removed: base64 and quoted-printable are
 *    decoded (quoted-printable line breaks become CRLF, trailing blanks go),
 *    7bit, 8bit and binary are served as in BODY[] but NULs kept.  The
 *    encoding is the first Content-Transfer-Encoding field, as for
 *    BODYSTRUCTURE, ignored in a top-level header without MIME-Version and
 *    Content-Type; its value must be one token (";" and anything may
 *    follow), else it is unknown (Dovecot's rule).  For BINARY[] and for a
 *    multipart or message/rfc822 part every leaf inside is decoded this
 *    way and each decoded leaf's header says "Content-Transfer-Encoding:
 *    binary" (Dovecot's form).  Any other encoding (x-uuencode, ...), on a
 *    leaf or a container inside the section, is SECTION_UNKNOWN_CTE;
 *    encoded data that does not decode is SECTION_CORRUPT.  The output may
 *    contain NUL: res->has_nul then asks for a literal8 (~{n}).
 *
 * Thread safety: none needed; no global state.  The message bytes and the
 * offsets are only read and must not change during a call. */
#ifndef SM_MIME_SECTION_H
#define SM_MIME_SECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "mime/mime.h"

#define SECTION_PART_MAX MIME_DEPTH_MAX /* numbers in one section-part (1.2.3...) */
#define SECTION_FIELDS_MAX 100         /* names in one HEADER.FIELDS[.NOT] list */
#define SECTION_FIELD_NAME_MAX 1000    /* bytes of one field name (Dovecot's bound) */

/* What follows the part numbers in the section. */
enum section_kind {
    SECTION_NONE,              /* BODY[] or BODY[1.2]: whole message / part body */
    SECTION_HEADER,            /* [HEADER], [n.HEADER] */
    SECTION_HEADER_FIELDS,     /* [HEADER.FIELDS (...)], [n.HEADER.FIELDS (...)] */
    SECTION_HEADER_FIELDS_NOT, /* [HEADER.FIELDS.NOT (...)] */
    SECTION_TEXT,              /* [TEXT], [n.TEXT] */
    SECTION_MIME,              /* [n.MIME]; needs at least one part number */
};

/* A parsed section specification.  part[0..n_part) are the numbers of the
 * section-part ("2.1" is {2, 1}); n_part == 0 is the whole message.
 * fields[0..n_fields) are the header names for the HEADER.FIELDS kinds
 * (NUL-terminated, as the client sent them) and are ignored otherwise.
 * Nothing here is kept after a call. */
struct section_spec {
    const unsigned *part;
    unsigned n_part;
    enum section_kind kind;
    const char *const *fields;
    unsigned n_fields;
};

/* One stored message: its raw bytes (data may be NULL when len is 0) and
 * the part offsets mime_analyse_fd() gave for exactly these bytes. */
struct section_msg {
    const unsigned char *data;
    size_t len;
    const struct mime_part_offsets *parts;
    unsigned n_parts;
};

/* <origin.count> of a FETCH item; pass NULL for the whole section. */
struct section_partial {
    uint64_t origin;
    uint64_t count;
};

enum section_status {
    SECTION_OK = 0,
    SECTION_BAD,         /* the spec is not allowed: tagged BAD */
    SECTION_TOO_BIG,     /* the output would pass out->max: NO [LIMIT] */
    SECTION_UNKNOWN_CTE, /* BINARY of an unknown encoding: NO [UNKNOWN-CTE] */
    SECTION_CORRUPT,     /* BINARY of data that does not decode: NO [PARSE]
                          * (Dovecot: "Invalid data in MIME part") */
};

/* What one call produced. */
struct section_result {
    uint64_t size; /* octets appended to out (after the partial) */
    bool has_nul;  /* those octets contain NUL (BINARY only): send a literal8 */
};

/* BODY[spec]<partial>: append the section to out, whose max (if any)
 * bounds the whole buffer.  Returns SECTION_OK with *res filled, or another
 * status with *error_r (static text) and out unchanged (SECTION_BAD or
 * SECTION_TOO_BIG; BODY never decodes).  res may be NULL. */
enum section_status section_body(const struct section_msg *m, const struct section_spec *spec,
                                 const struct section_partial *partial, struct sm_buf *out,
                                 struct section_result *res, const char **error_r);

/* BINARY[spec]<partial>: as section_body() but decoded (see above); spec
 * must have kind SECTION_NONE (section-binary is only a section-part), else
 * SECTION_BAD.  With a partial the whole section is still decoded (only
 * the window is stored), so data that does not decode fails every
 * partial of it, as in Dovecot. */
enum section_status section_binary(const struct section_msg *m, const struct section_spec *spec,
                                   const struct section_partial *partial, struct sm_buf *out,
                                   struct section_result *res, const char **error_r);

/* BINARY.SIZE[spec]: the octets section_binary() would give without a
 * partial, in *size_r; same statuses (never SECTION_TOO_BIG); nothing is
 * stored, memory use is constant. */
enum section_status section_binary_size(const struct section_msg *m,
                                        const struct section_spec *spec, uint64_t *size_r,
                                        const char **error_r);

/* The octets section_body() would give without a partial (for a part
 * body this equals its BODYSTRUCTURE size); same statuses as
 * section_body() but never SECTION_TOO_BIG. */
enum section_status section_body_size(const struct section_msg *m, const struct section_spec *spec,
                                      uint64_t *size_r, const char **error_r);

/* Whether spec (for section_body()) reads nothing but the top header
 * block: HEADER, HEADER.FIELDS and HEADER.FIELDS.NOT without a part. */
bool section_header_only(const struct section_spec *spec);

/* Whether data[0..len), the start of a message, holds its whole top
 * header block, the empty line that ends it included.  Then section_body()
 * gives the same for a header_only spec on this prefix as on the whole
 * message (a FETCH of headers decrypts only the chunks that hold them). */
bool section_header_complete(const unsigned char *data, size_t len);

/* The length of the top header block at the start of data[0..len): its
 * fields and the empty line that ends it, line break included; 0 when that
 * line is not in data[0..len).  Those bytes alone give the same as the
 * whole message for a header_only spec of section_body() (the store keeps
 * them so that a FETCH of headers opens no file). */
size_t section_header_length(const unsigned char *data, size_t len);

/* A message read from a file, for callers without stored offsets. */
struct section_file {
    struct section_msg msg;   /* valid until section_file_close() */
    struct mime_summary summary; /* what mime_analyse_fd() computed */
    void *map;
    size_t map_len;
};

/* Map the message in fd read-only (a regular file or memfd; same rules
 * as mime_analyse_fd(), which it calls, so mime_init() must have run) and
 * fill *f.  Returns 0, or -1 with *error_r (static text) and *f empty.
 * The caller keeps fd; the mapping stays valid after fd is closed. */
int section_file_open(int fd, struct section_file *f, const char **error_r);

/* Unmap and free what section_file_open() made; accepts an empty or
 * already closed *f. */
void section_file_close(struct section_file *f);

/* The name of a status, for logs and tests ("ok", "bad", ...). */
const char *section_status_name(enum section_status st);

#endif
