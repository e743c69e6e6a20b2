/* pop3.c — the POP3 session (see pop3.h).
 *
 * States (RFC 1939 §3): AUTHORIZATION until a login succeeds, then
 * TRANSACTION over the maildrop loaded at login, UPDATE at QUIT.  Store
 * work (loading the maildrop, reading a message, expunging) runs on the
 * worker pool through client_run(); its reply is built there into
 * job_out and handed to the connection when the job is done. */
#include "pop3/pop3.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "access/sasl.h"
#include "core/config.h"
#include "core/mem.h"
#include "net/linereader.h"
#include "store/mailbox.h"

#define POP3_USER_MAX 255
/* RFC 2449 §4: commands are at most 255 octets; AUTH PLAIN responses are
 * longer (SASL_PLAIN_MAX decoded, base64 a third more) but far from the
 * IMAP line limit, so POP3 keeps a small buffer per connection. */
#define POP3_LINE_MAX 4096
#define POP3_MAILDROP_MAX 100000 /* messages one session lists; the rest wait */

struct pop3_msg {
    uint32_t uid;
    uint64_t size;
    char file[64];
    bool deleted;
};

enum pop3_state { POP3_AUTH, POP3_TRANSACTION, POP3_DONE };
enum pop3_job { JOB_LOAD, JOB_SEND, JOB_UPDATE };

struct pop3 {
    struct client *c;
    enum pop3_state state;
    struct linereader lr;
    char *line;
    char user[POP3_USER_MAX + 1];
    bool have_user, sasl_wait;
    unsigned errors;
    struct pop3_msg *msgs;
    size_t n_msgs, cap_msgs;
    uint32_t uidvalidity;
    /* the job out on the worker pool */
    enum pop3_job job;
    size_t job_msg;
    long job_lines;            /* TOP's line count; -1: the whole message (RETR) */
    struct evbuffer *job_out;
    bool job_ok;
};

static void reply(struct pop3 *p, const char *fmt, ...) SM_PRINTF(2, 3);

static void reply(struct pop3 *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(client_output(p->c), fmt, ap);
    va_end(ap);
    evbuffer_add(client_output(p->c), "\r\n", 2);
}

/* ---- maildrop ------------------------------------------------------------------ */

static void collect(void *arg, const struct mailbox_message *m)
{
    struct pop3 *p = arg;
    if (p->n_msgs == p->cap_msgs)
        return; /* more arrived since the count (another process): next session */
    struct pop3_msg *pm = &p->msgs[p->n_msgs++];
    pm->uid = m->uid;
    pm->size = m->size;
    snprintf(pm->file, sizeof pm->file, "%s", m->file);
}

static void load_work(struct pop3 *p)
{
    const char *error;
    struct mailbox_folder f;
    struct mailbox *mb = unlocked_store(client_mailbox(p->c));
    p->job_ok = false;
    if (mailbox_folder_get(mb, "INBOX", &f, &error) == 1) {
        size_t n = f.messages < POP3_MAILDROP_MAX ? (size_t)f.messages : POP3_MAILDROP_MAX;
        p->cap_msgs = n;
        p->msgs = sm_calloc(n + 1, sizeof *p->msgs);
        p->uidvalidity = f.uidvalidity;
        p->job_ok = mailbox_messages(mb, "INBOX", collect, p, &error) >= 0;
    }
    unlocked_store_done(client_mailbox(p->c));
    if (!p->job_ok)
        log_warn("%016" PRIx64 " pop3 maildrop-failed error=\"%s\"", client_id(p->c), error);
}

/* The reply of RETR/TOP: the message with CRLF line ends and dot-stuffing
 * (RFC 1939 §3); for TOP the header, the blank line and job_lines lines. */
