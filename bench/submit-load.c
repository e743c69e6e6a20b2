/* submit-load.c — an authenticated SMTP submission load generator for bench/outbound.
 *
 * S sessions at once (one thread and one blocking connection each) submit N
 * messages in all, as a mail client does: connect, EHLO, STARTTLS, EHLO,
 * AUTH PLAIN, then MAIL, RCPT, DATA per message.  Postfix's smtp-source
 * speaks neither STARTTLS nor AUTH, so it cannot drive a submission port;
 * this program drives sealmail and Postfix the same way, byte for byte.
 *
 * Phases.  Every session first logs in (connect, TLS, AUTH); the time until
 * all have is printed as login_s.  Then the clock starts (t0_mono, the
 * CLOCK_MONOTONIC second, which Python's time.monotonic() reads too, so the
 * bench can time delivery from the same start) and the sessions take
 * message numbers from one shared counter until N were taken: the load
 * spreads over the sessions whatever their speed.  With --per-conn K, a
 * session logs out and in again (new connection, TLS, AUTH) after every K
 * messages, inside the timed phase.
 *
 * Message i (0-based) is deterministic: From: the --from address, To: the
 * --rcpt address, Message-ID <TAG.i@DOMAIN> (DOMAIN: --from's), a body of
 * 76-character lines up to about --size bytes, and a last body line
 * "end of TAG.i" by which the bench sees that a message arrived whole.  No
 * line starts with a dot (no dot-stuffing needed).
 *
 * Bounds: every socket operation has a 30 s timeout, a reply is at most
 * 64 KiB and 100 lines, the timed phase stops taking messages after
 * --seconds, and after an error a session reconnects at most
 * MAX_RECONNECTS times in all.  A message whose final reply is not 250
 * counts as failed and is not sent again (the bench then reports it
 * missing).  The password is read from an environment variable, never
 * from the command line (which `ps` shows).
 *
 * Output (one line, for bench/outbound to parse):
 *   RESULT ok=.. failed=.. errors=.. reconnects=.. login_s=.. t0_mono=..
 *          wall_s=.. per_s=.. p50_ms=.. p99_ms=.. cpu_s=..
 * The first problem seen, if any, goes to stderr.  Exit 0 only if every
 * message got its 250. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "loadlib.h"

#define MAX_SESSIONS 256
#define MAX_MESSAGES 1000000L
#define MAX_SECONDS 3600
#define MAX_SIZE (16L * 1024 * 1024)
#define REPLY_MAX (64 * 1024)
#define REPLY_LINES_MAX 100
#define ARG_MAX_ 256
#define IO_TIMEOUT_S 30
#define MAX_RECONNECTS 100
#define LINE_LEN 76

struct opts {
    const char *host, *user, *password, *from, *rcpt, *tag, *ehlo;
    int port, sessions;
    long messages, size, per_conn;
    double seconds;
    bool starttls, auth;
};

static struct opts opt = {.host = "127.0.0.1", .ehlo = "client.bench.test", .tag = "bench",
                          .sessions = 10, .messages = 1000, .size = 4096, .seconds = 120,
                          .starttls = true, .auth = true};
static SSL_CTX *ctx;
static const char *from_domain;
static char auth_line[3 * ARG_MAX_ + 64];
static pthread_barrier_t ready, go;
static atomic_long issued, ok_count, fail_count, err_count, reconnects;

struct conn {
    int fd;
    SSL *ssl;
    char buf[REPLY_MAX];
    size_t len;     /* bytes in buf */
    char *msg;      /* this session's message buffer */
    size_t msg_cap;
};

struct worker {
    pthread_t th;
    long n_lat, cap_lat;
    double *lat; /* seconds from MAIL to the final 250 of each good message */
};

static void conn_close(struct conn *c)
{
    load_close(&c->fd, &c->ssl);
    c->len = 0;
}

/* One complete reply (all its lines); returns its code, or -1 on a closed
 * connection, a timeout or a malformed or oversized reply.  The last line
 * is copied to last (for messages).  Bytes after the reply (none are
 * expected: no pipelining) are kept for the next call. */
