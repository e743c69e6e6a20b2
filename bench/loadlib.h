/* loadlib.h — what bench's load generators (http-load, submit-load) share:
 * the clock and the run's deadline, one problem report per run (the first
 * is the one that explains), CPU time, checked numeric options, and the
 * connection basics (TCP with timeouts and TCP_NODELAY, a TLS handshake,
 * whole writes over either).  Not part of sealmail: bench tools only. */
#ifndef SM_BENCH_LOADLIB_H
#define SM_BENCH_LOADLIB_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

/* The program's name for messages; call first. */
void load_init(const char *prog);

double load_now_s(void);            /* monotonic seconds */
double load_cpu_s(void);            /* this process's user + system CPU seconds */
void load_deadline_in(double seconds);
bool load_past_deadline(void);

/* Print "PROG: message" once per run; later calls are silent. */
void load_problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A decimal option in lo..hi, or exit 2 with a message naming what. */
long load_num(const char *s, long lo, long hi, const char *what);
int load_cmp_double(const void *a, const void *b); /* for qsort of doubles */

/* A TCP connection to host:port (IPv4 literal) with send and receive
 * timeouts of timeout_s and TCP_NODELAY; the socket or -1 (reported). */
int load_tcp_connect(const char *host, int port, int timeout_s);
/* A TLS client handshake on fd; the SSL or NULL (reported). */
SSL *load_tls_start(SSL_CTX *ctx, int fd);
/* Write all n bytes (over ssl when not NULL); false (reported) on failure. */
bool load_send_all(int fd, SSL *ssl, const char *p, size_t n);
/* Free ssl, close fd; both set to "none". */
void load_close(int *fd, SSL **ssl);

#endif
