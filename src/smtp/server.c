/* server.c — the SMTP session engine (see server.h).
 *
 * Structure, after OpenSMTPD's smtp_session.c but pipelining:
 *  - a state enum with one setter that logs transitions;
 *  - a command table {verb, handler, flags}; the dispatcher enforces the
 *    flags (EHLO first, no arguments) so handlers never repeat those tests;
 *  - MAIL and RCPT are split into a pure check (replies and returns false
 *    on bad input) and a proceed step that changes the transaction;
 *  - message data has its own decoder (data.c-like section below): DATA is
 *    line based with dot-unstuffing, BDAT is counted bytes, and both refuse
 *    bare CR and bare LF so nothing can smuggle a second message through.
 *
 * Per-transaction data lives in struct smtp_tx, freed on RSET, after the
 * final reply and at disconnect. */
#include "smtp/server.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/base64.h"
#include "core/log.h"
#include "core/mem.h"
#include "net/linereader.h"

/* Stop answering pipelined commands while this much output is unread. */
#define SMTP_OUT_MAX (256 * 1024)

enum smtp_state {
    SMTP_STATE_CONNECTED,  /* greeted, waiting for EHLO/HELO */
    SMTP_STATE_READY,      /* after EHLO, no transaction */
    SMTP_STATE_MAIL,       /* in a transaction (MAIL accepted) */
    SMTP_STATE_DATA,       /* receiving DATA lines */
    SMTP_STATE_BDAT,       /* receiving a BDAT chunk */
    SMTP_STATE_COMMIT,     /* waiting for the store to make the message durable */
    SMTP_STATE_TLS,        /* STARTTLS handshake in progress */
    SMTP_STATE_CLOSING,    /* close requested; ignore input */
    SMTP_STATE_AUTH,       /* AUTH: waiting for the client's next SASL response line */
    SMTP_STATE_AUTH_CHECK, /* AUTH: waiting for the password check */
};

static const char *const state_names[] = {
    "connected", "ready", "mail", "data", "bdat", "commit", "tls", "closing", "auth",
    "auth-check",
};

/* SASL mechanisms (RFC 4616 PLAIN, and LOGIN as deployed clients use it). */
enum smtp_mech { MECH_PLAIN, MECH_LOGIN };
#define SASL_MAX 1024 /* decoded bytes of one SASL response */

struct smtp_tx {
    char *mail_from;
    char **rcpts;
    size_t n_rcpts;
    bool smtputf8;
    bool bdat;             /* BDAT used: DATA no longer allowed */
    const char *body_type;
    int64_t started;
    bool writing;          /* data_begin succeeded */
    char queue_id[SMTP_QUEUE_ID_MAX];
    uint64_t size;         /* client bytes received */
    const char *data_error;/* first reason to refuse the message, or NULL */
    /* decoder state across lines and chunks */
    bool prev_cr;          /* BDAT: last byte was CR */
    uint64_t line_len;     /* BDAT: bytes in the current line */
    uint64_t bdat_left;    /* BDAT: bytes of the current chunk still to read */
    bool bdat_last;
    const char *bdat_fail; /* BDAT refused at command time: reply after the chunk */
};

struct smtp_session {
    struct smtp_session_params p;
    const struct smtp_server_callbacks *cb;
    void *ctx;
    struct evbuffer *in, *out;
    enum smtp_state state;
    char *helo;
    bool esmtp;
    bool tls;
    char tls_desc[96];
    unsigned errors;
    bool shutdown;
    bool timed_out;        /* a timeout struck while a commit was pending */
    struct linereader cmd_reader;
    struct linereader data_reader;
    char *line;            /* max_line bytes */
    char *data_line;       /* max_data_line bytes, only while receiving DATA */
    struct smtp_tx *tx;
    char *auth_user;       /* after a successful AUTH */
    enum smtp_mech mech;   /* during AUTH */
    char *login_user;      /* LOGIN: the user name, while the password is asked */
    char *auth_name;       /* the name being checked (for the log) */
};

/* ---- state and replies ------------------------------------------------- */

static void smtp_enter_state(struct smtp_session *s, enum smtp_state next)
{
    if (s->state == next)
        return;
    if (log_debug_enabled())
        log_debug("%016" PRIx64 " smtp state %s -> %s", s->p.id, state_names[s->state],
                  state_names[next]);
    s->state = next;
}

static void smtp_reply(struct smtp_session *s, const char *fmt, ...) SM_PRINTF(2, 3);

static void smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(s->out, fmt, ap);
    va_end(ap);
    evbuffer_add(s->out, "\r\n", 2);
}

static void smtp_close(struct smtp_session *s)
{
    if (s->state == SMTP_STATE_CLOSING)
        return;
    smtp_enter_state(s, SMTP_STATE_CLOSING);
    s->cb->close(s->ctx);
}

/* A reply caused by the client's mistake: counted, and too many end the session. */
static void smtp_error(struct smtp_session *s, const char *reply)
{
    smtp_reply(s, "%s", reply);
    if (++s->errors >= s->p.max_errors) {
        log_info("%016" PRIx64 " smtp disconnect reason=too-many-errors errors=%u", s->p.id,
                 s->errors);
        smtp_reply(s, "421 4.7.0 %s Error: too many errors", s->p.hostname);
        smtp_close(s);
    }
}

/* ---- transactions ------------------------------------------------------ */

static void smtp_tx_free(struct smtp_session *s)
{
    struct smtp_tx *tx = s->tx;
    if (tx == NULL)
        return;
    if (tx->writing)
        s->cb->data_abort(s->ctx);
    if (s->cb->tx_end != NULL)
        s->cb->tx_end(s->ctx);
    for (size_t i = 0; i < tx->n_rcpts; i++)
        free(tx->rcpts[i]);
    free(tx->rcpts);
    free(tx->mail_from);
    free(tx);
    s->tx = NULL;
    sm_freep(&s->data_line);
}

