/* master.c — the master process of `sealmail serve` (DESIGN.md §2).
 *
 * The master prepares the data directory, opens every listening socket,
 * and starts each role by re-executing its own binary with the sockets at
 * fixed descriptors.  Afterwards it only supervises:
 *   SIGCHLD  a child that dies unexpectedly is restarted, with a back-off
 *            when it keeps crashing;
 *   SIGHUP   the configuration is read again and, if valid, every child is
 *            replaced by a fresh one on the same sockets while the old one
 *            finishes its transactions (certificates and limits reload this
 *            way; listen addresses need a full restart);
 *   SIGTERM  children are told to finish within shutdown_grace, then
 *            killed; the master exits when they are all gone.
 * Child control channels carry small typed messages only (core/ipc.h);
 * IPC_SPOOL_READY from smtpd is forwarded to queued, IPC_MAILBOX_CHANGED
 * from queued to the roles that serve mailboxes. */
#include "daemon/master.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/ipc.h"
#include "core/log.h"
#include "core/mem.h"
#include "daemon/datadir.h"
#include "daemon/privsep.h"
#include "net/listener.h"

#define MAX_CHILDREN 80
#define KILL_MARGIN_SECONDS 5
#define RESTART_BACKOFF_MAX 30
#define FD_RESERVE 256 /* spool spares, listeners, logs, libraries */

struct master;

struct child {
    struct master *m;
    pid_t pid;
    const char *role;
    unsigned slot;          /* which worker of its role */
    int ctl_fd;
    struct event *ev;
    bool retiring;          /* replaced (reload) or told to stop: no restart */
    time_t started;
    unsigned crashes;       /* consecutive quick deaths, for the back-off */
};

struct master {
    struct sm_config cfg;
    const char *config_path;
    const char *exe;
    struct event_base *base;
    struct role_args fds;   /* the listening sockets, shared by all smtpd */
    struct child children[MAX_CHILDREN];
    struct event *sig_ev[4];
    struct event *kill_ev;
    struct event *retire_ev;    /* kills retired children that outlive their grace */
    struct respawn *respawns;   /* restarts waiting for their back-off */
    bool stopping;
};

static void master_spawn(struct master *m, const char *role, unsigned slot, unsigned crashes);

/* ---- child control channels ------------------------------------------ */

static struct child *child_by_role(struct master *m, const char *role)
{
    for (size_t i = 0; i < MAX_CHILDREN; i++) {
        struct child *c = &m->children[i];
        if (c->pid > 0 && !c->retiring && strcmp(c->role, role) == 0)
            return c;
    }
    return NULL;
}

/* New mail for a mailbox: every role that serves mailboxes (imapd for
 * IMAP and POP3; httpd later) hears of it and imports it for open
 * sessions.  Roles not interested are not bothered. */
static void master_mailbox_changed(struct master *m, const char *mailbox)
{
    static const char *const readers[] = {"imapd", "httpd"};
    struct ipc_msg fwd;
    ipc_init(&fwd, IPC_MAILBOX_CHANGED);
    ipc_add_str(&fwd, mailbox);
    for (size_t i = 0; i < MAX_CHILDREN; i++) {
        struct child *c = &m->children[i];
        for (size_t r = 0; c->pid > 0 && r < sizeof readers / sizeof readers[0]; r++)
            if (strcmp(c->role, readers[r]) == 0 && ipc_send(c->ctl_fd, &fwd) < 0)
                log_warn("master forward-failed role=%s", c->role);
    }
}

static void master_child_msg(struct master *m, struct child *c, struct ipc_msg *msg)
{
    const char *s;
    uint32_t version;
    if (msg->type == IPC_HELLO && ipc_get_str(msg, &s) == 0 && ipc_get_u32(msg, &version) == 0 &&
        ipc_end(msg) == 0) {
        if (version != IPC_VERSION || strcmp(s, c->role) != 0)
            log_warn("master bad-hello role=%s version=%u", c->role, version);
        log_debug("master child-ready role=%s pid=%d", c->role, (int)c->pid);
        return;
    }
    const char *ids[IPC_STRS_MAX];
    int n;
    if (msg->type == IPC_SPOOL_READY && (n = ipc_get_strs(msg, ids, IPC_STRS_MAX)) > 0) {
        struct child *q = child_by_role(m, "queued");
        /* every field checked to be a string: the message goes on as it came */
        if (q != NULL && ipc_send(q->ctl_fd, msg) < 0) /* queued rescans at start */
            log_warn("master forward-failed queue=%s messages=%d", ids[0], n);
        return;
    }
    if (msg->type == IPC_MAILBOX_CHANGED && ipc_get_str(msg, &s) == 0 && ipc_end(msg) == 0) {
        master_mailbox_changed(m, s);
        return;
    }
    log_warn("master unexpected-ipc role=%s type=%s", c->role, ipc_type_name(msg->type));
}

