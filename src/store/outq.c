/* outq.c — the durable outbound queue (see outq.h).
 *
 * STATE FILE (ID.st), text, '\n' line ends, lines in this order:
 *
 *   sealmail-outq 1
 *   id ID
 *   from ADDR            ("from " and nothing for the null sender)
 *   flags N
 *   created T
 *   attempts N
 *   next T
 *   last T
 *   notified D F         (0|1: delay notice sent, DSN for failures sent)
 *   rcpt S W ADDR        (per recipient: state 0..3, time of change)
 *   reply TEXT           (after each rcpt line: its last reply, may be empty)
 *   end
 *
 * The parser is strict (order, counts, decimal numbers without signs or
 * leading junk) and bounded (OUTQ_STATE_MAX bytes, OUTQ_RCPTS_MAX
 * recipients, address and reply lengths).
 *
 * The sealed ID.msg carries as its clear, authenticated metadata the
 * envelope lines alone (id, from, flags, created, the addresses), in the
 * same syntax; outq_read_message() compares them with the state's. */
#include "store/outq.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/fileio.h"
#include "core/mem.h"
#include "store/sealfile.h"

#define MAGIC "SEALOQ\0\1"
#define HEADER_LINE "sealmail-outq 1"
#define TMP_PREFIX ".tmp-"

_Static_assert(OUTQ_PK_BYTES == SEALFILE_PK_BYTES, "spool key");

const struct outq_io *outq_test_io;

static _Thread_local char errbuf[512];

static const char *errno_msg(const char *what)
{
    snprintf(errbuf, sizeof errbuf, "%s: %s", what, strerror(errno));
    return errbuf;
}

static int do_fsync(int fd)
{
    return outq_test_io != NULL && outq_test_io->fsync != NULL ? outq_test_io->fsync(fd)
                                                               : fdatasync(fd);
}

static int do_rename(const char *from, const char *to)
{
    return outq_test_io != NULL && outq_test_io->rename != NULL ? outq_test_io->rename(from, to)
                                                                : rename(from, to);
}

