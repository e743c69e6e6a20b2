/* test-smtp-client.c — the outbound SMTP client against real servers on
 * loopback, inside the test.
 *
 * Two kinds of server run on the test's own event loop, on 127.0.0.1:
 *  - sealmail's own engine (smtp/server.h over net/conn, with STARTTLS and
 *    test certificates made here: one self-signed, one issued by a test
 *    CA), which stores what it receives, so the message is compared byte
 *    for byte after the dot-stuffing round trip;
 *  - a scripted fake server answering each command with a scripted reply
 *    (or silence, or a close), for the error paths.
 * The reply parser has its own cases first, fed whole and line by line. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/mem.h"
#include "net/conn.h"
#include "net/linereader.h"
#include "net/tls.h"
#include "smtp/client.h"
#include "smtp/reply.h"
#include "smtp/server.h"

/* fake-server case rows leave their optional trailing fields out */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define MX "mx1.sealmail.test"

static char dir[64];
static char ss_cert[128], ss_key[128], ca_cert[128], chain_cert[128], leaf_key[128];
static unsigned char ss_spki_sha256[32], ca_sha256[32];
static struct tls_server *tls_ss, *tls_ca; /* self-signed; CA-issued chain */
static SSL_CTX *ctx_system, *ctx_testca;  /* client: system store; the test CA */
static struct sm_buf last_stored;          /* what the real server stored last */

/* ---- reply parser ------------------------------------------------------------ */

/* Feed text (lines separated by \n) to a parser; the last result. */
static enum smtp_reply_result feed_all(struct smtp_reply_parser *p, const char *text,
                                       const char **err)
{
    enum smtp_reply_result r = SMTP_REPLY_MORE;
    const char *s = text;
    if (*s == '\0')
        return smtp_reply_feed(p, s, 0, err);
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        r = smtp_reply_feed(p, s, n, err);
        if (r != SMTP_REPLY_MORE)
            return r;
        s += n + (nl ? 1 : 0);
    }
    return r;
}

static void test_reply_parser(void **state)
{
    (void)state;
    struct smtp_reply_parser p;
    const char *err = NULL;
    char line[64];

    smtp_reply_init(&p);
    assert_int_equal(feed_all(&p, "250 2.1.5 Ok", &err), SMTP_REPLY_DONE);
    assert_int_equal(p.r.code, 250);
    assert_string_equal(p.r.enhanced, "2.1.5");
    assert_string_equal(p.r.text, "Ok");

    smtp_reply_init(&p);
    assert_int_equal(feed_all(&p, "250-mx.example\n250-PIPELINING\n250-SIZE 100\n250 8BITMIME",
                              &err), SMTP_REPLY_DONE);
    assert_int_equal(p.r.n_lines, 4);
    assert_true(smtp_reply_line(&p.r, 2, line, sizeof line));
    assert_string_equal(line, "SIZE 100");
    assert_false(smtp_reply_line(&p.r, 4, line, sizeof line));

    /* a bare code, an enhanced code of another class kept as text */
    smtp_reply_init(&p);
    assert_int_equal(feed_all(&p, "354", &err), SMTP_REPLY_DONE);
    assert_int_equal(p.r.code, 354);
    smtp_reply_init(&p);
    assert_int_equal(feed_all(&p, "550 4.1.1 odd", &err), SMTP_REPLY_DONE);
    assert_string_equal(p.r.enhanced, "");
    assert_string_equal(p.r.text, "4.1.1 odd");

    /* control bytes and non-ASCII become '?' */
    smtp_reply_init(&p);
    assert_int_equal(smtp_reply_feed(&p, "451 a\x01" "b\xc3\xa9\0z", 11, &err), SMTP_REPLY_DONE);
    assert_string_equal(p.r.text, "a?b???z");

    static const char *const bad[] = {"", "25", "hello", "250x", "150 info", "260 bad", "2500",
                                      "250-a\n251 b", "600 x", "-250 x", " 250 x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        smtp_reply_init(&p);
        err = NULL;
        if (feed_all(&p, bad[i], &err) != SMTP_REPLY_ERROR || err == NULL)
            fail_msg("'%s' accepted", bad[i]);
    }
    /* too many continuation lines */
    smtp_reply_init(&p);
    enum smtp_reply_result r = SMTP_REPLY_MORE;
    for (int i = 0; i < SMTP_REPLY_LINES_MAX + 5 && r == SMTP_REPLY_MORE; i++)
        r = smtp_reply_feed(&p, "250-x", 5, &err);
    assert_int_equal(r, SMTP_REPLY_ERROR);
    /* text over the kept maximum: whole lines only */
    smtp_reply_init(&p);
    char big[SMTP_REPLY_LINE_MAX];
    memset(big, 'k', sizeof big);
    memcpy(big, "250-", 4);
    for (int i = 0; i < 5; i++)
        assert_int_equal(smtp_reply_feed(&p, big, 1500, &err), SMTP_REPLY_MORE);
    assert_int_equal(smtp_reply_feed(&p, "250 SIZE 1000", 13, &err), SMTP_REPLY_DONE);
    assert_true(p.r.text_len < SMTP_REPLY_TEXT_MAX);
    assert_true(strstr(p.r.text, "SIZE 1000") != NULL);
    for (size_t i = 0; smtp_reply_line(&p.r, i, big, sizeof big); i++)
        assert_true(strlen(big) == 1496 || strcmp(big, "SIZE 1000") == 0);

    char enh[SMTP_ENHANCED_MAX];
    assert_int_equal(smtp_reply_enhanced("5.7.1 x", 7, enh), 5);
    assert_int_equal(smtp_reply_enhanced("4.123.123", 9, enh), 9);
    assert_int_equal(smtp_reply_enhanced("4.1234.1", 8, enh), 0);
    assert_int_equal(smtp_reply_enhanced("3.1.1", 5, enh), 0);
    assert_int_equal(smtp_reply_enhanced("2.1.1x", 6, enh), 0);
}

static void test_sts_patterns(void **state)
{
    (void)state;
    assert_true(smtp_sts_mx_match("mx.example.net", "MX.example.net."));
    assert_true(smtp_sts_mx_match("*.example.net", "mx1.example.net"));
    assert_false(smtp_sts_mx_match("*.example.net", "a.b.example.net"));
    assert_false(smtp_sts_mx_match("*.example.net", "example.net"));
    assert_false(smtp_sts_mx_match("mx.example.net", "mx.example.net.evil"));
    assert_false(smtp_sts_mx_match("*.", "a."));
}

/* ---- certificates ---------------------------------------------------------------- */

static void path_in(char *out, size_t len, const char *name)
{
    int n = snprintf(out, len, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < len);
}