static void smtp_tx_end(struct smtp_session *s)
{
    smtp_tx_free(s);
    smtp_enter_state(s, SMTP_STATE_READY);
    s->cb->set_timeout(s->ctx, s->p.command_timeout);
    if (s->shutdown) {
        smtp_reply(s, "421 4.3.2 %s Service shutting down", s->p.hostname);
        smtp_close(s);
    }
}

/* RFC 3848 / RFC 6531 §3.7.3 protocol names for the Received header. */
static const char *smtp_protocol_name(const struct smtp_session *s)
{
    if (s->tx != NULL && s->tx->smtputf8) {
        if (s->auth_user != NULL)
            return s->tls ? "UTF8SMTPSA" : "UTF8SMTPA";
        return s->tls ? "UTF8SMTPS" : "UTF8SMTP";
    }
    if (!s->esmtp)
        return s->tls ? "SMTPS" : "SMTP";
    if (s->auth_user != NULL)
        return s->tls ? "ESMTPSA" : "ESMTPA";
    return s->tls ? "ESMTPS" : "ESMTP";
}

/* Copy text for a header comment: printable ASCII only (UTF-8 kept when
 * the message is SMTPUTF8), no parentheses or backslashes. */
static void header_safe(char *dst, size_t cap, const char *src, bool utf8)
{
    size_t n = 0;
    for (; *src && n + 1 < cap; src++) {
        unsigned char c = (unsigned char)*src;
        bool ok = (c > ' ' && c < 0x7f && c != '(' && c != ')' && c != '\\') || (utf8 && c >= 0x80);
        dst[n++] = ok ? (char)c : '?';
    }
    dst[n] = '\0';
}

/* RFC 5321 §4.4 trace header, prepended to every message. */
static int smtp_write_received(struct smtp_session *s)
{
    struct smtp_tx *tx = s->tx;
    char helo[256], date[64], tls[128] = "", literal[80];
    header_safe(helo, sizeof helo, s->helo, tx->smtputf8);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    if (s->tls)
        snprintf(tls, sizeof tls, "\r\n\t(%s)", s->tls_desc);
    snprintf(literal, sizeof literal, strchr(s->p.client_addr, ':') ? "IPv6:%s" : "%s",
             s->p.client_addr);
    char hdr[1024];
    int n = snprintf(hdr, sizeof hdr,
                     "Received: from %s ([%s])\r\n\tby %s (sealmail) with %s id %s%s%s%s%s;\r\n"
                     "\t%s\r\n",
                     helo, literal, s->p.hostname, smtp_protocol_name(s), tx->queue_id, tls,
                     tx->n_rcpts == 1 ? "\r\n\tfor <" : "",
                     tx->n_rcpts == 1 ? tx->rcpts[0] : "", tx->n_rcpts == 1 ? ">" : "", date);
    if (n < 0 || (size_t)n >= sizeof hdr)
        return -1;
    return s->cb->data_write(s->ctx, hdr, (size_t)n);
}

#define REPLY_WRITE_ERROR "451 4.3.0 Error: queue file write error"

/* Open the store for the message and write the trace header; false if
 * that fails (the caller replies REPLY_WRITE_ERROR). */
static bool smtp_tx_begin_data(struct smtp_session *s)
{
    struct smtp_tx *tx = s->tx;
    struct smtp_tx_info info = {s->helo,         tx->mail_from, tx->rcpts,
                                tx->n_rcpts,     tx->body_type, tx->smtputf8,
                                tx->started,     s->auth_user};
    if (s->cb->data_begin(s->ctx, &info, tx->queue_id) < 0)
        return false;
    tx->writing = true;
    if (smtp_write_received(s) < 0) {
        s->cb->data_abort(s->ctx);
        tx->writing = false;
        return false;
    }
    return true;
}

static void smtp_tx_fail(struct smtp_tx *tx, const char *reply)
{
    if (tx->data_error == NULL)
        tx->data_error = reply;
}

static void smtp_tx_write(struct smtp_session *s, const void *p, size_t n)
{
    struct smtp_tx *tx = s->tx;
    if (n > s->p.max_message_size || tx->size > s->p.max_message_size - n)
        smtp_tx_fail(tx, "552 5.3.4 Error: message size exceeds fixed limit");
    tx->size += n;
    if (tx->data_error != NULL || !tx->writing)
        return;
    if (s->cb->data_write(s->ctx, p, n) < 0)
        smtp_tx_fail(tx, REPLY_WRITE_ERROR);
}

/* The text of a reply after its code and enhanced status code, for logs. */
static const char *reply_text(const char *reply)
{
    const char *p = strchr(reply, ' ');
    p = p != NULL ? strchr(p + 1, ' ') : NULL;
    return p != NULL ? p + 1 : reply;
}

/* End of message: commit if clean, otherwise refuse and forget it. */
static void smtp_tx_finish(struct smtp_session *s)
{
    struct smtp_tx *tx = s->tx;
    if (!tx->writing)
        smtp_tx_fail(tx, REPLY_WRITE_ERROR); /* never commit a message that has no store */
    if (tx->data_error != NULL) {
        const char *why = reply_text(tx->data_error);
        log_info("%016" PRIx64 " smtp refused reason=\"%.*s\" size=%" PRIu64, s->p.id,
                 (int)strcspn(why, ";"), why, tx->size);
        smtp_error(s, tx->data_error);
        if (s->state != SMTP_STATE_CLOSING)
            smtp_tx_end(s);
        return;
    }
    smtp_enter_state(s, SMTP_STATE_COMMIT);
    s->cb->pause(s->ctx);
    s->cb->data_commit(s->ctx);
}