bool outq_id_valid(const char *id)
{
    size_t i = 0;
    for (; id[i] != '\0' && i < OUTQ_ID_LEN; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    return i == OUTQ_ID_LEN && id[i] == '\0';
}

static bool addr_valid(const char *a, bool may_be_empty)
{
    size_t n = strlen(a);
    if (n > OUTQ_ADDR_MAX || (n == 0 && !may_be_empty))
        return false;
    for (const unsigned char *p = (const unsigned char *)a; *p; p++)
        if (*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>')
            return false;
    return true;
}

const char *outq_state_name(enum outq_rcpt_state s)
{
    static const char *const names[] = {"pending", "delivered", "failed", "bounced"};
    return (unsigned)s <= OUTQ_BOUNCED ? names[s] : "?";
}

/* --- entries in memory ---------------------------------------------------------- */

void outq_entry_free(struct outq_entry *e)
{
    if (e == NULL)
        return;
    free(e->mail_from);
    for (size_t i = 0; i < e->n_rcpts; i++) {
        free(e->rcpts[i].addr);
        free(e->rcpts[i].reply);
    }
    free(e->rcpts);
    memset(e, 0, sizeof *e);
}

void outq_entry_copy(struct outq_entry *dst, const struct outq_entry *src)
{
    *dst = *src;
    dst->mail_from = sm_strdup(src->mail_from != NULL ? src->mail_from : "");
    dst->rcpts = sm_calloc(src->n_rcpts ? src->n_rcpts : 1, sizeof *dst->rcpts);
    for (size_t i = 0; i < src->n_rcpts; i++) {
        dst->rcpts[i] = src->rcpts[i];
        dst->rcpts[i].addr = sm_strdup(src->rcpts[i].addr);
        dst->rcpts[i].reply = sm_strdup(src->rcpts[i].reply != NULL ? src->rcpts[i].reply : "");
    }
}

size_t outq_count(const struct outq_entry *e, enum outq_rcpt_state s)
{
    size_t n = 0;
    for (size_t i = 0; i < e->n_rcpts; i++)
        n += e->rcpts[i].state == s;
    return n;
}

/* Printable ASCII only, at most OUTQ_REPLY_MAX bytes. */
static char *reply_clean(const char *r)
{
    size_t n = r != NULL ? strnlen(r, OUTQ_REPLY_MAX) : 0;
    char *out = sm_malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        out[i] = (r[i] >= ' ' && r[i] < 0x7f) ? r[i] : '?';
    out[n] = '\0';
    return out;
}

void outq_set_rcpt(struct outq_entry *e, size_t i, enum outq_rcpt_state s, int64_t when,
                   const char *reply)
{
    if (i >= e->n_rcpts)
        return;
    e->rcpts[i].state = s;
    e->rcpts[i].when = when;
    free(e->rcpts[i].reply);
    e->rcpts[i].reply = reply_clean(reply);
}

/* --- the text format ------------------------------------------------------------ */

static void format_envelope(struct sm_buf *b, const struct outq_entry *e)
{
    sm_buf_printf(b, "id %s\nfrom %s\nflags %" PRIu32 "\ncreated %" PRId64 "\n", e->id,
               e->mail_from, e->flags, e->created);
}

char *outq_format(const struct outq_entry *e, size_t *len_r)
{
    struct sm_buf b;
    sm_buf_init(&b, 0);
    sm_buf_printf(&b, "%s\n", HEADER_LINE);
    format_envelope(&b, e);
    sm_buf_printf(&b, "attempts %u\nnext %" PRId64 "\nlast %" PRId64 "\nnotified %d %d\n",
               e->attempts, e->next_attempt, e->last_attempt, e->delay_notified ? 1 : 0,
               e->failed_notified ? 1 : 0);
    for (size_t i = 0; i < e->n_rcpts; i++) {
        char *reply = reply_clean(e->rcpts[i].reply);
        sm_buf_printf(&b, "rcpt %d %" PRId64 " %s\nreply %s\n", (int)e->rcpts[i].state,
                   e->rcpts[i].when, e->rcpts[i].addr, reply);
        free(reply);
    }
    sm_buf_printf(&b, "end\n");
    *len_r = b.len;
    return b.data; /* never empty, so never NULL */
}

/* The sealed metadata: the envelope and the addresses, nothing mutable. */
static char *format_meta(const struct outq_entry *e, size_t *len_r)
{
    struct sm_buf b;
    sm_buf_init(&b, 0);
    format_envelope(&b, e);
    for (size_t i = 0; i < e->n_rcpts; i++)
        sm_buf_printf(&b, "rcpt %s\n", e->rcpts[i].addr);
    *len_r = b.len;
    return b.data; /* never empty, so never NULL */
}

struct cursor {
    const char *p, *end;
    char line[OUTQ_REPLY_MAX + OUTQ_ADDR_MAX + 64];
};

/* The next line (without '\n') into c->line; -1 at the end or if too long. */
static int next_line(struct cursor *c)
{
    const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
    if (nl == NULL)
        return -1;
    size_t n = (size_t)(nl - c->p);
    if (n >= sizeof c->line || memchr(c->p, '\0', n) != NULL)
        return -1;
    memcpy(c->line, c->p, n);
    c->line[n] = '\0';
    c->p = nl + 1;
    return 0;
}

/* "<key> " at the start of the line: the rest, else NULL. */
static const char *after_key(const char *line, const char *key)
{
    size_t n = strlen(key);
    return strncmp(line, key, n) == 0 && line[n] == ' ' ? line + n + 1 : NULL;
}

/* A decimal number in [0, max], all of s up to *end_r (' ' or NUL). */
static int parse_num(const char *s, uint64_t max, uint64_t *v_r, const char **end_r)
{
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (p - s >= 19)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v > max || (*p != '\0' && *p != ' '))
        return -1;
    *v_r = v;
    *end_r = p;
    return 0;
}

/* "key N" (one number, whole line). */
static int keyed_num(struct cursor *c, const char *key, uint64_t max, uint64_t *v_r)
{
    const char *s, *end;
    if (next_line(c) < 0 || (s = after_key(c->line, key)) == NULL ||
        parse_num(s, max, v_r, &end) < 0 || *end != '\0')
        return -1;
    return 0;
}

#define TIME_MAX ((uint64_t)INT64_MAX)

static int parse_head(struct cursor *c, struct outq_entry *e)
{
    const char *s;
    uint64_t v;
    if (next_line(c) < 0 || strcmp(c->line, HEADER_LINE) != 0)
        return -1;
    if (next_line(c) < 0 || (s = after_key(c->line, "id")) == NULL || !outq_id_valid(s))
        return -1;
    memcpy(e->id, s, OUTQ_ID_LEN + 1);
    if (next_line(c) < 0 || (s = after_key(c->line, "from")) == NULL || !addr_valid(s, true))
        return -1;
    e->mail_from = sm_strdup(s);
    if (keyed_num(c, "flags", UINT32_MAX, &v) < 0)
        return -1;
    e->flags = (uint32_t)v;
    if (keyed_num(c, "created", TIME_MAX, &v) < 0)
        return -1;
    e->created = (int64_t)v;
    if (keyed_num(c, "attempts", UINT32_MAX, &v) < 0)
        return -1;
    e->attempts = (unsigned)v;
    if (keyed_num(c, "next", TIME_MAX, &v) < 0)
        return -1;
    e->next_attempt = (int64_t)v;
    if (keyed_num(c, "last", TIME_MAX, &v) < 0)
        return -1;
    e->last_attempt = (int64_t)v;
    if (next_line(c) < 0 || (s = after_key(c->line, "notified")) == NULL)
        return -1;
    if (!((s[0] == '0' || s[0] == '1') && s[1] == ' ' && (s[2] == '0' || s[2] == '1') &&
          s[3] == '\0'))
        return -1;
    e->delay_notified = s[0] == '1';
    e->failed_notified = s[2] == '1';
    return 0;
}

static int parse_rcpt(struct cursor *c, struct outq_entry *e)
{
    const char *s, *end;
    uint64_t state, when;
    if ((s = after_key(c->line, "rcpt")) == NULL || parse_num(s, OUTQ_BOUNCED, &state, &end) < 0 ||
        *end != ' ' || parse_num(end + 1, TIME_MAX, &when, &end) < 0 || *end != ' ' ||
        !addr_valid(end + 1, false))
        return -1;
    if (e->n_rcpts == OUTQ_RCPTS_MAX)
        return -1;
    struct outq_rcpt *r = &e->rcpts[e->n_rcpts++];
    r->addr = sm_strdup(end + 1);
    r->state = (enum outq_rcpt_state)state;
    r->when = (int64_t)when;
    if (next_line(c) < 0 || (s = after_key(c->line, "reply")) == NULL ||
        strlen(s) > OUTQ_REPLY_MAX)
        return -1;
    for (const char *p = s; *p; p++)
        if (*p < ' ' || *p >= 0x7f)
            return -1;
    r->reply = sm_strdup(s);
    return 0;
}

int outq_parse(const char *text, size_t len, struct outq_entry *e, const char **error_r)
{
    struct cursor *c = sm_malloc(sizeof *c);
    int rc = -1;
    memset(e, 0, sizeof *e);
    *c = (struct cursor){.p = text, .end = text + len};
    if (len > OUTQ_STATE_MAX || parse_head(c, e) < 0)
        goto out;
    e->rcpts = sm_calloc(OUTQ_RCPTS_MAX, sizeof *e->rcpts);
    for (;;) {
        if (next_line(c) < 0)
            goto out;
        if (strcmp(c->line, "end") == 0)
            break;
        if (parse_rcpt(c, e) < 0)
            goto out;
    }
    if (c->p != c->end || e->n_rcpts == 0)
        goto out;
    e->rcpts = sm_realloc(e->rcpts, e->n_rcpts * sizeof *e->rcpts);
    rc = 0;
out:
    free(c);
    if (rc < 0) {
        outq_entry_free(e);
        *error_r = "malformed queue state file";
    }
    return rc;
}

/* --- files ---------------------------------------------------------------------- */

static int path_of(char *out, size_t outlen, const char *dir, const char *prefix,
                   const char *id, const char *suffix)
{
    int n = snprintf(out, outlen, "%s/%s%s%s", dir, prefix, id, suffix);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* The directory, open and under its exclusive flock: every sync that may
 * write it takes turns (see outq.h).  Returns the fd, or -1 with *error_r. */
static int dir_lock(const char *dir, const char **error_r)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        *error_r = errno_msg("cannot open queue directory");
        return -1;
    }
    while (flock(dfd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            *error_r = errno_msg("cannot lock queue directory");
            close(dfd);
            return -1;
        }
    }
    return dfd;
}

