/* spool-inject.c — test helper: write one message into a data directory's
 * spool with any envelope, as submission or forwarding will, so that e2e
 * tests can give queued recipients that inbound SMTP never accepts (no
 * open relay).  queued picks it up at its next start or SIGHUP.
 *
 *   spool-inject DATA_DIR MAIL_FROM RCPT... < message
 *
 * MAIL_FROM may be "" (the null sender).  Prints the queue id. */
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/seal.h"
#include "daemon/keys.h"
#include "store/spool.h"

static bool done, ok;
static char id[SPOOL_ID_LEN + 1];

static void committed(void *arg, bool success, const char *queue_id)
{
    (void)arg;
    done = true;
    ok = success;
    snprintf(id, sizeof id, "%s", queue_id);
}

int main(int argc, char **argv)
{
    uint8_t pk[SPOOL_PK_BYTES];
    char err[512], dir[4096];
    const char *error;
    if (argc < 4) {
        fprintf(stderr, "usage: spool-inject DATA_DIR MAIL_FROM RCPT... < message\n");
        return 2;
    }
    if (seal_init() < 0 || keys_spool_public(argv[1], pk, err, sizeof err) < 0) {
        fprintf(stderr, "spool-inject: %s\n", err);
        return 1;
    }
    snprintf(dir, sizeof dir, "%s/spool", argv[1]);
    struct event_base *base = event_base_new();
    struct spool *sp = spool_open(dir, pk, base, 1, &error);
    if (sp == NULL) {
        fprintf(stderr, "spool-inject: %s\n", error);
        return 1;
    }
    struct spool_envelope env = {.helo = "inject.test", .client = "127.0.0.1",
                                 .mail_from = argv[2], .body_type = "8BITMIME",
                                 .rcpts = argv + 3, .n_rcpts = (size_t)(argc - 3),
                                 .received = (int64_t)time(NULL)};
    struct spool_writer *w = spool_writer_new(sp, &env, &error);
    char buf[65536];
    ssize_t n;
    while (w != NULL && (n = read(0, buf, sizeof buf)) > 0)
        if (spool_writer_write(w, buf, (size_t)n, &error) < 0)
            spool_writer_abort(&w);
    if (w == NULL) {
        fprintf(stderr, "spool-inject: %s\n", error);
        return 1;
    }
    spool_writer_commit(w, committed, NULL);
    while (!done)
        event_base_loop(base, EVLOOP_ONCE);
    spool_close(&sp);
    event_base_free(base);
    if (!ok) {
        fprintf(stderr, "spool-inject: commit failed\n");
        return 1;
    }
    printf("%s\n", id);
    return 0;
}
