/* resolver.c — libunbound in event mode on sealmail's loop (resolver.h).
 *
 * Life of a query: dns_resolve() hands the question to unbound with
 * ub_resolve_event() and arms our timer.  unbound calls on_unbound() with
 * the raw reply — from the loop later, or at once from inside
 * ub_resolve_event() when local data answers — and we decode it at once
 * (the packet is unbound's buffer) and make our event active, so the
 * caller's callback always runs from on_event(), never inside
 * dns_resolve().  The same event is the timeout: if it fires first, the
 * unbound query is cancelled (ub_cancel marks it; unbound then drops its
 * result without calling us) and the answer is DNS_TEMPFAIL. */
#include "dns/resolver.h"

#include <errno.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound-event.h>
#include <unbound.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "dns/wire.h"

#define ZONE_LINE_MAX 65536     /* a test-zone line (a long TXT fits) */
#define ZONE_RECORDS_MAX 100000 /* records in a test zone */
#define FORWARDERS_MAX 16
#define SEC_BOGUS 1             /* libunbound's sec values (unbound-event.h) */
#define SEC_SECURE 2

struct dns_query {
    struct dns_resolver *res;
    struct dns_query *prev, *next;
    struct event *ev;          /* the timeout, then the deferred delivery */
    struct dns_answer *answer; /* set once known; handed over from ev */
    dns_resolve_cb *cb;
    void *arg;
    int async_id;              /* unbound's id while in_unbound (0: none) */
    bool in_unbound;           /* unbound holds a pointer to us */
    uint16_t type;
    char name[DNS_NAME_MAX + 2];
};

struct dns_resolver {
    struct event_base *base;
    struct ub_ctx *ctx;
    struct dns_query *queries; /* all not yet delivered nor cancelled */
    unsigned pending;          /* entries of queries */
    unsigned inflight;         /* of which unbound works on */
    unsigned max_inflight;
    struct timeval timeout;
    bool closing;              /* being freed: ignore unbound entirely */
};

static _Thread_local char error_buf[512];

SM_PRINTF(2, 3) static void set_error(const char **error_r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_buf, sizeof error_buf, fmt, ap);
    va_end(ap);
    *error_r = error_buf;
}

/* ---- set-up ---------------------------------------------------------- */

static int add_forwarders(struct ub_ctx *ctx, const char *list, const char **error_r)
{
    char *copy = sm_strdup(list), *save = NULL;
    unsigned n = 0;
    int ret = 0;
    for (char *tok = strtok_r(copy, " \t,", &save); tok != NULL && ret == 0;
         tok = strtok_r(NULL, " \t,", &save)) {
        int rc = ++n > FORWARDERS_MAX ? UB_SYNTAX : ub_ctx_set_fwd(ctx, tok);
        if (rc != 0) {
            set_error(error_r, "dns: bad forwarder \"%.64s\" (addr[@port], at most %d)", tok,
                      FORWARDERS_MAX);
            ret = -1;
        }
    }
    free(copy);
    return ret;
}

/* Cut a zone-file line at a ';' comment outside quotes, and trim it.
 * Returns the start of what is left. */
static char *zone_line_clean(char *line)
{
    bool quoted = false;
    for (char *p = line; *p != '\0'; p++) {
        if (*p == '\\' && p[1] != '\0')
            p++;
        else if (*p == '"')
            quoted = !quoted;
        else if (*p == ';' && !quoted) {
            *p = '\0';
            break;
        }
    }
    size_t len = strlen(line);
    while (len > 0 && strchr(" \t\r\n", line[len - 1]) != NULL)
        line[--len] = '\0';
    while (*line == ' ' || *line == '\t')
        line++;
    return line;
}

