/* http-load.c — an HTTP/1.1 keep-alive load generator for bench/http.
 *
 * Sends GET PATH on C connections at once (one thread and one blocking
 * connection each, plain or TLS) until N responses have come back or S
 * seconds have passed, and prints the rate.  Each connection is opened (and
 * its TLS handshake done) and sends W warm-up requests before the clock
 * starts, so the figure is requests per second over connections that are
 * already open, as a browser or API client keeps them.
 *
 * Every response must have the status given by --status and, when
 * --body-bytes is given, exactly that many body bytes (after chunked
 * decoding), or it counts as bad.  The parser is bounded: a header block
 * of at most 64 KiB, at most 64 MiB of body, chunk-size lines of at most
 * 256 bytes; anything else is an error.  Every socket operation has a 30 s
 * timeout.  After an error the connection is opened again, at most
 * MAX_RECONNECTS times in all.
 *
 * Why not Python: one Python thread parses a few thousand responses a
 * second at best, and on a 2-CPU machine its CPU would be taken from the
 * servers.  The client's own CPU time is printed so that the bench can
 * show it is not the limit.
 *
 * Output (one line, for bench/http to parse):
 *   RESULT ok=.. bad=.. errors=.. reconnects=.. wall_s=.. per_s=.. p50_ms=..
 *          p90_ms=.. p99_ms=.. body_bytes=.. cpu_s=..
 * The first problem seen, if any, goes to stderr. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "loadlib.h"

#define MAX_CONNS 256
#define MAX_REQUESTS 10000000L
#define MAX_SECONDS 600
#define HEAD_MAX (64 * 1024)
#define BODY_MAX (64L * 1024 * 1024)
#define LINE_MAX_ 256
#define REQ_MAX 4096
#define IO_TIMEOUT_S 30
#define MAX_RECONNECTS 100

struct opts {
    const char *host, *path, *header;
    int port, conns, warmup, status;
    long requests;
    double seconds;
    long body_bytes; /* -1: not checked */
    bool tls, quickack;
};

static struct opts opt = {.host = "127.0.0.1", .path = "/", .conns = 4, .warmup = 20,
                          .status = 200, .requests = 1000, .seconds = 10, .body_bytes = -1};
static SSL_CTX *ctx;
static char request[REQ_MAX];
static size_t request_len;
static pthread_barrier_t ready, go; /* warm-up done; clock set */
static atomic_long issued, ok_count, bad_count, err_count, reconnects, last_body = -1;

/* One connection and its response parser. */
struct conn {
    int fd;
    SSL *ssl;
    char head[HEAD_MAX];
    size_t head_len;
    char line[LINE_MAX_];
    size_t line_len;
    enum { P_HEAD, P_BODY, P_CSIZE, P_CDATA, P_CCRLF, P_TRAILER, P_DONE } st;
    long left, body;
    int status;
    bool chunked, close_after;
};

struct worker {
    pthread_t th;
    int id;
    long n_lat, cap_lat;
    double *lat; /* seconds, of the timed responses */
};

static void conn_close(struct conn *c)
{
    load_close(&c->fd, &c->ssl);
}

static bool conn_open(struct conn *c)
{
    if ((c->fd = load_tcp_connect(opt.host, opt.port, IO_TIMEOUT_S)) < 0)
        return false;
    if (!opt.tls)
        return true;
    if ((c->ssl = load_tls_start(ctx, c->fd)) == NULL) {
        conn_close(c);
        return false;
    }
    return true;
}

