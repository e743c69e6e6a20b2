/* fuzz-smtp-parse.c — the command-line parsers on arbitrary lines.
 *
 * The first byte picks the parser; the rest is the argument text (NUL
 * terminated, as the line reader delivers it).  Results are checked
 * against the parser's contract: accepted addresses fit the RFC 5321
 * limits and domains are lowercase. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_path(const struct smtp_path *path)
{
    if (strlen(path->address) > SMTP_PATH_MAX || strlen(path->domain) > SMTP_DOMAIN_MAX)
        abort();
    for (const char *d = path->domain; *d; d++)
        if (isupper((unsigned char)*d))
            abort();
    if (path->n_params > SMTP_PARAMS_MAX)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 2048)
        return 0;
    char *line = malloc(size);
    memcpy(line, data + 1, size - 1);
    line[size - 1] = '\0';
    struct smtp_path path;
    struct smtp_parse_error err;
    uint64_t n;
    bool last;
    const char *args;
    switch (data[0] % 5) {
    case 0:
        if (smtp_parse_path(line, "FROM:", true, &path, &err) == 0)
            check_path(&path);
        break;
    case 1:
        if (smtp_parse_path(line, "TO:", false, &path, &err) == 0)
            check_path(&path);
        break;
    case 2:
        smtp_parse_helo(line, &err);
        break;
    case 3:
        smtp_parse_bdat(line, &n, &last, &err);
        break;
    default:
        smtp_parse_verb(line, &args);
        smtp_valid_utf8(line, strlen(line));
    }
    free(line);
    return 0;
}
