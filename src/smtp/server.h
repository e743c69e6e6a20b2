/* server.h — the SMTP protocol engine (RFC 5321, 1870, 2920, 3030, 3207,
 * 3463, 6152, 6531).
 *
 * The engine knows SMTP and nothing else: it reads command lines and
 * message data from an input evbuffer, writes replies to an output
 * evbuffer, and reaches everything outside the protocol through one
 * callbacks struct: recipient policy, the message store, and the I/O
 * layer (STARTTLS, pause, close).  It never touches a socket, SQLite or
 * libsodium, so the fuzzer can drive it with plain buffers.
 *
 * Pipelining: smtp_session_input() answers every complete command in the
 * input, in order, until the input is empty, the engine waits for an
 * asynchronous result (a commit), or the output exceeds its bound because
 * the client is not reading (then call it again on CONN_DRAINED). */
#ifndef SM_SMTP_SERVER_H
#define SM_SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp/parse.h"

struct evbuffer;
struct smtp_session;

#define SMTP_QUEUE_ID_MAX 32

/* The transaction as seen by the data callbacks. */
struct smtp_tx_info {
    const char *helo;
    const char *mail_from;  /* "" for the null sender */
    char *const *rcpts;
    size_t n_rcpts;
    const char *body_type;  /* "7BIT" or "8BITMIME" */
    bool smtputf8;
    int64_t started;        /* unix time of MAIL */
    const char *auth_user;  /* the authenticated account (submission), or NULL */
};

/* The result of an AUTH check (smtp_session_auth_done()). */
enum smtp_auth_result {
    SMTP_AUTH_OK,
    SMTP_AUTH_INVALID,   /* 535 5.7.8: wrong name or password */
    SMTP_AUTH_TEMPFAIL,  /* 454 4.7.0: could not check now */
    SMTP_AUTH_BLOCKED,   /* 421 4.7.0 and close: too many failures from the client */
};

struct smtp_server_callbacks {
    /* Policy: NULL to accept the recipient, else the full reply to send
     * (e.g. "550 5.7.1 Relaying denied"). */
    const char *(*check_rcpt)(void *ctx, const struct smtp_path *rcpt);
    /* Store: start a message.  0 and the queue id in queue_id (at most
     * SMTP_QUEUE_ID_MAX-1 chars), or -1 (the engine replies 451). */
    int (*data_begin)(void *ctx, const struct smtp_tx_info *tx, char *queue_id);
    /* Append bytes; -1 aborts the transaction with 451. */
    int (*data_write)(void *ctx, const void *p, size_t n);
    /* Make the message durable; answer later with smtp_session_commit_done(). */
    void (*data_commit)(void *ctx);
    /* Drop the message being written (error, RSET, disconnect). */
    void (*data_abort)(void *ctx);
    /* I/O: the 220 reply is queued; switch to TLS, then call
     * smtp_session_tls_ready() (input was already drained). */
    void (*starttls)(void *ctx);
    /* I/O: stop/restart reading input while a commit is pending. */
    void (*pause)(void *ctx);
    void (*resume)(void *ctx);
    /* I/O: idle timeout to apply from now on (command or data phase). */
    void (*set_timeout)(void *ctx, unsigned seconds);
    /* I/O: flush the output and close; no further input is processed. */
    void (*close)(void *ctx);
    /* Policy (optional): a transaction began (MAIL accepted), with the
     * HELO argument and the reverse path ("" for the null sender); and it
     * ended (answered, RSET, aborted, disconnect).  Sender checks such as
     * SPF start here so their DNS overlaps RCPT and DATA. */
    void (*tx_begin)(void *ctx, const char *helo, const char *mail_from);
    void (*tx_end)(void *ctx);
    /* Policy (sessions with auth_offered): check a password for user, then
     * answer with smtp_session_auth_done().  password[0..len) is wiped by
     * the engine when the call returns: copy it if needed later. */
    void (*auth_check)(void *ctx, const char *user, const char *password, size_t len);
    /* Policy (optional): the reverse path an authenticated user asks for in
     * MAIL: NULL to accept, else the full reply (e.g. 553 5.7.1). */
    const char *(*check_sender)(void *ctx, const char *user, const struct smtp_path *from);
};

struct smtp_session_params {
    uint64_t id;                 /* session id for logs */
    const char *hostname;        /* our name: greeting, Received */
    const char *client_addr;     /* client IP as text (Received header) */
    const char *client_log;      /* client as it may be logged (anonymised) */
    uint64_t max_line;
    uint64_t max_data_line;
    uint64_t max_message_size;
    unsigned max_recipients;
    unsigned max_errors;
    unsigned command_timeout;
    unsigned data_timeout;
    bool tls_available;          /* offer STARTTLS */
    bool tls_active;             /* implicit TLS (port 465) */
    bool submission;             /* submission (587, 465): MAIL needs AUTH */
    bool auth_offered;           /* offer AUTH PLAIN LOGIN once TLS is up */
};

/* Create a session; strings in p are copied.  cb and ctx must outlive it. */
struct smtp_session *smtp_session_new(const struct smtp_session_params *p,
                                      const struct smtp_server_callbacks *cb, void *ctx);
/* Free the session, aborting any message being written.  Accepts NULL. */
void smtp_session_free(struct smtp_session **s);
/* Where input is read and replies written; set again after STARTTLS. */
void smtp_session_set_io(struct smtp_session *s, struct evbuffer *in, struct evbuffer *out);
/* Queue the 220 greeting. */
void smtp_session_greet(struct smtp_session *s);
/* Process buffered input (see the pipelining note above). */
void smtp_session_input(struct smtp_session *s);
/* TLS is up (after STARTTLS or the implicit handshake); desc describes
 * the protocol and cipher for the Received header. */
void smtp_session_tls_ready(struct smtp_session *s, const char *desc);
/* Result of data_commit: ok means durable; the engine replies 250 with the
 * queue id, or 451, then resumes reading. */
void smtp_session_commit_done(struct smtp_session *s, bool ok);
/* Result of data_commit: the message is refused by policy (nothing was
 * stored); reply is the full reply, e.g. "550 5.7.1 ...". */
void smtp_session_commit_refused(struct smtp_session *s, const char *reply);
/* Result of auth_check. */
void smtp_session_auth_done(struct smtp_session *s, enum smtp_auth_result r);
/* The authenticated account, or NULL. */
const char *smtp_session_auth_user(const struct smtp_session *s);
/* The idle timeout struck: reply 421 and close. */
void smtp_session_timeout(struct smtp_session *s);
/* The server is going down: close now if idle, else after the running
 * transaction has been answered. */
void smtp_session_shutdown(struct smtp_session *s);
/* True between MAIL and the final reply of the transaction. */
bool smtp_session_busy(const struct smtp_session *s);
/* True once the engine asked to close. */
bool smtp_session_closing(const struct smtp_session *s);

#endif