/* The answer to a commit (250, 451 or a refusal), then the session goes on. */
static void smtp_commit_answer(struct smtp_session *s, bool ok, const char *refusal)
{
    if (s->state != SMTP_STATE_COMMIT) {
        log_warn("%016" PRIx64 " smtp late-commit state=%s ok=%d", s->p.id,
                 state_names[s->state], ok);
        return;
    }
    struct smtp_tx *tx = s->tx;
    tx->writing = false; /* the store owns the outcome now */
    if (refusal != NULL) {
        const char *why = reply_text(refusal);
        log_info("%016" PRIx64 " smtp refused reason=\"%.*s\" size=%" PRIu64, s->p.id,
                 (int)strcspn(why, ";"), why, tx->size);
        smtp_reply(s, "%s", refusal);
    } else if (ok) {
        log_info("%016" PRIx64 " smtp accepted queue=%s size=%" PRIu64 " nrcpt=%zu proto=%s",
                 s->p.id, tx->queue_id, tx->size, tx->n_rcpts, smtp_protocol_name(s));
        smtp_reply(s, "250 2.0.0 Ok: queued as %s", tx->queue_id);
    } else {
        log_warn("%016" PRIx64 " smtp commit-failed queue=%s", s->p.id, tx->queue_id);
        smtp_reply(s, REPLY_WRITE_ERROR);
    }
    smtp_tx_end(s);
    if (s->state == SMTP_STATE_CLOSING)
        return; /* shutting down: smtp_tx_end() said 421 */
    if (s->timed_out) {
        /* the session outlived its time while the store worked: the
         * client has its answer first, then the 421 */
        smtp_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->p.hostname);
        smtp_close(s);
        return;
    }
    s->cb->resume(s->ctx);
}

void smtp_session_commit_done(struct smtp_session *s, bool ok)
{
    smtp_commit_answer(s, ok, NULL);
}

void smtp_session_commit_refused(struct smtp_session *s, const char *reply)
{
    smtp_commit_answer(s, false, reply);
}

/* ---- MAIL and RCPT: check, then proceed --------------------------------- */

static bool smtp_check_mail(struct smtp_session *s, struct smtp_path *path, bool *utf8,
                            const char **body)
{
    uint64_t size;
    *utf8 = false;
    *body = "7BIT";
    for (size_t i = 0; i < path->n_params; i++) {
        const char *k = path->param_key[i], *v = path->param_value[i];
        if (strcasecmp(k, "SIZE") == 0 && v != NULL && smtp_parse_size(v, &size) == 0) {
            if (size > s->p.max_message_size) {
                smtp_error(s, "552 5.3.4 Message size exceeds fixed maximum message size");
                return false;
            }
        } else if (strcasecmp(k, "BODY") == 0 && v != NULL &&
                   (strcasecmp(v, "7BIT") == 0 || strcasecmp(v, "8BITMIME") == 0)) {
            *body = strcasecmp(v, "7BIT") == 0 ? "7BIT" : "8BITMIME";
        } else if (strcasecmp(k, "SMTPUTF8") == 0 && v == NULL) {
            *utf8 = true;
        } else if (strcasecmp(k, "AUTH") == 0 && v != NULL && s->auth_user != NULL) {
            /* RFC 4954 §5: the original submitter; we record our own user */
        } else {
            smtp_error(s, "555 5.5.4 Unsupported MAIL parameter");
            return false;
        }
    }
    if (path->n_params > 0 && !s->esmtp) {
        smtp_error(s, "555 5.5.4 MAIL parameters need EHLO");
        return false;
    }
    if (path->utf8 && !*utf8) {
        smtp_error(s, "553 5.6.7 Non-ASCII address requires SMTPUTF8");
        return false;
    }
    return true;
}

static void smtp_proceed_mail(struct smtp_session *s, const struct smtp_path *path, bool utf8,
                              const char *body)
{
    struct smtp_tx *tx = sm_malloc(sizeof *tx);
    tx->mail_from = sm_strdup(path->address);
    tx->rcpts = sm_calloc(s->p.max_recipients, sizeof *tx->rcpts);
    tx->smtputf8 = utf8;
    tx->body_type = body;
    tx->started = (int64_t)time(NULL);
    s->tx = tx;
    smtp_enter_state(s, SMTP_STATE_MAIL);
    if (s->cb->tx_begin != NULL)
        s->cb->tx_begin(s->ctx, s->helo, tx->mail_from);
    smtp_reply(s, "250 2.1.0 Ok");
}

static void cmd_mail(struct smtp_session *s, char *args)
{
    struct smtp_path path;
    struct smtp_parse_error err;
    bool utf8;
    const char *body;
    if (s->p.submission && s->auth_user == NULL) {
        smtp_error(s, s->tls || !s->p.tls_available
                          ? "530 5.7.0 Authentication required"
                          : "530 5.7.0 Must issue a STARTTLS command first");
        return;
    }
    if (s->tx != NULL) {
        smtp_error(s, "503 5.5.1 Error: nested MAIL command");
        return;
    }
    if (smtp_parse_path(args, "FROM:", true, &path, &err) < 0) {
        smtp_error(s, err.reply);
        return;
    }
    if (!smtp_check_mail(s, &path, &utf8, &body))
        return;
    const char *refusal = s->auth_user != NULL && s->cb->check_sender != NULL
                              ? s->cb->check_sender(s->ctx, s->auth_user, &path)
                              : NULL;
    if (refusal != NULL) {
        smtp_error(s, refusal);
        return;
    }
    smtp_proceed_mail(s, &path, utf8, body);
}

