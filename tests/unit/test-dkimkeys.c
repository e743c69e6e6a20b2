/* test-dkimkeys.c — DKIM signing keys in the directory (store/dkimkeys.h).
 *
 * Each test opens a fresh data directory (migrations applied) with one
 * hosted domain and a spool key pair made here.  What is proved: the
 * table exists at schema version 5; keys are created, listed, rotated
 * and removed under the rules of dkimkeys.h; the private keys are stored
 * only sealed (not found in the database files, not opened by another
 * spool key, not after a byte changed, not in another row); and the key
 * that opens with the spool secret key signs with mailauth/dkim.h's
 * signer a message that our verifier passes against the published
 * records (served from a test DNS table, as in test-dkim.c). */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/x509.h>
#include <sqlite3.h>

#include "core/buf.h"
#include "core/mem.h"
#include "crypto/seal.h"
#include "mailauth/dkim.h"
#include "mailauth/dnsview.h"
#include "store/dkimkeys.h"
#include "store/directory.h"

#define DOMAIN "example.com"

static char root[64];

struct fixture {
    char data_dir[128];
    struct directory *dir;
    uint8_t pk[SEAL_PK_BYTES];
    uint8_t *sk; /* secret memory */
    EVP_PKEY *rsa, *ed;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/test-dkimkeys.XXXXXX");
    return mkdtemp(root) == NULL || seal_init() < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static EVP_PKEY *generate(enum dkimkey_alg alg)
{
    const char *why = NULL;
    EVP_PKEY *k = dkimkey_generate(alg, &why);
    if (k == NULL)
        fail_msg("dkimkey_generate: %s", why);
    return k;
}

static int setup(void **state)
{
    static int n;
    const char *error = NULL;
    struct fixture *f = sm_malloc(sizeof *f);
    snprintf(f->data_dir, sizeof f->data_dir, "%s/d%d", root, n++);
    assert_int_equal(mkdir(f->data_dir, 0700), 0);
    f->dir = directory_open(f->data_dir, true, &error);
    if (f->dir == NULL)
        fail_msg("directory_open: %s", error);
    assert_int_equal(directory_domain_add(f->dir, DOMAIN), 0);
    f->sk = seal_secret_alloc(SEAL_SK_BYTES);
    seal_keypair(f->pk, f->sk);
    f->rsa = generate(DKIMKEY_RSA_SHA256);
    f->ed = generate(DKIMKEY_ED25519_SHA256);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    directory_close(&f->dir);
    seal_secret_free(&f->sk);
    EVP_PKEY_free(f->rsa);
    EVP_PKEY_free(f->ed);
    sm_freep(&f);
    return 0;
}

/* Add the fixture's two keys under selectors base+"r" and base+"e". */
static int add_pair(struct fixture *f, const char *domain, const char *base, EVP_PKEY *rsa,
                    EVP_PKEY *ed, enum dkimkey_mode mode)
{
    char r[64], e[64];
    snprintf(r, sizeof r, "%sr", base);
    snprintf(e, sizeof e, "%se", base);
    struct dkimkey_new keys[] = {{r, rsa}, {e, ed}};
    return directory_dkim_add(f->dir, domain, keys, 2, mode, f->pk);
}

struct keylist {
    struct dkimkey k[8];
    size_t n;
};

static void collect(void *arg, const struct dkimkey *k)
{
    struct keylist *l = arg;
    if (l->n < 8)
        l->k[l->n++] = *k;
}

static size_t list(struct fixture *f, bool active_only, struct keylist *l)
{
    memset(l, 0, sizeof *l);
    int n = directory_dkim_list(f->dir, DOMAIN, active_only, collect, l);
    assert_true(n >= 0);
    assert_int_equal((size_t)n, l->n);
    return l->n;
}

static void expect_error(struct fixture *f, int r, const char *part)
{
    assert_int_equal(r, -1);
    if (strstr(directory_error(f->dir), part) == NULL)
        fail_msg("error '%s' does not mention '%s'", directory_error(f->dir), part);
}

/* ------------------------------------------------------------ the schema */

static void test_migration(void **state)
{
    struct fixture *f = *state;
    char path[256];
    sqlite3 *db;
    sqlite3_stmt *st;
    snprintf(path, sizeof path, "%s/directory.db", f->data_dir);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &st,
                                        NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_true(sqlite3_column_int(st, 0) >= 5);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM dkim_keys", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* a second open (no create) accepts the migrated file */
    const char *error = NULL;
    struct directory *again = directory_open(f->data_dir, false, &error);
    assert_non_null(again);
    directory_close(&again);
}

/* ------------------------------------------------------------ names */

static void test_selectors(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out; /* out NULL: refused */
    } cases[] = {
        {"s202611r", "s202611r"},
        {"Sel-1.Sub", "sel-1.sub"},
        {"a", "a"},
        {"", NULL},
        {".a", NULL},
        {"a.", NULL},
        {"a..b", NULL},
        {"-a", NULL},
        {"a-", NULL},
        {"a-.b", NULL},
        {"a.-b", NULL},
        {"a_b", NULL},
        {"a b", NULL},
        {"s\xc3\xa9l", NULL},
        {"a;p=x", NULL},
        {"0123456789012345678901234567890123456789012345678901234567890123", NULL},
        {"012345678901234567890123456789012345678901234567890123456789012",
         "012345678901234567890123456789012345678901234567890123456789012"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[DKIMKEY_SELECTOR_MAX + 1];
        const char *why = NULL;
        int r = dkimkey_selector_normalise(cases[i].in, out, &why);
        if (cases[i].out == NULL) {
            if (r != -1 || why == NULL)
                fail_msg("selector '%s' accepted", cases[i].in);
        } else {
            if (r != 0)
                fail_msg("selector '%s' refused: %s", cases[i].in, why);
            assert_string_equal(out, cases[i].out);
        }
    }
    assert_string_equal(dkimkey_alg_name(DKIMKEY_RSA_SHA256), "rsa-sha256");
    assert_string_equal(dkimkey_alg_name(DKIMKEY_ED25519_SHA256), "ed25519-sha256");
    assert_string_equal(dkimkey_state_name(DKIMKEY_RETIRED), "retired");
}

static void test_public_and_record(void **state)
{
    struct fixture *f = *state;
    char pub[DKIMKEY_PUBLIC_MAX + 1], rec[DKIMKEY_RECORD_MAX + 1];
    enum dkimkey_alg alg;
    const char *why = NULL;

    assert_int_equal(EVP_PKEY_get_bits(f->rsa), DKIMKEY_RSA_BITS);
    assert_int_equal(dkimkey_public(f->rsa, &alg, pub, &why), 0);
    assert_int_equal(alg, DKIMKEY_RSA_SHA256);
    assert_int_equal(strlen(pub), 392); /* base64 of a 294-byte SubjectPublicKeyInfo */
    assert_int_equal(strncmp(pub, "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA", 44), 0);
    struct dkimkey k = {.alg = alg};
    memcpy(k.public_key, pub, sizeof pub);
    int reclen = dkimkey_record(&k, rec, sizeof rec);
    assert_int_equal(reclen, (int)strlen(rec));
    assert_int_equal(strncmp(rec, "v=DKIM1; k=rsa; p=MIIB", 22), 0);
    assert_int_equal(dkimkey_record(&k, rec, 20), -1);

    assert_int_equal(dkimkey_public(f->ed, &alg, pub, &why), 0);
    assert_int_equal(alg, DKIMKEY_ED25519_SHA256);
    assert_int_equal(strlen(pub), 44); /* 32 raw bytes, RFC 8463 */
    k.alg = alg;
    memcpy(k.public_key, pub, sizeof pub);
    dkimkey_record(&k, rec, sizeof rec);
    assert_int_equal(strncmp(rec, "v=DKIM1; k=ed25519; p=", 22), 0);

    /* small RSA and other key types are refused */
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(small);
    assert_non_null(ec);
    assert_int_equal(dkimkey_public(small, &alg, pub, &why), -1);
    assert_non_null(strstr(why, "2048"));
    assert_int_equal(dkimkey_public(ec, &alg, pub, &why), -1);
    struct dkimkey_new bad[] = {{"x", small}};
    expect_error(f, directory_dkim_add(f->dir, DOMAIN, bad, 1, DKIMKEY_FIRST, f->pk), "2048");
    EVP_PKEY_free(small);
    EVP_PKEY_free(ec);
}

/* ------------------------------------------------------------ adding */

static void test_add_and_list(void **state)
{
    struct fixture *f = *state;
    struct keylist l;

    assert_int_equal(list(f, false, &l), 0);
    assert_int_equal(add_pair(f, DOMAIN, "S202611", f->rsa, f->ed, DKIMKEY_FIRST), 0);
    assert_int_equal(list(f, true, &l), 2);
    assert_string_equal(l.k[0].selector, "s202611r"); /* stored lowercase */
    assert_int_equal(l.k[0].alg, DKIMKEY_RSA_SHA256);
    assert_string_equal(l.k[1].selector, "s202611e");
    assert_int_equal(l.k[1].alg, DKIMKEY_ED25519_SHA256);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(l.k[i].domain, DOMAIN);
        assert_int_equal(l.k[i].state, DKIMKEY_ACTIVE);
        assert_int_equal(l.k[i].retired, 0);
        assert_true(l.k[i].created > time(NULL) - 60 && l.k[i].created <= time(NULL));
    }
    char pub[DKIMKEY_PUBLIC_MAX + 1];
    enum dkimkey_alg alg;
    const char *why;
    dkimkey_public(f->rsa, &alg, pub, &why);
    assert_string_equal(l.k[0].public_key, pub);