static void send_lines(struct pop3 *p, const char *data, size_t len)
{
    struct evbuffer *out = p->job_out;
    bool in_body = false;
    long body_lines = 0;
    size_t i = 0;
    while (i < len) {
        if (in_body && p->job_lines >= 0 && body_lines >= p->job_lines)
            break;
        const char *nl = memchr(data + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - data) : len;
        size_t text_end = end > i && data[end - 1] == '\r' ? end - 1 : end;
        if (text_end > i && data[i] == '.')
            evbuffer_add(out, ".", 1);
        evbuffer_add(out, data + i, text_end - i);
        evbuffer_add(out, "\r\n", 2);
        if (in_body)
            body_lines++;
        else if (text_end == i)
            in_body = true;
        i = nl ? end + 1 : len;
    }
    evbuffer_add(out, ".\r\n", 3);
}

static void send_work(struct pop3 *p)
{
    const char *error;
    struct pop3_msg *m = &p->msgs[p->job_msg];
    struct mailbox_body body = MAILBOX_BODY_INIT;
    struct mailbox *mb = unlocked_store(client_mailbox(p->c));
    /* read into the heap, not mapped: an unmap per message flushes every CPU's TLB */
    int r = mailbox_body_read(mb, m->file, 0, SIZE_MAX, &body, &error);
    unlocked_store_done(client_mailbox(p->c));
    p->job_ok = r == 0;
    if (r < 0) {
        log_warn("%016" PRIx64 " pop3 read-failed uid=%u error=\"%s\"", client_id(p->c), m->uid,
                 error);
    } else {
        evbuffer_add_printf(p->job_out, "+OK %" PRIu64 " octets\r\n", m->size);
        send_lines(p, (const char *)body.data, body.len);
    }
    mailbox_body_release(&body); /* wipes the message's plaintext */
}

/* UPDATE: expunge the messages marked with DELE, in one transaction. */
static void update_work(struct pop3 *p)
{
    const char *error = NULL;
    uint32_t *uids = sm_calloc(p->n_msgs + 1, sizeof *uids);
    size_t n = 0;
    struct mailbox *mb = unlocked_store(client_mailbox(p->c));
    p->job_ok = mailbox_begin(mb, &error) == 0;
    for (size_t i = 0; p->job_ok && i < p->n_msgs; i++) {
        if (!p->msgs[i].deleted)
            continue;
        uids[n++] = p->msgs[i].uid;
        int r = mailbox_store_flags(mb, "INBOX", p->msgs[i].uid, MAILBOX_FLAGS_ADD,
                                    MAILBOX_DELETED, NULL, 0, NULL, &error);
        p->job_ok = r >= 0 || r == MAILBOX_NONEXISTENT; /* expunged by IMAP meanwhile */
    }
    if (p->job_ok && n > 0)
        p->job_ok = mailbox_expunge(mb, "INBOX", uids, n, NULL, NULL, &error) >= 0;
    if (p->job_ok)
        p->job_ok = mailbox_commit(mb, &error) == 0;
    else
        mailbox_rollback(mb);
    unlocked_store_done(client_mailbox(p->c));
    if (!p->job_ok)
        log_warn("%016" PRIx64 " pop3 update-failed error=\"%s\"", client_id(p->c), error);
    free(uids);
}

static void job_work(void *arg)
{
    struct pop3 *p = arg;
    switch (p->job) {
    case JOB_LOAD:
        load_work(p);
        break;
    case JOB_SEND:
        send_work(p);
        break;
    case JOB_UPDATE:
        update_work(p);
        break;
    }
}

static void job_done(void *arg)
{
    struct pop3 *p = arg;
    switch (p->job) {
    case JOB_LOAD:
        if (!p->job_ok) {
            reply(p, "-ERR [SYS/TEMP] Cannot open the mailbox, try again later");
            p->state = POP3_DONE;
            client_close(p->c);
            return;
        }
        p->state = POP3_TRANSACTION;
        reply(p, "+OK Logged in, %zu message%s", p->n_msgs, p->n_msgs == 1 ? "" : "s");
        break;
    case JOB_SEND:
        if (p->job_ok)
            evbuffer_add_buffer(client_output(p->c), p->job_out);
        else
            reply(p, "-ERR [SYS/TEMP] Cannot read the message");
        evbuffer_drain(p->job_out, evbuffer_get_length(p->job_out));
        break;
    case JOB_UPDATE:
        if (p->job_ok) {
            client_notify_others(p->c);
            reply(p, "+OK Logging out, messages deleted");
        } else {
            reply(p, "-ERR [SYS/TEMP] Some deleted messages were not removed");
        }
        p->state = POP3_DONE;
        client_close(p->c);
        break;
    }
}

