/* wire.h — helpers shared by the wire-format decoder (wire.c) and the
 * resolver (resolver.c); not for other modules.
 *
 * A "flat" name is a name in uncompressed wire form (length-prefixed
 * labels, final zero label included), lowercased, at most 255 bytes: the
 * form in which names are compared. */
#ifndef SM_DNS_WIRE_H
#define SM_DNS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/answer.h"

#define DNS_WIRE_NAME_MAX 255  /* RFC 1035 §2.3.4, final zero label included */
#define DNS_WIRE_PKT_MAX 65535 /* largest DNS message (TCP length prefix) */
#define DNS_WIRE_PTR_HOPS 32   /* compression pointers followed in one name */
#define DNS_WIRE_CNAME_MAX 16  /* CNAME links followed from the question name */
#define DNS_WIRE_AN_MAX 1024   /* answer-section records a reply may carry */

/* Convert a presentation-form name ("Mail.Example.org", final dot
 * optional; \DDD and \X escapes allowed) to a flat name.  The root name
 * ("" or "."), names over DNS_NAME_MAX characters and raw bytes outside
 * printable ASCII (spaces, controls, UTF-8: IDNs must come as A-labels)
 * are refused: they cannot be asked.  Returns the flat length, or 0. */
size_t dns_name_flatten(const char *name, uint8_t out[DNS_WIRE_NAME_MAX]);

/* Whether `type` is one the decoder knows (enum dns_type). */
bool dns_type_supported(uint16_t type);

/* The status an RCODE means (RFC 1035 §4.1.1, RFC 2136): 0 → DNS_OK,
 * NXDOMAIN → DNS_NXDOMAIN, SERVFAIL → DNS_TEMPFAIL, others → DNS_PERMFAIL. */
enum dns_status dns_status_from_rcode(unsigned rcode);

#endif
