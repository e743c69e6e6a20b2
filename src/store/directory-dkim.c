/* directory-dkim.c — DKIM signing keys in the directory (see dkimkeys.h).
 *
 * The table (migration 5 in directory.c):
 *
 *   dkim_keys (id, domain -> domains ON DELETE CASCADE, selector,
 *              algorithm 'rsa-sha256' | 'ed25519-sha256',
 *              state 'pending' | 'active' | 'retired',
 *              public_key (the p= value),
 *              private_wrap (BLOB, see dkimkeys.h), created, retired,
 *              UNIQUE (domain, selector))
 *
 * Removing a domain removes its keys: a key of a domain we no longer host
 * must not sign anything.  Keys are generated and sealed before the write
 * transaction starts (RSA generation takes tens of milliseconds, which
 * other writers should not wait for); the checks that decide whether the
 * keys may be added run inside it. */
#include "store/dkimkeys.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/mem.h"
#include "crypto/seal.h"
#include "store/directory-internal.h"

_Static_assert(DKIMKEY_SPOOL_PK_BYTES == SEAL_PK_BYTES, "the spool key is an X25519 key");
_Static_assert(DKIMKEY_SPOOL_SK_BYTES == SEAL_SK_BYTES, "the spool key is an X25519 key");

#define WRAP_VERSION 1
#define WRAP_HEAD 2 /* version, algorithm */
#define WRAP_PREFIX (WRAP_HEAD + SEAL_SEALED_KEY_BYTES + SEAL_STREAM_HEADER_BYTES)
#define WRAP_AD_LABEL "sealmail-dkim-key"
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 4096
#define KEY_COLUMNS "id, domain, selector, algorithm, state, public_key, created, retired"

/* --- names and records ------------------------------------------------------ */

const char *dkimkey_alg_name(enum dkimkey_alg alg)
{
    switch (alg) {
    case DKIMKEY_RSA_SHA256:
        return "rsa-sha256";
    case DKIMKEY_ED25519_SHA256:
        return "ed25519-sha256";
    }
    return "?";
}

const char *dkimkey_state_name(enum dkimkey_state state)
{
    switch (state) {
    case DKIMKEY_ACTIVE:
        return "active";
    case DKIMKEY_PENDING:
        return "pending";
    case DKIMKEY_RETIRED:
        return "retired";
    }
    return "?";
}

int dkimkey_record(const struct dkimkey *k, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "v=DKIM1; k=%s; p=%s",
                     k->alg == DKIMKEY_ED25519_SHA256 ? "ed25519" : "rsa", k->public_key);
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

static bool selector_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

int dkimkey_selector_normalise(const char *selector, char out[DKIMKEY_SELECTOR_MAX + 1],
                               const char **error_r)
{
    size_t len = strlen(selector);

    *error_r = NULL;
    if (len == 0)
        *error_r = "empty selector";
    else if (len > DKIMKEY_SELECTOR_MAX)
        *error_r = "selector longer than 63 characters";
    for (size_t i = 0; *error_r == NULL && i < len; i++) {
        char c = selector[i] >= 'A' && selector[i] <= 'Z' ? (char)(selector[i] - 'A' + 'a')
                                                           : selector[i];
        char prev = i > 0 ? out[i - 1] : '.';
        if (!selector_char_ok(c))
            *error_r = "a selector holds only letters, digits, hyphens and dots";
        else if (c == '.' && prev == '.')
            *error_r = "empty label in the selector";
        else if ((c == '-' && prev == '.') || (c == '.' && prev == '-'))
            *error_r = "a selector label starts or ends with a hyphen";
        out[i] = c;
    }
    if (*error_r == NULL && (out[len - 1] == '.' || out[len - 1] == '-'))
        *error_r = out[len - 1] == '.' ? "empty label in the selector"
                                       : "a selector label starts or ends with a hyphen";
    /* labels are at most 63 characters because the whole is */
    if (*error_r != NULL) {
        out[0] = '\0';
        return -1;
    }
    out[len] = '\0';
    return 0;
}

/* --- keys --------------------------------------------------------------------- */

