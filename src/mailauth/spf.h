/* spf.h — Sender Policy Framework (RFC 7208): is this client allowed to
 * send mail for this domain?
 *
 * spf_check() is RFC 7208's check_host() for the MAIL FROM identity (or,
 * with SPF_ID_HELO, the HELO identity of §2.3), written as a pure function
 * of the request and of a per-message dnsview (dnsview.h).  It never waits
 * for the network: when an answer is missing it returns MAILAUTH_NEED_DNS
 * with the question recorded in the view; the driver resolves the pending
 * questions, puts the answers, and calls spf_check() again with the same
 * request.  Every call re-runs the whole evaluation from the start (it is
 * cheap next to one DNS round trip), so the result depends only on the
 * request and on the answers in the view.  When an answer is missing the
 * evaluation still asks every question it can already name (all the
 * addresses of an MX set, of a PTR set), so a check needs about one round
 * per include/redirect level and per DNS mechanism, not one per name.
 *
 * Everything in RFC 7208 is implemented: all mechanisms (all, include, a,
 * mx, ptr, ip4, ip6, exists) with their dual CIDR lengths, the redirect and
 * exp modifiers (unknown modifiers are checked for syntax and ignored),
 * every macro letter, transformer and delimiter (c, r and t only in
 * explanation text), %{p} through validated PTR names, record selection
 * (exactly one "v=spf1" TXT record; type SPF (99) is never asked, §3.1),
 * syntax errors anywhere in a record → permerror before anything is
 * evaluated (§4.6), DNS errors → temperror (§4.4, §5), the "ptr" mechanism
 * that ignores DNS errors (§5.5).
 *
 * Limits (§4.6.4, §7.3, and ours against hostile records):
 *  - at most 10 terms that cause DNS lookups (include, a, mx, ptr, exists,
 *    redirect), counted as they are evaluated: the 11th is a permerror;
 *  - at most 2 void lookups (NXDOMAIN, or no record of the type) made by
 *    those terms: the 3rd is a permerror; exp= lookups never count;
 *  - an MX set of more than 10 names is a permerror; of a PTR set only the
 *    first 10 names are validated;
 *  - a selected record longer than SPF_RECORD_MAX bytes is a permerror;
 *  - a macro expansion used as a domain name is cut from the left, label by
 *    label, to at most 253 characters (§7.3); a name that is still not a
 *    valid DNS name (empty or 64+ character label, characters outside
 *    printable ASCII, a backslash), or whose expansion produced more than
 *    SPF_EXPAND_MAX characters before the cut (only a hostile record does:
 *    it would cost time on every restart), matches nothing, and is a
 *    permerror as the target of include or redirect;
 *  - an exp= text longer than SPF_RECORD_MAX bytes is ignored, and its
 *    expansion stops when SPF_EXPLANATION_MAX bytes are written;
 *  - sender, HELO and receiver names longer than SPF_INPUT_MAX give "none"
 *    (they cannot be valid mail identities);
 *  - every text in the outcome holds printable ASCII only (other bytes
 *    become '?'); it may hold any of it (quotes, parentheses, ';'), so a
 *    header field writer must still quote or escape it.
 * The elapsed-time limit of §4.6.4 belongs to the driver, which knows how
 * long its DNS rounds take: past it, it should report temperror.  The view
 * itself holds at most DNSVIEW_MAX answers; a check that needs more sees
 * DNS_TEMPFAIL (temperror), which the limits above keep SPF well under. */
#ifndef SM_MAILAUTH_SPF_H
#define SM_MAILAUTH_SPF_H

#include <stdbool.h>
#include <stdint.h>

#include "mailauth/dnsview.h"

#define SPF_RECORD_MAX 4096      /* bytes of the selected TXT record */
#define SPF_INPUT_MAX 512        /* bytes of sender, helo, receiver */
#define SPF_EXPAND_MAX 8192      /* characters a domain-spec may expand to before the cut */
#define SPF_LOOKUP_MAX 10        /* DNS terms per check (§4.6.4) */
#define SPF_VOID_MAX 2           /* void lookups per check (§4.6.4) */
#define SPF_MX_MAX 10            /* MX names per "mx" mechanism */
#define SPF_PTR_MAX 10           /* PTR names validated per "ptr" or %{p} */
#define SPF_DOMAIN_MAX 253
#define SPF_MECHANISM_MAX 127
#define SPF_EXPLANATION_MAX 511
#define SPF_PROBLEM_MAX 255

/* The results of §2.6, in the order of RFC 8601's names. */
enum spf_result {
    SPF_NONE,
    SPF_NEUTRAL,
    SPF_PASS,
    SPF_FAIL,
    SPF_SOFTFAIL,
    SPF_TEMPERROR,
    SPF_PERMERROR,
};

/* Which identity to check (§2.3, §2.4). */
enum spf_identity {
    SPF_ID_MAILFROM, /* <domain> from MAIL FROM; HELO's when the sender is null */
    SPF_ID_HELO,     /* <domain> is the HELO name, <sender> postmaster@helo */
};

struct spf_request {
    enum spf_identity identity;
    int family;              /* AF_INET or AF_INET6 (an IPv4-mapped IPv6 address is IPv4, §5) */
    uint8_t ip[16];          /* AF_INET uses the first 4 bytes */
    const char *helo;        /* the HELO/EHLO argument as sent (NULL: none) */
    const char *sender;      /* MAIL FROM address without <>, "" (or NULL) for the null sender */
    const char *receiver;    /* our host name, for %{r} (NULL: "unknown") */
    int64_t now;             /* seconds since the epoch, for %{t} */
};

struct spf_outcome {
    enum spf_result result;
    char domain[SPF_DOMAIN_MAX + 1];           /* the domain checked (no final dot) */
    char mechanism[SPF_MECHANISM_MAX + 1];     /* the term of the domain's record (or of the
                                                * record it redirected to) that decided:
                                                * "-all", "include:_spf.example.net", ...;
                                                * "" when no term matched (default result) */
    char explanation[SPF_EXPLANATION_MAX + 1]; /* expanded exp= text on fail, or "" */
    char problem[SPF_PROBLEM_MAX + 1];         /* why: permerror, temperror, none */
    unsigned lookups;                          /* DNS terms evaluated */
    unsigned void_lookups;
};

/* Run check_host() for req over the answers in v.  Returns MAILAUTH_DONE
 * with *out filled, or MAILAUTH_NEED_DNS when questions are pending in v
 * (then *out is not meaningful yet: resolve, put the answers, call again
 * with the same request). */
int spf_check(struct dnsview *v, const struct spf_request *req, struct spf_outcome *out);

/* "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"
 * (RFC 8601 §2.7.2); "permerror" for a value out of range. */
const char *spf_result_name(enum spf_result r);

#endif
