/* inbound.c — one SMTP connection: conn + engine + spool (see inbound.h).
 *
 * Lifetime: an inbound lives from accept until its connection reports
 * CONN_CLOSED, CONN_TIMEOUT (after the engine's 421) or CONN_ERROR.  A
 * spool commit may complete after that, so its callback carries the
 * session id and looks the session up; a result for a session that is gone
 * is dropped (the message is durable either way, and queued is told). */
#include "smtp/inbound.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "core/ipc.h"
#include "core/log.h"
#include "core/mem.h"
#include "mailauth/check.h"
#include "net/conn.h"
#include "net/listener.h"
#include "net/peerlimit.h"
#include "net/tls.h"
#include "smtp/server.h"
#include "smtp/submission.h"
#include "store/spool.h"

#define INBOUND_IN_MAX (256 * 1024)

struct inbound {
    struct inbound *prev, *next;
    uint64_t id;
    struct inbound_env *env;
    enum inbound_kind kind;
    struct conn *conn;
    struct smtp_session *smtp;
    struct spool_writer *writer;
    struct authcheck *auth;        /* the sender checks of the transaction */
    struct submission *sub;        /* the author check of a submitted message */
    char *mail_from;               /* the transaction's sender, for recipient policy */
    struct event *lifetime;        /* session_timeout */
    struct sockaddr_storage peer;
    char client[64];               /* real address: envelope and Received header */
    char client_log[LOG_ADDR_LEN]; /* anonymised unless configured otherwise */
};

/* The commit callback's argument: an id, never the session pointer. */
struct inbound_commit {
    struct inbound_env *env;
    uint64_t id;
};

static struct inbound *inbound_find(struct inbound_env *env, uint64_t id)
{
    for (struct inbound *in = env->all; in != NULL; in = in->next)
        if (in->id == id)
            return in;
    return NULL;
}

static void inbound_free(struct inbound *in)
{
    struct inbound_env *env = in->env;
    if (in->prev)
        in->prev->next = in->next;
    else
        env->all = in->next;
    if (in->next)
        in->next->prev = in->prev;
    env->n_sessions--;
    peerlimit_release(env->peers, (struct sockaddr *)&in->peer);
    smtp_session_free(&in->smtp); /* aborts a message being written */
    spool_writer_abort(&in->writer);
    authcheck_free(&in->auth);
    submission_free(&in->sub);
    free(in->mail_from);
    conn_free(&in->conn);
    if (in->lifetime)
        event_free(in->lifetime);
    free(in);
}

/* ---- engine callbacks ---------------------------------------------------- */

static int domain_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool domain_hosted(struct inbound_env *env, const char *domain)
{
    if (bsearch(&domain, env->domains, env->n_domains, sizeof(char *), domain_cmp) != NULL)
        return true;
    if (env->refresh_domains == NULL)
        return false;
    env->refresh_domains(env->owner);
    return bsearch(&domain, env->domains, env->n_domains, sizeof(char *), domain_cmp) != NULL;
}

/* First the domain (no relaying, except for an authenticated user, whose
 * mail to other domains queued sends on), then the address itself.
 * <postmaster> without a domain (RFC 5321 §4.5.1) goes straight to the
 * lookup. */
static const char *in_check_rcpt(void *ctx, const struct smtp_path *rcpt)
{
    struct inbound *in = ctx;
    struct inbound_env *env = in->env;
    bool hosted = rcpt->domain[0] == '\0' || domain_hosted(env, rcpt->domain);
    if (!hosted && smtp_session_auth_user(in->smtp) != NULL)
        return NULL;
    if (!hosted)
        return "550 5.7.1 Relaying denied: recipient domain is not hosted here";
    return env->check_address != NULL
               ? env->check_address(env->owner, rcpt->address,
                                    in->mail_from != NULL ? in->mail_from : "")
               : NULL;
}

static int in_data_begin(void *ctx, const struct smtp_tx_info *tx, char *queue_id)
{
    struct inbound *in = ctx;
    const char *error;
    struct spool_envelope env = {
        .helo = (char *)(uintptr_t)tx->helo,
        .client = in->client,
        .mail_from = (char *)(uintptr_t)tx->mail_from,
        .body_type = (char *)(uintptr_t)tx->body_type,
        .smtputf8 = tx->smtputf8,
        .rcpts = (char **)(uintptr_t)tx->rcpts,
        .n_rcpts = tx->n_rcpts,
        .received = tx->started,
    };
    in->writer = spool_writer_new(in->env->spool, &env, &error);
    if (in->writer == NULL) {
        log_warn("%016" PRIx64 " smtp spool-error=\"%s\"", in->id, error);
        return -1;
    }
    snprintf(queue_id, SMTP_QUEUE_ID_MAX, "%s", spool_writer_id(in->writer));
    return 0;
}

