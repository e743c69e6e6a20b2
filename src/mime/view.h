/* view.h — a message as the web page shows it (disposable inboxes, #7).
 *
 * mime_view_fd() picks, from one RFC 5322 message, what a reader sees:
 * the main header fields decoded to one line of UTF-8 each, the first
 * text/plain and the first text/html part that are not attachments
 * (decoded from their transfer encoding and charset to UTF-8, markup
 * kept: the caller sanitises HTML, html/sanitize.h), and every other part
 * as an attachment (name, type, Content-ID, size).  mime_view_part_fd()
 * decodes one attachment's bytes for download.
 *
 * Attached messages (message/rfc822) are one attachment each; their
 * insides are not walked.  Part numbers are positions in the part tree in
 * document order, stable for a given message.
 *
 * Limits: the message structure as mime.h (depth, parts, header sizes);
 * each body text at most max_text bytes (cut at a UTF-8 boundary, with
 * *_truncated set); at most MIME_VIEW_ATTACHMENTS_MAX attachments listed;
 * a decoded attachment at most `max` bytes.  Filenames are made valid
 * UTF-8 without control characters, path separators or leading dots.
 * Thread-safe after mime_init(). */
#ifndef SM_MIME_VIEW_H
#define SM_MIME_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define MIME_VIEW_ATTACHMENTS_MAX 256
#define MIME_VIEW_FILENAME_MAX 200 /* bytes */

struct mime_view_attachment {
    unsigned part;      /* for mime_view_part_fd() */
    char *filename;     /* "" when the part names none */
    char *content_type; /* "type/subtype", lowercase */
    char *content_id;   /* without the angle brackets, "" when none */
    uint64_t size;      /* bytes of the encoded body (about 4/3 of base64-decoded) */
};

struct mime_view {
    char *subject, *from, *to, *cc, *reply_to, *date, *message_id; /* "" when absent */
    int64_t date_unix;      /* 0 when absent or unreadable */
    char *text, *html;      /* NULL when the message has none */
    size_t text_len, html_len;
    bool text_truncated, html_truncated;
    struct mime_view_attachment *attachments;
    unsigned n_attachments;
    bool attachments_truncated;
};

/* Build the view of the message in fd (a regular file, read from offset 0
 * to its end, the caller's offset untouched).  0, or -1 with *error_r. */
int mime_view_fd(int fd, size_t max_text, struct mime_view *out, const char **error_r);
void mime_view_free(struct mime_view *v);

/* Decode the part numbered part into out (initialised by the caller; at
 * most max bytes) and describe it in *info (free with
 * mime_view_attachment_free()).  1 done, 0 no such part (or one that is
 * not a leaf or message), -1 with *error_r (unreadable, or larger than
 * max decoded). */
int mime_view_part_fd(int fd, unsigned part, size_t max, struct sm_buf *out,
                      struct mime_view_attachment *info, const char **error_r);
void mime_view_attachment_free(struct mime_view_attachment *a);

#endif