    struct dkimkey k;
    assert_int_equal(directory_dkim_get(f->dir, "EXAMPLE.com.", "S202611E", &k), 1);
    assert_int_equal(k.id, l.k[1].id);
    assert_int_equal(directory_dkim_get(f->dir, DOMAIN, "nope", &k), 0);
    expect_error(f, directory_dkim_get(f->dir, DOMAIN, "no pe", &k), "invalid selector");

    /* generate twice: refused; the domain's keys are unchanged */
    expect_error(f, add_pair(f, DOMAIN, "other", f->rsa, f->ed, DKIMKEY_FIRST), "already has");
    /* not hosted, invalid */
    expect_error(f, add_pair(f, "example.org", "s1", f->rsa, f->ed, DKIMKEY_FIRST),
                 "example.org is not hosted");
    expect_error(f, add_pair(f, "exa mple.org", "s1", f->rsa, f->ed, DKIMKEY_FIRST),
                 "invalid domain");
    char out[DIRECTORY_DOMAIN_MAX + 1];
    expect_error(f, directory_dkim_domain(f->dir, "example.org", out), "not hosted");
    assert_int_equal(directory_dkim_domain(f->dir, "Example.COM", out), 0);
    assert_string_equal(out, DOMAIN);
    /* two keys of one algorithm, one selector twice */
    struct dkimkey_new same_alg[] = {{"a", f->rsa}, {"b", f->rsa}};
    struct dkimkey_new same_sel[] = {{"a", f->rsa}, {"a", f->ed}};
    assert_int_equal(directory_dkim_add(f->dir, "x.test", same_alg, 2, DKIMKEY_FIRST, f->pk), -1);
    assert_int_equal(directory_domain_add(f->dir, "x.test"), 0);
    expect_error(f, directory_dkim_add(f->dir, "x.test", same_alg, 2, DKIMKEY_FIRST, f->pk),
                 "two algorithms");
    expect_error(f, directory_dkim_add(f->dir, "x.test", same_sel, 2, DKIMKEY_FIRST, f->pk),
                 "two selectors");
    expect_error(f, directory_dkim_add(f->dir, "x.test", same_sel, 0, DKIMKEY_FIRST, f->pk),
                 "one or two");
    /* rotation needs active keys */
    expect_error(f, add_pair(f, "x.test", "s1", f->rsa, f->ed, DKIMKEY_REPLACE),
                 "no active DKIM keys");
    expect_error(f, add_pair(f, "x.test", "s1", f->rsa, f->ed, DKIMKEY_NEXT),
                 "no active DKIM keys");
    assert_int_equal(list(f, false, &l), 2);
}

