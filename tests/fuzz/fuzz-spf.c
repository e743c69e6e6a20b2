/* fuzz-spf.c — spf_check() on hostile SPF records and DNS answers.
 *
 * Input: byte 0 picks the client family and identity, bytes 1-16 the
 * client address; the rest is split at '\n' into chunks.  Chunk 0 is the
 * TXT record of the checked domain (fuzz.test), chunk 1 the sender's local
 * part, chunk 2 the HELO name.  Every other question (include and redirect
 * targets, exp=, A, AAAA, MX, PTR) is answered from the chunk a hash of
 * the question picks: its first byte chooses NXDOMAIN, a DNS error or
 * records, the rest makes TXT strings ('|' separates records), addresses,
 * or host names (',' separates them; '=' stands for the client's reverse
 * name so that PTR validation can succeed).
 *
 * The driver loop is the daemon's: answer what is pending, run again.  It
 * must end within DNSVIEW_MAX + 2 rounds, and the outcome must hold
 * bounded, printable text. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "mailauth/spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHUNKS_MAX 32

struct input {
    const uint8_t *chunk[CHUNKS_MAX];
    size_t len[CHUNKS_MAX];
    size_t n;
    struct spf_request req;
};

static uint32_t hash(const char *name, uint16_t type)
{
    uint32_t h = 2166136261u ^ type;
    for (const char *p = name; *p; p++) {
        char c = *p >= 'A' && *p <= 'Z' ? (char)(*p + 32) : *p;
        h = (h ^ (uint8_t)c) * 16777619u;
    }
    return h;
}

static void add_txt(struct dns_answer *a, const uint8_t *p, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n && a->n < 8; i++) {
        if (i < n && p[i] != '|')
            continue;
        struct dns_rr rr = {.type = DNS_T_TXT, .data = (uint8_t *)(uintptr_t)(p + start), .len = i - start};
        dns_answer_add(a, &rr);
        start = i + 1;
    }
}

static void add_addrs(struct dns_answer *a, const struct input *in, uint16_t type,
                      const uint8_t *p, size_t n)
{
    size_t w = type == DNS_T_A ? 4 : 16;
    for (size_t i = 0; i < n && a->n < 12; i += w) {
        struct dns_rr rr = {.type = type};
        if (p[i] & 1) /* often the client itself, so that mechanisms match */
            memcpy(rr.addr, in->req.ip, w);
        else
            memcpy(rr.addr, p + i, n - i < w ? n - i : w);
        dns_answer_add(a, &rr);
    }
}

static void reverse_name(const struct input *in, char *buf, size_t size)
{
    const uint8_t *ip = in->req.ip;
    if (in->req.family == AF_INET) {
        snprintf(buf, size, "%u.%u.%u.%u.in-addr.arpa", ip[3], ip[2], ip[1], ip[0]);
        return;
    }
    size_t k = 0;
    for (int i = 15; i >= 0; i--)
        k += (size_t)snprintf(buf + k, size - k, "%x.%x.", ip[i] & 15, ip[i] >> 4);
    snprintf(buf + k, size - k, "ip6.arpa");
}

static void add_names(struct dns_answer *a, const struct input *in, uint16_t type,
                      const uint8_t *p, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n && a->n < 16; i++) {
        if (i < n && p[i] != ',')
            continue;
        char name[300];
        size_t len = i - start < 253 ? i - start : 253;
        memcpy(name, p + start, len);
        name[len] = '\0';
        if (strcmp(name, "=") == 0)
            reverse_name(in, name, sizeof name);
        struct dns_rr rr = {.type = type, .pref = (uint16_t)i, .name = name};
        dns_answer_add(a, &rr);
        start = i + 1;
    }
}