static void master_child_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct child *c = arg;
    struct ipc_msg msg;
    int r = ipc_recv(fd, &msg);
    if (r < 0 && errno == EAGAIN)
        return;
    if (r <= 0) {
        event_del(c->ev); /* the child went away; SIGCHLD does the rest */
        return;
    }
    master_child_msg(c->m, c, &msg);
}

static void child_release(struct child *c)
{
    if (c->ev != NULL)
        event_free(c->ev);
    if (c->ctl_fd >= 0)
        close(c->ctl_fd);
    memset(c, 0, sizeof *c);
    c->ctl_fd = -1;
}

static void child_send(struct child *c, enum ipc_type type, uint32_t value)
{
    struct ipc_msg msg;
    ipc_init(&msg, type);
    ipc_add_u32(&msg, value);
    if (ipc_send(c->ctl_fd, &msg) < 0)
        kill(c->pid, SIGTERM);
}

/* ---- starting children ------------------------------------------------ */

static bool serves(const char *role, int kind)
{
    return strcmp(role, listen_kind_role((enum listen_kind)kind)) == 0;
}

/* In the child after fork: move the control channel and the listeners to
 * 3, 4, ... and exec "sealmail _role ROLE CONFIG FDSPEC". */
static _Noreturn void child_exec(struct master *m, const char *role, int ctl)
{
    struct role_args ra = {.role = role};
    int high[1 + LISTEN_KINDS * LISTEN_MAX], n = 0;
    high[n++] = fcntl(ctl, F_DUPFD_CLOEXEC, 100);
    for (int k = 0; k < LISTEN_KINDS; k++)
        for (size_t i = 0; serves(role, k) && i < m->fds.n_fds[k]; i++)
            high[n++] = fcntl(m->fds.fds[k][i], F_DUPFD_CLOEXEC, 100);
    int next = 3;
    ra.ctl_fd = next;
    for (int i = 0; i < n; i++)
        if (high[i] < 0 || dup2(high[i], next++) < 0)
            _exit(127);
    next = 4;
    for (int k = 0; k < LISTEN_KINDS; k++)
        for (size_t i = 0; serves(role, k) && i < m->fds.n_fds[k]; i++)
            ra.fds[k][ra.n_fds[k]++] = next++;
    char spec[512];
    privsep_format_fds(&ra, spec, sizeof spec);
    char *argv[] = {"sealmail", "_role", (char *)(uintptr_t)role,
                    (char *)(uintptr_t)(m->config_path ? m->config_path : "-"), spec, NULL};
    closefrom(3 + n);
    execv(m->exe, argv);
    _exit(127);
}

static struct child *child_free_slot(struct master *m)
{
    for (size_t i = 0; i < MAX_CHILDREN; i++)
        if (m->children[i].pid == 0)
            return &m->children[i];
    return NULL;
}

static void master_spawn(struct master *m, const char *role, unsigned slot, unsigned crashes)
{
    struct child *c = child_free_slot(m);
    int sv[2];
    if (c == NULL || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        log_error("master cannot start role=%s", role);
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        log_error("master fork failed role=%s", role);
        return;
    }
    if (pid == 0)
        child_exec(m, role, sv[1]);
    close(sv[1]);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    *c = (struct child){.m = m, .pid = pid, .role = role, .slot = slot, .ctl_fd = sv[0],
                        .started = time(NULL), .crashes = crashes};
    c->ev = event_new(m->base, sv[0], EV_READ | EV_PERSIST, master_child_readable, c);
    event_add(c->ev, NULL);
    log_info("master started role=%s pid=%d", role, (int)pid);
}

static void master_spawn_all(struct master *m)
{
    for (unsigned i = 0; i < m->cfg.smtpd_workers; i++)
        master_spawn(m, "smtpd", i, 0);
    master_spawn(m, "queued", 0, 0);
    master_spawn(m, "imapd", 0, 0);
    master_spawn(m, "httpd", 0, 0);
}

/* ---- supervision ------------------------------------------------------ */

