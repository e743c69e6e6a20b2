/* listener.h — listening sockets, opened by the master before it drops
 * privileges and handed to the children by file descriptor. */
#ifndef SM_LISTENER_H
#define SM_LISTENER_H

#include <stddef.h>

#define LISTEN_MAX 16

/* Parse a space- or comma-separated list of "host:port", "[v6]:port" or
 * ":port" (all addresses) and open a non-blocking, close-on-exec listening
 * TCP socket for each (SO_REUSEADDR; IPV6_V6ONLY for v6).  Writes up to
 * max fds into fds and the count into *n.  Returns 0, or -1 with a
 * message in err (bad syntax, bind failure) after closing what it opened. */
int listener_open_all(const char *spec, int *fds, size_t max, size_t *n, char *err,
                      size_t errlen);
struct sockaddr_storage;
/* An accepted peer as the rest of the program should see it: an IPv4
 * client of a dual-stack (":port") listener arrives as ::ffff:a.b.c.d and
 * becomes plain AF_INET, so that per-network limits, the failed-login
 * guard and anonymised logs treat it as the IPv4 address it is (all
 * mapped addresses share their first 80 bits). */
void listener_unmap_v4(struct sockaddr_storage *ss);

/* Describe the local address of fd ("127.0.0.1:2525") into out. */
void listener_describe(int fd, char *out, size_t outlen);

#endif
