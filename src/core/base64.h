/* base64.h — base64 (RFC 4648 §4, the standard alphabet with padding).
 *
 * One decoder for every place that reads base64 from outside (SASL
 * responses, DKIM and ARC signatures and key records): strict about the
 * alphabet, the padding (only at the end, at most two, the length a
 * multiple of four) and the output capacity.  DKIM lets folding whitespace
 * appear anywhere inside a value (RFC 6376 §3.5); BASE64_SKIP_FWS allows
 * exactly that and nothing else. */
#ifndef SM_BASE64_H
#define SM_BASE64_H

#include <stddef.h>
#include <stdint.h>

struct sm_buf;

#define BASE64_STRICT 0
#define BASE64_SKIP_FWS 1 /* ignore space, tab, CR and LF anywhere */

/* Decode s[0..len) into out (at most cap bytes).  Returns the byte count,
 * or -1 when the input is not base64 or does not fit. */
long base64_decode(const char *s, size_t len, uint8_t *out, size_t cap, int flags);
/* Append the base64 of p[0..n) to out. */
void base64_encode(const uint8_t *p, size_t n, struct sm_buf *out);

#endif
