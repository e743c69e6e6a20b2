/* tls.c — server TLS contexts, SNI and self-signed certificates (see tls.h).
 *
 * Design:
 * - Every SSL_CTX (the default one and one per SNI name) comes from one
 *   builder, tls_ctx_build(), so they carry identical protocol settings:
 *   TLS 1.2..1.3, the configured TLS 1.2 cipher list (TLS 1.3 keeps
 *   OpenSSL's suites), groups X25519:P-256:P-384 (Debian 12's OpenSSL 3.0
 *   has no ML-KEM), the same session-id context, no renegotiation, and
 *   SSL_OP_IGNORE_UNEXPECTED_EOF because Debian's libevent 2.1.12 does not
 *   understand OpenSSL 3's "unexpected eof" report (engineering notes §6).
 * - No server cipher preference: every suite on the list is strong, so the
 *   client picks what its hardware does fastest (Mozilla intermediate 6.0).
 * - No stateless session tickets: OpenSSL never rotates a context's
 *   ticket key, so resumption uses the bounded in-process session cache.
 * - SNI: a servername callback swaps in the context for the name with
 *   SSL_set_SSL_CTX(); an absent or unknown name keeps the default
 *   certificate (SSL_TLSEXT_ERR_NOACK).  The SNI table is owned by the
 *   default SSL_CTX through ex_data, so it lives exactly as long as any
 *   connection that may still run the callback: a reload frees the old
 *   tls_server at once while old connections keep working.
 * - Encrypted keys fail to load instead of prompting on a terminal.
 * - Key files are written 0600 through a temporary file and rename().
 * Nothing here logs key material; errors name files, never contents. */
#include "net/tls.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/mem.h"

#define TLS_GROUPS "X25519:prime256v1:secp384r1"
#define TLS_SID_CTX "sealmail"
#define TLS_SESSION_CACHE 2048
#define TLS_CERT_DAYS 3650
#define TLS_DEFAULT_CIPHERS                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

struct sni_entry {
    char *name; /* lower case */
    SSL_CTX *ctx;
};

struct sni_table {
    struct sni_entry *v;
    size_t n, cap;
};

struct tls_server {
    SSL_CTX *def; /* owns the sni_table through ex_data */
};

static int sni_index = -1;
static pthread_once_t sni_once = PTHREAD_ONCE_INIT;

/* The earliest OpenSSL reason in the thread's error queue (the root
 * cause), leaving the queue empty for the next connection. */
static const char *tls_ssl_error(char *buf, size_t len)
{
    unsigned long first = ERR_get_error();
    const char *reason = first ? ERR_reason_error_string(first) : NULL;
    if (reason != NULL)
        snprintf(buf, len, "%s", reason);
    else if (first != 0)
        snprintf(buf, len, "OpenSSL error %lx", first);
    else
        snprintf(buf, len, "unknown error");
    ERR_clear_error();
    return buf;
}

static void sni_table_free(struct sni_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].name);
        SSL_CTX_free(t->v[i].ctx);
    }
    free(t->v);
    free(t);
}

/* ex_data destructor: runs when the default SSL_CTX's last reference
 * (the tls_server's or a connection's) goes away. */
static void sni_table_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                              void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    sni_table_free(ptr);
}

static void sni_index_init(void)
{
    sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sni_table_free_cb);
}

static int sni_cmp(const void *a, const void *b)
{
    const struct sni_entry *x = a, *y = b;
    return strcasecmp(x->name, y->name);
}

/* bsearch() comparator: the key is a pointer to the client's name. */
static int sni_key_cmp(const void *key, const void *elem)
{
    const char *const *name = key;
    const struct sni_entry *e = elem;
    return strcasecmp(*name, e->name);
}