/* fsync the directory dfd from dir_lock(), then close it (which releases
 * the flock). */
static int dir_sync_unlock(int dfd, const char **error_r)
{
    int rc = 0;
    if (do_fsync(dfd) < 0) {
        *error_r = errno_msg("cannot sync queue directory");
        rc = -1;
    }
    close(dfd);
    return rc;
}

/* fsync of the directory, in turn with every other one. */
static int dir_sync(const char *dir, const char **error_r)
{
    int dfd = dir_lock(dir, error_r);
    return dfd < 0 ? -1 : dir_sync_unlock(dfd, error_r);
}

/* A file root writes (the CLI's retry) must stay readable by queued,
 * which runs as the directory's owner: give it to that owner. */
static void own_like_dir(int fd, const char *path)
{
    struct stat st;
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (geteuid() != 0 || slash == NULL || (size_t)(slash - path) >= sizeof dir)
        return;
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    if (stat(dir, &st) == 0 && fchown(fd, st.st_uid, st.st_gid) < 0) {
        /* then queued may not read it: the caller's next step reports that */
    }
}

static int write_file(const char *path, const void *data, size_t len, const char **error_r)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        *error_r = errno_msg("cannot create queue file");
        return -1;
    }
    own_like_dir(fd, path);
    if (sm_write_full(fd, data, len) < 0 || do_fsync(fd) < 0) {
        *error_r = errno_msg("cannot write queue file");
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    return 0;
}