EVP_PKEY *dkimkey_generate(enum dkimkey_alg alg, const char **error_r)
{
    EVP_PKEY *key = NULL;
    if (alg == DKIMKEY_RSA_SHA256)
        key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)DKIMKEY_RSA_BITS);
    else if (alg == DKIMKEY_ED25519_SHA256)
        key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    ERR_clear_error();
    if (key == NULL)
        *error_r = "OpenSSL cannot generate the key";
    return key;
}

/* The public half of key as DER (RSA) or raw bytes (Ed25519), base64. */
static int public_b64(EVP_PKEY *key, bool ed, struct sm_buf *b64)
{
    uint8_t raw[1024];
    size_t n = sizeof raw;
    if (ed) {
        if (EVP_PKEY_get_raw_public_key(key, raw, &n) != 1 || n != 32)
            return -1;
    } else {
        int len = i2d_PUBKEY(key, NULL);
        unsigned char *p = raw;
        if (len <= 0 || (size_t)len > sizeof raw || i2d_PUBKEY(key, &p) != len)
            return -1;
        n = (size_t)len;
    }
    base64_encode(raw, n, b64);
    return 0;
}

int dkimkey_public(EVP_PKEY *key, enum dkimkey_alg *alg_r, char out[DKIMKEY_PUBLIC_MAX + 1],
                   const char **error_r)
{
    bool ed = EVP_PKEY_is_a(key, "ED25519");
    if (!ed && !EVP_PKEY_is_a(key, "RSA")) {
        *error_r = "a DKIM key is RSA or Ed25519";
        return -1;
    }
    if (!ed && (EVP_PKEY_get_bits(key) < RSA_MIN_BITS || EVP_PKEY_get_bits(key) > RSA_MAX_BITS)) {
        *error_r = "RSA keys of 2048 to 4096 bits only";
        return -1;
    }
    struct sm_buf b64;
    sm_buf_init(&b64, 0);
    int r = public_b64(key, ed, &b64);
    ERR_clear_error();
    if (r < 0 || b64.len > DKIMKEY_PUBLIC_MAX) {
        *error_r = "cannot encode the public key";
        sm_buf_free(&b64);
        return -1;
    }
    memcpy(out, sm_buf_str(&b64), b64.len + 1);
    sm_buf_free(&b64);
    *alg_r = ed ? DKIMKEY_ED25519_SHA256 : DKIMKEY_RSA_SHA256;
    return 0;
}

/* --- wraps -------------------------------------------------------------------- */

/* The associated data of a wrap's chunk (see dkimkeys.h). */
static void wrap_ad(struct sm_buf *ad, const uint8_t head[WRAP_HEAD], const char *domain,
                    const char *selector)
{
    sm_buf_init(ad, 0);
    sm_buf_append(ad, WRAP_AD_LABEL, sizeof WRAP_AD_LABEL); /* with its NUL */
    sm_buf_append(ad, head, WRAP_HEAD);
    sm_buf_append(ad, domain, strlen(domain) + 1);
    sm_buf_puts(ad, selector);
}

/* The PKCS#8 DER of key, in secret memory (*len_r bytes), or NULL. */
static uint8_t *private_der(EVP_PKEY *key, size_t *len_r)
{
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
    int n = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, NULL) : -1;
    uint8_t *der = NULL;
    if (n > 0 && n <= DKIMKEY_WRAP_MAX - WRAP_PREFIX - SEAL_STREAM_ABYTES) {
        der = seal_secret_alloc((size_t)n);
        unsigned char *p = der;
        if (i2d_PKCS8_PRIV_KEY_INFO(p8, &p) != n)
            seal_secret_free(&der);
    }
    PKCS8_PRIV_KEY_INFO_free(p8); /* clears the key octets it held */
    ERR_clear_error();
    *len_r = (size_t)n;
    return der;
}

/* Seal key to pk for (alg, domain, selector): a malloc'd wrap of *len_r
 * bytes, or NULL with *error_r. */