/* Servername callback: swap in the context for the client's SNI name. */
static int tls_servername_cb(SSL *ssl, int *alert, void *arg)
{
    const struct sni_table *t = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (t == NULL || t->n == 0 || name == NULL)
        return SSL_TLSEXT_ERR_NOACK;

    const struct sni_entry *e = bsearch(&name, t->v, t->n, sizeof *t->v, sni_key_cmp);
    if (e == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    if (SSL_set_SSL_CTX(ssl, e->ctx) == NULL) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* Refuse to prompt for a passphrase: an encrypted key simply fails. */
static int tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/* Protocol settings shared by every context. */
static int tls_ctx_configure(SSL_CTX *ctx, const char *ciphers, char *err, size_t errlen)
{
    char why[256];

    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
        snprintf(err, errlen, "tls: cannot set protocol versions: %s",
                 tls_ssl_error(why, sizeof why));
        return -1;
    }
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET);
    SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        snprintf(err, errlen, "tls: no usable TLS 1.2 cipher in '%.80s': %s", ciphers,
                 tls_ssl_error(why, sizeof why));
        return -1;
    }
    if (SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1) {
        snprintf(err, errlen, "tls: cannot set groups %s: %s", TLS_GROUPS,
                 tls_ssl_error(why, sizeof why));
        return -1;
    }
    if (SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SID_CTX,
                                       sizeof TLS_SID_CTX - 1) != 1) {
        snprintf(err, errlen, "tls: cannot set session id context: %s",
                 tls_ssl_error(why, sizeof why));
        return -1;
    }
    SSL_CTX_sess_set_cache_size(ctx, TLS_SESSION_CACHE);
    SSL_CTX_set_default_passwd_cb(ctx, tls_no_passphrase);
    SSL_CTX_set_tlsext_servername_callback(ctx, tls_servername_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, NULL);
    return 0;
}

/* A readable regular file, or -1 with a message naming it. */
static int tls_check_file(const char *path, const char *what, char *err, size_t errlen)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "tls: cannot read %s %s: %s", what, path, strerror(errno));
        return -1;
    }
    int rc = fstat(fd, &st);
    close(fd);
    if (rc < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "tls: %s %s is not a regular file", what, path);
        return -1;
    }
    return 0;
}

/* Whether the pending OpenSSL error says key and certificate differ. */
static bool tls_key_mismatch(void)
{
    unsigned long e = ERR_peek_error();
    return ERR_GET_LIB(e) == ERR_LIB_X509 && (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
                                              ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH);
}

/* Load and cross-check the certificate chain and its private key. */
static int tls_ctx_load(SSL_CTX *ctx, const char *cert, const char *key, char *err, size_t errlen)
{
    char why[256];

    if (tls_check_file(cert, "certificate", err, errlen) < 0 ||
        tls_check_file(key, "private key", err, errlen) < 0)
        return -1;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, errlen, "tls: certificate %s is not a usable PEM chain: %s", cert,
                 tls_ssl_error(why, sizeof why));
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 && !tls_key_mismatch()) {
        snprintf(err, errlen, "tls: private key %s is not a usable PEM key: %s", key,
                 tls_ssl_error(why, sizeof why));
        return -1;
    }
    /* OpenSSL may already have compared them while loading the key. */
    if (tls_key_mismatch() || SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "tls: private key %s does not match certificate %s: %s", key, cert,
                 tls_ssl_error(why, sizeof why));
        return -1;
    }
    return 0;
}

/* The one builder of server contexts; NULL with err on failure. */
static SSL_CTX *tls_ctx_build(const char *cert, const char *key, const char *ciphers, char *err,
                              size_t errlen)
{
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "tls: cannot create context: %s", tls_ssl_error(why, sizeof why));
        return NULL;
    }
    if (tls_ctx_configure(ctx, ciphers, err, errlen) < 0 ||
        tls_ctx_load(ctx, cert, key, err, errlen) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* A DNS name made of letters, digits and hyphens in dot-separated labels
 * of 1..63 bytes, 253 bytes at most: safe in file names and in X.509
 * configuration strings (no ',' ':' '/' or spaces). */
static bool tls_valid_hostname(const char *s, size_t len)
{
    size_t label = 0;

    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (isalnum(c) || c == '-') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0;
}

static void sni_table_push(struct sni_table *t, const char *name, size_t len, SSL_CTX *ctx)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 8;
        t->v = sm_realloc(t->v, t->cap * sizeof *t->v);
    }
    char *lower = sm_strndup(name, len);
    for (char *p = lower; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    t->v[t->n].name = lower;
    t->v[t->n].ctx = ctx;
    t->n++;
}

