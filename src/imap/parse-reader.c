/* parse-reader.c — assembling one IMAP command from an evbuffer: its
 * lines and literals (see parse.h, "The reader").
 *
 * A state machine, resumable at any byte: reading a line, reading literal
 * bytes (into memory or to an external fd), or discarding a rejected
 * command (the rest of a line, then any non-synchronising literal it
 * announced, then the line after it, and so on).  All state lives in the
 * struct between calls, so the session may feed the input in any pieces.
 *
 * Bounds: a line is searched for its LF only within max_line bytes, and a
 * discarded line is scanned byte by byte for a literal announcement at its
 * end without being kept, so no input makes the reader buffer more than
 * max_line + max_command bytes, and whatever the length of an announced
 * number, a discarded line and a read one agree on what it announced.
 *
 * This is the one place the IMAP parser touches libevent and a file
 * descriptor: big APPEND literals go straight from the evbuffer to the fd
 * the session hands over (a memfd), never through the heap. */
#include "imap/parse-internal.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/mem.h"

enum rstate {
    RS_LINE,         /* reading a line of the command */
    RS_LITERAL,      /* reading `left` bytes of an accepted literal */
    RS_SKIP_LINE,    /* discarding to the end of a line of a rejected command */
    RS_SKIP_LITERAL, /* discarding `left` bytes of a rejected command's literal */
};

#define KEEP_GOING (-1) /* internal: the state changed, run the loop again */
#define SKIP_CHUNK 65536

/* A literal announcement at the end of a discarded line, found byte by
 * byte: the line itself is not kept. */
enum scan_state { SCAN_NONE, SCAN_DIGITS, SCAN_PLUS, SCAN_SYNC, SCAN_NONSYNC };

struct lit_scan {
    enum scan_state st;
    bool digits;   /* SCAN_DIGITS: at least one digit seen */
    bool cr;       /* the last byte was CR (it is not part of the line if LF follows) */
    uint64_t size; /* UINT64_MAX when it does not fit number64 */
};

struct imap_reader {
    struct imap_reader_limits lim;
    imap_literal_fd_fn *fd_fn;
    void *fd_ctx;
    enum rstate state;
    struct imap_raw *cur;  /* the command being assembled; NULL between commands */
    size_t cap, lit_cap;   /* allocated bytes of cur->data and cur->literals */
    bool append;           /* cur is an APPEND: its literals may be big */
    bool trusted;          /* after login: max_command, and APPEND files (see parse.h) */
    uint64_t left;         /* RS_LITERAL, RS_SKIP_LITERAL: bytes still to come */
    int fd;                /* RS_LITERAL: external literal's fd (owned by cur), or -1 */
    char tag[IMAP_TAG_MAX + 1];
    struct imap_read_error err;
    struct lit_scan scan;  /* RS_SKIP_LINE: does the line end in "{N+}"? */
    bool bare_skip;        /* imap_reader_line(): discarding an overlong line */
    struct imap_raw *done; /* a finished command not taken yet */
    char *line;            /* the line being read: line_cap bytes, grown on demand */
    size_t line_cap;
};

/* Lines are copied out of the input into r->line, sized for the line at
 * hand: an idle connection keeps no max_line buffer (1,000 idle IMAP
 * connections must cost little), and a big one is released after use. */
#define LINE_KEEP 1024

static char *line_buf(struct imap_reader *r, size_t need)
{
    if (need > r->line_cap) {
        size_t cap = need < 256 ? 256 : need;
        free(r->line);
        r->line = sm_malloc(cap);
        r->line_cap = cap;
    }
    return r->line;
}

/* Give back a big line buffer once its contents are no longer needed. */
static void line_release(struct imap_reader *r)
{
    if (r->line_cap > LINE_KEEP) {
        free(r->line);
        r->line = NULL;
        r->line_cap = 0;
    }
}

/* The most bytes one command may keep in memory: before login, no more
 * than a line (a LOGIN needs no more), so strangers cannot make every
 * connection hold max_command. */
static size_t command_max(const struct imap_reader *r)
{
    return r->trusted ? r->lim.max_command : r->lim.max_line;
}

void imap_reader_limits_default(struct imap_reader_limits *l)
{
    l->max_line = IMAP_LINE_MAX_DEFAULT;
    l->max_command = IMAP_COMMAND_MAX_DEFAULT;
    l->max_literal = IMAP_LITERAL_MAX_DEFAULT;
    l->mem_literal_max = IMAP_MEM_LITERAL_MAX_DEFAULT;
    l->nonsync_max = IMAP_NONSYNC_MAX_LITERAL_MINUS;
}