static bool smtp_check_rcpt(struct smtp_session *s, struct smtp_path *path)
{
    if (path->n_params > 0) {
        smtp_error(s, "555 5.5.4 Unsupported RCPT parameter");
        return false;
    }
    if (path->utf8 && !s->tx->smtputf8) {
        smtp_error(s, "553 5.6.7 Non-ASCII address requires SMTPUTF8");
        return false;
    }
    if (s->tx->n_rcpts >= s->p.max_recipients) {
        smtp_reply(s, "452 4.5.3 Error: too many recipients");
        return false;
    }
    const char *reply = s->cb->check_rcpt(s->ctx, path);
    if (reply != NULL) {
        smtp_error(s, reply);
        return false;
    }
    return true;
}

static void smtp_proceed_rcpt(struct smtp_session *s, const struct smtp_path *path)
{
    struct smtp_tx *tx = s->tx;
    for (size_t i = 0; i < tx->n_rcpts; i++) {
        if (strcasecmp(tx->rcpts[i], path->address) == 0) {
            smtp_reply(s, "250 2.1.5 Ok");
            return;
        }
    }
    tx->rcpts[tx->n_rcpts++] = sm_strdup(path->address);
    smtp_reply(s, "250 2.1.5 Ok");
}

static void cmd_rcpt(struct smtp_session *s, char *args)
{
    struct smtp_path path;
    struct smtp_parse_error err;
    if (s->tx == NULL) {
        smtp_error(s, "503 5.5.1 Error: need MAIL command");
        return;
    }
    if (smtp_parse_path(args, "TO:", false, &path, &err) < 0) {
        smtp_error(s, err.reply);
        return;
    }
    if (smtp_check_rcpt(s, &path))
        smtp_proceed_rcpt(s, &path);
}

/* ---- DATA ------------------------------------------------------------- */

/* Why DATA or BDAT cannot start now, or NULL. */
static const char *smtp_data_refusal(const struct smtp_session *s)
{
    if (s->tx == NULL)
        return "503 5.5.1 Error: need MAIL command";
    if (s->tx->n_rcpts == 0)
        return "554 5.5.1 Error: no valid recipients";
    return NULL;
}

static void cmd_data(struct smtp_session *s, char *args)
{
    (void)args;
    const char *refusal = smtp_data_refusal(s);
    if (refusal == NULL && s->tx->bdat)
        refusal = "503 5.5.1 Error: DATA after BDAT";
    if (refusal != NULL) {
        smtp_error(s, refusal);
        return;
    }
    if (!smtp_tx_begin_data(s)) {
        smtp_reply(s, REPLY_WRITE_ERROR);
        return;
    }
    /* not zeroed (sm_realloc of NULL): every byte is written before it is
     * read, and clearing 64 KiB for each message cost ~10% of smtpd's CPU */
    s->data_line = sm_realloc(NULL, s->p.max_data_line);
    linereader_init(&s->data_reader, s->p.max_data_line);
    smtp_enter_state(s, SMTP_STATE_DATA);
    s->cb->set_timeout(s->ctx, s->p.data_timeout);
    smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* One DATA line: "." ends the message, a leading dot is unstuffed. */
static void smtp_data_line(struct smtp_session *s, enum lr_result r, const char *line,
                           size_t len)
{
    struct smtp_tx *tx = s->tx;
    switch (r) {
    case LR_LINE:
        if (len == 1 && line[0] == '.') {
            smtp_tx_finish(s);
            return;
        }
        if (line[0] == '.')
            line++, len--;
        smtp_tx_write(s, line, len);
        smtp_tx_write(s, "\r\n", 2);
        return;
    case LR_BARE_LF:
    case LR_BARE_CR:
        smtp_tx_fail(tx, "554 5.6.0 Error: message contains a bare CR or LF (RFC 5321 "
                         "section 2.3.8); refused");
        return;
    case LR_TOOLONG:
        smtp_tx_fail(tx, "552 5.3.4 Error: message line too long");
        return;
    case LR_MORE:
        return;
    }
}

/* Whole ordinary lines at the front of the input go into the message in
 * one piece, as they stand: taking them line by line costs a search and a
 * copy for each, a quarter of smtpd's time for a 64 KiB message.  Lines
 * that begin with a dot, bare line ends, overlong lines and a line that
 * runs on into the next piece of the buffer are left to the line reader. */
static bool smtp_data_run(struct smtp_session *s)
{
    struct evbuffer_iovec v;
    if (evbuffer_peek(s->in, -1, NULL, &v, 1) < 1)
        return false;
    size_t n = linereader_clean_prefix(&s->data_reader, v.iov_base, v.iov_len, '.');
    if (n == 0)
        return false;
    smtp_tx_write(s, v.iov_base, n);
    evbuffer_drain(s->in, n);
    return true;
}

/* Read DATA lines until the end of the message (true) or of the input
 * (false).  After a bare LF, "." CRLF is not an end: only CRLF "." CRLF
 * is, so no one can smuggle a second message through us. */
static bool smtp_data_input(struct smtp_session *s)
{
    while (s->state == SMTP_STATE_DATA) {
        if (smtp_data_run(s))
            continue;
        size_t len;
        enum lr_result r = linereader_next(&s->data_reader, s->in, s->data_line, &len);
        if (r == LR_MORE)
            return false;
        if (r == LR_LINE && s->data_reader.bare_before && len == 1 && s->data_line[0] == '.')
            r = LR_BARE_LF; /* "\n.\r\n" is data, and the message is refused */
        smtp_data_line(s, r, s->data_line, len);
    }
    return true;
}

/* ---- BDAT (RFC 3030) ---------------------------------------------------- */

/* Check chunk bytes for bare CR/LF and line length, across chunks. */
static void smtp_bdat_scan(struct smtp_session *s, const unsigned char *p, size_t n)
{
    struct smtp_tx *tx = s->tx;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (tx->prev_cr != (c == '\n'))
            smtp_tx_fail(tx, "554 5.6.0 Error: message contains a bare CR or LF (RFC 5321 "
                             "section 2.3.8); refused");
        tx->prev_cr = (c == '\r');
        tx->line_len = c == '\n' ? 0 : tx->line_len + 1;
        if (tx->line_len >= s->p.max_data_line)
            smtp_tx_fail(tx, "552 5.3.4 Error: message line too long");
    }
}

