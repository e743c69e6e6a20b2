/* forwards.h — aliases that forward to other servers, and alias policy
 * (issue #5).
 *
 * An alias source ("me@d.example", or "@d.example" for the catch-all) may
 * point at mailboxes here (directory.h, directory_alias_add) and at
 * addresses elsewhere (forwards, here), in any mix.  Resolution treats
 * both alike: the first of the exact address, the address without its
 * "+tag", and the catch-all that has any target is the source whose
 * targets get the mail (directory_resolve_route()).
 *
 * Policy per source:
 *   - disabled: mail for it is refused at RCPT with a clear 5xx (never a
 *     silent drop), its targets kept for when it is enabled again;
 *   - allow: a list of sender addresses and domains ("a@x.example
 *     y.example"); when not empty, only those senders are accepted.
 * Per domain, forwarding can be switched off without losing the
 * forwards: its sources then deliver only to their local targets.
 *
 * Limits: DIRECTORY_FORWARDS_MAX forward targets per source,
 * DIRECTORY_ALLOW_MAX bytes of allow-list, addresses as directory.h. */
#ifndef SM_FORWARDS_H
#define SM_FORWARDS_H

#include <stdbool.h>
#include <stddef.h>

#include "store/directory.h"

#define DIRECTORY_FORWARDS_MAX 16
#define DIRECTORY_ALLOW_MAX 1024

/* Forward source (an address of a hosted domain that is not a mailbox,
 * or "@domain") to target, an address elsewhere.  0, or -1 with
 * directory_error(). */
int directory_forward_add(struct directory *dir, const char *source, const char *target);
/* Remove source -> target, or every forward of source when target is NULL. */
int directory_forward_remove(struct directory *dir, const char *source, const char *target);
/* Call fn(source, target) for each forward, in source order; count or -1. */
int directory_forward_list(struct directory *dir,
                           void (*fn)(void *arg, const char *source, const char *target),
                           void *arg);

/* Disable or enable an alias source (it must have targets). */
int directory_alias_set_disabled(struct directory *dir, const char *source, bool disabled);
/* Set the allow-list of a source ("" clears it): addresses and domains
 * separated by spaces, each checked and stored lowercase. */
int directory_alias_set_allow(struct directory *dir, const char *source, const char *allow);
/* Call fn for each source with a policy (disabled or an allow-list). */
int directory_alias_policies(struct directory *dir,
                             void (*fn)(void *arg, const char *source, bool disabled,
                                        const char *allow),
                             void *arg);

/* Switch a hosted domain's forwarding on or off. */
int directory_domain_set_forwarding(struct directory *dir, const char *domain, bool on);

/* Where mail for an address goes, beyond its mailboxes. */
struct directory_route {
    char source[DIRECTORY_ADDRESS_MAX + 1]; /* the alias source that matched; "" for none */
    bool disabled;                           /* refuse mail for it */
    char allow[DIRECTORY_ALLOW_MAX + 1];     /* allowed senders; "" for anyone */
    bool forwarding_off;                     /* the domain's forwarding is off */
    size_t n_forwards;                       /* addresses to forward to (0 when off) */
    char forwards[DIRECTORY_FORWARDS_MAX][DIRECTORY_ADDRESS_MAX + 1];
};

/* directory_resolve() that also fills *route (may be NULL).  Returns the
 * number of local targets (0 with route->n_forwards > 0 is a forward-only
 * address), or -1. */
int directory_resolve_route(struct directory *dir, const char *address,
                            struct directory_user *targets, size_t max,
                            struct directory_route *route);

/* Whether sender (an envelope address, "" for the null sender) is on
 * allow, a route's allow-list.  An empty list allows everyone. */
bool directory_route_allows(const char *allow, const char *sender);

#endif
