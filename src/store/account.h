/* account.h — mailbox accounts: creating, unlocking, re-keying, removing.
 *
 * Glue between the directory (rows and wraps), the key hierarchy
 * (crypto/keywrap.h) and the mailbox files (mailbox.h), so the CLI today
 * and imapd, pop3d and submission later unlock a mailbox the same way:
 *
 *   password or app password --Argon2id--> opens a wrap of MK
 *   recovery key             --BLAKE2b---> opens a wrap of MK
 *   MK --> opens the store; MK --> unwraps the X25519 secret key
 *   X25519 secret key --> opens message files (drop/ and msg/)
 *
 * The context bound into every wrap is the mailbox id, so wraps cannot be
 * moved between mailboxes.  Functions here run blocking work (Argon2id,
 * SQLite): call them from a worker thread in a daemon, never the loop. */
#ifndef SM_ACCOUNT_H
#define SM_ACCOUNT_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/keywrap.h"
#include "store/directory.h"

/* An unlocked account: the row and the secrets (secret memory). */
struct account {
    struct directory_user user;
    uint8_t *mk; /* KEYWRAP_MK_BYTES */
    uint8_t *sk; /* KEYWRAP_SK_BYTES */
};

/* data_dir/mailboxes/<mailbox> into out; 0, or -1 if it does not fit. */
int account_mailbox_dir(char *out, size_t outlen, const char *data_dir, const char *mailbox);

/* Create the mailbox address with password: fresh MK and key pair, the
 * store and its folders, the wraps (password, recovery, secret key), then
 * the directory row.  The recovery key is written to recovery_text (show
 * it once; it is a secret: the caller wipes it).  Returns 0, or -1 with
 * *error_r; nothing is left behind on failure. */
int account_create(struct directory *dir, const char *data_dir, const char *address,
                   const char *password, size_t pwlen, const struct keywrap_params *params,
                   uint64_t quota, char recovery_text[KEYWRAP_RECOVERY_TEXT_MAX],
                   const char **error_r);

/* Unlock with a password.  Exactly one Argon2id run, whatever the
 * account holds: the app-password wrap whose selector matches the
 * password (a fast keyed hash, see account.c), else the password wrap.
 * (App passwords made before selectors existed add a run each until
 * their first successful use gives them one.)
 * An unknown address spends the same time (keywrap_dummy_work with
 * params) and answers like a wrong password.
 * Returns KEYWRAP_OK with *acct filled (free with account_free), or a
 * negative enum keywrap_result with *error_r. */
int account_unlock(struct directory *dir, const char *address, const char *password,
                   size_t pwlen, const struct keywrap_params *params, struct account *acct,
                   const char **error_r);

/* Unlock with the recovery key text.  Results as keywrap_unwrap_recovery. */
int account_unlock_recovery(struct directory *dir, const char *address, const char *text,
                            struct account *acct, const char **error_r);

/* Re-wrap MK under a new password (replaces the password wrap; MK and the
 * store stay as they are).  Returns 0 or -1. */
int account_set_password(struct directory *dir, const struct account *acct,
                         const char *password, size_t pwlen,
                         const struct keywrap_params *params, const char **error_r);

/* Replace the recovery key: a new text, a new wrap; the old key stops
 * working.  Returns 0 or -1. */
int account_new_recovery(struct directory *dir, const struct account *acct,
                         char text[KEYWRAP_RECOVERY_TEXT_MAX], const char **error_r);

#define ACCOUNT_APP_PASSWORD_LEN 24 /* characters, about 120 bits */
/* App passwords per account. */
#define ACCOUNT_APP_PASSWORDS_MAX 8

/* A new random app password named label (1..63 printable characters),
 * written to password (ACCOUNT_APP_PASSWORD_LEN + 1 bytes, a secret); one
 * with the same label is replaced.  At most ACCOUNT_APP_PASSWORDS_MAX.
 * Returns 0 or -1. */
int account_app_password_add(struct directory *dir, const struct account *acct,
                             const char *label, const struct keywrap_params *params,
                             char *password, const char **error_r);

/* Remove the mailbox: its wraps and row first (crypto-shredding), then
 * its files.  Returns 0, or -1 with *error_r (if only the file removal
 * failed, the keys are gone already and the error says so). */
int account_remove(struct directory *dir, const char *data_dir, const char *address,
                   const char **error_r);

/* Argon2id runs account_unlock() made on this thread so far (tests). */
unsigned account_password_checks(void);

/* Wipe and free the secrets of acct (accepts a zeroed struct). */
void account_free(struct account *acct);

#endif
