/* test-tls.c — server contexts, SNI and self-signed certificates.
 *
 * Every handshake is real: the server SSL from tls_server_ssl_new() on one
 * end of a socketpair, an OpenSSL client context on the other end in a
 * thread.  After a successful handshake the server sends one byte and the
 * client reads it, so neither side closes while the other still writes
 * (TLS 1.3 session tickets follow the handshake). */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/log.h"
#include "net/tls.h"

#define DEFAULT_HOST "mail.example.org"

static char dir[64];
static char cert_path[128], key_path[128], sni_dir[128];
static char other_cert[128], other_key[128];

/* ---- fixture ---------------------------------------------------------- */

static void path_in(char *out, size_t len, const char *name)
{
    int n = snprintf(out, len, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < len);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void make_cert(const char *host, const char *cert, const char *key)
{
    char err[256] = "";
    if (tls_make_self_signed(host, cert, key, err, sizeof err) != 0)
        fail_msg("tls_make_self_signed(%s): %s", host, err);
}

static int group_setup(void **state)
{
    char path[160], key[160];
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test-tls.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    path_in(cert_path, sizeof cert_path, "cert.pem");
    path_in(key_path, sizeof key_path, "key.pem");
    path_in(sni_dir, sizeof sni_dir, "sni");
    path_in(other_cert, sizeof other_cert, "sni/other.example.net.pem");
    path_in(other_key, sizeof other_key, "sni/other.example.net.key");
    make_cert(DEFAULT_HOST, cert_path, key_path);
    if (mkdir(sni_dir, 0700) < 0)
        return -1;
    make_cert("other.example.net", other_cert, other_key);
    path_in(path, sizeof path, "sni/shop.example.com.pem");
    path_in(key, sizeof key, "sni/shop.example.com.key");
    make_cert("shop.example.com", path, key);
    /* A certificate without its key and an unrelated file: both ignored. */
    path_in(path, sizeof path, "sni/nokey.example.pem");
    path_in(key, sizeof key, "nokey.key");
    make_cert("nokey.example", path, key);
    path_in(path, sizeof path, "sni/README");
    write_text(path, "per-domain certificates\n");
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- handshakes ------------------------------------------------------- */

struct client {
    int fd;
    const char *sni;
    int max_version;
    bool ok;
    char cn[256];
    char san[256];
    char describe[128];
};

static void peer_names(SSL *ssl, struct client *c)
{
    X509 *peer = SSL_get1_peer_certificate(ssl);
    if (peer == NULL)
        return;
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, c->cn, sizeof c->cn);
    GENERAL_NAMES *gens = X509_get_ext_d2i(peer, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
        if (gn->type == GEN_DNS) {
            const ASN1_IA5STRING *s = gn->d.dNSName;
            snprintf(c->san, sizeof c->san, "%.*s", ASN1_STRING_length(s),
                     (const char *)ASN1_STRING_get0_data(s));
            break;
        }
    }
    GENERAL_NAMES_free(gens);
    X509_free(peer);
}

static void *client_run(void *arg)
{
    struct client *c = arg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (c->max_version != 0) {
        /* Let an old client really offer its old protocol: the server,
         * not the client's own security level, must be what refuses. */
        SSL_CTX_set_security_level(ctx, 0);
        SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
        SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
        SSL_CTX_set_max_proto_version(ctx, c->max_version);
    }
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, c->fd);
    char sni[256]; /* the macro casts away const: hand it a writable copy */
    if (c->sni != NULL) {
        snprintf(sni, sizeof sni, "%s", c->sni);
        SSL_set_tlsext_host_name(ssl, sni);
    }
    char byte;
    c->ok = SSL_connect(ssl) == 1 && SSL_read(ssl, &byte, 1) == 1;
    if (c->ok) {
        peer_names(ssl, c);
        tls_describe(ssl, c->describe, sizeof c->describe);
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    close(c->fd);
    return NULL;
}

/* Handshake one client against ts; returns the server's verdict, its
 * description of the session and the reason of its first error. */
static bool handshake(struct tls_server *ts, struct client *c, char *describe, size_t len,
                      int *reason_r)
{
    int sv[2];
    pthread_t th;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    c->fd = sv[1];
    assert_int_equal(pthread_create(&th, NULL, client_run, c), 0);

    SSL *ssl = tls_server_ssl_new(ts);
    SSL_set_fd(ssl, sv[0]);
    bool ok = SSL_accept(ssl) == 1 && SSL_write(ssl, "x", 1) == 1;
    tls_describe(ssl, describe, len);
    *reason_r = ERR_GET_REASON(ERR_peek_error());
    SSL_free(ssl);
    ERR_clear_error();
    close(sv[0]);
    assert_int_equal(pthread_join(th, NULL), 0);
    return ok;
}

static const struct hs_case {
    const char *label;
    const char *sni;
    int max_version;
    bool ok;
    const char *name;     /* CN and SAN DNS name the client must see */
    const char *describe; /* prefix of tls_describe() on both ends */
} hs_cases[] = {
    {"no SNI gets the default certificate", NULL, 0, true, DEFAULT_HOST,
     "TLS1.3 TLS_AES_256_GCM_SHA384"},
    {"unknown SNI gets the default certificate", "nobody.example", 0, true, DEFAULT_HOST,
     "TLS1.3 TLS_"},
    {"SNI picks the per-domain certificate", "other.example.net", 0, true, "other.example.net",
     "TLS1.3 TLS_"},
    {"SNI match ignores case", "SHOP.Example.COM", 0, true, "shop.example.com", "TLS1.3 TLS_"},
    {"SNI whose key file is missing gets the default", "nokey.example", 0, true, DEFAULT_HOST,
     "TLS1.3 TLS_"},
    {"SNI that is a prefix of a known name gets the default", "other.example", 0, true,
     DEFAULT_HOST, "TLS1.3 TLS_"},
    {"TLS 1.2 client is served", "other.example.net", TLS1_2_VERSION, true, "other.example.net",
     "TLS1.2 ECDHE-ECDSA-"},
    {"TLS 1.1 client is refused", NULL, TLS1_1_VERSION, false, NULL, NULL},
    {"TLS 1.0 client is refused", "other.example.net", TLS1_VERSION, false, NULL, NULL},
};

static void test_handshakes(void **state)
{
    char err[256] = "";
    (void)state;
    struct tls_server *ts = tls_server_new(cert_path, key_path, sni_dir, NULL, err, sizeof err);
    if (ts == NULL)
        fail_msg("tls_server_new: %s", err);

    for (size_t i = 0; i < sizeof hs_cases / sizeof hs_cases[0]; i++) {
        const struct hs_case *t = &hs_cases[i];
        struct client c = {.sni = t->sni, .max_version = t->max_version};
        char describe[128];
        print_message("case: %s\n", t->label);
        int reason = 0;
        bool ok = handshake(ts, &c, describe, sizeof describe, &reason);
        assert_int_equal(ok, t->ok);
        assert_int_equal(c.ok, t->ok);
        if (!t->ok) { /* refused by the server, not by the client */
            assert_int_equal(reason, SSL_R_UNSUPPORTED_PROTOCOL);
            continue;
        }
        assert_string_equal(c.cn, t->name);
        assert_string_equal(c.san, t->name);
        assert_string_equal(describe, c.describe);
        assert_int_equal(strncmp(describe, t->describe, strlen(t->describe)), 0);
        assert_non_null(strchr(describe, ' '));
        assert_null(strchr(strchr(describe, ' ') + 1, ' '));
    }
    tls_server_free(&ts);
    assert_null(ts);
    tls_server_free(&ts); /* NULL is a no-op */
}

/* Connections keep working after their tls_server is freed (a reload):
 * the SNI table lives as long as the default context. */
static void test_free_while_connection_pending(void **state)
{
    char err[256] = "", describe[128];
    int sv[2];
    pthread_t th;
    (void)state;
    struct tls_server *ts = tls_server_new(cert_path, key_path, sni_dir, NULL, err, sizeof err);
    assert_non_null(ts);
    SSL *ssl = tls_server_ssl_new(ts);
    tls_server_free(&ts);

    struct client c = {.sni = "other.example.net"};
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    c.fd = sv[1];
    assert_int_equal(pthread_create(&th, NULL, client_run, &c), 0);
    SSL_set_fd(ssl, sv[0]);
    assert_int_equal(SSL_accept(ssl), 1);
    assert_int_equal(SSL_write(ssl, "x", 1), 1);
    tls_describe(ssl, describe, sizeof describe);
    SSL_free(ssl);
    close(sv[0]);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(c.ok);
    assert_string_equal(c.cn, "other.example.net");
}

/* ---- configuration errors --------------------------------------------- */

struct err_case {
    const char *label;
    const char *cert; /* file names under dir; NULL: the default */
    const char *key;
    const char *sni;
    const char *ciphers;
    const char *want[2]; /* substrings of the error; "@" stands for dir */
};

static const struct err_case err_cases[] = {
    {.label = "missing key file", .key = "absent.key", .want = {"@/absent.key", "No such file"}},
    {.label = "missing certificate file",
     .cert = "absent.pem",
     .want = {"@/absent.pem", "certificate"}},
    {.label = "key of another certificate",
     .key = "sni/other.example.net.key",
     .want = {"@/sni/other.example.net.key", "does not match"}},
    {.label = "garbage certificate", .cert = "garbage.pem", .want = {"@/garbage.pem", "PEM"}},
    {.label = "garbage key", .key = "garbage.pem", .want = {"@/garbage.pem", "private key"}},
    {.label = "key path is a directory", .key = "sni", .want = {"@/sni", "regular file"}},
    {.label = "no usable TLS 1.2 cipher",
     .ciphers = "NOPE-CIPHER",
     .want = {"NOPE-CIPHER", "cipher"}},
    {.label = "broken per-domain certificate",
     .sni = "badsni",
     .want = {"@/badsni/broken.example.pem", "certificate"}},
    {.label = "sni_dir is a file", .sni = "garbage.pem", .want = {"@/garbage.pem", "sni_dir"}},
};

static void want_in(const char *err, const char *want)
{
    char expect[256];
    if (want[0] == '@')
        snprintf(expect, sizeof expect, "%s%s", dir, want + 1);
    else
        snprintf(expect, sizeof expect, "%s", want);
    if (strstr(err, expect) == NULL)
        fail_msg("error '%s' does not contain '%s'", err, expect);
}

static void test_server_errors(void **state)
{
    char path[160], key[160], sni[160];
    (void)state;
    path_in(path, sizeof path, "garbage.pem");
    write_text(path, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n");
    path_in(sni, sizeof sni, "badsni");
    assert_true(mkdir(sni, 0700) == 0 || errno == EEXIST);
    path_in(path, sizeof path, "badsni/broken.example.pem");
    write_text(path, "junk\n");
    path_in(path, sizeof path, "badsni/broken.example.key");
    write_text(path, "junk\n");

    for (size_t i = 0; i < sizeof err_cases / sizeof err_cases[0]; i++) {
        const struct err_case *t = &err_cases[i];
        char err[512] = "";
        print_message("case: %s\n", t->label);
        if (t->cert)
            path_in(path, sizeof path, t->cert);
        if (t->key)
            path_in(key, sizeof key, t->key);
        if (t->sni)
            path_in(sni, sizeof sni, t->sni);
        struct tls_server *ts = tls_server_new(t->cert ? path : cert_path, t->key ? key : key_path,
                                               t->sni ? sni : NULL, t->ciphers, err, sizeof err);
        assert_null(ts);
        print_message("  error: %s\n", err);
        want_in(err, t->want[0]);
        want_in(err, t->want[1]);
        assert_int_equal(ERR_peek_error(), 0); /* the error queue is left clean */
    }
}

static void test_missing_sni_dir_is_fine(void **state)
{
    char err[256] = "", sni[160];
    (void)state;
    path_in(sni, sizeof sni, "no-such-dir");
    struct tls_server *ts = tls_server_new(cert_path, key_path, sni, NULL, err, sizeof err);
    if (ts == NULL)
        fail_msg("%s", err);
    tls_server_free(&ts);
}

/* ---- self-signed certificates and tls_describe ------------------------ */

static X509 *read_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    return x;
}

static void check_key_file(const char *path, X509 *x)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(pkey);
    assert_true(EVP_PKEY_is_a(pkey, "EC"));
    char group[64];
    assert_int_equal(EVP_PKEY_get_group_name(pkey, group, sizeof group, NULL), 1);
    assert_string_equal(group, "prime256v1");
    assert_int_equal(X509_check_private_key(x, pkey), 1);
    EVP_PKEY_free(pkey);
}