struct respawn {
    struct respawn *next;
    struct master *m;
    const char *role;
    unsigned slot, crashes;
    struct event *ev;
};

static void respawn_free(struct respawn *r)
{
    struct respawn **pp = &r->m->respawns;
    while (*pp != r)
        pp = &(*pp)->next;
    *pp = r->next;
    event_free(r->ev);
    free(r);
}

static void master_respawn_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct respawn *r = arg;
    if (!r->m->stopping)
        master_spawn(r->m, r->role, r->slot, r->crashes);
    respawn_free(r);
}

/* A child died without being asked to: restart it, slower each time it
 * dies within seconds of its start. */
static void master_schedule_restart(struct master *m, const struct child *c)
{
    unsigned crashes = time(NULL) - c->started < 10 ? c->crashes + 1 : 0;
    unsigned delay = crashes == 0 ? 0 : 1u << (crashes < 5 ? crashes : 5);
    if (delay > RESTART_BACKOFF_MAX)
        delay = RESTART_BACKOFF_MAX;
    struct respawn *r = sm_malloc(sizeof *r);
    *r = (struct respawn){m->respawns, m, c->role, c->slot, crashes, NULL};
    m->respawns = r;
    r->ev = evtimer_new(m->base, master_respawn_cb, r);
    struct timeval tv = {delay, 0};
    evtimer_add(r->ev, &tv);
}

static bool master_has_children(const struct master *m)
{
    for (size_t i = 0; i < MAX_CHILDREN; i++)
        if (m->children[i].pid > 0)
            return true;
    return false;
}

static void master_reap(struct master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < MAX_CHILDREN; i++) {
            struct child *c = &m->children[i];
            if (c->pid != pid)
                continue;
            if (c->retiring || m->stopping)
                log_info("master stopped role=%s pid=%d", c->role, (int)pid);
            else {
                log_warn("master child-died role=%s pid=%d %s=%d", c->role, (int)pid,
                         WIFSIGNALED(status) ? "signal" : "status",
                         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
                master_schedule_restart(m, c);
            }
            child_release(c);
        }
    }
    if (m->stopping && !master_has_children(m))
        event_base_loopexit(m->base, NULL);
}

static void master_kill_all(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct master *m = arg;
    for (size_t i = 0; i < MAX_CHILDREN; i++)
        if (m->children[i].pid > 0)
            kill(m->children[i].pid, SIGKILL);
}

static void master_kill_retired(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct master *m = arg;
    for (size_t i = 0; i < MAX_CHILDREN; i++)
        if (m->children[i].pid > 0 && m->children[i].retiring)
            kill(m->children[i].pid, SIGKILL);
}

static void master_stop(struct master *m)
{
    if (m->stopping)
        return;
    m->stopping = true;
    log_info("master shutting-down grace=%u", m->cfg.shutdown_grace);
    for (size_t i = 0; i < MAX_CHILDREN; i++)
        if (m->children[i].pid > 0)
            child_send(&m->children[i], IPC_SHUTDOWN, m->cfg.shutdown_grace);
    struct timeval tv = {m->cfg.shutdown_grace + KILL_MARGIN_SECONDS, 0};
    m->kill_ev = evtimer_new(m->base, master_kill_all, m);
    evtimer_add(m->kill_ev, &tv);
    if (!master_has_children(m))
        event_base_loopexit(m->base, NULL);
}

/* SIGHUP: a valid new configuration replaces every child, gracefully. */
static void master_reload(struct master *m)
{
    struct sm_config fresh;
    char err[512];
    config_defaults(&fresh);
    if ((m->config_path && config_load(&fresh, m->config_path, err, sizeof err) < 0) ||
        config_finish(&fresh, err, sizeof err) < 0) {
        log_error("master reload-refused error=\"%s\"", err);
        config_free(&fresh);
        return;
    }
    config_free(&m->cfg);
    m->cfg = fresh;
    while (m->respawns != NULL)
        respawn_free(m->respawns); /* the fresh set below replaces them */
    for (size_t i = 0; i < MAX_CHILDREN; i++) {
        struct child *c = &m->children[i];
        if (c->pid > 0 && !c->retiring) {
            c->retiring = true;
            child_send(c, IPC_SHUTDOWN, m->cfg.shutdown_grace);
        }
    }
    master_spawn_all(m);
    struct timeval tv = {m->cfg.shutdown_grace + KILL_MARGIN_SECONDS, 0};
    evtimer_add(m->retire_ev, &tv); /* retired children that hang are killed then */
    log_info("master reloaded");
}