/* Consider one directory entry of sni_dir: NAME.pem with NAME.key. */
static int sni_add_entry(struct sni_table *t, const char *dir, const char *file,
                         const char *ciphers, char *err, size_t errlen)
{
    char cert[PATH_MAX], key[PATH_MAX];
    size_t len = strlen(file);

    if (len <= 4 || strcmp(file + len - 4, ".pem") != 0 || file[0] == '.')
        return 0;
    len -= 4;
    if (!tls_valid_hostname(file, len)) {
        log_warn("tls sni_dir=%s file=%s skipped reason=not-a-host-name", dir, file);
        return 0;
    }
    int nc = snprintf(cert, sizeof cert, "%s/%s", dir, file);
    int nk = snprintf(key, sizeof key, "%s/%.*s.key", dir, (int)len, file);
    if (nc < 0 || nk < 0 || (size_t)nc >= sizeof cert || (size_t)nk >= sizeof key) {
        snprintf(err, errlen, "tls: path too long in sni_dir %s", dir);
        return -1;
    }
    if (access(key, F_OK) < 0 && errno == ENOENT) {
        log_warn("tls sni_dir=%s file=%s skipped reason=no-key", dir, file);
        return 0;
    }
    SSL_CTX *ctx = tls_ctx_build(cert, key, ciphers, err, errlen);
    if (ctx == NULL)
        return -1;
    sni_table_push(t, file, len, ctx);
    return 0;
}

/* Sort the table for bsearch() and refuse names given twice. */
static int sni_table_finish(struct sni_table *t, const char *dir, char *err, size_t errlen)
{
    if (t->n > 0)
        qsort(t->v, t->n, sizeof *t->v, sni_cmp);
    for (size_t i = 1; i < t->n; i++) {
        if (strcmp(t->v[i - 1].name, t->v[i].name) == 0) {
            snprintf(err, errlen, "tls: sni_dir %s has two certificates for %s", dir, t->v[i].name);
            return -1;
        }
    }
    return 0;
}

/* Build a context for every NAME.pem/NAME.key pair in dir; a missing
 * directory means no per-domain certificates. */
static int sni_table_load(struct sni_table *t, const char *dir, const char *ciphers, char *err,
                          size_t errlen)
{
    if (dir == NULL || dir[0] == '\0')
        return 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "tls: cannot open sni_dir %s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL)
        rc = sni_add_entry(t, dir, de->d_name, ciphers, err, errlen);
    closedir(d);
    if (rc < 0)
        return -1;
    return sni_table_finish(t, dir, err, errlen);
}

struct tls_server *tls_server_new(const char *cert_path, const char *key_path, const char *sni_dir,
                                  const char *ciphers, char *err, size_t errlen)
{
    if (ciphers == NULL || ciphers[0] == '\0')
        ciphers = TLS_DEFAULT_CIPHERS;
    pthread_once(&sni_once, sni_index_init);
    if (sni_index < 0) {
        snprintf(err, errlen, "tls: cannot register SNI table index");
        return NULL;
    }
    SSL_CTX *def = tls_ctx_build(cert_path, key_path, ciphers, err, errlen);
    if (def == NULL)
        return NULL;

    struct sni_table *t = sm_malloc(sizeof *t);
    if (sni_table_load(t, sni_dir, ciphers, err, errlen) < 0) {
        sni_table_free(t);
        SSL_CTX_free(def);
        return NULL;
    }
    if (SSL_CTX_set_ex_data(def, sni_index, t) != 1) {
        snprintf(err, errlen, "tls: cannot attach SNI table");
        ERR_clear_error();
        sni_table_free(t);
        SSL_CTX_free(def);
        return NULL;
    }
    SSL_CTX_set_tlsext_servername_arg(def, t);

    struct tls_server *ts = sm_malloc(sizeof *ts);
    ts->def = def;
    log_debug("tls contexts ready cert=%s sni=%zu", cert_path, t->n);
    return ts;
}

