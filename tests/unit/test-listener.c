/* test-listener.c — listen specifications and the sockets they open.
 *
 * Good specifications use port 0 so the kernel picks free ports; each
 * socket is then checked for its flags and options, described, and
 * connected to.  Bad specifications must fail with a message naming the
 * problem and leave no descriptor open. */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/listener.h"

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

static bool have_ipv6_loopback(void)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&sin6, sizeof sin6) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static int int_opt(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

/* A listening socket is usable: a client of the given family connects
 * to its port on loopback (which "any" includes). */
static void check_connect(int fd, int family)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    in_port_t port = ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                             : ((struct sockaddr_in6 *)&ss)->sin6_port;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = port};
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = port};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin6.sin6_addr = in6addr_loopback;

    int c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c >= 0);
    if (family == AF_INET)
        assert_int_equal(connect(c, (struct sockaddr *)&sin, sizeof sin), 0);
    else
        assert_int_equal(connect(c, (struct sockaddr *)&sin6, sizeof sin6), 0);
    close(c);
}

static void check_socket(int fd)
{
    char out[64], want[64];
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(int_opt(fd, SOL_SOCKET, SO_REUSEADDR), 1);
    assert_int_equal(int_opt(fd, SOL_SOCKET, SO_ACCEPTCONN), 1);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    listener_describe(fd, out, sizeof out);
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
        char host[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
        snprintf(want, sizeof want, "%s:%u", host, ntohs(sin->sin_port));
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
        char host[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
        snprintf(want, sizeof want, "[%s]:%u", host, ntohs(sin6->sin6_port));
        /* Explicit v6 addresses are v6 only; ":port" takes IPv4 too. */
        bool any = IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
        assert_int_equal(int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY), any ? 0 : 1);
        if (any)
            check_connect(fd, AF_INET);
    }
    assert_string_equal(out, want);
    assert_int_not_equal(strcmp(out + strlen(out) - 2, ":0"), 0);
    check_connect(fd, ss.ss_family);
}

static const struct spec_case {
    const char *label;
    const char *spec;
    size_t max;
    bool needs_ipv6;
    int ok;
    size_t n;
    const char *want; /* describe() prefix of the first socket, or error text */
} spec_cases[] = {
    {"empty list opens nothing", "", LISTEN_MAX, false, 0, 0, NULL},
    {"only separators open nothing", " , \t", LISTEN_MAX, false, 0, 0, NULL},
    {"one IPv4 address", "127.0.0.1:0", LISTEN_MAX, false, 0, 1, "127.0.0.1:"},
    {"two, space separated", "127.0.0.1:0 127.0.0.1:0", LISTEN_MAX, false, 0, 2, "127.0.0.1:"},
    {"two, comma separated", "127.0.0.1:0,127.0.0.1:0", 2, false, 0, 2, "127.0.0.1:"},
    {"IPv6 in brackets, comma and space", "[::1]:0, 127.0.0.1:0", LISTEN_MAX, true, 0, 2, "[::1]:"},
    {"all addresses", ":0", LISTEN_MAX, false, 0, 1, NULL},
    {"leading zeros in the port", "127.0.0.1:00000", LISTEN_MAX, false, 0, 1, "127.0.0.1:"},
    {"missing port", "127.0.0.1", LISTEN_MAX, false, -1, 0, "missing :port"},
    {"empty port", "127.0.0.1:", LISTEN_MAX, false, -1, 0, "port must be a number"},
    {"port above 65535", "127.0.0.1:65536", LISTEN_MAX, false, -1, 0, "0 to 65535"},
    {"negative port", "127.0.0.1:-1", LISTEN_MAX, false, -1, 0, "port must be a number"},
    {"port with letters", "127.0.0.1:25x", LISTEN_MAX, false, -1, 0, "port must be a number"},
    {"six-digit port", "127.0.0.1:000025", LISTEN_MAX, false, -1, 0, "port must be a number"},
    {"host name", "localhost:25", LISTEN_MAX, false, -1, 0, "host names are not resolved"},
    {"bad IPv4 address", "999.1.1.1:25", LISTEN_MAX, false, -1, 0, "'999.1.1.1:25'"},
    {"IPv6 without brackets", "::1:25", LISTEN_MAX, false, -1, 0, "must be in brackets"},
    {"unclosed bracket", "[::1:25", LISTEN_MAX, false, -1, 0, "expected [IPv6]:port"},
    {"bracket without colon", "[::1]25", LISTEN_MAX, false, -1, 0, "expected [IPv6]:port"},
    {"bracket without port", "[::1]", LISTEN_MAX, false, -1, 0, "expected [IPv6]:port"},
    {"IPv4 in brackets", "[127.0.0.1]:25", LISTEN_MAX, false, -1, 0, "IPv6 address"},
    {"empty brackets", "[]:25", LISTEN_MAX, false, -1, 0, "IPv6 address"},
    {"overlong address", "[0000:0000:0000:0000:0000:0000:0000:0000:0000:0000]:25", LISTEN_MAX,
     false, -1, 0, "too long"},
    {"more addresses than max", "127.0.0.1:0 127.0.0.1:0 127.0.0.1:0", 2, false, -1, 0,
     "more than 2 addresses"},
    {"a bad second token opens nothing", "127.0.0.1:0 nope", LISTEN_MAX, false, -1, 0,
     "'nope': missing :port"},
    {"bind failure closes earlier sockets", "127.0.0.1:0 192.0.2.1:0", LISTEN_MAX, false, -1, 0,
     "cannot listen on 192.0.2.1:0"},
};

