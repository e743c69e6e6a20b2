/* srs.c — the Sender Rewriting Scheme (see srs.h for the format and the
 * choices).
 *
 * Design: pure functions over bounded strings; no I/O except the secret
 * file.  Parsing splits a local part at '=' into at most four fields, so
 * the work is linear in at most SRS_ADDRESS_MAX octets, and every field is
 * checked (syntax, then hash, then day) before anything is written to the
 * caller's buffer.  The HMAC is OpenSSL's HMAC-SHA1 (libsrs2's choice, and
 * still a sound MAC); the secrets stay in seal_secret_alloc() memory and
 * are handed to OpenSSL only as the key of a one-shot HMAC(), whose
 * context OpenSSL cleanses when it frees it. */
#include "mailauth/srs.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/mem.h"
#include "crypto/seal.h"

#define DAY_SECONDS 86400
#define DAY_SLOTS 1024      /* two base32 digits */
#define HASH_CHARS_MAX 27   /* base64 characters that carry SHA-1 bits */
#define HASH_DATA_MAX (3 * SRS_ADDRESS_MAX)

_Static_assert(SRS_HASH_LEN_MAX <= HASH_CHARS_MAX, "hash longer than a SHA-1 digest");
_Static_assert(SRS_MAX_AGE_MAX + 2 < DAY_SLOTS, "age window inside the day cycle");

static const char base32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

struct srs_secret {
    size_t len;
    char text[SRS_SECRET_TEXT_MAX];
};

struct srs {
    struct srs_options o;
    size_t n;                  /* secrets held */
    struct srs_secret *keys;   /* SRS_SECRETS_MAX of them, in secret memory */
};

/* A string slice: fields of an address point into the caller's text. */
struct span {
    const char *p;
    size_t len;
};

/* ---- characters and syntax ------------------------------------------- */

static unsigned char fold(unsigned char c)
{
    /* ASCII lowercase without a branch on the (possibly secret) value */
    return (unsigned char)(c | (unsigned char)(((unsigned)(c - 'A') < 26u) << 5));
}

static bool is_sep(char c)
{
    return c == '=' || c == '+' || c == '-';
}

/* RFC 5322 atext, plus UTF-8 octets (RFC 6531). */
static bool is_atext(unsigned char c)
{
    if (c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* A dot-atom local part: atext runs joined by single dots. */
static bool valid_local(struct span s)
{
    if (s.len == 0 || s.p[0] == '.' || s.p[s.len - 1] == '.')
        return false;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '.' ? i + 1 < s.len && s.p[i + 1] == '.' : !is_atext(c))
            return false;
    }
    return true;
}

