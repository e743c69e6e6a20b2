/* session.c — the IMAP connection state machine (see imap.h).
 *
 * Input is read by the command reader (parse.h) until a complete command
 * is there; commands before login and the ones that need no store run at
 * once; the rest run as a job on the worker pool with the store locked
 * (run_job).  Replies are built in s->out and handed to the connection
 * when the loop has them.  A job's tagged reply goes to tagged_out first,
 * so that the untagged updates of the final sync come before it. */
#include <event2/buffer.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "access/sasl.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/mem.h"
#include "imap/session.h"
#include "net/deflate.h"

#define IMAP_CAPS_COMMON "IMAP4rev1 IMAP4rev2 LITERAL- SASL-IR ID ENABLE IDLE"
#define ZIN_MAX (256 * 1024) /* inflated input held at once (a bomb waits, it does not grow) */

static struct evbuffer *tagged_out(struct imap *s);

/* ---- replies ---------------------------------------------------------------- */

void imap_printf(struct imap *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(s->out, fmt, ap);
    va_end(ap);
}

void imap_tagged(struct imap *s, const char *status, const char *fmt, ...)
{
    struct evbuffer *out = tagged_out(s);
    va_list ap;
    evbuffer_add_printf(out, "%s %s ", s->cmd != NULL ? s->cmd->tag : s->pending_tag, status);
    va_start(ap, fmt);
    evbuffer_add_vprintf(out, fmt, ap);
    va_end(ap);
    evbuffer_add(out, "\r\n", 2);
}

void imap_put_string(struct imap *s, const char *str, size_t len)
{
    if (str == NULL) {
        evbuffer_add(s->out, "NIL", 3);
        return;
    }
    bool quoted = len <= 1024;
    for (size_t i = 0; quoted && i < len; i++) {
        unsigned char ch = (unsigned char)str[i];
        quoted = ch != '\r' && ch != '\n' && ch != '\0' && (ch < 0x80 || s->utf8);
    }
    if (!quoted) {
        evbuffer_add_printf(s->out, "{%zu}\r\n", len);
        evbuffer_add(s->out, str, len);
        return;
    }
    evbuffer_add(s->out, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        if (str[i] == '"' || str[i] == '\\')
            evbuffer_add(s->out, "\\", 1);
        evbuffer_add(s->out, &str[i], 1);
    }
    evbuffer_add(s->out, "\"", 1);
}

void imap_put_mailbox(struct imap *s, const char *utf8_name)
{
    if (s->utf8 || s->rev2) {
        imap_put_string(s, utf8_name, strlen(utf8_name));
        return;
    }
    struct sm_buf b;
    sm_buf_init(&b, 4 * MAILBOX_FOLDER_MAX + 16);
    if (imap_mutf7_encode(utf8_name, strlen(utf8_name), &b) == 0)
        imap_put_string(s, b.data ? (const char *)b.data : "", b.len);
    else
        imap_put_string(s, utf8_name, strlen(utf8_name));
    sm_buf_free(&b);
}

static const struct {
    unsigned bit;
    const char *name;
} system_flags[] = {
    {MAILBOX_SEEN, "\\Seen"},         {MAILBOX_ANSWERED, "\\Answered"},
    {MAILBOX_FLAGGED, "\\Flagged"},   {MAILBOX_DELETED, "\\Deleted"},
    {MAILBOX_DRAFT, "\\Draft"},
};

void imap_put_flags(struct imap *s, unsigned flags, const char *keywords)
{
    bool first = true;
    imap_printf(s, "(");
    for (size_t i = 0; i < sizeof system_flags / sizeof system_flags[0]; i++)
        if (flags & system_flags[i].bit) {
            imap_printf(s, "%s%s", first ? "" : " ", system_flags[i].name);
            first = false;
        }
    if ((flags & IMAP_FLAG_RECENT) && !s->rev2) { /* RFC 9051 has no \Recent */
        imap_printf(s, "%s\\Recent", first ? "" : " ");
        first = false;
    }
    if (keywords != NULL && keywords[0] != '\0')
        imap_printf(s, "%s%s", first ? "" : " ", keywords);
    imap_printf(s, ")");
}