static void in_tx_begin(void *ctx, const char *helo, const char *mail_from)
{
    struct inbound *in = ctx;
    authcheck_free(&in->auth);
    submission_free(&in->sub);
    free(in->mail_from);
    in->mail_from = sm_strdup(mail_from);
    if (smtp_session_auth_user(in->smtp) != NULL) {
        /* our own user's mail: its author is checked, not its origin */
        in->sub = submission_new();
        return;
    }
    if (in->env->auth != NULL)
        in->auth = authcheck_new(in->env->auth, (const struct sockaddr *)&in->peer, helo,
                                 mail_from);
}

static void in_tx_end(void *ctx)
{
    struct inbound *in = ctx;
    authcheck_free(&in->auth);
    submission_free(&in->sub);
}

static int in_spool_write(void *ctx, const void *p, size_t n)
{
    struct inbound *in = ctx;
    const char *error;
    if (spool_writer_write(in->writer, p, n, &error) < 0) {
        log_warn("%016" PRIx64 " smtp spool-error=\"%s\"", in->id, error);
        return -1;
    }
    return 0;
}

/* Message bytes pass the sender checks (which may drop forged
 * Authentication-Results fields) on their way to the spool. */
static int in_data_write(void *ctx, const void *p, size_t n)
{
    struct inbound *in = ctx;
    if (in->auth != NULL)
        return authcheck_write(in->auth, p, n, in_spool_write, in);
    if (in->sub != NULL)
        return submission_write(in->sub, p, n, in_spool_write, in);
    return in_spool_write(in, p, n);
}

/* Tell queued (through the master) about the messages committed since
 * the last call, in one IPC message. */
static void ready_flush(struct inbound_env *env)
{
    if (env->ready.len > 0 && ipc_send(env->ctl_fd, &env->ready) < 0)
        log_warn("smtpd ipc-send-failed messages-untold=yes"); /* queued's rescan finds them */
    ipc_init(&env->ready, IPC_SPOOL_READY);
}

static void ready_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    ready_flush(arg);
}

/* A group commit completes many messages in one loop turn: their ids are
 * gathered and sent once that turn is over, so the master and queued
 * wake once per batch instead of once per message. */
static void ready_add(struct inbound_env *env, const char *queue_id)
{
    if (env->ready_ev == NULL) {
        env->ready_ev = event_new(env->base, -1, 0, ready_flush_cb, env);
        ipc_init(&env->ready, IPC_SPOOL_READY);
    }
    if (!ipc_str_fits(&env->ready, queue_id))
        ready_flush(env);
    ipc_add_str(&env->ready, queue_id);
    if (!event_pending(env->ready_ev, EV_TIMEOUT, NULL))
        event_active(env->ready_ev, EV_TIMEOUT, 0);
}

static void in_committed(void *arg, bool ok, const char *queue_id)
{
    struct inbound_commit *c = arg;
    struct inbound_env *env = c->env;
    if (ok)
        ready_add(env, queue_id);
    struct inbound *in = inbound_find(env, c->id);
    free(c);
    if (in != NULL)
        smtp_session_commit_done(in->smtp, ok);
}

static void in_spool_commit(struct inbound *in)
{
    struct inbound_commit *c = sm_malloc(sizeof *c);
    c->env = in->env;
    c->id = in->id;
    struct spool_writer *w = in->writer;
    in->writer = NULL; /* the spool owns it now */
    spool_writer_commit(w, in_committed, c);
}

/* The checks are done: refuse, or store with their results as the
 * delivery note (Authentication-Results in front, Junk or not). */
static void in_verdict(void *arg, const struct authcheck_verdict *v)
{
    struct inbound *in = arg;
    const char *error;
    log_info("%016" PRIx64 " smtp auth %s action=%s", in->id, v->summary,
             v->action == AUTHCHECK_REJECT ? "reject"
             : v->action == AUTHCHECK_JUNK ? "junk"
                                           : "deliver");
    if (v->action == AUTHCHECK_REJECT) {
        spool_writer_abort(&in->writer);
        smtp_session_commit_refused(in->smtp, v->reply);
        return;
    }
    uint32_t flags = v->action == AUTHCHECK_JUNK ? SPOOL_F_JUNK : 0;
    if (spool_writer_set_note(in->writer, flags, v->header, v->header_len, &error) < 0)
        log_warn("%016" PRIx64 " smtp note-not-set error=\"%s\"", in->id, error);
    in_spool_commit(in);
}

static const char *in_author_owned(void *arg, const char *address)
{
    struct inbound *in = arg;
    const char *r = in->env->check_sender(in->env->owner, smtp_session_auth_user(in->smtp),
                                          address);
    if (r == NULL || r[0] == '4')
        return r;
    return "550 5.7.1 The From address is not one of yours";
}