static uint8_t *key_wrap(EVP_PKEY *key, enum dkimkey_alg alg, const char *domain,
                         const char *selector, const uint8_t pk[SEAL_PK_BYTES], size_t *len_r,
                         const char **error_r)
{
    size_t n;
    uint8_t *der = private_der(key, &n);
    if (der == NULL) {
        *error_r = "cannot serialise the private key";
        return NULL;
    }
    uint8_t *w = sm_malloc(WRAP_PREFIX + n + SEAL_STREAM_ABYTES);
    w[0] = WRAP_VERSION;
    w[1] = (uint8_t)alg;
    struct seal_stream *st =
        seal_stream_push_new(pk, w + WRAP_HEAD, w + WRAP_HEAD + SEAL_SEALED_KEY_BYTES, error_r);
    struct sm_buf ad;
    wrap_ad(&ad, w, domain, selector);
    int r = st != NULL ? seal_stream_push(st, der, n, ad.data, ad.len, true, w + WRAP_PREFIX) : -1;
    if (st != NULL && r < 0)
        *error_r = "cannot seal the private key";
    seal_stream_free(&st);
    seal_secret_free(&der);
    sm_buf_free(&ad);
    if (r < 0) {
        sm_freep(&w);
        return NULL;
    }
    *len_r = WRAP_PREFIX + n + SEAL_STREAM_ABYTES;
    return w;
}

/* Parse PKCS#8 DER (exactly n bytes) into a key. */
static EVP_PKEY *key_from_der(const uint8_t *der, size_t n)
{
    const unsigned char *p = der;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)n);
    EVP_PKEY *key = p8 != NULL && p == der + n ? EVP_PKCS82PKEY(p8) : NULL;
    PKCS8_PRIV_KEY_INFO_free(p8);
    ERR_clear_error();
    return key;
}

/* Open a wrap made by key_wrap() for (alg, domain, selector). */
static EVP_PKEY *key_unwrap(const uint8_t *w, size_t len, enum dkimkey_alg alg,
                            const char *domain, const char *selector,
                            const uint8_t pk[SEAL_PK_BYTES], const uint8_t sk[SEAL_SK_BYTES],
                            const char **error_r)
{
    if (len <= WRAP_PREFIX + SEAL_STREAM_ABYTES || len > DKIMKEY_WRAP_MAX) {
        *error_r = "damaged key wrap (length)";
        return NULL;
    }
    if (w[0] != WRAP_VERSION || w[1] != (uint8_t)alg) {
        *error_r = w[0] != WRAP_VERSION ? "key wrap of an unknown version"
                                        : "key wrap of another algorithm";
        return NULL;
    }
    struct seal_stream *st = seal_stream_pull_new(w + WRAP_HEAD,
                                                  w + WRAP_HEAD + SEAL_SEALED_KEY_BYTES, pk, sk,
                                                  error_r);
    if (st == NULL) {
        *error_r = "the key wrap does not open with this spool key";
        return NULL;
    }
    size_t n = len - WRAP_PREFIX - SEAL_STREAM_ABYTES;
    uint8_t *der = seal_secret_alloc(n);
    struct sm_buf ad;
    bool final = false;
    wrap_ad(&ad, w, domain, selector);
    int r = seal_stream_pull(st, w + WRAP_PREFIX, len - WRAP_PREFIX, ad.data, ad.len, der, &final);
    seal_stream_free(&st);
    sm_buf_free(&ad);
    EVP_PKEY *key = r == 0 && final ? key_from_der(der, n) : NULL;
    seal_secret_free(&der);
    if (key == NULL)
        *error_r = r == 0 && final ? "the wrapped private key is not a PKCS#8 key"
                                   : "the key wrap is damaged or belongs to another key";
    return key;
}

/* --- SQL helpers ---------------------------------------------------------------- */

static sqlite3_stmt *dk_prepare(struct directory *dir, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(dir->db, sql, -1, &st, NULL) == SQLITE_OK)
        return st;
    dir_set_db_error(dir, "directory");
    return NULL;
}

/* Step a statement that returns no row and finalize it; -1 with the
 * handle's error unless it completed. */