void imap_store_failed(struct imap *s, int status, const char *error)
{
    switch (status) {
    case MAILBOX_EXISTS:
        imap_tagged(s, "NO", "[ALREADYEXISTS] %s", error);
        break;
    case MAILBOX_NONEXISTENT:
        imap_tagged(s, "NO", "[NONEXISTENT] %s", error);
        break;
    case MAILBOX_CANNOT:
        imap_tagged(s, "NO", "[CANNOT] %s", error);
        break;
    case MAILBOX_OVERQUOTA:
        imap_tagged(s, "NO", "[OVERQUOTA] %s", error);
        break;
    default:
        log_warn("%016" PRIx64 " imap store-error=\"%s\"", client_id(s->c), error);
        imap_tagged(s, "NO", "[SERVERBUG] %s", error);
        break;
    }
}

int imap_mailbox_arg(struct imap *s, const char *name, char *out)
{
    size_t len = strlen(name);
    if (s->utf8 || s->rev2) {
        if (!imap_utf8_valid(name, len) || len > MAILBOX_FOLDER_MAX) {
            imap_tagged(s, "BAD", "Invalid mailbox name");
            return -1;
        }
        memcpy(out, name, len + 1);
        return 0;
    }
    struct sm_buf b;
    sm_buf_init(&b, MAILBOX_FOLDER_MAX);
    int r = imap_mutf7_decode(name, len, &b);
    if (r == 0 && b.len <= MAILBOX_FOLDER_MAX) {
        memcpy(out, b.data ? (const char *)b.data : "", b.len);
        out[b.len] = '\0';
    }
    sm_buf_free(&b);
    if (r < 0 || b.len > MAILBOX_FOLDER_MAX) {
        imap_tagged(s, "BAD", "Invalid modified UTF-7 mailbox name");
        return -1;
    }
    return 0;
}

int imap_flags_arg(struct imap *s, const char **flags, size_t n, unsigned *bits, char *kw)
{
    size_t kwlen = 0;
    *bits = 0;
    kw[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        bool system = false;
        for (size_t k = 0; k < sizeof system_flags / sizeof system_flags[0]; k++)
            if (strcasecmp(flags[i], system_flags[k].name) == 0) {
                *bits |= system_flags[k].bit;
                system = true;
            }
        if (system)
            continue;
        size_t len = strlen(flags[i]);
        if (flags[i][0] == '\\' || len > MAILBOX_KEYWORD_MAX ||
            kwlen + len + 1 > MAILBOX_KEYWORDS_TEXT_MAX) {
            imap_tagged(s, "BAD", "Invalid flag %s", flags[i][0] == '\\' ? "name" : "list");
            return -1;
        }
        if (kwlen > 0)
            kw[kwlen++] = ' ';
        memcpy(kw + kwlen, flags[i], len + 1);
        kwlen += len;
    }
    return 0;
}

/* ---- output -------------------------------------------------------------------- */

static struct evbuffer *tagged_out(struct imap *s)
{
    return s->in_job ? s->tagged : s->out;
}

static void flush(struct imap *s)
{
    if (s->zip == NULL) {
        evbuffer_add_buffer(client_output(s->c), s->out);
        return;
    }
    if (evbuffer_get_length(s->out) > 0 &&
        deflate_pair_deflate(s->zip, s->out, client_output(s->c)) < 0) {
        log_warn("%016" PRIx64 " imap deflate-failed", client_id(s->c));
        evbuffer_drain(s->out, evbuffer_get_length(s->out));
        s->state = IMAP_LOGOUT;
        client_close(s->c);
    }
}

/* What the reader reads: the connection's input, or its inflated form. */
static struct evbuffer *input(struct imap *s)
{
    return s->zip != NULL ? s->zin : client_input(s->c);
}

/* ---- capabilities --------------------------------------------------------------- */

static void put_capabilities(struct imap *s)
{
    imap_printf(s, IMAP_CAPS_COMMON);
    if (s->state == IMAP_NOTAUTH) {
        if (client_tls_available(s->c) && !client_tls_active(s->c))
            imap_printf(s, " STARTTLS");
        imap_printf(s, client_plaintext_ok(s->c) ? " AUTH=PLAIN" : " LOGINDISABLED");
        return;
    }
    imap_printf(s, " UIDPLUS MOVE SPECIAL-USE NAMESPACE UNSELECT ESEARCH SEARCHRES CONDSTORE"
                   " QRESYNC QUOTA QUOTA=RES-STORAGE STATUS=SIZE UTF8=ACCEPT SORT SORT=DISPLAY"
                   " LIST-EXTENDED LIST-STATUS CHILDREN BINARY COMPRESS=DEFLATE"
                   " MULTIAPPEND CREATE-SPECIAL-USE"
                   " APPENDLIMIT=%" PRIu64,
                client_cfg(s->c)->imap_append_limit);
}

