/* keys.h — the server's key files under data_dir/keys (DESIGN.md §3).
 *
 *   keys/spool.pub   X25519 public key of the spool (32 raw bytes), readable
 *                    by smtpd, which seals incoming mail to it;
 *   keys/spool.key   the matching secret key, mode 0600, read only by
 *                    queued (and by the operator's `queue show --key`).
 *   keys/tls/        the default TLS certificate and key. */
#ifndef SM_KEYS_H
#define SM_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/spool.h"

/* Create the spool key pair if it does not exist yet (idempotent).
 * Returns 1 if created, 0 if already present, -1 with err on failure. */
int keys_spool_create(const char *data_dir, char *err, size_t errlen);
/* Read the spool public key; -1 with err if missing or malformed. */
int keys_spool_public(const char *data_dir, uint8_t pk[SPOOL_PK_BYTES], char *err, size_t errlen);
/* Read a secret key file (32 raw bytes) into sodium_malloc'd memory,
 * returned in *sk_r (free with keys_secret_free).  -1 with err on failure. */
int keys_read_secret(const char *path, uint8_t **sk_r, char *err, size_t errlen);
/* Wipe and free a secret read by keys_read_secret; accepts *sk == NULL. */
void keys_secret_free(uint8_t **sk);
/* True when sk is the secret half of the public key pk (constant time). */
bool keys_spool_matches(const uint8_t *sk, const uint8_t pk[SPOOL_PK_BYTES]);

#endif