static void add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A certificate for cn: a CA when issuer is NULL and ca, else a server. */
static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey, bool ca)
{
    static long serial = 1000;
    char san[128];
    X509 *x = X509_new();
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 30);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
    X509V3_CTX v;
    X509V3_set_ctx(&v, issuer ? issuer : x, x, NULL, NULL, 0);
    add_ext(x, &v, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add_ext(x, &v, NID_key_usage,
            ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    add_ext(x, &v, NID_subject_key_identifier, "hash");
    if (!ca) {
        snprintf(san, sizeof san, "DNS:%s", cn);
        add_ext(x, &v, NID_ext_key_usage, "serverAuth");
        add_ext(x, &v, NID_subject_alt_name, san);
        add_ext(x, &v, NID_authority_key_identifier, "keyid:always");
    }
    assert_true(X509_sign(x, ikey ? ikey : key, EVP_sha256()) > 0);
    return x;
}

static void write_pem(const char *path, X509 *a, X509 *b, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    if (a)
        assert_int_equal(PEM_write_X509(f, a), 1);
    if (b)
        assert_int_equal(PEM_write_X509(f, b), 1);
    if (key)
        assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(fclose(f), 0);
}

static void sha256_of(const unsigned char *p, size_t n, unsigned char out[32])
{
    unsigned int len = 32;
    assert_int_equal(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL), 1);
}

static void spki_sha256(const char *cert_path, unsigned char out[32])
{
    FILE *f = fopen(cert_path, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    unsigned char *der = NULL;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    assert_true(n > 0);
    sha256_of(der, (size_t)n, out);
    OPENSSL_free(der);
    X509_free(x);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    char err[256];
    log_init("test-smtp-client", false, LOG_LEVEL_WARN);
    snprintf(dir, sizeof dir, "/tmp/test-smtp-client.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    path_in(ss_cert, sizeof ss_cert, "ss.pem");
    path_in(ss_key, sizeof ss_key, "ss.key");
    path_in(ca_cert, sizeof ca_cert, "ca.pem");
    path_in(chain_cert, sizeof chain_cert, "chain.pem");
    path_in(leaf_key, sizeof leaf_key, "leaf.key");
    if (tls_make_self_signed(MX, ss_cert, ss_key, err, sizeof err) < 0)
        fail_msg("%s", err);
    spki_sha256(ss_cert, ss_spki_sha256);

    EVP_PKEY *cakey = EVP_EC_gen("P-256"), *leafkey = EVP_EC_gen("P-256");
    X509 *ca = make_cert("sealmail test CA", cakey, NULL, NULL, true);
    X509 *leaf = make_cert(MX, leafkey, ca, cakey, false);
    write_pem(ca_cert, ca, NULL, NULL);
    write_pem(chain_cert, leaf, ca, NULL);
    write_pem(leaf_key, NULL, NULL, leafkey);
    unsigned char *der = NULL;
    int n = i2d_X509(ca, &der);
    assert_true(n > 0);
    sha256_of(der, (size_t)n, ca_sha256);
    OPENSSL_free(der);
    X509_free(ca);
    X509_free(leaf);
    EVP_PKEY_free(cakey);
    EVP_PKEY_free(leafkey);

    tls_ss = tls_server_new(ss_cert, ss_key, NULL, NULL, err, sizeof err);
    if (tls_ss == NULL)
        fail_msg("%s", err);
    tls_ca = tls_server_new(chain_cert, leaf_key, NULL, NULL, err, sizeof err);
    if (tls_ca == NULL)
        fail_msg("%s", err);
    ctx_system = tls_client_ctx_new(NULL, err, sizeof err);
    if (ctx_system == NULL)
        fail_msg("%s", err);
    ctx_testca = tls_client_ctx_new(ca_cert, err, sizeof err);
    if (ctx_testca == NULL)
        fail_msg("%s", err);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tls_server_free(&tls_ss);
    tls_server_free(&tls_ca);
    SSL_CTX_free(ctx_system);
    SSL_CTX_free(ctx_testca);
    sm_buf_free(&last_stored);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* ---- a listening socket on 127.0.0.1 ---------------------------------------------- */

static int listen_loopback(struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof *sa), 0);
    assert_int_equal(listen(fd, 8), 0);
    socklen_t len = sizeof *sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)sa, &len), 0);
    return fd;
}

/* ---- sealmail's engine as the server ---------------------------------------------- */

struct real_server {
    struct event_base *base;
    struct tls_server *tls; /* NULL: no STARTTLS */
    int lfd;
    struct event *lev;
    struct sm_buf *stored;  /* the last message, after the Received header */
    int commits;
    bool saw_tls;
    struct real_conn *live;
};

struct real_conn {
    struct real_server *srv;
    struct conn *conn;
    struct smtp_session *s;
    struct event *commit;
    struct sm_buf writing;
};

static const char *rs_check_rcpt(void *ctx, const struct smtp_path *rcpt)
{
    (void)ctx;
    return strcmp(rcpt->domain, "refused.example") == 0 ? "550 5.1.1 No such user here" : NULL;
}

static int rs_data_begin(void *ctx, const struct smtp_tx_info *tx, char *queue_id)
{
    (void)tx;
    struct real_conn *rc = ctx;
    sm_buf_reset(&rc->writing);
    strcpy(queue_id, "0000000000000042");
    return 0;
}

static int rs_data_write(void *ctx, const void *p, size_t n)
{
    return sm_buf_append(&((struct real_conn *)ctx)->writing, p, n);
}

static void rs_commit_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct real_conn *rc = arg;
    struct real_server *srv = rc->srv;
    const char *all = sm_buf_str(&rc->writing);
    const char *end_rcvd = strstr(all, "+0000\r\n"); /* the end of the Received header */
    const char *body = end_rcvd ? end_rcvd + 7 : all;
    sm_buf_reset(srv->stored);
    sm_buf_append(srv->stored, body, rc->writing.len - (size_t)(body - all));
    srv->commits++;
    smtp_session_commit_done(rc->s, true);
}

static void rs_data_commit(void *ctx)
{
    event_active(((struct real_conn *)ctx)->commit, EV_TIMEOUT, 0);
}

static void rs_data_abort(void *ctx)
{
    sm_buf_reset(&((struct real_conn *)ctx)->writing);
}

static void rs_starttls(void *ctx)
{
    struct real_conn *rc = ctx;
    if (conn_starttls(rc->conn, tls_server_ssl_new(rc->srv->tls)) < 0)
        conn_close(rc->conn);
}

static void rs_pause(void *ctx)
{
    conn_pause(((struct real_conn *)ctx)->conn);
}

static void rs_resume(void *ctx)
{
    conn_resume(((struct real_conn *)ctx)->conn);
}

static void rs_set_timeout(void *ctx, unsigned seconds)
{
    conn_set_timeout(((struct real_conn *)ctx)->conn, seconds);
}

static void rs_close(void *ctx)
{
    conn_close(((struct real_conn *)ctx)->conn);
}

static const struct smtp_server_callbacks rs_callbacks = {
    .check_rcpt = rs_check_rcpt, .data_begin = rs_data_begin, .data_write = rs_data_write,
    .data_commit = rs_data_commit, .data_abort = rs_data_abort, .starttls = rs_starttls,
    .pause = rs_pause, .resume = rs_resume, .set_timeout = rs_set_timeout, .close = rs_close,
};

static void real_conn_free(struct real_conn *rc)
{
    rc->srv->live = NULL;
    smtp_session_free(&rc->s);
    conn_free(&rc->conn);
    event_free(rc->commit);
    sm_buf_free(&rc->writing);
    free(rc);
}