static int entry_valid(const struct outq_entry *e, const char **error_r)
{
    if (!outq_id_valid(e->id) || e->mail_from == NULL || !addr_valid(e->mail_from, true) ||
        e->n_rcpts == 0 || e->n_rcpts > OUTQ_RCPTS_MAX) {
        *error_r = "invalid outbound envelope";
        return -1;
    }
    for (size_t i = 0; i < e->n_rcpts; i++)
        if (!addr_valid(e->rcpts[i].addr, false) || e->rcpts[i].state > OUTQ_BOUNCED) {
            *error_r = "invalid outbound recipient";
            return -1;
        }
    return 0;
}

int outq_recover(const char *dir, const char **error_r)
{
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        *error_r = errno_msg("cannot create queue directory");
        return -1;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        *error_r = errno_msg("cannot read queue directory");
        return -1;
    }
    struct dirent *de;
    char path[4096];
    bool removed = false;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        size_t len = strlen(n);
        bool stale = strncmp(n, TMP_PREFIX, sizeof TMP_PREFIX - 1) == 0;
        if (!stale && len == OUTQ_ID_LEN + 4 && strcmp(n + OUTQ_ID_LEN, ".msg") == 0) {
            struct stat st;
            char id[OUTQ_ID_LEN + 1];
            memcpy(id, n, OUTQ_ID_LEN);
            id[OUTQ_ID_LEN] = '\0';
            stale = outq_id_valid(id) && path_of(path, sizeof path, dir, "", id, ".st") == 0 &&
                    stat(path, &st) < 0 && errno == ENOENT;
        }
        if (stale && snprintf(path, sizeof path, "%s/%s", dir, n) < (int)sizeof path &&
            unlink(path) == 0)
            removed = true;
    }
    closedir(d);
    return removed ? dir_sync(dir, error_r) : 0;
}

int outq_create(const char *dir, const struct outq_entry *e, const uint8_t pk[OUTQ_PK_BYTES],
                const void *prefix, size_t prefix_len, int body_fd, const char **error_r)
{
    char msg[4096], st[4096], tmsg[4096], tst[4096];
    struct stat sb;
    if (entry_valid(e, error_r) < 0)
        return -1;
    if (path_of(msg, sizeof msg, dir, "", e->id, ".msg") < 0 ||
        path_of(st, sizeof st, dir, "", e->id, ".st") < 0 ||
        path_of(tmsg, sizeof tmsg, dir, TMP_PREFIX, e->id, ".msg") < 0 ||
        path_of(tst, sizeof tst, dir, TMP_PREFIX, e->id, ".st") < 0) {
        *error_r = "queue path too long";
        return -1;
    }
    if (stat(st, &sb) == 0)
        return 0; /* routed before: the entry is durable already */

    size_t meta_len, state_len;
    char *meta = format_meta(e, &meta_len);
    char *state = outq_format(e, &state_len);
    uint64_t size;
    int rc = -1, dfd = -1;
    int fd = open(tmsg, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        *error_r = errno_msg("cannot create queue file");
        goto out;
    }
    own_like_dir(fd, tmsg);
    if (lseek(body_fd, 0, SEEK_SET) < 0 ||
        sealfile_write(fd, MAGIC, meta, meta_len, pk, prefix, prefix_len, body_fd, &size,
                       error_r) < 0) {
        close(fd);
        goto out_unlink;
    }
    /* the first sync of a new file syncs the directory too (ext4 without
     * a journal): from here to the directory's fsync, under its lock */
    dfd = dir_lock(dir, error_r);
    if (dfd < 0) {
        close(fd);
        goto out_unlink;
    }
    if (do_fsync(fd) < 0) {
        *error_r = errno_msg("cannot sync queue file");
        close(fd);
        goto out_unlink;
    }
    close(fd);
    if (write_file(tst, state, state_len, error_r) < 0)
        goto out_unlink;
    /* the message first: the entry exists once its state has a name */
    if (do_rename(tmsg, msg) < 0 || do_rename(tst, st) < 0) {
        *error_r = errno_msg("cannot rename queue file");
        unlink(tst);
        goto out_unlink;
    }
    rc = dir_sync_unlock(dfd, error_r) < 0 ? -1 : 1;
    dfd = -1;
    goto out;
out_unlink:
    unlink(tmsg);
out:
    if (dfd >= 0)
        close(dfd);
    free(meta);
    free(state);
    return rc;
}