static struct dns_answer *answer(const struct input *in, const char *name, uint16_t type)
{
    const uint8_t *p;
    size_t n;
    if (type == DNS_T_TXT && strcmp(name, "fuzz.test") == 0) {
        struct dns_answer *a = dns_answer_new(DNS_OK);
        struct dns_rr rr = {.type = DNS_T_TXT, .data = (uint8_t *)(uintptr_t)in->chunk[0], .len = in->len[0]};
        dns_answer_add(a, &rr);
        return a;
    }
    size_t k = in->n > 3 ? 3 + hash(name, type) % (in->n - 3) : 0;
    p = in->chunk[k];
    n = in->len[k];
    if (n == 0)
        return dns_answer_new(DNS_NXDOMAIN);
    switch (p[0] % 8) {
    case 0:
        return dns_answer_new(DNS_NXDOMAIN);
    case 1:
        return dns_answer_new(DNS_TEMPFAIL);
    case 2:
        return dns_answer_new(DNS_PERMFAIL);
    }
    struct dns_answer *a = dns_answer_new(DNS_OK);
    if (type == DNS_T_TXT)
        add_txt(a, p + 1, n - 1);
    else if (type == DNS_T_A || type == DNS_T_AAAA)
        add_addrs(a, in, type, p + 1, n - 1);
    else
        add_names(a, in, type, p + 1, n - 1);
    return a;
}

static char *chunk_str(const struct input *in, size_t k)
{
    size_t n = k < in->n ? in->len[k] : 0;
    char *s = malloc(n + 1);
    if (n)
        memcpy(s, in->chunk[k], n);
    s[n] = '\0';
    return s;
}

static void check_text(const char *s, size_t size)
{
    size_t n = strnlen(s, size);
    if (n == size)
        abort();
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 17 || size > 16384)
        return 0;
    struct input in = {0};
    in.req.family = data[0] & 1 ? AF_INET6 : AF_INET;
    in.req.identity = data[0] & 2 ? SPF_ID_HELO : SPF_ID_MAILFROM;
    memcpy(in.req.ip, data + 1, 16);
    in.req.now = 1700000000;
    in.req.receiver = "mx.fuzz.test";
    const uint8_t *p = data + 17, *end = data + size;
    while (in.n < CHUNKS_MAX) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        in.chunk[in.n] = p;
        in.len[in.n++] = (size_t)((nl ? nl : end) - p);
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    char *local = chunk_str(&in, 1), *helo = chunk_str(&in, 2);
    char *sender = malloc(strlen(local) + 16);
    sprintf(sender, "%s@fuzz.test", local);
    in.req.sender = data[0] & 4 ? "" : sender;
    in.req.helo = data[0] & 8 ? "fuzz.test" : helo;

    struct dnsview *v = dnsview_new();
    struct spf_outcome out;
    int rounds = 0;
    while (spf_check(v, &in.req, &out) == MAILAUTH_NEED_DNS) {
        if (++rounds > DNSVIEW_MAX + 2 || dnsview_pending(v) == 0)
            abort(); /* no progress: the restart protocol is broken */
        size_t n = dnsview_pending(v);
        for (size_t i = 0; i < n; i++) {
            const char *name;
            uint16_t type;
            dnsview_pending_at(v, 0, &name, &type); /* each put removes one */
            char copy[DNS_NAME_MAX + 1];
            snprintf(copy, sizeof copy, "%s", name);
            dnsview_put(v, copy, type, answer(&in, copy, type));
        }
    }
    if ((unsigned)out.result > SPF_PERMERROR || out.lookups > SPF_LOOKUP_MAX + 1 ||
        out.void_lookups > SPF_VOID_MAX + 1)
        abort();
    check_text(out.domain, sizeof out.domain);
    check_text(out.mechanism, sizeof out.mechanism);
    check_text(out.explanation, sizeof out.explanation);
    check_text(out.problem, sizeof out.problem);
    spf_result_name(out.result);
    dnsview_free(&v);
    free(local);
    free(helo);
    free(sender);
    return 0;
}
