/* mime.h — what an IMAP server stores about a message at delivery time.
 *
 * mime_analyse_fd() reads one RFC 5322 message and computes, once, the
 * IMAP ENVELOPE, BODYSTRUCTURE and BODY response texts, the sort keys
 * (date, subject, first From/To/Cc address, Message-ID), decoded text for
 * full-text search, and the byte offsets of every MIME part (what FETCH
 * BODY[section] needs later).  The results are plain strings and numbers
 * meant to be cached in the encrypted mailbox database; GMime stays inside
 * this module.
 *
 * Conventions of the IMAP texts (RFC 9051 §7.5.2, RFC 3501 §7.4.2), which
 * follow Dovecot 2.3 byte for byte wherever the RFCs leave a choice
 * (tests/unit/data/mime/README.md lists the deliberate differences):
 *  - Every string is a quoted string ("..." with \" and \\ escaped) when it
 *    is 7-bit and has no CR or LF; otherwise it is a literal {n}\r\n<bytes>.
 *    Strings with more than four characters to escape are also sent as
 *    literals (shorter).  NUL never appears: a NUL in a header value
 *    becomes U+FFFD (in an address field it ends the address list).  The
 *    texts may therefore contain CRLF, but only inside literals, and may
 *    contain 8-bit bytes (raw header bytes, RFC 2231 values decoded to
 *    UTF-8), again only inside literals.
 *  - ENVELOPE strings are the raw header values (RFC 2047 encoded words are
 *    not decoded; that is the client's job).  Subject and display names are
 *    "for humans": white space runs become one space, ends are trimmed.
 *    Date, Message-ID, In-Reply-To are unfolded.  The last Date, Subject,
 *    Message-ID and In-Reply-To win; address headers that occur more than
 *    once are concatenated.  Sender and Reply-To default to From.  Broken
 *    addresses get the placeholders MISSING_MAILBOX, MISSING_DOMAIN or
 *    SYNTAX_ERROR so clients always see four fields.
 *  - BODYSTRUCTURE sizes are octets of the body as stored, counting every
 *    bare LF as CRLF (the IMAP form of the message: a message stored with
 *    LF line ends is served with CRLF).  The line break before a boundary
 *    belongs to the boundary when it ends a body line (not when it ends a
 *    header line or the header/body separator).  Text and message/rfc822
 *    parts carry line counts.  Parameter values are RFC 2231-decoded
 *    (continuations joined, charset converted to UTF-8), as RFC 9051 asks;
 *    GMime also decodes RFC 2047 words that mailers put in quoted values.
 *    Text parts without a charset get ("charset" "us-ascii").  An invalid
 *    Content-Type counts as text/plain (RFC 2045 §5.2).  A multipart without
 *    parts is shown with one empty text/plain part, as the grammar needs at
 *    least one.
 *
 * Structure and limits: boundaries are matched as line prefixes, innermost
 * and longest first (RFC 2046 §5.1.1); message/rfc822 bodies are parsed
 * unless base64/quoted-printable/uuencode-encoded; other message/ subtypes
 * are opaque.  Nesting deeper than MIME_DEPTH_MAX levels, parts past
 * MIME_PARTS_MAX, header values over MIME_HEADER_MAX bytes and more than
 * MIME_ADDRESSES_MAX addresses are not analysed further (truncated is set):
 * a too-deep multipart or message is shown as application/octet-stream
 * with its full size.  Everything is iterative or bounded by MIME_DEPTH_MAX,
 * so normal thread stacks suffice (256 KiB is tested); memory is O(parts)
 * plus the outputs, and nothing accumulates across calls: GMime caches every
 * charset name it meets for good, so only names iconv or GMime already
 * knows are passed to it (charset.c).
 *
 * Thread safety: mime_init() once in main before threads start; after
 * that mime_analyse_fd() may run in any number of threads at once.  GMime
 * reads raw 8-bit parameter values in the process locale's charset; sealmail
 * never calls setlocale(), so they stay as they are (shown in literals). */
#ifndef SM_MIME_H
#define SM_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIME_DEPTH_MAX 100                 /* nesting levels (Dovecot's default) */
#define MIME_PARTS_MAX 10000               /* MIME parts per message */
#define MIME_HEADER_MAX 65536              /* bytes of one header value used */
#define MIME_ADDRESSES_MAX 10000           /* addresses in all envelopes together */
#define MIME_SEARCH_HEADERS_MAX 65536      /* bytes of search_headers */
#define MIME_SEARCH_TEXT_MAX (1024 * 1024) /* bytes of search_text */

