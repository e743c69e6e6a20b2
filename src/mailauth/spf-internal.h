/* spf-internal.h — what spf.c and spf-macro.c share (not for other modules).
 *
 * spf.c evaluates records; spf-macro.c checks the syntax of macro-strings
 * and domain-specs (RFC 7208 §7.1) and expands them (§7.2, §7.3).  The
 * state of one spf_check() run lives in struct spf_ctx. */
#ifndef SM_MAILAUTH_SPF_INTERNAL_H
#define SM_MAILAUTH_SPF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailauth/spf.h"

#define SPF_NAME_BUF (DNS_NAME_MAX + 1)

/* Step results of the helpers. */
enum { SPF_STEP_OK = 0, SPF_STEP_NEED = 1, SPF_STEP_BAD = -1 };

struct spf_ctx {
    struct dnsview *v;
    struct spf_outcome *out;
    int family;                       /* AF_INET or AF_INET6, after unmapping */
    uint8_t ip[16];
    char sender[SPF_INPUT_MAX + 16];  /* <sender>: "local@domain" ("postmaster" if no local) */
    size_t local_len;                 /* %{l} is sender[0..local_len) */
    size_t domain_at;                 /* %{o} is sender + domain_at */
    char helo[SPF_INPUT_MAX + 1];     /* %{h} */
    char receiver[SPF_INPUT_MAX + 1]; /* %{r} */
    int64_t now;                      /* %{t} */
    unsigned lookups, voids;
    bool need;                        /* a question was left pending in this run */
    /* validated names of <ip> (§5.5), computed once per run */
    bool ptr_done;
    bool ptr_void;                    /* the PTR lookup found nothing */
    size_t n_valid;
    char valid[SPF_PTR_MAX][SPF_NAME_BUF];
};

/* dnsview_get() that notes a missing answer in c->need. */
const struct dns_answer *spf_lookup(struct spf_ctx *c, const char *name, uint16_t type);

/* Fill c->valid with the validated names of <ip>: SPF_STEP_OK (perhaps
 * none: DNS errors only remove names, §5.5) or SPF_STEP_NEED. */
int spf_validated_names(struct spf_ctx *c);

/* Is s[0..len) a macro-string (exp_text: an explanation-string, where SP
 * and the letters c, r, t are allowed too)? */
bool spf_macro_syntax(const char *s, size_t len, bool exp_text);
/* Is s[0..len) a domain-spec: a non-empty macro-string (no c, r, t) that
 * ends in a macro or in "." toplabel ["."]? */
bool spf_domain_spec_syntax(const char *s, size_t len);

/* Expand the domain-spec s[0..len) for <domain> into a name to look up
 * (no final dot, cut to 253 characters by labels, §7.3).  SPF_STEP_OK,
 * SPF_STEP_NEED (%{p} waits for DNS), or SPF_STEP_BAD when the result is
 * not a valid DNS name. */
int spf_expand_domain(struct spf_ctx *c, const char *s, size_t len, const char *domain,
                      char name[SPF_NAME_BUF]);
/* Expand explanation text into out (cut at size-1 bytes, printable ASCII
 * only).  SPF_STEP_OK, SPF_STEP_NEED, or SPF_STEP_BAD on a syntax error. */
int spf_expand_text(struct spf_ctx *c, const char *s, size_t len, const char *domain, char *out,
                    size_t size);

/* Is name (no final dot) a name we may ask: 1 to 253 characters, labels of
 * 1 to 63, printable ASCII or space, no backslash? */
bool spf_name_ok(const char *name);

#endif