static void run(struct pop3 *p, enum pop3_job job)
{
    p->job = job;
    client_run(p->c, job_work, job_done);
}

/* ---- authorization ---------------------------------------------------------------- */

static void login_done(void *arg, enum client_login_result r)
{
    struct pop3 *p = arg;
    switch (r) {
    case CLIENT_LOGIN_OK:
        client_set_timeout(p->c, client_cfg(p->c)->pop3_timeout);
        run(p, JOB_LOAD);
        return;
    case CLIENT_LOGIN_BAD:
        reply(p, "-ERR [AUTH] Authentication failed");
        break;
    case CLIENT_LOGIN_BLOCKED:
        reply(p, "-ERR [SYS/TEMP] Too many failed logins from your network, try later");
        client_close(p->c);
        break;
    case CLIENT_LOGIN_TOO_MANY:
        reply(p, "-ERR [IN-USE] Too many sessions for this mailbox");
        break;
    case CLIENT_LOGIN_FAILED:
        reply(p, "-ERR [SYS/TEMP] Cannot open the mailbox, try again later");
        break;
    }
    p->have_user = false;
}

static bool plaintext_refused(struct pop3 *p)
{
    if (client_plaintext_ok(p->c))
        return false;
    reply(p, "-ERR [AUTH] Plaintext authentication disallowed without TLS (use STLS)");
    return true;
}

static void cmd_capa(struct pop3 *p)
{
    reply(p, "+OK Capability list follows");
    reply(p, "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING");
    if (p->state == POP3_AUTH) {
        if (client_plaintext_ok(p->c))
            reply(p, "USER\r\nSASL PLAIN");
        if (client_tls_available(p->c) && !client_tls_active(p->c))
            reply(p, "STLS");
    }
    reply(p, "IMPLEMENTATION sealmail\r\n.");
}

static void cmd_stls(struct pop3 *p)
{
    if (client_tls_active(p->c) || !client_tls_available(p->c)) {
        reply(p, "-ERR %s", client_tls_active(p->c) ? "TLS is active already"
                                                    : "TLS is not available");
        return;
    }
    /* RFC 2595 §4: nothing sent before the handshake may be acted on */
    struct evbuffer *in = client_input(p->c);
    evbuffer_drain(in, evbuffer_get_length(in));
    reply(p, "+OK Begin TLS negotiation");
    p->have_user = false;
    client_starttls(p->c);
}

static void auth_plain(struct pop3 *p, const char *response)
{
    struct sasl_plain sp;
    const char *error;
    if (strcmp(response, "*") == 0) {
        reply(p, "-ERR Authentication cancelled");
        return;
    }
    if (sasl_plain_decode(response, &sp, &error) < 0) {
        reply(p, "-ERR %s", error);
        return;
    }
    client_login(p->c, sp.authcid, sp.passwd, sp.passwd_len, login_done);
    sasl_plain_free(&sp);
}

static void cmd_auth(struct pop3 *p, char *args)
{
    char *mech = strtok_r(args, " ", &args);
    char *initial = strtok_r(NULL, " ", &args);
    if (mech == NULL) {
        reply(p, "+OK SASL mechanisms follow\r\nPLAIN\r\n.");
        return;
    }
    if (strcasecmp(mech, "PLAIN") != 0) {
        reply(p, "-ERR Unsupported authentication mechanism");
        return;
    }
    if (plaintext_refused(p))
        return;
    if (initial == NULL) {
        p->sasl_wait = true;
        reply(p, "+ ");
        return;
    }
    auth_plain(p, strcmp(initial, "=") == 0 ? "" : initial);
}

