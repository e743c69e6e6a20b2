/* client.h — a mailbox reader's connection (IMAP or POP3), protocol aside.
 *
 * What the two protocols share lives here: accepting under the connection
 * limits, implicit TLS and STARTTLS, whether a password may be sent yet,
 * the login (slowed by authguard, the password check on the worker pool
 * through unlock.h), running store work on the worker pool while input
 * waits, and hearing about changes to the mailbox.
 *
 * A protocol plugs in with struct client_proto.  Its callbacks run on the
 * loop thread; work submitted with client_run() runs on a worker while the
 * connection is paused, and the client is never freed while a job is out:
 * a connection that dies meanwhile is freed when the job comes back. */
#ifndef SM_CLIENT_H
#define SM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "access/unlock.h"
#include "core/log.h"

struct authguard;
struct client;
struct evbuffer;
struct event_base;
struct peerlimit;
struct sm_config;
struct tls_server;
struct workpool;

struct client_proto {
    const char *name;                                  /* "imap", "pop3" for logs */
    void *(*start)(struct client *c);                  /* greet; returns the state */
    void (*input)(void *state);                        /* new input, or resume after a job */
    void (*tls_ready)(void *state);                    /* STARTTLS finished */
    void (*timeout)(void *state);                      /* idle timeout: say goodbye, close */
    void (*changed)(void *state);                      /* the mailbox changed elsewhere */
    void (*free)(void *state);                         /* the connection is gone */
};

/* Shared by the connections of the process; owned by daemon/imapd.c. */
struct client_env {
    struct event_base *base;
    const struct sm_config *cfg;
    struct tls_server *tls;        /* NULL: no certificate */
    struct peerlimit *peers;
    struct workpool *wp;
    struct unlock_registry *registry;
    struct authguard *guard;
    size_t n_clients;
    struct client *all;
    bool stopping;
};

/* Take an accepted socket; refuses it (closing) when over a limit. */
void client_accept(struct client_env *env, const struct client_proto *proto, bool implicit_tls,
                   int fd, const struct sockaddr *sa, size_t salen);
/* Close every connection now (shutdown). */
void client_close_all(struct client_env *env);

uint64_t client_id(const struct client *c);
const char *client_log_addr(const struct client *c);
const struct sm_config *client_cfg(const struct client *c);
struct evbuffer *client_input(struct client *c);
struct evbuffer *client_output(struct client *c);
bool client_tls_active(const struct client *c);
bool client_tls_available(const struct client *c);
/* May a password be sent now (TLS, or loopback when the configuration allows)? */
bool client_plaintext_ok(const struct client *c);
/* Start TLS now (pending input must be empty); proto->tls_ready follows. */
void client_starttls(struct client *c);
void client_set_timeout(struct client *c, unsigned seconds);
/* Flush the output, then close; proto->free follows. */
void client_close(struct client *c);
/* Output waiting to be sent (to stop producing when the peer is slow). */
size_t client_output_pending(struct client *c);

/* The logged-in mailbox, or NULL. */
struct unlocked *client_mailbox(struct client *c);

enum client_login_result {
    CLIENT_LOGIN_OK,
    CLIENT_LOGIN_BAD,      /* wrong address or password */
    CLIENT_LOGIN_BLOCKED,  /* too many failures from this network for now */
    CLIENT_LOGIN_TOO_MANY, /* the account has too many sessions */
    CLIENT_LOGIN_FAILED,   /* server-side trouble */
};

/* Check address/password (copied into secret memory and wiped) after any
 * delay authguard asks for; then done(state, result) on the loop.  Input
 * is paused meanwhile.  On success the client holds the mailbox and is
 * told of its changes. */
void client_login(struct client *c, const char *address, const char *password, size_t pwlen,
                  void (*done)(void *state, enum client_login_result r));

/* Run work(state) on a worker (input paused), then done(state) on the
 * loop, then proto->input again.  One job at a time per client. */
void client_run(struct client *c, void (*work)(void *state), void (*done)(void *state));
bool client_busy(const struct client *c);
/* Tell the other sessions of this mailbox in the process that something
 * changed (flags, expunges, new messages). */
void client_notify_others(struct client *c);

#endif