/* Status line and the headers that matter; -1 on a malformed head. */
static int parse_head(struct conn *c)
{
    c->head[c->head_len] = '\0';
    if (sscanf(c->head, "HTTP/1.%*1[01] %3d", &c->status) != 1)
        return -1;
    c->left = -1;
    c->chunked = false;
    c->close_after = strncmp(c->head, "HTTP/1.0", 8) == 0;
    for (char *l = strstr(c->head, "\r\n"); l != NULL && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
        char *h = l + 2;
        if (strncasecmp(h, "Content-Length:", 15) == 0) {
            char *end;
            long v = strtol(h + 15, &end, 10);
            if (v < 0 || v > BODY_MAX)
                return -1;
            c->left = v;
        } else if (strncasecmp(h, "Transfer-Encoding:", 18) == 0) {
            c->chunked = strcasestr(h, "chunked") != NULL && strcasestr(h, "chunked") < strstr(h, "\r\n");
        } else if (strncasecmp(h, "Connection:", 11) == 0) {
            char *e = strstr(h, "\r\n");
            char *cl = strcasestr(h, "close");
            if (cl != NULL && cl < e)
                c->close_after = true;
        }
    }
    c->body = 0;
    if (c->chunked)
        c->st = P_CSIZE;
    else if (c->left >= 0)
        c->st = c->left > 0 ? P_BODY : P_DONE;
    else
        return -1; /* a body until close: not what these servers send */
    c->line_len = 0;
    return 0;
}

/* A CRLF-terminated line into c->line: 1 complete, 0 need more, -1 too long. */
static int take_line(struct conn *c, const char **p, size_t *n)
{
    while (*n > 0) {
        char ch = **p;
        (*p)++, (*n)--;
        if (c->line_len + 1 >= sizeof c->line)
            return -1;
        c->line[c->line_len++] = ch;
        if (ch == '\n') {
            c->line[c->line_len] = '\0';
            return 1;
        }
    }
    return 0;
}

/* Feed received bytes to the parser: -1 malformed, 0 need more, 1 done
 * (*rest set to the bytes left over, which must be none). */
static int feed(struct conn *c, const char *p, size_t n, size_t *rest)
{
    while (n > 0 && c->st != P_DONE) {
        switch (c->st) {
        case P_HEAD: {
            size_t from = c->head_len > 3 ? c->head_len - 3 : 0;
            size_t take = n < HEAD_MAX - 1 - c->head_len ? n : HEAD_MAX - 1 - c->head_len;
            if (take == 0)
                return -1;
            memcpy(c->head + c->head_len, p, take);
            c->head_len += take;
            c->head[c->head_len] = '\0';
            char *end = memmem(c->head + from, c->head_len - from, "\r\n\r\n", 4);
            if (end == NULL) {
                p += take, n -= take;
                break;
            }
            size_t used = (size_t)(end + 4 - c->head) - (c->head_len - take);
            c->head_len = (size_t)(end + 4 - c->head);
            p += used, n -= used;
            if (parse_head(c) < 0)
                return -1;
            break;
        }
        case P_BODY:
        case P_CDATA: {
            size_t take = (size_t)c->left < n ? (size_t)c->left : n;
            c->left -= (long)take, c->body += (long)take;
            p += take, n -= take;
            if (c->body > BODY_MAX)
                return -1;
            if (c->left == 0)
                c->st = c->st == P_BODY ? P_DONE : P_CCRLF;
            break;
        }
        case P_CSIZE: {
            int r = take_line(c, &p, &n);
            if (r <= 0)
                return r;
            char *end;
            long v = strtol(c->line, &end, 16);
            c->line_len = 0;
            if (end == c->line || v < 0 || v > BODY_MAX)
                return -1;
            c->left = v;
            c->st = v > 0 ? P_CDATA : P_TRAILER;
            break;
        }
        case P_CCRLF:
        case P_TRAILER: {
            int r = take_line(c, &p, &n);
            if (r <= 0)
                return r;
            bool blank = strcmp(c->line, "\r\n") == 0;
            c->line_len = 0;
            if (c->st == P_CCRLF) {
                if (!blank)
                    return -1;
                c->st = P_CSIZE;
            } else if (blank) {
                c->st = P_DONE;
            }
            break;
        }
        case P_DONE: break;
        }
    }
    *rest = n;
    return c->st == P_DONE ? 1 : 0;
}