/* ---- jobs ------------------------------------------------------------------------- */

static void cmd_noop(struct imap *s, struct mailbox *mb)
{
    (void)mb;
    imap_tagged(s, "OK", "%s completed", imap_cmd_name(s->cmd->cmd));
}

static void cmd_idle(struct imap *s, struct mailbox *mb)
{
    (void)mb;
    snprintf(s->pending_tag, sizeof s->pending_tag, "%s", s->cmd->tag);
    imap_printf(s, "+ idling\r\n");
    s->idling = true;
}

typedef void imap_job_fn(struct imap *s, struct mailbox *mb);

static imap_job_fn *job_handler(enum imap_cmd cmd)
{
    switch (cmd) {
    case IMAP_CMD_NOOP: case IMAP_CMD_CHECK: return cmd_noop;
    case IMAP_CMD_IDLE: return cmd_idle;
    case IMAP_CMD_SELECT: case IMAP_CMD_EXAMINE: return cmd_select;
    case IMAP_CMD_CREATE: return cmd_create;
    case IMAP_CMD_DELETE: return cmd_delete;
    case IMAP_CMD_RENAME: return cmd_rename;
    case IMAP_CMD_SUBSCRIBE: case IMAP_CMD_UNSUBSCRIBE: return cmd_subscribe;
    case IMAP_CMD_LIST: case IMAP_CMD_LSUB: return cmd_list;
    case IMAP_CMD_STATUS: return cmd_status;
    case IMAP_CMD_APPEND: return cmd_append;
    case IMAP_CMD_GETQUOTA: case IMAP_CMD_GETQUOTAROOT: return cmd_quota;
    case IMAP_CMD_FETCH: return cmd_fetch;
    case IMAP_CMD_STORE: return cmd_store;
    case IMAP_CMD_COPY: case IMAP_CMD_MOVE: return cmd_copy;
    case IMAP_CMD_EXPUNGE: return cmd_expunge;
    case IMAP_CMD_CLOSE: return cmd_close;
    case IMAP_CMD_SEARCH: case IMAP_CMD_SORT: return cmd_search;
    default: return NULL;
    }
}

/* RFC 9051 §7.5.1: no EXPUNGE while answering FETCH, STORE or SEARCH
 * (their UID forms may). */
static bool may_expunge(const struct imap_command *cmd)
{
    if (cmd == NULL)
        return true;
    switch (cmd->cmd) {
    case IMAP_CMD_FETCH: case IMAP_CMD_STORE: case IMAP_CMD_SEARCH: case IMAP_CMD_SORT:
        return cmd->uid;
    default:
        return true;
    }
}

static void job_work(void *arg)
{
    struct imap *s = arg;
    struct unlocked *u = client_mailbox(s->c);
    struct mailbox *mb = unlocked_store(u);
    s->in_job = true;
    if (s->cmd != NULL)
        job_handler(s->cmd->cmd)(s, mb);
    if (!s->job_more && s->state == IMAP_SELECTED)
        view_sync(s, mb, may_expunge(s->cmd));
    s->in_job = false;
    unlocked_store_done(u);
}

static void job_done(void *arg)
{
    struct imap *s = arg;
    evbuffer_add_buffer(s->out, s->tagged);
    flush(s);
    if (s->notify_others) {
        s->notify_others = false;
        client_notify_others(s->c);
    }
    if (!s->job_more)
        imap_command_free(&s->cmd);
}

/* From the submit on, s->out belongs to the worker until job_done():
 * what the loop wrote before goes out first. */
static void run_job(struct imap *s)
{
    flush(s);
    client_run(s->c, job_work, job_done);
}

/* ---- login ------------------------------------------------------------------------- */