static void rs_io(struct conn *c, enum conn_event ev, void *arg)
{
    struct real_conn *rc = arg;
    char desc[96];
    switch (ev) {
    case CONN_DATAIN:
    case CONN_DRAINED:
        smtp_session_input(rc->s);
        return;
    case CONN_TLSREADY:
        rc->srv->saw_tls = true;
        tls_describe(conn_ssl(c), desc, sizeof desc);
        smtp_session_set_io(rc->s, conn_input(c), conn_output(c));
        smtp_session_tls_ready(rc->s, desc);
        smtp_session_input(rc->s);
        return;
    case CONN_TIMEOUT:
        if (!smtp_session_closing(rc->s)) {
            smtp_session_timeout(rc->s);
            return;
        }
        break;
    case CONN_CLOSED:
    case CONN_ERROR:
        break;
    }
    real_conn_free(rc);
}

static void rs_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    struct real_server *srv = arg;
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct real_conn *rc = sm_malloc(sizeof *rc);
    rc->srv = srv;
    srv->live = rc;
    sm_buf_init(&rc->writing, 0);
    rc->commit = event_new(srv->base, -1, 0, rs_commit_cb, rc);
    rc->conn = conn_new(srv->base, fd, NULL, 1 << 20, rs_io, rc);
    struct smtp_session_params p = {
        .id = 7, .hostname = "mx.server.test", .client_addr = "127.0.0.1",
        .client_log = "127.0.0.0", .max_line = 512, .max_data_line = 1000,
        .max_message_size = 20 * 1024 * 1024, .max_recipients = 50, .max_errors = 5,
        .command_timeout = 30, .data_timeout = 30, .tls_available = srv->tls != NULL,
    };
    rc->s = smtp_session_new(&p, &rs_callbacks, rc);
    smtp_session_set_io(rc->s, conn_input(rc->conn), conn_output(rc->conn));
    smtp_session_greet(rc->s);
}

static void real_server_start(struct real_server *srv, struct event_base *base,
                              struct tls_server *tls, struct sockaddr_in *sa)
{
    memset(srv, 0, sizeof *srv);
    srv->base = base;
    srv->tls = tls;
    srv->stored = &last_stored;
    sm_buf_reset(srv->stored);
    srv->lfd = listen_loopback(sa);
    srv->lev = event_new(base, srv->lfd, EV_READ | EV_PERSIST, rs_accept, srv);
    event_add(srv->lev, NULL);
}

static void real_server_stop(struct real_server *srv)
{
    if (srv->live)
        real_conn_free(srv->live);
    event_free(srv->lev);
    close(srv->lfd);
}

/* ---- the scripted fake server ------------------------------------------------------- */

/* Replies by command; NULL: a default.  "STALL" answers nothing, "CLOSE"
 * closes the connection instead of answering. */
struct fake_script {
    const char *greeting, *ehlo, *helo, *starttls, *mail, *rcpt[4], *data, *dot, *quit;
    bool garbage_after_starttls; /* answer the ClientHello with text */
    bool deaf_in_data;           /* stop reading after the 354 */
};

struct fake_server {
    struct event_base *base;
    const struct fake_script *sc;
    int lfd;
    struct event *lev;
    struct bufferevent *bev;
    struct linereader lr;
    char line[4096];
    bool in_data, tls_mode, garbage_sent;
    size_t n_rcpt;
    struct sm_buf transcript; /* commands received, CRLF-terminated */
    struct sm_buf data;       /* DATA lines as received (still dot-stuffed) */
};

#define FAKE_EHLO                                                                                  \
    "250-fake.test\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n"                     \
    "250 ENHANCEDSTATUSCODES\r\n"

static void fake_close(struct fake_server *f)
{
    if (f->bev)
        bufferevent_free(f->bev);
    f->bev = NULL;
}

static void fake_say(struct fake_server *f, const char *reply, const char *def)
{
    if (reply == NULL)
        reply = def;
    if (strcmp(reply, "STALL") == 0)
        return;
    if (strcmp(reply, "CLOSE") == 0) {
        fake_close(f);
        return;
    }
    evbuffer_add(bufferevent_get_output(f->bev), reply, strlen(reply));
}

static void fake_command(struct fake_server *f, const char *line)
{
    const struct fake_script *sc = f->sc;
    sm_buf_printf(&f->transcript, "%s\r\n", line);
    if (strncasecmp(line, "EHLO", 4) == 0) {
        fake_say(f, sc->ehlo, FAKE_EHLO);
    } else if (strncasecmp(line, "HELO", 4) == 0) {
        fake_say(f, sc->helo, "250 fake.test\r\n");
    } else if (strncasecmp(line, "STARTTLS", 8) == 0) {
        const char *r = sc->starttls ? sc->starttls : "454 4.7.0 TLS not available\r\n";
        f->tls_mode = strncmp(r, "220", 3) == 0;
        fake_say(f, r, NULL);
    } else if (strncasecmp(line, "MAIL", 4) == 0) {
        fake_say(f, sc->mail, "250 2.1.0 Ok\r\n");
    } else if (strncasecmp(line, "RCPT", 4) == 0) {
        size_t i = f->n_rcpt++;
        fake_say(f, i < 4 ? sc->rcpt[i] : NULL, "250 2.1.5 Ok\r\n");
    } else if (strncasecmp(line, "DATA", 4) == 0) {
        const char *r = sc->data ? sc->data : "354 go ahead\r\n";
        f->in_data = strncmp(r, "354", 3) == 0;
        fake_say(f, r, NULL);
        if (f->in_data && sc->deaf_in_data)
            bufferevent_disable(f->bev, EV_READ);
    } else if (strncasecmp(line, "QUIT", 4) == 0) {
        fake_say(f, sc->quit, "221 2.0.0 Bye\r\n");
    } else {
        fake_say(f, "500 5.5.2 what?\r\n", NULL);
    }
}

static void fake_read(struct bufferevent *bev, void *arg)
{
    struct fake_server *f = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (f->tls_mode) { /* a ClientHello: swallow it, or answer with text */
        evbuffer_drain(in, evbuffer_get_length(in));
        if (f->sc->garbage_after_starttls && !f->garbage_sent)
            evbuffer_add_printf(bufferevent_get_output(bev), "this is not TLS at all\r\n");
        f->garbage_sent = true;
        return;
    }
    while (f->bev != NULL && !f->tls_mode &&
           !(f->in_data && f->sc->deaf_in_data)) {
        size_t len;
        enum lr_result r = linereader_next(&f->lr, in, f->line, &len);
        if (r == LR_MORE || r == LR_TOOLONG)
            return;
        if (f->in_data) {
            sm_buf_append(&f->data, f->line, len);
            sm_buf_puts(&f->data, r == LR_LINE ? "\r\n" : "<BARE>\r\n");
            if (len == 1 && f->line[0] == '.') {
                f->in_data = false;
                fake_say(f, f->sc->dot, "250 2.0.0 Ok: queued\r\n");
            }
            continue;
        }
        fake_command(f, f->line);
    }
}