static int read_small(const char *path, char **text_r, size_t *len_r, const char **error_r)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        *error_r = errno == ENOENT ? "no such entry" : errno_msg("cannot open queue state");
        return -1;
    }
    /* sized by the file (a few hundred bytes, usually): a buffer of
     * OUTQ_STATE_MAX would be an mmap and munmap on every read */
    struct stat st;
    if (fstat(fd, &st) < 0) {
        *error_r = errno_msg("cannot read queue state");
        close(fd);
        return -1;
    }
    if (st.st_size > OUTQ_STATE_MAX) {
        *error_r = "queue state file too large";
        close(fd);
        return -1;
    }
    size_t cap = (size_t)st.st_size + 1; /* one more: a file that grew is refused */
    char *text = sm_malloc(cap);
    ssize_t n = sm_read_full(fd, text, cap);
    close(fd);
    if (n < 0 || (size_t)n == cap) {
        *error_r = n < 0 ? errno_msg("cannot read queue state") : "queue state file changed";
        free(text);
        return -1;
    }
    *text_r = text;
    *len_r = (size_t)n;
    return 0;
}

int outq_load(const char *dir, const char *id, struct outq_entry *e, const char **error_r)
{
    char path[4096], *text;
    size_t len;
    memset(e, 0, sizeof *e);
    if (!outq_id_valid(id) || path_of(path, sizeof path, dir, "", id, ".st") < 0) {
        *error_r = "not a queue id";
        return -1;
    }
    if (read_small(path, &text, &len, error_r) < 0)
        return -1;
    int rc = outq_parse(text, len, e, error_r);
    free(text);
    if (rc == 0 && strcmp(e->id, id) != 0) {
        outq_entry_free(e);
        *error_r = "queue state file names another entry";
        return -1;
    }
    return rc;
}

int outq_save(const char *dir, const struct outq_entry *e, const char **error_r)
{
    char st[4096], tst[4096];
    if (entry_valid(e, error_r) < 0)
        return -1;
    if (path_of(st, sizeof st, dir, "", e->id, ".st") < 0 ||
        path_of(tst, sizeof tst, dir, TMP_PREFIX, e->id, ".st") < 0) {
        *error_r = "queue path too long";
        return -1;
    }
    size_t len;
    char *text = outq_format(e, &len);
    /* the new file's first sync syncs the directory too: under its lock */
    int dfd = dir_lock(dir, error_r);
    int rc = dfd < 0 ? -1 : write_file(tst, text, len, error_r);
    free(text);
    if (rc == 0 && do_rename(tst, st) < 0) {
        *error_r = errno_msg("cannot rename queue state");
        unlink(tst);
        rc = -1;
    }
    if (rc == 0)
        return dir_sync_unlock(dfd, error_r);
    if (dfd >= 0)
        close(dfd);
    return -1;
}