/* Where one MIME part lies in the message file.  Offsets are in the
 * stored bytes (not CRLF-normalised). */
struct mime_part_offsets {
    char *section;         /* IMAP section number: "1", "2.1", ... */
    uint64_t header_start; /* its MIME header (== body_start when none) */
    uint64_t body_start;   /* first byte of the body */
    uint64_t body_end;     /* one past the body; the CRLF before a boundary is not in it */
};

struct mime_summary {
    uint64_t size;         /* octets of the message in IMAP form, every bare LF
                            * counted as CRLF: RFC822.SIZE, what FETCH BODY[]
                            * and POP3 RETR send (RFC 9051 §2.3.4, RFC 1939 §11) */
    char *envelope;        /* IMAP ENVELOPE: "(date subject from ... message-id)" */
    char *bodystructure;   /* IMAP BODYSTRUCTURE, extensible form */
    char *body;            /* IMAP BODY, non-extensible form */
    int64_t date;          /* Date: as unix time; 0 if absent or unparseable */
    char *subject;         /* decoded to UTF-8, one line; "" if none */
    char *from, *to, *cc;  /* first address, lowercase addr-spec; "" if none */
    char *message_id;      /* unfolded Message-ID value; "" if none */
    char *search_headers;  /* "Name: decoded value\n" lines, UTF-8, bounded */
    char *search_text;     /* decoded UTF-8 text of text/plain and text/html
                            * (tags stripped) parts that are not attachments,
                            * parts separated by "\n", bounded */
    unsigned n_parts;      /* MIME parts (nodes of the BODYSTRUCTURE) */
    bool truncated;        /* a structural limit (depth, parts, header, addresses) was hit */
    bool search_truncated; /* search_headers or search_text was cut at its bound */
    struct mime_part_offsets *parts; /* n_sections entries, document order */
    unsigned n_sections;
};

/* Initialise GMime once (g_mime_init()).  Call from main before threads
 * start; further calls do nothing.  Returns 0. */
int mime_init(void);

/* Analyse the message in fd: a seekable file (regular file or memfd),
 * read from offset 0 to its end with mmap; the file offset is not used or
 * changed, the caller keeps ownership of fd, and the file must not shrink
 * during the call (that would be SIGBUS).  Fills *out (which need not
 * be initialised) and returns 0, or returns -1 with *error_r (static text)
 * when the file cannot be read; *out is then empty and safe to free.
 * Malformed messages are not errors: they are analysed leniently and the
 * texts are always well-formed IMAP syntax.  Free with mime_summary_free(). */
int mime_analyse_fd(int fd, struct mime_summary *out, const char **error_r);

/* Free everything mime_analyse_fd() allocated in s and zero it; accepts a
 * zeroed or already freed summary. */
void mime_summary_free(struct mime_summary *s);

/* The i;unicode-casemap collation key of the UTF-8 text s (RFC 5051 §2,
 * which SORT must use, RFC 5256 §7): every character mapped to its
 * titlecase (the simple mapping), then the whole text in full canonical
 * decomposition (NFD); keys compare with strcmp().  Bytes that are not
 * valid UTF-8 are read as Latin-1, controls become spaces.  malloc'd,
 * never NULL; thread-safe. */
char *mime_casemap(const char *s);

/* The base subject of RFC 5256 §2.1 (what SORT (SUBJECT) compares) of a
 * decoded subject: whitespace runs made one space; "Re:", "Fw:", "Fwd:"
 * leaders, "[...]" blobs, "(fwd)" trailers and "[fwd: ...]" wrappers
 * removed as the RFC's algorithm says.  Not case folded (mime_casemap()
 * does that).  malloc'd, never NULL. */
char *mime_base_subject(const char *subject);

/* RFC 5957 §3, the display sort value of the first address of field
 * (MIME_ENV_FROM or MIME_ENV_TO) of an ENVELOPE text made by
 * mime_analyse_fd(): its name with RFC 2047 words decoded, or when that is
 * empty "mailbox@host", or the mailbox, or "".  malloc'd, never NULL. */
#define MIME_ENV_FROM 2
#define MIME_ENV_TO 5
char *mime_envelope_display(const char *envelope, unsigned field);

/* Release GMime's global state (g_mime_shutdown()); for tests and tools
 * that want a clean leak report.  mime_init() must not be called again. */
void mime_shutdown(void);

#endif