/* LDH labels of 1..63 octets (or UTF-8 U-labels), no trailing dot. */
static bool valid_domain(struct span s)
{
    if (s.len == 0 || s.len > SRS_DOMAIN_MAX)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '.') {
            if (label == 0 || s.p[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        bool ok = c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || (c == '-' && label > 0);
        if (!ok || ++label > 63)
            return false;
    }
    return label > 0 && s.p[s.len - 1] != '-';
}

bool srs_is_srs(const char *local, size_t len)
{
    return len > 4 && strncasecmp(local, "SRS", 3) == 0 && (local[3] == '0' || local[3] == '1') &&
           is_sep(local[4]);
}

/* Split s at its first '=' into head and *rest; false if there is none. */
static bool take_field(struct span *rest, struct span *head)
{
    const char *eq = memchr(rest->p, '=', rest->len);
    if (eq == NULL)
        return false;
    head->p = rest->p;
    head->len = (size_t)(eq - rest->p);
    rest->len -= head->len + 1;
    rest->p = eq + 1;
    return true;
}

/* ---- SRS0 and SRS1 fields -------------------------------------------- */

struct srs0 {
    struct span hash, stamp, host, user;
};

struct srs1 {
    struct span hash, host, rest; /* rest: what followed "SRS0", separator first */
};

static int stamp_value(struct span s)
{
    if (s.len != 2)
        return -1;
    int v = 0;
    for (size_t i = 0; i < 2; i++) {
        const char *d = strchr(base32, s.p[i] >= 'a' && s.p[i] <= 'z' ? s.p[i] - 32 : s.p[i]);
        if (s.p[i] == '\0' || d == NULL)
            return -1;
        v = v * 32 + (int)(d - base32);
    }
    return v;
}

/* After "SRS0<sep>": hash=TT=host=user (user may hold '='). */
static bool parse_srs0(struct span s, struct srs0 *r)
{
    if (!take_field(&s, &r->hash) || !take_field(&s, &r->stamp) || !take_field(&s, &r->host))
        return false;
    r->user = s;
    return r->hash.len > 0 && stamp_value(r->stamp) >= 0 && valid_domain(r->host) &&
           valid_local(r->user);
}

/* After "SRS1<sep>": hash=host=<sep>... */
static bool parse_srs1(struct span s, struct srs1 *r)
{
    if (!take_field(&s, &r->hash) || !take_field(&s, &r->host))
        return false;
    r->rest = s;
    return r->hash.len > 0 && valid_domain(r->host) && s.len > 1 && is_sep(s.p[0]);
}

/* ---- the hash -------------------------------------------------------- */

/* base64 of HMAC-SHA1(secret k, parts lowercased and joined) into out
 * (HASH_CHARS_MAX characters and a NUL). */
static void hash_make(const struct srs *srs, size_t k, const struct span *parts, size_t n,
                      char out[HASH_CHARS_MAX + 1])
{
    unsigned char data[HASH_DATA_MAX];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (parts[i].len > sizeof data - len)
            sm_panic("srs: hash input of %zu octets", len + parts[i].len);
        for (size_t j = 0; j < parts[i].len; j++)
            data[len++] = fold((unsigned char)parts[i].p[j]);
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    const struct srs_secret *key = &srs->keys[k];
    if (HMAC(EVP_sha1(), key->text, (int)key->len, data, len, md, &mdlen) == NULL || mdlen != 20)
        sm_panic("srs: HMAC-SHA1 failed");
    struct sm_buf b;
    sm_buf_init(&b, 0);
    base64_encode(md, mdlen, &b);
    memcpy(out, b.data, HASH_CHARS_MAX);
    out[HASH_CHARS_MAX] = '\0';
    sm_buf_free(&b);
    seal_wipe(md, sizeof md);
}

/* Whether hash verifies under one of the secrets: at least hash_len
 * characters, compared case-insensitively and in constant time with as
 * many characters of the expected hash. */
static bool hash_verify(const struct srs *srs, struct span hash, const struct span *parts,
                        size_t n)
{
    if (hash.len < srs->o.hash_len || hash.len > HASH_CHARS_MAX)
        return false;
    unsigned char got[HASH_CHARS_MAX];
    for (size_t i = 0; i < hash.len; i++)
        got[i] = fold((unsigned char)hash.p[i]);
    bool ok = false;
    for (size_t k = 0; k < srs->n; k++) {
        char want[HASH_CHARS_MAX + 1];
        hash_make(srs, k, parts, n, want);
        for (size_t i = 0; i < hash.len; i++)
            want[i] = (char)fold((unsigned char)want[i]);
        ok |= CRYPTO_memcmp(got, want, hash.len) == 0; /* no early exit */
    }
    return ok;
}

/* ---- days ------------------------------------------------------------ */

static unsigned today(time_t now)
{
    return now <= 0 ? 0 : (unsigned)((uint64_t)now / DAY_SECONDS % DAY_SLOTS);
}

static bool stamp_fresh(const struct srs *srs, int stamp, time_t now)
{
    unsigned age = (today(now) - (unsigned)stamp) % DAY_SLOTS;
    return age <= srs->o.max_age_days || age == DAY_SLOTS - 1; /* or tomorrow */
}

/* ---- options, secrets ------------------------------------------------ */

void srs_options_default(struct srs_options *o)
{
    o->max_age_days = SRS_MAX_AGE_DEFAULT;
    o->hash_len = SRS_HASH_LEN_DEFAULT;
}

struct srs *srs_new(const struct srs_options *opts, const char **error_r)
{
    struct srs_options o;
    srs_options_default(&o);
    if (opts != NULL)
        o = *opts;
    if (o.max_age_days < 1 || o.max_age_days > SRS_MAX_AGE_MAX) {
        *error_r = "srs: max_age_days must be 1..365";
        return NULL;
    }
    if (o.hash_len < SRS_HASH_LEN_DEFAULT || o.hash_len > SRS_HASH_LEN_MAX) {
        *error_r = "srs: hash_len must be 4..16";
        return NULL;
    }
    if (seal_init() < 0) { /* secret memory needs libsodium ready */
        *error_r = "srs: libsodium cannot be used";
        return NULL;
    }
    struct srs *srs = sm_malloc(sizeof *srs);
    srs->o = o;
    srs->keys = seal_secret_alloc(sizeof *srs->keys * SRS_SECRETS_MAX);
    return srs;
}

void srs_free(struct srs **srs)
{
    if (srs == NULL || *srs == NULL)
        return;
    seal_secret_free(&(*srs)->keys);
    sm_freep(srs);
}

int srs_add_secret(struct srs *srs, const char *text, size_t len, const char **error_r)
{
    if (srs->n == SRS_SECRETS_MAX) {
        *error_r = "srs: too many secrets (at most 8)";
        return -1;
    }
    if (len > SRS_SECRET_TEXT_MAX) {
        *error_r = "srs: secret too long (at most 128 characters)";
        return -1;
    }
    uint8_t raw[SRS_SECRET_TEXT_MAX];
    long n = base64_decode(text, len, raw, sizeof raw, BASE64_STRICT);
    seal_wipe(raw, sizeof raw);
    if (n < SRS_SECRET_MIN_BYTES) {
        *error_r = "srs: a secret must be base64 of at least 16 bytes";
        return -1;
    }
    struct srs_secret *k = &srs->keys[srs->n++];
    memcpy(k->text, text, len);
    k->len = len;
    return 0;
}

/* The next line of text[*pos..len) without comment and surrounding blanks. */
static bool next_line(const char *text, size_t len, size_t *pos, struct span *line)
{
    if (*pos >= len)
        return false;
    const char *p = text + *pos;
    const char *nl = memchr(p, '\n', len - *pos);
    size_t n = nl != NULL ? (size_t)(nl - p) : len - *pos;
    *pos += n + 1;
    const char *hash = memchr(p, '#', n);
    if (hash != NULL)
        n = (size_t)(hash - p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
        n--;
    while (n > 0 && (*p == ' ' || *p == '\t')) {
        p++;
        n--;
    }
    line->p = p;
    line->len = n;
    return true;
}

int srs_add_secrets_text(struct srs *srs, const char *text, size_t len, const char **error_r)
{
    size_t pos = 0;
    int added = 0;
    struct span line;
    while (next_line(text, len, &pos, &line)) {
        if (line.len == 0)
            continue;
        if (srs_add_secret(srs, line.p, line.len, error_r) < 0)
            return -1;
        added++;
    }
    if (added == 0) {
        *error_r = "srs: the secret file holds no secret";
        return -1;
    }
    return added;
}

/* Read a secret file into secret memory (*buf_r, *len_r; a NUL follows). */
static int read_secret_file(const char *path, char **buf_r, size_t *len_r, const char **error_r)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        *error_r = "srs: cannot open the secret file";
        return -1;
    }
    struct stat st;
    int ret = -1;
    if (fstat(fd, &st) < 0) {
        *error_r = "srs: cannot stat the secret file";
    } else if (!S_ISREG(st.st_mode) || st.st_size > SRS_SECRET_FILE_MAX) {
        *error_r = "srs: the secret file is not a regular file of at most 16 KiB";
        errno = EINVAL;
    } else if ((st.st_mode & 077) != 0) {
        *error_r = "srs: the secret file is open to group or others (want mode 0600)";
        errno = EPERM;
    } else {
        size_t cap = (size_t)st.st_size + 1;
        char *buf = seal_secret_alloc(cap);
        ssize_t n = sm_read_full(fd, buf, cap - 1);
        if (n < 0) {
            *error_r = "srs: cannot read the secret file";
            seal_secret_free(&buf);
        } else {
            buf[n] = '\0';
            *buf_r = buf;
            *len_r = (size_t)n;
            ret = 0;
        }
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return ret;
}

struct srs *srs_load(const char *path, const struct srs_options *opts, const char **error_r)
{
    struct srs *srs = srs_new(opts, error_r);
    if (srs == NULL)
        return NULL;
    char *text = NULL;
    size_t len = 0;
    if (read_secret_file(path, &text, &len, error_r) < 0) {
        srs_free(&srs);
        return NULL;
    }
    if (srs_add_secrets_text(srs, text, len, error_r) < 0) {
        srs_free(&srs);
        errno = EINVAL;
    }
    seal_secret_free(&text);
    return srs;
}

/* ---- generating a secret file ---------------------------------------- */

#define GEN_HEADER "# sealmail SRS secrets, base64, one a line: the first signs, all verify\n"
#define GEN_TEXT_MAX (sizeof GEN_HEADER + SRS_SECRETS_MAX * (SRS_SECRET_TEXT_MAX + 1))

/* The file's new text into secret memory: header, a new secret, then the
 * secrets of old (NULL or a parsed file), at most SRS_SECRETS_MAX in all. */
static size_t gen_text(char *out, const struct srs *old)
{
    uint8_t *raw = seal_secret_alloc(SRS_SECRET_GEN_BYTES);
    seal_random(raw, SRS_SECRET_GEN_BYTES);
    struct sm_buf b;
    sm_buf_init(&b, 0);
    base64_encode(raw, SRS_SECRET_GEN_BYTES, &b);
    seal_secret_free(&raw);
    size_t len = sizeof GEN_HEADER - 1;
    memcpy(out, GEN_HEADER, len);
    memcpy(out + len, b.data, b.len); /* @UNSAFE: 44 < SRS_SECRET_TEXT_MAX */
    len += b.len;
    out[len++] = '\n';
    sm_buf_wipe_free(&b);
    for (size_t i = 0; old != NULL && i < old->n && i + 1 < SRS_SECRETS_MAX; i++) {
        memcpy(out + len, old->keys[i].text, old->keys[i].len); /* @UNSAFE: see GEN_TEXT_MAX */
        len += old->keys[i].len;
        out[len++] = '\n';
    }
    return len;
}

/* The secrets of the file at path into *old_r (NULL when it does not
 * exist and may not).  Returns 0 or -1 with *error_r. */
static int gen_old(const char *path, bool rotate, struct srs **old_r, const char **error_r)
{
    *old_r = NULL;
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        *error_r = "srs: cannot stat the secret file";
        return -1;
    }
    if (!rotate) {
        *error_r = "srs: the secret file exists already (rotate it instead)";
        errno = EEXIST;
        return -1;
    }
    *old_r = srs_load(path, NULL, error_r);
    return *old_r != NULL ? 0 : -1;
}

