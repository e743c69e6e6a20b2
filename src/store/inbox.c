/* inbox.c — disposable inboxes (see inbox.h).
 *
 * Creation order follows account.c: the files first (a directory nobody
 * references is harmless and removed on failure), the row last, in one
 * transaction that also checks the address was never used.  Removal is
 * the reverse: row, wraps and tombstone first, files after. */
#include "store/inbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "crypto/keywrap.h"
#include "crypto/seal.h"
#include "store/directory.h"
#include "store/mailbox.h"

_Static_assert(INBOX_TOKEN_BYTES == KEYWRAP_KEY_BYTES, "the token wraps MK");
_Static_assert(INBOX_LOOKUP_BYTES == SEAL_HASH_BYTES, "lookup hashes are BLAKE2b-256");
_Static_assert(INBOX_TOMBSTONE_BYTES == SEAL_HASH_BYTES, "tombstones are BLAKE2b-256");

#define JUNK_KEYWORD "$Junk"

static _Thread_local char errbuf[512];

int inbox_dir(char *out, size_t outlen, const char *data_dir, const char *mailbox)
{
    int n = snprintf(out, outlen, "%s/inboxes/%s", data_dir, mailbox);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* Domain-separated hashes: a token's lookup never equals anything else's
 * hash, and the keyed hash inside the token wrap is another function. */
static void lookup_hash(const uint8_t token[INBOX_TOKEN_BYTES], uint8_t out[INBOX_LOOKUP_BYTES])
{
    uint8_t key[SEAL_HASH_BYTES];
    seal_hash(key, "sealmail inbox lookup v1", 24);
    seal_keyed_hash2(out, key, "lookup", 6, token, INBOX_TOKEN_BYTES);
}

void inbox_tombstone_hash(const char *address, uint8_t out[INBOX_TOMBSTONE_BYTES])
{
    uint8_t key[SEAL_HASH_BYTES];
    seal_hash(key, "sealmail inbox tombstone v1", 27);
    seal_keyed_hash2(out, key, "address", 7, address, strlen(address));
}

void inbox_random_local(char out[INBOX_LOCAL_RANDOM_LEN + 1])
{
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyz23456789"; /* 32 symbols */
    uint8_t raw[INBOX_LOCAL_RANDOM_LEN];
    seal_random(raw, sizeof raw);
    for (size_t i = 0; i < sizeof raw; i++)
        out[i] = alphabet[raw[i] & 31];
    /* a local part starting with a digit is fine, but a letter reads better
     * (one of the first 16: 256 is a multiple of 16, so no modulo bias) */
    out[0] = alphabet[raw[0] & 15];
    out[INBOX_LOCAL_RANDOM_LEN] = '\0';
}

static void new_mailbox_id(char out[DIRECTORY_MAILBOX_ID_LEN + 1])
{
    uint8_t raw[DIRECTORY_MAILBOX_ID_LEN / 2];
    seal_random(raw, sizeof raw);
    seal_hex_encode(out, raw, sizeof raw);
}

static int fail(const char **error_r, int result, const char *fmt, const char *detail)
{
    snprintf(errbuf, sizeof errbuf, fmt, detail);
    *error_r = errbuf;
    return result;
}

/* MK, key pair and wraps of a new inbox; the token into token_raw. */
static int make_keys(struct directory_inbox *in, uint8_t *token_raw,
                     struct directory_inbox_wraps *w, uint8_t **mk_r, const char **error_r)
{
    uint8_t *mk = keywrap_mk_new(), *sk = seal_secret_alloc(SEAL_SK_BYTES);
    seal_keypair(in->public_key, sk);
    seal_random(token_raw, INBOX_TOKEN_BYTES);
    int r = keywrap_wrap_token(mk, token_raw, in->mailbox, w->token, &w->token_len, error_r) < 0 ||
                    keywrap_wrap_secret(mk, sk, in->mailbox, w->secret, &w->secret_len, error_r) < 0
                ? -1
                : 0;
    seal_secret_free(&sk);
    if (r < 0)
        seal_secret_free(&mk);
    *mk_r = mk;
    return r;
}

int inbox_create(struct directory *dir, const char *data_dir, const char *address,
                 int64_t expires, uint64_t quota, char token[INBOX_TOKEN_TEXT_LEN + 1],
                 struct directory_inbox *out, const char **error_r)
{
    struct directory_inbox in = {.quota_bytes = quota, .expires = expires};
    struct directory_inbox_wraps w = {0};
    uint8_t lookup[INBOX_LOOKUP_BYTES], tomb[INBOX_TOMBSTONE_BYTES];
    char idir[4096];
    const char *why;

    if (directory_address_normalise(address, in.address, &why) < 0)
        return fail(error_r, INBOX_INVALID, "invalid address: %s", why);
    new_mailbox_id(in.mailbox);
    if (inbox_dir(idir, sizeof idir, data_dir, in.mailbox) < 0)
        return fail(error_r, INBOX_ERROR, "%s", "data_dir path too long");
    uint8_t *token_raw = seal_secret_alloc(INBOX_TOKEN_BYTES), *mk = NULL;
    int r = make_keys(&in, token_raw, &w, &mk, error_r) < 0 ? INBOX_ERROR : INBOX_OK;
    if (r == INBOX_OK)
        r = mailbox_create(idir, mk, error_r) < 0 ? INBOX_ERROR : INBOX_OK;
    if (r == INBOX_OK) {
        lookup_hash(token_raw, lookup);
        inbox_tombstone_hash(in.address, tomb);
        int d = directory_inbox_add(dir, &in, lookup, tomb, &w);
        if (d < 0) {
            r = d == DIRECTORY_INBOX_TAKEN ? INBOX_TAKEN : INBOX_ERROR;
            fail(error_r, r, "%s", directory_error(dir));
            mailbox_destroy(idir, &why);
        }
    }
    if (r == INBOX_OK) {
        seal_hex_encode(token, token_raw, INBOX_TOKEN_BYTES);
        *out = in;
    }
    seal_secret_free(&token_raw);
    seal_secret_free(&mk);
    seal_wipe(&w, sizeof w);
    return r;
}

/* Messages the DMARC verdict filed into Junk join INBOX marked $Junk:
 * the web page has one list, and shows the mark. */
static int junk_to_inbox(struct mailbox *mb, const char **error_r)
{
    uint32_t *uids = NULL, *moved = NULL;
    size_t n = 0;
    int r = mailbox_uids(mb, "Junk", &uids, &n, error_r);
    if (r < 0 || n == 0) {
        free(uids);
        return r == MAILBOX_NONEXISTENT ? 0 : r;
    }
    moved = sm_calloc(n, sizeof *moved);
    r = mailbox_copy(mb, "Junk", uids, n, "INBOX", true, moved, NULL, NULL, NULL, error_r) < 0
            ? -1
            : 0;
    for (size_t i = 0; r == 0 && i < n; i++)
        if (moved[i] != 0 && mailbox_store_flags(mb, "INBOX", moved[i], MAILBOX_FLAGS_ADD, 0,
                                                 JUNK_KEYWORD, 0, NULL, error_r) < 0)
            r = -1;
    free(uids);
    free(moved);
    return r;
}

/* With the row and wraps in hand: MK, the secret key, the store. */
static int open_store(const char *data_dir, const struct directory_inbox_wraps *w,
                      const uint8_t *token_raw, struct inbox_open *o, const char **error_r)
{
    uint8_t *mk = NULL, *sk = NULL;
    char idir[4096];
    int r = keywrap_unwrap_token(w->token, w->token_len, token_raw, o->row.mailbox, &mk, error_r);
    if (r == KEYWRAP_WRONG)
        return INBOX_UNKNOWN; /* a lookup collision cannot happen; a tampered wrap can */
    if (r == KEYWRAP_OK)
        r = keywrap_unwrap_secret(mk, w->secret, w->secret_len, o->row.mailbox, &sk, error_r);
    if (r == KEYWRAP_OK && inbox_dir(idir, sizeof idir, data_dir, o->row.mailbox) == 0)
        o->mb = mailbox_open(idir, mk, o->row.public_key, sk, error_r);
    seal_secret_free(&mk);
    seal_secret_free(&sk);
    return o->mb != NULL ? INBOX_OK : INBOX_ERROR;
}

int inbox_open(struct directory *dir, const char *data_dir, const char *token, size_t token_len,
               int64_t now, struct inbox_open *o, const char **error_r)
{
    struct directory_inbox_wraps w;
    uint8_t lookup[INBOX_LOOKUP_BYTES];
    struct mailbox_import_stats st;
    memset(o, 0, sizeof *o);
    uint8_t *token_raw = seal_secret_alloc(INBOX_TOKEN_BYTES);
    int r = INBOX_UNKNOWN;
    if (seal_hex_decode(token_raw, INBOX_TOKEN_BYTES, token, token_len) == 0) {
        lookup_hash(token_raw, lookup);
        int found = directory_inbox_by_lookup(dir, lookup, &o->row, &w);
        if (found < 0)
            r = fail(error_r, INBOX_ERROR, "%s", directory_error(dir));
        else if (found > 0 && o->row.expires > now)
            r = open_store(data_dir, &w, token_raw, o, error_r);
        seal_wipe(&w, sizeof w);
    }
    seal_secret_free(&token_raw);
    if (r == INBOX_OK && (mailbox_import(o->mb, &st, error_r) < 0 || junk_to_inbox(o->mb, error_r) < 0))
        r = INBOX_ERROR;
    if (r != INBOX_OK)
        inbox_close(o);
    return r;
}

void inbox_close(struct inbox_open *o)
{
    mailbox_close(&o->mb);
}

int inbox_remove(struct directory *dir, const char *data_dir, const struct directory_inbox *in,
                 const char **error_r)
{
    uint8_t tomb[INBOX_TOMBSTONE_BYTES];
    char idir[4096];
    inbox_tombstone_hash(in->address, tomb);
    if (directory_inbox_remove(dir, in->id, tomb) < 0)
        return fail(error_r, INBOX_ERROR, "%s", directory_error(dir));
    log_info("inbox removed mailbox=%s keys=destroyed", in->mailbox);
    if (inbox_dir(idir, sizeof idir, data_dir, in->mailbox) < 0 ||
        mailbox_destroy(idir, error_r) < 0) {
        snprintf(errbuf, sizeof errbuf, "keys destroyed, but the files of inbox %s remain: %s",
                 in->mailbox, *error_r);
        *error_r = errbuf;
        return INBOX_ERROR;
    }
    return INBOX_OK;
}

struct expired {
    struct directory_inbox *v;
    size_t n;
};

static void collect_expired(void *arg, const struct directory_inbox *in)
{
    struct expired *e = arg;
    e->v[e->n++] = *in;
}

int inbox_sweep(struct directory *dir, const char *data_dir, int64_t now, size_t max,
                void (*removed_cb)(void *arg, const struct directory_inbox *in), void *arg,
                const char **error_r)
{
    struct expired e = {sm_calloc(max ? max : 1, sizeof *e.v), 0};
    int n = directory_inbox_expired(dir, now, max, collect_expired, &e);
    if (n < 0)
        fail(error_r, INBOX_ERROR, "%s", directory_error(dir));
    int removed = 0;
    for (size_t i = 0; n >= 0 && i < e.n; i++) {
        int r = inbox_remove(dir, data_dir, &e.v[i], error_r);
        if (r < 0)
            log_warn("inbox sweep-failed mailbox=%s error=\"%s\"", e.v[i].mailbox, *error_r);
        if (r < 0 && strncmp(*error_r, "keys destroyed", 14) != 0)
            continue;
        if (removed_cb != NULL)
            removed_cb(arg, &e.v[i]);
        removed++;
    }
    free(e.v);
    return n < 0 ? -1 : removed;
}