static int dk_step_done(struct directory *dir, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        dir_set_db_error(dir, "directory");
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static void dk_rollback(struct directory *dir)
{
    sqlite3_exec(dir->db, "ROLLBACK", NULL, NULL, NULL);
}

static void copy_text(char *out, size_t outlen, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(out, outlen, "%s", t != NULL ? (const char *)t : "");
}

static void key_from_row(sqlite3_stmt *st, struct dkimkey *k)
{
    char text[32];
    memset(k, 0, sizeof *k);
    k->id = sqlite3_column_int64(st, 0);
    copy_text(k->domain, sizeof k->domain, st, 1);
    copy_text(k->selector, sizeof k->selector, st, 2);
    copy_text(text, sizeof text, st, 3);
    k->alg = strcmp(text, "ed25519-sha256") == 0 ? DKIMKEY_ED25519_SHA256 : DKIMKEY_RSA_SHA256;
    copy_text(text, sizeof text, st, 4);
    k->state = strcmp(text, "active") == 0    ? DKIMKEY_ACTIVE
               : strcmp(text, "pending") == 0 ? DKIMKEY_PENDING
                                              : DKIMKEY_RETIRED;
    copy_text(k->public_key, sizeof k->public_key, st, 5);
    k->created = sqlite3_column_int64(st, 6);
    k->retired = sqlite3_column_int64(st, 7); /* NULL reads as 0 */
}

/* --- domains -------------------------------------------------------------------- */

/* 1 if the (normalised) domain is hosted, 0 if not, -1 on error. */
static int domain_hosted(struct directory *dir, const char *name)
{
    sqlite3_stmt *st = dk_prepare(dir, "SELECT 1 FROM domains WHERE name = ?1");
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    dir_set_db_error(dir, "directory");
    return -1;
}

/* Normalise domain into out; -1 with the handle's error if invalid. */
static int domain_name(struct directory *dir, const char *domain, char out[DIRECTORY_DOMAIN_MAX + 1])
{
    const char *why;
    char shown[72];
    if (directory_domain_normalise(domain, out, &why) == 0)
        return 0;
    dir_printable(domain, shown, sizeof shown);
    dir_set_error(dir, "invalid domain name '%s': %s", shown, why);
    return -1;
}

int directory_dkim_domain(struct directory *dir, const char *domain,
                          char out[DIRECTORY_DOMAIN_MAX + 1])
{
    if (domain_name(dir, domain, out) < 0)
        return -1;
    int r = domain_hosted(dir, out);
    if (r == 0)
        dir_set_error(dir, "domain %s is not hosted here", out);
    return r == 1 ? 0 : -1;
}

/* --- adding keys ------------------------------------------------------------------ */

/* One key to insert: checked, its public half encoded, its private half
 * sealed. */
struct pending {
    char selector[DKIMKEY_SELECTOR_MAX + 1];
    enum dkimkey_alg alg;
    char public_key[DKIMKEY_PUBLIC_MAX + 1];
    uint8_t *wrap;
    size_t wrap_len;
};

static int prepare_keys(struct directory *dir, const char *domain, const struct dkimkey_new *keys,
                        size_t n, const uint8_t pk[SEAL_PK_BYTES], struct pending *out)
{
    const char *why = NULL;
    char shown[72];

    if (n == 0 || n > 2) {
        dir_set_error(dir, "add one or two DKIM keys at a time");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        struct pending *p = &out[i];
        if (dkimkey_selector_normalise(keys[i].selector, p->selector, &why) < 0) {
            dir_printable(keys[i].selector, shown, sizeof shown);
            dir_set_error(dir, "invalid selector '%s': %s", shown, why);
            return -1;
        }
        if (dkimkey_public(keys[i].key, &p->alg, p->public_key, &why) < 0 ||
            (p->wrap = key_wrap(keys[i].key, p->alg, domain, p->selector, pk, &p->wrap_len,
                                &why)) == NULL) {
            dir_set_error(dir, "DKIM key %s: %s", p->selector, why);
            return -1;
        }
        if (i == 1 && (out[0].alg == p->alg || strcmp(out[0].selector, p->selector) == 0)) {
            dir_set_error(dir, "two DKIM keys added together need two algorithms and two "
                               "selectors");
            return -1;
        }
    }
    return 0;
}

/* How many keys of the (normalised) domain are in state; -1 on error. */
static int64_t count_state(struct directory *dir, const char *domain, const char *state)
{
    sqlite3_stmt *st =
        dk_prepare(dir, "SELECT count(*) FROM dkim_keys WHERE domain = ?1 AND state = ?2");
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    if (n < 0)
        dir_set_db_error(dir, "directory");
    return n;
}

/* Inside the transaction: is the domain in the state mode expects? */
static int check_mode(struct directory *dir, const char *domain, enum dkimkey_mode mode)
{
    int hosted = domain_hosted(dir, domain);
    if (hosted <= 0) {
        if (hosted == 0)
            dir_set_error(dir, "domain %s is not hosted here", domain);
        return -1;
    }
    int64_t active = count_state(dir, domain, "active");
    int64_t pending = active < 0 ? -1 : count_state(dir, domain, "pending");
    if (active < 0 || pending < 0)
        return -1;
    if (mode == DKIMKEY_FIRST && (active > 0 || pending > 0)) {
        dir_set_error(dir, "domain %s already has DKIM keys (rotate them instead)", domain);
        return -1;
    }
    if (mode != DKIMKEY_FIRST && active == 0) {
        dir_set_error(dir, "domain %s has no active DKIM keys to rotate (generate them first)",
                      domain);
        return -1;
    }
    if (mode != DKIMKEY_FIRST && pending > 0) {
        dir_set_error(dir, "domain %s already has pending DKIM keys (activate or remove them "
                           "first)", domain);
        return -1;
    }
    return 0;
}

/* Move every key of domain in state from to state to (stamping the time
 * when they retire).  Returns how many moved, or -1. */
static int move_state(struct directory *dir, const char *domain, const char *from,
                      const char *to, int64_t now)
{
    sqlite3_stmt *st = dk_prepare(dir, "UPDATE dkim_keys SET state = ?3, retired ="
                                       " CASE WHEN ?3 = 'retired' THEN ?4 ELSE retired END"
                                       " WHERE domain = ?1 AND state = ?2");
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, from, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, to, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now);
    return dk_step_done(dir, st) < 0 ? -1 : sqlite3_changes(dir->db);
}

