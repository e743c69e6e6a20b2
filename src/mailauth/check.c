/* check.c — driving SPF, DKIM, DMARC and ARC for one transaction (check.h).
 *
 * Every check is re-run from its start whenever an answer arrives
 * (step()); whatever questions they leave pending in the dnsview are
 * asked (ask()).  Once the data has ended and every check is done, the
 * verdict is built and handed back from the loop. */
#include "mailauth/check.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "dns/resolver.h"
#include "mailauth/arc.h"
#include "mailauth/authres.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "mailauth/dnsview.h"
#include "mailauth/msgstream.h"
#include "mailauth/psl.h"
#include "mailauth/spf.h"

#define FIELD_MAX (64 * 1024)     /* header field buffered for the checks */
#define FIELDS_MAX 1000           /* header fields looked at */
#define FROM_MAX (DMARC_FROM_FIELDS_MAX + 1) /* From fields kept: one more says "too many" */

/* A question sent to the resolver. */
struct asked {
    struct authcheck *ac;
    struct dns_query *q;
    char name[DNS_NAME_MAX + 1];
    uint16_t type;
};

struct authcheck {
    const struct authcheck_env *env;
    struct dnsview *view;
    char *helo, *mail_from;
    struct spf_request spf_req, helo_req;
    struct spf_outcome spf, helo_spf;
    bool spf_done, helo_done;
    struct msgstream *ms;
    authcheck_out_fn *out;
    void *out_arg;
    size_t fields;
    size_t dropped_ar;          /* incoming fields that claimed our authserv-id */
    struct dkim_verifier *dkim;
    bool dkim_done;
    struct arc_verifier *arc;
    bool arc_done;
    struct authres *aar;        /* the newest ARC-Authentication-Results seen */
    const char *arc_trusted;    /* the trusted sealer whose DMARC pass we took over */
    char *from[FROM_MAX];
    size_t n_from;
    struct dmarc_outcome dmarc;
    bool dmarc_done;
    unsigned pct_draw;          /* DMARC pct= sampling: drawn once per message */
    bool finishing, timed_out;
    struct asked **asked;       /* questions in flight */
    size_t n_asked;
    struct event *timer, *deliver;
    authcheck_done_fn *done;
    void *done_arg;
    struct sm_buf header, summary;
    struct authcheck_verdict verdict;
};

static void step(struct authcheck *ac);
static const struct msgstream_sink sink;

/* --- the environment ------------------------------------------------------- */

