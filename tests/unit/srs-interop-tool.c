/* srs-interop-tool.c — a line-oriented driver of src/mailauth/srs.h for
 * srs-interop.py, which checks it against python3-srs (pysrs).
 *
 *   srs-interop-tool generate PATH [rotate]   srs_secrets_generate()
 *   srs-interop-tool run SECRETFILE [HASHLEN]  then, on stdin, one per line:
 *       F <tab> now <tab> sender <tab> domain   srs_forward()
 *       R <tab> now <tab> address               srs_reverse()
 *     each answered by "result-name <tab> out" on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/srs.h"

static int run(const char *path, unsigned hash_len)
{
    struct srs_options o;
    srs_options_default(&o);
    if (hash_len != 0)
        o.hash_len = hash_len;
    const char *err = NULL;
    struct srs *srs = srs_load(path, &o, &err);
    if (srs == NULL) {
        fprintf(stderr, "srs-interop-tool: %s\n", err);
        return 1;
    }
    char line[2048], out[SRS_ADDRESS_MAX + 1];
    while (fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char *f[4] = {line, NULL, NULL, NULL};
        for (int i = 1; i < 4 && f[i - 1] != NULL; i++) {
            f[i] = strchr(f[i - 1], '\t');
            if (f[i] != NULL)
                *f[i]++ = '\0';
        }
        if (f[2] == NULL || (f[0][0] == 'F' && f[3] == NULL)) {
            fprintf(stderr, "srs-interop-tool: bad command\n");
            srs_free(&srs);
            return 1;
        }
        time_t now = (time_t)strtoll(f[1], NULL, 10);
        enum srs_result r = f[0][0] == 'F' ? srs_forward(srs, f[2], f[3], now, out)
                                           : srs_reverse(srs, f[2], now, out);
        printf("%s\t%s\n", srs_result_name(r), out);
    }
    srs_free(&srs);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "generate") == 0) {
        const char *err = NULL;
        bool rotate = argc > 3 && strcmp(argv[3], "rotate") == 0;
        if (srs_secrets_generate(argv[2], rotate, &err) < 0) {
            fprintf(stderr, "srs-interop-tool: %s\n", err);
            return 1;
        }
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "run") == 0)
        return run(argv[2], argc > 3 ? (unsigned)atoi(argv[3]) : 0);
    fprintf(stderr, "usage: srs-interop-tool generate PATH [rotate] | run SECRETFILE [HASHLEN]\n");
    return 2;
}