static void login_done(void *arg, enum client_login_result r)
{
    struct imap *s = arg;
    switch (r) {
    case CLIENT_LOGIN_OK:
        s->state = IMAP_AUTH;
        imap_reader_set_trusted(s->reader, true);
        imap_printf(s, "%s OK [CAPABILITY ", s->pending_tag);
        put_capabilities(s);
        imap_printf(s, "] Logged in\r\n");
        break;
    case CLIENT_LOGIN_BAD:
        imap_printf(s, "%s NO [AUTHENTICATIONFAILED] Authentication failed\r\n", s->pending_tag);
        break;
    case CLIENT_LOGIN_BLOCKED:
        imap_printf(s, "* BYE Too many failed logins from your network, try later\r\n");
        s->state = IMAP_LOGOUT;
        flush(s);
        client_close(s->c);
        return;
    case CLIENT_LOGIN_TOO_MANY:
        imap_printf(s, "%s NO [LIMIT] Too many sessions for this mailbox\r\n", s->pending_tag);
        break;
    case CLIENT_LOGIN_FAILED:
        imap_printf(s, "%s NO [UNAVAILABLE] Cannot open the mailbox, try again later\r\n",
                    s->pending_tag);
        break;
    }
    flush(s);
}

static bool plaintext_refused(struct imap *s)
{
    if (client_plaintext_ok(s->c))
        return false;
    imap_printf(s, "%s NO [PRIVACYREQUIRED] Use STARTTLS before logging in\r\n", s->pending_tag);
    return true;
}

static void auth_plain(struct imap *s, const char *response)
{
    struct sasl_plain sp;
    const char *error;
    if (strcmp(response, "*") == 0) {
        imap_printf(s, "%s BAD Authentication cancelled\r\n", s->pending_tag);
        return;
    }
    if (sasl_plain_decode(response, &sp, &error) < 0) {
        /* RFC 9051 §6.2.2: a response that does not decode is BAD */
        bool undecodable = strstr(error, "base64") != NULL;
        imap_printf(s, "%s %s %s\r\n", s->pending_tag,
                    undecodable ? "BAD" : "NO [AUTHENTICATIONFAILED]", error);
        return;
    }
    client_login(s->c, sp.authcid, sp.passwd, sp.passwd_len, login_done);
    sasl_plain_free(&sp);
}

static void cmd_authenticate(struct imap *s, struct imap_command *cmd)
{
    const struct imap_args_authenticate *a = &cmd->args.authenticate;
    if (strcmp(a->mechanism, "PLAIN") != 0) {
        imap_printf(s, "%s NO [CANNOT] Unsupported authentication mechanism\r\n", cmd->tag);
        return;
    }
    if (plaintext_refused(s))
        return;
    if (a->initial_response == NULL) {
        s->auth_wait = true;
        imap_printf(s, "+ \r\n");
        return;
    }
    auth_plain(s, a->initial_response);
}

static void cmd_login(struct imap *s, struct imap_command *cmd)
{
    struct imap_args_login *a = &cmd->args.login;
    if (!plaintext_refused(s))
        client_login(s->c, a->user, a->password, strlen(a->password), login_done);
    explicit_bzero((char *)(uintptr_t)a->password, strlen(a->password));
}

/* ---- commands run on the loop ---------------------------------------------------- */

static void cmd_capability(struct imap *s, struct imap_command *cmd)
{
    imap_printf(s, "* CAPABILITY ");
    put_capabilities(s);
    imap_printf(s, "\r\n%s OK CAPABILITY completed\r\n", cmd->tag);
}

static void cmd_starttls(struct imap *s, struct imap_command *cmd)
{
    if (client_tls_active(s->c) || !client_tls_available(s->c)) {
        imap_printf(s, "%s BAD %s\r\n", cmd->tag,
                    client_tls_active(s->c) ? "TLS is active already" : "TLS is not available");
        return;
    }
    /* RFC 9051 §6.2.1: what was pipelined after STARTTLS is not acted on */
    struct evbuffer *in = client_input(s->c);
    evbuffer_drain(in, evbuffer_get_length(in));
    imap_printf(s, "%s OK Begin TLS negotiation now\r\n", cmd->tag);
    flush(s);
    client_starttls(s->c);
}

