/* fuzz-outq-state.c — the outbound queue's state file parser (store/outq.c).
 *
 * A state file sits on disk next to the sealed message; queued and the CLI
 * read it back, so a damaged or planted file must end in a clear error,
 * never a crash, a hang or an overread.  Every input goes to outq_parse();
 * what parses is formatted again, and that text must parse to the same
 * text (the format is canonical), and the retry schedule parser gets the
 * input as a string too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/outq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct outq_entry e, again;
    const char *error;
    if (outq_parse((const char *)data, size, &e, &error) == 0) {
        size_t len, len2;
        char *text = outq_format(&e, &len);
        if (outq_parse(text, len, &again, &error) != 0)
            abort();
        char *text2 = outq_format(&again, &len2);
        if (len != len2 || memcmp(text, text2, len) != 0)
            abort();
        for (size_t i = 0; i < e.n_rcpts; i++)
            if (e.rcpts[i].state > OUTQ_BOUNCED || strlen(e.rcpts[i].reply) > OUTQ_REPLY_MAX)
                abort();
        free(text);
        free(text2);
        outq_entry_free(&again);
        outq_entry_free(&e);
    }
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    struct outq_schedule sched;
    if (outq_schedule_parse(s, &sched, &error) == 0)
        for (size_t i = 0; i < sched.n; i++)
            if (sched.delay[i] == 0 || sched.delay[i] > 7 * 86400 || outq_next_delay(&sched, 100) == 0)
                abort();
    free(s);
    return 0;
}