static void fake_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        fake_close(arg);
}

static void fake_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    struct fake_server *f = arg;
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    fake_close(f); /* one client at a time */
    f->bev = bufferevent_socket_new(f->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(f->bev, fake_read, NULL, fake_event, f);
    bufferevent_enable(f->bev, EV_READ | EV_WRITE);
    linereader_init(&f->lr, sizeof f->line);
    fake_say(f, f->sc->greeting, "220 fake.test ESMTP\r\n");
}

static void fake_start(struct fake_server *f, struct event_base *base,
                       const struct fake_script *sc, struct sockaddr_in *sa)
{
    memset(f, 0, sizeof *f);
    f->base = base;
    f->sc = sc;
    sm_buf_init(&f->transcript, 0);
    sm_buf_init(&f->data, 0);
    f->lfd = listen_loopback(sa);
    f->lev = event_new(base, f->lfd, EV_READ | EV_PERSIST, fake_accept, f);
    event_add(f->lev, NULL);
}

static void fake_stop(struct fake_server *f)
{
    fake_close(f);
    event_free(f->lev);
    close(f->lfd);
    sm_buf_free(&f->transcript);
    sm_buf_free(&f->data);
}

/* ---- running one delivery ------------------------------------------------------------- */

#define MAX_RCPTS 4

struct outcome {
    bool done;
    struct smtp_client_result r;
    struct smtp_client_rcpt_result rcpt[MAX_RCPTS];
    struct event_base *base;
};

static void on_done(struct smtp_client *c, const struct smtp_client_result *r, void *arg)
{
    struct outcome *o = arg;
    o->done = true;
    o->r = *r;
    for (size_t i = 0; i < r->n_rcpts && i < MAX_RCPTS; i++)
        o->rcpt[i] = r->rcpts[i];
    o->r.rcpts = NULL;
    smtp_client_free(&c); /* freeing inside the callback is allowed */
    event_base_loopbreak(o->base);
}

static void guard_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    event_base_loopbreak(arg);
}

static int message_fd(const char *text, size_t len)
{
    char path[160];
    path_in(path, sizeof path, "msg.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    return fd;
}

static const char *const one_rcpt[] = {"bob@example.test"};
#define SIMPLE_MSG "Subject: hi\r\n\r\nhello\r\n"

/* Defaults for a delivery to sa; tests change what they need. */
static struct smtp_client_params params_for(const struct sockaddr_in *sa, int msg_fd)
{
    struct smtp_client_params p = {
        .addr = (const struct sockaddr *)sa, .addrlen = sizeof *sa,
        .mx_host = MX, .helo_name = "out.sealmail.test", .tls = SMTP_TLS_OPPORTUNISTIC,
        .tls_ctx = ctx_system, .mail_from = "alice@sender.test", .rcpts = one_rcpt,
        .n_rcpts = 1, .msg_fd = msg_fd,
        .timeouts = {.connect_ms = 3000, .greeting_ms = 3000, .helo_ms = 3000,
                     .starttls_ms = 3000, .mail_ms = 3000, .rcpt_ms = 3000,
                     .data_init_ms = 3000, .data_block_ms = 3000, .data_end_ms = 3000,
                     .quit_ms = 3000},
    };
    return p;
}

static void run(struct event_base *base, const struct smtp_client_params *p, struct outcome *o)
{
    char err[256];
    memset(o, 0, sizeof *o);
    o->base = base;
    struct smtp_client *c = smtp_client_start(base, p, on_done, o, err, sizeof err);
    if (c == NULL)
        fail_msg("smtp_client_start: %s", err);
    struct event *guard = evtimer_new(base, guard_cb, base);
    struct timeval tv = {20, 0};
    evtimer_add(guard, &tv);
    event_base_dispatch(base);
    event_free(guard);
    if (!o->done)
        fail_msg("the delivery never finished");
}

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        if (strstr((hay), (needle)) == NULL)                                                       \
            fail_msg("'%s' not found in '%s'", (needle), (hay));                                   \
    } while (0)

/* ---- against sealmail's engine ---------------------------------------------------------- */

/* The message with every hard case for DATA: leading dots, a lone dot, a
 * bare LF and a bare CR, no final line end.  And what must arrive. */
static const char tricky_msg[] = "Subject: dots\r\nX: y\r\n\r\n.leading\r\n..two\r\n.\r\n"
                                 "bare lf\nbare cr\rcrlf\r\n\r\n.\n..\r\nlast";
static const char tricky_want[] = "Subject: dots\r\nX: y\r\n\r\n.leading\r\n..two\r\n.\r\n"
                                  "bare lf\r\nbare cr\r\ncrlf\r\n\r\n.\r\n..\r\nlast\r\n";

static void deliver_real(struct tls_server *tls, struct smtp_client_params *p, struct outcome *o,
                         struct real_server *srv)
{
    struct event_base *base = event_base_new();
    struct sockaddr_in sa;
    real_server_start(srv, base, tls, &sa);
    p->addr = (const struct sockaddr *)&sa;
    p->addrlen = sizeof sa;
    run(base, p, o);
    /* let the server see QUIT and close */
    event_base_loop(base, EVLOOP_NONBLOCK);
    real_server_stop(srv);
    event_base_free(base);
}

static void test_real_opportunistic(void **state)
{
    (void)state;
    struct real_server srv;
    struct outcome o;
    int fd = message_fd(tricky_msg, sizeof tricky_msg - 1);
    struct sockaddr_in none = {0};
    struct smtp_client_params p = params_for(&none, fd);
    p.body_8bit = true;
    deliver_real(tls_ss, &p, &o, &srv);
    assert_int_equal(o.r.status, SMTP_DELIVERED);
    assert_int_equal(o.r.stage, SMTP_STAGE_DONE);
    assert_int_equal(o.rcpt[0].status, SMTP_DELIVERED);
    assert_int_equal(o.rcpt[0].reply.code, 250);
    assert_string_equal(o.rcpt[0].reply.enhanced, "2.0.0");
    assert_contains(o.rcpt[0].reply.text, "queued as 0000000000000042");
    assert_true(o.r.tls && o.r.starttls_offered);
    assert_false(o.r.tls_verified);
    assert_true(strncmp(o.r.tls_version, "TLSv1.", 6) == 0);
    assert_int_equal(srv.commits, 1);
    assert_true(srv.saw_tls);
    assert_string_equal(sm_buf_str(srv.stored), tricky_want);
    close(fd);
}