static void cmd_enable(struct imap *s, struct imap_command *cmd)
{
    const struct imap_args_enable *a = &cmd->args.enable;
    imap_printf(s, "* ENABLED");
    for (size_t i = 0; i < a->n_caps; i++) {
        const char *cap = a->caps[i];
        bool *flag = strcmp(cap, "CONDSTORE") == 0      ? &s->condstore
                     : strcmp(cap, "QRESYNC") == 0      ? &s->qresync
                     : strcmp(cap, "UTF8=ACCEPT") == 0  ? &s->utf8
                     : strcmp(cap, "IMAP4REV2") == 0    ? &s->rev2
                                                        : NULL;
        if (flag == NULL || *flag)
            continue;
        *flag = true;
        imap_printf(s, " %s", strcmp(cap, "IMAP4REV2") == 0 ? "IMAP4rev2" : cap);
    }
    if (s->qresync)
        s->condstore = true;
    imap_printf(s, "\r\n%s OK ENABLE completed\r\n", cmd->tag);
}

static void cmd_id(struct imap *s, struct imap_command *cmd)
{
    imap_printf(s, "* ID (\"name\" \"sealmail\")\r\n%s OK ID completed\r\n", cmd->tag);
}

static void cmd_namespace(struct imap *s, struct imap_command *cmd)
{
    imap_printf(s, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n%s OK NAMESPACE completed\r\n",
                cmd->tag);
}

static void cmd_logout(struct imap *s, struct imap_command *cmd)
{
    imap_printf(s, "* BYE Logging out\r\n%s OK LOGOUT completed\r\n", cmd->tag);
    s->state = IMAP_LOGOUT;
    flush(s);
    client_close(s->c);
}

/* RFC 4978: the tagged OK is the last thing sent uncompressed; whatever
 * the client sends after the command is compressed already. */
static void cmd_compress(struct imap *s, struct imap_command *cmd)
{
    if (s->zip != NULL) {
        imap_printf(s, "%s NO [COMPRESSIONACTIVE] DEFLATE is active already\r\n", cmd->tag);
        return;
    }
    if (strcmp(cmd->args.compress.mechanism, "DEFLATE") != 0) {
        imap_printf(s, "%s BAD Unknown compression mechanism\r\n", cmd->tag);
        return;
    }
    struct deflate_pair *zip = deflate_pair_new();
    if (zip == NULL) {
        imap_printf(s, "%s NO [SERVERBUG] Cannot start compression\r\n", cmd->tag);
        return;
    }
    imap_printf(s, "%s OK DEFLATE active\r\n", cmd->tag);
    flush(s);
    s->zip = zip;
    s->zin = evbuffer_new();
}

static void cmd_unselect(struct imap *s, struct imap_command *cmd)
{
    view_close(s);
    s->state = IMAP_AUTH;
    imap_printf(s, "%s OK UNSELECT completed\r\n", cmd->tag);
}

/* ---- dispatch ----------------------------------------------------------------------- */

static void bad(struct imap *s, const char *tag, const char *status, const char *text)
{
    imap_printf(s, "%s %s %s\r\n", tag, status, text);
    if (strcmp(status, "BAD") == 0 && ++s->errors >= client_cfg(s->c)->imap_max_errors) {
        imap_printf(s, "* BYE Too many invalid commands\r\n");
        s->state = IMAP_LOGOUT;
        flush(s);
        client_close(s->c);
    }
}

/* Commands valid in any state, answered on the loop. */
static bool run_anytime(struct imap *s, struct imap_command *cmd)
{
    switch (cmd->cmd) {
    case IMAP_CMD_CAPABILITY: cmd_capability(s, cmd); return true;
    case IMAP_CMD_LOGOUT: cmd_logout(s, cmd); return true;
    case IMAP_CMD_ID: cmd_id(s, cmd); return true;
    default: return false;
    }
}

static void run_notauth(struct imap *s, struct imap_command *cmd)
{
    snprintf(s->pending_tag, sizeof s->pending_tag, "%s", cmd->tag);
    switch (cmd->cmd) {
    case IMAP_CMD_NOOP: imap_printf(s, "%s OK NOOP completed\r\n", cmd->tag); break;
    case IMAP_CMD_STARTTLS: cmd_starttls(s, cmd); break;
    case IMAP_CMD_LOGIN: cmd_login(s, cmd); break;
    case IMAP_CMD_AUTHENTICATE: cmd_authenticate(s, cmd); break;
    case IMAP_CMD_ENABLE: bad(s, cmd->tag, "BAD", "Log in first"); break;
    default: bad(s, cmd->tag, "BAD", "Command not valid before login"); break;
    }
}