/* One request and its response: 1 good, 0 bad (status or size), -1 error. */
static int one_request(struct conn *c)
{
    char buf[65536];
    c->st = P_HEAD;
    c->head_len = 0;
    c->line_len = 0;
    if (!load_send_all(c->fd, c->ssl, request, request_len))
        return -1;
    for (;;) {
        if (opt.quickack) { /* the kernel clears it again: set before every read */
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
        }
        ssize_t r = c->ssl != NULL ? SSL_read(c->ssl, buf, sizeof buf) : read(c->fd, buf, sizeof buf);
        if (r <= 0) {
            if (r < 0 && c->ssl == NULL && errno == EINTR)
                continue;
            load_problem("connection closed or timed out before the response was complete "
                    "(%zu header bytes, %ld body bytes read)", c->head_len, c->body);
            return -1;
        }
        size_t rest = 0;
        int f = feed(c, buf, (size_t)r, &rest);
        if (f < 0) {
            load_problem("malformed response (status %d)", c->status);
            return -1;
        }
        if (f == 0)
            continue;
        if (rest > 0) {
            load_problem("%zu bytes after the response", rest);
            return -1;
        }
        if (c->status != opt.status) {
            load_problem("status %d (wanted %d)", c->status, opt.status);
            return 0;
        }
        if (opt.body_bytes >= 0 && c->body != opt.body_bytes) {
            load_problem("body of %ld bytes (wanted %ld)", c->body, opt.body_bytes);
            return 0;
        }
        return 1;
    }
}

/* After an error: open again, within the global reconnect budget. */
static bool reopen(struct conn *c)
{
    conn_close(c);
    if (atomic_fetch_add(&reconnects, 1) >= MAX_RECONNECTS)
        return false;
    return conn_open(c);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct conn *c = calloc(1, sizeof *c);
    bool up = c != NULL && (c->fd = -1, conn_open(c));
    for (int i = 0; up && i < opt.warmup; i++)
        if (one_request(c) < 0)
            up = false;
    pthread_barrier_wait(&ready); /* the clock starts when every connection is ready */
    pthread_barrier_wait(&go);
    if (!up) {
        atomic_fetch_add(&err_count, 1);
        goto out;
    }
    while (!load_past_deadline() && atomic_fetch_add(&issued, 1) < opt.requests) {
        double t0 = load_now_s();
        int r = one_request(c);
        double dt = load_now_s() - t0;
        atomic_store(&last_body, c->body);
        if (r > 0) {
            atomic_fetch_add(&ok_count, 1);
            if (w->n_lat < w->cap_lat)
                w->lat[w->n_lat++] = dt;
        } else if (r == 0) {
            atomic_fetch_add(&bad_count, 1);
        } else {
            atomic_fetch_add(&err_count, 1);
        }
        if ((r < 0 || c->close_after) && !reopen(c))
            break;
    }
out:
    if (c != NULL)
        conn_close(c);
    free(c);
    return NULL;
}

static void usage(void)
{
    fputs("usage: http-load --port P [--host 127.0.0.1] [--tls] [--path /] [--header 'H: v']\n"
          "         [--conns 4] [--requests 1000] [--seconds 10] [--warmup 20]\n"
          "         [--status 200] [--body-bytes N] [--quickack]\n",
          stderr);
    exit(2);
}

