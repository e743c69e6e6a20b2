/* test-ipc.c — control messages through a real SOCK_SEQPACKET socketpair.
 *
 * Round trips of every field type, the exact wire bytes of one message,
 * then hostile input: every truncation of a valid packet, wrong tags,
 * strings without their NUL or with an embedded one, lengths that point
 * past the end, unknown types, oversized packets, packets carrying file
 * descriptors, and every single-byte mutation of a valid packet.  Hostile
 * input must give -1 (never a crash, which ASan would report), and the
 * channel must stay usable afterwards. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/ipc.h"
#include "core/log.h"

static int sv[2];

static int setup(void **state)
{
    (void)state;
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
}

static int teardown(void **state)
{
    (void)state;
    close(sv[0]);
    close(sv[1]);
    return 0;
}

/* ---- round trips ------------------------------------------------------ */

enum kind { END, U32, U64, STR };

struct field {
    enum kind kind;
    uint64_t num;
    const char *str;
};

static char big[IPC_MAX_MSG - 1 - 4 - 1 + 1]; /* the longest string that fits, plus NUL */

static const struct rt_case {
    const char *label;
    enum ipc_type type;
    struct field fields[6];
} rt_cases[] = {
    {"hello with role and version", IPC_HELLO, {{STR, 0, "smtpd"}, {U32, IPC_VERSION, NULL}}},
    {"spool ready with queue id", IPC_SPOOL_READY, {{STR, 0, "0123456789abcdef"}}},
    {"no fields", IPC_RELOAD, {{END, 0, NULL}}},
    {"extreme integers",
     IPC_SHUTDOWN,
     {{U32, 0, NULL},
      {U32, UINT32_MAX, NULL},
      {U64, 0, NULL},
      {U64, UINT64_MAX, NULL},
      {U64, 0x0102030405060708ull, NULL}}},
    {"empty string", IPC_LOG, {{STR, 0, ""}, {U32, 7, NULL}}},
    {"UTF-8 and control bytes", IPC_LOG, {{STR, 0, "\xc3\xa9t\xc3\xa9\x01\x7f\r\n"}}},
    {"largest message that fits", IPC_LOG, {{STR, 0, big}}},
};

static void build(struct ipc_msg *m, const struct rt_case *t)
{
    ipc_init(m, t->type);
    for (const struct field *f = t->fields; f->kind != END; f++) {
        if (f->kind == U32)
            ipc_add_u32(m, (uint32_t)f->num);
        else if (f->kind == U64)
            ipc_add_u64(m, f->num);
        else
            ipc_add_str(m, f->str);
    }
}

static void check_fields(struct ipc_msg *m, const struct rt_case *t)
{
    for (const struct field *f = t->fields; f->kind != END; f++) {
        uint32_t u32;
        uint64_t u64;
        const char *s;
        if (f->kind == U32) {
            assert_int_equal(ipc_get_u64(m, &u64), -1); /* wrong type: refused, */
            assert_int_equal(ipc_get_str(m, &s), -1);   /* position unchanged */
            assert_int_equal(ipc_get_u32(m, &u32), 0);
            assert_int_equal(u32, f->num);
        } else if (f->kind == U64) {
            assert_int_equal(ipc_get_u32(m, &u32), -1);
            assert_int_equal(ipc_get_u64(m, &u64), 0);
            assert_true(u64 == f->num);
        } else {
            assert_int_equal(ipc_get_u32(m, &u32), -1);
            assert_int_equal(ipc_get_str(m, &s), 0);
            assert_string_equal(s, f->str);
            assert_true(s > (const char *)m->data && s < (const char *)m->data + m->len);
        }
    }
    assert_int_equal(ipc_end(m), 0);
    uint32_t extra;
    assert_int_equal(ipc_get_u32(m, &extra), -1); /* nothing past the end */
}

static void test_round_trip(void **state)
{
    static struct ipc_msg out, in;
    (void)state;
    memset(big, 'x', sizeof big - 1);
    for (size_t i = 0; i < sizeof rt_cases / sizeof rt_cases[0]; i++) {
        const struct rt_case *t = &rt_cases[i];
        print_message("case: %s\n", t->label);
        build(&out, t);
        assert_false(out.overflow);
        assert_int_equal(ipc_send(sv[0], &out), 0);
        memset(&in, 0xee, sizeof in);
        assert_int_equal(ipc_recv(sv[1], &in), 1);
        assert_int_equal(in.type, t->type);
        assert_int_equal(in.len, out.len);
        check_fields(&in, t);
    }
    assert_int_equal(out.len, IPC_MAX_MSG); /* the last case fills it exactly */
}