static bool needs_selected(enum imap_cmd cmd)
{
    switch (cmd) {
    case IMAP_CMD_CHECK: case IMAP_CMD_CLOSE: case IMAP_CMD_UNSELECT: case IMAP_CMD_EXPUNGE:
    case IMAP_CMD_SEARCH: case IMAP_CMD_SORT: case IMAP_CMD_FETCH: case IMAP_CMD_STORE:
    case IMAP_CMD_COPY: case IMAP_CMD_MOVE:
        return true;
    default:
        return false;
    }
}

/* Takes ownership of cmd. */
static void run_authenticated(struct imap *s, struct imap_command *cmd)
{
    switch (cmd->cmd) {
    case IMAP_CMD_ENABLE: cmd_enable(s, cmd); goto done;
    case IMAP_CMD_NAMESPACE: cmd_namespace(s, cmd); goto done;
    case IMAP_CMD_STARTTLS: case IMAP_CMD_LOGIN: case IMAP_CMD_AUTHENTICATE:
        bad(s, cmd->tag, "BAD", "Already logged in");
        goto done;
    case IMAP_CMD_SETQUOTA:
        imap_printf(s, "%s NO [NOPERM] Quotas are set by the operator\r\n", cmd->tag);
        goto done;
    case IMAP_CMD_COMPRESS:
        cmd_compress(s, cmd);
        goto done;
    default:
        break;
    }
    if (needs_selected(cmd->cmd) && s->state != IMAP_SELECTED) {
        bad(s, cmd->tag, "BAD", "No mailbox selected");
        goto done;
    }
    if (cmd->cmd == IMAP_CMD_UNSELECT) {
        cmd_unselect(s, cmd);
        goto done;
    }
    if (job_handler(cmd->cmd) == NULL) {
        bad(s, cmd->tag, "BAD", "Unknown command");
        goto done;
    }
    s->cmd = cmd;
    run_job(s);
    return;
done:
    imap_command_free(&cmd);
}

static void command(struct imap *s, struct imap_raw *raw)
{
    struct imap_command *cmd;
    const char *error;
    int r = imap_parse(raw, &cmd, &error);
    imap_raw_free(&raw);
    if (r < 0) {
        bad(s, cmd->tag, "BAD", error);
        imap_command_free(&cmd);
        return;
    }
    if (run_anytime(s, cmd)) {
        imap_command_free(&cmd);
        return;
    }
    if (s->state == IMAP_NOTAUTH) {
        run_notauth(s, cmd);
        imap_command_free(&cmd);
        return;
    }
    run_authenticated(s, cmd);
}

/* IDLE: only "DONE" ends it (RFC 2177).  Each step returns whether it
 * made progress (so the caller tries again). */
static bool idle_input(struct imap *s)
{
    const char *line;
    size_t len;
    int r = imap_reader_line(s->reader, input(s), &line, &len);
    if (r == 0)
        return false;
    s->idling = false;
    if (r == 1 && strcasecmp(line, "DONE") == 0)
        imap_printf(s, "%s OK IDLE terminated\r\n", s->pending_tag);
    else
        bad(s, s->pending_tag, "BAD", "Expected DONE");
    return true;
}

static bool auth_input(struct imap *s)
{
    const char *line;
    size_t len;
    int r = imap_reader_line(s->reader, input(s), &line, &len);
    if (r == 0)
        return false;
    s->auth_wait = false;
    if (r < 0) {
        imap_printf(s, "%s BAD Response too long\r\n", s->pending_tag);
        return true;
    }
    auth_plain(s, line);
    explicit_bzero((char *)(uintptr_t)line, len);
    return true;
}

static bool reader_step(struct imap *s)
{
    switch (imap_reader_read(s->reader, input(s))) {
    case IMAP_READ_MORE:
        return false;
    case IMAP_READ_CONTINUE:
        imap_printf(s, "+ Ready for literal data\r\n");
        return true;
    case IMAP_READ_COMMAND:
        command(s, imap_reader_take(s->reader));
        return true;
    default: {
        const struct imap_read_error *e = imap_reader_error(s->reader);
        bad(s, e->tag, e->status, e->text);
        if (e->close && s->state != IMAP_LOGOUT) {
            imap_printf(s, "* BYE Cannot continue\r\n");
            s->state = IMAP_LOGOUT;
            flush(s);
            client_close(s->c);
        }
        return true;
    }
    }
}

