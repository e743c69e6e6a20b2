/* taglist.h — the "tag=value; tag=value" syntax of DKIM-Signature, DKIM
 * key records, DMARC records and the ARC headers (RFC 6376 §3.2).
 *
 * Parsing does not copy: each value points into the input, with the
 * whitespace (WSP, and CRLF folding) around it removed; whitespace inside a
 * value is kept (taglist_compact() removes it where the RFC ignores it,
 * e.g. base64 in b= and p=).  A duplicate tag name, a name that is not
 * ALPHA *(ALPHA / DIGIT / "_"), a value with a character outside
 * VCHAR/WSP except ";", or more than TAGLIST_MAX tags make the whole list
 * invalid, as RFC 6376 requires. */
#ifndef SM_MAILAUTH_TAGLIST_H
#define SM_MAILAUTH_TAGLIST_H

#include <stdbool.h>
#include <stddef.h>

#define TAGLIST_MAX 64
#define TAGLIST_NAME_MAX 32

struct tag {
    char name[TAGLIST_NAME_MAX + 1]; /* as written (tag names are case-sensitive) */
    const char *value;               /* into the input; not NUL-terminated */
    size_t len;
};

struct taglist {
    size_t n;
    struct tag t[TAGLIST_MAX];
};

/* Parse s[0..len).  Returns 0, or -1 when the list is invalid. */
int taglist_parse(const char *s, size_t len, struct taglist *out);
/* The tag called name, or NULL. */
const struct tag *taglist_get(const struct taglist *l, const char *name);
/* Copy value into dst (cap bytes, NUL-terminated) without any whitespace.
 * Returns the length, or -1 when it does not fit. */
long taglist_compact(const char *value, size_t len, char *dst, size_t cap);

#endif
