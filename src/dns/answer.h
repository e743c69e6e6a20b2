/* answer.h — one DNS answer as the rest of sealmail sees it.
 *
 * The resolver (resolver.h) turns libunbound's wire-format reply into this
 * plain structure; mail-authentication code (mailauth/) only reads it, and
 * tests build it by hand.  Only the record types sealmail asks for are
 * decoded: A, AAAA, MX, TXT, PTR, TLSA (CNAME chains are followed by the
 * resolver; only records of the asked type at the final name are kept).
 *
 * Everything is bounded: at most DNS_ANSWER_RR_MAX records, names at most
 * DNS_NAME_MAX characters in presentation form (lowercase, no final dot),
 * a TXT record's strings concatenated into at most DNS_TXT_MAX bytes. */
#ifndef SM_DNS_ANSWER_H
#define SM_DNS_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_NAME_MAX 253
#define DNS_TXT_MAX 65535
#define DNS_ANSWER_RR_MAX 256

enum dns_type {
    DNS_T_A = 1,
    DNS_T_PTR = 12,
    DNS_T_MX = 15,
    DNS_T_TXT = 16,
    DNS_T_AAAA = 28,
    DNS_T_TLSA = 52,
};

enum dns_status {
    DNS_OK,        /* the name exists; n may be 0 (NODATA: no record of the type) */
    DNS_NXDOMAIN,  /* the name does not exist */
    DNS_TEMPFAIL,  /* SERVFAIL, timeout, DNSSEC bogus, network: try again later */
    DNS_PERMFAIL,  /* REFUSED/FORMERR/malformed reply or a name that cannot be asked */
};

struct dns_rr {
    uint16_t type;          /* enum dns_type */
    uint16_t pref;          /* MX preference */
    uint8_t addr[16];       /* A (4 bytes used) or AAAA */
    char *name;             /* MX exchange or PTR target (lowercase, no final dot) */
    uint8_t *data;          /* TXT: the strings joined (NUL added, not counted);
                             * TLSA: the certificate association data */
    size_t len;             /* bytes in data */
    uint8_t tlsa_usage, tlsa_selector, tlsa_mtype;
};

struct dns_answer {
    enum dns_status status;
    bool secure;            /* DNSSEC validated (never for local test data) */
    bool bogus;             /* DNSSEC validation failed (status is DNS_TEMPFAIL) */
    uint32_t ttl;           /* smallest TTL of the kept records, 0 when none */
    size_t n;
    struct dns_rr *rr;      /* n records, in answer order */
};

/* Decode a wire-format reply (as libunbound hands it) to a question for
 * qname/qtype.  Never fails: a malformed packet gives DNS_PERMFAIL.
 * Free with dns_answer_free(). */
struct dns_answer *dns_answer_from_wire(const uint8_t *pkt, size_t len, const char *qname,
                                        uint16_t qtype);
/* An answer with a status and no records (errors, tests). */
struct dns_answer *dns_answer_new(enum dns_status status);
/* Append a record (tests and the decoder); copies name and data. */
void dns_answer_add(struct dns_answer *a, const struct dns_rr *rr);
/* A deep copy. */
struct dns_answer *dns_answer_dup(const struct dns_answer *a);
/* Free; accepts NULL. */
void dns_answer_free(struct dns_answer *a);

#endif