/* Call fn on every record line of a zone file; stops at the first error. */
static int zone_file_each(const char *path, int (*fn)(void *, const char *, unsigned, const char **),
                          void *arg, const char **error_r)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        set_error(error_r, "dns: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    unsigned lineno = 0, records = 0;
    int ret = 0;
    while (ret == 0 && (got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *rec = zone_line_clean(line);
        if ((size_t)got > ZONE_LINE_MAX || ++records > ZONE_RECORDS_MAX) {
            set_error(error_r, "dns: %s:%u: line too long or too many records", path, lineno);
            ret = -1;
        } else if (*rec == '$') {
            set_error(error_r, "dns: %s:%u: $ directives are not supported", path, lineno);
            ret = -1;
        } else if (*rec != '\0') {
            ret = fn(arg, rec, lineno, error_r);
        } else {
            records--;
        }
    }
    if (ret == 0 && ferror(f)) {
        set_error(error_r, "dns: cannot read %s", path);
        ret = -1;
    }
    free(line);
    fclose(f);
    return ret;
}

struct zone_load {
    struct ub_ctx *ctx;
    const char *path;
};

static int zone_add_record(void *arg, const char *rec, unsigned lineno, const char **error_r)
{
    struct zone_load *zl = arg;
    if (ub_ctx_data_add(zl->ctx, rec) != 0) {
        set_error(error_r, "dns: %s:%u: bad resource record", zl->path, lineno);
        return -1;
    }
    return 0;
}

struct zone_apex {
    char *apex;
    const char *path;
};

/* The signed zone's apex: the owner of its first record (the SOA). */
static int zone_first_owner(void *arg, const char *rec, unsigned lineno, const char **error_r)
{
    struct zone_apex *za = arg;
    char *apex = za->apex;
    size_t n = strcspn(rec, " \t");
    if (n == 0 || n > DNS_NAME_MAX + 1 || rec[n - 1] != '.' || strcspn(rec, "\"\\") < n) {
        set_error(error_r, "dns: %s:%u: the first record needs an absolute owner name",
                  za->path, lineno);
        return -1;
    }
    memcpy(apex, rec, n);
    apex[n] = '\0';
    return 1; /* stop: found */
}

/* unbound reads auth-zones only from its configuration-file syntax, so
 * the clause goes through a private temporary file, removed at once. */
static int add_signed_zone(struct ub_ctx *ctx, const char *path, const char *apex,
                           const char **error_r)
{
    if (strpbrk(path, "\"\n*?[{~") != NULL || path[0] != '/') {
        set_error(error_r, "dns: signed_zone_file must be an absolute path without quotes or "
                           "wildcards");
        return -1;
    }
    const char *tmpdir = getenv("TMPDIR");
    if (tmpdir == NULL || tmpdir[0] != '/' || strpbrk(tmpdir, "*?[{~") != NULL)
        tmpdir = "/tmp";
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/sealmail-unbound-XXXXXX", tmpdir);
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL) {
        set_error(error_r, "dns: cannot create a temporary file in %s: %s", tmpdir,
                  strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        return -1;
    }
    fprintf(f, "auth-zone:\n  name: \"%s\"\n  zonefile: \"%s\"\n  for-upstream: yes\n"
               "  for-downstream: no\n  fallback-enabled: no\n",
            apex, path);
    bool ok = fclose(f) == 0 && ub_ctx_config(ctx, tmp) == 0;
    unlink(tmp);
    if (!ok) {
        set_error(error_r, "dns: cannot configure the signed zone %s", path);
        return -1;
    }
    return 0;
}

static int add_trust_anchor(struct ub_ctx *ctx, const char *file, const char **error_r)
{
    if (file == NULL)
        file = access(DNS_ROOT_KEY_FILE, R_OK) == 0 ? DNS_ROOT_KEY_FILE : "";
    if (file[0] == '\0')
        return 0;
    /* unbound reads it only when the context is finalized, with a vague
     * error; say which file is missing now */
    if (access(file, R_OK) != 0 || ub_ctx_add_ta_file(ctx, file) != 0) {
        set_error(error_r, "dns: cannot read trust anchor %s: %s", file, strerror(errno));
        return -1;
    }
    return 0;
}

/* Everything before unbound's context is finalized (it refuses most
 * options afterwards). */
static int configure(struct ub_ctx *ctx, const struct dns_resolver_options *o, char *apex,
                     const char **error_r)
{
    if (o->forwarders != NULL && o->forwarders[0] != '\0') {
        if (add_forwarders(ctx, o->forwarders, error_r) < 0)
            return -1;
        /* a forwarder on this host (a local unbound, systemd-resolved) is
         * the operator's explicit choice: let unbound ask it */
        if (ub_ctx_set_option(ctx, "do-not-query-localhost:", "no") != 0) {
            set_error(error_r, "dns: cannot allow a local forwarder");
            return -1;
        }
    }
    if (o->signed_zone_file != NULL) {
        if (o->trust_anchor_file == NULL || o->trust_anchor_file[0] == '\0') {
            set_error(error_r, "dns: signed_zone_file needs trust_anchor_file");
            return -1;
        }
        struct zone_apex za = {apex, o->signed_zone_file};
        int rc = zone_file_each(o->signed_zone_file, zone_first_owner, &za, error_r);
        if (rc == 0)
            set_error(error_r, "dns: %s: no records", o->signed_zone_file);
        if (rc <= 0)
            return -1;
        if (add_signed_zone(ctx, o->signed_zone_file, apex, error_r) < 0)
            return -1;
    }
    if (o->zone_file != NULL || o->signed_zone_file != NULL) {
        /* test mode: even unbound's own follow-up queries (a CNAME out of
         * the signed zone, say) must not leave the machine */
        if (ub_ctx_set_option(ctx, "do-not-query-address:", "0.0.0.0/0") != 0 ||
            ub_ctx_set_option(ctx, "do-not-query-address:", "::/0") != 0) {
            set_error(error_r, "dns: cannot restrict outgoing queries");
            return -1;
        }
    }
    return add_trust_anchor(ctx, o->trust_anchor_file, error_r);
}

/* Finalize the context now, so that bad trust anchors or zones fail
 * start-up rather than every query, then add the local data. */
static int finalize(struct ub_ctx *ctx, const struct dns_resolver_options *o, const char *apex,
                    const char **error_r)
{
    bool test = o->zone_file != NULL || o->signed_zone_file != NULL;
    /* ub_ctx_zone_add() finalizes; in production it re-adds the default
     * static zone "invalid." (RFC 6761), which changes nothing */
    int rc = ub_ctx_zone_add(ctx, test ? "." : "invalid.", "static");
    if (rc != 0) {
        set_error(error_r, "dns: cannot start unbound: %s (trust anchor or signed zone?)",
                  ub_strerror(rc));
        return -1;
    }
    /* the signed zone must reach unbound's iterator, which serves it from
     * the auth-zone: no local answer for it */
    if (apex[0] != '\0' && ub_ctx_zone_add(ctx, apex, "transparent") != 0) {
        set_error(error_r, "dns: bad signed zone name %s", apex);
        return -1;
    }
    if (o->zone_file != NULL) {
        struct zone_load zl = {ctx, o->zone_file};
        if (zone_file_each(o->zone_file, zone_add_record, &zl, error_r) < 0)
            return -1;
    }
    return 0;
}

struct dns_resolver *dns_resolver_new(struct event_base *base,
                                      const struct dns_resolver_options *opts,
                                      const char **error_r)
{
    static const struct dns_resolver_options defaults;
    const struct dns_resolver_options *o = opts != NULL ? opts : &defaults;
    struct ub_ctx *ctx = ub_ctx_create_event(base);
    if (ctx == NULL) {
        set_error(error_r, "dns: cannot create the unbound context");
        return NULL;
    }
    char apex[DNS_NAME_MAX + 2] = "";
    if (configure(ctx, o, apex, error_r) < 0 || finalize(ctx, o, apex, error_r) < 0) {
        ub_ctx_delete(ctx);
        return NULL;
    }
    struct dns_resolver *r = sm_malloc(sizeof *r);
    r->base = base;
    r->ctx = ctx;
    r->max_inflight = o->max_inflight != 0 ? o->max_inflight : DNS_MAX_INFLIGHT_DEFAULT;
    unsigned ms = o->timeout_ms != 0 ? o->timeout_ms : DNS_TIMEOUT_MS_DEFAULT;
    r->timeout.tv_sec = ms / 1000;
    r->timeout.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    return r;
}

/* ---- queries --------------------------------------------------------- */

static void query_unlink_free(struct dns_query *q)
{
    struct dns_resolver *r = q->res;
    if (q->prev != NULL)
        q->prev->next = q->next;
    else
        r->queries = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    r->pending--;
    event_free(q->ev);
    free(q);
}

/* unbound no longer works for q (answered, or cancelled by us). */
static void leave_unbound(struct dns_query *q, bool cancel)
{
    if (!q->in_unbound)
        return;
    if (cancel && q->async_id != 0)
        (void)ub_cancel(q->res->ctx, q->async_id);
    q->in_unbound = false;
    q->async_id = 0;
    q->res->inflight--;
}

/* Hand q's answer to the caller from the loop's next turn. */
static void deliver_soon(struct dns_query *q, struct dns_answer *a)
{
    q->answer = a;
    event_del(q->ev);
    event_active(q->ev, EV_TIMEOUT, 1);
}

static struct dns_answer *answer_from_unbound(const struct dns_query *q, int rcode,
                                              const void *pkt, int len, int sec,
                                              const char *why_bogus)
{
    if (rcode != 0 || pkt == NULL || len <= 0)
        return dns_answer_new(rcode != 0 ? dns_status_from_rcode((unsigned)rcode)
                                         : DNS_TEMPFAIL);
    if (sec == SEC_BOGUS) {
        /* never hand out data that failed validation */
        log_info("dns: DNSSEC bogus answer name=%s type=%u reason=%s", q->name, q->type,
                 why_bogus != NULL ? why_bogus : "unknown");
        struct dns_answer *a = dns_answer_new(DNS_TEMPFAIL);
        a->bogus = true;
        return a;
    }
    struct dns_answer *a = dns_answer_from_wire(pkt, (size_t)len, q->name, q->type);
    a->secure = sec == SEC_SECURE && (a->status == DNS_OK || a->status == DNS_NXDOMAIN);
    return a;
}

static void on_unbound(void *arg, int rcode, void *pkt, int len, int sec, char *why_bogus,
                       int ratelimited)
{
    (void)ratelimited;
    struct dns_query *q = arg;
    if (q->res->closing || !q->in_unbound)
        return; /* cannot happen after ub_cancel; belt and braces */
    leave_unbound(q, false);
    deliver_soon(q, answer_from_unbound(q, rcode, pkt, len, sec, why_bogus));
}

/* The timeout, or the deferred delivery of an answer. */
static void on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct dns_query *q = arg;
    if (q->answer == NULL) {
        leave_unbound(q, true);
        q->answer = dns_answer_new(DNS_TEMPFAIL);
        log_debug("dns: timeout name=%s type=%u", q->name, q->type);
    }
    struct dns_answer *a = q->answer;
    dns_resolve_cb *cb = q->cb;
    void *cb_arg = q->arg;
    query_unlink_free(q); /* first: the callback may free the resolver */
    cb(cb_arg, a);
}

