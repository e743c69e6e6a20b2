/* check.h — the sender-authentication checks of one SMTP transaction.
 *
 * smtpd creates an authcheck at MAIL FROM: the SPF checks of the MAIL FROM
 * and HELO identities start at once, their DNS questions resolved on the
 * loop while the client sends recipients and data.  The message then
 * streams through authcheck_write() on its way to the spool: header fields
 * feed DKIM and ARC and give the From address for DMARC, any
 * Authentication-Results field that claims our authserv-id is dropped
 * (RFC 8601 §5), and the body feeds the body hashes.  At end of data,
 * authcheck_finish() completes every check — DKIM keys, DMARC policy, ARC
 * chain — and calls back with a verdict: the Authentication-Results field
 * to put in front of the message, and what to do with it (deliver, file in
 * Junk, or refuse with 550 5.7.1 under the sender's p=reject).
 *
 * The checks themselves are pure (spf.h, dkim.h, dmarc.h, arc.h): this
 * module only drives them over one dnsview, asks the resolver whatever
 * question they leave pending, and runs them again when answers come.
 * Nothing here blocks: RSA and Ed25519 verifications of a few signatures
 * take microseconds; DNS is asynchronous.
 *
 * ARC and trusted forwarders: when the chain validates and its newest
 * seal was made by a domain in trusted_arc_sealers, a DMARC failure is
 * not acted on if that sealer's ARC-Authentication-Results recorded a
 * DMARC (or aligned SPF/DKIM) pass: the message keeps the result it had
 * at the forwarder, and our Authentication-Results says so.
 *
 * Bounds: one dnsview per transaction (DNSVIEW_MAX answers); the checks'
 * own limits (10 SPF lookups, 8 DKIM signatures, 50 ARC sets); timeout
 * seconds from authcheck_finish() to the verdict, after which every
 * question still unanswered counts as a temporary DNS failure. */
#ifndef SM_MAILAUTH_CHECK_H
#define SM_MAILAUTH_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct dns_resolver;
struct event_base;
struct psl;
struct authcheck;

/* What every transaction of an smtpd process shares. */
struct authcheck_env {
    struct event_base *base;
    struct dns_resolver *resolver;
    const struct psl *psl;
    const char *authserv_id;       /* in our Authentication-Results */
    const char *hostname;          /* SPF's %{r} */
    const char *const *trusted_sealers; /* lowercase domains */
    size_t n_trusted_sealers;
    bool dmarc_reject;             /* act on p=reject (else: deliver, noted) */
    bool dmarc_quarantine;         /* act on p=quarantine (Junk) */
    unsigned timeout;              /* seconds from finish to verdict */
};

enum authcheck_action {
    AUTHCHECK_DELIVER,
    AUTHCHECK_JUNK,                /* DMARC p=quarantine failed */
    AUTHCHECK_REJECT,              /* DMARC p=reject failed: refuse */
};

struct authcheck_verdict {
    enum authcheck_action action;
    const char *reply;             /* REJECT: the full SMTP reply */
    const char *header;            /* "Authentication-Results: ...\r\n" */
    size_t header_len;
    const char *summary;           /* one line for the log: "spf=pass dkim=pass dmarc=pass" */
};

struct sm_config;

/* The environment as the configuration's [auth] and [dns] sections say:
 * a resolver on base, the Public Suffix List, the trusted sealers.  NULL
 * with *error_r (a file that cannot be read, a bad forwarder) — or NULL
 * with *error_r NULL when [auth] enabled is off. */
struct authcheck_env *authcheck_env_new(struct event_base *base, const struct sm_config *cfg,
                                        const char **error_r);
void authcheck_env_free(struct authcheck_env **env);

/* Start the checks of a transaction: client address (as accepted), HELO
 * argument, MAIL FROM address ("" for the null sender).  Strings are
 * copied.  SPF starts at once. */
struct authcheck *authcheck_new(const struct authcheck_env *env, const struct sockaddr *client,
                                const char *helo, const char *mail_from);

/* Message bytes as the engine hands them to the spool: out() receives
 * what is to be stored (our own Received header first, untouched; fields
 * claiming our authserv-id removed).  Returns 0, or -1 when out failed. */
typedef int authcheck_out_fn(void *arg, const void *p, size_t n);
int authcheck_write(struct authcheck *ac, const void *p, size_t n, authcheck_out_fn *out,
                    void *arg);

/* End of data: complete the checks; done() runs on the loop, never inside
 * this call, with a verdict valid during the callback. */
typedef void authcheck_done_fn(void *arg, const struct authcheck_verdict *v);
void authcheck_finish(struct authcheck *ac, authcheck_done_fn *done, void *arg);

/* Cancel everything (no callback after this); accepts NULL. */
void authcheck_free(struct authcheck **ac);

#endif
