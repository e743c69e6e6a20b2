/* smtpd-auth.h — who may submit mail, and as whom (issue #5 submission).
 *
 * AUTH on the submission ports proves a mailbox owner's password exactly
 * as a login does (store/account.h: one Argon2id run opens a wrap of the
 * mailbox key; the key is wiped at once: submission unlocks nothing), on
 * worker threads, slowed by the failed-login guard (access/authguard.h)
 * per client network and account.  An authenticated user may then send as
 * the addresses that deliver to their own mailbox: its address, its
 * "+tag" forms, and the aliases that point at it. */
#ifndef SM_SMTPD_AUTH_H
#define SM_SMTPD_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct inbound_env;
struct sm_config;
struct directory;
struct smtpd_auth;

/* After the privilege drop (it starts threads).  dir is the loop
 * thread's directory handle (sender checks); answers go to env. */
struct smtpd_auth *smtpd_auth_new(const struct sm_config *cfg, struct event_base *base,
                                  struct inbound_env *env, struct directory *dir);
/* Finishes the checks in flight (their sessions are gone by then), frees. */
void smtpd_auth_free(struct smtpd_auth **a);

/* inbound_env.auth_check and .check_sender, with a as the owner. */
void smtpd_auth_check(struct smtpd_auth *a, uint64_t session, const struct sockaddr *client,
                      const char *user, const char *password, size_t len);
const char *smtpd_auth_sender(struct smtpd_auth *a, const char *user, const char *address);

#endif