static void test_specs(void **state)
{
    bool v6 = have_ipv6_loopback();
    (void)state;
    for (size_t i = 0; i < sizeof spec_cases / sizeof spec_cases[0]; i++) {
        const struct spec_case *t = &spec_cases[i];
        int fds[LISTEN_MAX];
        size_t n = 99;
        char err[256] = "", first[64] = "";
        if (t->needs_ipv6 && !v6) {
            print_message("case: %s (skipped: no IPv6 loopback)\n", t->label);
            continue;
        }
        print_message("case: %s\n", t->label);
        int before = count_fds();
        int rc = listener_open_all(t->spec, fds, t->max, &n, err, sizeof err);
        assert_int_equal(rc, t->ok);
        assert_int_equal(n, t->n);
        if (rc < 0) {
            if (strstr(err, t->want) == NULL)
                fail_msg("error '%s' lacks '%s'", err, t->want);
            assert_int_equal(count_fds(), before);
            continue;
        }
        for (size_t j = 0; j < n; j++)
            check_socket(fds[j]);
        if (n > 0)
            listener_describe(fds[0], first, sizeof first);
        if (t->want != NULL)
            assert_int_equal(strncmp(first, t->want, strlen(t->want)), 0);
        for (size_t j = 0; j < n; j++)
            close(fds[j]);
        assert_int_equal(count_fds(), before);
    }
}

static void test_port_in_use(void **state)
{
    int fds[2], more[2];
    size_t n, m;
    char err[256], where[64], spec[80];
    (void)state;
    assert_int_equal(listener_open_all("127.0.0.1:0", fds, 2, &n, err, sizeof err), 0);
    listener_describe(fds[0], where, sizeof where);
    snprintf(spec, sizeof spec, "%s", where);
    assert_int_equal(listener_open_all(spec, more, 2, &m, err, sizeof err), -1);
    assert_int_equal(m, 0);
    assert_non_null(strstr(err, where));
    assert_non_null(strstr(err, "in use"));
    close(fds[0]);
}

static void test_describe_edge_cases(void **state)
{
    char out[64];
    (void)state;
    listener_describe(-1, out, sizeof out);
    assert_string_equal(out, "unknown");
    listener_describe(-1, out, 0); /* writes nothing */
    int fds[1];
    size_t n;
    char err[128];
    assert_int_equal(listener_open_all("127.0.0.1:0", fds, 1, &n, err, sizeof err), 0);
    listener_describe(fds[0], out, 6);
    assert_string_equal(out, "127.0");
    close(fds[0]);
}

/* A dual-stack listener's IPv4 peer becomes AF_INET; real IPv6 and IPv4
 * addresses stay as they are. */
static void test_unmap_v4(void **state)
{
    (void)state;
    struct sockaddr_storage ss = {0};
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(4321);
    assert_int_equal(inet_pton(AF_INET6, "::ffff:198.51.100.7", &s6->sin6_addr), 1);
    listener_unmap_v4(&ss);
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
    assert_int_equal(s4->sin_family, AF_INET);
    assert_int_equal(ntohs(s4->sin_port), 4321);
    assert_int_equal(ntohl(s4->sin_addr.s_addr), 0xc6336407u);

    memset(&ss, 0, sizeof ss);
    s6->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, "2001:db8::7", &s6->sin6_addr), 1);
    listener_unmap_v4(&ss);
    assert_int_equal(ss.ss_family, AF_INET6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_specs),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_describe_edge_cases),
        cmocka_unit_test(test_unmap_v4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
