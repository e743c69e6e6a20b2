/* fuzz-sts-policy.c — the MTA-STS parsers (src/smtp/sts-policy.h) on
 * hostile input: byte 0 picks the target, the rest is the text.
 *   even  sts_policy_parse() of the text as a policy file;
 *   odd   sts_txt_is_sts() and sts_txt_parse() of the text as a TXT record.
 * Contracts checked: a parsed policy has a known mode, max_age within the
 * cap, at most STS_MX_MAX lowercase patterns that fit and match
 * themselves, and an mx unless the mode is none; a failure says why; a
 * TXT id is 1-32 letters and digits and only in a record that claims to
 * be MTA-STS. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/sts-policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_policy(const char *text, size_t len)
{
    struct sts_policy p;
    const char *why = NULL;
    if (!sts_policy_parse(text, len, &p, &why)) {
        if (why == NULL)
            abort();
        return;
    }
    if (why != NULL || p.mode > STS_MODE_ENFORCE || p.max_age > STS_MAX_AGE_MAX ||
        p.n_mx > STS_MX_MAX || (p.mode != STS_MODE_NONE && p.n_mx == 0))
        abort();
    for (size_t i = 0; i < p.n_mx; i++) {
        size_t n = strnlen(p.mx[i], sizeof p.mx[i]);
        if (n == 0 || n > STS_NAME_MAX)
            abort();
        for (size_t k = 0; k < n; k++)
            if (isupper((unsigned char)p.mx[i][k]))
                abort();
        const char *host = p.mx[i][0] == '*' ? NULL : p.mx[i];
        if (host != NULL && !sts_policy_allows_mx(&p, host))
            abort();
    }
}

static void check_txt(const char *text, size_t len)
{
    char id[STS_ID_MAX + 1];
    bool claims = sts_txt_is_sts(text, len);
    if (!sts_txt_parse(text, len, id))
        return;
    size_t n = strnlen(id, sizeof id);
    if (!claims || n == 0 || n > STS_ID_MAX)
        abort();
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > STS_POLICY_MAX + 16)
        return 0;
    const char *text = (const char *)data + 1;
    if (data[0] & 1)
        check_txt(text, size - 1);
    else
        check_policy(text, size - 1);
    return 0;
}