struct imap_reader *imap_reader_new(const struct imap_reader_limits *limits,
                                    imap_literal_fd_fn *fd_fn, void *fd_ctx)
{
    struct imap_reader *r = sm_calloc(1, sizeof *r);
    r->lim = *limits;
    if (r->lim.max_line < 64)
        r->lim.max_line = 64;
    if (r->lim.max_command < r->lim.max_line)
        r->lim.max_command = r->lim.max_line;
    r->fd_fn = fd_fn;
    r->fd_ctx = fd_ctx;
    r->fd = -1;
    r->trusted = true;
    return r;
}

void imap_raw_free(struct imap_raw **rawp)
{
    struct imap_raw *raw = *rawp;
    if (raw == NULL)
        return;
    for (size_t i = 0; i < raw->n_literals; i++)
        if (raw->literals[i].fd >= 0)
            close(raw->literals[i].fd);
    if (raw->data != NULL)
        explicit_bzero(raw->data, raw->len); /* it may hold a password */
    free(raw->data);
    free(raw->literals);
    sm_freep(rawp);
}

struct imap_raw *imap_raw_from_line(const char *line, size_t len)
{
    struct imap_raw *raw = sm_calloc(1, sizeof *raw);
    raw->data = sm_malloc(len + 1);
    memcpy(raw->data, line, len);
    raw->len = len;
    return raw;
}

void imap_reader_free(struct imap_reader **rp)
{
    struct imap_reader *r = *rp;
    if (r == NULL)
        return;
    imap_raw_free(&r->cur);
    imap_raw_free(&r->done);
    free(r->line);
    sm_freep(rp);
}

const struct imap_read_error *imap_reader_error(const struct imap_reader *r)
{
    return &r->err;
}

struct imap_raw *imap_reader_take(struct imap_reader *r)
{
    struct imap_raw *raw = r->done;
    r->done = NULL;
    return raw;
}

bool imap_reader_busy(const struct imap_reader *r)
{
    return r->state != RS_LINE || r->cur != NULL || r->bare_skip;
}

/* ---- helpers ---- */

/* Wipe bytes that may have held a password.  Out of line: GCC's
 * -Wnonnull misjudges explicit_bzero() once step_line() is inlined. */
__attribute__((noinline)) static void wipe(void *p, size_t n)
{
    explicit_bzero(p, n);
}

/* Position of the first LF within the first `limit` bytes, or -1. */
static ssize_t find_lf(struct evbuffer *in, size_t limit)
{
    struct evbuffer_ptr end;
    size_t avail = evbuffer_get_length(in);
    if (limit > avail)
        limit = avail;
    if (evbuffer_ptr_set(in, &end, limit, EVBUFFER_PTR_SET) < 0)
        return -1;
    struct evbuffer_ptr p = evbuffer_search_range(in, "\n", 1, NULL, &end);
    return p.pos;
}

static enum imap_read_result fail(struct imap_reader *r, enum imap_read_result res,
                                  const char *status, const char *text, bool close_conn)
{
    r->err.tag = r->tag[0] != '\0' ? r->tag : "*";
    r->err.status = status;
    r->err.text = text;
    r->err.close = close_conn;
    return res;
}

/* The tag at the start of line[0..n), or "*" when it is not a valid one. */
static void set_tag(struct imap_reader *r, const char *line, size_t n)
{
    const char *sp = memchr(line, ' ', n);
    size_t len = sp != NULL ? (size_t)(sp - line) : n;
    if (!imap_tag_valid(line, len))
        len = 0;
    memcpy(r->tag, line, len);
    r->tag[len] = '\0';
}

/* Forget the command being assembled (closing its external fds). */
static void drop_command(struct imap_reader *r)
{
    imap_raw_free(&r->cur);
    r->fd = -1;
}

/* After rejecting a command: discard the non-synchronising literal a line
 * announced (size bytes), or nothing if it announced none or a
 * synchronising one (the client waits for "+", which never comes). */
static void skip_announced(struct imap_reader *r, bool announced, bool nonsync, uint64_t size)
{
    drop_command(r);
    r->state = RS_LINE;
    if (announced && nonsync && size <= IMAP_SKIP_MAX) {
        r->state = RS_SKIP_LITERAL;
        r->left = size;
    }
}

/* skip_announced() for a rejected line that was read whole; true if its
 * literal is too big to skip (the connection must close). */
