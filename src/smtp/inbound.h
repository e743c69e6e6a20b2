/* inbound.h — accepted SMTP connections of one smtpd process.
 *
 * An inbound connection joins three pieces: a net/conn (socket and TLS),
 * the protocol engine (smtp/server) and a spool writer (store/spool).  It
 * implements the engine's callbacks: recipient policy (hosted domains
 * here, existing addresses through check_address), the spool as the message store, and STARTTLS, pauses and
 * timeouts on the connection. */
#ifndef SM_INBOUND_H
#define SM_INBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/ipc.h"
#include "smtp/server.h"

struct authcheck_env;
struct event_base;
struct sm_config;
struct spool;
struct tls_server;
struct peerlimit;

enum inbound_kind { INBOUND_SMTP, INBOUND_SMTPS, INBOUND_SUBMISSION };

/* What every connection of the process shares; owned by smtpd.c. */
struct inbound_env {
    struct event_base *base;
    const struct sm_config *cfg;
    struct tls_server *tls;        /* NULL: no certificate, no TLS */
    struct spool *spool;
    struct peerlimit *peers;
    char **domains;                /* hosted domains, sorted, lowercase */
    size_t n_domains;
    /* Called when a recipient domain is not in the list: reload the list
     * if the directory changed since (domains added a moment ago). */
    void (*refresh_domains)(void *owner);
    /* Is there anyone at this address (in a hosted domain, or the bare
     * "postmaster") who takes mail from sender ("" for the null sender)?
     * NULL to accept, else the complete reply. */
    const char *(*check_address)(void *owner, const char *address, const char *sender);
    /* Submission (AUTH on 587 and 465).  auth_check: check the password of
     * user for session (asynchronously; the password is the caller's only
     * during the call), then answer with inbound_auth_done().
     * check_sender: may user send as address (envelope sender or an
     * author in From)?  NULL, else the full reply.  Both NULL: no AUTH. */
    void (*auth_check)(void *owner, uint64_t session, const struct sockaddr *client,
                       const char *user, const char *password, size_t len);
    const char *(*check_sender)(void *owner, const char *user, const char *address);
    void *owner;                   /* argument of the callbacks above */
    const struct authcheck_env *auth; /* SPF/DKIM/DMARC checks; NULL: none */
    int ctl_fd;                    /* control channel to the master */
    size_t n_sessions;             /* live connections */
    struct inbound *all;           /* list of live connections */
    struct ipc_msg ready;          /* committed queue ids queued is not yet told of */
    struct event *ready_ev;        /* sends them at the end of the loop turn */
};

/* Take an accepted socket from the client at sa (as accept() gave it);
 * refuses it with 421 when a limit is reached. */
void inbound_accept(struct inbound_env *env, int fd, enum inbound_kind kind,
                    const struct sockaddr *sa, size_t salen);
/* Ask every connection to finish its transaction and close. */
void inbound_shutdown_all(struct inbound_env *env);
/* Close every connection now (end of the shutdown grace). */
void inbound_close_all(struct inbound_env *env);
/* The answer of env->auth_check for session (gone sessions are ignored). */
void inbound_auth_done(struct inbound_env *env, uint64_t session, enum smtp_auth_result r);
/* After the spool is closed: tell queued of the last committed messages
 * and free what the connections' environment holds. */
void inbound_env_done(struct inbound_env *env);
/* Replace the hosted domain list (takes ownership of the array). */
void inbound_set_domains(struct inbound_env *env, char **domains, size_t n);

#endif