/* A message of a few MiB streams through the watermarks intact. */
static void test_real_large(void **state)
{
    (void)state;
    struct sm_buf m, want;
    sm_buf_init(&m, 0);
    sm_buf_init(&want, 0);
    sm_buf_puts(&m, "Subject: big\n\n");
    sm_buf_puts(&want, "Subject: big\r\n\r\n");
    for (int i = 0; i < 60000; i++) {
        sm_buf_printf(&m, "%sline %d of a long message, with some text to fill it up\n",
                      i % 7 == 0 ? "." : "", i);
        sm_buf_printf(&want, "%sline %d of a long message, with some text to fill it up\r\n",
                      i % 7 == 0 ? "." : "", i);
    }
    int fd = message_fd(m.data, m.len);
    struct real_server srv;
    struct outcome o;
    struct sockaddr_in none = {0};
    struct smtp_client_params p = params_for(&none, fd);
    deliver_real(tls_ss, &p, &o, &srv);
    assert_int_equal(o.r.status, SMTP_DELIVERED);
    assert_int_equal(srv.stored->len, want.len);
    assert_true(memcmp(srv.stored->data, want.data, want.len) == 0);
    sm_buf_free(&m);
    sm_buf_free(&want);
    close(fd);
}

static void test_real_plain_and_refused_rcpt(void **state)
{
    (void)state;
    static const char *const rcpts[] = {"a@example.test", "nobody@refused.example",
                                        "b@example.test"};
    struct real_server srv;
    struct outcome o;
    int fd = message_fd(SIMPLE_MSG, strlen(SIMPLE_MSG));
    struct sockaddr_in none = {0};
    struct smtp_client_params p = params_for(&none, fd);
    p.tls = SMTP_TLS_NONE;
    p.rcpts = rcpts;
    p.n_rcpts = 3;
    deliver_real(tls_ss, &p, &o, &srv);
    assert_int_equal(o.r.status, SMTP_DELIVERED);
    assert_false(o.r.tls);
    assert_true(o.r.starttls_offered);
    assert_false(srv.saw_tls);
    assert_int_equal(o.rcpt[0].status, SMTP_DELIVERED);
    assert_int_equal(o.rcpt[1].status, SMTP_PERMFAIL);
    assert_int_equal(o.rcpt[1].reply.code, 550);
    assert_string_equal(o.rcpt[1].reply.enhanced, "5.1.1");
    assert_string_equal(o.rcpt[1].reply.text, "No such user here");
    assert_int_equal(o.rcpt[2].status, SMTP_DELIVERED);
    assert_string_equal(sm_buf_str(srv.stored), SIMPLE_MSG);
    close(fd);
}

static void test_real_all_refused(void **state)
{
    (void)state;
    static const char *const rcpts[] = {"x@refused.example", "y@refused.example"};
    struct real_server srv;
    struct outcome o;
    int fd = message_fd(SIMPLE_MSG, strlen(SIMPLE_MSG));
    struct sockaddr_in none = {0};
    struct smtp_client_params p = params_for(&none, fd);
    p.rcpts = rcpts;
    p.n_rcpts = 2;
    deliver_real(tls_ss, &p, &o, &srv);
    assert_int_equal(o.r.status, SMTP_PERMFAIL);
    assert_int_equal(o.r.stage, SMTP_STAGE_RCPT);
    assert_int_equal(o.rcpt[0].reply.code, 550);
    assert_int_equal(o.rcpt[1].status, SMTP_PERMFAIL);
    assert_int_equal(srv.commits, 0);
    close(fd);
}

static void dane_case(const struct smtp_tlsa *tlsa, size_t n, struct tls_server *tls,
                      const char *mx, struct outcome *o, struct real_server *srv)
{
    int fd = message_fd(SIMPLE_MSG, strlen(SIMPLE_MSG));
    struct sockaddr_in none = {0};
    struct smtp_client_params p = params_for(&none, fd);
    p.tls = SMTP_TLS_DANE;
    p.tlsa = tlsa;
    p.n_tlsa = n;
    p.mx_host = mx;
    deliver_real(tls, &p, o, srv);
    close(fd);
}

static void test_dane_ee(void **state)
{
    (void)state;
    struct real_server srv;
    struct outcome o;
    struct smtp_tlsa good = {3, 1, 1, ss_spki_sha256, 32};
    /* DANE-EE ignores names: any MX name, the record decides */
    dane_case(&good, 1, tls_ss, "another-name.sealmail.test", &o, &srv);
    assert_int_equal(o.r.status, SMTP_DELIVERED);
    assert_true(o.r.tls && o.r.tls_verified);
    assert_int_equal(o.r.dane_depth, 0);
    assert_int_equal(srv.commits, 1);

    unsigned char wrong[32];
    memcpy(wrong, ss_spki_sha256, 32);
    wrong[5] ^= 0x40;
    struct smtp_tlsa bad[] = {{3, 1, 1, wrong, 32}, {1, 1, 1, ss_spki_sha256, 32}};
    dane_case(bad, 2, tls_ss, MX, &o, &srv); /* PKIX-EE(1) is never used for SMTP */
    assert_int_equal(o.r.status, SMTP_TEMPFAIL);
    assert_int_equal(o.r.stage, SMTP_STAGE_TLS);
    assert_int_equal(o.rcpt[0].status, SMTP_TEMPFAIL);
    assert_contains(o.r.reply.text, "verification failed");
    assert_contains(o.rcpt[0].reply.text, "DANE");
    assert_false(o.r.tls_verified);
    assert_int_equal(srv.commits, 0);
}

static void test_dane_ta(void **state)
{
    (void)state;
    struct real_server srv;
    struct outcome o;
    struct smtp_tlsa ta = {2, 0, 1, ca_sha256, 32};
    dane_case(&ta, 1, tls_ca, MX, &o, &srv);
    assert_int_equal(o.r.status, SMTP_DELIVERED);
    assert_true(o.r.tls_verified);
    assert_int_equal(o.r.dane_depth, 1);

    /* DANE-TA checks names: a certificate for another host fails */
    dane_case(&ta, 1, tls_ca, "wrong.sealmail.test", &o, &srv);
    assert_int_equal(o.r.status, SMTP_TEMPFAIL);
    assert_int_equal(o.r.stage, SMTP_STAGE_TLS);
    assert_contains(o.r.reply.text, "verification failed");
    assert_int_equal(srv.commits, 0);

    /* the CA's digest does not make the self-signed certificate valid */
    dane_case(&ta, 1, tls_ss, MX, &o, &srv);
    assert_int_equal(o.r.status, SMTP_TEMPFAIL);
}

static void test_dane_unusable(void **state)
{
    (void)state;
    struct real_server srv;
    struct outcome o;
    static const unsigned char junk[3] = {1, 2, 3};
    /* usage 0 is skipped, matching type 9 and usage 7 are unknown: no
     * usable record, so TLS is mandatory but unauthenticated (RFC 7672 §2.2) */
    struct smtp_tlsa recs[] = {{0, 0, 1, ca_sha256, 32}, {3, 1, 9, junk, 3}, {7, 1, 1, junk, 3}};
    dane_case(recs, 3, tls_ss, MX, &o, &srv);
    assert_int_equal(o.r.status, SMTP_DELIVERED);
    assert_true(o.r.tls);
    assert_false(o.r.tls_verified);
    assert_int_equal(o.r.dane_depth, -1);
}

