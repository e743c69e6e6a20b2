/* msgstream.h — a message streamed in pieces, split into header fields
 * and body on the fly.
 *
 * smtpd never holds a whole message: it writes each piece of DATA/BDAT to
 * the spool as it arrives.  The checks at end of data need the header
 * fields one by one (DKIM, ARC, the From address for DMARC), the body as a
 * stream (body hashes), and the chance to drop a header field before it is
 * stored (an Authentication-Results field that claims our authserv-id,
 * RFC 8601 §5).  A msgstream sits between the protocol engine and the
 * spool and does exactly that: bytes go in, header fields go to the field
 * callback (keep or drop), kept bytes and the body go out.
 *
 * Input is the message as the engine hands it: CRLF line ends, dot
 * stuffing removed.  The header ends at the first empty line; a message
 * without one is all header.  A field is a line that does not start with
 * a space or tab, with the continuation lines that follow.
 *
 * Bounds: a field is buffered until it is complete, at most field_max
 * bytes.  A longer field is handed to the field callback truncated (with
 * `complete` false) so the caller can still decide on its name: kept, its
 * bytes then stream through; dropped, the rest of it is discarded too.
 * After max_fields fields, further fields stream through without
 * callbacks (the counters say so).  Memory is O(field_max). */
#ifndef SM_MAILAUTH_MSGSTREAM_H
#define SM_MAILAUTH_MSGSTREAM_H

#include <stdbool.h>
#include <stddef.h>

struct msgstream;

struct msgstream_sink {
    /* A header field: len bytes with its final CRLF when complete.
     * Return true to keep it in the output, false to drop it. */
    bool (*field)(void *arg, const char *field, size_t len, bool complete);
    /* The empty line that ends the header was seen (or the input ended). */
    void (*headers_done)(void *arg);
    /* Body bytes (after the empty line). */
    void (*body)(void *arg, const void *p, size_t n);
    /* The bytes to store, in order; non-zero stops the stream (an error). */
    int (*out)(void *arg, const void *p, size_t n);
};

struct msgstream *msgstream_new(const struct msgstream_sink *sink, void *arg, size_t field_max,
                                size_t max_fields);
/* Feed n bytes.  Returns 0, or -1 once out failed (and ever after). */
int msgstream_write(struct msgstream *m, const void *p, size_t n);
/* The input is complete: flush the last field, end the header if it had
 * not ended.  Returns 0 or -1 as msgstream_write(). */
int msgstream_end(struct msgstream *m);
/* Header fields seen, and those past max_fields that got no callback. */
size_t msgstream_fields(const struct msgstream *m);
size_t msgstream_fields_unchecked(const struct msgstream *m);
void msgstream_free(struct msgstream **m);

#endif