static int read_reply(struct conn *c, char *last, size_t last_len)
{
    size_t start = 0;
    for (int lines = 0; lines < REPLY_LINES_MAX;) {
        char *eol = memchr(c->buf + start, '\n', c->len - start);
        if (eol == NULL) {
            if (c->len == sizeof c->buf) {
                load_problem("reply longer than %d bytes", REPLY_MAX);
                return -1;
            }
            ssize_t r = c->ssl != NULL ? SSL_read(c->ssl, c->buf + c->len, (int)(sizeof c->buf - c->len))
                                       : read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
            if (r <= 0) {
                if (r < 0 && c->ssl == NULL && errno == EINTR)
                    continue;
                load_problem("connection closed or timed out while waiting for a reply");
                return -1;
            }
            c->len += (size_t)r;
            continue;
        }
        size_t line_len = (size_t)(eol - (c->buf + start)) + 1;
        char *line = c->buf + start;
        lines++;
        if (line_len < 5 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
            line[2] < '0' || line[2] > '9' || (line[3] != ' ' && line[3] != '-' && line[3] != '\r')) {
            load_problem("malformed reply line");
            return -1;
        }
        int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        start += line_len;
        if (line[3] != '-') {
            if (last != NULL && last_len > 0) {
                size_t k = line_len < last_len ? line_len : last_len - 1;
                memcpy(last, line, k);
                last[k] = '\0';
                last[strcspn(last, "\r\n")] = '\0';
            }
            memmove(c->buf, c->buf + start, c->len - start);
            c->len -= start;
            return code;
        }
    }
    load_problem("reply of more than %d lines", REPLY_LINES_MAX);
    return -1;
}

/* Send a command line (CRLF added) and expect the reply code want. */
static bool command(struct conn *c, const char *line, int want, const char *what)
{
    char buf[3 * ARG_MAX_ + 80], last[256];
    int n = snprintf(buf, sizeof buf, "%s\r\n", line);
    if (n < 0 || (size_t)n >= sizeof buf || !load_send_all(c->fd, c->ssl, buf, (size_t)n))
        return false;
    int code = read_reply(c, last, sizeof last);
    if (code != want) {
        if (code >= 0)
            load_problem("%s: expected %d, got \"%s\"", what, want, last);
        return false;
    }
    return true;
}

/* Connect, greeting, EHLO, STARTTLS, EHLO, AUTH: a session ready for MAIL. */
static bool conn_open(struct conn *c)
{
    char ehlo[ARG_MAX_ + 8], last[256];
    c->len = 0;
    if ((c->fd = load_tcp_connect(opt.host, opt.port, IO_TIMEOUT_S)) < 0)
        return false;
    int code = read_reply(c, last, sizeof last);
    if (code != 220) {
        if (code >= 0)
            load_problem("greeting: \"%s\"", last);
        goto fail;
    }
    snprintf(ehlo, sizeof ehlo, "EHLO %s", opt.ehlo);
    if (!command(c, ehlo, 250, "EHLO"))
        goto fail;
    if (opt.starttls) {
        if (!command(c, "STARTTLS", 220, "STARTTLS"))
            goto fail;
        if (c->len != 0) {
            load_problem("bytes after the STARTTLS reply");
            goto fail;
        }
        if ((c->ssl = load_tls_start(ctx, c->fd)) == NULL)
            goto fail;
        if (!command(c, ehlo, 250, "EHLO after STARTTLS"))
            goto fail;
    }
    if (opt.auth && !command(c, auth_line, 235, "AUTH PLAIN"))
        goto fail;
    return true;
fail:
    conn_close(c);
    return false;
}

/* Message number i, with its end-of-data line, into c->msg; its length. */
static size_t build_message(struct conn *c, long i)
{
    char head[4 * ARG_MAX_ + 400];
    int h = snprintf(head, sizeof head,
                     "From: Bench Sender <%s>\r\n"
                     "To: <%s>\r\n"
                     "Subject: outbound bench %s %ld\r\n"
                     "Date: Sun, 22 Nov 2026 12:00:00 +0000\r\n"
                     "Message-ID: <%s.%ld@%s>\r\n"
                     "MIME-Version: 1.0\r\n"
                     "Content-Type: text/plain; charset=us-ascii\r\n"
                     "\r\n",
                     opt.from, opt.rcpt, opt.tag, i, opt.tag, i, from_domain);
    size_t n = 0;
    memcpy(c->msg, head, (size_t)h);
    n = (size_t)h;
    char trailer[ARG_MAX_ + 64];
    int t = snprintf(trailer, sizeof trailer, "end of %s.%ld\r\n.\r\n", opt.tag, i);
    /* body lines while the message stays under --size with its trailer */
    for (long line = 0; n + LINE_LEN + 2 + (size_t)t <= (size_t)opt.size; line++) {
        for (int k = 0; k < LINE_LEN; k++)
            c->msg[n + (size_t)k] = "abcdefghijklmnopqrstuvwxyz0123456789"[(line + k) % 36];
        c->msg[n + LINE_LEN] = '\r';
        c->msg[n + LINE_LEN + 1] = '\n';
        n += LINE_LEN + 2;
    }
    memcpy(c->msg + n, trailer, (size_t)t);
    return n + (size_t)t;
}