static void smtp_bdat_chunk_done(struct smtp_session *s)
{
    struct smtp_tx *tx = s->tx;
    if (tx->bdat_fail != NULL) {
        const char *reply = tx->bdat_fail;
        tx->bdat_fail = NULL;
        smtp_enter_state(s, tx->writing || tx->mail_from ? SMTP_STATE_MAIL : SMTP_STATE_READY);
        s->cb->set_timeout(s->ctx, s->p.command_timeout);
        smtp_error(s, reply);
        if (tx->mail_from == NULL && s->state != SMTP_STATE_CLOSING)
            smtp_tx_end(s); /* the placeholder transaction of a refused BDAT */
        return;
    }
    if (tx->bdat_last) {
        if (tx->prev_cr)
            smtp_tx_fail(tx, "554 5.6.0 Error: message contains a bare CR or LF (RFC 5321 "
                             "section 2.3.8); refused");
        smtp_tx_finish(s);
        return;
    }
    smtp_enter_state(s, SMTP_STATE_MAIL);
    s->cb->set_timeout(s->ctx, s->p.command_timeout);
    smtp_reply(s, "250 2.0.0 Ok: %" PRIu64 " octets received", tx->size);
}

/* Read the current chunk; true once it is complete and answered. */
static bool smtp_bdat_input(struct smtp_session *s)
{
    struct smtp_tx *tx = s->tx;
    while (tx->bdat_left > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(s->in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            return false;
        size_t n = v.iov_len < tx->bdat_left ? v.iov_len : (size_t)tx->bdat_left;
        if (tx->bdat_fail == NULL) {
            smtp_bdat_scan(s, v.iov_base, n);
            smtp_tx_write(s, v.iov_base, n);
        }
        evbuffer_drain(s->in, n);
        tx->bdat_left -= n;
    }
    smtp_bdat_chunk_done(s);
    return true;
}

static void cmd_bdat(struct smtp_session *s, char *args)
{
    uint64_t size;
    bool last;
    struct smtp_parse_error err;
    if (smtp_parse_bdat(args, &size, &last, &err) < 0) {
        /* without a valid size the chunk cannot be skipped: stop here */
        smtp_reply(s, "%s", err.reply);
        smtp_reply(s, "421 4.5.0 %s Error: cannot resynchronise after bad BDAT", s->p.hostname);
        smtp_close(s);
        return;
    }
    const char *refusal = smtp_data_refusal(s);
    if (s->tx == NULL)
        s->tx = sm_malloc(sizeof *s->tx); /* placeholder to read the chunk into nothing */
    struct smtp_tx *tx = s->tx;
    /* the first accepted chunk opens the message; a refused one opens nothing */
    if (refusal == NULL && !tx->writing && !smtp_tx_begin_data(s))
        refusal = REPLY_WRITE_ERROR;
    if (refusal == NULL)
        tx->bdat = true;
    tx->bdat_fail = refusal;
    tx->bdat_left = size;
    tx->bdat_last = last;
    smtp_enter_state(s, SMTP_STATE_BDAT);
    s->cb->set_timeout(s->ctx, s->p.data_timeout);
    smtp_bdat_input(s);
}

/* ---- other commands ----------------------------------------------------- */

static void smtp_reset(struct smtp_session *s)
{
    smtp_tx_free(s);
    if (s->state == SMTP_STATE_MAIL)
        smtp_enter_state(s, SMTP_STATE_READY);
}

static void cmd_ehlo(struct smtp_session *s, char *args, bool esmtp)
{
    struct smtp_parse_error err;
    if (smtp_parse_helo(args, &err) < 0) {
        smtp_error(s, err.reply);
        return;
    }
    smtp_reset(s);
    free(s->helo);
    s->helo = sm_strndup(args, strcspn(args, " "));
    s->esmtp = esmtp;
    smtp_enter_state(s, SMTP_STATE_READY);
    if (!esmtp) {
        smtp_reply(s, "250 %s", s->p.hostname);
        return;
    }
    smtp_reply(s, "250-%s", s->p.hostname);
    smtp_reply(s, "250-PIPELINING");
    smtp_reply(s, "250-SIZE %" PRIu64, s->p.max_message_size);
    if (s->p.tls_available && !s->tls)
        smtp_reply(s, "250-STARTTLS");
    if (s->p.auth_offered && s->tls && s->auth_user == NULL)
        smtp_reply(s, "250-AUTH PLAIN LOGIN");
    smtp_reply(s, "250-ENHANCEDSTATUSCODES");
    smtp_reply(s, "250-8BITMIME");
    smtp_reply(s, "250-SMTPUTF8");
    smtp_reply(s, "250 CHUNKING");
}

static void cmd_helo_verb(struct smtp_session *s, char *args)
{
    cmd_ehlo(s, args, false);
}

static void cmd_ehlo_verb(struct smtp_session *s, char *args)
{
    cmd_ehlo(s, args, true);
}

static void cmd_rset(struct smtp_session *s, char *args)
{
    (void)args;
    smtp_reset(s);
    smtp_reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct smtp_session *s, char *args)
{
    (void)args;
    smtp_reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct smtp_session *s, char *args)
{
    (void)args;
    smtp_reply(s, "221 2.0.0 Bye");
    smtp_close(s);
}

static void cmd_help(struct smtp_session *s, char *args)
{
    (void)args;
    smtp_reply(s, "214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY");
    smtp_reply(s, "214 2.0.0 STARTTLS; see RFC 5321");
}

static void cmd_vrfy(struct smtp_session *s, char *args)
{
    (void)args;
    smtp_reply(s, "252 2.5.2 Cannot verify, but will accept mail and attempt delivery");
}

/* ---- AUTH (RFC 4954) ------------------------------------------------------ */

static void auth_end(struct smtp_session *s)
{
    sm_freep(&s->login_user);
    sm_freep(&s->auth_name);
    if (s->state == SMTP_STATE_AUTH || s->state == SMTP_STATE_AUTH_CHECK)
        smtp_enter_state(s, SMTP_STATE_READY);
}

/* Decode one SASL response (base64, "=" for empty) into out (SASL_MAX + 1
 * bytes, NUL-terminated; may hold NULs); -1 when it is not base64. */
static long auth_decode(const char *text, char *out)
{
    if (strcmp(text, "=") == 0) {
        out[0] = '\0';
        return 0;
    }
    long n = base64_decode(text, strlen(text), (uint8_t *)out, SASL_MAX, BASE64_STRICT);
    if (n >= 0)
        out[n] = '\0';
    return n;
}

static void auth_check(struct smtp_session *s, const char *user, const char *pw, size_t len)
{
    s->auth_name = sm_strdup(user);
    smtp_enter_state(s, SMTP_STATE_AUTH_CHECK);
    s->cb->pause(s->ctx);
    s->cb->auth_check(s->ctx, user, pw, len);
}

/* PLAIN: "authzid NUL authcid NUL passwd"; acting for someone else is refused. */
static void auth_plain(struct smtp_session *s, char *buf, size_t n)
{
    char *authcid = memchr(buf, '\0', n);
    char *passwd = authcid != NULL ? memchr(authcid + 1, '\0', n - (size_t)(authcid + 1 - buf)) : NULL;
    if (passwd == NULL) {
        auth_end(s);
        smtp_error(s, "501 5.5.2 Error: malformed PLAIN response");
        return;
    }
    authcid++, passwd++;
    size_t pwlen = n - (size_t)(passwd - buf);
    if ((buf[0] != '\0' && strcmp(buf, authcid) != 0) || authcid[0] == '\0' || pwlen == 0 ||
        memchr(passwd, '\0', pwlen) != NULL) {
        auth_end(s);
        smtp_error(s, "535 5.7.8 Authentication credentials invalid");
        return;
    }
    auth_check(s, authcid, passwd, pwlen);
}

/* One SASL response, from the AUTH line or a line of its own. */
static void auth_response(struct smtp_session *s, const char *text)
{
    char *buf = sm_malloc(SASL_MAX + 1);
    long n = auth_decode(text, buf);
    if (n < 0) {
        auth_end(s);
        smtp_error(s, "501 5.5.2 Error: the response is not base64");
    } else if (s->mech == MECH_PLAIN) {
        auth_plain(s, buf, (size_t)n);
    } else if (s->login_user == NULL) { /* LOGIN: the user name */
        if (n == 0 || memchr(buf, '\0', (size_t)n) != NULL) {
            auth_end(s);
            smtp_error(s, "535 5.7.8 Authentication credentials invalid");
        } else {
            s->login_user = sm_strdup(buf);
            smtp_enter_state(s, SMTP_STATE_AUTH);
            smtp_reply(s, "334 UGFzc3dvcmQ6"); /* "Password:" */
        }
    } else if (n == 0 || memchr(buf, '\0', (size_t)n) != NULL) {
        /* no password has a NUL (PLAIN could not even carry one) */
        auth_end(s);
        smtp_error(s, "535 5.7.8 Authentication credentials invalid");
    } else {
        char *user = s->login_user;
        s->login_user = NULL;
        auth_check(s, user, buf, (size_t)n);
        free(user);
    }
    explicit_bzero(buf, SASL_MAX + 1);
    free(buf);
}

/* Why AUTH cannot be used now, or NULL. */
static const char *auth_refusal(const struct smtp_session *s)
{
    if (!s->p.auth_offered)
        return "502 5.5.1 Error: AUTH is not available here (use the submission port)";
    if (!s->tls)
        return "538 5.7.11 Encryption required for requested authentication mechanism";
    if (s->auth_user != NULL)
        return "503 5.5.1 Error: already authenticated";
    if (s->tx != NULL)
        return "503 5.5.1 Error: AUTH not allowed during a mail transaction";
    return NULL;
}

static void cmd_auth(struct smtp_session *s, char *args)
{
    size_t mlen = strcspn(args, " ");
    const char *initial = args[mlen] == ' ' ? args + mlen + 1 : NULL;
    const char *why = auth_refusal(s);
    if (why != NULL) {
        smtp_error(s, why);
        return;
    }
    if (mlen == 5 && strncasecmp(args, "PLAIN", 5) == 0) {
        s->mech = MECH_PLAIN;
    } else if (mlen == 5 && strncasecmp(args, "LOGIN", 5) == 0) {
        s->mech = MECH_LOGIN;
    } else {
        smtp_error(s, "504 5.5.4 Error: unrecognized authentication mechanism");
        return;
    }
    if (initial != NULL) {
        auth_response(s, initial);
        return;
    }
    smtp_enter_state(s, SMTP_STATE_AUTH);
    smtp_reply(s, s->mech == MECH_PLAIN ? "334 " : "334 VXNlcm5hbWU6"); /* "Username:" */
}

/* A line while AUTH waits for a response: "*" cancels (RFC 4954 §4). */
static bool smtp_auth_input(struct smtp_session *s)
{
    size_t len;
    switch (linereader_next(&s->cmd_reader, s->in, s->line, &len)) {
    case LR_MORE:
        return false;
    case LR_TOOLONG:
    case LR_BARE_LF:
    case LR_BARE_CR:
        auth_end(s);
        smtp_error(s, "500 5.5.6 Error: authentication exchange line is too long or malformed");
        return true;
    case LR_LINE:
        break;
    }
    if (strcmp(s->line, "*") == 0) {
        auth_end(s);
        smtp_error(s, "501 5.7.0 Authentication cancelled");
    } else {
        auth_response(s, s->line);
    }
    explicit_bzero(s->line, len);
    return true;
}

void smtp_session_auth_done(struct smtp_session *s, enum smtp_auth_result r)
{
    if (s->state != SMTP_STATE_AUTH_CHECK)
        return;
    if (r == SMTP_AUTH_OK) {
        s->auth_user = s->auth_name;
        s->auth_name = NULL;
        log_info("%016" PRIx64 " smtp authenticated", s->p.id);
        smtp_reply(s, "235 2.7.0 Authentication successful");
    } else if (r == SMTP_AUTH_TEMPFAIL) {
        smtp_reply(s, "454 4.7.0 Temporary authentication failure");
    } else if (r == SMTP_AUTH_BLOCKED) {
        auth_end(s);
        smtp_reply(s, "421 4.7.0 %s Error: too many failed logins", s->p.hostname);
        smtp_close(s);
        return;
    } else {
        log_info("%016" PRIx64 " smtp auth-failed client=%s", s->p.id, s->p.client_log);
        auth_end(s);
        smtp_error(s, "535 5.7.8 Authentication credentials invalid");
        if (s->state == SMTP_STATE_CLOSING)
            return;
    }
    auth_end(s);
    if (s->timed_out) {
        smtp_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->p.hostname);
        smtp_close(s);
        return;
    }
    s->cb->resume(s->ctx);
}

