/* dmarc.h — DMARC (RFC 7489): policy records, discovery, alignment and the
 * policy to apply to one message.
 *
 * dmarc_check() is a pure function of the message's From header field(s),
 * the SPF and DKIM results the caller already has, and a dnsview (see
 * dnsview.h): when an answer is missing it returns MAILAUTH_NEED_DNS and
 * the caller resolves the pending questions and calls it again.  pct
 * sampling uses a random draw the caller provides, so a run is
 * deterministic.
 *
 * What is checked (RFC 7489 §6.6):
 *  - the author domain is taken from the From field (dmarc_from_parse());
 *    U-labels are turned into A-labels (§6.6.1);
 *  - the record is looked up at _dmarc.<author domain>; when no DMARC record
 *    is there, at _dmarc.<organisational domain> (psl.h), whose sp= then
 *    applies (§6.6.3).  TXT records that do not start with v=DMARC1 are
 *    ignored; several DMARC records at a name give result none and no
 *    further lookup; NXDOMAIN, no record, or a name that cannot be asked
 *    (DNS_PERMFAIL) count as "no record"; DNS_TEMPFAIL gives temperror;
 *  - a record without a valid p= (or with an invalid sp=) is treated as
 *    "v=DMARC1; p=none" when rua= holds a valid URI, and is otherwise
 *    invalid: result permerror, nothing applied (§6.6.3 step 6);
 *  - SPF is aligned when it passed and the domain it checked (MAIL FROM's,
 *    or HELO's when MAIL FROM was null) matches the author domain: exactly
 *    under aspf=s, by organisational domain under aspf=r (the default).
 *    DKIM likewise with each passing signature's d= and adkim=;
 *  - pass when either is aligned, else fail; on fail the requested policy
 *    (p=, or sp= for a subdomain) applies to pct= percent of messages; the
 *    others get the next weaker one (reject→quarantine→none, §6.6.4).
 *
 * From fields (§6.6.1): a message needs exactly one From field with
 * exactly one author domain.  What happens otherwise is in
 * enum dmarc_from_status: several mailboxes or several From fields are
 * each checked and the worst outcome is kept (a failing one with the
 * strictest disposition first), so adding an address cannot dodge a
 * policy; no From field, one that cannot be parsed, or one without a
 * usable domain gives result none with a status that says why.  RFC 5322
 * allows neither, and callers SHOULD reject such messages (5.7.1 / 5.6.0).
 *
 * Limits: records of at most DMARC_RECORD_MAX bytes (longer: permerror);
 * rua/ruf kept up to DMARC_URIS_MAX bytes (cut at a URI boundary); From
 * values of at most DMARC_FROM_MAX bytes each, DMARC_FROM_FIELDS_MAX
 * fields, DMARC_FROM_ADDRS_MAX mailboxes, DMARC_FROM_DOMAINS_MAX distinct
 * domains and comments nested DMARC_COMMENT_DEPTH deep. */
#ifndef SM_MAILAUTH_DMARC_H
#define SM_MAILAUTH_DMARC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/answer.h"
#include "mailauth/authres.h"
#include "mailauth/dnsview.h"
#include "mailauth/psl.h"

#define DMARC_RECORD_MAX 4096
#define DMARC_URIS_MAX 1024
#define DMARC_FROM_MAX 16384
#define DMARC_FROM_FIELDS_MAX 4
#define DMARC_FROM_ADDRS_MAX 64
#define DMARC_FROM_DOMAINS_MAX 8
#define DMARC_COMMENT_DEPTH 8

enum dmarc_policy {
    DMARC_POLICY_NONE,
    DMARC_POLICY_QUARANTINE,
    DMARC_POLICY_REJECT,
};

enum dmarc_align {
    DMARC_ALIGN_RELAXED,
    DMARC_ALIGN_STRICT,
};

/* fo= options (failure reporting; stored only). */
enum {
    DMARC_FO_0 = 1,
    DMARC_FO_1 = 2,
    DMARC_FO_D = 4,
    DMARC_FO_S = 8,
};

struct dmarc_record {
    enum dmarc_policy p;
    enum dmarc_policy sp;     /* p when sp= is absent */
    bool p_assumed;           /* p= missing/invalid or sp= invalid, rua= valid:
                               * read as p=none (RFC 7489 §6.6.3 step 6.1) */
    unsigned pct;             /* 0..100; 100 when absent or invalid */
    enum dmarc_align adkim, aspf;
    unsigned fo;              /* DMARC_FO_* bits; DMARC_FO_0 when absent or invalid */
    uint32_t ri;              /* report interval in seconds; 86400 by default */
    char rua[DMARC_URIS_MAX + 1]; /* as published, whitespace trimmed ("" when absent) */
    char ruf[DMARC_URIS_MAX + 1];
};

enum dmarc_record_status {
    DMARC_RECORD_OK = 0,
    DMARC_RECORD_NOT_DMARC = -1, /* does not start with v=DMARC1: to be ignored */
    DMARC_RECORD_INVALID = -2,   /* a DMARC record that cannot be used (permerror) */
};

/* Whether the TXT text s[0..len) starts with "v=DMARC1" (WSP allowed around
 * "=" and before; "v" in any case, "DMARC1" exactly), followed by ";", WSP
 * or its end. */
bool dmarc_is_record(const char *s, size_t len);
/* Parse a DMARC record.  Unknown tags are ignored and invalid pct=, adkim=,
 * aspf=, fo=, ri= fall back to their defaults (§6.3); a list that is not a
 * valid tag list (taglist.h: duplicate tag, bad byte, …), a tag named twice
 * in different case, a record longer than DMARC_RECORD_MAX, or p=/sp=
 * trouble without a valid rua= make it DMARC_RECORD_INVALID.  *out is set
 * only on DMARC_RECORD_OK. */