/* Write len bytes to a new 0600 temporary file beside path, synced; its
 * name into tmp.  Returns 0 or -1 with *error_r. */
static int gen_write_tmp(const char *path, const char *text, size_t len, char *tmp,
                         size_t tmpsize, const char **error_r)
{
    if ((size_t)snprintf(tmp, tmpsize, "%s.tmp.XXXXXX", path) >= tmpsize) {
        *error_r = "srs: secret file path too long";
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        *error_r = "srs: cannot create a temporary secret file";
        return -1;
    }
    if (fchmod(fd, 0600) < 0 || sm_write_full(fd, text, len) < 0 || fsync(fd) < 0) {
        int saved = errno;
        close(fd);
        unlink(tmp);
        errno = saved;
        *error_r = "srs: cannot write the temporary secret file";
        return -1;
    }
    if (close(fd) < 0) {
        unlink(tmp);
        *error_r = "srs: cannot write the temporary secret file";
        return -1;
    }
    return 0;
}

/* fsync the directory holding path, so the rename is durable. */
static int sync_dir_of(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if ((size_t)snprintf(dir, sizeof dir, "%.*s", (int)(slash - path) + (slash == path),
                              path) >= sizeof dir)
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int ret = fsync(fd);
    close(fd);
    return ret;
}