/* Inflate what fits; returns the plain bytes added, or -1 after closing
 * on invalid data. */
static long inflate_input(struct imap *s)
{
    size_t before = evbuffer_get_length(s->zin);
    if (deflate_pair_inflate(s->zip, client_input(s->c), s->zin, ZIN_MAX) == 0)
        return (long)(evbuffer_get_length(s->zin) - before);
    log_info("%016" PRIx64 " imap inflate-failed client=%s", client_id(s->c),
             client_log_addr(s->c));
    imap_printf(s, "* BYE Invalid compressed data\r\n");
    flush(s);
    s->state = IMAP_LOGOUT;
    client_close(s->c);
    return -1;
}

static void imap_input(void *arg)
{
    struct imap *s = arg;
    if (s->job_more) {
        /* a sliced FETCH: the next slice when the peer has read the last */
        if (client_output_pending(s->c) < 256 * 1024)
            run_job(s);
        return;
    }
    bool progress = true;
    while (progress && s->state != IMAP_LOGOUT && !client_busy(s->c)) {
        long inflated = 0;
        if (s->zip != NULL && (inflated = inflate_input(s)) < 0)
            return;
        size_t before = evbuffer_get_length(input(s));
        if (s->idling)
            progress = idle_input(s);
        else if (s->auth_wait)
            progress = auth_input(s);
        else
            progress = reader_step(s);
        /* a reader discarding a long line says "more" yet took input: go on
         * while input is consumed or the compressed input yields more */
        progress = progress || inflated > 0 || evbuffer_get_length(input(s)) < before;
        /* a step that started a job gave s->out to the worker (run_job());
         * moving it from here too was a data race (chains freed under the
         * worker: a crash under load, found by bench/imap with ASan) */
        if (!client_busy(s->c))
            flush(s);
    }
}

/* ---- the session ---------------------------------------------------------------------- */

static int literal_fd(void *ctx, uint64_t size)
{
    (void)ctx;
    (void)size;
    return memfd_create("imap-append", MFD_CLOEXEC);
}

static void *imap_start(struct client *c)
{
    struct imap *s = sm_calloc(1, sizeof *s);
    const struct sm_config *cfg = client_cfg(c);
    s->c = c;
    s->out = evbuffer_new();
    s->tagged = evbuffer_new();
    struct imap_reader_limits l;
    imap_reader_limits_default(&l);
    l.max_line = cfg->imap_max_line;
    l.max_command = cfg->imap_max_command;
    l.max_literal = cfg->imap_append_limit;
    s->reader = imap_reader_new(&l, literal_fd, s);
    imap_reader_set_trusted(s->reader, false); /* until login (parse.h) */
    imap_printf(s, "* OK [CAPABILITY ");
    put_capabilities(s);
    imap_printf(s, "] sealmail IMAP ready\r\n");
    flush(s);
    return s;
}

static void imap_tls_ready(void *arg)
{
    imap_input(arg);
}

static void imap_timeout(void *arg)
{
    struct imap *s = arg;
    imap_printf(s, "* BYE Disconnected for inactivity\r\n");
    s->state = IMAP_LOGOUT;
    flush(s);
    client_close(s->c);
}

/* Another session or a delivery changed the mailbox: an idling client
 * hears at once; others at their next command. */
static void imap_changed(void *arg)
{
    struct imap *s = arg;
    if (s->idling && !client_busy(s->c) && s->state == IMAP_SELECTED)
        run_job(s);
}

static void imap_free(void *arg)
{
    struct imap *s = arg;
    imap_command_free(&s->cmd);
    imap_reader_free(&s->reader);
    view_close(s);
    uidmap_clear(&s->job_uids); /* a sliced FETCH the client left in the middle */
    free(s->saved);
    deflate_pair_free(&s->zip);
    if (s->zin != NULL)
        evbuffer_free(s->zin);
    evbuffer_free(s->out);
    evbuffer_free(s->tagged);
    free(s);
}

const struct client_proto imap_proto = {
    .name = "imap",
    .start = imap_start,
    .input = imap_input,
    .tls_ready = imap_tls_ready,
    .timeout = imap_timeout,
    .changed = imap_changed,
    .free = imap_free,
};
