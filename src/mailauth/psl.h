/* psl.h — the Public Suffix List and organisational domains (RFC 7489 §3.2).
 *
 * DMARC asks, for a domain such as "mail.example.co.uk", which part of it
 * was registered by one owner ("example.co.uk"): that is the domain whose
 * policy applies when the From domain publishes none, and the unit of
 * relaxed alignment.  The answer comes from the Public Suffix List, which
 * Debian ships in the package publicsuffix; it is loaded once at start
 * (PSL_DEFAULT_PATH, or the path the configuration names) into a hash set
 * and is read-only afterwards, so one struct psl can be shared by every
 * thread.
 *
 * Rules follow publicsuffix.org/list: normal rules ("co.uk"), wildcards
 * ("*.kawasaki.jp": any one label under it), exceptions ("!city.kobe.jp":
 * not a suffix although a wildcard covers it) and the implicit default
 * rule "*" (an unlisted TLD is a public suffix).  Both the ICANN and the
 * PRIVATE sections are used, as the PSL test cases and common DMARC
 * practice do.
 *
 * IDN: the list holds U-labels (UTF-8).  They are turned into A-labels
 * ("xn--…", RFC 3492 Punycode) when the list is loaded, and so is every
 * non-ASCII label of a domain that is looked up; ASCII is compared without
 * case.  A domain may therefore be asked for in U-labels, in A-labels or
 * mixed, and the answer is given in the labels the caller used.  No IDNA
 * mapping is done beyond ASCII case folding (no NFC, no case folding of
 * non-ASCII letters): the list is already in that form, and DMARC asks with
 * A-labels (RFC 7489 §6.6.1).  An "xn--" label is not decoded or checked:
 * an invalid one simply matches no rule but the default.  The
 * public_suffix_list.dafsa file of the package is not used.
 *
 * Limits: a list file of at most PSL_FILE_MAX bytes; lines longer than
 * PSL_LINE_MAX or rules that are not valid names are skipped; names of at
 * most DNS_NAME_MAX characters (in A-label form) and labels of at most 63. */
#ifndef SM_MAILAUTH_PSL_H
#define SM_MAILAUTH_PSL_H

#include <stddef.h>

#define PSL_DEFAULT_PATH "/usr/share/publicsuffix/public_suffix_list.dat"
#define PSL_FILE_MAX (16u << 20)
#define PSL_LINE_MAX 1024

/* psl_org_domain() and psl_domain_to_ascii() results below zero. */
enum {
    PSL_NONE = -1,    /* the domain is itself a public suffix: it has no registrable domain */
    PSL_INVALID = -2, /* not a usable domain name (empty label, bad byte, too long, or cap) */
};

struct psl;

/* Load the list at path (a PSL in publicsuffix.org format).  Returns the
 * set, or NULL with a static message in *error_r when the file cannot be
 * read, is larger than PSL_FILE_MAX, or holds no rule.  Free with
 * psl_free(). */
struct psl *psl_load(const char *path, const char **error_r);
/* The same from text in memory (tests, fuzzing). */
struct psl *psl_parse(const char *text, size_t len, const char **error_r);
/* Free the set and set *p to NULL; accepts NULL and *p == NULL. */
void psl_free(struct psl **p);
/* Number of rules held (after skipping invalid lines). */
size_t psl_rule_count(const struct psl *psl);

/* The organisational (registrable) domain of domain: the public suffix
 * that matches it plus one label (RFC 7489 §3.2).  domain may end with one
 * dot.  On success the name is written to out (NUL-terminated, ASCII
 * lowercased, in the label forms of the input) and its length returned;
 * otherwise PSL_NONE when domain is itself a public suffix ("com",
 * "co.uk", an unlisted TLD), PSL_INVALID when it is not a valid name or
 * does not fit cap (cap > DNS_NAME_MAX is always enough for ASCII
 * input). */
int psl_org_domain(const struct psl *psl, const char *domain, char *out, size_t cap);

/* domain in ASCII: lowercase, U-labels turned into A-labels, no final dot.
 * Returns the length written to out, or PSL_INVALID (invalid UTF-8, empty
 * or over-long label, control byte or space, longer than DNS_NAME_MAX, or
 * more than cap - 1 bytes). */
int psl_domain_to_ascii(const char *domain, char *out, size_t cap);

#endif
