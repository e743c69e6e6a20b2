/* httpd.c — the httpd role: the disposable-inbox page and JSON API over
 * HTTP and HTTPS (http/server.h, http/api.h).
 *
 * It wires the listeners, TLS, the worker pool (inbox work: SQLite, the
 * encrypted stores, MIME, the HTML sanitiser) and the control channel:
 * IPC_MAILBOX_CHANGED from queued (through the master) wakes the live
 * streams of that inbox.  The sweeper that shreds expired inboxes runs
 * here too, on a timer, because this role owns inboxes/. */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ipc.h"
#include "core/log.h"
#include "core/workpool.h"
#include "crypto/seal.h"
#include "daemon/privsep.h"
#include "http/api.h"
#include "http/server.h"
#include "mime/mime.h"
#include "net/tls.h"

#define GRACE_SECONDS 1

struct httpd {
    struct sm_config cfg;
    struct event_base *base;
    struct tls_server *tls;
    struct workpool *wp;
    struct api *api;
    struct http_server *srv;
    struct event *ctl_ev, *grace_ev;
    bool stopping;
};

static void httpd_stop_now(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct httpd *d = arg;
    event_base_loopexit(d->base, NULL);
}

/* Requests are short; streams end with a "shutdown" event, clients
 * reconnect to the next httpd. */
static void httpd_shutdown(struct httpd *d)
{
    if (d->stopping)
        return;
    d->stopping = true;
    log_info("httpd shutting-down connections=%zu", http_server_connections(d->srv));
    http_server_pause(d->srv);
    api_close_streams(d->api);
    struct timeval tv = {GRACE_SECONDS, 0};
    d->grace_ev = evtimer_new(d->base, httpd_stop_now, d);
    evtimer_add(d->grace_ev, &tv);
}

static void httpd_control(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct httpd *d = arg;
    struct ipc_msg m;
    const char *mailbox;
    int r = ipc_recv(fd, &m);
    if (r < 0 && errno == EAGAIN)
        return;
    if (r <= 0) {
        event_del(d->ctl_ev); /* master gone */
        httpd_shutdown(d);
        return;
    }
    if (m.type == IPC_SHUTDOWN)
        httpd_shutdown(d);
    else if (m.type == IPC_MAILBOX_CHANGED && ipc_get_str(&m, &mailbox) == 0 && ipc_end(&m) == 0)
        api_mailbox_changed(d->api, mailbox);
    else if (m.type != IPC_RELOAD)
        log_warn("httpd unexpected-ipc type=%s", ipc_type_name(m.type));
}

static void httpd_setup(struct httpd *d, const struct role_args *ra)
{
    char err[512];
    if (seal_init() < 0)
        fatalx("libsodium cannot be initialised");
    if (ra->n_fds[LISTEN_HTTPS] > 0) {
        d->tls = tls_server_new(d->cfg.tls_cert, d->cfg.tls_key, d->cfg.tls_sni_dir,
                                d->cfg.tls_ciphers, err, sizeof err);
        if (d->tls == NULL)
            log_warn("httpd tls=disabled reason=\"%s\"", err);
    }
}

static void httpd_listen(struct httpd *d, const struct role_args *ra)
{
    struct http_server_params p = {
        .base = d->base,
        .tls = d->tls,
        .max_connections = d->cfg.web_max_connections,
        .timeout = d->cfg.web_timeout,
        .redirect_http = d->cfg.web_redirect_http,
        .handler = api_handle,
        .handler_arg = d->api,
    };
    d->srv = http_server_new(&p);
    api_set_server(d->api, d->srv);
    if (http_server_listen(d->srv, ra->fds[LISTEN_HTTP], ra->n_fds[LISTEN_HTTP], false) < 0 ||
        (d->tls != NULL &&
         http_server_listen(d->srv, ra->fds[LISTEN_HTTPS], ra->n_fds[LISTEN_HTTPS], true) < 0))
        fatalx("httpd cannot serve its listeners");
}

static void httpd_cleanup(struct httpd *d)
{
    workpool_free(&d->wp);     /* finishes the jobs out: their replies go first */
    api_close_streams(d->api);
    http_server_free(&d->srv); /* closes the connections */
    api_free(&d->api);
    if (d->ctl_ev)
        event_free(d->ctl_ev);
    if (d->grace_ev)
        event_free(d->grace_ev);
    tls_server_free(&d->tls);
    event_base_free(d->base);
    mime_shutdown();
    config_free(&d->cfg);
}

int httpd_main(const struct role_args *ra)
{
    struct httpd d = {0};
    privsep_role_config(ra, &d.cfg);
    d.base = event_base_new();
    httpd_setup(&d, ra);
    privsep_drop(d.cfg.user);
    mime_init();
    d.wp = workpool_new(d.base, d.cfg.web_workers);
    d.api = api_new(&d.cfg, d.base, d.wp);
    if (ipc_send_hello(ra->ctl_fd, "httpd") < 0)
        fatal("ipc hello");
    httpd_listen(&d, ra);
    d.ctl_ev = event_new(d.base, ra->ctl_fd, EV_READ | EV_PERSIST, httpd_control, &d);
    event_add(d.ctl_ev, NULL);
    api_sweep(d.api); /* what expired while the server was down */
    log_info("httpd ready tls=%s", d.tls ? "yes" : "no");
    event_base_dispatch(d.base);
    httpd_cleanup(&d);
    log_info("httpd stopped");
    return 0;
}