static bool resync_after_line(struct imap_reader *r, const char *line, size_t n)
{
    size_t start;
    uint64_t size = 0;
    bool nonsync = false, binary = false;
    bool announced = imap_literal_announce(line, n, &start, &size, &nonsync, &binary);
    skip_announced(r, announced, nonsync, size);
    return announced && nonsync && size > IMAP_SKIP_MAX;
}

static void grow_data(struct imap_reader *r, size_t need)
{
    if (need <= r->cap)
        return;
    size_t cap = r->cap < 256 ? 256 : r->cap;
    while (cap < need)
        cap *= 2;
    if (cap > r->lim.max_command + 1 && need <= r->lim.max_command + 1)
        cap = r->lim.max_command + 1;
    r->cur->data = sm_realloc(r->cur->data, cap);
    r->cap = cap;
}

/* ---- literals ---- */

/* A rejected literal announcement: the reply, and what to discard. */
static enum imap_read_result reject_literal(struct imap_reader *r, bool nonsync, uint64_t size,
                                            enum imap_read_result res, const char *status,
                                            const char *text)
{
    skip_announced(r, true, nonsync, size);
    return fail(r, res, status, text, nonsync && size > IMAP_SKIP_MAX);
}

static struct imap_raw_literal *add_literal(struct imap_reader *r)
{
    struct imap_raw *raw = r->cur;
    if (raw->n_literals == r->lit_cap) {
        r->lit_cap = r->lit_cap == 0 ? 4 : r->lit_cap * 2;
        raw->literals = sm_realloc(raw->literals, r->lit_cap * sizeof *raw->literals);
    }
    struct imap_raw_literal *lit = &raw->literals[raw->n_literals++];
    *lit = (struct imap_raw_literal){.offset = raw->len, .fd = -1};
    return lit;
}

static int start_literal(struct imap_reader *r, uint64_t size, bool nonsync, bool binary)
{
    const struct imap_reader_limits *l = &r->lim;
    int fd = -1;
    if (r->cur->n_literals == IMAP_LITERALS_MAX)
        return reject_literal(r, nonsync, size, IMAP_READ_COMMAND_TOO_LONG, "BAD",
                              "Too many literals in one command");
    if (nonsync && size > l->nonsync_max)
        return reject_literal(r, nonsync, size, IMAP_READ_LITERAL_TOO_BIG, "BAD",
                              "[TOOBIG] Non-synchronizing literal too big, use {N}");
    /* an APPEND has a mailbox name and one literal per message: beyond
     * that, no file descriptor or "+" for it */
    if (r->append && r->cur->n_literals >= IMAP_APPEND_MAX + 1)
        return reject_literal(r, nonsync, size, IMAP_READ_COMMAND_TOO_LONG, "BAD",
                              "Too many messages in one APPEND");
    bool in_memory = size <= command_max(r) - r->cur->len &&
                     (!r->append || size <= l->mem_literal_max);
    if (!in_memory && (!r->append || size > l->max_literal || r->fd_fn == NULL))
        return reject_literal(r, nonsync, size, IMAP_READ_LITERAL_TOO_BIG,
                              r->append ? "NO" : "BAD",
                              r->append ? "[TOOBIG] Message too big" : "[TOOBIG] Literal too big");
    if (!in_memory && (fd = r->fd_fn(r->fd_ctx, size)) < 0)
        return reject_literal(r, nonsync, size, IMAP_READ_FAILED, "NO",
                              "[SERVERBUG] Cannot store the message");
    struct imap_raw_literal *lit = add_literal(r);
    lit->size = size;
    lit->fd = fd;
    lit->binary = binary;
    lit->nonsync = nonsync;
    if (in_memory)
        grow_data(r, r->cur->len + (size_t)size + 1);
    r->fd = fd;
    r->left = size;
    r->state = RS_LITERAL;
    return nonsync ? KEEP_GOING : IMAP_READ_CONTINUE;
}

static int step_literal(struct imap_reader *r, struct evbuffer *in)
{
    size_t avail = evbuffer_get_length(in);
    if (r->left == 0) {
        r->state = RS_LINE;
        return KEEP_GOING;
    }
    if (avail == 0)
        return IMAP_READ_MORE;
    size_t n = avail < r->left ? avail : (size_t)r->left;
    if (r->fd < 0) {
        evbuffer_remove(in, r->cur->data + r->cur->len, n);
        r->cur->len += n;
        r->left -= n;
        return KEEP_GOING;
    }
    int w = evbuffer_write_atmost(in, r->fd, (ssize_t)n);
    if (w < 0 && errno == EINTR)
        return KEEP_GOING;
    if (w <= 0) {
        /* the client sends the rest anyway: "+" was sent, or it was {N+} */
        uint64_t left = r->left;
        drop_command(r);
        r->state = RS_SKIP_LITERAL;
        r->left = left;
        return fail(r, IMAP_READ_FAILED, "NO", "[SERVERBUG] Cannot store the message", false);
    }
    r->left -= (uint64_t)w;
    return KEEP_GOING;
}

