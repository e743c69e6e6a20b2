/* smtpd.c — the smtpd role: wires listeners, TLS, the spool, the hosted
 * domains and the control channel together; the protocol lives in
 * smtp/server.c, connections in smtp/inbound.c.
 *
 * Sequence: configuration, keys and certificates (as root), drop
 * privileges, then the loop.  On IPC_SHUTDOWN (or when the master goes
 * away) it stops accepting, lets running transactions finish for the
 * grace period, closes the rest and exits. */
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/ipc.h"
#include "core/log.h"
#include "core/mem.h"
#include "daemon/keys.h"
#include "daemon/smtpd-auth.h"
#include "mailauth/srs.h"
#include "daemon/privsep.h"
#include "mailauth/check.h"
#include "net/peerlimit.h"
#include "net/tls.h"
#include "smtp/inbound.h"
#include "store/directory.h"
#include "store/forwards.h"
#include "store/spool.h"

#define DOMAIN_REFRESH_SECONDS 1

struct smtpd_listener {
    struct smtpd *d;
    enum inbound_kind kind;
    struct evconnlistener *l;
};

struct smtpd {
    struct sm_config cfg;
    struct inbound_env env;
    struct directory *dir;
    int64_t dir_version;
    struct smtpd_listener listeners[(LISTEN_SUBMISSION + 1) * LISTEN_MAX];
    size_t n_listeners;
    uint8_t spool_pk[SPOOL_PK_BYTES];
    struct authcheck_env *auth;
    struct smtpd_auth *subauth;    /* submission: AUTH and sender ownership */
    struct srs *srs;               /* verifies bounce addresses of forwarded mail */
    struct event *ctl_ev, *refresh_ev, *grace_ev, *drain_ev;
    bool stopping;
};

static void smtpd_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                         int salen, void *arg)
{
    (void)l;
    struct smtpd_listener *sl = arg;
    inbound_accept(&sl->d->env, fd, sl->kind, sa, (size_t)salen);
}

static void collect_domain(void *arg, const char *domain)
{
    struct sm_buf *list = arg; /* array of char * grown in a buffer */
    char *copy = sm_strdup(domain);
    sm_buf_append(list, &copy, sizeof copy);
}

/* The disposable domains of the configuration are served too: mail for
 * their live inboxes is accepted, every other address there is unknown
 * (550 5.1.1, from the directory's answer). */
static void add_disposable_domains(struct smtpd *d, struct sm_buf *list)
{
    directory_domains_each(d->cfg.disposable_domains, collect_domain, list);
}

static void smtpd_refresh_domains(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct smtpd *d = arg;
    int64_t version = directory_version(d->dir);
    if (version == d->dir_version && d->env.domains != NULL)
        return;
    struct sm_buf list;
    sm_buf_init(&list, 0);
    if (directory_domain_list(d->dir, collect_domain, &list) < 0) {
        log_warn("smtpd directory-error=\"%s\"", directory_error(d->dir));
        sm_buf_free(&list);
        return;
    }
    add_disposable_domains(d, &list);
    size_t n = list.len / sizeof(char *);
    char **domains = sm_malloc(list.len + sizeof(char *));
    memcpy(domains, list.data ? list.data : "", list.len);
    sm_buf_free(&list);
    inbound_set_domains(&d->env, domains, n);
    d->dir_version = version;
    log_debug("smtpd domains=%zu", n);
}

/* On a recipient-domain miss: reload only if the directory changed
 * (PRAGMA data_version is answered from shared memory, no disk read). */
static void smtpd_refresh_on_miss(void *owner)
{
    smtpd_refresh_domains(-1, 0, owner);
}

/* Recipient policy: someone must be at the address (a mailbox, or an
 * alias with local targets or forwards), the alias must take mail (not
 * disabled, the sender on its allow-list if it has one), with room left.
 * Unknown addresses get one reply whatever the reason, so RCPT does not
 * tell which part was wrong. */
/* A bounce address of mail we forwarded (SRS0=/SRS1= at one of our
 * domains): it must be one we made, and recent.  NULL to accept, a reply
 * to refuse, or "" when the address is not an SRS address at all. */
static const char *smtpd_check_srs(struct smtpd *d, const char *address)
{
    const char *at = strrchr(address, '@');
    char original[SRS_ADDRESS_MAX + 1];
    if (d->srs == NULL || at == NULL || !srs_is_srs(address, (size_t)(at - address)))
        return "";
    switch (srs_reverse(d->srs, address, time(NULL), original)) {
    case SRS_OK:
        return NULL;
    case SRS_NOT_SRS:
        return "";
    case SRS_EXPIRED:
        return "550 5.1.1 This bounce address has expired";
    default:
        return "550 5.7.1 This bounce address was not made here";
    }
}

