/* ipc.c — typed control messages over SOCK_SEQPACKET (see ipc.h).
 *
 * Wire format: one packet per message,
 *     u32 type (network order) | field | field | ...
 * and every field starts with a one-byte tag so a reader that expects
 * another type fails instead of misreading bytes:
 *     'I' u32 (big-endian)
 *     'L' u64 (big-endian)
 *     'S' u32 length n (big-endian), n bytes, one NUL byte
 * The NUL travels with the string so ipc_get_str() can hand out a pointer
 * into the message itself; the reader checks that the NUL is there and
 * that the n bytes contain no other NUL.  Every length is checked against
 * what is left before anything is read, with subtraction only (no sum
 * that could wrap), so a hostile packet ends in -1, never in a crash.
 *
 * Builders never write past IPC_MAX_MSG: a field that does not fit sets
 * the overflow flag, and ipc_send() refuses such a message rather than
 * send it cut short.  ipc_recv() asks the kernel for the real packet size
 * (MSG_TRUNC) and rejects oversized packets, packets shorter than a type,
 * unknown types, and packets carrying ancillary data. */
#include "core/ipc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "core/bytes.h"
#include "core/log.h"

enum { TAG_U32 = 'I', TAG_U64 = 'L', TAG_STR = 'S' };

static const char *const type_names[IPC_TYPE_MAX] = {
    [IPC_HELLO] = "hello",   [IPC_SPOOL_READY] = "spool-ready",
    [IPC_RELOAD] = "reload", [IPC_SHUTDOWN] = "shutdown",
    [IPC_LOG] = "log",       [IPC_MAILBOX_CHANGED] = "mailbox-changed",
};

void ipc_init(struct ipc_msg *m, enum ipc_type type)
{
    m->type = (uint32_t)type;
    m->len = 0;
    m->pos = 0;
    m->overflow = false;
}

/* Reserve n bytes at the end of the payload, or flag the overflow. */
static uint8_t *reserve(struct ipc_msg *m, size_t n)
{
    if (m->overflow || m->len > IPC_MAX_MSG || n > IPC_MAX_MSG - m->len) {
        m->overflow = true;
        return NULL;
    }
    uint8_t *p = m->data + m->len;
    m->len += n;
    return p;
}

void ipc_add_u32(struct ipc_msg *m, uint32_t v)
{
    uint8_t *p = reserve(m, 1 + 4);
    if (p == NULL)
        return;
    p[0] = TAG_U32;
    sm_put_be32(p + 1, v);
}

void ipc_add_u64(struct ipc_msg *m, uint64_t v)
{
    uint8_t *p = reserve(m, 1 + 8);
    if (p == NULL)
        return;
    p[0] = TAG_U64;
    sm_put_be32(p + 1, (uint32_t)(v >> 32));
    sm_put_be32(p + 5, (uint32_t)v);
}

bool ipc_str_fits(const struct ipc_msg *m, const char *s)
{
    size_t n = strnlen(s, IPC_MAX_MSG);
    return !m->overflow && n < IPC_MAX_MSG && m->len + 1 + 4 + n + 1 <= IPC_MAX_MSG;
}

void ipc_add_str(struct ipc_msg *m, const char *s)
{
    if (s == NULL)
        sm_panic("ipc_add_str: NULL string");
    size_t n = strnlen(s, IPC_MAX_MSG);
    if (n >= IPC_MAX_MSG) { /* cannot fit whatever its real length */
        m->overflow = true;
        return;
    }
    uint8_t *p = reserve(m, 1 + 4 + n + 1);
    if (p == NULL)
        return;
    p[0] = TAG_STR;
    sm_put_be32(p + 1, (uint32_t)n);
    memcpy(p + 5, s, n);
    p[5 + n] = '\0';
}

