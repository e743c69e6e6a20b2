/* imap-fetch — the FETCH reader of bench/imap: one plain IMAP connection on
 * loopback, LOGIN, EXAMINE INBOX, then REPS times "FETCH 1:* (ITEM)", each
 * read to its tagged reply and timed.  Literals are skipped by length, never
 * copied, so that the reader is not what limits the rate: bench/imap's
 * Python reader topped out near the rate both servers reached (about 57,000
 * messages/s of 4 KiB from a server that only replays a buffer), which hid
 * any difference between them.
 *
 * Usage: imap-fetch PORT USER PASSWORD ITEM EXPECT REPS
 * Prints one line per FETCH: "RUN seconds responses literal-bytes", then
 * "CPU seconds" (this process).  Exit 1 when a reply is not OK or holds
 * another number of FETCH responses than EXPECT; every read is bounded by a
 * 30 s timeout and the whole run by 300 s.  Not part of sealmail. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loadlib.h"

#define BUF_BYTES (4u << 20)
#define LINE_MAX_BYTES 65536
#define IO_TIMEOUT_S 30
#define RUN_LIMIT_S 300

struct reader {
    int fd;
    char *buf;
    size_t pos, len;
    char line[LINE_MAX_BYTES + 1]; /* the current line, literals left out */
    size_t line_len;
};

/* More input; false (reported) at EOF, an error or the deadline. */
static bool fill(struct reader *r)
{
    if (load_past_deadline()) {
        load_problem("run longer than %d s", RUN_LIMIT_S);
        return false;
    }
    ssize_t n = read(r->fd, r->buf, BUF_BYTES);
    if (n <= 0) {
        load_problem("read: %s", n == 0 ? "connection closed" : strerror(errno));
        return false;
    }
    r->pos = 0;
    r->len = (size_t)n;
    return true;
}

/* Skip n literal bytes. */
static bool skip(struct reader *r, unsigned long long n)
{
    while (n > 0) {
        if (r->pos == r->len && !fill(r))
            return false;
        size_t take = r->len - r->pos < n ? r->len - r->pos : (size_t)n;
        r->pos += take;
        n -= take;
    }
    return true;
}

/* The size of a literal that ends the line so far ("{123}"), or -1. */
static long long literal_at_end(const struct reader *r)
{
    if (r->line_len < 3 || r->line[r->line_len - 1] != '}')
        return -1;
    size_t j = r->line_len - 1;
    while (j > 0 && r->line[j - 1] >= '0' && r->line[j - 1] <= '9')
        j--;
    if (j == 0 || r->line[j - 1] != '{' || j == r->line_len - 1)
        return -1;
    return strtoll(r->line + j, NULL, 10);
}

/* The next response line into r->line, its literals skipped (their bytes
 * added to *lit_bytes). */
static bool read_response(struct reader *r, unsigned long long *lit_bytes)
{
    r->line_len = 0;
    for (;;) {
        if (r->pos == r->len && !fill(r))
            return false;
        char *start = r->buf + r->pos;
        char *nl = memchr(start, '\n', r->len - r->pos);
        size_t take = nl != NULL ? (size_t)(nl - start) + 1 : r->len - r->pos;
        if (r->line_len + take > LINE_MAX_BYTES) {
            load_problem("response line longer than %d bytes", LINE_MAX_BYTES);
            return false;
        }
        memcpy(r->line + r->line_len, start, take);
        r->line_len += take;
        r->pos += take;
        if (nl == NULL)
            continue;
        r->line_len -= r->line_len >= 2 && r->line[r->line_len - 2] == '\r' ? 2 : 1;
        r->line[r->line_len] = '\0';
        long long lit = literal_at_end(r);
        if (lit < 0)
            return true;
        if (!skip(r, (unsigned long long)lit))
            return false;
        *lit_bytes += (unsigned long long)lit;
    }
}

/* Send "TAG TEXT" and read to the tagged reply: the untagged FETCH
 * responses and literal bytes; false unless the reply is OK. */
static bool command(struct reader *r, const char *tag, const char *text, unsigned long *fetches,
                    unsigned long long *lit_bytes)
{
    char cmd[512];
    int n = snprintf(cmd, sizeof cmd, "%s %s\r\n", tag, text);
    if (n < 0 || (size_t)n >= sizeof cmd || !load_send_all(r->fd, NULL, cmd, (size_t)n))
        return false;
    size_t tl = strlen(tag);
    for (;;) {
        if (!read_response(r, lit_bytes))
            return false;
        if (strncmp(r->line, tag, tl) == 0 && r->line[tl] == ' ') {
            if (strncmp(r->line + tl + 1, "OK", 2) == 0)
                return true;
            load_problem("%s: %.200s", text[0] == 'L' ? "LOGIN" : text, r->line);
            return false;
        }
        if (strncmp(r->line, "* ", 2) == 0 && strstr(r->line, " FETCH ") != NULL)
            (*fetches)++;
    }
}

int main(int argc, char **argv)
{
    load_init("imap-fetch");
    if (argc != 7) {
        fprintf(stderr, "usage: imap-fetch PORT USER PASSWORD ITEM EXPECT REPS\n");
        return 2;
    }
    int port = (int)load_num(argv[1], 1, 65535, "PORT");
    unsigned long expect = (unsigned long)load_num(argv[5], 0, 100000000, "EXPECT");
    long reps = load_num(argv[6], 1, 1000, "REPS");
    load_deadline_in(RUN_LIMIT_S);
    struct reader *r = calloc(1, sizeof *r);
    r->buf = malloc(BUF_BYTES);
    r->fd = load_tcp_connect("127.0.0.1", port, IO_TIMEOUT_S);
    unsigned long fetches = 0;
    unsigned long long bytes = 0;
    char text[512];
    bool ok = r->buf != NULL && r->fd >= 0 && read_response(r, &bytes) &&
              snprintf(text, sizeof text, "LOGIN \"%s\" \"%s\"", argv[2], argv[3]) > 0 &&
              command(r, "l", text, &fetches, &bytes) &&
              command(r, "e", "EXAMINE INBOX", &fetches, &bytes);
    snprintf(text, sizeof text, "FETCH 1:* (%s)", argv[4]);
    for (long i = 0; ok && i < reps; i++) {
        char tag[32];
        snprintf(tag, sizeof tag, "f%ld", i);
        fetches = 0;
        bytes = 0;
        double t0 = load_now_s();
        ok = command(r, tag, text, &fetches, &bytes);
        double dt = load_now_s() - t0;
        if (ok && fetches != expect) {
            load_problem("FETCH %s: %lu responses for %lu messages", argv[4], fetches, expect);
            ok = false;
        }
        if (ok)
            printf("RUN %.6f %lu %llu\n", dt, fetches, bytes);
    }
    if (ok)
        ok = command(r, "z", "LOGOUT", &fetches, &bytes);
    printf("CPU %.3f\n", load_cpu_s());
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    free(r);
    return ok ? 0 : 1;
}