static void in_data_commit(void *ctx)
{
    struct inbound *in = ctx;
    if (in->auth != NULL) {
        authcheck_finish(in->auth, in_verdict, in);
        return;
    }
    if (in->sub != NULL) {
        const char *refusal = submission_finish(in->sub, in_author_owned, in, in_spool_write, in);
        if (refusal != NULL) {
            spool_writer_abort(&in->writer);
            smtp_session_commit_refused(in->smtp, refusal);
            return;
        }
        log_info("%016" PRIx64 " smtp submitted", in->id);
    }
    in_spool_commit(in);
}

static void in_auth_check(void *ctx, const char *user, const char *password, size_t len)
{
    struct inbound *in = ctx;
    in->env->auth_check(in->env->owner, in->id, (const struct sockaddr *)&in->peer, user,
                        password, len);
}

void inbound_auth_done(struct inbound_env *env, uint64_t session, enum smtp_auth_result r)
{
    struct inbound *in = inbound_find(env, session);
    if (in != NULL)
        smtp_session_auth_done(in->smtp, r);
}

static const char *in_check_sender(void *ctx, const char *user, const struct smtp_path *from)
{
    struct inbound *in = ctx;
    if (from->address[0] == '\0')
        return "553 5.7.1 Submitted mail needs your address as the sender, not <>";
    return in->env->check_sender(in->env->owner, user, from->address);
}

static void in_data_abort(void *ctx)
{
    struct inbound *in = ctx;
    spool_writer_abort(&in->writer);
}

static void in_starttls(void *ctx)
{
    struct inbound *in = ctx;
    if (conn_starttls(in->conn, tls_server_ssl_new(in->env->tls)) < 0)
        conn_close(in->conn);
}

static void in_pause(void *ctx)
{
    conn_pause(((struct inbound *)ctx)->conn);
}

static void in_resume(void *ctx)
{
    conn_resume(((struct inbound *)ctx)->conn);
}

static void in_set_timeout(void *ctx, unsigned seconds)
{
    conn_set_timeout(((struct inbound *)ctx)->conn, seconds);
}

static void in_close(void *ctx)
{
    conn_close(((struct inbound *)ctx)->conn);
}

static const struct smtp_server_callbacks inbound_callbacks = {
    .check_rcpt = in_check_rcpt,
    .tx_begin = in_tx_begin,
    .tx_end = in_tx_end,
    .data_begin = in_data_begin,
    .data_write = in_data_write,
    .data_commit = in_data_commit,
    .data_abort = in_data_abort,
    .starttls = in_starttls,
    .pause = in_pause,
    .resume = in_resume,
    .set_timeout = in_set_timeout,
    .close = in_close,
    .auth_check = in_auth_check,
    .check_sender = in_check_sender,
};

/* ---- connection events ---------------------------------------------------- */

static void inbound_io(struct conn *c, enum conn_event ev, void *arg)
{
    struct inbound *in = arg;
    char desc[96];
    switch (ev) {
    case CONN_DATAIN:
    case CONN_DRAINED:
        smtp_session_input(in->smtp);
        return;
    case CONN_TLSREADY:
        tls_describe(conn_ssl(c), desc, sizeof desc);
        smtp_session_set_io(in->smtp, conn_input(c), conn_output(c));
        smtp_session_tls_ready(in->smtp, desc);
        smtp_session_input(in->smtp);
        return;
    case CONN_TIMEOUT:
        if (!smtp_session_closing(in->smtp)) {
            smtp_session_timeout(in->smtp);
            return; /* CONN_CLOSED follows once the 421 is flushed */
        }
        break;
    case CONN_CLOSED:
    case CONN_ERROR:
        break;
    }
    log_info("%016" PRIx64 " smtp disconnected client=%s%s", in->id, in->client_log,
             ev == CONN_ERROR ? " reason=error" : "");
    inbound_free(in);
}

static void inbound_lifetime(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct inbound *in = arg;
    log_info("%016" PRIx64 " smtp session-timeout", in->id);
    smtp_session_timeout(in->smtp);
}

/* Session ids only tie log lines together: a random start per process
 * and a step that visits every 64-bit value, instead of a getrandom()
 * system call per connection. */
static uint64_t next_session_id(void)
{
    static uint64_t base, count;
    if (base == 0 && getrandom(&base, sizeof base, 0) != sizeof base)
        sm_panic("getrandom failed");
    return base + 0x9e3779b97f4a7c15ull * ++count; /* odd step: a permutation */
}

/* Real client address as text, for the envelope and the trace header. */
static void peer_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
    const void *addr = ss->ss_family == AF_INET6
                           ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                           : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    if ((ss->ss_family != AF_INET && ss->ss_family != AF_INET6) ||
        inet_ntop(ss->ss_family, addr, out, (socklen_t)len) == NULL)
        snprintf(out, len, "unknown");
}

