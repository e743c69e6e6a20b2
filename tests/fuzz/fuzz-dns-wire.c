/* fuzz-dns-wire.c — the DNS reply decoder (dns/wire.c) on arbitrary bytes.
 *
 * The first byte picks the question type (A, PTR, MX, TXT, AAAA, TLSA);
 * with its top bit set, the rest is instead a presentation-form name for
 * dns_name_flatten().  Otherwise the rest is the reply, and the question
 * name is read from the reply itself (uncompressed labels at offset 12)
 * so that inputs get past the question check.  Results are checked against
 * the decoder's contract: bounded counts and lengths, lowercase names, only
 * records of the asked type, no records unless DNS_OK. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/answer.h"
#include "dns/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint16_t types[] = {DNS_T_A, DNS_T_PTR, DNS_T_MX, DNS_T_TXT, DNS_T_AAAA, DNS_T_TLSA};

/* The question name as text, or "example.org" if it is not plain labels. */
static void question_name(const uint8_t *p, size_t len, char out[DNS_NAME_MAX + 2])
{
    size_t o = 0, i = 12;
    while (i < len && p[i] != 0 && p[i] < 64 && i + 1 + p[i] <= len) {
        if (o + p[i] + 1 > DNS_NAME_MAX)
            break;
        if (o > 0)
            out[o++] = '.';
        for (size_t j = 0; j < p[i]; j++) {
            uint8_t c = p[i + 1 + j];
            out[o++] = c > 0x20 && c < 0x7f && c != '.' && c != '\\' ? (char)c : 'x';
        }
        i += 1 + p[i];
    }
    out[o] = '\0';
    if (o == 0)
        snprintf(out, DNS_NAME_MAX + 2, "%s", "example.org");
}

static void check_name(const char *name)
{
    if (name == NULL || strlen(name) > DNS_NAME_MAX)
        abort();
    for (const char *c = name; *c; c++)
        if ((*c >= 'A' && *c <= 'Z') || (unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
            abort();
}

static void check_answer(const struct dns_answer *a, uint16_t qtype)
{
    if (a->status != DNS_OK && a->n != 0)
        abort();
    if (a->n > DNS_ANSWER_RR_MAX || a->secure || a->bogus || (a->n == 0 && a->ttl != 0))
        abort();
    for (size_t i = 0; i < a->n; i++) {
        const struct dns_rr *rr = &a->rr[i];
        if (rr->type != qtype)
            abort();
        switch (qtype) {
        case DNS_T_MX:
        case DNS_T_PTR:
            check_name(rr->name);
            if (rr->data != NULL)
                abort();
            break;
        case DNS_T_TXT:
            if (rr->len > DNS_TXT_MAX || rr->data == NULL || rr->data[rr->len] != '\0')
                abort();
            break;
        case DNS_T_TLSA:
            if (rr->len > DNS_WIRE_PKT_MAX || (rr->len > 0 && rr->data == NULL))
                abort();
            break;
        default:
            if (rr->name != NULL || rr->data != NULL)
                abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 0x80) {
        char *name = malloc(size);
        memcpy(name, data + 1, size - 1);
        name[size - 1] = '\0';
        uint8_t flat[DNS_WIRE_NAME_MAX];
        size_t n = dns_name_flatten(name, flat);
        if (n > DNS_WIRE_NAME_MAX || (n > 0 && flat[n - 1] != 0))
            abort();
        free(name);
        return 0;
    }
    uint16_t qtype = types[data[0] % 6];
    char qname[DNS_NAME_MAX + 2];
    question_name(data + 1, size - 1, qname);
    struct dns_answer *a = dns_answer_from_wire(data + 1, size - 1, qname, qtype);
    check_answer(a, qtype);
    struct dns_answer *c = dns_answer_dup(a);
    dns_answer_free(a);
    dns_answer_free(c);
    return 0;
}