/* ---- lines ---- */

/* A command begins with line[0..n): note its tag and whether it is APPEND. */
static void start_command(struct imap_reader *r, const char *line, size_t n)
{
    set_tag(r, line, n);
    const char *sp = memchr(line, ' ', n);
    const char *name = sp != NULL ? sp + 1 : line + n;
    size_t rest = (size_t)(line + n - name);
    r->append = r->trusted && rest >= 6 && strncasecmp(name, "APPEND", 6) == 0 &&
                (rest == 6 || name[6] == ' ');
    r->cur = sm_calloc(1, sizeof *r->cur);
    r->cap = r->lit_cap = 0;
    r->fd = -1;
    grow_data(r, n + 1);
}

/* One whole line of a command, CRLF removed. */
static int got_line(struct imap_reader *r, const char *line, size_t n)
{
    if (r->cur == NULL) {
        if (n == 0)
            return KEEP_GOING; /* empty lines between commands are ignored */
        start_command(r, line, n);
    }
    if (memchr(line, '\0', n) != NULL) {
        bool close_conn = resync_after_line(r, line, n);
        return fail(r, IMAP_READ_BAD_LINE, "BAD", "NUL byte in command", close_conn);
    }
    if (n > command_max(r) - r->cur->len) {
        bool close_conn = resync_after_line(r, line, n);
        return fail(r, IMAP_READ_COMMAND_TOO_LONG, "BAD", "Command too long", close_conn);
    }
    grow_data(r, r->cur->len + n + 1);
    memcpy(r->cur->data + r->cur->len, line, n);
    r->cur->len += n;
    r->cur->data[r->cur->len] = '\0';
    size_t start;
    uint64_t size = 0;
    bool nonsync = false, binary = false;
    if (imap_literal_announce(line, n, &start, &size, &nonsync, &binary))
        return start_literal(r, size, nonsync, binary);
    r->done = r->cur;
    r->cur = NULL;
    return IMAP_READ_COMMAND;
}

static int step_line(struct imap_reader *r, struct evbuffer *in)
{
    ssize_t lf = find_lf(in, r->lim.max_line);
    if (lf < 0) {
        size_t avail = evbuffer_get_length(in);
        if (avail < r->lim.max_line)
            return IMAP_READ_MORE;
        if (r->cur == NULL) {
            size_t n = avail < IMAP_TAG_MAX + 1 ? avail : IMAP_TAG_MAX + 1;
            evbuffer_copyout(in, line_buf(r, n), n);
            set_tag(r, r->line, n);
        }
        drop_command(r);
        r->state = RS_SKIP_LINE;
        r->scan = (struct lit_scan){0};
        return fail(r, IMAP_READ_LINE_TOO_LONG, "BAD", "Line too long", false);
    }
    size_t n = (size_t)lf;
    char *line = line_buf(r, n + 1);
    evbuffer_remove(in, line, n + 1);
    if (n > 0 && line[n - 1] == '\r')
        n--;
    line[n] = '\0';
    int res = got_line(r, line, n);
    wipe(line, n + 1); /* copied into the command, which wipes its own */
    line_release(r);
    return res;
}

/* ---- discarding ---- */

/* Feed one byte of a discarded line to the scanner that finds out whether
 * the line ends in a literal announcement (the same rule as
 * imap_literal_announce(), without keeping the line). */
static void scan_byte(struct lit_scan *sc, unsigned char ch)
{
    if (sc->cr) { /* a CR not followed by LF: whatever came before is not at the end */
        sc->cr = false;
        sc->st = SCAN_NONE;
    }
    if (ch == '{') {
        *sc = (struct lit_scan){.st = SCAN_DIGITS};
    } else if (ch == '\r') {
        sc->cr = true;
    } else if (ch >= '0' && ch <= '9' && sc->st == SCAN_DIGITS) {
        unsigned d = (unsigned)(ch - '0');
        if (sc->size != UINT64_MAX)
            sc->size = sc->size > ((uint64_t)INT64_MAX - d) / 10 ? UINT64_MAX : sc->size * 10 + d;
        sc->digits = true;
    } else if (ch == '+' && sc->st == SCAN_DIGITS && sc->digits) {
        sc->st = SCAN_PLUS;
    } else if (ch == '}' && sc->st == SCAN_DIGITS && sc->digits) {
        sc->st = SCAN_SYNC;
    } else if (ch == '}' && sc->st == SCAN_PLUS) {
        sc->st = SCAN_NONSYNC;
    } else {
        sc->st = SCAN_NONE;
    }
}