/* One transaction: 1 accepted, 0 refused (the session goes on), -1 error. */
static int one_message(struct conn *c, long i)
{
    char line[ARG_MAX_ + 32], last[256];
    snprintf(line, sizeof line, "MAIL FROM:<%s>", opt.from);
    if (!command(c, line, 250, "MAIL"))
        return -1;
    snprintf(line, sizeof line, "RCPT TO:<%s>", opt.rcpt);
    if (!command(c, line, 250, "RCPT"))
        return -1;
    if (!command(c, "DATA", 354, "DATA"))
        return -1;
    size_t n = build_message(c, i);
    if (!load_send_all(c->fd, c->ssl, c->msg, n))
        return -1;
    int code = read_reply(c, last, sizeof last);
    if (code < 0)
        return -1;
    if (code != 250) {
        load_problem("end of data of message %ld: \"%s\"", i, last);
        return 0;
    }
    return 1;
}

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
    bool up = false;
    if (c != NULL) {
        c->fd = -1;
        c->msg_cap = (size_t)opt.size + 4 * ARG_MAX_ + 600;
        c->msg = malloc(c->msg_cap);
        up = c->msg != NULL && conn_open(c);
    }
    pthread_barrier_wait(&ready); /* the clock starts when every session is logged in */
    pthread_barrier_wait(&go);
    if (!up) {
        atomic_fetch_add(&err_count, 1);
        goto out;
    }
    long sent_here = 0;
    for (;;) {
        if (load_past_deadline())
            break;
        long i = atomic_fetch_add(&issued, 1);
        if (i >= opt.messages)
            break;
        if (opt.per_conn > 0 && sent_here == opt.per_conn) {
            (void)command(c, "QUIT", 221, "QUIT");
            conn_close(c);
            if (!conn_open(c)) {
                atomic_fetch_add(&err_count, 1);
                atomic_fetch_add(&fail_count, 1);
                break;
            }
            sent_here = 0;
        }
        double t0 = load_now_s();
        int r = one_message(c, i);
        sent_here++;
        if (r > 0) {
            atomic_fetch_add(&ok_count, 1);
            if (w->n_lat < w->cap_lat)
                w->lat[w->n_lat++] = load_now_s() - t0;
        } else {
            atomic_fetch_add(&fail_count, 1);
            if (r < 0) {
                atomic_fetch_add(&err_count, 1);
                if (!reopen(c))
                    break;
                sent_here = 0;
            } else if (!command(c, "RSET", 250, "RSET") && !reopen(c)) {
                break;
            }
        }
    }
    if (c->fd >= 0)
        (void)command(c, "QUIT", 221, "QUIT");
out:
    if (c != NULL) {
        conn_close(c);
        free(c->msg);
    }
    free(c);
    return NULL;
}

static void usage(void)
{
    fputs("usage: submit-load --port P --from ADDR --rcpt ADDR [--user NAME --password-env VAR]\n"
          "         [--host 127.0.0.1] [--no-starttls] [--no-auth] [--sessions 10]\n"
          "         [--messages 1000] [--size 4096] [--per-conn 0] [--seconds 120]\n"
          "         [--tag bench] [--ehlo client.bench.test]\n",
          stderr);
    exit(2);
}

/* Addresses, names and the tag go into command lines and headers: no
 * spaces, controls or angle brackets, and a bounded length. */
static bool safe_arg(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) >= ARG_MAX_)
        return false;
    for (const char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || strchr("<>()\",;:\\", *p))
            return false;
    return true;
}