const char *smtp_session_auth_user(const struct smtp_session *s)
{
    return s->auth_user;
}

static void cmd_starttls(struct smtp_session *s, char *args)
{
    (void)args;
    if (!s->p.tls_available) {
        smtp_error(s, "502 5.5.1 Error: STARTTLS is not available");
        return;
    }
    if (s->tls) {
        smtp_error(s, "503 5.5.1 Error: TLS already active");
        return;
    }
    if (evbuffer_get_length(s->in) > 0) {
        /* CVE-2011-0411 class: text pipelined after STARTTLS must never be
         * taken as if it came over TLS */
        log_info("%016" PRIx64 " smtp disconnect reason=pipelining-after-starttls", s->p.id);
        evbuffer_drain(s->in, evbuffer_get_length(s->in));
        smtp_reply(s, "554 5.5.1 Error: command pipelining after STARTTLS is not allowed");
        smtp_close(s);
        return;
    }
    smtp_reset(s);
    smtp_reply(s, "220 2.0.0 Ready to start TLS");
    smtp_enter_state(s, SMTP_STATE_TLS);
    s->cb->starttls(s->ctx);
}

enum {
    CMD_NEEDS_HELO = 1 << 0, /* refused before EHLO/HELO */
    CMD_NO_ARGS = 1 << 1,    /* takes no argument */
};