static int insert_key(struct directory *dir, const char *domain, const struct pending *p,
                      const char *state, int64_t now)
{
    sqlite3_stmt *st = dk_prepare(dir, "INSERT INTO dkim_keys (domain, selector, algorithm,"
                                       " state, public_key, private_wrap, created)"
                                       " VALUES (?1, ?2, ?3, ?7, ?4, ?5, ?6)");
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->selector, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, dkimkey_alg_name(p->alg), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, p->public_key, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, p->wrap, (int)p->wrap_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, now);
    sqlite3_bind_text(st, 7, state, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc == SQLITE_CONSTRAINT_UNIQUE)
        dir_set_error(dir, "selector %s already exists for %s (retired keys count; remove it "
                           "or choose another)", p->selector, domain);
    else
        dir_set_db_error(dir, "directory");
    return -1;
}

int directory_dkim_add(struct directory *dir, const char *domain, const struct dkimkey_new *keys,
                       size_t n, enum dkimkey_mode mode,
                       const uint8_t spool_pk[DKIMKEY_SPOOL_PK_BYTES])
{
    char name[DIRECTORY_DOMAIN_MAX + 1];
    struct pending p[2];
    int r = -1;

    memset(p, 0, sizeof p);
    if (seal_init() < 0) {
        dir_set_error(dir, "libsodium cannot be initialised");
        return -1;
    }
    if (domain_name(dir, domain, name) < 0 || prepare_keys(dir, name, keys, n, spool_pk, p) < 0)
        goto out;
    if (dir_exec(dir, "BEGIN IMMEDIATE") < 0)
        goto out;
    int64_t now = (int64_t)time(NULL);
    bool ok = check_mode(dir, name, mode) == 0 &&
              (mode != DKIMKEY_REPLACE || move_state(dir, name, "active", "retired", now) >= 0);
    /* Ed25519 first: listing by id DESC then shows each pair RSA first */
    for (size_t j = 0; ok && j < n; j++) {
        size_t i = n == 2 && p[0].alg == DKIMKEY_RSA_SHA256 ? 1 - j : j;
        ok = insert_key(dir, name, &p[i], mode == DKIMKEY_NEXT ? "pending" : "active", now) == 0;
    }
    if (!ok || dir_exec(dir, "COMMIT") < 0) {
        dk_rollback(dir);
        goto out;
    }
    dir->own_changes++;
    r = 0;
out:
    sm_freep(&p[0].wrap);
    sm_freep(&p[1].wrap);
    return r;
}

