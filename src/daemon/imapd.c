/* imapd.c — the imapd role: IMAP and POP3 over the encrypted mailboxes.
 *
 * One process serves both protocols so that an owner's IMAP and POP3
 * sessions share one unlocked store (access/unlock.h).  It wires the
 * listeners, TLS, the worker pool (password checks and store work), the
 * failed-login guard and the control channel: IPC_MAILBOX_CHANGED from
 * queued (through the master) makes an unlocked mailbox import its new
 * mail and tell its sessions.  The protocols live in imap/ and pop3/. */
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access/authguard.h"
#include "access/client.h"
#include "access/unlock.h"
#include "core/ipc.h"
#include "core/log.h"
#include "core/workpool.h"
#include "crypto/seal.h"
#include "daemon/privsep.h"
#include "imap/imap.h"
#include "mime/mime.h"
#include "net/peerlimit.h"
#include "net/tls.h"
#include "pop3/pop3.h"

#define IMAPD_KINDS (LISTEN_POP3S - LISTEN_IMAP + 1)
#define IMAPD_TRIM_THRESHOLD (8 * 1024 * 1024) /* free heap kept per arena (bytes) */

struct imapd_listener {
    struct imapd *d;
    const struct client_proto *proto;
    bool implicit_tls;
    struct evconnlistener *l;
};

struct imapd {
    struct sm_config cfg;
    struct client_env env;
    struct imapd_listener listeners[IMAPD_KINDS * LISTEN_MAX];
    size_t n_listeners;
    struct event *ctl_ev, *grace_ev, *sweep_ev;
};

#define SWEEP_SECONDS 5

static void imapd_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct imapd *d = arg;
    unlock_registry_sweep(d->env.registry);
}

static void imapd_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                         int salen, void *arg)
{
    (void)l;
    struct imapd_listener *il = arg;
    client_accept(&il->d->env, il->proto, il->implicit_tls, fd, sa, (size_t)salen);
}

static void imapd_stop_now(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct imapd *d = arg;
    event_base_loopexit(d->env.base, NULL);
}

/* Mail readers hold no transaction open between commands: stop accepting
 * and close after a short grace for the commands running now. */
static void imapd_shutdown(struct imapd *d)
{
    if (d->env.stopping)
        return;
    d->env.stopping = true;
    log_info("imapd shutting-down sessions=%zu", d->env.n_clients);
    for (size_t i = 0; i < d->n_listeners; i++)
        evconnlistener_disable(d->listeners[i].l);
    struct timeval tv = {1, 0};
    d->grace_ev = evtimer_new(d->env.base, imapd_stop_now, d);
    evtimer_add(d->grace_ev, &tv);
}

static void imapd_control(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct imapd *d = arg;
    struct ipc_msg m;
    const char *mailbox;
    int r = ipc_recv(fd, &m);
    if (r < 0 && errno == EAGAIN)
        return;
    if (r <= 0) {
        event_del(d->ctl_ev); /* master gone */
        imapd_shutdown(d);
        return;
    }
    if (m.type == IPC_SHUTDOWN)
        imapd_shutdown(d);
    else if (m.type == IPC_MAILBOX_CHANGED && ipc_get_str(&m, &mailbox) == 0 && ipc_end(&m) == 0)
        unlock_registry_changed(d->env.registry, mailbox);
    else if (m.type != IPC_RELOAD)
        log_warn("imapd unexpected-ipc type=%s", ipc_type_name(m.type));
}

static void imapd_setup(struct imapd *d)
{
    char err[512];
    if (seal_init() < 0)
        fatalx("libsodium cannot be initialised");
    d->env.cfg = &d->cfg;
    d->env.tls = tls_server_new(d->cfg.tls_cert, d->cfg.tls_key, d->cfg.tls_sni_dir,
                                d->cfg.tls_ciphers, err, sizeof err);
    if (d->env.tls == NULL)
        log_warn("imapd tls=disabled reason=\"%s\"", err);
    d->env.peers = peerlimit_new(d->cfg.imap_max_connections_per_client);
    d->env.guard = authguard_new();
}