static const char *smtpd_check_address(void *owner, const char *address, const char *sender)
{
    struct smtpd *d = owner;
    const char *srs = smtpd_check_srs(d, address);
    if (srs == NULL || srs[0] != '\0')
        return srs;
    struct directory_user t[DIRECTORY_TARGETS_MAX];
    struct directory_route route;
    int n = directory_resolve_route(d->dir, address, t, DIRECTORY_TARGETS_MAX, &route);
    if (n < 0) {
        log_warn("smtpd directory-error=\"%s\"", directory_error(d->dir));
        return "451 4.3.0 Temporary lookup failure, try again later";
    }
    if (route.disabled)
        return "550 5.2.1 This address is disabled and takes no mail";
    if (!directory_route_allows(route.allow, sender))
        return "550 5.7.1 This address takes mail only from the senders its owner chose";
    if (n == 0 && route.n_forwards == 0 && route.forwarding_off)
        return "550 5.2.1 Forwarding for this address is switched off";
    if (n == 0 && route.n_forwards == 0)
        return "550 5.1.1 No such user here";
    for (int i = 0; i < n; i++)
        if (t[i].quota_bytes > 0 && t[i].used_bytes >= t[i].quota_bytes)
            return "452 4.2.2 Mailbox full, try again later";
    return NULL;
}

static void smtpd_auth_check_cb(void *owner, uint64_t session, const struct sockaddr *client,
                                const char *user, const char *password, size_t len)
{
    struct smtpd *d = owner;
    smtpd_auth_check(d->subauth, session, client, user, password, len);
}

static const char *smtpd_check_sender(void *owner, const char *user, const char *address)
{
    struct smtpd *d = owner;
    return smtpd_auth_sender(d->subauth, user, address);
}

static void smtpd_stop_now(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct smtpd *d = arg;
    inbound_close_all(&d->env);
    event_base_loopexit(d->env.base, NULL);
}

static void smtpd_check_drained(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct smtpd *d = arg;
    if (d->env.n_sessions == 0)
        event_base_loopexit(d->env.base, NULL);
}

/* Stop accepting; finish running transactions for up to `grace` seconds. */
static void smtpd_shutdown(struct smtpd *d, unsigned grace)
{
    if (d->stopping)
        return;
    d->stopping = true;
    log_info("smtpd shutting-down grace=%u sessions=%zu", grace, d->env.n_sessions);
    for (size_t i = 0; i < d->n_listeners; i++)
        evconnlistener_disable(d->listeners[i].l);
    inbound_shutdown_all(&d->env);
    struct timeval tv = {grace, 0}, poll = {0, 50000};
    d->grace_ev = evtimer_new(d->env.base, smtpd_stop_now, d);
    evtimer_add(d->grace_ev, &tv);
    d->drain_ev = event_new(d->env.base, -1, EV_PERSIST, smtpd_check_drained, d);
    event_add(d->drain_ev, &poll);
}

static void smtpd_control(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct smtpd *d = arg;
    struct ipc_msg m;
    uint32_t grace;
    int r = ipc_recv(fd, &m);
    if (r < 0 && errno == EAGAIN)
        return;
    if (r <= 0) {
        event_del(d->ctl_ev); /* master gone: finish and exit */
        smtpd_shutdown(d, d->cfg.shutdown_grace);
        return;
    }
    if (m.type == IPC_SHUTDOWN && ipc_get_u32(&m, &grace) == 0 && ipc_end(&m) == 0)
        smtpd_shutdown(d, grace);
    else
        log_warn("smtpd unexpected-ipc type=%s", ipc_type_name(m.type));
}

/* Everything that needs root or the key files, before privileges go. */
static void smtpd_setup(struct smtpd *d, const struct role_args *ra)
{
    char err[512];
    const char *error;
    d->env.cfg = &d->cfg;
    d->env.ctl_fd = ra->ctl_fd;
    d->env.refresh_domains = smtpd_refresh_on_miss;
    d->env.check_address = smtpd_check_address;
    d->env.owner = d;
    d->env.tls = tls_server_new(d->cfg.tls_cert, d->cfg.tls_key, d->cfg.tls_sni_dir,
                                d->cfg.tls_ciphers, err, sizeof err);
    if (d->env.tls == NULL)
        log_warn("smtpd tls=disabled reason=\"%s\"", err);
    if (keys_spool_public(d->cfg.data_dir, d->spool_pk, err, sizeof err) < 0)
        fatalx("%s", err);
    if ((d->dir = directory_open(d->cfg.data_dir, false, &error)) == NULL)
        fatalx("directory: %s", error);
    d->env.peers = peerlimit_new(d->cfg.smtp_max_connections_per_client);
    char srs_path[4096];
    snprintf(srs_path, sizeof srs_path, "%s/keys/srs.secrets", d->cfg.data_dir);
    if ((d->srs = srs_load(srs_path, NULL, &error)) == NULL)
        fatalx("%s: %s", srs_path, error);
    d->auth = authcheck_env_new(d->env.base, &d->cfg, &error);
    if (d->auth == NULL && error != NULL)
        fatalx("sender checks ([auth], [dns]): %s", error);
    d->env.auth = d->auth;
}

