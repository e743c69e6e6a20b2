/* queued.c — the queued role.
 *
 * queued alone holds the spool secret key (DESIGN.md §2).  In this first
 * version it checks that key against the public half smtpd seals to,
 * takes stock of the spool at start, and keeps every entry smtpd reports
 * over IPC; routing to mailboxes and forwarding arrive with later issues.
 * A spool entry is never removed before it is durably handled, so keeping
 * them is always safe. */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "core/ipc.h"
#include "core/log.h"
#include "daemon/keys.h"
#include "daemon/privsep.h"
#include "store/spool.h"

struct queued {
    struct sm_config cfg;
    struct event_base *base;
    struct event *ctl_ev;
    uint8_t *sk;
    char spool_dir[4096];
    unsigned long entries;
};

static void queued_count(void *arg, const char *id)
{
    (void)id;
    ((struct queued *)arg)->entries++;
}

static void queued_control(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct queued *q = arg;
    struct ipc_msg m;
    const char *id;
    int r = ipc_recv(fd, &m);
    if (r < 0 && errno == EAGAIN)
        return;
    if (r <= 0 || m.type == IPC_SHUTDOWN) {
        event_base_loopexit(q->base, NULL);
        return;
    }
    if (m.type == IPC_SPOOL_READY && ipc_get_str(&m, &id) == 0 && ipc_end(&m) == 0 &&
        spool_id_valid(id)) {
        q->entries++;
        log_info("queued spooled queue=%s entries=%lu", id, q->entries);
        return;
    }
    log_warn("queued unexpected-ipc type=%s", ipc_type_name(m.type));
}

/* The secret key must open what smtpd seals: compare its public half. */
static void queued_load_key(struct queued *q)
{
    char err[512], path[4096];
    uint8_t pk[SPOOL_PK_BYTES];
    if (keys_spool_public(q->cfg.data_dir, pk, err, sizeof err) < 0)
        fatalx("%s", err);
    snprintf(path, sizeof path, "%s/keys/spool.key", q->cfg.data_dir);
    if (keys_read_secret(path, &q->sk, err, sizeof err) < 0)
        fatalx("%s", err);
    if (!keys_spool_matches(q->sk, pk))
        fatalx("%s does not match keys/spool.pub", path);
}

int queued_main(const struct role_args *ra)
{
    struct queued q = {0};
    const char *error;
    privsep_role_config(ra, &q.cfg);
    queued_load_key(&q);
    privsep_drop(q.cfg.user);
    snprintf(q.spool_dir, sizeof q.spool_dir, "%s/spool", q.cfg.data_dir);
    if (spool_list(q.spool_dir, queued_count, &q, &error) < 0)
        fatalx("spool: %s", error);

    if (ipc_send_hello(ra->ctl_fd, "queued") < 0)
        fatal("ipc hello");
    q.base = event_base_new();
    q.ctl_ev = event_new(q.base, ra->ctl_fd, EV_READ | EV_PERSIST, queued_control, &q);
    event_add(q.ctl_ev, NULL);
    log_info("queued ready entries=%lu", q.entries);
    event_base_dispatch(q.base);

    event_free(q.ctl_ev);
    event_base_free(q.base);
    keys_secret_free(&q.sk);
    config_free(&q.cfg);
    log_info("queued stopped");
    return 0;
}