enum dmarc_record_status dmarc_record_parse(const char *s, size_t len, struct dmarc_record *out);

/* What the From header fields gave. */
enum dmarc_from_status {
    DMARC_FROM_OK,           /* one field, one author domain (maybe several mailboxes) */
    DMARC_FROM_MULTI_DOMAIN, /* one field, mailboxes in several domains: each checked */
    DMARC_FROM_MULTI_FIELD,  /* several From fields (RFC 5322 allows one): the domains
                              * of all of them checked */
    DMARC_FROM_ABSENT,       /* no From field: result none */
    DMARC_FROM_INVALID,      /* a field that cannot be parsed or is too long, a mailbox
                              * without a usable domain (domain literal, bad name), a
                              * group without mailboxes, too many fields, mailboxes or
                              * domains: result none */
};

struct dmarc_from {
    enum dmarc_from_status status;
    size_t n;                 /* distinct domains; 0 for ABSENT and INVALID */
    char domain[DMARC_FROM_DOMAINS_MAX][DNS_NAME_MAX + 1]; /* A-labels, lowercase */
};

/* Extract the author domain(s) from the values of the message's From
 * header fields (fields[0..n), each NUL-terminated, folding CRLFs allowed;
 * RFC 5322 §3.4 with RFC 6854 groups and RFC 6532 UTF-8).  Returns
 * out->status. */
enum dmarc_from_status dmarc_from_parse(const char *const *fields, size_t n,
                                        struct dmarc_from *out);

/* A mailbox of a From field: its local part as written (quotes kept,
 * comments and folding around it dropped; len bytes, not NUL-terminated)
 * and its domain (A-label, lowercase). */
typedef void dmarc_mailbox_fn(void *arg, const char *local, size_t len, const char *domain);
/* dmarc_from_parse() that also tells fn of each mailbox as it is parsed
 * (a field that later turns out invalid may have told some already: act
 * on the result only when the status is not DMARC_FROM_INVALID).  Used by
 * submission, which checks that every author is the sender. */
enum dmarc_from_status dmarc_from_mailboxes(const char *const *fields, size_t n,
                                            struct dmarc_from *out, dmarc_mailbox_fn *fn,
                                            void *arg);

enum dmarc_result {
    DMARC_RESULT_NONE,       /* no policy published, or no author domain */
    DMARC_RESULT_PASS,
    DMARC_RESULT_FAIL,
    DMARC_RESULT_TEMPERROR,  /* a DNS lookup failed for now: try later (4.7.x) or accept */
    DMARC_RESULT_PERMERROR,  /* the published record is invalid */
};

struct dmarc_input {
    const char *const *from;  /* value of every From header field of the message */
    size_t n_from;
    const char *spf_domain;   /* domain SPF checked: MAIL FROM's, or HELO's when MAIL FROM
                               * was null; NULL when SPF was not checked */
    bool spf_pass;            /* the SPF result for spf_domain was pass */
    const char *const *dkim_domains; /* d= of every DKIM signature that passed */
    size_t n_dkim;
    unsigned pct_draw;        /* uniform random in [0, 100): pct= applies when draw < pct */
};

struct dmarc_outcome {
    enum dmarc_result result;
    enum dmarc_from_status from_status;
    char from_domain[DNS_NAME_MAX + 1];   /* the author domain the result is about
                                           * (header.from); "" when none */
    char policy_domain[DNS_NAME_MAX + 1]; /* where the record was found, or "" */
    bool have_record;         /* record below is valid (pass, fail) */
    bool subdomain;           /* the record came from the organisational domain: sp= */
    struct dmarc_record record;
    enum dmarc_policy policy;      /* requested: p= or sp= (NONE without a record) */
    enum dmarc_policy disposition; /* to apply now: the policy on fail, after sampling;
                                    * NONE for every other result */
    bool sampled_out;         /* pct= spared this failing message one step */
    bool spf_aligned;
    bool dkim_aligned;
    char dkim_domain[DNS_NAME_MAX + 1]; /* the first aligned passing d=, or "" */
};

/* Run DMARC for one message.  Returns MAILAUTH_DONE with *out filled, or
 * MAILAUTH_NEED_DNS (questions pending in v; *out is then meaningless). */
int dmarc_check(struct dnsview *v, const struct psl *psl, const struct dmarc_input *in,
                struct dmarc_outcome *out);

/* Whether domain is aligned with the author domain under mode: equal
 * without case (strict), or with equal organisational domains (relaxed; a
 * domain that is itself a public suffix is its own).  Both may be in
 * U-labels or A-labels and end with a dot. */
bool dmarc_aligned(const struct psl *psl, const char *author, const char *domain,
                   enum dmarc_align mode);

/* Fill r with the Authentication-Results entry for o (authres.h): method
 * dmarc, the result, a comment "p=… sp=… dis=…" when a record was found
 * (in buf, which must outlive r; 64 bytes are enough), header.from (RFC
 * 7489 §11.2) when there was an author domain, and policy.dmarc with the
 * disposition on fail.  The strings point into o and buf. */
void dmarc_authres(const struct dmarc_outcome *o, struct authres_result *r, char *buf,
                   size_t cap);

/* "none", "pass", … as Authentication-Results writes them (RFC 7489 §11.2). */
const char *dmarc_result_name(enum dmarc_result r);
/* "none", "quarantine", "reject". */
const char *dmarc_policy_name(enum dmarc_policy p);

#endif