static void verify_case(SSL_CTX *ctx, struct tls_server *tls, const char *mx,
                        const char *const *sts, size_t n_sts, struct outcome *o,
                        struct real_server *srv)
{
    int fd = message_fd(SIMPLE_MSG, strlen(SIMPLE_MSG));
    struct sockaddr_in none = {0};
    struct smtp_client_params p = params_for(&none, fd);
    p.tls = SMTP_TLS_VERIFY_NAME;
    p.tls_ctx = ctx;
    p.mx_host = mx;
    p.sts_mx = sts;
    p.n_sts_mx = n_sts;
    deliver_real(tls, &p, o, srv);
    close(fd);
}

static void test_verify_name(void **state)
{
    (void)state;
    struct real_server srv;
    struct outcome o;
    static const char *const sts_ok[] = {"mx.other.test", "*.sealmail.test"};
    static const char *const sts_bad[] = {"*.other.test"};

    verify_case(ctx_testca, tls_ca, MX, sts_ok, 2, &o, &srv);
    assert_int_equal(o.r.status, SMTP_DELIVERED);
    assert_true(o.r.tls && o.r.tls_verified);
    assert_int_equal(srv.commits, 1);

    verify_case(ctx_testca, tls_ca, "wrong.sealmail.test", NULL, 0, &o, &srv);
    assert_int_equal(o.r.status, SMTP_TEMPFAIL);
    assert_int_equal(o.r.stage, SMTP_STAGE_TLS);
    assert_contains(o.r.reply.text, "hostname mismatch");
    assert_int_equal(srv.commits, 0);

    /* the right name, but a CA the client does not trust */
    verify_case(ctx_system, tls_ca, MX, NULL, 0, &o, &srv);
    assert_int_equal(o.r.status, SMTP_TEMPFAIL);
    assert_contains(o.r.reply.text, "verification failed");

    /* self-signed */
    verify_case(ctx_testca, tls_ss, MX, NULL, 0, &o, &srv);
    assert_int_equal(o.r.status, SMTP_TEMPFAIL);

    /* the MX is not in the MTA-STS policy: no connection at all */
    verify_case(ctx_testca, tls_ca, MX, sts_bad, 1, &o, &srv);
    assert_int_equal(o.r.status, SMTP_TEMPFAIL);
    assert_int_equal(o.r.stage, SMTP_STAGE_CONNECT);
    assert_contains(o.r.reply.text, "MTA-STS");
}

static void test_required_tls_not_offered(void **state)
{
    (void)state;
    struct real_server srv;
    struct outcome o;
    verify_case(ctx_testca, NULL, MX, NULL, 0, &o, &srv);
    assert_int_equal(o.r.status, SMTP_TEMPFAIL);
    assert_false(o.r.starttls_offered);
    assert_contains(o.r.reply.text, "STARTTLS");
    assert_int_equal(srv.commits, 0);

    struct smtp_tlsa good = {3, 1, 1, ss_spki_sha256, 32};
    dane_case(&good, 1, NULL, MX, &o, &srv);
    assert_int_equal(o.r.status, SMTP_TEMPFAIL);
    assert_contains(o.r.reply.text, "DANE");

    /* opportunistic: clear text is fine */
    int fd = message_fd(SIMPLE_MSG, strlen(SIMPLE_MSG));
    struct sockaddr_in none = {0};
    struct smtp_client_params p = params_for(&none, fd);
    deliver_real(NULL, &p, &o, &srv);
    assert_int_equal(o.r.status, SMTP_DELIVERED);
    assert_false(o.r.tls);
    close(fd);
}

/* ---- against the fake server -------------------------------------------------------------- */

struct fake_case {
    const char *label;
    struct fake_script sc;
    enum smtp_delivery want;
    enum smtp_client_stage stage;
    const char *text;               /* in the session reply text, or NULL */
    enum smtp_delivery rcpt_want[3];
    size_t n_rcpts;                 /* 0: 1 */
    enum smtp_tls_policy tls;       /* left out: SMTP_TLS_NONE */
    unsigned short_timeout_ms;      /* applied to every stage when set */
    const char *transcript_has;     /* a command the client must have sent */
    const char *transcript_lacks;
};

static const char *const three_rcpts[] = {"r1@example.test", "r2@example.test",
                                          "r3@example.test"};

static const char long_line[] = "250 "
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "\r\n";

#define NOPIPE_EHLO "250-fake.test\r\n250 SIZE\r\n"