struct dns_query *dns_resolve(struct dns_resolver *r, const char *name, uint16_t type,
                              dns_resolve_cb *cb, void *arg)
{
    struct dns_query *q = sm_malloc(sizeof *q);
    q->res = r;
    q->cb = cb;
    q->arg = arg;
    q->type = type;
    q->ev = evtimer_new(r->base, on_event, q);
    if (q->ev == NULL)
        sm_panic("dns: cannot create an event");
    q->next = r->queries;
    if (r->queries != NULL)
        r->queries->prev = q;
    r->queries = q;
    r->pending++;

    uint8_t flat[DNS_WIRE_NAME_MAX];
    if (name == NULL || dns_name_flatten(name, flat) == 0 || !dns_type_supported(type)) {
        snprintf(q->name, sizeof q->name, "%s", "(invalid)");
        deliver_soon(q, dns_answer_new(DNS_PERMFAIL));
        return q;
    }
    snprintf(q->name, sizeof q->name, "%s", name);
    if (r->inflight >= r->max_inflight) {
        log_debug("dns: too many queries in flight (%u) name=%s", r->inflight, q->name);
        deliver_soon(q, dns_answer_new(DNS_TEMPFAIL));
        return q;
    }
    q->in_unbound = true;
    r->inflight++;
    int id = 0;
    int rc = ub_resolve_event(r->ctx, q->name, type, 1 /* IN */, q, on_unbound, &id);
    if (q->answer != NULL)
        return q; /* answered at once (local data): already deferred */
    if (rc != 0) {
        leave_unbound(q, false);
        deliver_soon(q, dns_answer_new(rc == UB_SYNTAX ? DNS_PERMFAIL : DNS_TEMPFAIL));
        return q;
    }
    q->async_id = id;
    event_add(q->ev, &r->timeout);
    return q;
}

void dns_query_cancel(struct dns_query **qp)
{
    struct dns_query *q = qp != NULL ? *qp : NULL;
    if (q == NULL)
        return;
    *qp = NULL;
    leave_unbound(q, true);
    dns_answer_free(q->answer);
    query_unlink_free(q);
}

unsigned dns_resolver_pending(const struct dns_resolver *r)
{
    return r->pending;
}

void dns_resolver_free(struct dns_resolver **rp)
{
    struct dns_resolver *r = *rp;
    if (r == NULL)
        return;
    *rp = NULL;
    /* cancelled queries are dropped by unbound without a callback, and
     * closing catches anything else while ub_ctx_delete() tears down its
     * mesh (which "answers" SERVFAIL to every query still attached); our
     * queries are freed only after that, so unbound never sees freed
     * memory */
    for (struct dns_query *q = r->queries; q != NULL; q = q->next)
        if (q->in_unbound && q->async_id != 0)
            (void)ub_cancel(r->ctx, q->async_id);
    r->closing = true;
    ub_ctx_delete(r->ctx);
    while (r->queries != NULL) {
        struct dns_query *q = r->queries;
        q->in_unbound = false;
        dns_answer_free(q->answer);
        query_unlink_free(q);
    }
    free(r);
}
