/* fuzz-smtp-server.c — drive the whole SMTP engine with arbitrary input.
 *
 * The input is split into client writes at 0xff bytes (so pipelining and
 * partial reads vary), fed to a session through evbuffers, with commits
 * and STARTTLS completing asynchronously between writes, as in the daemon.
 * It covers the command parser, the DATA and BDAT decoders, limits and
 * state changes.  Crashes, leaks, UB and invariant panics are findings;
 * the harness also checks that every reply line is well formed. */
#include <event2/buffer.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "smtp/server.h"

struct fuzz_state {
    bool commit_pending, tls_pending, closed, auth_pending;
    enum smtp_auth_result auth_result;
    size_t stored;
};

static const char *f_check_rcpt(void *ctx, const struct smtp_path *rcpt)
{
    (void)ctx;
    return strcmp(rcpt->domain, "example.test") == 0 || rcpt->domain[0] == '\0'
               ? NULL
               : "550 5.7.1 Relaying denied";
}

static int f_data_begin(void *ctx, const struct smtp_tx_info *tx, char *queue_id)
{
    struct fuzz_state *f = ctx;
    if (tx->n_rcpts == 0 || tx->mail_from == NULL)
        abort(); /* the engine must never open a message without a recipient */
    f->stored = 0;
    strcpy(queue_id, "0123456789abcdef");
    return 0;
}

static int f_data_write(void *ctx, const void *p, size_t n)
{
    (void)p;
    ((struct fuzz_state *)ctx)->stored += n;
    return 0;
}

static void f_data_commit(void *ctx)
{
    ((struct fuzz_state *)ctx)->commit_pending = true;
}

static void f_noop(void *ctx)
{
    (void)ctx;
}

static void f_starttls(void *ctx)
{
    ((struct fuzz_state *)ctx)->tls_pending = true;
}

static void f_set_timeout(void *ctx, unsigned s)
{
    (void)ctx, (void)s;
}

static void f_close(void *ctx)
{
    ((struct fuzz_state *)ctx)->closed = true;
}

/* AUTH: "user"/"secret" passes, anything else fails; answered later,
 * like the daemon's worker pool does. */
static void f_auth_check(void *ctx, const char *user, const char *password, size_t len)
{
    struct fuzz_state *f = ctx;
    if (user == NULL || password == NULL || memchr(password, '\0', len) != NULL)
        abort(); /* the engine hands over a name and a password without NUL */
    f->auth_pending = true;
    f->auth_result = strcmp(user, "user") == 0 && len == 6 && memcmp(password, "secret", 6) == 0
                         ? SMTP_AUTH_OK
                         : SMTP_AUTH_INVALID;
}

static const char *f_check_sender(void *ctx, const char *user, const struct smtp_path *from)
{
    (void)ctx;
    if (user == NULL)
        abort(); /* asked only in authenticated sessions */
    return strcmp(from->domain, "example.test") == 0 ? NULL : "553 5.7.1 Not yours";
}

static const struct smtp_server_callbacks callbacks = {
    f_check_rcpt, f_data_begin, f_data_write, f_data_commit, f_noop,
    f_starttls,   f_noop,       f_noop,       f_set_timeout, f_close,
    NULL,         NULL, /* no transaction hooks: the engine must work without them */
    f_auth_check, f_check_sender,
};

/* Every reply is "ddd" then ' ' or '-' and ends in CRLF. */
static void check_replies(struct evbuffer *out)
{
    size_t len = evbuffer_get_length(out);
    const char *p = (const char *)evbuffer_pullup(out, -1);
    for (size_t i = 0; i < len;) {
        const char *eol = memchr(p + i, '\n', len - i);
        if (eol == NULL || eol == p + i || eol[-1] != '\r' || (size_t)(eol - (p + i)) < 4)
            abort();
        if (p[i] < '2' || p[i] > '5' || (p[i + 3] != ' ' && p[i + 3] != '-'))
            abort();
        i = (size_t)(eol - p) + 1;
    }
    evbuffer_drain(out, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    if (!init) {
        log_set_level(LOG_LEVEL_ERROR);
        init = true;
    }
    struct fuzz_state f = {0};
    struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
    struct smtp_session_params p = {
        .id = 1, .hostname = "mx.test", .client_addr = "192.0.2.1", .client_log = "192.0.2.0",
        .max_line = 512, .max_data_line = 1000, .max_message_size = 4096, .max_recipients = 4,
        .max_errors = 20, .command_timeout = 300, .data_timeout = 600, .tls_available = true,
        /* a submission session when the input starts with an odd byte */
        .submission = size > 0 && (data[0] & 1), .auth_offered = true,
    };
    struct smtp_session *s = smtp_session_new(&p, &callbacks, &f);
    smtp_session_set_io(s, in, out);
    smtp_session_greet(s);
    size_t start = 0;
    while (start <= size && !f.closed) {
        const uint8_t *sep = memchr(data + start, 0xff, size - start);
        size_t end = sep ? (size_t)(sep - data) : size;
        evbuffer_add(in, data + start, end - start);
        smtp_session_input(s);
        while (f.commit_pending || f.tls_pending || f.auth_pending) {
            if (f.commit_pending) {
                f.commit_pending = false;
                smtp_session_commit_done(s, (f.stored & 1) == 0);
            } else if (f.auth_pending) {
                f.auth_pending = false;
                smtp_session_auth_done(s, f.auth_result);
            } else {
                f.tls_pending = false;
                smtp_session_tls_ready(s, "TLS1.3 FUZZ");
            }
            smtp_session_input(s);
        }
        check_replies(out);
        start = end + 1;
    }
    smtp_session_free(&s);
    evbuffer_free(in);
    evbuffer_free(out);
    return 0;
}