/* Split the space-separated sealer list into lowercase names. */
static void split_sealers(struct authcheck_env *env, const char *list)
{
    char *copy = sm_strdup(list), *save = NULL;
    const char **v = NULL;
    size_t n = 0;
    for (char *t = strtok_r(copy, " \t,", &save); t != NULL; t = strtok_r(NULL, " \t,", &save)) {
        for (char *c = t; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        v = sm_realloc(v, (n + 1) * sizeof *v);
        v[n++] = sm_strdup(t);
    }
    free(copy);
    env->trusted_sealers = v;
    env->n_trusted_sealers = n;
}

struct authcheck_env *authcheck_env_new(struct event_base *base, const struct sm_config *cfg,
                                        const char **error_r)
{
    *error_r = NULL;
    if (!cfg->auth_enabled)
        return NULL;
    struct authcheck_env *env = sm_malloc(sizeof *env);
    struct dns_resolver_options o = {
        .forwarders = cfg->dns_forwarders,
        .zone_file = cfg->dns_zone_file[0] ? cfg->dns_zone_file : NULL,
        .trust_anchor_file = cfg->dns_trust_anchor,
        .timeout_ms = cfg->dns_timeout * 1000,
    };
    env->base = base;
    env->resolver = dns_resolver_new(base, &o, error_r);
    struct psl *psl = env->resolver != NULL ? psl_load(cfg->auth_public_suffix_list, error_r)
                                            : NULL;
    env->psl = psl;
    env->authserv_id = cfg->auth_serv_id;
    env->hostname = cfg->hostname;
    env->dmarc_reject = cfg->auth_dmarc_reject;
    env->dmarc_quarantine = cfg->auth_dmarc_quarantine;
    env->timeout = cfg->auth_timeout;
    split_sealers(env, cfg->auth_trusted_arc_sealers);
    if (env->psl == NULL)
        authcheck_env_free(&env);
    return env;
}

void authcheck_env_free(struct authcheck_env **envp)
{
    struct authcheck_env *env = *envp;
    if (env == NULL)
        return;
    dns_resolver_free(&env->resolver);
    struct psl *psl = (struct psl *)(uintptr_t)env->psl;
    psl_free(&psl);
    for (size_t i = 0; i < env->n_trusted_sealers; i++)
        free((char *)(uintptr_t)env->trusted_sealers[i]);
    free((void *)(uintptr_t)env->trusted_sealers);
    free(env);
    *envp = NULL;
}

/* --- SPF at MAIL FROM ---------------------------------------------------- */

static void spf_request(struct authcheck *ac, struct spf_request *r, enum spf_identity id,
                        const struct sockaddr *client)
{
    r->identity = id;
    if (client->sa_family == AF_INET6) {
        r->family = AF_INET6;
        memcpy(r->ip, &((const struct sockaddr_in6 *)(const void *)client)->sin6_addr, 16);
    } else {
        r->family = AF_INET;
        memcpy(r->ip, &((const struct sockaddr_in *)(const void *)client)->sin_addr, 4);
    }
    r->helo = ac->helo;
    r->sender = ac->mail_from;
    r->receiver = ac->env->hostname;
    r->now = time(NULL);
}

/* The HELO identity is checked on its own when it is a domain name (not an
 * address literal), as RFC 7208 §2.3 recommends. */
static bool helo_checkable(const char *helo)
{
    return helo[0] != '\0' && helo[0] != '[' && strchr(helo, '.') != NULL;
}

struct authcheck *authcheck_new(const struct authcheck_env *env, const struct sockaddr *client,
                                const char *helo, const char *mail_from)
{
    struct authcheck *ac = sm_malloc(sizeof *ac);
    ac->env = env;
    ac->view = dnsview_new();
    ac->helo = sm_strdup(helo != NULL ? helo : "");
    ac->mail_from = sm_strdup(mail_from != NULL ? mail_from : "");
    spf_request(ac, &ac->spf_req, SPF_ID_MAILFROM, client);
    spf_request(ac, &ac->helo_req, SPF_ID_HELO, client);
    ac->helo_done = !helo_checkable(ac->helo);
    ac->pct_draw = arc4random_uniform(100);
    ac->dkim = dkim_verifier_new(NULL);
    ac->arc = arc_verifier_new(NULL);
    ac->ms = msgstream_new(&sink, ac, FIELD_MAX, FIELDS_MAX);
    sm_buf_init(&ac->header, AUTHRES_FIELD_MAX);
    sm_buf_init(&ac->summary, 1024);
    step(ac);
    return ac;
}

/* --- the message stream --------------------------------------------------- */

static bool is_field(const char *f, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len > n && strncasecmp(f, name, n) == 0 && f[n] == ':';
}

/* An Authentication-Results field whose authserv-id is ours, or whose id
 * cannot be read (a laxer reader further on might see ours in it), or too
 * long to tell: a forger's, never a real one of ours.  Only the id is
 * read; the results of other servers' fields are not our business. */
static bool claims_our_id(struct authcheck *ac, const char *f, size_t len, bool complete)
{
    static const char name[] = "Authentication-Results";
    char id[DNS_NAME_MAX + 1];
    if (!is_field(f, len, name))
        return false;
    if (!complete)
        return true;
    size_t skip = sizeof name; /* the name and the colon */
    return authres_authserv_id(f + skip, len - skip, false, id, sizeof id) < 0 ||
           strcasecmp(id, ac->env->authserv_id) == 0;
}

/* Keep the ARC-Authentication-Results of the highest instance: a trusted
 * sealer's results are read from it. */
static void keep_aar(struct authcheck *ac, const char *f, size_t len)
{
    static const char name[] = "ARC-Authentication-Results";
    const char *error;
    struct authres *ar = authres_parse(f + sizeof name, len - sizeof name, true, &error);
    if (ar != NULL && (ac->aar == NULL || ar->arc_instance > ac->aar->arc_instance)) {
        authres_free(&ac->aar);
        ac->aar = ar;
        ar = NULL;
    }
    authres_free(&ar);
}

/* The value of a From field, without the name and final CRLF. */
static void keep_from(struct authcheck *ac, const char *f, size_t len)
{
    if (ac->n_from == FROM_MAX)
        return;
    size_t v = sizeof "From:" - 1, end = len;
    while (end > v && (f[end - 1] == '\n' || f[end - 1] == '\r'))
        end--;
    ac->from[ac->n_from++] = sm_strndup(f + v, end - v);
}

static bool on_field(void *arg, const char *f, size_t len, bool complete)
{
    struct authcheck *ac = arg;
    if (ac->fields++ == 0)
        return true; /* our own Received: not part of what the sender signed */
    if (claims_our_id(ac, f, len, complete)) {
        ac->dropped_ar++;
        return false;
    }
    if (!complete) {
        /* a field too long for us to check: the signatures that cover it
         * cannot be verified and fail on their own */
        return true;
    }
    if (is_field(f, len, "From"))
        keep_from(ac, f, len);
    else if (is_field(f, len, "ARC-Authentication-Results"))
        keep_aar(ac, f, len);
    dkim_verifier_header(ac->dkim, f, len);
    arc_verifier_header(ac->arc, f, len);
    return true;
}

static void on_headers_done(void *arg)
{
    struct authcheck *ac = arg;
    dkim_verifier_headers_done(ac->dkim);
    arc_verifier_headers_done(ac->arc);
}

static void on_body(void *arg, const void *p, size_t n)
{
    struct authcheck *ac = arg;
    dkim_verifier_body(ac->dkim, p, n);
    arc_verifier_body(ac->arc, p, n);
}

static int on_out(void *arg, const void *p, size_t n)
{
    struct authcheck *ac = arg;
    return ac->out(ac->out_arg, p, n);
}

static const struct msgstream_sink sink = {on_field, on_headers_done, on_body, on_out};

int authcheck_write(struct authcheck *ac, const void *p, size_t n, authcheck_out_fn *out,
                    void *arg)
{
    ac->out = out;
    ac->out_arg = arg;
    return msgstream_write(ac->ms, p, n);
}

/* --- DNS ----------------------------------------------------------------- */

static void forget(struct authcheck *ac, struct asked *a)
{
    for (size_t i = 0; i < ac->n_asked; i++) {
        if (ac->asked[i] == a) {
            ac->asked[i] = ac->asked[--ac->n_asked];
            break;
        }
    }
    free(a);
}

static void on_answer(void *arg, struct dns_answer *answer)
{
    struct asked *a = arg;
    struct authcheck *ac = a->ac;
    dnsview_put(ac->view, a->name, a->type, answer);
    forget(ac, a);
    step(ac);
}

static bool in_flight(const struct authcheck *ac, const char *name, uint16_t type)
{
    for (size_t i = 0; i < ac->n_asked; i++)
        if (ac->asked[i]->type == type && strcmp(ac->asked[i]->name, name) == 0)
            return true;
    return false;
}

/* Ask every pending question not asked yet.  After the timeout nothing
 * is asked any more: the questions are answered "temporary failure". */
static bool ask(struct authcheck *ac)
{
    bool answered_now = false;
    for (size_t i = 0; i < dnsview_pending(ac->view);) {
        const char *name;
        uint16_t type;
        dnsview_pending_at(ac->view, i, &name, &type);
        if (ac->timed_out) {
            dnsview_put(ac->view, name, type, dns_answer_new(DNS_TEMPFAIL));
            answered_now = true;
            continue; /* the question left the pending list */
        }
        i++;
        if (in_flight(ac, name, type))
            continue;
        struct asked *a = sm_malloc(sizeof *a);
        a->ac = ac;
        snprintf(a->name, sizeof a->name, "%s", name);
        a->type = type;
        ac->asked = sm_realloc(ac->asked, (ac->n_asked + 1) * sizeof *ac->asked);
        ac->asked[ac->n_asked++] = a;
        a->q = dns_resolve(ac->env->resolver, a->name, type, on_answer, a);
    }
    return answered_now;
}

static void cancel_all(struct authcheck *ac)
{
    for (size_t i = 0; i < ac->n_asked; i++) {
        dns_query_cancel(&ac->asked[i]->q);
        free(ac->asked[i]);
    }
    ac->n_asked = 0;
}

/* --- the verdict ----------------------------------------------------------- */

static void add_spf(struct authres_result *r, const struct spf_outcome *o, const char *property,
                    const char *value)
{
    r->method = "spf";
    r->result = spf_result_name(o->result);
    r->comment = o->problem[0] ? o->problem : o->mechanism[0] ? o->mechanism : NULL;
    authres_add_prop(r, "smtp", property, value);
}

static size_t add_dkim(struct authcheck *ac, struct authres_result *r, size_t room)
{
    size_t n = dkim_verifier_count(ac->dkim);
    if (n == 0) {
        r[0].method = "dkim";
        r[0].result = "none";
        return 1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n && k < room; i++, k++) {
        const struct dkim_sig_result *d = dkim_verifier_get(ac->dkim, i);
        r[k].method = "dkim";
        r[k].result = dkim_result_name(d->result);
        r[k].reason = d->reason[0] ? d->reason : NULL;
        if (d->unsigned_body && d->result == DKIM_PASS)
            r[k].comment = "l= leaves part of the body unsigned";
        if (d->d[0]) {
            authres_add_prop(&r[k], "header", "d", d->d);
            authres_add_prop(&r[k], "header", "s", d->s);
            authres_add_prop(&r[k], "header", "a", d->a);
            authres_add_prop(&r[k], "header", "b", d->header_b);
        }
    }
    return k;
}

/* The ARC chain validates, its newest seal is by a sealer the operator
 * trusts, and that sealer recorded a DMARC pass: the sealer's name, or
 * NULL.  (RFC 8617 §7.2: a receiver may use a trusted forwarder's
 * results in its own policy decision.) */
static const char *trusted_dmarc_pass(const struct authcheck *ac)
{
    const struct arc_result *a = arc_verifier_get(ac->arc);
    if (a->cv != ARC_PASS || a->sets == 0 || ac->aar == NULL || ac->aar->arc_instance != a->sets)
        return NULL;
    const char *sealer = a->set[a->sets - 1].seal_d;
    bool trusted = false;
    for (size_t i = 0; i < ac->env->n_trusted_sealers && !trusted; i++)
        trusted = strcasecmp(ac->env->trusted_sealers[i], sealer) == 0;
    for (size_t i = 0; trusted && i < ac->aar->n; i++)
        if (strcmp(ac->aar->ri[i].method, "dmarc") == 0 &&
            strcmp(ac->aar->ri[i].result, "pass") == 0)
            return sealer;
    return NULL;
}

static void add_arc(struct authcheck *ac, struct authres_result *r, char *buf, size_t cap)
{
    const struct arc_result *a = arc_verifier_get(ac->arc);
    r->method = "arc";
    r->result = arc_cv_name(a->cv);
    if (a->sets > 0) {
        bool why = a->cv == ARC_FAIL && a->reason[0];
        snprintf(buf, cap, "i=%u sealed by %s%s%s%s", a->sets, a->set[a->sets - 1].seal_d,
                 ac->arc_trusted ? ", trusted: its dmarc=pass is kept" : "", why ? ": " : "",
                 why ? a->reason : "");
        r->comment = buf;
    }
}

static void build_verdict(struct authcheck *ac)
{
    struct authres_result r[16];
    char dmarc_c[64], arc_c[DNS_NAME_MAX + DKIM_REASON_MAX + 64];
    size_t n = 0;
    memset(r, 0, sizeof r);
    /* with a null sender, the MAIL FROM check is the HELO check (§2.4) */
    if (ac->mail_from[0])
        add_spf(&r[n++], &ac->spf, "mailfrom", ac->mail_from);
    else
        add_spf(&r[n++], &ac->spf, "helo", ac->helo);
    if (ac->mail_from[0] && helo_checkable(ac->helo))
        add_spf(&r[n++], &ac->helo_spf, "helo", ac->helo);
    n += add_dkim(ac, &r[n], 8);
    dmarc_authres(&ac->dmarc, &r[n++], dmarc_c, sizeof dmarc_c);
    if (ac->dmarc.result == DMARC_RESULT_FAIL)
        ac->arc_trusted = trusted_dmarc_pass(ac);
    add_arc(ac, &r[n++], arc_c, sizeof arc_c);
    if (authres_build(&ac->header, 0, ac->env->authserv_id, r, n) < 0) {
        sm_buf_reset(&ac->header);
        authres_build(&ac->header, 0, ac->env->authserv_id, r, 1);
    }
    struct authcheck_verdict *v = &ac->verdict;
    v->action = AUTHCHECK_DELIVER;
    if (ac->dmarc.result == DMARC_RESULT_FAIL && ac->arc_trusted == NULL) {
        if (ac->dmarc.disposition == DMARC_POLICY_REJECT && ac->env->dmarc_reject)
            v->action = AUTHCHECK_REJECT;
        else if (ac->dmarc.disposition != DMARC_POLICY_NONE && ac->env->dmarc_quarantine)
            v->action = AUTHCHECK_JUNK;
    }
    v->reply = "550 5.7.1 Message refused: it fails the DMARC policy of its author domain";
    v->header = ac->header.data;
    v->header_len = ac->header.len;
    sm_buf_printf(&ac->summary, "spf=%s dkim=%zu dmarc=%s arc=%s%s%s",
                  spf_result_name(ac->spf.result), dkim_verifier_count(ac->dkim),
                  dmarc_result_name(ac->dmarc.result),
                  arc_cv_name(arc_verifier_get(ac->arc)->cv),
                  ac->arc_trusted ? " arc-trusted" : "", ac->dropped_ar ? " removed-ar" : "");
    for (size_t i = 0; i < dkim_verifier_count(ac->dkim) && i < 8; i++)
        sm_buf_printf(&ac->summary, "%s%s", i ? "," : ":",
                      dkim_result_name(dkim_verifier_get(ac->dkim, i)->result));
    v->summary = sm_buf_str(&ac->summary);
}

static void on_deliver(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct authcheck *ac = arg;
    authcheck_done_fn *done = ac->done;
    ac->done = NULL;
    if (done != NULL)
        done(ac->done_arg, &ac->verdict);
}

/* --- running the checks ------------------------------------------------------ */

static void run_dmarc(struct authcheck *ac)
{
    const char *dkim_domains[8];
    size_t n_dkim = 0;
    for (size_t i = 0; i < dkim_verifier_count(ac->dkim) && n_dkim < 8; i++) {
        const struct dkim_sig_result *d = dkim_verifier_get(ac->dkim, i);
        if (d->result == DKIM_PASS && !d->unsigned_body)
            dkim_domains[n_dkim++] = d->d;
    }
    struct dmarc_input in = {
        .from = (const char *const *)ac->from,
        .n_from = ac->n_from,
        .spf_domain = ac->spf.domain[0] ? ac->spf.domain : NULL,
        .spf_pass = ac->spf.result == SPF_PASS,
        .dkim_domains = dkim_domains,
        .n_dkim = n_dkim,
        .pct_draw = ac->pct_draw,
    };
    if (dmarc_check(ac->view, ac->env->psl, &in, &ac->dmarc) == MAILAUTH_DONE)
        ac->dmarc_done = true;
}

static void step(struct authcheck *ac)
{
    do {
        if (!ac->spf_done && spf_check(ac->view, &ac->spf_req, &ac->spf) == MAILAUTH_DONE)
            ac->spf_done = true;
        if (!ac->helo_done && spf_check(ac->view, &ac->helo_req, &ac->helo_spf) == MAILAUTH_DONE)
            ac->helo_done = true;
        if (!ac->finishing)
            continue;
        if (!ac->dkim_done &&
            dkim_verifier_result(ac->dkim, ac->view, time(NULL)) == MAILAUTH_DONE)
            ac->dkim_done = true;
        if (!ac->arc_done && arc_verifier_result(ac->arc, ac->view, time(NULL)) == MAILAUTH_DONE)
            ac->arc_done = true;
        if (ac->spf_done && ac->dkim_done && !ac->dmarc_done)
            run_dmarc(ac);
    } while (ask(ac));
    if (!ac->finishing || !ac->spf_done || !ac->helo_done || !ac->dkim_done || !ac->arc_done ||
        !ac->dmarc_done || ac->verdict.header != NULL)
        return;
    cancel_all(ac);
    if (ac->timer != NULL)
        event_del(ac->timer);
    build_verdict(ac);
    event_active(ac->deliver, 0, 0);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct authcheck *ac = arg;
    ac->timed_out = true;
    cancel_all(ac);
    log_info("authcheck timeout pending=%zu", dnsview_pending(ac->view));
    step(ac);
}

void authcheck_finish(struct authcheck *ac, authcheck_done_fn *done, void *arg)
{
    msgstream_end(ac->ms); /* may still write a last field: call before the commit */
    dkim_verifier_body_done(ac->dkim);
    arc_verifier_body_done(ac->arc);
    ac->done = done;
    ac->done_arg = arg;
    ac->finishing = true;
    ac->deliver = event_new(ac->env->base, -1, 0, on_deliver, ac);
    ac->timer = evtimer_new(ac->env->base, on_timeout, ac);
    struct timeval tv = {ac->env->timeout, 0};
    evtimer_add(ac->timer, &tv);
    step(ac);
}

void authcheck_free(struct authcheck **acp)
{
    struct authcheck *ac = *acp;
    if (ac == NULL)
        return;
    cancel_all(ac);
    free(ac->asked);
    if (ac->timer != NULL)
        event_free(ac->timer);
    if (ac->deliver != NULL)
        event_free(ac->deliver);
    msgstream_free(&ac->ms);
    dkim_verifier_free(&ac->dkim);
    arc_verifier_free(&ac->arc);
    authres_free(&ac->aar);
    dnsview_free(&ac->view);
    for (size_t i = 0; i < ac->n_from; i++)
        free(ac->from[i]);
    sm_buf_free(&ac->header);
    sm_buf_free(&ac->summary);
    free(ac->helo);
    free(ac->mail_from);
    free(ac);
    *acp = NULL;
}