static void parse_opts(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'H'},     {"port", 1, 0, 'p'},        {"user", 1, 0, 'u'},
        {"password-env", 1, 0, 'P'}, {"from", 1, 0, 'f'},    {"rcpt", 1, 0, 'r'},
        {"tag", 1, 0, 'T'},      {"ehlo", 1, 0, 'e'},        {"sessions", 1, 0, 'c'},
        {"messages", 1, 0, 'n'}, {"size", 1, 0, 'l'},        {"per-conn", 1, 0, 'k'},
        {"seconds", 1, 0, 's'},  {"no-starttls", 0, 0, 'x'}, {"no-auth", 0, 0, 'a'},
        {0, 0, 0, 0}};
    int ch;
    const char *penv = NULL;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = (int)load_num(optarg, 1, 65535, "--port"); break;
        case 'u': opt.user = optarg; break;
        case 'P': penv = optarg; break;
        case 'f': opt.from = optarg; break;
        case 'r': opt.rcpt = optarg; break;
        case 'T': opt.tag = optarg; break;
        case 'e': opt.ehlo = optarg; break;
        case 'c': opt.sessions = (int)load_num(optarg, 1, MAX_SESSIONS, "--sessions"); break;
        case 'n': opt.messages = load_num(optarg, 1, MAX_MESSAGES, "--messages"); break;
        case 'l': opt.size = load_num(optarg, 1024, MAX_SIZE, "--size"); break;
        case 'k': opt.per_conn = load_num(optarg, 0, MAX_MESSAGES, "--per-conn"); break;
        case 's': opt.seconds = (double)load_num(optarg, 1, MAX_SECONDS, "--seconds"); break;
        case 'x': opt.starttls = false; break;
        case 'a': opt.auth = false; break;
        default: usage();
        }
    }
    if (opt.port == 0 || optind != argc || !safe_arg(opt.from) || !safe_arg(opt.rcpt) ||
        !safe_arg(opt.tag) || !safe_arg(opt.ehlo) || strchr(opt.from, '@') == NULL)
        usage();
    from_domain = strchr(opt.from, '@') + 1;
    if (!opt.auth)
        return;
    opt.password = penv != NULL ? getenv(penv) : NULL;
    if (!safe_arg(opt.user) || opt.password == NULL || strlen(opt.password) >= ARG_MAX_) {
        fputs("submit-load: AUTH needs --user and --password-env naming a set variable\n", stderr);
        exit(2);
    }
    /* AUTH PLAIN: base64("" NUL user NUL password), RFC 4616 */
    unsigned char plain[2 * ARG_MAX_ + 2];
    size_t ul = strlen(opt.user), pl = strlen(opt.password);
    plain[0] = '\0';
    memcpy(plain + 1, opt.user, ul);
    plain[1 + ul] = '\0';
    memcpy(plain + 2 + ul, opt.password, pl);
    memcpy(auth_line, "AUTH PLAIN ", 11);
    EVP_EncodeBlock((unsigned char *)auth_line + 11, plain, (int)(2 + ul + pl));
}

int main(int argc, char **argv)
{
    load_init("submit-load");
    parse_opts(argc, argv);
    if (opt.starttls) {
        ctx = SSL_CTX_new(TLS_client_method());
        if (ctx == NULL)
            return 1;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* loopback, self-signed */
    }
    struct worker *w = calloc((size_t)opt.sessions, sizeof *w);
    if (w == NULL)
        return 1;
    pthread_barrier_init(&ready, NULL, (unsigned)opt.sessions + 1);
    pthread_barrier_init(&go, NULL, (unsigned)opt.sessions + 1);
    double l0 = load_now_s();
    for (int i = 0; i < opt.sessions; i++) {
        w[i].cap_lat = opt.messages;
        w[i].lat = calloc((size_t)w[i].cap_lat, sizeof *w[i].lat);
        if (w[i].lat == NULL || pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0)
            return 1;
    }
    pthread_barrier_wait(&ready);
    double cpu0 = load_cpu_s(), t0 = load_now_s();
    double login = t0 - l0;
    load_deadline_in(opt.seconds);
    pthread_barrier_wait(&go);
    for (int i = 0; i < opt.sessions; i++)
        pthread_join(w[i].th, NULL);
    double wall = load_now_s() - t0, cpu = load_cpu_s() - cpu0;
    long n = 0;
    for (int i = 0; i < opt.sessions; i++)
        n += w[i].n_lat;
    double *all = calloc((size_t)n + 1, sizeof *all);
    if (all == NULL)
        return 1;
    long k = 0;
    for (int i = 0; i < opt.sessions; i++) {
        memcpy(all + k, w[i].lat, (size_t)w[i].n_lat * sizeof *all);
        k += w[i].n_lat;
        free(w[i].lat);
    }
    qsort(all, (size_t)n, sizeof *all, load_cmp_double);
#define PCT(q) (n > 0 ? all[(long)((double)(n - 1) * (q))] * 1e3 : 0.0)
    long ok = atomic_load(&ok_count);
    printf("RESULT ok=%ld failed=%ld errors=%ld reconnects=%ld login_s=%.3f t0_mono=%.6f "
           "wall_s=%.3f per_s=%.1f p50_ms=%.2f p99_ms=%.2f cpu_s=%.3f\n",
           ok, atomic_load(&fail_count), atomic_load(&err_count), atomic_load(&reconnects), login,
           t0, wall, (double)ok / wall, PCT(0.5), PCT(0.99), cpu);
    free(all);
    free(w);
    SSL_CTX_free(ctx);
    pthread_barrier_destroy(&ready);
    pthread_barrier_destroy(&go);
    return ok == opt.messages ? 0 : 1;
}