static void parse_opts(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'H'},     {"port", 1, 0, 'p'},     {"tls", 0, 0, 't'},
        {"path", 1, 0, 'P'},     {"header", 1, 0, 'h'},   {"conns", 1, 0, 'c'},
        {"requests", 1, 0, 'n'}, {"seconds", 1, 0, 's'},  {"warmup", 1, 0, 'w'},
        {"status", 1, 0, 'S'},   {"body-bytes", 1, 0, 'b'}, {"quickack", 0, 0, 'q'},
        {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = (int)load_num(optarg, 1, 65535, "--port"); break;
        case 't': opt.tls = true; break;
        case 'q': opt.quickack = true; break;
        case 'P': opt.path = optarg; break;
        case 'h': opt.header = optarg; break;
        case 'c': opt.conns = (int)load_num(optarg, 1, MAX_CONNS, "--conns"); break;
        case 'n': opt.requests = load_num(optarg, 1, MAX_REQUESTS, "--requests"); break;
        case 's': opt.seconds = (double)load_num(optarg, 1, MAX_SECONDS, "--seconds"); break;
        case 'w': opt.warmup = (int)load_num(optarg, 0, 100000, "--warmup"); break;
        case 'S': opt.status = (int)load_num(optarg, 100, 599, "--status"); break;
        case 'b': opt.body_bytes = load_num(optarg, 0, BODY_MAX, "--body-bytes"); break;
        default: usage();
        }
    }
    if (opt.port == 0 || optind != argc || opt.path[0] != '/' || strpbrk(opt.path, "\r\n ") ||
        (opt.header != NULL && strpbrk(opt.header, "\r\n")))
        usage();
    int n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: application/json\r\n%s%s"
                     "User-Agent: sealmail-bench-http-load\r\n\r\n",
                     opt.path, opt.host, opt.port, opt.header != NULL ? opt.header : "",
                     opt.header != NULL ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof request)
        usage();
    request_len = (size_t)n;
}

int main(int argc, char **argv)
{
    load_init("http-load");
    parse_opts(argc, argv);
    if (opt.tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        if (ctx == NULL)
            return 1;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* loopback, self-signed */
    }
    struct worker *w = calloc((size_t)opt.conns, sizeof *w);
    long cap = opt.requests < (1L << 20) ? opt.requests : (1L << 20); /* latencies kept */
    if (w == NULL)
        return 1;
    pthread_barrier_init(&ready, NULL, (unsigned)opt.conns + 1);
    pthread_barrier_init(&go, NULL, (unsigned)opt.conns + 1);
    for (int i = 0; i < opt.conns; i++) {
        w[i].id = i;
        w[i].cap_lat = cap;
        w[i].lat = calloc((size_t)w[i].cap_lat, sizeof *w[i].lat);
        if (w[i].lat == NULL || pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0)
            return 1;
    }
    pthread_barrier_wait(&ready);
    double cpu0 = load_cpu_s(), t0 = load_now_s();
    load_deadline_in(opt.seconds);
    pthread_barrier_wait(&go);
    for (int i = 0; i < opt.conns; i++)
        pthread_join(w[i].th, NULL);
    double wall = load_now_s() - t0, cpu = load_cpu_s() - cpu0;
    long n = 0;
    for (int i = 0; i < opt.conns; i++)
        n += w[i].n_lat;
    double *all = calloc((size_t)n + 1, sizeof *all);
    long k = 0;
    for (int i = 0; i < opt.conns; i++) {
        memcpy(all + k, w[i].lat, (size_t)w[i].n_lat * sizeof *all);
        k += w[i].n_lat;
        free(w[i].lat);
    }
    qsort(all, (size_t)n, sizeof *all, load_cmp_double);
#define PCT(q) (n > 0 ? all[(long)((double)(n - 1) * (q))] * 1e3 : 0.0)
    printf("RESULT ok=%ld bad=%ld errors=%ld reconnects=%ld wall_s=%.3f per_s=%.1f p50_ms=%.3f "
           "p90_ms=%.3f p99_ms=%.3f body_bytes=%ld cpu_s=%.3f\n",
           atomic_load(&ok_count), atomic_load(&bad_count), atomic_load(&err_count),
           atomic_load(&reconnects), wall, (double)atomic_load(&ok_count) / wall, PCT(0.5),
           PCT(0.9), PCT(0.99), atomic_load(&last_body), cpu);
    free(all);
    free(w);
    SSL_CTX_free(ctx);
    pthread_barrier_destroy(&ready);
    pthread_barrier_destroy(&go);
    return atomic_load(&bad_count) + atomic_load(&err_count) > 0 ? 1 : 0;
}
