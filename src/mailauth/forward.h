/* forward.h — what a message needs to leave as a forward (issue #5).
 *
 * When mail for an alias goes on to an address elsewhere, two things keep
 * it deliverable there:
 *   - SRS (srs.h): the envelope sender is rewritten into our forwarding
 *     domain, so SPF at the destination checks our servers, and bounces
 *     come back to us to be verified and sent on;
 *   - an ARC set (arc-seal.h, RFC 8617) that records the results of our
 *     checks (the Authentication-Results field smtpd sealed into the spool
 *     entry's delivery note) and signs the message as we pass it on, so a
 *     destination that trusts us can see that DKIM and DMARC passed here.
 * forward_prepare() computes both for one message and one forwarding
 * domain; queued stores the result as an outbound queue entry (prefix:
 * the ARC set, then our Authentication-Results; the message unchanged).
 *
 * The ARC chain status (cv) of the incoming message is the "arc=" result
 * of our Authentication-Results: none when the message carried no ARC
 * set.  When the incoming chain failed only temporarily ("temperror") the
 * caller should retry later rather than seal cv=fail (see arc-seal.h). */
#ifndef SM_MAILAUTH_FORWARD_H
#define SM_MAILAUTH_FORWARD_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "mailauth/srs.h"

struct forward_params {
    const struct srs *srs;        /* the SRS secrets */
    const char *domain;           /* the forwarding domain: SRS's and the ARC set's d= */
    EVP_PKEY *arc_key;            /* NULL: no ARC set (no key for domain) */
    const char *arc_selector;
    const char *authserv_id;      /* ours, as in the note */
    int64_t now;
};

enum forward_arc {
    FORWARD_ARC_SEALED,           /* the prefix starts with a new ARC set */
    FORWARD_ARC_NONE,             /* no key, or the chain already failed (not sealed again) */
    FORWARD_ARC_TEMPERROR,        /* the incoming chain could not be checked: try later */
};

struct forward_result {
    char mail_from[SRS_ADDRESS_MAX + 1]; /* the rewritten sender ("" stays "") */
    bool srs_kept;                /* could not be rewritten (too long, odd syntax): kept */
    enum forward_arc arc;
    struct sm_buf prefix;         /* header fields to put in front of the message */
};

/* Prepare the forward of the message in body_fd (read with pread from 0
 * to its end) whose envelope sender is mail_from and whose delivery note
 * (our Authentication-Results field(s), CRLF-terminated; may be empty) is
 * note[0..note_len).  Returns 0 with *out filled (free with
 * forward_result_free()), or -1 with *error_r. */
int forward_prepare(const struct forward_params *p, const char *mail_from, const char *note,
                    size_t note_len, int body_fd, struct forward_result *out,
                    const char **error_r);
void forward_result_free(struct forward_result *r);

#endif
