/* fuzz-authres.c — Authentication-Results read and written on hostile text.
 *
 * Byte 0: bit 0 selects the ARC form, bit 1 the writer.
 *  - Reader: authres_parse() of the rest.  When it succeeds,
 *    authres_authserv_id() must give the same id, and every string must be
 *    NUL-terminated within the bounds.
 *  - Writer: the rest is split at '\0' into an authserv-id, a comment, a
 *    reason and up to AUTHRES_PROPS_MAX property values; authres_build()
 *    must give a field with CRLF only before WSP, no control bytes, lines
 *    under 998 bytes, and reading it back must give the id and the values
 *    as the writer cleaned them (so nothing in a value can end it, start a
 *    new result or a new header field). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/authres.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_parsed(const struct authres *a, bool arc)
{
    if (a->n > AUTHRES_RESINFO_MAX || (arc && (a->arc_instance < 1 || a->arc_instance > 50)))
        abort();
    for (size_t i = 0; i < a->n; i++) {
        const struct authres_resinfo *ri = &a->ri[i];
        if (ri->n_props > AUTHRES_PROPS_MAX || ri->method[0] == '\0' || ri->result[0] == '\0')
            abort();
        for (size_t k = 0; k < ri->n_props; k++)
            if (ri->props[k].ptype[0] == '\0' || ri->props[k].property[0] == '\0')
                abort();
    }
}

static void fuzz_read(const char *s, size_t len, bool arc)
{
    const char *err = NULL;
    struct authres *a = authres_parse(s, len, arc, &err);
    if (a == NULL) {
        if (err == NULL)
            abort();
        return;
    }
    check_parsed(a, arc);
    char id[AUTHRES_PARSE_MAX + 1];
    long n = authres_authserv_id(s, len, arc, id, sizeof id);
    if (n < 0 || strcmp(id, a->authserv_id) != 0)
        abort();
    authres_free(&a);
}

/* The shape of a built field (see the top of this file). */
static void check_field(const char *f, size_t len)
{
    if (len < 2 || f[len - 2] != '\r' || f[len - 1] != '\n' || strlen(f) != len)
        abort();
    size_t line = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)f[i];
        if (c == '\r') {
            if (f[i + 1] != '\n' || (i + 2 < len && f[i + 2] != ' ' && f[i + 2] != '\t'))
                abort();
            i++;
            line = 0;
            continue;
        }
        if (c == '\n' || (c < 0x20 && c != '\t') || c == 0x7f || ++line >= 998)
            abort();
    }
}

/* Strings of the writer that the reader must give back unchanged: no
 * control bytes, no runs of spaces, no space at either end, valid UTF-8. */
static bool is_clean(const char *s)
{
    size_t n = strlen(s);
    if (n > AUTHRES_VALUE_MAX || (n > 0 && (s[0] == ' ' || s[n - 1] == ' ')))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || (c == ' ' && s[i + 1] == ' '))
            return false;
    }
    return true;
}

static void fuzz_write(const char *s, size_t len, bool arc)
{
    const char *part[3 + AUTHRES_PROPS_MAX] = {0};
    size_t n = 0;
    for (size_t b = 0; b <= len && n < 3 + AUTHRES_PROPS_MAX;) {
        part[n++] = s + b;
        b += strlen(s + b) + 1;
    }
    while (n < 3)
        part[n++] = "";
    struct authres_result r[2] = {
        {.method = "dkim", .result = "pass", .comment = part[1], .reason = part[2]},
        {.method = "spf", .result = "neutral"},
    };
    for (size_t i = 3; i < n; i++)
        authres_add_prop(&r[0], "header", i % 2 ? "d" : "b", part[i]);
    authres_add_prop(&r[1], "smtp", "mailfrom", part[0]);
    struct sm_buf b;
    sm_buf_init(&b, 0);
    if (authres_build(&b, arc ? 7 : 0, part[0], r, 2) < 0) {
        sm_buf_free(&b);
        return; /* an id with nothing printable in it */
    }
    check_field(sm_buf_str(&b), b.len);
    const char *colon = strchr(sm_buf_str(&b), ':');
    const char *err = NULL;
    struct authres *a = authres_parse(colon + 1, strlen(colon + 1), arc, &err);
    if (a == NULL || a->n != 2 || a->ri[0].n_props != n - 3 || a->ri[1].n_props != 1)
        abort();
    if (is_clean(part[0]) && part[0][0] != '\0' &&
        (strcmp(a->authserv_id, part[0]) != 0 ||
         strcmp(a->ri[1].props[0].value, part[0]) != 0))
        abort();
    if (is_clean(part[2]) && strcmp(a->ri[0].reason, part[2]) != 0)
        abort();
    for (size_t i = 3; i < n; i++)
        if (is_clean(part[i]) && strcmp(a->ri[0].props[i - 3].value, part[i]) != 0)
            abort();
    authres_free(&a);
    sm_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > AUTHRES_PARSE_MAX + 2)
        return 0;
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    bool arc = data[0] & 1;
    if (data[0] & 2)
        fuzz_write(text, size - 1, arc);
    else
        fuzz_read(text, size - 1, arc);
    free(text);
    return 0;
}
