/* loadlib.c — the load generators' shared basics (see loadlib.h) */
#include "loadlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *prog_name = "load";
static atomic_bool problem_told;
static struct timespec deadline;

void load_init(const char *prog)
{
    prog_name = prog;
}

double load_now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

double load_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

void load_deadline_in(double seconds)
{
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)seconds;
}

bool load_past_deadline(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec > deadline.tv_sec ||
           (t.tv_sec == deadline.tv_sec && t.tv_nsec >= deadline.tv_nsec);
}

void load_problem(const char *fmt, ...)
{
    if (atomic_exchange(&problem_told, true))
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

long load_num(const char *s, long lo, long hi, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "%s: %s must be %ld..%ld\n", prog_name, what, lo, hi);
        exit(2);
    }
    return v;
}

int load_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int load_tcp_connect(const char *host, int port, int timeout_s)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {timeout_s, 0};
    int one = 1;
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        load_problem("bad address %s", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        load_problem("socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        load_problem("connect %s:%d: %s", host, port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

SSL *load_tls_start(SSL_CTX *ctx, int fd)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1) {
        char e[256];
        ERR_error_string_n(ERR_get_error(), e, sizeof e);
        load_problem("TLS handshake: %s", e);
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

bool load_send_all(int fd, SSL *ssl, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = ssl != NULL ? SSL_write(ssl, p, (int)(n > INT32_MAX ? INT32_MAX : n))
                                : write(fd, p, n);
        if (w <= 0) {
            if (w < 0 && ssl == NULL && errno == EINTR)
                continue;
            load_problem("write failed%s", ssl != NULL ? " (TLS)" : "");
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

void load_close(int *fd, SSL **ssl)
{
    SSL_free(*ssl);
    *ssl = NULL;
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}
