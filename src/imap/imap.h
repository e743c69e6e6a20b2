/* imap.h — IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501) over the
 * encrypted mailboxes, with the extensions clients rely on.
 *
 * The session plugs into access/client.h (connections, TLS, login,
 * worker jobs).  Commands before login run on the loop; every command
 * after login runs as one job on the worker pool with the owner's store
 * locked, writing its replies into a private buffer that the loop hands to
 * the connection afterwards (a big FETCH in slices, so memory stays
 * bounded).  The parser is imap/parse.h; the files are:
 *   session.c   the connection state machine, greeting, CAPABILITY, LOGIN,
 *               AUTHENTICATE, STARTTLS, ENABLE, ID, IDLE, LOGOUT
 *   view.c      the selected folder as the client sees it: sequence
 *               numbers, and the untagged EXISTS/EXPUNGE/FETCH that keep it
 *               in step with the store
 *   folders.c   SELECT, EXAMINE, CREATE, DELETE, RENAME, (UN)SUBSCRIBE,
 *               LIST, LSUB, STATUS, NAMESPACE, APPEND, quotas
 *   messages.c  FETCH, STORE, COPY, MOVE, EXPUNGE, CLOSE, UNSELECT
 *   search.c    SEARCH, SORT */
#ifndef SM_IMAP_H
#define SM_IMAP_H

#include "access/client.h"

extern const struct client_proto imap_proto;

#endif