/* Refuse a connection over a limit with a 421, without a session. */
static void inbound_refuse(int fd, const struct inbound_env *env, const char *why)
{
    char reply[320];
    int n = snprintf(reply, sizeof reply, "421 4.7.0 %s Error: %s, try again later\r\n",
                     env->cfg->hostname, why);
    ssize_t w = send(fd, reply, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
    close(fd);
}

static struct inbound *inbound_new(struct inbound_env *env, int fd, enum inbound_kind kind,
                                   const struct sockaddr_storage *peer)
{
    struct inbound *in = sm_malloc(sizeof *in);
    in->id = next_session_id();
    in->env = env;
    in->kind = kind;
    in->peer = *peer;
    peer_text(peer, in->client, sizeof in->client);
    log_addr((const struct sockaddr *)peer, in->client_log);
    SSL *ssl = kind == INBOUND_SMTPS ? tls_server_ssl_new(env->tls) : NULL;
    in->conn = conn_new(env->base, fd, ssl, INBOUND_IN_MAX, inbound_io, in);
    const struct sm_config *cfg = env->cfg;
    struct smtp_session_params p = {
        .id = in->id,
        .hostname = cfg->hostname,
        .client_addr = in->client,
        .client_log = in->client_log,
        .max_line = cfg->smtp_max_line,
        .max_data_line = cfg->smtp_max_data_line,
        .max_message_size = cfg->smtp_max_message_size,
        .max_recipients = cfg->smtp_max_recipients,
        .max_errors = cfg->smtp_max_errors,
        .command_timeout = cfg->smtp_command_timeout,
        .data_timeout = cfg->smtp_data_timeout,
        .tls_available = env->tls != NULL,
        .tls_active = kind == INBOUND_SMTPS,
        .submission = kind == INBOUND_SUBMISSION,
        /* 465 is submission over TLS (RFC 8314); unauthenticated, it still
         * takes mail for hosted domains as port 25 does */
        .auth_offered = (kind == INBOUND_SUBMISSION || kind == INBOUND_SMTPS) &&
                        env->auth_check != NULL,
    };
    in->smtp = smtp_session_new(&p, &inbound_callbacks, in);
    smtp_session_set_io(in->smtp, conn_input(in->conn), conn_output(in->conn));
    struct timeval life = {cfg->smtp_session_timeout, 0};
    in->lifetime = evtimer_new(env->base, inbound_lifetime, in);
    evtimer_add(in->lifetime, &life);
    return in;
}

void inbound_accept(struct inbound_env *env, int fd, enum inbound_kind kind,
                    const struct sockaddr *sa, size_t salen)
{
    static const char *const kinds[] = {"smtp", "smtps", "submission"};
    struct sockaddr_storage peer = {0};
    memcpy(&peer, sa, salen < sizeof peer ? salen : sizeof peer);
    listener_unmap_v4(&peer); /* an IPv4 client is an IPv4 client, listener aside */
    if ((kind == INBOUND_SMTPS && env->tls == NULL) ||
        env->n_sessions >= env->cfg->smtp_max_connections) {
        inbound_refuse(fd, env, "too many connections");
        return;
    }
    if (!peerlimit_acquire(env->peers, (struct sockaddr *)&peer)) {
        char who[LOG_ADDR_LEN];
        log_info("smtp refused client=%s reason=per-client-limit",
                 log_addr((struct sockaddr *)&peer, who));
        inbound_refuse(fd, env, "too many connections from your address");
        return;
    }
    struct inbound *in = inbound_new(env, fd, kind, &peer);
    in->next = env->all;
    if (env->all)
        env->all->prev = in;
    env->all = in;
    env->n_sessions++;
    log_info("%016" PRIx64 " smtp connected client=%s service=%s", in->id, in->client_log,
             kinds[kind]);
    smtp_session_greet(in->smtp);
}

void inbound_shutdown_all(struct inbound_env *env)
{
    for (struct inbound *in = env->all; in != NULL; in = in->next)
        smtp_session_shutdown(in->smtp);
}

void inbound_close_all(struct inbound_env *env)
{
    while (env->all != NULL)
        inbound_free(env->all);
}

void inbound_env_done(struct inbound_env *env)
{
    if (env->ready_ev == NULL)
        return;
    ready_flush(env);
    event_free(env->ready_ev);
    env->ready_ev = NULL;
}

void inbound_set_domains(struct inbound_env *env, char **domains, size_t n)
{
    for (size_t i = 0; i < env->n_domains; i++)
        free(env->domains[i]);
    free(env->domains);
    if (n > 1)
        qsort(domains, n, sizeof *domains, domain_cmp);
    env->domains = domains;
    env->n_domains = n;
}
