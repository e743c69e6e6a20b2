/* canon.h — DKIM canonicalisation (RFC 6376 §3.4), shared by DKIM and ARC.
 *
 * Header fields are canonicalised one at a time, "simple" (the bytes as
 * received) or "relaxed" (name lowercased, folding removed, runs of
 * whitespace made one space, whitespace around the colon and at the end
 * dropped).
 *
 * Bodies are canonicalised as a stream, straight into a message digest:
 * the message is never held.  The state is bounded whatever the input:
 * trailing empty lines (which both algorithms ignore) are only *counted*
 * and written out when content follows them; relaxed whitespace is one
 * flag.  The l= body length limit applies to the canonical output: bytes
 * past it are counted but not hashed, so the caller can tell that the
 * message carries content the signature does not cover.
 *
 * Line ends are CRLF only: a bare CR or LF is ordinary content (smtpd
 * refuses them anyway).  The last line of a relaxed body loses its
 * trailing whitespace even when no CRLF ends it (RFC 6376 §3.4.4 a). */
#ifndef SM_MAILAUTH_CANON_H
#define SM_MAILAUTH_CANON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "core/buf.h"

enum canon_alg {
    CANON_SIMPLE,
    CANON_RELAXED,
};

/* Append to out the canonical form of one raw header field (name, colon,
 * value with its folding, normally a final CRLF).  With crlf false the
 * final CRLF is left out: that is how a signature's own field is hashed.
 * out should have no maximum (the output is at most len + 2 bytes). */
void canon_header(enum canon_alg alg, const char *field, size_t len, bool crlf,
                  struct sm_buf *out);

#define CANON_NO_LIMIT UINT64_MAX
#define CANON_OUTBUF 4096

struct canon_body {
    enum canon_alg alg;
    EVP_MD_CTX *md;         /* the digest being fed (owned) */
    uint64_t limit;         /* l=, or CANON_NO_LIMIT */
    uint64_t length;        /* canonical bytes produced so far, hashed or not */
    uint64_t pending_crlf;  /* line ends held back until content follows */
    bool cr;                /* the last byte was a CR: line end or content? */
    bool wsp;               /* relaxed: whitespace held back */
    bool content;           /* any content written: the body is not empty */
    bool done;
    size_t n;
    unsigned char out[CANON_OUTBUF];
};

/* Start a body digest with md (EVP_sha256() in production). */
void canon_body_init(struct canon_body *cb, enum canon_alg alg, const EVP_MD *md,
                     uint64_t limit);
/* Feed n more bytes of the body (any split). */
void canon_body_update(struct canon_body *cb, const void *p, size_t n);
/* Finish: the digest goes to digest (EVP_MAX_MD_SIZE bytes), its length to
 * *dlen.  After this, cb->length is the whole canonical body length, so
 * cb->length > cb->limit says that content past l= exists. */
void canon_body_final(struct canon_body *cb, unsigned char *digest, unsigned *dlen);
/* Release the digest context (also after final). */
void canon_body_free(struct canon_body *cb);

#endif