/* After the privilege drop, so every spool file belongs to the service user. */
static void smtpd_open_spool(struct smtpd *d)
{
    const char *error;
    char spool_dir[4096];
    snprintf(spool_dir, sizeof spool_dir, "%s/spool", d->cfg.data_dir);
    d->env.spool = spool_open(spool_dir, d->spool_pk, d->env.base,
                              (unsigned)d->cfg.spool_sync_batch, &error);
    if (d->env.spool == NULL)
        fatalx("spool: %s", error);
}

static void smtpd_listen(struct smtpd *d, const struct role_args *ra)
{
    static const enum inbound_kind kinds[] = {INBOUND_SMTP, INBOUND_SMTPS, INBOUND_SUBMISSION};
    for (int k = LISTEN_SMTP; k <= LISTEN_SUBMISSION; k++) {
        for (size_t i = 0; i < ra->n_fds[k]; i++) {
            struct smtpd_listener *sl = &d->listeners[d->n_listeners++];
            sl->d = d;
            sl->kind = kinds[k];
            sl->l = evconnlistener_new(d->env.base, smtpd_accept, sl, LEV_OPT_CLOSE_ON_FREE, -1,
                                       ra->fds[k][i]);
            if (sl->l == NULL)
                fatal("evconnlistener_new");
        }
    }
}

static void smtpd_cleanup(struct smtpd *d)
{
    inbound_close_all(&d->env);
    smtpd_auth_free(&d->subauth); /* checks in flight find their sessions gone */
    srs_free(&d->srs);
    for (size_t i = 0; i < d->n_listeners; i++)
        evconnlistener_free(d->listeners[i].l);
    spool_close(&d->env.spool);
    inbound_env_done(&d->env);
    inbound_set_domains(&d->env, NULL, 0);
    struct event *evs[] = {d->ctl_ev, d->refresh_ev, d->grace_ev, d->drain_ev};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i] != NULL)
            event_free(evs[i]);
    directory_close(&d->dir);
    peerlimit_free(&d->env.peers);
    tls_server_free(&d->env.tls);
    authcheck_env_free(&d->auth);
    event_base_free(d->env.base);
    config_free(&d->cfg);
}

/* glibc's malloc gives freed memory back to the kernel as soon as the
 * top of the heap has 128 KiB or more free, and maps every block of its
 * (dynamic) mmap threshold or more on its own.  smtpd allocates and frees
 * a message's buffers (up to about twice INLINE_MAX) for every message:
 * with the defaults, 64 KiB messages cost a brk() and eight to ten page
 * faults each, a fifth of the CPU of copying them in.  Keep up to
 * HEAP_KEEP free at the top instead (the spool's inline budget bounds
 * what is held), and map on its own only what passes any inline record. */
#define HEAP_KEEP (64 * 1024 * 1024)
#define HEAP_MMAP_MIN (4 * 1024 * 1024)

static void smtpd_tune_malloc(void)
{
    /* a refusal (AddressSanitizer's allocator refuses all) only costs speed */
    (void)mallopt(M_TRIM_THRESHOLD, HEAP_KEEP);
    (void)mallopt(M_MMAP_THRESHOLD, HEAP_MMAP_MIN);
}

int smtpd_main(const struct role_args *ra)
{
    struct smtpd d = {0};
    smtpd_tune_malloc();
    privsep_role_config(ra, &d.cfg);
    d.env.base = event_base_new();
    smtpd_setup(&d, ra);
    privsep_drop(d.cfg.user);
    smtpd_open_spool(&d);
    d.subauth = smtpd_auth_new(&d.cfg, d.env.base, &d.env, d.dir);
    d.env.auth_check = smtpd_auth_check_cb;
    d.env.check_sender = smtpd_check_sender;

    if (ipc_send_hello(ra->ctl_fd, "smtpd") < 0)
        fatal("ipc hello");
    smtpd_listen(&d, ra);
    d.ctl_ev = event_new(d.env.base, ra->ctl_fd, EV_READ | EV_PERSIST, smtpd_control, &d);
    event_add(d.ctl_ev, NULL);
    struct timeval refresh = {DOMAIN_REFRESH_SECONDS, 0};
    d.refresh_ev = event_new(d.env.base, -1, EV_PERSIST, smtpd_refresh_domains, &d);
    event_add(d.refresh_ev, &refresh);
    smtpd_refresh_domains(-1, 0, &d);
    log_info("smtpd ready listeners=%zu tls=%s", d.n_listeners, d.env.tls ? "yes" : "no");

    event_base_dispatch(d.env.base);
    smtpd_cleanup(&d);
    log_info("smtpd stopped");
    return 0;
}