/* ------------------------------------------------------------ rotation */

static void expect_states(struct fixture *f, const char *want)
{
    struct keylist l;
    char got[256] = "";
    list(f, false, &l);
    for (size_t i = 0; i < l.n; i++) {
        size_t len = strlen(got);
        snprintf(got + len, sizeof got - len, "%s:%s ", l.k[i].selector,
                 dkimkey_state_name(l.k[i].state));
        if ((l.k[i].state == DKIMKEY_RETIRED) != (l.k[i].retired != 0))
            fail_msg("key %s is %s, retired=%lld", l.k[i].selector,
                     dkimkey_state_name(l.k[i].state), (long long)l.k[i].retired);
    }
    if (strcmp(got, want) != 0)
        fail_msg("keys [%s], wanted [%s]", got, want);
}

static void test_rotate_and_remove(void **state)
{
    struct fixture *f = *state;
    struct keylist l;

    assert_int_equal(add_pair(f, DOMAIN, "s1", f->rsa, f->ed, DKIMKEY_FIRST), 0);
    EVP_PKEY *rsa2 = generate(DKIMKEY_RSA_SHA256), *ed2 = generate(DKIMKEY_ED25519_SHA256);
    expect_error(f, directory_dkim_activate(f->dir, DOMAIN), "no pending");
    expect_error(f, directory_dkim_activate(f->dir, "example.org"), "not hosted");
    /* a selector in use (even retired) cannot come back */
    expect_error(f, add_pair(f, DOMAIN, "s1", rsa2, ed2, DKIMKEY_NEXT), "already exists");
    expect_states(f, "s1r:active s1e:active "); /* the failed step changed nothing */

    /* step 1: the next pair is published but does not sign */
    assert_int_equal(add_pair(f, DOMAIN, "s2", rsa2, ed2, DKIMKEY_NEXT), 0);
    expect_states(f, "s1r:active s1e:active s2r:pending s2e:pending ");
    assert_int_equal(list(f, true, &l), 2);
    assert_string_equal(l.k[0].selector, "s1r");
    expect_error(f, add_pair(f, DOMAIN, "s3", f->rsa, f->ed, DKIMKEY_NEXT), "already has pending");
    expect_error(f, add_pair(f, DOMAIN, "s3", f->rsa, f->ed, DKIMKEY_REPLACE),
                 "already has pending");
    expect_error(f, add_pair(f, DOMAIN, "s3", f->rsa, f->ed, DKIMKEY_FIRST), "already has");

    /* step 2: it signs, the old pair is retired (and still published) */
    assert_int_equal(directory_dkim_activate(f->dir, "Example.Com"), 2);
    expect_states(f, "s2r:active s2e:active s1r:retired s1e:retired ");
    assert_int_equal(list(f, true, &l), 2);
    assert_string_equal(l.k[0].selector, "s2r");
    assert_string_equal(l.k[1].selector, "s2e");
    list(f, false, &l);
    assert_true(l.k[2].retired >= l.k[2].created);
    /* a retired key no longer signs, but its wrap stays intact */
    EVP_PKEY *old = directory_dkim_private(f->dir, &l.k[2], f->sk);
    assert_non_null(old);
    assert_int_equal(EVP_PKEY_eq(old, f->rsa), 1);
    EVP_PKEY_free(old);

    /* a compromised key: replaced in one step */
    assert_int_equal(add_pair(f, DOMAIN, "s3", f->rsa, f->ed, DKIMKEY_REPLACE), 0);
    expect_states(f, "s3r:active s3e:active s2r:retired s2e:retired s1r:retired s1e:retired ");

    expect_error(f, directory_dkim_remove(f->dir, DOMAIN, "s3r"), "active");
    expect_error(f, directory_dkim_remove(f->dir, DOMAIN, "s9r"), "no DKIM key s9r");
    expect_error(f, directory_dkim_remove(f->dir, DOMAIN, "s 9"), "invalid selector");
    assert_int_equal(directory_dkim_remove(f->dir, DOMAIN, "S1R"), 0);
    assert_int_equal(directory_dkim_remove(f->dir, DOMAIN, "s1e"), 0);
    assert_int_equal(directory_dkim_remove(f->dir, DOMAIN, "s2r"), 0);
    struct dkimkey k;
    assert_int_equal(directory_dkim_get(f->dir, DOMAIN, "s1r", &k), 0);
    /* a pending key may go too (it never signed) */
    assert_int_equal(add_pair(f, DOMAIN, "s4", rsa2, ed2, DKIMKEY_NEXT), 0);
    assert_int_equal(directory_dkim_remove(f->dir, DOMAIN, "s4r"), 0);
    expect_states(f, "s3r:active s3e:active s4e:pending s2e:retired ");

    /* removing the domain removes its keys */
    assert_int_equal(directory_domain_remove(f->dir, DOMAIN), 0);
    assert_int_equal(list(f, false, &l), 0);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(ed2);
}