int directory_dkim_activate(struct directory *dir, const char *domain)
{
    char name[DIRECTORY_DOMAIN_MAX + 1];

    if (domain_name(dir, domain, name) < 0 || dir_exec(dir, "BEGIN IMMEDIATE") < 0)
        return -1;
    int64_t now = (int64_t)time(NULL);
    int hosted = domain_hosted(dir, name);
    int64_t pending = hosted == 1 ? count_state(dir, name, "pending") : -1;
    if (hosted == 0)
        dir_set_error(dir, "domain %s is not hosted here", name);
    else if (pending == 0)
        dir_set_error(dir, "domain %s has no pending DKIM keys to activate", name);
    int n = -1;
    if (pending <= 0 || move_state(dir, name, "active", "retired", now) < 0 ||
        (n = move_state(dir, name, "pending", "active", now)) < 0 || dir_exec(dir, "COMMIT") < 0) {
        dk_rollback(dir);
        return -1;
    }
    dir->own_changes++;
    return n;
}

/* --- reading and removing ---------------------------------------------------------- */

int directory_dkim_list(struct directory *dir, const char *domain, bool active_only,
                        void (*fn)(void *arg, const struct dkimkey *k), void *arg)
{
    char name[DIRECTORY_DOMAIN_MAX + 1];
    struct dkimkey k;
    int rc, count = 0;

    if (domain_name(dir, domain, name) < 0)
        return -1;
    sqlite3_stmt *st = dk_prepare(dir, "SELECT " KEY_COLUMNS " FROM dkim_keys WHERE domain = ?1"
                                       " AND (?2 = 0 OR state = 'active')"
                                       " ORDER BY CASE state WHEN 'active' THEN 0"
                                       " WHEN 'pending' THEN 1 ELSE 2 END, id DESC");
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, active_only ? 1 : 0);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        key_from_row(st, &k);
        fn(arg, &k);
        count++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        return -1;
    }
    return count;
}

/* Look (name, selector), both normalised, up. */
static int key_get(struct directory *dir, const char *name, const char *selector,
                   struct dkimkey *k)
{
    sqlite3_stmt *st = dk_prepare(dir, "SELECT " KEY_COLUMNS " FROM dkim_keys"
                                       " WHERE domain = ?1 AND selector = ?2");
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, selector, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        key_from_row(st, k);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return rc == SQLITE_ROW ? 1 : 0;
    dir_set_db_error(dir, "directory");
    return -1;
}

/* Normalise both names; -1 with the handle's error. */
static int names(struct directory *dir, const char *domain, const char *selector,
                 char name[DIRECTORY_DOMAIN_MAX + 1], char sel[DKIMKEY_SELECTOR_MAX + 1])
{
    const char *why;
    char shown[72];
    if (domain_name(dir, domain, name) < 0)
        return -1;
    if (dkimkey_selector_normalise(selector, sel, &why) == 0)
        return 0;
    dir_printable(selector, shown, sizeof shown);
    dir_set_error(dir, "invalid selector '%s': %s", shown, why);
    return -1;
}

int directory_dkim_get(struct directory *dir, const char *domain, const char *selector,
                       struct dkimkey *k)
{
    char name[DIRECTORY_DOMAIN_MAX + 1], sel[DKIMKEY_SELECTOR_MAX + 1];
    if (names(dir, domain, selector, name, sel) < 0)
        return -1;
    return key_get(dir, name, sel, k);
}

