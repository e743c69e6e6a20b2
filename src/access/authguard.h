/* authguard.h — slowing down password guessing (loop thread only).
 *
 * Failed logins are counted per client network (the same /24 or /48 the
 * logs show) and per account name.  Each failure beyond a few free ones
 * doubles the delay before the next attempt from that network or for that
 * account is even tried, up to AUTHGUARD_DELAY_MAX_MS; a network with
 * AUTHGUARD_BLOCK_FAILURES recent failures is refused outright until its
 * window ends.  Accounts are only slowed, never blocked, so nobody can
 * lock an owner out by failing on purpose.  Counts fade after
 * AUTHGUARD_WINDOW_S without failures.  The table is bounded: when full,
 * the stalest entry makes room.  (The full anti-abuse work, shared with
 * SMTP AUTH and the web admin, comes later: this is the floor.) */
#ifndef SM_AUTHGUARD_H
#define SM_AUTHGUARD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define AUTHGUARD_FREE_FAILURES 3
#define AUTHGUARD_DELAY_BASE_MS 500
#define AUTHGUARD_DELAY_MAX_MS 15000
#define AUTHGUARD_BLOCK_FAILURES 50
#define AUTHGUARD_WINDOW_S (15 * 60)
#define AUTHGUARD_ENTRIES 4096

struct authguard;

struct authguard *authguard_new(void);
void authguard_free(struct authguard **g);

/* Before trying a password for account from client: the delay to wait
 * (milliseconds), or -1 when the client network is blocked for now. */
int64_t authguard_check(struct authguard *g, const struct sockaddr *client, const char *account,
                        int64_t now_ms);
/* The outcome of the attempt. */
void authguard_failed(struct authguard *g, const struct sockaddr *client, const char *account,
                      int64_t now_ms);
void authguard_succeeded(struct authguard *g, const struct sockaddr *client,
                         const char *account);

#endif