static void master_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct master *m = arg;
    switch (sig) {
    case SIGCHLD:
        master_reap(m);
        break;
    case SIGHUP:
        if (!m->stopping)
            master_reload(m);
        break;
    default:
        master_stop(m);
    }
}

/* ---- start-up ------------------------------------------------------------ */

static int master_open_listeners(struct master *m, char *err, size_t errlen)
{
    const struct sm_config *c = &m->cfg;
    const char *specs[LISTEN_KINDS] = {c->smtp_listen,   c->smtps_listen, c->submission_listen,
                                       c->imap_listen,   c->imaps_listen, c->pop3_listen,
                                       c->pop3s_listen,  c->web_listen,   c->web_https_listen};
    static const char *const keys[LISTEN_KINDS] = {
        "[smtp] listen", "[smtp] smtps_listen", "[smtp] submission_listen", "[imap] listen",
        "[imap] imaps_listen", "[imap] pop3_listen", "[imap] pop3s_listen", "[web] listen",
        "[web] https_listen"};
    for (int k = 0; k < LISTEN_KINDS; k++) {
        char why[256];
        if (listener_open_all(specs[k], m->fds.fds[k], LISTEN_MAX, &m->fds.n_fds[k], why,
                              sizeof why) < 0) {
            snprintf(err, errlen, "%s: %s", keys[k], why);
            return -1;
        }
        for (size_t i = 0; i < m->fds.n_fds[k]; i++) {
            char where[128];
            listener_describe(m->fds.fds[k][i], where, sizeof where);
            log_info("master listening service=%s address=%s", listen_kind_name(k), where);
        }
    }
    return 0;
}

/* Each connection costs a descriptor, and the spool keeps spare files
 * open: raise the soft limit to the hard one (children inherit it) and
 * warn when even that is short of the configured connection limit. */
static void master_raise_fd_limit(const struct master *m)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        log_warn("master setrlimit-nofile-failed");
    rlim_t need = (rlim_t)m->cfg.smtp_max_connections + m->cfg.imap_max_connections +
                  m->cfg.web_max_connections + FD_RESERVE;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        log_warn("master fd-limit=%llu below max_connections+%d=%llu: raise LimitNOFILE",
                 (unsigned long long)rl.rlim_cur, FD_RESERVE, (unsigned long long)need);
}

static void master_cleanup(struct master *m)
{
    while (m->respawns != NULL)
        respawn_free(m->respawns);
    for (size_t i = 0; i < MAX_CHILDREN; i++)
        if (m->children[i].pid > 0 || m->children[i].ev != NULL)
            child_release(&m->children[i]);
    for (size_t i = 0; i < 4; i++)
        event_free(m->sig_ev[i]);
    if (m->kill_ev)
        event_free(m->kill_ev);
    event_free(m->retire_ev);
    for (int k = 0; k < LISTEN_KINDS; k++)
        for (size_t i = 0; i < m->fds.n_fds[k]; i++)
            close(m->fds.fds[k][i]);
    event_base_free(m->base);
}

int master_main(struct sm_config *cfg, const char *config_path)
{
    struct master m = {.cfg = *cfg, .config_path = config_path};
    char err[512];
    static char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        fatal("readlink /proc/self/exe");
    exe[n] = '\0';
    m.exe = exe;
    for (size_t i = 0; i < MAX_CHILDREN; i++)
        m.children[i].ctl_fd = -1;
    if (datadir_init(&m.cfg, false, err, sizeof err) < 0 ||
        master_open_listeners(&m, err, sizeof err) < 0)
        fatalx("%s", err);
    signal(SIGPIPE, SIG_IGN);
    m.base = event_base_new();
    static const int sigs[4] = {SIGCHLD, SIGHUP, SIGTERM, SIGINT};
    for (size_t i = 0; i < 4; i++) {
        m.sig_ev[i] = evsignal_new(m.base, sigs[i], master_signal, &m);
        evsignal_add(m.sig_ev[i], NULL);
    }
    master_raise_fd_limit(&m);
    m.retire_ev = evtimer_new(m.base, master_kill_retired, &m);
    master_spawn_all(&m);
    log_info("master ready hostname=%s data_dir=%s", m.cfg.hostname, m.cfg.data_dir);
    event_base_dispatch(m.base);
    master_cleanup(&m);
    *cfg = m.cfg; /* reloads may have replaced it; the caller frees */
    log_info("master stopped");
    return 0;
}