/* ------------------------------------------------------------ the wraps */

static bool contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return true;
    return false;
}

/* Does any file of the data directory's database contain p[0..n)? */
static bool stored_in_clear(struct fixture *f, const uint8_t *p, size_t n)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/directory.db%s", f->data_dir, suffixes[i]);
        FILE *fp = fopen(path, "rb");
        if (fp == NULL)
            continue;
        struct sm_buf b;
        sm_buf_init(&b, 0);
        uint8_t tmp[8192];
        size_t got;
        while ((got = fread(tmp, 1, sizeof tmp, fp)) > 0)
            sm_buf_append(&b, tmp, got);
        fclose(fp);
        bool found = b.data != NULL && contains((const uint8_t *)b.data, b.len, p, n);
        sm_buf_free(&b);
        if (found)
            return true;
    }
    return false;
}

static void test_private_keys_are_sealed(void **state)
{
    struct fixture *f = *state;
    struct keylist l;

    assert_int_equal(add_pair(f, DOMAIN, "s1", f->rsa, f->ed, DKIMKEY_FIRST), 0);
    assert_int_equal(list(f, true, &l), 2);

    /* the private halves are nowhere in the database's files */
    uint8_t raw[32];
    size_t rawlen = sizeof raw;
    assert_int_equal(EVP_PKEY_get_raw_private_key(f->ed, raw, &rawlen), 1);
    assert_false(stored_in_clear(f, raw, rawlen));
    BIGNUM *d = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(f->rsa, "d", &d), 1);
    uint8_t dbytes[512];
    int dlen = BN_bn2bin(d, dbytes);
    BN_clear_free(d);
    assert_true(dlen > 200);
    assert_false(stored_in_clear(f, dbytes, 32)); /* its first 32 bytes */
    assert_false(stored_in_clear(f, dbytes + dlen - 32, 32));
    seal_wipe(raw, sizeof raw);
    seal_wipe(dbytes, sizeof dbytes);

    /* another spool key opens nothing */
    uint8_t other_pk[SEAL_PK_BYTES];
    uint8_t *other_sk = seal_secret_alloc(SEAL_SK_BYTES);
    seal_keypair(other_pk, other_sk);
    for (size_t i = 0; i < 2; i++) {
        assert_null(directory_dkim_private(f->dir, &l.k[i], other_sk));
        assert_non_null(strstr(directory_error(f->dir), "does not open with this spool key"));
    }
    seal_secret_free(&other_sk);

    /* the right one opens both, and gives the very keys that were added */
    EVP_PKEY *rsa = directory_dkim_private(f->dir, &l.k[0], f->sk);
    EVP_PKEY *ed = directory_dkim_private(f->dir, &l.k[1], f->sk);
    if (rsa == NULL || ed == NULL)
        fail_msg("unwrap: %s", directory_error(f->dir));
    assert_int_equal(EVP_PKEY_eq(rsa, f->rsa), 1);
    assert_int_equal(EVP_PKEY_eq(ed, f->ed), 1);
    assert_int_equal(EVP_PKEY_get_bits(rsa), 2048);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ed);

    /* a key described wrongly (other selector, other algorithm, other
     * published key) is not opened */
    struct dkimkey k = l.k[0];
    snprintf(k.selector, sizeof k.selector, "s1e");
    assert_null(directory_dkim_private(f->dir, &k, f->sk)); /* id and selector disagree */
    k = l.k[0];
    k.alg = DKIMKEY_ED25519_SHA256;
    assert_null(directory_dkim_private(f->dir, &k, f->sk));
    assert_non_null(strstr(directory_error(f->dir), "another algorithm"));
    k = l.k[1];
    k.public_key[3] = k.public_key[3] == 'A' ? 'B' : 'A';
    assert_null(directory_dkim_private(f->dir, &k, f->sk));
    assert_non_null(strstr(directory_error(f->dir), "does not match"));
}

