/* tls.h — server TLS contexts (OpenSSL 3): TLS 1.2 and 1.3 only, Mozilla
 * intermediate ciphers, SSL_OP_IGNORE_UNEXPECTED_EOF (Debian's libevent
 * 2.1.12 predates OpenSSL 3's EOF reporting), per-domain certificates by
 * SNI, and reload by swapping the whole set (connections keep theirs). */
#ifndef SM_TLS_H
#define SM_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>

struct tls_server;

/* Build the server contexts: the default certificate chain and key from
 * cert_path/key_path, plus for every NAME.pem with a NAME.key in sni_dir
 * (may be missing) a context chosen when the client's SNI is NAME.
 * ciphers is the TLS 1.2 list.  Returns NULL with a message in err. */
struct tls_server *tls_server_new(const char *cert_path, const char *key_path,
                                  const char *sni_dir, const char *ciphers, char *err,
                                  size_t errlen);
/* A new SSL object for an accepted connection (server mode, SNI armed). */
SSL *tls_server_ssl_new(struct tls_server *ts);
void tls_server_free(struct tls_server **ts);

/* Describe the negotiated session for the Received header: e.g.
 * "TLS1.3 TLS_AES_256_GCM_SHA384", into out. */
void tls_describe(SSL *ssl, char *out, size_t outlen);

/* Create a self-signed certificate (EC P-256, SAN=hostname, 10 years)
 * and its key as PEM files; key written 0600.  Returns 0 or -1 with err. */
int tls_make_self_signed(const char *hostname, const char *cert_path, const char *key_path,
                         char *err, size_t errlen);

/* ---- client side (outbound SMTP, smtp/client.c) ----------------------- */

/* A client context for outbound SMTP: TLS 1.2 and 1.3 only,
 * SSL_OP_IGNORE_UNEXPECTED_EOF, no renegotiation or compression, DANE
 * enabled (SSL_CTX_dane_enable, DANE_FLAG_NO_DANE_EE_NAMECHECKS as RFC 7672
 * §3.1.1 and SSL_CTX_dane_enable(3) ask for SMTP), and the trust store for
 * PKIX verification: ca_file when given (tests, private CAs), else the
 * system store.  Verification itself is armed per connection.  One context
 * serves every delivery of a process.  Returns NULL with a message in err. */
SSL_CTX *tls_client_ctx_new(const char *ca_file, char *err, size_t errlen);

#endif
