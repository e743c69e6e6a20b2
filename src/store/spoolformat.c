/* spoolformat.c — the envelope codec and format versions of spool bytes
 * (the format: the top of spool.c). */
#include "store/spool-internal.h"

#include <string.h>

#include "core/bytes.h"
#include "core/mem.h"

static int put_str(struct sm_buf *b, const char *s)
{
    uint8_t len[4];
    size_t n = s ? strlen(s) : 0;
    if (n > SPOOL_STR_MAX)
        return -1;
    sm_put_be32(len, (uint32_t)n);
    if (sm_buf_append(b, len, 4) < 0)
        return -1;
    return n > 0 ? sm_buf_append(b, s, n) : 0;
}

/* Append the encoded envelope to b; -1 with *error_r if it breaks a bound. */
int spool_envelope_encode(const struct spool_envelope *env, struct sm_buf *b, const char **error_r)
{
    uint8_t fixed[1 + 8 + 4];

    if (env->n_rcpts < 1 || env->n_rcpts > SPOOL_RCPTS_MAX) {
        *error_r = "envelope needs 1 to 100000 recipients";
        return -1;
    }
    if (put_str(b, env->helo) < 0 || put_str(b, env->client) < 0 ||
        put_str(b, env->mail_from) < 0 || put_str(b, env->body_type) < 0)
        goto too_long;
    fixed[0] = env->smtputf8 ? 1 : 0;
    sm_put_be64(fixed + 1, (uint64_t)env->received);
    sm_put_be32(fixed + 9, (uint32_t)env->n_rcpts);
    if (sm_buf_append(b, fixed, sizeof fixed) < 0)
        goto too_long;
    for (size_t i = 0; i < env->n_rcpts; i++)
        if (put_str(b, env->rcpts[i]) < 0)
            goto too_long;
    return 0;
too_long:
    *error_r = "envelope too large";
    return -1;
}

/* A bounded reader over the envelope bytes. */
struct cursor {
    const uint8_t *p;
    size_t left;
};

static int cur_take(struct cursor *c, size_t n, const uint8_t **p_r)
{
    if (n > c->left)
        return -1;
    *p_r = c->p;
    c->p += n;
    c->left -= n;
    return 0;
}

static int cur_str(struct cursor *c, char **s_r)
{
    const uint8_t *p;
    if (cur_take(c, 4, &p) < 0)
        return -1;
    uint32_t n = sm_get_be32(p);
    if (n > SPOOL_STR_MAX || cur_take(c, n, &p) < 0 || memchr(p, '\0', n) != NULL)
        return -1;
    *s_r = sm_strndup((const char *)p, n);
    return 0;
}

int spool_envelope_decode(const uint8_t *data, size_t len, struct spool_envelope *env)
{
    struct cursor c = {data, len};
    const uint8_t *p;

    memset(env, 0, sizeof *env);
    if (cur_str(&c, &env->helo) < 0 || cur_str(&c, &env->client) < 0 ||
        cur_str(&c, &env->mail_from) < 0 || cur_str(&c, &env->body_type) < 0 ||
        cur_take(&c, 1 + 8 + 4, &p) < 0)
        return -1;
    if (p[0] > 1)
        return -1;
    env->smtputf8 = p[0] == 1;
    env->received = (int64_t)sm_get_be64(p + 1);
    uint32_t n = sm_get_be32(p + 9);
    /* each recipient takes at least 4 bytes: bound n by what is left */
    if (n < 1 || n > SPOOL_RCPTS_MAX || n > c.left / 4)
        return -1;
    env->rcpts = sm_calloc(n, sizeof(char *));
    for (; env->n_rcpts < n; env->n_rcpts++)
        if (cur_str(&c, &env->rcpts[env->n_rcpts]) < 0)
            return -1;
    return c.left == 0 ? 0 : -1;
}

void spool_envelope_free(struct spool_envelope *env)
{
    if (env == NULL)
        return;
    sm_freep(&env->helo);
    sm_freep(&env->client);
    sm_freep(&env->mail_from);
    sm_freep(&env->body_type);
    for (size_t i = 0; env->rcpts != NULL && i < env->n_rcpts; i++)
        sm_freep(&env->rcpts[i]);
    sm_freep(&env->rcpts);
    env->n_rcpts = 0;
    sm_freep(&env->prefix);
    env->prefix_len = 0;
}

/* The format version a magic names (1, 2 or 3), or 0. */
int spool_magic_version(const uint8_t m[MAGIC_LEN])
{
    return memcmp(m, MAGIC_V1, MAGIC_LEN) == 0   ? 1
           : memcmp(m, MAGIC, MAGIC_LEN) == 0    ? 2
           : memcmp(m, MAGIC_V3, MAGIC_LEN) == 0 ? 3
                                                 : 0;
}

/* Version 3 bytes are read only as a record of a chained segment and
 * versions 1-2 only elsewhere, so bytes cannot be moved from one kind of
 * place to the other. */
bool spool_version_in_place(int v, bool chained)
{
    return v != 0 && (v == 3) == chained;
}