int directory_dkim_remove(struct directory *dir, const char *domain, const char *selector)
{
    char name[DIRECTORY_DOMAIN_MAX + 1], sel[DKIMKEY_SELECTOR_MAX + 1];
    struct dkimkey k;

    if (names(dir, domain, selector, name, sel) < 0 || dir_exec(dir, "BEGIN IMMEDIATE") < 0)
        return -1;
    int found = key_get(dir, name, sel, &k);
    if (found == 0)
        dir_set_error(dir, "no DKIM key %s for %s", sel, name);
    else if (found == 1 && k.state == DKIMKEY_ACTIVE)
        dir_set_error(dir, "DKIM key %s of %s is active: rotate first, remove it once retired",
                      sel, name);
    /* pending and retired keys do not sign: they may go */
    sqlite3_stmt *st = found == 1 && k.state != DKIMKEY_ACTIVE
                           ? dk_prepare(dir, "DELETE FROM dkim_keys WHERE id = ?1")
                           : NULL;
    if (st != NULL)
        sqlite3_bind_int64(st, 1, k.id);
    if (st == NULL || dk_step_done(dir, st) < 0 || dir_exec(dir, "COMMIT") < 0) {
        dk_rollback(dir);
        return -1;
    }
    dir->own_changes++;
    /* as for a removed mailbox (directory-users.c): push the freed cells
     * out of the WAL so no copy of the wrap stays behind; best effort */
    sqlite3_wal_checkpoint_v2(dir->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    return 0;
}

/* The wrap of key id into a malloc'd buffer; 1, 0 (no such key), -1. */
static int wrap_get(struct directory *dir, const struct dkimkey *k, uint8_t **wrap_r,
                    size_t *len_r)
{
    sqlite3_stmt *st = dk_prepare(dir, "SELECT private_wrap FROM dkim_keys WHERE id = ?1"
                                       " AND domain = ?2 AND selector = ?3");
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, k->id);
    sqlite3_bind_text(st, 2, k->domain, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, k->selector, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), r = 0;
    if (rc == SQLITE_ROW) {
        int n = sqlite3_column_bytes(st, 0);
        const void *blob = sqlite3_column_blob(st, 0);
        if (n <= 0 || n > DKIMKEY_WRAP_MAX || blob == NULL) {
            dir_set_error(dir, "DKIM key %s of %s: damaged key wrap (length)", k->selector,
                          k->domain);
            r = -1;
        } else {
            *wrap_r = sm_malloc((size_t)n);
            memcpy(*wrap_r, blob, (size_t)n);
            *len_r = (size_t)n;
            r = 1;
        }
    } else if (rc != SQLITE_DONE) {
        dir_set_db_error(dir, "directory");
        r = -1;
    } else {
        dir_set_error(dir, "no DKIM key %s for %s", k->selector, k->domain);
    }
    sqlite3_finalize(st);
    return r;
}

EVP_PKEY *directory_dkim_private(struct directory *dir, const struct dkimkey *k,
                                 const uint8_t spool_sk[DKIMKEY_SPOOL_SK_BYTES])
{
    uint8_t pk[SEAL_PK_BYTES], *wrap = NULL;
    size_t len = 0;
    const char *why = NULL;
    char published[DKIMKEY_PUBLIC_MAX + 1];
    enum dkimkey_alg alg;

    if (seal_init() < 0 || seal_public_from_secret(pk, spool_sk) < 0) {
        dir_set_error(dir, "DKIM key %s of %s: unusable spool secret key", k->selector,
                      k->domain);
        return NULL;
    }
    if (wrap_get(dir, k, &wrap, &len) <= 0)
        return NULL;
    EVP_PKEY *key = key_unwrap(wrap, len, k->alg, k->domain, k->selector, pk, spool_sk, &why);
    sm_freep(&wrap);
    if (key != NULL && (dkimkey_public(key, &alg, published, &why) < 0 || alg != k->alg ||
                        strcmp(published, k->public_key) != 0)) {
        why = why != NULL ? why : "the private key does not match the published public key";
        EVP_PKEY_free(key);
        key = NULL;
    }
    if (key == NULL)
        dir_set_error(dir, "DKIM key %s of %s: %s", k->selector, k->domain, why);
    return key;
}