int srs_secrets_generate(const char *path, bool rotate, const char **error_r)
{
    if (seal_init() < 0) {
        *error_r = "srs: libsodium cannot be used";
        return -1;
    }
    struct srs *old = NULL;
    if (gen_old(path, rotate, &old, error_r) < 0)
        return -1;
    char *text = seal_secret_alloc(GEN_TEXT_MAX);
    size_t len = gen_text(text, old);
    srs_free(&old);
    char tmp[4096];
    int ret = gen_write_tmp(path, text, len, tmp, sizeof tmp, error_r);
    seal_secret_free(&text);
    if (ret < 0)
        return -1;
    /* without rotate, link() refuses to replace a file made meanwhile */
    if (rotate ? rename(tmp, path) < 0 : link(tmp, path) < 0) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
        *error_r = rotate ? "srs: cannot rename the new secret file into place"
                          : "srs: cannot create the secret file";
        return -1;
    }
    if (!rotate)
        unlink(tmp);
    if (sync_dir_of(path) < 0) {
        *error_r = "srs: cannot sync the secret file's directory";
        return -1;
    }
    return 0;
}

/* ---- forward --------------------------------------------------------- */

/* Split address text (len octets) at its last '@'. */
static bool split_address(const char *a, size_t len, struct span *local, struct span *domain)
{
    const char *at = memrchr(a, '@', len);
    if (at == NULL)
        return false;
    local->p = a;
    local->len = (size_t)(at - a);
    domain->p = at + 1;
    domain->len = len - local->len - 1;
    return true;
}

