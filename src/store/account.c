/* account.c — mailbox accounts (see account.h).
 *
 * Creation order matters for crash safety: the files come first (a
 * mailbox directory nobody references is harmless and removed on
 * failure), the directory row last, in one transaction with its wraps.
 * Removal is the reverse: the row and its wraps go first, so once the
 * command reports the keys destroyed, no copy of the files can be opened
 * with anything the server has. */
#include "store/account.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "crypto/seal.h"
#include "store/mailbox.h"

_Static_assert(DIRECTORY_WRAP_MAX >= KEYWRAP_WRAP_MAX, "a directory wrap holds a keywrap");
_Static_assert(DIRECTORY_PK_BYTES == SEAL_PK_BYTES, "mailbox public keys are X25519 keys");
_Static_assert((int)DIRECTORY_WRAP_PASSWORD == (int)KEYWRAP_PASSWORD &&
                   (int)DIRECTORY_WRAP_APP_PASSWORD == (int)KEYWRAP_APP_PASSWORD &&
                   (int)DIRECTORY_WRAP_RECOVERY == (int)KEYWRAP_RECOVERY,
               "stored wrap kinds are keywrap kinds");

static _Thread_local char errbuf[512];

int account_mailbox_dir(char *out, size_t outlen, const char *data_dir, const char *mailbox)
{
    int n = snprintf(out, outlen, "%s/mailboxes/%s", data_dir, mailbox);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

void account_free(struct account *acct)
{
    seal_secret_free(&acct->mk);
    seal_secret_free(&acct->sk);
}

static void new_mailbox_id(char out[DIRECTORY_MAILBOX_ID_LEN + 1])
{
    uint8_t raw[DIRECTORY_MAILBOX_ID_LEN / 2];
    seal_random(raw, sizeof raw);
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/* The three wraps of a new account, into w[0..2] and swrap. */
static int make_wraps(const uint8_t *mk, const uint8_t *sk, const char *mailbox,
                      const char *password, size_t pwlen, const struct keywrap_params *params,
                      struct directory_wrap w[2], uint8_t *swrap, size_t *swrap_len,
                      char *recovery_text, const char **error_r)
{
    memset(w, 0, 2 * sizeof *w);
    w[0].kind = DIRECTORY_WRAP_PASSWORD;
    w[1].kind = DIRECTORY_WRAP_RECOVERY;
    if (keywrap_wrap_password(mk, password, pwlen, KEYWRAP_PASSWORD, params, mailbox,
                              w[0].bytes, &w[0].len, error_r) < 0 ||
        keywrap_recovery_new(mk, mailbox, recovery_text, w[1].bytes, &w[1].len, error_r) < 0 ||
        keywrap_wrap_secret(mk, sk, mailbox, swrap, swrap_len, error_r) < 0)
        return -1;
    return 0;
}

int account_create(struct directory *dir, const char *data_dir, const char *address,
                   const char *password, size_t pwlen, const struct keywrap_params *params,
                   uint64_t quota, char recovery_text[KEYWRAP_RECOVERY_TEXT_MAX],
                   const char **error_r)
{
    struct directory_user u = {.quota_bytes = quota};
    struct directory_wrap w[2];
    uint8_t swrap[KEYWRAP_WRAP_MAX];
    size_t swrap_len = 0;
    char mdir[4096];
    const char *why;

    if (directory_address_normalise(address, u.address, &why) < 0) {
        snprintf(errbuf, sizeof errbuf, "invalid address: %s", why);
        *error_r = errbuf;
        return -1;
    }
    new_mailbox_id(u.mailbox);
    if (account_mailbox_dir(mdir, sizeof mdir, data_dir, u.mailbox) < 0) {
        *error_r = "data_dir path too long";
        return -1;
    }
    uint8_t *mk = keywrap_mk_new(), *sk = seal_secret_alloc(SEAL_SK_BYTES);
    seal_keypair(u.public_key, sk);
    int ret = make_wraps(mk, sk, u.mailbox, password, pwlen, params, w, swrap, &swrap_len,
                         recovery_text, error_r);
    if (ret == 0 && (ret = mailbox_create(mdir, mk, error_r)) == 0 &&
        (ret = directory_user_add(dir, &u, swrap, swrap_len, w, 2)) < 0) {
        snprintf(errbuf, sizeof errbuf, "%s", directory_error(dir));
        *error_r = errbuf;
        mailbox_destroy(mdir, &why);
    }
    seal_secret_free(&mk);
    seal_secret_free(&sk);
    seal_wipe(w, sizeof w);
    if (ret < 0)
        seal_wipe(recovery_text, KEYWRAP_RECOVERY_TEXT_MAX);
    return ret;
}

/* With MK in hand, unwrap the secret key; KEYWRAP_* result. */
static int open_secret(struct directory *dir, struct account *acct, const char **error_r)
{
    uint8_t swrap[DIRECTORY_WRAP_MAX];
    size_t len = 0;
    int found = directory_user_secret_wrap(dir, acct->user.id, swrap, &len);
    if (found <= 0) {
        *error_r = found < 0 ? directory_error(dir) : "mailbox has no secret-key wrap";
        return KEYWRAP_FAILED;
    }
    return keywrap_unwrap_secret(acct->mk, swrap, len, acct->user.mailbox, &acct->sk, error_r);
}

/* Argon2id runs of this thread in account_unlock() (for the tests that
 * check a login costs one run whatever the account holds). */
static _Thread_local unsigned password_checks;

unsigned account_password_checks(void)
{
    return password_checks;
}

/* An app password's selector: a hash keyed by the mailbox, stored beside
 * its wrap.  App passwords are random (about 120 bits), so a fast hash
 * of one gives nothing to guess from; it lets a login find the one wrap
 * a password can open instead of running Argon2id on every wrap (which
 * made a wrong password cost 1 + N runs for an account with N app
 * passwords, and told a guesser that the account has some). */
static void app_selector(const char *mailbox, const char *password, size_t pwlen,
                         uint8_t out[DIRECTORY_SELECTOR_BYTES])
{
    uint8_t key[SEAL_HASH_BYTES];
    seal_hash(key, mailbox, strlen(mailbox));
    seal_keyed_hash2(out, key, "app-password", 12, password, pwlen);
}

struct try_password {
    const char *password, *mailbox;
    size_t pwlen;
    uint8_t *mk;
    int result;
    const char *error;
};

static void try_wrap(void *arg, const struct directory_wrap *w)
{
    struct try_password *t = arg;
    if (t->mk != NULL)
        return;
    password_checks++;
    int r = keywrap_unwrap_password(w->bytes, w->len, t->password, t->pwlen, t->mailbox, &t->mk,
                                    &t->error);
    if (r == KEYWRAP_OK || t->result != KEYWRAP_FAILED)
        t->result = r; /* a server failure is not overwritten by a later "wrong" */
}

/* The app-password wraps: the one whose selector matches, and those made
 * before selectors existed (tried after the password wrap, then given a
 * selector when one opens: only accounts from before directory schema 3
 * have any, and each costs one more run only until its first use). */
struct app_wraps {
    uint8_t selector[DIRECTORY_SELECTOR_BYTES];
    bool matched;
    struct directory_wrap match;
    struct directory_wrap legacy[ACCOUNT_APP_PASSWORDS_MAX];
    size_t n_legacy;
};

static void sort_app_wrap(void *arg, const struct directory_wrap *w)
{
    struct app_wraps *a = arg;
    if (!w->has_selector) {
        if (a->n_legacy < ACCOUNT_APP_PASSWORDS_MAX)
            a->legacy[a->n_legacy++] = *w;
    } else if (!a->matched && seal_equal(w->selector, a->selector, sizeof a->selector)) {
        a->match = *w;
        a->matched = true;
    }
}

/* Find MK: the matching app-password wrap alone, else the password wrap
 * (then legacy app-password wraps).  0 or -1 (directory error). */
static int find_mk(struct directory *dir, const struct account *acct, struct try_password *t)
{
    struct app_wraps *a = seal_secret_alloc(sizeof *a);
    memset(a, 0, sizeof *a);
    app_selector(acct->user.mailbox, t->password, t->pwlen, a->selector);
    int r = directory_user_wraps(dir, acct->user.id, DIRECTORY_WRAP_APP_PASSWORD, sort_app_wrap,
                                 a) < 0 ? -1 : 0;
    if (r == 0 && a->matched)
        try_wrap(t, &a->match);
    else if (r == 0)
        r = directory_user_wraps(dir, acct->user.id, DIRECTORY_WRAP_PASSWORD, try_wrap, t) < 0
                ? -1
                : 0;
    for (size_t i = 0; r == 0 && t->mk == NULL && i < a->n_legacy; i++) {
        try_wrap(t, &a->legacy[i]);
        if (t->mk != NULL) {
            /* a wrap made before selectors: give it one now, so that the
             * next logins cost one run again (the password is at hand) */
            a->legacy[i].has_selector = true;
            memcpy(a->legacy[i].selector, a->selector, sizeof a->selector);
            if (directory_user_set_wrap(dir, acct->user.id, &a->legacy[i]) < 0)
                log_warn("account selector-upgrade-failed mailbox=%s", acct->user.mailbox);
        }
    }
    seal_secret_free(&a);
    return r;
}

int account_unlock(struct directory *dir, const char *address, const char *password,
                   size_t pwlen, const struct keywrap_params *params, struct account *acct,
                   const char **error_r)
{
    memset(acct, 0, sizeof *acct);
    int found = directory_user_get(dir, address, &acct->user);
    if (found <= 0) {
        password_checks++;
        keywrap_dummy_work(params); /* an unknown user costs what a known one does */
        *error_r = found < 0 ? directory_error(dir) : "wrong password";
        return found < 0 ? KEYWRAP_FAILED : KEYWRAP_WRONG;
    }
    struct try_password t = {password, acct->user.mailbox, pwlen, NULL, KEYWRAP_WRONG,
                             "wrong password"};
    if (find_mk(dir, acct, &t) < 0) {
        *error_r = directory_error(dir);
        return KEYWRAP_FAILED;
    }
    if (t.mk == NULL) {
        *error_r = t.result == KEYWRAP_WRONG ? "wrong password" : t.error;
        return t.result == KEYWRAP_OK ? KEYWRAP_FAILED : t.result;
    }
    acct->mk = t.mk;
    int r = open_secret(dir, acct, error_r);
    if (r != KEYWRAP_OK)
        account_free(acct);
    return r;
}

struct try_recovery {
    const char *text, *mailbox;
    uint8_t *mk;
    int result;
    const char *error;
};

static void try_recovery_wrap(void *arg, const struct directory_wrap *w)
{
    struct try_recovery *t = arg;
    if (t->mk == NULL)
        t->result = keywrap_unwrap_recovery(w->bytes, w->len, t->text, t->mailbox, &t->mk,
                                            &t->error);
}

int account_unlock_recovery(struct directory *dir, const char *address, const char *text,
                            struct account *acct, const char **error_r)
{
    memset(acct, 0, sizeof *acct);
    int found = directory_user_get(dir, address, &acct->user);
    if (found <= 0) {
        *error_r = found < 0 ? directory_error(dir) : "wrong recovery key";
        return found < 0 ? KEYWRAP_FAILED : KEYWRAP_WRONG;
    }
    struct try_recovery t = {text, acct->user.mailbox, NULL, KEYWRAP_FAILED,
                             "mailbox has no recovery key"};
    if (directory_user_wraps(dir, acct->user.id, DIRECTORY_WRAP_RECOVERY, try_recovery_wrap,
                             &t) < 0) {
        *error_r = directory_error(dir);
        return KEYWRAP_FAILED;
    }
    if (t.mk == NULL) {
        *error_r = t.error;
        return t.result;
    }
    acct->mk = t.mk;
    int r = open_secret(dir, acct, error_r);
    if (r != KEYWRAP_OK)
        account_free(acct);
    return r;
}

static int store_wrap(struct directory *dir, const struct account *acct,
                      struct directory_wrap *w, const char **error_r)
{
    int r = directory_user_set_wrap(dir, acct->user.id, w);
    seal_wipe(w, sizeof *w);
    if (r < 0)
        *error_r = directory_error(dir);
    return r;
}

int account_set_password(struct directory *dir, const struct account *acct,
                         const char *password, size_t pwlen,
                         const struct keywrap_params *params, const char **error_r)
{
    struct directory_wrap w = {.kind = DIRECTORY_WRAP_PASSWORD};
    if (keywrap_wrap_password(acct->mk, password, pwlen, KEYWRAP_PASSWORD, params,
                              acct->user.mailbox, w.bytes, &w.len, error_r) < 0)
        return -1;
    return store_wrap(dir, acct, &w, error_r);
}

int account_new_recovery(struct directory *dir, const struct account *acct,
                         char text[KEYWRAP_RECOVERY_TEXT_MAX], const char **error_r)
{
    struct directory_wrap w = {.kind = DIRECTORY_WRAP_RECOVERY};
    if (keywrap_recovery_new(acct->mk, acct->user.mailbox, text, w.bytes, &w.len, error_r) < 0)
        return -1;
    return store_wrap(dir, acct, &w, error_r);
}

static bool label_ok(const char *label)
{
    size_t n = strlen(label);
    for (size_t i = 0; i < n; i++)
        if (label[i] < 0x21 || label[i] > 0x7e)
            return false;
    return n >= 1 && n <= 63;
}

/* A random password from an alphabet without look-alikes. */
static void random_password(char *out, size_t len)
{
    static const char alphabet[] = "abcdefghijkmnopqrstuvwxyz23456789"; /* 33 symbols */
    uint8_t raw[64];
    size_t i = 0;
    while (i < len) {
        seal_random(raw, sizeof raw);
        for (size_t j = 0; j < sizeof raw && i < len; j++)
            if (raw[j] < 231) /* 7 x 33: no modulo bias */
                out[i++] = alphabet[raw[j] % 33];
    }
    out[len] = '\0';
    seal_wipe(raw, sizeof raw);
}

struct app_count {
    const char *label;
    unsigned others;
};

static void count_other_app(void *arg, const struct directory_wrap *w)
{
    struct app_count *c = arg;
    c->others += strcmp(w->label, c->label) != 0;
}

int account_app_password_add(struct directory *dir, const struct account *acct,
                             const char *label, const struct keywrap_params *params,
                             char *password, const char **error_r)
{
    struct directory_wrap w = {.kind = DIRECTORY_WRAP_APP_PASSWORD};
    struct app_count count = {label, 0};
    if (!label_ok(label)) {
        *error_r = "an app password label is 1..63 printable characters without spaces";
        return -1;
    }
    /* bounded: each is a wrap the directory keeps and a login sorts through */
    if (directory_user_wraps(dir, acct->user.id, DIRECTORY_WRAP_APP_PASSWORD, count_other_app,
                             &count) < 0) {
        *error_r = directory_error(dir);
        return -1;
    }
    if (count.others >= ACCOUNT_APP_PASSWORDS_MAX) {
        *error_r = "too many app passwords: remove one first (user app-password-remove)";
        return -1;
    }
    snprintf(w.label, sizeof w.label, "%s", label);
    random_password(password, ACCOUNT_APP_PASSWORD_LEN);
    w.has_selector = true;
    app_selector(acct->user.mailbox, password, ACCOUNT_APP_PASSWORD_LEN, w.selector);
    if (keywrap_wrap_password(acct->mk, password, ACCOUNT_APP_PASSWORD_LEN,
                              KEYWRAP_APP_PASSWORD, params, acct->user.mailbox, w.bytes, &w.len,
                              error_r) < 0)
        return -1;
    return store_wrap(dir, acct, &w, error_r);
}

int account_remove(struct directory *dir, const char *data_dir, const char *address,
                   const char **error_r)
{
    struct directory_user u;
    char mdir[4096];
    if (directory_user_remove(dir, address, &u) < 0) {
        *error_r = directory_error(dir);
        return -1;
    }
    log_info("account removed mailbox=%s keys=destroyed", u.mailbox);
    if (account_mailbox_dir(mdir, sizeof mdir, data_dir, u.mailbox) < 0 ||
        mailbox_destroy(mdir, error_r) < 0) {
        snprintf(errbuf, sizeof errbuf, "keys destroyed, but the files of mailbox %s remain: %s",
                 u.mailbox, *error_r);
        *error_r = errbuf;
        return -1;
    }
    return 0;
}