SSL *tls_server_ssl_new(struct tls_server *ts)
{
    SSL *ssl = SSL_new(ts->def);
    if (ssl == NULL)
        sm_panic("tls: SSL_new failed (out of memory)");
    SSL_set_accept_state(ssl);
    return ssl;
}

void tls_server_free(struct tls_server **ts)
{
    if (ts == NULL || *ts == NULL)
        return;
    SSL_CTX_free((*ts)->def); /* the SNI table goes with the last reference */
    free(*ts);
    *ts = NULL;
}

/* Copy src into out at *pos, turning anything but visible ASCII into '_'
 * so the description stays one token. */
static void describe_token(const char *src, char *out, size_t outlen, size_t *pos)
{
    for (; *src != '\0' && *pos + 1 < outlen; src++) {
        unsigned char c = (unsigned char)*src;
        out[(*pos)++] = (c > 0x20 && c < 0x7f) ? (char)c : '_';
    }
    out[*pos] = '\0';
}

void tls_describe(SSL *ssl, char *out, size_t outlen)
{
    size_t pos = 0;

    if (out == NULL || outlen == 0)
        return;
    out[0] = '\0';
    const char *ver = ssl ? SSL_get_version(ssl) : NULL;
    const char *cipher = ssl ? SSL_get_cipher_name(ssl) : NULL;
    if (ver == NULL || cipher == NULL || strcmp(cipher, "(NONE)") == 0) {
        describe_token("none", out, outlen, &pos);
        return;
    }
    if (strncmp(ver, "TLSv", 4) == 0) { /* "TLSv1.3" -> "TLS1.3" */
        describe_token("TLS", out, outlen, &pos);
        ver += 4;
    }
    describe_token(ver, out, outlen, &pos);
    if (pos + 1 < outlen) { /* the one separator */
        out[pos++] = ' ';
        out[pos] = '\0';
    }
    describe_token(cipher, out, outlen, &pos);
}

/* A random positive 127-bit serial number (RFC 5280 §4.1.2.2). */
static int cert_set_serial(X509 *x)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        return -1;
    b[0] = (unsigned char)((b[0] & 0x7f) | 0x40); /* positive, never zero */
    BIGNUM *bn = BN_bin2bn(b, sizeof b, NULL);
    int ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok ? 0 : -1;
}

static int cert_add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* Names and extensions: CN=hostname (when it fits the 64-byte CN limit),
 * SAN DNS:hostname, an end-entity server certificate. */
static int cert_set_names(X509 *x, const char *hostname)
{
    X509_NAME *name = X509_get_subject_name(x);
    const unsigned char *host = (const unsigned char *)hostname;
    const unsigned char *org = (const unsigned char *)"sealmail";
    int ok = strlen(hostname) <= 64
                 ? X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, host, -1, -1, 0)
                 : X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, org, -1, -1, 0);
    if (ok != 1 || X509_set_issuer_name(x, name) != 1)
        return -1;

    char san[300];
    snprintf(san, sizeof san, "DNS:%s", hostname); /* hostname is checked: ≤ 253 */
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    if (cert_add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        cert_add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") < 0 ||
        cert_add_ext(x, &ctx, NID_ext_key_usage, "serverAuth") < 0 ||
        cert_add_ext(x, &ctx, NID_subject_key_identifier, "hash") < 0 ||
        cert_add_ext(x, &ctx, NID_subject_alt_name, san) < 0)
        return -1;
    return 0;
}

/* A self-signed X509v3 certificate for pkey; NULL on failure. */
static X509 *cert_build(const char *hostname, EVP_PKEY *pkey)
{
    X509 *x = X509_new();
    if (x == NULL)
        return NULL;
    if (X509_set_version(x, X509_VERSION_3) != 1 || cert_set_serial(x) < 0 ||
        X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL || /* clock skew */
        X509_time_adj_ex(X509_getm_notAfter(x), TLS_CERT_DAYS, 0, NULL) == NULL ||
        X509_set_pubkey(x, pkey) != 1 || cert_set_names(x, hostname) < 0 ||
        X509_sign(x, pkey, EVP_sha256()) <= 0) {
        X509_free(x);
        return NULL;
    }
    return x;
}


