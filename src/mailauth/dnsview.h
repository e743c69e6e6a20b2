/* dnsview.h — the DNS answers one message's checks have seen so far.
 *
 * Every check in mailauth/ (SPF, DKIM keys, DMARC policy, ARC keys) is a
 * pure function of the message and of a dnsview: it never waits for the
 * network.  When it needs an answer the view does not hold yet, the lookup
 * returns NULL and records the question; the check then returns
 * MAILAUTH_NEED_DNS.  The driver (mailauth/check.h in the daemon, or a
 * test) resolves every pending question, adds the answers with
 * dnsview_put(), and runs the check again from the start.  Checks are
 * cheap and DNS is slow, so re-running them costs nothing that matters,
 * and the same code runs over libunbound, over a test table, or under a
 * fuzzer.
 *
 * Limits: the view holds at most DNSVIEW_MAX answers; a check that asks
 * for more gets a DNS_TEMPFAIL answer (so a hostile SPF record cannot make
 * a message cost unbounded lookups, whatever the check's own limits). */
#ifndef SM_MAILAUTH_DNSVIEW_H
#define SM_MAILAUTH_DNSVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/answer.h"

#define DNSVIEW_MAX 128

struct dnsview;

/* Results shared by the checks' run functions. */
enum mailauth_step {
    MAILAUTH_DONE = 0,      /* the result is final */
    MAILAUTH_NEED_DNS = 1,  /* questions are pending: resolve them and run again */
};

struct dnsview *dnsview_new(void);
void dnsview_free(struct dnsview **v);

/* The answer for (name, type), or NULL when it is not known yet; then the
 * question is remembered as pending.  name is compared without case and
 * without a final dot.  A name longer than DNS_NAME_MAX, or empty, gets a
 * DNS_PERMFAIL answer at once; past DNSVIEW_MAX answers, DNS_TEMPFAIL. */
const struct dns_answer *dnsview_get(struct dnsview *v, const char *name, uint16_t type);

/* Pending questions, in the order they were first asked. */
size_t dnsview_pending(const struct dnsview *v);
/* The i-th pending question (0 <= i < dnsview_pending()). */
void dnsview_pending_at(const struct dnsview *v, size_t i, const char **name, uint16_t *type);

/* Record the answer to (name, type) (the view takes ownership of a; a
 * later answer to the same question replaces the earlier).  The question
 * stops being pending. */
void dnsview_put(struct dnsview *v, const char *name, uint16_t type, struct dns_answer *a);

/* Number of answers held (pending questions not counted). */
size_t dnsview_count(const struct dnsview *v);

#endif