static const struct smtp_command {
    enum smtp_verb verb;
    void (*handler)(struct smtp_session *s, char *args);
    unsigned flags;
} commands[] = {
    {SMTP_VERB_EHLO, cmd_ehlo_verb, 0},
    {SMTP_VERB_HELO, cmd_helo_verb, 0},
    {SMTP_VERB_MAIL, cmd_mail, CMD_NEEDS_HELO},
    {SMTP_VERB_RCPT, cmd_rcpt, CMD_NEEDS_HELO},
    {SMTP_VERB_DATA, cmd_data, CMD_NEEDS_HELO | CMD_NO_ARGS},
    {SMTP_VERB_BDAT, cmd_bdat, 0},
    {SMTP_VERB_RSET, cmd_rset, CMD_NO_ARGS},
    {SMTP_VERB_NOOP, cmd_noop, 0},
    {SMTP_VERB_QUIT, cmd_quit, CMD_NO_ARGS},
    {SMTP_VERB_HELP, cmd_help, 0},
    {SMTP_VERB_VRFY, cmd_vrfy, 0},
    {SMTP_VERB_EXPN, cmd_vrfy, 0},
    {SMTP_VERB_STARTTLS, cmd_starttls, CMD_NO_ARGS},
    {SMTP_VERB_AUTH, cmd_auth, CMD_NEEDS_HELO},
};

/* The one gate every command passes (STYLE.md §5). */
static void smtp_dispatch(struct smtp_session *s, char *line)
{
    const char *args;
    enum smtp_verb verb = smtp_parse_verb(line, &args);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const struct smtp_command *c = &commands[i];
        if (c->verb != verb)
            continue;
        if ((c->flags & CMD_NEEDS_HELO) && s->helo == NULL)
            smtp_error(s, "503 5.5.1 Error: send EHLO or HELO first");
        else if ((c->flags & CMD_NO_ARGS) && *args != '\0')
            smtp_error(s, "501 5.5.4 Error: this command takes no argument");
        else if (s->shutdown && s->tx == NULL && verb != SMTP_VERB_QUIT) {
            smtp_reply(s, "421 4.3.2 %s Service shutting down", s->p.hostname);
            smtp_close(s);
        } else
            c->handler(s, (char *)(uintptr_t)args);
        return;
    }
    smtp_error(s, "500 5.5.2 Error: command not recognized");
}