/* Replace path with the content of mem: temporary file in the same
 * directory, mode set before any byte is written, fsync, rename. */
static int write_atomic(const char *path, BIO *mem, mode_t mode, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    char *data = NULL;
    long n = BIO_get_mem_data(mem, &data);
    int len = snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);

    if (n <= 0 || len < 0 || (size_t)len >= sizeof tmp) {
        snprintf(err, errlen, "tls: cannot write %s: %s", path,
                 n <= 0 ? "nothing to write" : "path too long");
        return -1;
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "tls: cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    if (fchmod(fd, mode) < 0 || sm_write_full(fd, data, (size_t)n) < 0 || fsync(fd) < 0) {
        int saved = errno;
        close(fd);
        unlink(tmp);
        snprintf(err, errlen, "tls: cannot write %s: %s", path, strerror(saved));
        return -1;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        int saved = errno;
        unlink(tmp);
        snprintf(err, errlen, "tls: cannot write %s: %s", path, strerror(saved));
        return -1;
    }
    return 0;
}

/* Serialise key (into wiped secure memory) and certificate, then write
 * the key first so a certificate never exists without its key. */
static int write_pair(X509 *x, EVP_PKEY *pkey, const char *cert_path, const char *key_path,
                      char *err, size_t errlen)
{
    char why[256];
    BIO *kb = BIO_new(BIO_s_secmem());
    BIO *cb = BIO_new(BIO_s_mem());
    int rc = -1;

    if (kb == NULL || cb == NULL ||
        PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
        PEM_write_bio_X509(cb, x) != 1) {
        snprintf(err, errlen, "tls: cannot encode certificate for %s: %s", cert_path,
                 tls_ssl_error(why, sizeof why));
    } else if (write_atomic(key_path, kb, 0600, err, errlen) == 0 &&
               write_atomic(cert_path, cb, 0644, err, errlen) == 0) {
        rc = 0;
    }
    BIO_free(kb);
    BIO_free(cb);
    return rc;
}

int tls_make_self_signed(const char *hostname, const char *cert_path, const char *key_path,
                         char *err, size_t errlen)
{
    char why[256];

    if (hostname == NULL || !tls_valid_hostname(hostname, strlen(hostname))) {
        snprintf(err, errlen, "tls: '%.64s' is not a valid host name for a certificate",
                 hostname ? hostname : "");
        return -1;
    }
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    if (pkey == NULL) {
        snprintf(err, errlen, "tls: cannot generate an EC P-256 key: %s",
                 tls_ssl_error(why, sizeof why));
        return -1;
    }
    X509 *x = cert_build(hostname, pkey);
    if (x == NULL) {
        snprintf(err, errlen, "tls: cannot build a certificate for %s: %s", hostname,
                 tls_ssl_error(why, sizeof why));
        EVP_PKEY_free(pkey);
        return -1;
    }
    int rc = write_pair(x, pkey, cert_path, key_path, err, errlen);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return rc;
}

/* ---- client side (see tls.h) ------------------------------------------- */

SSL_CTX *tls_client_ctx_new(const char *ca_file, char *err, size_t errlen)
{
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "tls: cannot create a client context: %s",
                 tls_ssl_error(why, sizeof why));
        return NULL;
    }
    const char *what = NULL;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
        what = "cannot set protocol versions";
    else if (SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1)
        what = "cannot set groups";
    else if (SSL_CTX_dane_enable(ctx) <= 0)
        what = "cannot enable DANE";
    else if (ca_file != NULL && ca_file[0] != '\0'
                 ? SSL_CTX_load_verify_file(ctx, ca_file) != 1
                 : SSL_CTX_set_default_verify_paths(ctx) != 1)
        what = "cannot load the trust store";
    if (what != NULL) {
        snprintf(err, errlen, "tls: client context: %s%s%s: %s", what, ca_file ? " " : "",
                 ca_file ? ca_file : "", tls_ssl_error(why, sizeof why));
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_COMPRESSION);
    SSL_CTX_dane_set_flags(ctx, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    return ctx;
}