/* Atomic writes leave no temporary "NAME.pem.XXXXXX" files behind. */
static void assert_no_temp_files(const char *where)
{
    DIR *d = opendir(where);
    struct dirent *de;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (strstr(de->d_name, ".pem.") != NULL || strstr(de->d_name, ".key.") != NULL)
            fail_msg("temporary file left: %s/%s", where, de->d_name);
    }
    closedir(d);
}

static void test_self_signed(void **state)
{
    char cert[160], key[160], cert2[160], key2[160];
    (void)state;
    path_in(cert, sizeof cert, cert_path + strlen(dir) + 1);
    path_in(key, sizeof key, key_path + strlen(dir) + 1);
    X509 *x = read_cert(cert);
    check_key_file(key, x);

    assert_int_equal(X509_get_version(x), X509_VERSION_3);
    assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
    assert_int_equal(X509_check_host(x, DEFAULT_HOST, 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "other.example.org", 0, 0, NULL), 0);
    int days, secs;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)),
                     1);
    assert_true(days >= 3650);
    assert_int_equal(X509_cmp_current_time(X509_get0_notBefore(x)), -1);
    const ASN1_INTEGER *serial = X509_get0_serialNumber(x);
    BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
    assert_false(BN_is_negative(bn));
    assert_true(BN_num_bits(bn) > 64);
    BN_free(bn);

    /* A second certificate gets another serial number. */
    path_in(cert2, sizeof cert2, "second.pem");
    path_in(key2, sizeof key2, "second.key");
    make_cert(DEFAULT_HOST, cert2, key2);
    X509 *y = read_cert(cert2);
    assert_int_not_equal(ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(y)), 0);
    X509_free(y);
    X509_free(x);
    assert_no_temp_files(dir);
    assert_no_temp_files(sni_dir);
}