/* out = local "@" domain, if it fits every limit. */
static enum srs_result finish(const struct sm_buf *local, struct span domain,
                              char out[SRS_ADDRESS_MAX + 1])
{
    if (local->len > SRS_LOCAL_MAX || local->len + 1 + domain.len > SRS_ADDRESS_MAX)
        return SRS_TOO_LONG;
    memcpy(out, local->data, local->len);
    out[local->len] = '@';
    memcpy(out + local->len + 1, domain.p, domain.len);
    out[local->len + 1 + domain.len] = '\0';
    return SRS_OK;
}

/* Append "=" HASH "=" to b, HASH made with the signing secret. */
static int put_hash(const struct srs *srs, struct sm_buf *b, const struct span *parts, size_t n)
{
    char h[HASH_CHARS_MAX + 1];
    hash_make(srs, 0, parts, n, h);
    return sm_buf_puts(b, "=") | sm_buf_append(b, h, srs->o.hash_len) | sm_buf_puts(b, "=");
}

/* The rewritten local part of sender (local@host) into b (at most
 * SRS_LOCAL_MAX + 1 octets; longer means too long). */
static int rewrite_local(const struct srs *srs, struct span local, struct span host, time_t now,
                         struct sm_buf *b)
{
    struct srs1 s1;
    struct srs0 s0;
    bool tagged = srs_is_srs(local.p, local.len);
    struct span after = {local.p + 5, tagged ? local.len - 5 : 0};
    if (tagged && local.p[3] == '1' && parse_srs1(after, &s1)) {
        /* re-sign, still naming the first forwarder */
        struct span parts[2] = {s1.host, s1.rest};
        return sm_buf_puts(b, "SRS1") | put_hash(srs, b, parts, 2) |
               sm_buf_append(b, s1.host.p, s1.host.len) | sm_buf_puts(b, "=") |
               sm_buf_append(b, s1.rest.p, s1.rest.len);
    }
    if (tagged && local.p[3] == '0' && parse_srs0(after, &s0)) {
        /* keep the previous forwarder's SRS0 (from its separator on) */
        struct span rest = {local.p + 4, local.len - 4};
        struct span parts[2] = {host, rest};
        return sm_buf_puts(b, "SRS1") | put_hash(srs, b, parts, 2) |
               sm_buf_append(b, host.p, host.len) | sm_buf_puts(b, "=") |
               sm_buf_append(b, rest.p, rest.len);
    }
    unsigned d = today(now);
    char stamp[2] = {base32[d >> 5], base32[d & 31]};
    struct span parts[3] = {{stamp, 2}, host, local};
    return sm_buf_puts(b, "SRS0") | put_hash(srs, b, parts, 3) | sm_buf_append(b, stamp, 2) |
           sm_buf_puts(b, "=") | sm_buf_append(b, host.p, host.len) | sm_buf_puts(b, "=") |
           sm_buf_append(b, local.p, local.len);
}