static const struct fake_case fake_cases[] = {
    {"greeting 554", {.greeting = "554 5.7.1 go away\r\n"}, SMTP_TEMPFAIL, SMTP_STAGE_GREETING,
     "go away", {SMTP_TEMPFAIL}},
    {"greeting garbage", {.greeting = "hello there\r\n"}, SMTP_TEMPFAIL, SMTP_STAGE_GREETING,
     "malformed", {SMTP_TEMPFAIL}},
    {"greeting overlong", {.greeting = long_line}, SMTP_TEMPFAIL, SMTP_STAGE_GREETING,
     "longer than", {SMTP_TEMPFAIL}},
    {"code changes", {.greeting = "220-a\r\n250 b\r\n"}, SMTP_TEMPFAIL, SMTP_STAGE_GREETING,
     "code changes", {SMTP_TEMPFAIL}},
    {"greeting stalls", {.greeting = "STALL"}, SMTP_TEMPFAIL, SMTP_STAGE_GREETING, "timeout",
     {SMTP_TEMPFAIL}, 0, SMTP_TLS_OPPORTUNISTIC, 200},
    {"ehlo 421", {.ehlo = "421 4.3.2 shutting down\r\n"}, SMTP_TEMPFAIL, SMTP_STAGE_EHLO,
     "shutting down", {SMTP_TEMPFAIL}},
    {"helo fallback", {.ehlo = "502 5.5.1 no EHLO\r\n", .rcpt = {"250 ok\r\n"}}, SMTP_DELIVERED,
     SMTP_STAGE_DONE, NULL, {SMTP_DELIVERED}, 0, SMTP_TLS_OPPORTUNISTIC, 0, "HELO out.sealmail",
     "SIZE="},
    {"helo refused", {.ehlo = "500 no\r\n", .helo = "550 5.7.1 not you\r\n"}, SMTP_PERMFAIL,
     SMTP_STAGE_HELO, "not you", {SMTP_PERMFAIL}},
    {"mail 452 pipelined", {.mail = "452 4.3.1 full\r\n", .rcpt = {"503 5.5.1 need MAIL\r\n"},
     .data = "503 5.5.1 no\r\n"}, SMTP_TEMPFAIL, SMTP_STAGE_MAIL, "full", {SMTP_TEMPFAIL}},
    {"mail 550 not pipelined", {.ehlo = NOPIPE_EHLO, .mail = "550 5.7.1 sender refused\r\n"},
     SMTP_PERMFAIL, SMTP_STAGE_MAIL, "sender refused", {SMTP_PERMFAIL}, 0,
     SMTP_TLS_OPPORTUNISTIC, 0, "MAIL FROM:<alice@sender.test> SIZE=", "RCPT"},
    {"mixed rcpts", {.rcpt = {"250 ok\r\n", "550 5.1.1 unknown\r\n", "452 4.2.2 over quota\r\n"}},
     SMTP_DELIVERED, SMTP_STAGE_DONE, NULL, {SMTP_DELIVERED, SMTP_PERMFAIL, SMTP_TEMPFAIL}, 3,
     SMTP_TLS_OPPORTUNISTIC, 0, "BODY=8BITMIME"},
    {"mixed rcpts not pipelined", {.ehlo = NOPIPE_EHLO, .rcpt = {"550 5.1.1 a\r\n", "250 ok\r\n",
     "550 5.1.1 c\r\n"}}, SMTP_DELIVERED, SMTP_STAGE_DONE, NULL,
     {SMTP_PERMFAIL, SMTP_DELIVERED, SMTP_PERMFAIL}, 3},
    {"all rcpts refused, DATA 354 anyway", {.rcpt = {"550 5.1.1 a\r\n",
     "551 5.1.6 moved away\r\n"}, .data = "354 go\r\n"}, SMTP_PERMFAIL, SMTP_STAGE_RCPT,
     "moved away",
     {SMTP_PERMFAIL, SMTP_PERMFAIL}, 2},
    {"all rcpts refused not pipelined", {.ehlo = NOPIPE_EHLO, .rcpt = {"450 4.2.0 later\r\n"}},
     SMTP_TEMPFAIL, SMTP_STAGE_RCPT, "later", {SMTP_TEMPFAIL}, 1, SMTP_TLS_OPPORTUNISTIC, 0,
     "QUIT", "DATA"},
    {"data 451", {.data = "451 4.3.0 try later\r\n"}, SMTP_TEMPFAIL, SMTP_STAGE_DATA, "try later",
     {SMTP_TEMPFAIL}},
    {"dot 554", {.dot = "554 5.7.1 spam\r\n"}, SMTP_PERMFAIL, SMTP_STAGE_DOT, "spam",
     {SMTP_PERMFAIL}},
    {"dot 451", {.dot = "451 4.7.1 greylisted\r\n"}, SMTP_TEMPFAIL, SMTP_STAGE_DOT, "greylisted",
     {SMTP_TEMPFAIL}},
    {"dot stalls", {.dot = "STALL"}, SMTP_TEMPFAIL, SMTP_STAGE_DOT, "timeout", {SMTP_TEMPFAIL}, 0,
     SMTP_TLS_OPPORTUNISTIC, 300},
    {"rcpt stalls", {.ehlo = NOPIPE_EHLO, .rcpt = {"STALL"}}, SMTP_TEMPFAIL, SMTP_STAGE_RCPT, "timeout",
     {SMTP_TEMPFAIL}, 0, SMTP_TLS_OPPORTUNISTIC, 300},
    {"close after mail", {.mail = "CLOSE"}, SMTP_TEMPFAIL, SMTP_STAGE_MAIL, "during mail",
     {SMTP_TEMPFAIL}},
    {"rcpt 421", {.rcpt = {"421 4.7.0 bye\r\n"}}, SMTP_TEMPFAIL, SMTP_STAGE_RCPT, "bye",
     {SMTP_TEMPFAIL}},
    {"garbage at data", {.data = "354\x01 \r\n2xx\r\n"}, SMTP_TEMPFAIL, SMTP_STAGE_DATA,
     "malformed", {SMTP_TEMPFAIL}},
    {"size over limit", {.ehlo = "250-fake\r\n250 SIZE 10\r\n"}, SMTP_PERMFAIL, SMTP_STAGE_MAIL,
     "exceeds", {SMTP_PERMFAIL}, 0, SMTP_TLS_OPPORTUNISTIC, 0, "QUIT", "MAIL"},
    {"quit ignored", {.quit = "STALL"}, SMTP_DELIVERED, SMTP_STAGE_DONE, NULL, {SMTP_DELIVERED},
     0, SMTP_TLS_OPPORTUNISTIC, 200},
    {"starttls refused, opportunistic",
     {.ehlo = "250-fake\r\n250 STARTTLS\r\n", .starttls = "454 4.7.0 no TLS today\r\n"},
     SMTP_DELIVERED, SMTP_STAGE_DONE, NULL, {SMTP_DELIVERED}, 0, SMTP_TLS_OPPORTUNISTIC, 0,
     "STARTTLS"},
    {"starttls refused, verify", {.ehlo = "250-fake\r\n250 STARTTLS\r\n"}, SMTP_TEMPFAIL,
     SMTP_STAGE_STARTTLS, "TLS not available", {SMTP_TEMPFAIL}, 0, SMTP_TLS_VERIFY_NAME, 0, NULL,
     "MAIL"},
    {"starttls injection", {.ehlo = "250-fake\r\n250 STARTTLS\r\n",
     .starttls = "220 go\r\n250 2.1.0 injected\r\n"}, SMTP_TEMPFAIL, SMTP_STAGE_STARTTLS,
     "after its reply to STARTTLS", {SMTP_TEMPFAIL}, 0, SMTP_TLS_OPPORTUNISTIC, 0, NULL, "MAIL"},
    {"handshake garbage", {.ehlo = "250-fake\r\n250 STARTTLS\r\n", .starttls = "220 go\r\n",
     .garbage_after_starttls = true}, SMTP_TEMPFAIL, SMTP_STAGE_TLS, "TLS handshake failed",
     {SMTP_TEMPFAIL}, 0, SMTP_TLS_OPPORTUNISTIC, 0, NULL, "MAIL"},
    {"handshake stalls", {.ehlo = "250-fake\r\n250 STARTTLS\r\n", .starttls = "220 go\r\n"},
     SMTP_TEMPFAIL, SMTP_STAGE_TLS, "timeout", {SMTP_TEMPFAIL}, 0, SMTP_TLS_OPPORTUNISTIC, 300},
    {"multiline ehlo, bare LF", {.ehlo = "250-fake\n250-PIPELINING\n250 SIZE 100000\n"},
     SMTP_DELIVERED, SMTP_STAGE_DONE, NULL, {SMTP_DELIVERED}, 0, SMTP_TLS_OPPORTUNISTIC, 0,
     "SIZE="},
};

