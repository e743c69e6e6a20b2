/* submission.h — the author check of mail a user submits (RFC 6409 §8).
 *
 * A mailbox owner who authenticated on the submission port may send only
 * as themselves: the envelope sender is checked at MAIL (smtp/server.h
 * check_sender), and every author in the From field(s) here, at end of
 * data.  The message streams through on its way to the spool; the From
 * fields are kept aside (at most DMARC_FROM_FIELDS_MAX of DMARC_FROM_MAX
 * bytes each: RFC 5322 allows one) and parsed with the DMARC From parser,
 * which names each mailbox.  A message without a From field, with one
 * that cannot be parsed, or with an author the sender does not own is
 * refused with a 5.6.0 or 5.7.1 reply naming the reason. */
#ifndef SM_SMTP_SUBMISSION_H
#define SM_SMTP_SUBMISSION_H

#include <stddef.h>

struct submission;

/* The reply for an author address the user may not use, or NULL. */
typedef const char *submission_owner_fn(void *arg, const char *address);

struct submission *submission_new(void);
/* Pass n bytes of the message (CRLF, unstuffed) through to out. */
int submission_write(struct submission *s, const void *p, size_t n,
                     int (*out)(void *arg, const void *p, size_t n), void *arg);
/* At end of data (after the last write): NULL when every author is the
 * user's (owned() says so for each), else the full refusal reply.  out
 * receives what was still buffered. */
const char *submission_finish(struct submission *s, submission_owner_fn *owned, void *owned_arg,
                              int (*out)(void *arg, const void *p, size_t n), void *arg);
void submission_free(struct submission **s);

#endif
