/* peerlimit.h — count simultaneous connections per client address.
 *
 * IPv4 clients are counted per address, IPv6 clients per /64 (one
 * customer usually owns a whole /64, so counting single addresses would
 * let one host open unlimited connections). */
#ifndef SM_PEERLIMIT_H
#define SM_PEERLIMIT_H

#include <stdbool.h>
#include <sys/socket.h>

struct peerlimit;

/* A table allowing at most max connections per client. */
struct peerlimit *peerlimit_new(unsigned max);
void peerlimit_free(struct peerlimit **pl);
/* Count a new connection from sa; false (and nothing counted) when the
 * client is at its limit. */
bool peerlimit_acquire(struct peerlimit *pl, const struct sockaddr *sa);
/* Forget one connection from sa (must follow a successful acquire). */
void peerlimit_release(struct peerlimit *pl, const struct sockaddr *sa);
/* Change the limit (configuration reload). */
void peerlimit_set_max(struct peerlimit *pl, unsigned max);

#endif