static void cmd_user(struct pop3 *p, const char *args)
{
    if (plaintext_refused(p))
        return;
    if (*args == '\0' || strlen(args) > POP3_USER_MAX) {
        reply(p, "-ERR Bad user name");
        return;
    }
    snprintf(p->user, sizeof p->user, "%s", args);
    p->have_user = true;
    reply(p, "+OK Send your password");
}

static void cmd_pass(struct pop3 *p, const char *args)
{
    if (!p->have_user) {
        reply(p, "-ERR USER first");
        return;
    }
    if (plaintext_refused(p))
        return;
    client_login(p->c, p->user, args, strlen(args), login_done);
}

/* ---- transaction ------------------------------------------------------------------- */

/* "n" naming a message that exists and is not deleted; replies otherwise. */
static struct pop3_msg *message_arg(struct pop3 *p, const char *arg, size_t *index_r)
{
    char *end;
    unsigned long n = strtoul(arg, &end, 10);
    if (*arg < '1' || *arg > '9' || (*end != '\0' && *end != ' ')) {
        reply(p, "-ERR Invalid message number");
        return NULL;
    }
    if (n > p->n_msgs || p->msgs[n - 1].deleted) {
        reply(p, "-ERR No such message");
        return NULL;
    }
    *index_r = n - 1;
    return &p->msgs[n - 1];
}

static void cmd_stat(struct pop3 *p)
{
    size_t n = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < p->n_msgs; i++)
        if (!p->msgs[i].deleted) {
            n++;
            bytes += p->msgs[i].size;
        }
    reply(p, "+OK %zu %" PRIu64, n, bytes);
}

static void cmd_list(struct pop3 *p, const char *args, bool uidl)
{
    size_t i;
    struct pop3_msg *m;
    if (*args != '\0') {
        if ((m = message_arg(p, args, &i)) == NULL)
            return;
        if (uidl)
            reply(p, "+OK %zu %08x%08x", i + 1, m->uid, p->uidvalidity);
        else
            reply(p, "+OK %zu %" PRIu64, i + 1, m->size);
        return;
    }
    reply(p, "+OK");
    for (i = 0; i < p->n_msgs; i++) {
        m = &p->msgs[i];
        if (m->deleted)
            continue;
        if (uidl)
            reply(p, "%zu %08x%08x", i + 1, m->uid, p->uidvalidity);
        else
            reply(p, "%zu %" PRIu64, i + 1, m->size);
    }
    reply(p, ".");
}

static void cmd_retr(struct pop3 *p, char *args, bool top)
{
    size_t i;
    char *lines = NULL;
    if (top && ((lines = strchr(args, ' ')) == NULL || lines[1] < '0' || lines[1] > '9')) {
        reply(p, "-ERR Usage: TOP message lines");
        return;
    }
    if (message_arg(p, args, &i) == NULL)
        return;
    p->job_msg = i;
    p->job_lines = -1;
    if (top) {
        unsigned long n = strtoul(lines + 1, NULL, 10);
        p->job_lines = n > 100000000ul ? 100000000l : (long)n;
    }
    run(p, JOB_SEND);
}

static void cmd_dele(struct pop3 *p, const char *args)
{
    size_t i;
    struct pop3_msg *m = message_arg(p, args, &i);
    if (m == NULL)
        return;
    m->deleted = true;
    reply(p, "+OK Marked to be deleted");
}

static void cmd_rset(struct pop3 *p)
{
    for (size_t i = 0; i < p->n_msgs; i++)
        p->msgs[i].deleted = false;
    reply(p, "+OK");
}

/* ---- dispatch ------------------------------------------------------------------------- */

static void bad_command(struct pop3 *p, const char *why)
{
    reply(p, "-ERR %s", why);
    if (++p->errors >= client_cfg(p->c)->imap_max_errors) {
        reply(p, "-ERR Too many errors, closing");
        p->state = POP3_DONE;
        client_close(p->c);
    }
}