/* Run SQL on the fixture's database through a second connection. */
static void sql(struct fixture *f, const char *text)
{
    char path[256];
    sqlite3 *db;
    char *msg = NULL;
    snprintf(path, sizeof path, "%s/directory.db", f->data_dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db, text, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", text, msg);
    sqlite3_close(db);
}

static void test_tampered_wraps(void **state)
{
    struct fixture *f = *state;
    struct keylist l;

    assert_int_equal(add_pair(f, DOMAIN, "s1", f->rsa, f->ed, DKIMKEY_FIRST), 0);
    EVP_PKEY *rsa2 = generate(DKIMKEY_RSA_SHA256), *ed2 = generate(DKIMKEY_ED25519_SHA256);
    assert_int_equal(add_pair(f, DOMAIN, "s2", rsa2, ed2, DKIMKEY_REPLACE), 0);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(ed2);
    assert_int_equal(list(f, false, &l), 4); /* s2r s2e s1r s1e */

    /* the two RSA wraps swapped: each is bound to its selector */
    sql(f, "UPDATE dkim_keys SET private_wrap = (SELECT private_wrap FROM dkim_keys"
           " WHERE selector = 's1r') WHERE selector = 's2r'");
    assert_null(directory_dkim_private(f->dir, &l.k[0], f->sk));
    assert_non_null(strstr(directory_error(f->dir), "damaged or belongs to another key"));
    /* one byte flipped in the ciphertext, in the sealed file key, cut */
    sql(f, "UPDATE dkim_keys SET private_wrap = substr(private_wrap, 1, 149) ||"
           " (CASE WHEN substr(private_wrap, 150, 1) = x'00' THEN x'01' ELSE x'00' END) ||"
           " substr(private_wrap, 151) WHERE selector = 's2e'");
    assert_null(directory_dkim_private(f->dir, &l.k[1], f->sk));
    sql(f, "UPDATE dkim_keys SET private_wrap = substr(private_wrap, 1, 10) ||"
           " (CASE WHEN substr(private_wrap, 11, 1) = x'00' THEN x'01' ELSE x'00' END) ||"
           " substr(private_wrap, 12) WHERE selector = 's1e'");
    assert_null(directory_dkim_private(f->dir, &l.k[3], f->sk));
    sql(f, "UPDATE dkim_keys SET private_wrap = substr(private_wrap, 1, 100)"
           " WHERE selector = 's1r'");
    assert_null(directory_dkim_private(f->dir, &l.k[2], f->sk));
    assert_non_null(strstr(directory_error(f->dir), "length"));
    sql(f, "UPDATE dkim_keys SET private_wrap = x'02' || substr(private_wrap, 2)"
           " WHERE selector = 's2r'");
    assert_null(directory_dkim_private(f->dir, &l.k[0], f->sk));
    assert_non_null(strstr(directory_error(f->dir), "unknown version"));
}

/* ------------------------------------------------------------ signing */

/* Feed a message to header/done/body callbacks: header fields with their
 * folding, then the body in one piece. */
static void feed(const char *m, void (*header)(void *, const char *, size_t),
                 void (*done)(void *), void (*body)(void *, const void *, size_t), void *obj)
{
    size_t n = strlen(m), i = 0;
    while (i < n && !(m[i] == '\r' && m[i + 1] == '\n')) {
        size_t e = i;
        do {
            e = (size_t)(strchr(m + e, '\n') - m) + 1;
        } while (m[e] == ' ' || m[e] == '\t');
        header(obj, m + i, e - i);
        i = e;
    }
    done(obj);
    body(obj, m + i + 2, n - i - 2);
}

static void s_header(void *o, const char *p, size_t n)
{
    dkim_signer_header(o, p, n);
}
static void s_done(void *o)
{
    dkim_signer_headers_done(o);
}
static void s_body(void *o, const void *p, size_t n)
{
    dkim_signer_body(o, p, n);
}
static void v_header(void *o, const char *p, size_t n)
{
    dkim_verifier_header(o, p, n);
}
static void v_done(void *o)
{
    dkim_verifier_headers_done(o);
}
static void v_body(void *o, const void *p, size_t n)
{
    dkim_verifier_body(o, p, n);
}

/* Answer the view's pending TXT questions from the listed keys' records
 * (what `sealmail dkim show` publishes); anything else is NXDOMAIN. */
static void answer_from_keys(struct dnsview *view, const struct keylist *l)
{
    while (dnsview_pending(view) > 0) {
        const char *qname;
        uint16_t qtype;
        dnsview_pending_at(view, 0, &qname, &qtype);
        char *name = sm_strdup(qname);
        struct dns_answer *a = NULL;
        for (size_t i = 0; i < l->n; i++) {
            char owner[300], rec[DKIMKEY_RECORD_MAX + 1];
            snprintf(owner, sizeof owner, "%s._domainkey.%s", l->k[i].selector, l->k[i].domain);
            if (qtype != DNS_T_TXT || strcasecmp(owner, name) != 0)
                continue;
            assert_true(dkimkey_record(&l->k[i], rec, sizeof rec) > 0);
            a = dns_answer_new(DNS_OK);
            struct dns_rr rr = {.type = DNS_T_TXT, .data = (uint8_t *)rec, .len = strlen(rec)};
            dns_answer_add(a, &rr);
        }
        dnsview_put(view, name, qtype, a != NULL ? a : dns_answer_new(DNS_NXDOMAIN));
        free(name);
    }
}

static const char message[] = "From: Alice <alice@example.com>\r\n"
                              "To: bob@example.org\r\n"
                              "Subject: signed with a key from the directory\r\n"
                              "Date: Tue, 03 Nov 2026 10:00:00 +0000\r\n"
                              "Message-ID: <dkimkeys-1@example.com>\r\n"
                              "\r\n"
                              "Hello Bob,\r\n"
                              "\r\n"
                              "this body is covered by bh=.\r\n";

static void test_sign_and_verify(void **state)
{
    struct fixture *f = *state;
    struct keylist l;
    const char *hdrs[] = {"from", "to", "subject", "date", "message-id"};
    int64_t now = (int64_t)time(NULL);

    assert_int_equal(add_pair(f, DOMAIN, "s202611", f->rsa, f->ed, DKIMKEY_FIRST), 0);
    assert_int_equal(list(f, true, &l), 2);

    /* queued's path: active keys, opened with the spool secret key */
    struct sm_buf signed_msg;
    sm_buf_init(&signed_msg, 0);
    for (size_t i = 0; i < l.n; i++) {
        EVP_PKEY *key = directory_dkim_private(f->dir, &l.k[i], f->sk);
        if (key == NULL)
            fail_msg("unwrap: %s", directory_error(f->dir));
        struct dkim_sign_params p = {.key = key, .domain = l.k[i].domain,
                                     .selector = l.k[i].selector, .headers = hdrs,
                                     .n_headers = 5, .time = now, .expire = -1};
        const char *why = NULL;
        struct dkim_signer *s = dkim_signer_new(&p, &why);
        if (s == NULL)
            fail_msg("dkim_signer_new: %s", why);
        feed(message, s_header, s_done, s_body, s);
        char *field = dkim_signer_finish(s, &why);
        if (field == NULL)
            fail_msg("dkim_signer_finish: %s", why);
        assert_non_null(strstr(field, i == 0 ? "a=rsa-sha256" : "a=ed25519-sha256"));
        sm_buf_puts(&signed_msg, field);
        free(field);
        dkim_signer_free(&s);
        EVP_PKEY_free(key);
    }
    sm_buf_puts(&signed_msg, message);

    struct dkim_verifier *v = dkim_verifier_new(NULL);
    feed(signed_msg.data, v_header, v_done, v_body, v);
    dkim_verifier_body_done(v);
    struct dnsview *view = dnsview_new();
    int rounds = 0;
    while (dkim_verifier_result(v, view, now) == MAILAUTH_NEED_DNS) {
        assert_true(++rounds < 3);
        answer_from_keys(view, &l);
    }
    assert_int_equal(dkim_verifier_count(v), 2);
    for (size_t i = 0; i < 2; i++) {
        const struct dkim_sig_result *r = dkim_verifier_get(v, i);
        if (r->result != DKIM_PASS)
            fail_msg("signature %zu (s=%s a=%s): %s (%s)", i, r->s, r->a,
                     dkim_result_name(r->result), r->reason);
        assert_string_equal(r->d, DOMAIN);
    }
    /* signature 0 is the topmost: the RSA one, first in the header */
    assert_int_equal(dkim_verifier_get(v, 0)->key_bits, 2048);
    assert_int_equal(dkim_verifier_get(v, 1)->key_bits, 256);
    dnsview_free(&view);
    dkim_verifier_free(&v);

    /* the same message against the records of other keys fails */
    EVP_PKEY *rsa2 = generate(DKIMKEY_RSA_SHA256), *ed2 = generate(DKIMKEY_ED25519_SHA256);
    for (size_t i = 0; i < 2; i++) {
        enum dkimkey_alg alg;
        const char *why;
        assert_int_equal(dkimkey_public(i == 0 ? rsa2 : ed2, &alg, l.k[i].public_key, &why), 0);
    }
    v = dkim_verifier_new(NULL);
    feed(signed_msg.data, v_header, v_done, v_body, v);
    view = dnsview_new();
    while (dkim_verifier_result(v, view, now) == MAILAUTH_NEED_DNS)
        answer_from_keys(view, &l);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(dkim_verifier_get(v, i)->result, DKIM_FAIL);
    dnsview_free(&view);
    dkim_verifier_free(&v);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(ed2);
    sm_buf_free(&signed_msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migration, setup, teardown),
        cmocka_unit_test(test_selectors),
        cmocka_unit_test_setup_teardown(test_public_and_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_and_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotate_and_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_keys_are_sealed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_wraps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_and_verify, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