static void run_fake_case(const struct fake_case *fc)
{
    struct event_base *base = event_base_new();
    struct fake_server f;
    struct sockaddr_in sa;
    struct outcome o;
    fake_start(&f, base, &fc->sc, &sa);
    int fd = message_fd(tricky_msg, sizeof tricky_msg - 1);
    struct smtp_client_params p = params_for(&sa, fd);
    p.n_rcpts = fc->n_rcpts ? fc->n_rcpts : 1;
    p.rcpts = fc->n_rcpts ? three_rcpts : one_rcpt;
    p.tls = fc->tls;
    p.tls_ctx = fc->tls == SMTP_TLS_VERIFY_NAME ? ctx_testca : ctx_system;
    p.body_8bit = true;
    if (fc->short_timeout_ms) {
        unsigned t = fc->short_timeout_ms;
        p.timeouts = (struct smtp_client_timeouts){t, t, t, t, t, t, t, t, t, t};
    }
    run(base, &p, &o);
    event_base_loop(base, EVLOOP_NONBLOCK);
    if (o.r.status != fc->want || o.r.stage != fc->stage)
        fail_msg("%s: status %s stage %s (want %s %s): %d %s", fc->label,
                 smtp_delivery_name(o.r.status), smtp_client_stage_name(o.r.stage),
                 smtp_delivery_name(fc->want), smtp_client_stage_name(fc->stage), o.r.reply.code,
                 o.r.reply.text);
    if (fc->text && strstr(o.r.reply.text, fc->text) == NULL)
        fail_msg("%s: reply '%s' lacks '%s'", fc->label, o.r.reply.text, fc->text);
    for (size_t i = 0; i < p.n_rcpts; i++)
        if (o.rcpt[i].status != fc->rcpt_want[i])
            fail_msg("%s: rcpt %zu is %s (%d %s)", fc->label, i,
                     smtp_delivery_name(o.rcpt[i].status), o.rcpt[i].reply.code,
                     o.rcpt[i].reply.text);
    const char *tr = sm_buf_str(&f.transcript);
    if (fc->transcript_has && strstr(tr, fc->transcript_has) == NULL)
        fail_msg("%s: client never sent '%s':\n%s", fc->label, fc->transcript_has, tr);
    if (fc->transcript_lacks && strstr(tr, fc->transcript_lacks) != NULL)
        fail_msg("%s: client sent '%s':\n%s", fc->label, fc->transcript_lacks, tr);
    if (o.r.status == SMTP_DELIVERED) { /* still dot-stuffed on the wire */
        const char *want = "Subject: dots\r\nX: y\r\n\r\n..leading\r\n...two\r\n..\r\n"
                           "bare lf\r\nbare cr\r\ncrlf\r\n\r\n..\r\n...\r\nlast\r\n.\r\n";
        if (strcmp(sm_buf_str(&f.data), want) != 0)
            fail_msg("%s: data on the wire:\n%s", fc->label, sm_buf_str(&f.data));
    }
    fake_stop(&f);
    event_base_free(base);
    close(fd);
}

static void test_fake_server(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof fake_cases / sizeof fake_cases[0]; i++)
        run_fake_case(&fake_cases[i]);
}

/* A server that stops reading in the middle of the message: the output
 * stops draining and the data block timeout strikes; no dot is sent. */
static void test_data_block_timeout(void **state)
{
    (void)state;
    static const struct fake_script sc = {.ehlo = "250-fake\r\n250 PIPELINING\r\n",
                                          .deaf_in_data = true};
    struct event_base *base = event_base_new();
    struct fake_server f;
    struct sockaddr_in sa;
    struct outcome o;
    fake_start(&f, base, &sc, &sa);
    size_t size = 32u << 20; /* more than the loopback socket buffers hold */
    char *big = sm_malloc(size);
    for (size_t i = 0; i < size; i++)
        big[i] = (i % 100 == 99) ? '\n' : 'a';
    int fd = message_fd(big, size);
    free(big);
    struct smtp_client_params p = params_for(&sa, fd);
    p.timeouts.data_block_ms = 400;
    run(base, &p, &o);
    assert_int_equal(o.r.status, SMTP_TEMPFAIL);
    assert_int_equal(o.r.stage, SMTP_STAGE_BODY);
    assert_contains(o.r.reply.text, "timeout");
    assert_int_equal(o.rcpt[0].status, SMTP_TEMPFAIL);
    fake_stop(&f);
    event_base_free(base);
    close(fd);
}

static void test_connect_refused(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct sockaddr_in sa;
    int lfd = listen_loopback(&sa);
    close(lfd); /* nobody listens there now */
    int fd = message_fd(SIMPLE_MSG, strlen(SIMPLE_MSG));
    struct smtp_client_params p = params_for(&sa, fd);
    struct outcome o;
    run(base, &p, &o);
    assert_int_equal(o.r.status, SMTP_TEMPFAIL);
    assert_int_equal(o.r.stage, SMTP_STAGE_CONNECT);
    assert_contains(o.r.reply.text, "refused");
    event_base_free(base);
    close(fd);
}

static void test_utf8_and_params(void **state)
{
    (void)state;
    static const struct fake_script sc = {0};
    static const char *const utf8_rcpt[] = {"j\xc3\xb6rg@example.test"};
    static const char *const bad_rcpt[] = {"a@b>\r\nRSET"};
    struct event_base *base = event_base_new();
    struct fake_server f;
    struct sockaddr_in sa;
    struct outcome o;
    char err[128];
    fake_start(&f, base, &sc, &sa);
    int fd = message_fd(SIMPLE_MSG, strlen(SIMPLE_MSG));
    struct smtp_client_params p = params_for(&sa, fd);
    p.rcpts = utf8_rcpt; /* needs SMTPUTF8, which the fake does not offer */
    run(base, &p, &o);
    assert_int_equal(o.r.status, SMTP_PERMFAIL);
    assert_string_equal(o.rcpt[0].reply.enhanced, "5.6.7");
    assert_null(strstr(sm_buf_str(&f.transcript), "MAIL"));

    /* invalid parameters: no client, no callback */
    p.rcpts = bad_rcpt;
    assert_null(smtp_client_start(base, &p, on_done, &o, err, sizeof err));
    assert_contains(err, "recipient");
    p.rcpts = one_rcpt;
    p.mx_host = "bad host";
    assert_null(smtp_client_start(base, &p, on_done, &o, err, sizeof err));
    p.mx_host = MX;
    p.n_rcpts = 0;
    assert_null(smtp_client_start(base, &p, on_done, &o, err, sizeof err));
    p.n_rcpts = 1;
    p.tls_ctx = NULL;
    assert_null(smtp_client_start(base, &p, on_done, &o, err, sizeof err));

    /* freeing a delivery before it ran, and one in the middle of its
     * dialogue: no callback, nothing leaks */
    fake_stop(&f);
    static const struct fake_script stall = {.rcpt = {"STALL"}};
    fake_start(&f, base, &stall, &sa);
    p.tls_ctx = ctx_system;
    memset(&o, 0, sizeof o);
    struct smtp_client *c = smtp_client_start(base, &p, on_done, &o, err, sizeof err);
    assert_non_null(c);
    smtp_client_free(&c);
    assert_null(c);
    event_base_loop(base, EVLOOP_NONBLOCK);
    c = smtp_client_start(base, &p, on_done, &o, err, sizeof err);
    struct timeval tv = {0, 200 * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    assert_contains(sm_buf_str(&f.transcript), "RCPT");
    smtp_client_free(&c);
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_false(o.done);

    fake_stop(&f);
    event_base_free(base);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_parser),
        cmocka_unit_test(test_sts_patterns),
        cmocka_unit_test(test_real_opportunistic),
        cmocka_unit_test(test_real_large),
        cmocka_unit_test(test_real_plain_and_refused_rcpt),
        cmocka_unit_test(test_real_all_refused),
        cmocka_unit_test(test_dane_ee),
        cmocka_unit_test(test_dane_ta),
        cmocka_unit_test(test_dane_unusable),
        cmocka_unit_test(test_verify_name),
        cmocka_unit_test(test_required_tls_not_offered),
        cmocka_unit_test(test_fake_server),
        cmocka_unit_test(test_data_block_timeout),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_utf8_and_params),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
