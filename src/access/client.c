/* client.c — mailbox readers' connections (see client.h). */
#include "access/client.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "access/authguard.h"
#include "core/config.h"
#include "core/mem.h"
#include "core/workpool.h"
#include "crypto/seal.h"
#include "net/conn.h"
#include "net/listener.h"
#include "net/peerlimit.h"
#include "net/tls.h"
#include "store/directory.h"

#define CLIENT_IN_MAX (256 * 1024)

struct client {
    struct client *prev, *next;
    uint64_t id;
    struct client_env *env;
    const struct client_proto *proto;
    void *state;
    struct conn *conn;
    struct sockaddr_storage peer;
    char log_addr[LOG_ADDR_LEN];
    bool tls_active, closing, busy, dead;
    bool delaying;                 /* busy because of the login delay timer, not a job */
    struct unlocked *u;
    struct unlock_watch watch;
    /* the job out on the worker pool */
    void (*work)(struct client *c);
    void (*done)(struct client *c);
    void (*user_work)(void *state);
    void (*user_done)(void *state);
    /* a login in progress */
    char *address;
    char *password;                /* secret memory */
    size_t pwlen;
    enum unlock_result unlock_res;
    bool login_fast;               /* the open store's password hash spared Argon2id */
    struct unlocked *login_u;
    void (*login_done)(void *state, enum client_login_result r);
    struct event *delay_ev;
};