/* After the privilege drop: threads and the stores belong to the service user. */
static void imapd_start_workers(struct imapd *d)
{
    struct keywrap_params params = {d->cfg.mailbox_argon2_ops,
                                    (unsigned)(d->cfg.mailbox_argon2_memory / 1024)};
    mime_init();
    d->env.wp = workpool_new(d->env.base, d->cfg.imap_workers);
    d->env.registry = unlock_registry_new(d->cfg.data_dir, &params,
                                          d->cfg.imap_max_sessions_per_account,
                                          d->cfg.imap_unlock_linger, d->env.wp);
}

static void imapd_listen(struct imapd *d, const struct role_args *ra)
{
    for (int k = LISTEN_IMAP; k <= LISTEN_POP3S; k++) {
        for (size_t i = 0; i < ra->n_fds[k]; i++) {
            struct imapd_listener *il = &d->listeners[d->n_listeners++];
            il->d = d;
            il->proto = k == LISTEN_IMAP || k == LISTEN_IMAPS ? &imap_proto : &pop3_proto;
            il->implicit_tls = k == LISTEN_IMAPS || k == LISTEN_POP3S;
            il->l = evconnlistener_new(d->env.base, imapd_accept, il, LEV_OPT_CLOSE_ON_FREE, -1,
                                       ra->fds[k][i]);
            if (il->l == NULL)
                fatal("evconnlistener_new");
        }
    }
}

static void imapd_cleanup(struct imapd *d)
{
    client_close_all(&d->env);
    workpool_free(&d->env.wp); /* finishes the jobs out; their clients are freed then */
    unlock_registry_free(&d->env.registry);
    for (size_t i = 0; i < d->n_listeners; i++)
        evconnlistener_free(d->listeners[i].l);
    if (d->ctl_ev)
        event_free(d->ctl_ev);
    if (d->grace_ev)
        event_free(d->grace_ev);
    if (d->sweep_ev)
        event_free(d->sweep_ev);
    authguard_free(&d->env.guard);
    peerlimit_free(&d->env.peers);
    tls_server_free(&d->env.tls);
    event_base_free(d->env.base);
    mime_shutdown();
    config_free(&d->cfg);
}

int imapd_main(const struct role_args *ra)
{
    struct imapd d = {0};
#ifdef M_TRIM_THRESHOLD
    /* A FETCH slice allocates up to a megabyte of output on a worker's
     * arena, which the loop frees once it is sent; by default glibc then
     * gives the arena's top back to the kernel (madvise, a TLB shootdown
     * on every CPU) and the next slice faults it in again: a fifth of
     * imapd's CPU in a FETCH of whole messages (perf, bench/imap).  Keep
     * up to this much, as queued does. */
    mallopt(M_TRIM_THRESHOLD, IMAPD_TRIM_THRESHOLD);
#endif
    privsep_role_config(ra, &d.cfg);
    d.env.base = event_base_new();
    imapd_setup(&d);
    privsep_drop(d.cfg.user);
    imapd_start_workers(&d);
    if (ipc_send_hello(ra->ctl_fd, "imapd") < 0)
        fatal("ipc hello");
    imapd_listen(&d, ra);
    d.ctl_ev = event_new(d.env.base, ra->ctl_fd, EV_READ | EV_PERSIST, imapd_control, &d);
    event_add(d.ctl_ev, NULL);
    struct timeval sweep = {SWEEP_SECONDS, 0};
    d.sweep_ev = event_new(d.env.base, -1, EV_PERSIST, imapd_sweep, &d);
    event_add(d.sweep_ev, &sweep);
    log_info("imapd ready listeners=%zu tls=%s", d.n_listeners, d.env.tls ? "yes" : "no");
    event_base_dispatch(d.env.base);
    imapd_cleanup(&d);
    log_info("imapd stopped");
    return 0;
}