static void command_auth(struct pop3 *p, const char *verb, char *args)
{
    if (strcasecmp(verb, "USER") == 0)
        cmd_user(p, args);
    else if (strcasecmp(verb, "PASS") == 0)
        cmd_pass(p, args);
    else if (strcasecmp(verb, "AUTH") == 0)
        cmd_auth(p, args);
    else if (strcasecmp(verb, "STLS") == 0)
        cmd_stls(p);
    else
        bad_command(p, "Unknown command or not allowed before login");
}

static void command_transaction(struct pop3 *p, const char *verb, char *args)
{
    if (strcasecmp(verb, "STAT") == 0)
        cmd_stat(p);
    else if (strcasecmp(verb, "LIST") == 0)
        cmd_list(p, args, false);
    else if (strcasecmp(verb, "UIDL") == 0)
        cmd_list(p, args, true);
    else if (strcasecmp(verb, "RETR") == 0)
        cmd_retr(p, args, false);
    else if (strcasecmp(verb, "TOP") == 0)
        cmd_retr(p, args, true);
    else if (strcasecmp(verb, "DELE") == 0)
        cmd_dele(p, args);
    else if (strcasecmp(verb, "RSET") == 0)
        cmd_rset(p);
    else
        bad_command(p, "Unknown command");
}

static void command(struct pop3 *p, char *line)
{
    if (p->sasl_wait) {
        p->sasl_wait = false;
        auth_plain(p, line);
        return;
    }
    char *args = strchr(line, ' ');
    if (args != NULL)
        *args++ = '\0';
    else
        args = line + strlen(line);
    if (strcasecmp(line, "QUIT") == 0) {
        if (p->state == POP3_TRANSACTION) {
            run(p, JOB_UPDATE);
            return;
        }
        reply(p, "+OK Bye");
        p->state = POP3_DONE;
        client_close(p->c);
    } else if (strcasecmp(line, "CAPA") == 0) {
        cmd_capa(p);
    } else if (strcasecmp(line, "NOOP") == 0 && p->state == POP3_TRANSACTION) {
        reply(p, "+OK");
    } else if (p->state == POP3_AUTH) {
        command_auth(p, line, args);
    } else {
        command_transaction(p, line, args);
    }
}

static void pop3_input(void *arg)
{
    struct pop3 *p = arg;
    size_t len;
    while (p->state != POP3_DONE && !client_busy(p->c)) {
        enum lr_result r = linereader_next(&p->lr, client_input(p->c), p->line, &len);
        if (r == LR_MORE)
            return;
        if (r == LR_TOOLONG) {
            p->sasl_wait = false;
            bad_command(p, "Line too long");
            continue;
        }
        if (strlen(p->line) != len) {
            bad_command(p, "NUL in command");
            continue;
        }
        command(p, p->line);
        explicit_bzero(p->line, len); /* it may have held a password */
    }
}

/* ---- the session --------------------------------------------------------------------- */

static void *pop3_start(struct client *c)
{
    struct pop3 *p = sm_calloc(1, sizeof *p);
    p->c = c;
    size_t max = client_cfg(c)->imap_max_line;
    if (max > POP3_LINE_MAX)
        max = POP3_LINE_MAX;
    linereader_init(&p->lr, max);
    p->line = sm_malloc(max);
    p->job_out = evbuffer_new();
    reply(p, "+OK sealmail POP3 ready");
    return p;
}

static void pop3_tls_ready(void *arg)
{
    pop3_input(arg);
}

static void pop3_timeout(void *arg)
{
    struct pop3 *p = arg;
    reply(p, "-ERR Disconnected for inactivity");
    p->state = POP3_DONE;
    client_close(p->c);
}

static void pop3_changed(void *arg)
{
    (void)arg; /* the maildrop is fixed for the session (RFC 1939 §8) */
}

static void pop3_free(void *arg)
{
    struct pop3 *p = arg;
    evbuffer_free(p->job_out);
    free(p->msgs);
    free(p->line);
    free(p);
}

const struct client_proto pop3_proto = {
    .name = "pop3",
    .start = pop3_start,
    .input = pop3_input,
    .tls_ready = pop3_tls_ready,
    .timeout = pop3_timeout,
    .changed = pop3_changed,
    .free = pop3_free,
};
