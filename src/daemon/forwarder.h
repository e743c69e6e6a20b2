/* forwarder.h — queued's forwarding: copies for aliases that point at
 * other servers, into the outbound queue (issue #5).
 *
 * For each alias domain a spool entry forwards to, one outbound queue
 * entry: the message unchanged behind a prefix of a new ARC set (sealed
 * with the domain's active RSA DKIM key, when it has one) and our
 * Authentication-Results, sent with an SRS sender in that domain
 * (mailauth/forward.h).  The entry id is derived from the spool id and
 * the domain, so routing the same spool entry again makes no second copy.
 * The SRS secrets live in keys/srs.secrets (created at the first start,
 * read as root before privileges are dropped). */
#ifndef SM_DAEMON_FORWARDER_H
#define SM_DAEMON_FORWARDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct directory;
struct forwarder;
struct sm_config;
struct spool_envelope;

/* Load (or first create) the SRS secrets: call before the privilege drop.
 * pk, sk: the spool key pair (outbound entries are sealed to it; DKIM keys
 * are opened with it).  NULL with *error_r. */
struct forwarder *forwarder_new(const struct sm_config *cfg, const uint8_t *pk,
                                const uint8_t *sk, const char **error_r);
void forwarder_free(struct forwarder **f);

/* deliver.h's forward hook (a worker thread with its own directory
 * handle): queue the copy of spool entry id for targets[0..n) of alias
 * domain in queue_dir.  0 when durable (or there already), -1 with
 * *error_r (retry later, e.g. the incoming ARC chain could not be
 * checked). */
int forwarder_enqueue(struct forwarder *f, struct directory *dir, const char *queue_dir,
                      const char *id, const struct spool_envelope *env, const char *domain,
                      const char *const *targets, size_t n, int body, const char **error_r);

/* deliver.h's srs_reverse hook: true with the address rcpt encodes in out
 * (DELIVER_ADDRESS_MAX bytes) when rcpt is an SRS address we made. */
bool forwarder_reverse(struct forwarder *f, const char *rcpt, char *out);

#endif