static void test_wire_format(void **state)
{
    static const uint8_t want[] = {0,   0, 0, 1, 'S', 0,   0, 0, 5, 's', 'm', 't', 'p', 'd', 0,
                                   'I', 0, 0, 0, 1,   'L', 0, 0, 0, 0,   1,   2,   3,   4};
    struct ipc_msg m;
    uint8_t got[64];
    (void)state;
    ipc_init(&m, IPC_HELLO);
    ipc_add_str(&m, "smtpd");
    ipc_add_u32(&m, 1);
    ipc_add_u64(&m, 0x01020304ull);
    assert_int_equal(ipc_send(sv[0], &m), 0);
    assert_int_equal(recv(sv[1], got, sizeof got, 0), sizeof want);
    assert_memory_equal(got, want, sizeof want);
}

/* ---- hostile packets -------------------------------------------------- */

static void send_raw(const void *p, size_t n)
{
    assert_int_equal(send(sv[0], p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Decode what the rich message below carries; -1 on any failure. */
static int decode_rich(struct ipc_msg *m)
{
    const char *a, *b;
    uint32_t u32;
    uint64_t u64;
    if (ipc_get_str(m, &a) < 0 || ipc_get_u32(m, &u32) < 0 || ipc_get_u64(m, &u64) < 0 ||
        ipc_get_str(m, &b) < 0 || ipc_end(m) < 0)
        return -1;
    /* Whatever the bytes, a returned string ends inside the message. */
    assert_true(memchr(a, '\0', (size_t)((const char *)m->data + m->len - a)) != NULL);
    return 0;
}

/* The packet as it travels: type header then payload. */
static size_t rich_packet(uint8_t *pkt)
{
    struct ipc_msg m;
    ipc_init(&m, IPC_SPOOL_READY);
    ipc_add_str(&m, "queue-id-42");
    ipc_add_u32(&m, 0xdeadbeef);
    ipc_add_u64(&m, 42);
    ipc_add_str(&m, "z");
    assert_int_equal(ipc_send(sv[0], &m), 0);
    ssize_t n = recv(sv[1], pkt, 4 + IPC_MAX_MSG, 0);
    assert_true(n > 4);
    return (size_t)n;
}

static void test_every_truncation(void **state)
{
    uint8_t pkt[4 + IPC_MAX_MSG];
    static struct ipc_msg m;
    (void)state;
    size_t total = rich_packet(pkt);
    for (size_t k = 0; k <= total; k++) {
        send_raw(pkt, k);
        int rc = ipc_recv(sv[1], &m);
        if (k == 0) {
            assert_int_equal(rc, 0); /* an empty packet reads as the peer gone */
        } else if (k < 4) {
            assert_int_equal(rc, -1);
        } else {
            assert_int_equal(rc, 1);
            assert_int_equal(decode_rich(&m), k == total ? 0 : -1);
        }
    }
}

static void test_every_mutation(void **state)
{
    static const uint8_t deltas[] = {0x01, 0x80, 0xff};
    uint8_t pkt[4 + IPC_MAX_MSG], bad[4 + IPC_MAX_MSG];
    static struct ipc_msg m;
    unsigned decoded = 0;
    (void)state;
    size_t total = rich_packet(pkt);
    for (size_t k = 0; k < total; k++) {
        for (size_t d = 0; d < sizeof deltas; d++) {
            memcpy(bad, pkt, total);
            bad[k] ^= deltas[d];
            send_raw(bad, total);
            if (ipc_recv(sv[1], &m) == 1 && decode_rich(&m) == 0)
                decoded++; /* e.g. a changed digit inside a string */
        }
        memcpy(bad, pkt, total);
        bad[k] = 0; /* a NUL anywhere */
        send_raw(bad, total);
        if (ipc_recv(sv[1], &m) == 1)
            (void)decode_rich(&m);
    }
    assert_true(decoded > 0 && decoded < total * sizeof deltas);
}

enum getter { GET_U32, GET_U64, GET_STR, GET_END };

static const struct hostile_case {
    const char *label;
    uint32_t type;
    const char *payload;
    size_t len;
    enum getter get;
    int recv_rc;
} hostile_cases[] = {
    {"u32 read as u64", IPC_LOG, "I\0\0\0\1", 5, GET_U64, 1},
    {"u64 read as string", IPC_LOG, "L\0\0\0\0\0\0\0\1", 9, GET_STR, 1},
    {"string read as u32", IPC_LOG, "S\0\0\0\1a\0", 7, GET_U32, 1},
    {"unknown tag", IPC_LOG, "Z\0\0\0\1", 5, GET_U32, 1},
    {"string without its NUL", IPC_LOG, "S\0\0\0\3abcx", 9, GET_STR, 1},
    {"string with an embedded NUL", IPC_LOG, "S\0\0\0\3a\0c\0", 9, GET_STR, 1},
    {"string length past the end", IPC_LOG, "S\0\0\0\2a\0", 7, GET_STR, 1},
    {"string length 2^32-1", IPC_LOG, "S\377\377\377\377a\0", 7, GET_STR, 1},
    {"string length field cut short", IPC_LOG, "S\0\0", 3, GET_STR, 1},
    {"u64 cut short", IPC_LOG, "L\0\0\0\0\0\0\0", 8, GET_U64, 1},
    {"leftover byte after a field", IPC_LOG, "I\0\0\0\1x", 6, GET_END, 1},
    {"type 0", 0, "", 0, GET_END, -1},
    {"type one past the last", IPC_TYPE_MAX, "", 0, GET_END, -1},
    {"type 2^32-1", UINT32_MAX, "I\0\0\0\1", 5, GET_END, -1},
};

static void test_hostile(void **state)
{
    uint8_t pkt[64];
    static struct ipc_msg m;
    (void)state;
    for (size_t i = 0; i < sizeof hostile_cases / sizeof hostile_cases[0]; i++) {
        const struct hostile_case *t = &hostile_cases[i];
        uint32_t u32;
        uint64_t u64;
        const char *s = NULL;
        print_message("case: %s\n", t->label);
        pkt[0] = (uint8_t)(t->type >> 24);
        pkt[1] = (uint8_t)(t->type >> 16);
        pkt[2] = (uint8_t)(t->type >> 8);
        pkt[3] = (uint8_t)t->type;
        memcpy(pkt + 4, t->payload, t->len);
        send_raw(pkt, 4 + t->len);
        assert_int_equal(ipc_recv(sv[1], &m), t->recv_rc);
        if (t->recv_rc < 0)
            continue;
        if (t->get == GET_U32)
            assert_int_equal(ipc_get_u32(&m, &u32), -1);
        else if (t->get == GET_U64)
            assert_int_equal(ipc_get_u64(&m, &u64), -1);
        else if (t->get == GET_STR)
            assert_int_equal(ipc_get_str(&m, &s), -1);
        else
            assert_int_equal(ipc_get_u32(&m, &u32), 0);
        assert_null(s);
        assert_int_equal(ipc_end(&m), -1);
    }
}

static void test_oversize_packet(void **state)
{
    static uint8_t pkt[4 + IPC_MAX_MSG + 100];
    static struct ipc_msg m;
    uint32_t v;
    (void)state;
    memset(pkt, 'I', sizeof pkt);
    pkt[0] = pkt[1] = pkt[2] = 0;
    pkt[3] = IPC_LOG;
    send_raw(pkt, 4 + IPC_MAX_MSG + 1);
    assert_int_equal(ipc_recv(sv[1], &m), -1);
    assert_int_equal(errno, EMSGSIZE);
    send_raw(pkt, sizeof pkt);
    assert_int_equal(ipc_recv(sv[1], &m), -1);

    /* The channel is still in step: the next packet reads normally. */
    ipc_init(&m, IPC_SHUTDOWN);
    ipc_add_u32(&m, 30);
    assert_int_equal(ipc_send(sv[0], &m), 0);
    assert_int_equal(ipc_recv(sv[1], &m), 1);
    assert_int_equal(m.type, IPC_SHUTDOWN);
    assert_int_equal(ipc_get_u32(&m, &v), 0);
    assert_int_equal(v, 30);
    assert_int_equal(ipc_end(&m), 0);
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* A packet carrying a file descriptor is refused, and no descriptor
 * is left behind in the receiver. */
static void test_passed_fd_refused(void **state)
{
    static struct ipc_msg m;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    uint8_t pkt[4] = {0, 0, 0, IPC_RELOAD};
    struct iovec iov = {.iov_base = pkt, .iov_len = sizeof pkt};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    (void)state;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    assert_int_equal(sendmsg(sv[0], &mh, 0), (ssize_t)sizeof pkt);
    close(fd);

    int before = count_fds();
    assert_int_equal(ipc_recv(sv[1], &m), -1);
    assert_int_equal(count_fds(), before);
}

/* ---- building limits, EOF, names -------------------------------------- */

static void test_overflow_never_sent(void **state)
{
    static struct ipc_msg m, in;
    static char huge[IPC_MAX_MSG + 10];
    (void)state;
    ipc_init(&m, IPC_LOG);
    while (!m.overflow) {
        size_t before = m.len;
        ipc_add_str(&m, "0123456789abcdef0123456789abcdef");
        assert_true(m.len <= IPC_MAX_MSG);
        if (m.overflow)
            assert_int_equal(m.len, before); /* nothing half-written */
    }
    size_t len = m.len;
    ipc_add_u32(&m, 1);
    ipc_add_u64(&m, 1);
    assert_int_equal(m.len, len);
    assert_int_equal(ipc_send(sv[0], &m), -1);
    assert_int_equal(errno, EMSGSIZE);
    assert_int_equal(ipc_end(&m), -1);

    memset(huge, 'h', sizeof huge - 1); /* one string larger than any message */
    ipc_init(&m, IPC_LOG);
    ipc_add_str(&m, huge);
    assert_true(m.overflow);
    assert_int_equal(m.len, 0);
    assert_int_equal(ipc_send(sv[0], &m), -1);

    /* Nothing reached the peer. */
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(ipc_recv(sv[1], &in), -1);
    assert_int_equal(errno, EAGAIN);
}

static void test_leftovers(void **state)
{
    struct ipc_msg m;
    uint32_t v;
    (void)state;
    ipc_init(&m, IPC_LOG);
    ipc_add_u32(&m, 1);
    ipc_add_u32(&m, 2);
    assert_int_equal(ipc_end(&m), -1);
    assert_int_equal(ipc_get_u32(&m, &v), 0);
    assert_int_equal(ipc_end(&m), -1); /* one field left */
    assert_int_equal(ipc_get_u32(&m, &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(ipc_end(&m), 0);
}

static void test_eof(void **state)
{
    static struct ipc_msg m;
    (void)state;
    close(sv[0]);
    sv[0] = open("/dev/null", O_RDONLY | O_CLOEXEC); /* for teardown */
    assert_int_equal(ipc_recv(sv[1], &m), 0);
    ipc_init(&m, IPC_RELOAD);
    assert_int_equal(ipc_send(sv[1], &m), -1); /* EPIPE, and no SIGPIPE */
    assert_int_equal(errno, EPIPE);
}

static void test_type_names(void **state)
{
    static const struct {
        uint32_t type;
        const char *name;
    } names[] = {{IPC_HELLO, "hello"},      {IPC_SPOOL_READY, "spool-ready"},
                 {IPC_RELOAD, "reload"},    {IPC_SHUTDOWN, "shutdown"},
                 {IPC_LOG, "log"},          {0, "unknown"},
                 {IPC_TYPE_MAX, "unknown"}, {UINT32_MAX, "unknown"}};
    (void)state;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_string_equal(ipc_type_name(names[i].type), names[i].name);
}

/* A list of queue ids, as smtpd sends a group commit's: filled until the
 * next id would not fit, sent, and read back as a list; a list with
 * another field in it, or longer than the reader's room, is refused. */
static void test_string_list(void **state)
{
    static struct ipc_msg m, r;
    const char *ids[IPC_STRS_MAX];
    char id[17];
    (void)state;
    ipc_init(&m, IPC_SPOOL_READY);
    size_t n = 0;
    for (;; n++) {
        snprintf(id, sizeof id, "%016zx", n);
        if (!ipc_str_fits(&m, id))
            break;
        ipc_add_str(&m, id);
    }
    assert_int_equal(n, IPC_MAX_MSG / (1 + 4 + 16 + 1));
    assert_int_equal(ipc_send(sv[0], &m), 0);
    assert_int_equal(ipc_recv(sv[1], &r), 1);
    assert_int_equal(ipc_get_strs(&r, ids, IPC_STRS_MAX), (int)n);
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%016zx", i);
        assert_string_equal(ids[i], id);
    }
    assert_int_equal(ipc_end(&r), 0);

    r.pos = 0; /* the same list with room for one less */
    assert_int_equal(ipc_get_strs(&r, ids, n - 1), -1);

    ipc_init(&m, IPC_SPOOL_READY); /* nothing at all */
    assert_int_equal(ipc_get_strs(&m, ids, IPC_STRS_MAX), -1);
    ipc_add_str(&m, "a"); /* a string, then a number */
    ipc_add_u32(&m, 7);
    assert_int_equal(ipc_send(sv[0], &m), 0);
    assert_int_equal(ipc_recv(sv[1], &r), 1);
    assert_int_equal(ipc_get_strs(&r, ids, IPC_STRS_MAX), -1);

    ipc_init(&m, IPC_SPOOL_READY); /* the most the smallest strings can be */
    for (size_t i = 0; i < IPC_STRS_MAX; i++) {
        assert_true(ipc_str_fits(&m, ""));
        ipc_add_str(&m, "");
    }
    assert_false(ipc_str_fits(&m, ""));
    assert_int_equal(ipc_send(sv[0], &m), 0);
    assert_int_equal(ipc_recv(sv[1], &r), 1);
    assert_int_equal(ipc_get_strs(&r, ids, IPC_STRS_MAX), IPC_STRS_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wire_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_truncation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_mutation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize_packet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passed_fd_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_never_sent, setup, teardown),
        cmocka_unit_test(test_leftovers),
        cmocka_unit_test_setup_teardown(test_eof, setup, teardown),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test_setup_teardown(test_string_list, setup, teardown),
    };
    log_init("test-ipc", false, LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
