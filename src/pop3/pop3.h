/* pop3.h — POP3 (RFC 1939) with CAPA (RFC 2449), STLS (RFC 2595), SASL
 * PLAIN (RFC 5034, 4616) over the encrypted mailboxes.
 *
 * The session plugs into access/client.h: the login unlocks the owner's
 * store, the maildrop is INBOX as it stands at login (messages arriving
 * later wait for the next session, as RFC 1939 §8 allows), DELE marks, and
 * QUIT expunges the marked messages in one transaction.  UIDLs are
 * "%08x%08x" of the IMAP UID and the folder's UIDVALIDITY (Dovecot's
 * default format), so they stay stable across sessions and name the same
 * message IMAP does. */
#ifndef SM_POP3_H
#define SM_POP3_H

#include "access/client.h"

extern const struct client_proto pop3_proto;

#endif