enum srs_result srs_forward(const struct srs *srs, const char *sender, const char *domain,
                            time_t now, char out[SRS_ADDRESS_MAX + 1])
{
    if (srs->n == 0)
        sm_panic("srs: forward without a secret");
    out[0] = '\0';
    size_t len = strnlen(sender, SRS_ADDRESS_MAX + 1);
    if (len == 0 || strcmp(sender, "<>") == 0)
        return SRS_UNCHANGED; /* bounces are not forwarded with SRS */
    if (len > SRS_ADDRESS_MAX)
        return SRS_TOO_LONG;
    struct span local, host, fwd = {domain, strnlen(domain, SRS_DOMAIN_MAX + 1)};
    if (!split_address(sender, len, &local, &host))
        return SRS_MALFORMED;
    if (local.len > SRS_LOCAL_MAX || host.len > SRS_DOMAIN_MAX || fwd.len > SRS_DOMAIN_MAX)
        return SRS_TOO_LONG;
    if (!valid_local(local) || !valid_domain(host) || !valid_domain(fwd))
        return SRS_MALFORMED;
    if (host.len == fwd.len && strncasecmp(host.p, fwd.p, fwd.len) == 0) {
        memcpy(out, sender, len + 1); /* ours already: SRS of ours, or a local user */
        return SRS_UNCHANGED;
    }
    struct sm_buf b;
    sm_buf_init(&b, SRS_LOCAL_MAX + 1);
    enum srs_result r = SRS_TOO_LONG;
    if (rewrite_local(srs, local, host, now, &b) == 0)
        r = finish(&b, fwd, out);
    sm_buf_free(&b);
    return r;
}

/* ---- reverse --------------------------------------------------------- */

static enum srs_result reverse_srs0(const struct srs *srs, struct span s, time_t now,
                                    struct sm_buf *b, struct span *host_r)
{
    struct srs0 f;
    if (!parse_srs0(s, &f))
        return SRS_MALFORMED;
    struct span parts[3] = {f.stamp, f.host, f.user};
    if (!hash_verify(srs, f.hash, parts, 3))
        return SRS_FORGED;
    if (!stamp_fresh(srs, stamp_value(f.stamp), now))
        return SRS_EXPIRED;
    *host_r = f.host;
    return sm_buf_append(b, f.user.p, f.user.len) == 0 ? SRS_OK : SRS_TOO_LONG;
}

static enum srs_result reverse_srs1(const struct srs *srs, struct span s, struct sm_buf *b,
                                    struct span *host_r)
{
    struct srs1 f;
    if (!parse_srs1(s, &f))
        return SRS_MALFORMED;
    struct span parts[2] = {f.host, f.rest};
    if (!hash_verify(srs, f.hash, parts, 2))
        return SRS_FORGED;
    *host_r = f.host;
    return (sm_buf_puts(b, "SRS0") | sm_buf_append(b, f.rest.p, f.rest.len)) == 0 ? SRS_OK
                                                                                 : SRS_TOO_LONG;
}

enum srs_result srs_reverse(const struct srs *srs, const char *address, time_t now,
                            char out[SRS_ADDRESS_MAX + 1])
{
    if (srs->n == 0)
        sm_panic("srs: reverse without a secret");
    out[0] = '\0';
    size_t len = strnlen(address, SRS_ADDRESS_MAX + 1);
    struct span local = {address, len}, ignored;
    if (len <= SRS_ADDRESS_MAX)
        split_address(address, len, &local, &ignored); /* else: the whole is the local part */
    if (!srs_is_srs(local.p, local.len))
        return SRS_NOT_SRS;
    if (len > SRS_ADDRESS_MAX || local.len > SRS_LOCAL_MAX)
        return SRS_TOO_LONG;
    if (!valid_local(local))
        return SRS_MALFORMED;
    struct span after = {local.p + 5, local.len - 5}, host = {NULL, 0};
    struct sm_buf b;
    sm_buf_init(&b, SRS_LOCAL_MAX + 1);
    enum srs_result r = local.p[3] == '0' ? reverse_srs0(srs, after, now, &b, &host)
                                          : reverse_srs1(srs, after, &b, &host);
    if (r == SRS_OK)
        r = finish(&b, host, out);
    sm_buf_free(&b);
    return r;
}

const char *srs_result_name(enum srs_result r)
{
    switch (r) {
    case SRS_OK: return "ok";
    case SRS_UNCHANGED: return "unchanged";
    case SRS_NOT_SRS: return "not-srs";
    case SRS_MALFORMED: return "malformed";
    case SRS_FORGED: return "forged";
    case SRS_EXPIRED: return "expired";
    case SRS_TOO_LONG: return "too-long";
    }
    return "unknown";
}