static uint64_t next_id(void)
{
    static uint64_t base, count;
    if (base == 0 && getrandom(&base, sizeof base, 0) != sizeof base)
        sm_panic("getrandom failed");
    return base + 0x9e3779b97f4a7c15ull * ++count;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void login_clear(struct client *c)
{
    free(c->address);
    c->address = NULL;
    seal_secret_free(&c->password);
    c->pwlen = 0;
}

static void client_free(struct client *c)
{
    struct client_env *env = c->env;
    if (c->prev)
        c->prev->next = c->next;
    else
        env->all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    env->n_clients--;
    peerlimit_release(env->peers, (struct sockaddr *)&c->peer);
    if (c->state != NULL)
        c->proto->free(c->state);
    if (c->u != NULL) {
        unlocked_unwatch(c->u, &c->watch);
        unlock_release(&c->u);
    }
    login_clear(c);
    if (c->delay_ev)
        event_free(c->delay_ev);
    conn_free(&c->conn);
    free(c);
}

/* ---- connection events --------------------------------------------------- */

static void client_io(struct conn *conn, enum conn_event ev, void *arg)
{
    struct client *c = arg;
    switch (ev) {
    case CONN_DATAIN:
    case CONN_DRAINED:
        if (!c->busy && !c->closing)
            c->proto->input(c->state);
        return;
    case CONN_TLSREADY:
        c->tls_active = true;
        c->proto->tls_ready(c->state);
        return;
    case CONN_TIMEOUT:
        if (!c->closing && !c->busy) {
            c->proto->timeout(c->state);
            return;
        }
        if (c->busy)
            return; /* the job ends soon; the timer fires again */
        break;
    case CONN_CLOSED:
    case CONN_ERROR:
        break;
    }
    (void)conn;
    log_info("%016" PRIx64 " %s disconnected client=%s%s", c->id, c->proto->name, c->log_addr,
             ev == CONN_ERROR ? " reason=error" : "");
    if (c->busy) {
        c->dead = true; /* freed when the job comes back */
        conn_free(&c->conn);
        return;
    }
    client_free(c);
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    return false;
}

static void refuse(int fd, const struct client_proto *proto, const char *why)
{
    char reply[200];
    int n = strcmp(proto->name, "imap") == 0
                ? snprintf(reply, sizeof reply, "* BYE %s\r\n", why)
                : snprintf(reply, sizeof reply, "-ERR [SYS/TEMP] %s\r\n", why);
    ssize_t w = send(fd, reply, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
    close(fd);
}

void client_accept(struct client_env *env, const struct client_proto *proto, bool implicit_tls,
                   int fd, const struct sockaddr *sa, size_t salen)
{
    struct sockaddr_storage peer = {0};
    memcpy(&peer, sa, salen < sizeof peer ? salen : sizeof peer);
    listener_unmap_v4(&peer);
    char who[LOG_ADDR_LEN];
    log_addr((struct sockaddr *)&peer, who);
    if (env->stopping || (implicit_tls && env->tls == NULL) ||
        env->n_clients >= env->cfg->imap_max_connections) {
        log_info("%s refused client=%s reason=limit", proto->name, who);
        refuse(fd, proto, "Too many connections, try again later");
        return;
    }
    if (!peerlimit_acquire(env->peers, (struct sockaddr *)&peer)) {
        log_info("%s refused client=%s reason=per-client-limit", proto->name, who);
        refuse(fd, proto, "Too many connections from your address");
        return;
    }
    struct client *c = sm_calloc(1, sizeof *c);
    c->id = next_id();
    c->env = env;
    c->proto = proto;
    c->peer = peer;
    memcpy(c->log_addr, who, sizeof who);
    c->tls_active = implicit_tls;
    c->conn = conn_new(env->base, fd, implicit_tls ? tls_server_ssl_new(env->tls) : NULL,
                       CLIENT_IN_MAX, client_io, c);
    c->next = env->all;
    if (env->all)
        env->all->prev = c;
    env->all = c;
    env->n_clients++;
    log_info("%016" PRIx64 " %s connected client=%s tls=%s", c->id, proto->name, c->log_addr,
             implicit_tls ? "implicit" : "no");
    conn_set_timeout(c->conn, env->cfg->imap_login_timeout);
    c->state = proto->start(c);
}

void client_close_all(struct client_env *env)
{
    struct client *c = env->all;
    while (c != NULL) {
        struct client *next = c->next;
        if (c->busy && !c->delaying) {
            c->dead = true;
            conn_free(&c->conn);
        } else {
            client_free(c);
        }
        c = next;
    }
}

/* ---- small accessors ------------------------------------------------------- */

uint64_t client_id(const struct client *c) { return c->id; }
const char *client_log_addr(const struct client *c) { return c->log_addr; }
const struct sm_config *client_cfg(const struct client *c) { return c->env->cfg; }
struct evbuffer *client_input(struct client *c) { return conn_input(c->conn); }
struct evbuffer *client_output(struct client *c) { return conn_output(c->conn); }
bool client_tls_active(const struct client *c) { return c->tls_active; }
bool client_tls_available(const struct client *c) { return c->env->tls != NULL; }
struct unlocked *client_mailbox(struct client *c) { return c->u; }
bool client_busy(const struct client *c) { return c->busy; }
size_t client_output_pending(struct client *c) { return conn_output_pending(c->conn); }
void client_set_timeout(struct client *c, unsigned seconds) { conn_set_timeout(c->conn, seconds); }

bool client_plaintext_ok(const struct client *c)
{
    return c->tls_active || (c->env->cfg->imap_plaintext_loopback && is_loopback(&c->peer));
}

void client_starttls(struct client *c)
{
    if (conn_starttls(c->conn, tls_server_ssl_new(c->env->tls)) < 0)
        client_close(c);
}

void client_close(struct client *c)
{
    c->closing = true;
    conn_close(c->conn);
}

/* ---- jobs ------------------------------------------------------------------ */

static void job_work(void *arg)
{
    struct client *c = arg;
    c->work(c);
}

static void job_done(void *arg)
{
    struct client *c = arg;
    c->busy = false;
    if (c->dead) {
        client_free(c);
        return;
    }
    c->done(c);
    if (!c->busy && !c->closing)
        conn_resume(c->conn); /* input waiting meanwhile is processed now */
}

static void submit(struct client *c, void (*work)(struct client *), void (*done)(struct client *))
{
    if (c->busy)
        sm_panic("client job while busy");
    c->busy = true;
    c->work = work;
    c->done = done;
    conn_pause(c->conn);
    workpool_submit(c->env->wp, work != NULL ? job_work : NULL, job_done, c);
}

static void user_work(struct client *c) { c->user_work(c->state); }
static void user_done(struct client *c) { c->user_done(c->state); }

void client_run(struct client *c, void (*work)(void *state), void (*done)(void *state))
{
    c->user_work = work;
    c->user_done = done;
    submit(c, user_work, user_done);
}

/* ---- login --------------------------------------------------------------- */

static void client_changed(void *arg)
{
    struct client *c = arg;
    if (!c->dead && !c->closing)
        c->proto->changed(c->state);
}

void client_notify_others(struct client *c)
{
    if (c->u != NULL)
        unlocked_notify(c->u, &c->watch);
}

static void login_work(struct client *c)
{
    c->unlock_res = unlock_login(c->env->registry, c->address, c->password, c->pwlen,
                                 &c->login_u, &c->login_fast);
}

static void login_finish(struct client *c)
{
    enum client_login_result r;
    switch (c->unlock_res) {
    case UNLOCK_OK:
        r = CLIENT_LOGIN_OK;
        authguard_succeeded(c->env->guard, (struct sockaddr *)&c->peer, c->address);
        c->u = c->login_u;
        c->login_u = NULL;
        c->watch.changed = client_changed;
        c->watch.arg = c;
        unlocked_watch(c->u, &c->watch);
        conn_set_timeout(c->conn, c->env->cfg->imap_idle_timeout);
        log_info("%016" PRIx64 " %s login mailbox=%s unlock=%s", c->id, c->proto->name,
                 unlocked_mailbox_id(c->u), c->login_fast ? "shared" : "argon2id");
        break;
    case UNLOCK_BAD_PASSWORD:
        r = CLIENT_LOGIN_BAD;
        authguard_failed(c->env->guard, (struct sockaddr *)&c->peer, c->address, now_ms());
        log_info("%016" PRIx64 " %s login-failed client=%s", c->id, c->proto->name, c->log_addr);
        break;
    case UNLOCK_TOO_MANY:
        r = CLIENT_LOGIN_TOO_MANY;
        break;
    default:
        r = CLIENT_LOGIN_FAILED;
        break;
    }
    login_clear(c);
    c->login_done(c->state, r);
}

static void blocked_finish(struct client *c)
{
    login_clear(c);
    log_info("%016" PRIx64 " %s login-blocked client=%s", c->id, c->proto->name, c->log_addr);
    c->login_done(c->state, CLIENT_LOGIN_BLOCKED);
}

static void login_delayed(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct client *c = arg;
    c->busy = c->delaying = false; /* handed from the timer to the job */
    if (c->dead) {
        client_free(c);
        return;
    }
    submit(c, login_work, login_finish);
}

void client_login(struct client *c, const char *address, const char *password, size_t pwlen,
                  void (*done)(void *state, enum client_login_result r))
{
    c->login_done = done;
    /* an account name longer than any address cannot exist: keep one byte
     * more than the longest (so it still does not) and pay the usual cost */
    c->address = sm_strndup(address, DIRECTORY_ADDRESS_MAX + 1);
    if (pwlen > KEYWRAP_PASSWORD_MAX)
        pwlen = KEYWRAP_PASSWORD_MAX + 1; /* longer than any password: wrong, same cost */
    c->password = seal_secret_alloc(pwlen + 1);
    memcpy(c->password, password, pwlen);
    c->password[pwlen] = '\0';
    c->pwlen = pwlen;
    int64_t delay = authguard_check(c->env->guard, (struct sockaddr *)&c->peer, address, now_ms());
    if (delay < 0) {
        submit(c, NULL, blocked_finish);
        return;
    }
    if (delay == 0) {
        submit(c, login_work, login_finish);
        return;
    }
    /* busy while the timer runs, so the connection is not freed under it */
    c->busy = c->delaying = true;
    conn_pause(c->conn);
    if (c->delay_ev == NULL)
        c->delay_ev = evtimer_new(c->env->base, login_delayed, c);
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    evtimer_add(c->delay_ev, &tv);
}
