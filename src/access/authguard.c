/* authguard.c — failed-login counters (see authguard.h).
 *
 * A fixed table searched linearly: logins are rare next to everything
 * else a server does, AUTHGUARD_ENTRIES comparisons cost microseconds, and
 * a fixed table cannot be grown by an attacker who varies account names. */
#include "access/authguard.h"

#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#define KEY_MAX 80

struct entry {
    char key[KEY_MAX]; /* "n:<network bytes in hex>" or "a:<account>"; "" when free */
    unsigned failures;
    int64_t last_ms;
};

struct authguard {
    struct entry e[AUTHGUARD_ENTRIES];
};

struct authguard *authguard_new(void)
{
    return sm_calloc(1, sizeof(struct authguard));
}

void authguard_free(struct authguard **g)
{
    free(*g);
    *g = NULL;
}

/* The client's network, as anonymised logs show it: IPv4 /24, IPv6 /48. */
static void network_key(const struct sockaddr *sa, char key[KEY_MAX])
{
    const uint8_t *b = NULL;
    size_t n = 0;
    if (sa != NULL && sa->sa_family == AF_INET) {
        b = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
        n = 3;
    } else if (sa != NULL && sa->sa_family == AF_INET6) {
        b = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        n = 6;
    }
    int len = snprintf(key, KEY_MAX, "n:");
    for (size_t i = 0; i < n; i++)
        len += snprintf(key + len, KEY_MAX - (size_t)len, "%02x", b[i]);
}

static void account_key(const char *account, char key[KEY_MAX])
{
    size_t n = 0;
    key[n++] = 'a';
    key[n++] = ':';
    for (size_t i = 0; account[i] != '\0' && n < KEY_MAX - 1; i++)
        key[n++] = (char)tolower((unsigned char)account[i]);
    key[n] = '\0';
}

static struct entry *lookup(struct authguard *g, const char *key, int64_t now_ms, bool create)
{
    struct entry *free_slot = NULL, *stalest = &g->e[0];
    for (size_t i = 0; i < AUTHGUARD_ENTRIES; i++) {
        struct entry *e = &g->e[i];
        if (e->key[0] != '\0' && now_ms - e->last_ms > AUTHGUARD_WINDOW_S * 1000ll)
            e->key[0] = '\0'; /* faded */
        if (e->key[0] == '\0') {
            if (free_slot == NULL)
                free_slot = e;
            continue;
        }
        if (strcmp(e->key, key) == 0)
            return e;
        if (e->last_ms < stalest->last_ms)
            stalest = e;
    }
    if (!create)
        return NULL;
    struct entry *e = free_slot != NULL ? free_slot : stalest;
    snprintf(e->key, KEY_MAX, "%s", key);
    e->failures = 0;
    e->last_ms = now_ms;
    return e;
}

static int64_t delay_for(unsigned failures)
{
    if (failures < AUTHGUARD_FREE_FAILURES)
        return 0;
    unsigned shift = failures - AUTHGUARD_FREE_FAILURES;
    if (shift > 10)
        return AUTHGUARD_DELAY_MAX_MS;
    int64_t d = (int64_t)AUTHGUARD_DELAY_BASE_MS << shift;
    return d < AUTHGUARD_DELAY_MAX_MS ? d : AUTHGUARD_DELAY_MAX_MS;
}

int64_t authguard_check(struct authguard *g, const struct sockaddr *client, const char *account,
                        int64_t now_ms)
{
    char key[KEY_MAX];
    network_key(client, key);
    struct entry *net = lookup(g, key, now_ms, false);
    if (net != NULL && net->failures >= AUTHGUARD_BLOCK_FAILURES)
        return -1;
    account_key(account, key);
    struct entry *acc = lookup(g, key, now_ms, false);
    int64_t a = acc != NULL ? delay_for(acc->failures) : 0;
    int64_t n = net != NULL ? delay_for(net->failures) : 0;
    return a > n ? a : n;
}

void authguard_failed(struct authguard *g, const struct sockaddr *client, const char *account,
                      int64_t now_ms)
{
    char key[KEY_MAX];
    network_key(client, key);
    struct entry *e = lookup(g, key, now_ms, true);
    e->failures++;
    e->last_ms = now_ms;
    account_key(account, key);
    e = lookup(g, key, now_ms, true);
    e->failures++;
    e->last_ms = now_ms;
}

void authguard_succeeded(struct authguard *g, const struct sockaddr *client, const char *account)
{
    (void)client; /* one right password says nothing about the rest of a network */
    char key[KEY_MAX];
    account_key(account, key);
    struct entry *e = lookup(g, key, 0, false);
    if (e != NULL)
        e->key[0] = '\0';
}