int ipc_send(int fd, const struct ipc_msg *m)
{
    uint8_t hdr[4];

    if (m->overflow || m->len > IPC_MAX_MSG) {
        errno = EMSGSIZE;
        return -1;
    }
    sm_put_be32(hdr, m->type);
    struct iovec iov[2] = {
        {.iov_base = hdr, .iov_len = sizeof hdr},
        {.iov_base = (void *)(uintptr_t)m->data, .iov_len = m->len}, /* sendmsg only reads */
    };
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t n;
    do
        n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    if ((size_t)n != sizeof hdr + m->len) { /* cannot happen on SOCK_SEQPACKET */
        errno = EMSGSIZE;
        return -1;
    }
    return 0;
}

int ipc_recv(int fd, struct ipc_msg *m)
{
    uint8_t hdr[4];
    struct iovec iov[2] = {
        {.iov_base = hdr, .iov_len = sizeof hdr},
        {.iov_base = m->data, .iov_len = IPC_MAX_MSG},
    };
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t n;

    ipc_init(m, 0);
    do
        n = recvmsg(fd, &mh, MSG_TRUNC | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return n == 0 ? 0 : -1; /* 0: peer gone (an empty packet counts as that) */
    if ((size_t)n > sizeof hdr + IPC_MAX_MSG || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        errno = EMSGSIZE;
        return -1;
    }
    uint32_t type = (size_t)n < sizeof hdr ? 0 : sm_get_be32(hdr);
    if (type == 0 || type >= IPC_TYPE_MAX) {
        errno = EBADMSG;
        return -1;
    }
    m->type = type;
    m->len = (size_t)n - sizeof hdr;
    return 1;
}

/* Start reading a field: its tag and at least `need` bytes after it. */
static const uint8_t *field(struct ipc_msg *m, uint8_t tag, size_t need)
{
    if (m->len > IPC_MAX_MSG || m->pos > m->len || m->len - m->pos < 1 + need ||
        m->data[m->pos] != tag)
        return NULL;
    return m->data + m->pos + 1;
}

int ipc_get_u32(struct ipc_msg *m, uint32_t *v)
{
    const uint8_t *p = field(m, TAG_U32, 4);
    if (p == NULL)
        return -1;
    *v = sm_get_be32(p);
    m->pos += 1 + 4;
    return 0;
}

int ipc_get_u64(struct ipc_msg *m, uint64_t *v)
{
    const uint8_t *p = field(m, TAG_U64, 8);
    if (p == NULL)
        return -1;
    *v = (uint64_t)sm_get_be32(p) << 32 | sm_get_be32(p + 4);
    m->pos += 1 + 8;
    return 0;
}

int ipc_get_str(struct ipc_msg *m, const char **s)
{
    const uint8_t *p = field(m, TAG_STR, 4);
    if (p == NULL)
        return -1;
    size_t n = sm_get_be32(p);
    size_t left = m->len - m->pos - 1 - 4; /* field() checked it is >= 0 */
    if (n >= left || p[4 + n] != '\0' || memchr(p + 4, '\0', n) != NULL)
        return -1;
    *s = (const char *)(p + 4);
    m->pos += 1 + 4 + n + 1;
    return 0;
}

int ipc_get_strs(struct ipc_msg *m, const char **out, size_t max)
{
    size_t n = 0;
    while (m->pos < m->len) {
        if (n == max || ipc_get_str(m, &out[n]) < 0)
            return -1;
        n++;
    }
    return n > 0 ? (int)n : -1;
}

int ipc_end(const struct ipc_msg *m)
{
    return !m->overflow && m->pos == m->len ? 0 : -1;
}

const char *ipc_type_name(uint32_t type)
{
    if (type < IPC_TYPE_MAX && type_names[type] != NULL)
        return type_names[type];
    return "unknown";
}

int ipc_send_hello(int fd, const char *role)
{
    struct ipc_msg m;
    ipc_init(&m, IPC_HELLO);
    ipc_add_str(&m, role);
    ipc_add_u32(&m, IPC_VERSION);
    return ipc_send(fd, &m);
}