int outq_read_message(const char *dir, const struct outq_entry *e,
                      const uint8_t pk[OUTQ_PK_BYTES], const uint8_t sk[OUTQ_SK_BYTES],
                      int out_fd, const char **error_r)
{
    char path[4096];
    uint8_t *meta = NULL;
    size_t meta_len, want_len;
    if (!outq_id_valid(e->id) || path_of(path, sizeof path, dir, "", e->id, ".msg") < 0) {
        *error_r = "not a queue id";
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        *error_r = errno == ENOENT ? "no such entry" : errno_msg("cannot open queue message");
        return -1;
    }
    int rc = sealfile_read(fd, MAGIC, SEALFILE_META_MAX, pk, sk, out_fd, &meta, &meta_len, NULL,
                           error_r);
    close(fd);
    if (rc < 0)
        return -1;
    char *want = format_meta(e, &want_len);
    if (want_len != meta_len || memcmp(want, meta, meta_len) != 0) {
        *error_r = "queue state does not match the sealed envelope";
        rc = -1;
    }
    free(want);
    free(meta);
    return rc;
}

int outq_remove(const char *dir, const char *id, const char **error_r)
{
    char msg[4096], st[4096];
    if (!outq_id_valid(id) || path_of(msg, sizeof msg, dir, "", id, ".msg") < 0 ||
        path_of(st, sizeof st, dir, "", id, ".st") < 0) {
        *error_r = "not a queue id";
        return -1;
    }
    if ((unlink(st) < 0 && errno != ENOENT) || (unlink(msg) < 0 && errno != ENOENT)) {
        *error_r = errno_msg("cannot remove queue entry");
        return -1;
    }
    return dir_sync(dir, error_r);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int outq_list(const char *dir, void (*fn)(void *arg, const char *id), void *arg,
              const char **error_r)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT)
            return 0;
        *error_r = errno_msg("cannot read queue directory");
        return -1;
    }
    char **ids = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strlen(de->d_name) != OUTQ_ID_LEN + 3 || strcmp(de->d_name + OUTQ_ID_LEN, ".st") != 0)
            continue;
        char id[OUTQ_ID_LEN + 1];
        memcpy(id, de->d_name, OUTQ_ID_LEN);
        id[OUTQ_ID_LEN] = '\0';
        if (!outq_id_valid(id))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            ids = sm_realloc(ids, cap * sizeof *ids);
        }
        ids[n++] = sm_strdup(id);
    }
    closedir(d);
    if (n > 0)
        qsort(ids, n, sizeof *ids, cmp_str);
    for (size_t i = 0; i < n; i++) {
        fn(arg, ids[i]);
        free(ids[i]);
    }
    free(ids);
    return (int)n;
}

int outq_lock(const char *dir, const char *id, bool wait, const char **error_r)
{
    char path[4096];
    if (!outq_id_valid(id) || path_of(path, sizeof path, dir, "", id, ".msg") < 0) {
        *error_r = "not a queue id";
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        *error_r = errno == ENOENT ? "no such entry" : errno_msg("cannot open queue message");
        return -1;
    }
    if (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
        *error_r = errno == EWOULDBLOCK ? "busy" : errno_msg("cannot lock queue entry");
        close(fd);
        return -1;
    }
    return fd;
}

void outq_unlock(int fd)
{
    if (fd >= 0)
        close(fd);
}

/* --- retry schedule --------------------------------------------------------- */

int outq_schedule_parse(const char *text, struct outq_schedule *s, const char **error_r)
{
    static const struct { char c; unsigned mult; } units[] = {
        {'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
    const char *p = text;
    s->n = 0;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        uint64_t v = 0;
        const char *start = p;
        while (*p >= '0' && *p <= '9' && p - start < 9)
            v = v * 10 + (uint64_t)(*p++ - '0');
        if (p == start || s->n == OUTQ_SCHEDULE_MAX) {
            *error_r = "retry schedule: expected up to 32 durations like 5m 15m 1h";
            return -1;
        }
        unsigned mult = 1;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (*p == units[i].c) {
                mult = units[i].mult;
                p++;
                break;
            }
        if ((*p != '\0' && *p != ' ' && *p != ',' && *p != '\t') || v == 0 ||
            v * mult > 7 * 86400) {
            *error_r = "retry schedule: each delay must be 1s..7d";
            return -1;
        }
        s->delay[s->n++] = (unsigned)(v * mult);
    }
    if (s->n == 0) {
        *error_r = "retry schedule: empty";
        return -1;
    }
    return 0;
}

unsigned outq_next_delay(const struct outq_schedule *s, unsigned attempts)
{
    if (s->n == 0)
        return 300;
    size_t i = attempts == 0 ? 0 : attempts - 1;
    return s->delay[i < s->n ? i : s->n - 1];
}