/* Answer one command line; false when no complete line is buffered. */
static bool smtp_command_input(struct smtp_session *s)
{
    size_t len;
    switch (linereader_next(&s->cmd_reader, s->in, s->line, &len)) {
    case LR_MORE:
        return false;
    case LR_TOOLONG:
        smtp_error(s, "500 5.5.2 Error: line too long");
        return true;
    case LR_BARE_LF:
    case LR_BARE_CR:
        smtp_error(s, "500 5.5.2 Error: bare CR or LF in command (use CRLF)");
        return true;
    case LR_LINE:
        break;
    }
    if (strlen(s->line) != len)
        smtp_error(s, "500 5.5.2 Error: NUL character in command");
    else
        smtp_dispatch(s, s->line);
    return true;
}

/* One step of input processing; false when it must wait. */
static bool smtp_input_step(struct smtp_session *s)
{
    switch (s->state) {
    case SMTP_STATE_CONNECTED:
    case SMTP_STATE_READY:
    case SMTP_STATE_MAIL:
        return smtp_command_input(s);
    case SMTP_STATE_DATA:
        return smtp_data_input(s);
    case SMTP_STATE_BDAT:
        return smtp_bdat_input(s);
    case SMTP_STATE_AUTH:
        return smtp_auth_input(s);
    case SMTP_STATE_AUTH_CHECK:
    case SMTP_STATE_COMMIT:
    case SMTP_STATE_TLS:
    case SMTP_STATE_CLOSING:
        break;
    }
    return false;
}

void smtp_session_input(struct smtp_session *s)
{
    /* stop while the client is not reading its replies: CONN_DRAINED resumes */
    while (evbuffer_get_length(s->out) <= SMTP_OUT_MAX && smtp_input_step(s))
        ;
}

/* ---- lifecycle ------------------------------------------------------------ */

struct smtp_session *smtp_session_new(const struct smtp_session_params *p,
                                      const struct smtp_server_callbacks *cb, void *ctx)
{
    struct smtp_session *s = sm_malloc(sizeof *s);
    s->p = *p;
    s->p.hostname = sm_strdup(p->hostname);
    s->p.client_addr = sm_strdup(p->client_addr);
    s->p.client_log = sm_strdup(p->client_log);
    s->cb = cb;
    s->ctx = ctx;
    s->tls = p->tls_active;
    s->line = sm_malloc(p->max_line);
    linereader_init(&s->cmd_reader, p->max_line);
    return s;
}

void smtp_session_free(struct smtp_session **sp)
{
    struct smtp_session *s = *sp;
    if (s == NULL)
        return;
    smtp_tx_free(s);
    free(s->helo);
    free(s->auth_user);
    free(s->login_user);
    free(s->auth_name);
    free(s->line);
    free((char *)(uintptr_t)s->p.hostname);
    free((char *)(uintptr_t)s->p.client_addr);
    free((char *)(uintptr_t)s->p.client_log);
    free(s);
    *sp = NULL;
}

void smtp_session_set_io(struct smtp_session *s, struct evbuffer *in, struct evbuffer *out)
{
    s->in = in;
    s->out = out;
}

void smtp_session_greet(struct smtp_session *s)
{
    s->cb->set_timeout(s->ctx, s->p.command_timeout);
    smtp_reply(s, "220 %s ESMTP sealmail", s->p.hostname);
}

void smtp_session_tls_ready(struct smtp_session *s, const char *desc)
{
    snprintf(s->tls_desc, sizeof s->tls_desc, "%s", desc);
    s->tls = true;
    if (s->state != SMTP_STATE_TLS)
        return; /* implicit TLS: nothing was said before the handshake */
    /* RFC 3207 §4.2: forget everything learnt before TLS */
    smtp_reset(s);
    sm_freep(&s->helo);
    sm_freep(&s->auth_user);
    s->esmtp = false;
    smtp_enter_state(s, SMTP_STATE_CONNECTED);
    log_debug("%016" PRIx64 " smtp starttls %s", s->p.id, desc);
}

void smtp_session_timeout(struct smtp_session *s)
{
    if (s->state == SMTP_STATE_CLOSING)
        return;
    if (s->state == SMTP_STATE_COMMIT || s->state == SMTP_STATE_AUTH_CHECK) {
        s->timed_out = true; /* answered by smtp_session_commit_done() or _auth_done() */
        return;
    }
    log_info("%016" PRIx64 " smtp disconnect reason=timeout state=%s", s->p.id,
             state_names[s->state]);
    if (s->state != SMTP_STATE_TLS)
        smtp_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->p.hostname);
    smtp_tx_free(s);
    smtp_close(s);
}

void smtp_session_shutdown(struct smtp_session *s)
{
    s->shutdown = true;
    if (s->state == SMTP_STATE_CLOSING || smtp_session_busy(s))
        return;
    if (s->state != SMTP_STATE_TLS)
        smtp_reply(s, "421 4.3.2 %s Service shutting down", s->p.hostname);
    smtp_close(s);
}

bool smtp_session_busy(const struct smtp_session *s)
{
    return s->tx != NULL && s->tx->mail_from != NULL;
}

bool smtp_session_closing(const struct smtp_session *s)
{
    return s->state == SMTP_STATE_CLOSING;
}