static int step_skip_line(struct imap_reader *r, struct evbuffer *in)
{
    char buf[512];
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            return IMAP_READ_MORE;
        size_t chunk = avail < SKIP_CHUNK ? avail : SKIP_CHUNK;
        ssize_t lf = find_lf(in, chunk);
        for (size_t n = lf >= 0 ? (size_t)lf : chunk; n > 0;) {
            size_t k = n < sizeof buf ? n : sizeof buf;
            evbuffer_remove(in, buf, k);
            for (size_t i = 0; i < k; i++)
                scan_byte(&r->scan, (unsigned char)buf[i]);
            n -= k;
        }
        wipe(buf, sizeof buf);
        if (lf < 0)
            continue;
        evbuffer_drain(in, 1); /* the LF */
        struct lit_scan sc = r->scan;
        bool announced = sc.st == SCAN_SYNC || sc.st == SCAN_NONSYNC;
        bool nonsync = sc.st == SCAN_NONSYNC;
        skip_announced(r, announced, nonsync, sc.size);
        if (announced && nonsync && sc.size > IMAP_SKIP_MAX)
            return fail(r, IMAP_READ_LITERAL_TOO_BIG, "BAD",
                        "[TOOBIG] Literal too big to skip", true);
        return KEEP_GOING;
    }
}

static int step_skip_literal(struct imap_reader *r, struct evbuffer *in)
{
    size_t avail = evbuffer_get_length(in);
    if (r->left == 0) {
        r->state = RS_SKIP_LINE; /* the line after the literal belongs to it */
        r->scan = (struct lit_scan){0};
        return KEEP_GOING;
    }
    if (avail == 0)
        return IMAP_READ_MORE;
    size_t n = avail < r->left ? avail : (size_t)r->left;
    evbuffer_drain(in, n);
    r->left -= n;
    return KEEP_GOING;
}

/* Discard the rest of an overlong bare line; false while more is needed. */
static bool bare_skip_done(struct imap_reader *r, struct evbuffer *in)
{
    while (r->bare_skip) {
        size_t avail = evbuffer_get_length(in);
        size_t chunk = avail < SKIP_CHUNK ? avail : SKIP_CHUNK;
        ssize_t lf = find_lf(in, chunk);
        evbuffer_drain(in, lf >= 0 ? (size_t)lf + 1 : chunk);
        if (lf >= 0)
            r->bare_skip = false;
        else if (evbuffer_get_length(in) == 0)
            return false;
    }
    return true;
}

enum imap_read_result imap_reader_read(struct imap_reader *r, struct evbuffer *in)
{
    imap_raw_free(&r->done); /* a command the session did not take */
    /* an overlong IDLE or AUTHENTICATE line is discarded whoever reads next */
    if (!bare_skip_done(r, in))
        return IMAP_READ_MORE;
    for (;;) {
        int res;
        switch (r->state) {
        case RS_LINE:
            res = step_line(r, in);
            break;
        case RS_LITERAL:
            res = step_literal(r, in);
            break;
        case RS_SKIP_LINE:
            res = step_skip_line(r, in);
            break;
        default:
            res = step_skip_literal(r, in);
            break;
        }
        if (res != KEEP_GOING)
            return (enum imap_read_result)res;
    }
}

/* ---- bare lines ---- */

void imap_reader_set_trusted(struct imap_reader *r, bool trusted)
{
    r->trusted = trusted;
}


int imap_reader_line(struct imap_reader *r, struct evbuffer *in, const char **line_r,
                     size_t *len_r)
{
    if (!bare_skip_done(r, in))
        return 0;
    ssize_t lf = find_lf(in, r->lim.max_line);
    if (lf < 0) {
        if (evbuffer_get_length(in) < r->lim.max_line)
            return 0;
        r->bare_skip = true;
        return -1;
    }
    size_t n = (size_t)lf;
    evbuffer_remove(in, line_buf(r, n + 1), n + 1);
    if (n > 0 && r->line[n - 1] == '\r')
        n--;
    r->line[n] = '\0';
    *line_r = r->line;
    *len_r = n;
    return 1;
}
