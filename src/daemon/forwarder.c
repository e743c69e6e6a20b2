/* forwarder.c — forwarded copies into the outbound queue (forwarder.h). */
#include "daemon/forwarder.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "crypto/seal.h"
#include "mailauth/forward.h"
#include "mailauth/srs.h"
#include "store/dkimkeys.h"
#include "store/outq.h"
#include "store/spool.h"

struct forwarder {
    struct srs *srs;
    char *authserv_id;
    const uint8_t *pk, *sk;
};

struct forwarder *forwarder_new(const struct sm_config *cfg, const uint8_t *pk,
                                const uint8_t *sk, const char **error_r)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/keys/srs.secrets", cfg->data_dir);
    if (stat(path, &st) < 0 && srs_secrets_generate(path, false, error_r) < 0)
        return NULL;
    struct srs *srs = srs_load(path, NULL, error_r);
    if (srs == NULL)
        return NULL;
    struct forwarder *f = sm_calloc(1, sizeof *f);
    f->srs = srs;
    f->authserv_id = sm_strdup(cfg->auth_serv_id[0] != '\0' ? cfg->auth_serv_id : cfg->hostname);
    f->pk = pk;
    f->sk = sk;
    return f;
}

void forwarder_free(struct forwarder **fp)
{
    struct forwarder *f = *fp;
    if (f == NULL)
        return;
    srs_free(&f->srs);
    free(f->authserv_id);
    free(f);
    *fp = NULL;
}

bool forwarder_reverse(struct forwarder *f, const char *rcpt, char *out)
{
    const char *at = strrchr(rcpt, '@');
    char original[SRS_ADDRESS_MAX + 1];
    if (at == NULL || !srs_is_srs(rcpt, (size_t)(at - rcpt)) ||
        srs_reverse(f->srs, rcpt, time(NULL), original) != SRS_OK)
        return false;
    snprintf(out, 256, "%s", original);
    return true;
}

/* The queue id of the copy for domain: a hash of both, 16 hex digits. */
static void copy_id(const char *id, const char *domain, char out[OUTQ_ID_LEN + 1])
{
    uint8_t h[SEAL_HASH_BYTES];
    char text[128];
    snprintf(text, sizeof text, "forward:%s:%s", id, domain);
    seal_hash(h, text, strlen(text));
    seal_hex_encode(out, h, OUTQ_ID_LEN / 2);
}

struct rsa_pick {
    struct dkimkey k;
    bool found;
};

static void pick_rsa(void *arg, const struct dkimkey *k)
{
    struct rsa_pick *p = arg;
    if (!p->found && k->alg == DKIMKEY_RSA_SHA256) {
        p->k = *k;
        p->found = true;
    }
}

/* The domain's active RSA key (receivers accept only rsa-sha256 in ARC
 * today), or NULL. */
static EVP_PKEY *arc_key(struct forwarder *f, struct directory *dir, const char *domain,
                         char selector[64])
{
    struct rsa_pick p = {0};
    if (directory_dkim_list(dir, domain, true, pick_rsa, &p) < 0 || !p.found)
        return NULL;
    snprintf(selector, 64, "%s", p.k.selector);
    return directory_dkim_private(dir, &p.k, f->sk);
}

int forwarder_enqueue(struct forwarder *f, struct directory *dir, const char *queue_dir,
                      const char *id, const struct spool_envelope *env, const char *domain,
                      const char *const *targets, size_t n, int body, const char **error_r)
{
    struct outq_entry e = {0};
    struct forward_result res;
    char selector[64] = "", path[4200];
    struct stat st;
    copy_id(id, domain, e.id);
    if (snprintf(path, sizeof path, "%s/%s.st", queue_dir, e.id) < (int)sizeof path &&
        stat(path, &st) == 0)
        return 0; /* routed before a crash: the copy exists */
    EVP_PKEY *key = arc_key(f, dir, domain, selector);
    struct forward_params p = {f->srs, domain, key, selector, f->authserv_id, (int64_t)time(NULL)};
    int r = forward_prepare(&p, env->mail_from, env->prefix, env->prefix_len, body, &res, error_r);
    EVP_PKEY_free(key);
    if (r < 0)
        return -1;
    if (res.arc == FORWARD_ARC_TEMPERROR) {
        forward_result_free(&res);
        *error_r = "the incoming ARC chain could not be checked: forward later";
        return -1;
    }
    e.mail_from = res.mail_from;
    e.flags = (env->smtputf8 ? OUTQ_F_SMTPUTF8 : 0) |
              (strcmp(env->body_type, "7BIT") != 0 ? OUTQ_F_8BIT : 0) |
              (res.mail_from[0] == '\0' ? OUTQ_F_NOBOUNCE : 0);
    e.created = (int64_t)time(NULL);
    e.rcpts = sm_calloc(n, sizeof *e.rcpts);
    e.n_rcpts = n;
    for (size_t i = 0; i < n; i++)
        e.rcpts[i] = (struct outq_rcpt){(char *)(uintptr_t)targets[i], OUTQ_PENDING, 0,
                                        (char *)(uintptr_t)""};
    r = outq_create(queue_dir, &e, f->pk, res.prefix.data, res.prefix.len, body, error_r);
    if (r > 0)
        log_info("forward queued queue=%s copy=%s targets=%zu arc=%s srs=%s", id, e.id, n,
                 res.arc == FORWARD_ARC_SEALED ? "sealed" : "none",
                 res.srs_kept ? "kept" : "rewritten");
    free(e.rcpts);
    forward_result_free(&res);
    return r < 0 ? -1 : 0;
}
