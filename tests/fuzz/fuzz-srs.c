/* fuzz-srs.c — the SRS reverse parser (srs_reverse), the forward path and
 * the secret-file parser (src/mailauth/srs.h) on hostile input.
 *
 * Byte 0 picks the target, byte 1 the day (the clock is day 19675 plus
 * byte 1 minus 128); the rest is the text (cut at a NUL byte):
 *   0  srs_reverse() of the text as a bounce address;
 *   1  srs_forward() of the text as a sender, at forwarder "fwd.example":
 *      what it makes must reverse to the sender again, and an SRS1 made
 *      from it must reverse to what it was made from;
 *   2  the text split at its first '\n' into sender and forwarder domain,
 *      forwarded, then reversed likewise;
 *   3  srs_add_secrets_text() on the text.
 * Contracts checked: out is "" unless the result says otherwise, results
 * are within the enum, every address written fits SRS_ADDRESS_MAX with a
 * local part of at most SRS_LOCAL_MAX, and round trips are exact. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailauth/srs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DAY 86400
#define BASE_DAY 19675

static struct srs *the_srs(void)
{
    static struct srs *srs;
    if (srs == NULL) {
        const char *err = NULL;
        srs = srs_new(NULL, &err);
        if (srs == NULL || srs_add_secret(srs, "c2VjcmV0LXNlY3JldC1zZWNyZXQ=", 28, &err) < 0)
            abort();
    }
    return srs;
}

static void check_out(enum srs_result r, const char *out)
{
    if (r > SRS_TOO_LONG)
        abort();
    size_t len = strlen(out);
    if (len > SRS_ADDRESS_MAX)
        abort();
    if (r != SRS_OK && r != SRS_UNCHANGED && len != 0)
        abort();
    if (r == SRS_OK) {
        const char *at = strrchr(out, '@');
        if (at == NULL || at == out || (size_t)(at - out) > SRS_LOCAL_MAX || at[1] == '\0')
            abort();
    }
}

static void fuzz_reverse(const char *text, time_t now)
{
    char out[SRS_ADDRESS_MAX + 1];
    enum srs_result r = srs_reverse(the_srs(), text, now, out);
    check_out(r, out);
    if (r == SRS_UNCHANGED)
        abort();
    size_t local = strcspn(text, "@");
    if ((r == SRS_NOT_SRS) == srs_is_srs(text, local < strlen(text) ? local : strlen(text)))
        abort();
}

static void fuzz_forward(const char *sender, const char *domain, time_t now)
{
    struct srs *srs = the_srs();
    char out[SRS_ADDRESS_MAX + 1], back[SRS_ADDRESS_MAX + 1], s1[SRS_ADDRESS_MAX + 1];
    enum srs_result r = srs_forward(srs, sender, domain, now, out);
    check_out(r, out);
    if (r == SRS_UNCHANGED && strcmp(out, sender) != 0 && out[0] != '\0')
        abort();
    if (r != SRS_OK)
        return;
    /* the made address is at domain F and reverses to the sender */
    const char *at = strrchr(out, '@');
    if (strcasecmp(at + 1, domain) != 0)
        abort();
    enum srs_result b = srs_reverse(srs, out, now, back);
    check_out(b, back);
    if (b != SRS_OK)
        abort();
    if (strncasecmp(out, "SRS0", 4) == 0 && strcmp(back, sender) != 0)
        abort();
    if (strncasecmp(out, "SRS1", 4) == 0 && strncasecmp(back, "SRS0", 4) != 0)
        abort();
    /* forwarded on by another domain: SRS1, which reverses to out when out
     * was our SRS0 */
    r = srs_forward(srs, out, "next.example", now, s1);
    check_out(r, s1);
    if (r == SRS_OK) {
        if (strncmp(s1, "SRS1=", 5) != 0 || srs_reverse(srs, s1, now, back) != SRS_OK)
            abort();
        if (strncmp(out, "SRS0", 4) == 0 && strcmp(back, out) != 0)
            abort();
    } else if (r != SRS_TOO_LONG && r != SRS_UNCHANGED) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 4096)
        return 0;
    char *text = malloc(size - 1);
    memcpy(text, data + 2, size - 2);
    text[size - 2] = '\0';
    time_t now = (time_t)(BASE_DAY + (int)data[1] - 128) * DAY + 3600;
    switch (data[0] % 4) {
    case 0:
        fuzz_reverse(text, now);
        break;
    case 1:
        fuzz_forward(text, "fwd.example", now);
        break;
    case 2: {
        char *nl = strchr(text, '\n');
        if (nl != NULL) {
            *nl = '\0';
            fuzz_forward(text, nl + 1, now);
        }
        break;
    }
    default: {
        const char *err = NULL;
        struct srs *srs = srs_new(NULL, &err);
        int n = srs_add_secrets_text(srs, text, strlen(text), &err);
        if (n == 0 || n > SRS_SECRETS_MAX || (n < 0 && err == NULL))
            abort();
        if (n > 0) {
            char out[SRS_ADDRESS_MAX + 1], back[SRS_ADDRESS_MAX + 1];
            if (srs_forward(srs, "u@o.example", "f.example", now, out) != SRS_OK ||
                srs_reverse(srs, out, now, back) != SRS_OK || strcmp(back, "u@o.example") != 0)
                abort();
        }
        srs_free(&srs);
    }
    }
    free(text);
    return 0;
}
