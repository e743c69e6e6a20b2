/* ipc.h — typed control messages between the master and its children.
 *
 * A control channel is a SOCK_SEQPACKET socketpair: one message per
 * packet, so framing is free.  Each message is a type and a sequence of
 * typed fields written with ipc_add_*() and read back in the same order
 * with ipc_get_*(); ipc_end() fails unless every byte was consumed.  The
 * first message on every channel is IPC_HELLO carrying the role name and
 * protocol version; a peer speaking another version is refused.
 * Message content never travels here: only ids and small values. */
#ifndef SM_IPC_H
#define SM_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IPC_VERSION 1
#define IPC_MAX_MSG 4096
#define IPC_STRS_MAX (IPC_MAX_MSG / 6) /* string fields a message can hold (6 bytes the least) */

enum ipc_type {
    IPC_HELLO = 1,      /* str role, u32 version */
    IPC_SPOOL_READY,    /* str queue id, 1..n times: messages durable in spool/incoming */
    IPC_RELOAD,         /* master -> child: reread configuration and certificates */
    IPC_SHUTDOWN,       /* master -> child: u32 grace seconds, then exit */
    IPC_LOG,            /* reserved */
    IPC_MAILBOX_CHANGED,/* str mailbox id: new mail in its drop/ (queued -> master -> readers) */
    IPC_TYPE_MAX
};

/* A message being built or read.  Fixed size: no allocation. */
struct ipc_msg {
    uint32_t type;
    size_t len;  /* payload bytes used (building) or present (reading) */
    size_t pos;  /* read position */
    bool overflow;
    uint8_t data[IPC_MAX_MSG];
};

/* Start building a message of the given type. */
void ipc_init(struct ipc_msg *m, enum ipc_type type);
void ipc_add_u32(struct ipc_msg *m, uint32_t v);
void ipc_add_u64(struct ipc_msg *m, uint64_t v);
void ipc_add_str(struct ipc_msg *m, const char *s);
/* Would a string field holding s still fit in m? */
bool ipc_str_fits(const struct ipc_msg *m, const char *s);
/* Send m on fd (blocking for at most one packet).  -1 on error or when a
 * field did not fit (the message is never sent truncated). */
int ipc_send(int fd, const struct ipc_msg *m);
/* Receive one packet into m.  Returns 1 when a message was read, 0 at
 * EOF (peer gone), -1 on error or a malformed packet (errno EAGAIN when
 * nothing is waiting on a non-blocking fd). */
int ipc_recv(int fd, struct ipc_msg *m);
/* Read fields in order; -1 when the field is missing or malformed.
 * Strings returned by ipc_get_str point into m and are NUL-terminated. */
int ipc_get_u32(struct ipc_msg *m, uint32_t *v);
int ipc_get_u64(struct ipc_msg *m, uint64_t *v);
int ipc_get_str(struct ipc_msg *m, const char **s);
/* Read every remaining field as a string: at least one, at most max,
 * into out.  The count, or -1 when a field is not a string, there are
 * none, or more than max. */
int ipc_get_strs(struct ipc_msg *m, const char **out, size_t max);
/* 0 when every byte of the payload was consumed, else -1. */
int ipc_end(const struct ipc_msg *m);
/* Send IPC_HELLO for `role` with IPC_VERSION: the first message a child
 * sends on its control channel.  0, or -1 on error. */
int ipc_send_hello(int fd, const char *role);
/* Name of a message type for logs. */
const char *ipc_type_name(uint32_t type);

#endif