static void test_self_signed_long_name(void **state)
{
    char host[128], cert[160], key[160];
    (void)state;
    snprintf(host, sizeof host, "%s.%s.example", "a123456789b123456789c123456789d123456789",
             "e123456789f123456789g123456789");
    path_in(cert, sizeof cert, "long.pem");
    path_in(key, sizeof key, "long.key");
    make_cert(host, cert, key);
    X509 *x = read_cert(cert);
    assert_int_equal(X509_check_host(x, host, 0, 0, NULL), 1);
    X509_free(x);
}

static const struct bad_host {
    const char *label;
    const char *host;
} bad_hosts[] = {
    {"empty", ""},
    {"comma injecting a second SAN", "a.example,DNS:evil.example"},
    {"space", "mail example"},
    {"empty label", "a..example"},
    {"leading dot", ".example"},
    {"trailing dot", "example."},
    {"slash", "a/b"},
    {"label over 63 bytes", "a123456789b123456789c123456789d123456789e123456789f123456789g123.x"},
};

static void test_self_signed_errors(void **state)
{
    char cert[160], key[160], err[256];
    (void)state;
    path_in(cert, sizeof cert, "bad.pem");
    path_in(key, sizeof key, "bad.key");
    for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++) {
        print_message("case: %s\n", bad_hosts[i].label);
        assert_int_equal(tls_make_self_signed(bad_hosts[i].host, cert, key, err, sizeof err), -1);
        assert_non_null(strstr(err, "host name"));
        assert_int_equal(access(cert, F_OK), -1);
    }

    print_message("case: unwritable directory\n");
    assert_int_equal(tls_make_self_signed("ok.example", "/nonexistent/x/c.pem",
                                          "/nonexistent/x/c.key", err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "/nonexistent/x/c.key"));
}

static void test_describe(void **state)
{
    char err[256] = "", out[64];
    (void)state;
    tls_describe(NULL, out, sizeof out);
    assert_string_equal(out, "none");
    struct tls_server *ts = tls_server_new(cert_path, key_path, NULL, NULL, err, sizeof err);
    assert_non_null(ts);
    SSL *ssl = tls_server_ssl_new(ts);
    tls_describe(ssl, out, sizeof out); /* before any handshake */
    assert_string_equal(out, "none");
    tls_describe(ssl, out, 3);
    assert_string_equal(out, "no");
    tls_describe(ssl, out, 1);
    assert_string_equal(out, "");
    tls_describe(ssl, NULL, 0);
    SSL_free(ssl);
    tls_server_free(&ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self_signed),
        cmocka_unit_test(test_self_signed_long_name),
        cmocka_unit_test(test_self_signed_errors),
        cmocka_unit_test(test_handshakes),
        cmocka_unit_test(test_free_while_connection_pending),
        cmocka_unit_test(test_server_errors),
        cmocka_unit_test(test_missing_sni_dir_is_fine),
        cmocka_unit_test(test_describe),
    };
    signal(SIGPIPE, SIG_IGN);
    log_init("test-tls", false, LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
