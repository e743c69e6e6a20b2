/* listener.c — parse listen specifications and open listening sockets.
 *
 * Design: the whole specification is parsed and checked before the first
 * socket is opened, so a typo never leaves half the ports bound.  Only
 * numeric addresses are accepted: resolving names here would make start-up
 * depend on DNS and could silently bind fewer addresses than a name has.
 * IPv6 addresses need brackets ("[::1]:25"), because "::1:25" is
 * ambiguous.  ":port" means every address: one IPv6 socket with
 * IPV6_V6ONLY off (it also takes IPv4), or 0.0.0.0 where the kernel has no
 * IPv6.  Sockets are non-blocking and close-on-exec (the master hands them
 * to its children explicitly), SO_REUSEADDR so a restart does not wait
 * for TIME_WAIT, backlog 511.  On any failure every socket already opened
 * is closed before returning. */
#include "net/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 511
#define TOKEN_SHOWN 64 /* bytes of a bad token quoted in an error */

struct listen_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    bool any; /* ":port": IPv6 any, dual-stack, falling back to 0.0.0.0 */
};

static bool is_sep(char c)
{
    return c == ' ' || c == ',' || c == '\t' || c == '\n';
}

/* A decimal port 0..65535 (0: the kernel picks one, used by tests). */
static int parse_port(const char *s, size_t len, uint16_t *port)
{
    unsigned long v = 0;
    if (len == 0 || len > 5)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

static void set_v4(struct listen_addr *a, const struct in_addr *in, uint16_t port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr = *in;
    a->len = sizeof *sin;
}

static void set_v6(struct listen_addr *a, const struct in6_addr *in6, uint16_t port)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    sin6->sin6_addr = *in6;
    a->len = sizeof *sin6;
}

/* Split a token into host and port text; "why" explains a failure. */
static int split_token(const char *tok, size_t len, char *host, size_t hostlen, bool *bracketed,
                       const char **port, size_t *portlen, const char **why)
{
    const char *start = tok, *colon;

    *bracketed = tok[0] == '[';
    if (*bracketed) {
        const char *close = memchr(tok, ']', len);
        if (close == NULL || close + 1 == tok + len || close[1] != ':') {
            *why = "expected [IPv6]:port";
            return -1;
        }
        start = tok + 1;
        colon = close + 1;
    } else {
        colon = memrchr(tok, ':', len);
        if (colon == NULL) {
            *why = "missing :port";
            return -1;
        }
        if (memchr(tok, ':', (size_t)(colon - tok)) != NULL) {
            *why = "IPv6 addresses must be in brackets, as in [::1]:25";
            return -1;
        }
    }
    size_t hlen = (size_t)((*bracketed ? colon - 1 : colon) - start);
    if (hlen >= hostlen) {
        *why = "address too long";
        return -1;
    }
    memcpy(host, start, hlen);
    host[hlen] = '\0';
    *port = colon + 1;
    *portlen = (size_t)(tok + len - *port);
    return 0;
}

/* Parse one "host:port", "[v6]:port" or ":port" token. */
static int parse_token(const char *tok, size_t len, struct listen_addr *a, const char **why)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port_s;
    size_t port_len;
    bool bracketed;
    uint16_t port;
    struct in_addr in;
    struct in6_addr in6;

    memset(a, 0, sizeof *a);
    if (split_token(tok, len, host, sizeof host, &bracketed, &port_s, &port_len, why) < 0)
        return -1;
    if (parse_port(port_s, port_len, &port) < 0) {
        *why = "port must be a number from 0 to 65535";
        return -1;
    }
    if (bracketed) {
        if (inet_pton(AF_INET6, host, &in6) != 1) {
            *why = "not a numeric IPv6 address";
            return -1;
        }
        set_v6(a, &in6, port);
    } else if (host[0] == '\0') {
        a->any = true;
        set_v6(a, &in6addr_any, port);
    } else if (inet_pton(AF_INET, host, &in) == 1) {
        set_v4(a, &in, port);
    } else {
        *why = "not a numeric IPv4 address (host names are not resolved)";
        return -1;
    }
    return 0;
}

/* Parse the whole list into addrs; 0 or -1 with err. */
static int parse_spec(const char *spec, struct listen_addr *addrs, size_t max, size_t *n, char *err,
                      size_t errlen)
{
    const char *p = spec;
    *n = 0;
    while (*p != '\0') {
        while (is_sep(*p))
            p++;
        if (*p == '\0')
            break;
        size_t len = 0;
        while (p[len] != '\0' && !is_sep(p[len]))
            len++;
        const char *why = NULL;
        if (*n == max) {
            snprintf(err, errlen, "listen: more than %zu addresses in '%.*s'", max, TOKEN_SHOWN,
                     spec);
            return -1;
        }
        if (parse_token(p, len, &addrs[*n], &why) < 0) {
            snprintf(err, errlen, "listen: bad address '%.*s': %s",
                     (int)(len < TOKEN_SHOWN ? len : TOKEN_SHOWN), p, why);
            return -1;
        }
        (*n)++;
        p += len;
    }
    return 0;
}

static int set_int_opt(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof value);
}

/* Open, configure, bind and listen one socket; -1 with errno set. */
static int open_one(const struct sockaddr_storage *ss, socklen_t len, bool v6only)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0 ||
        (ss->ss_family == AF_INET6 && set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only) < 0) ||
        bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Open one parsed address; ":port" falls back to IPv4 without IPv6. */
static int open_addr(const struct listen_addr *a)
{
    int fd = open_one(&a->ss, a->len, !a->any);
    if (fd >= 0 || !a->any)
        return fd;
    if (errno != EAFNOSUPPORT && errno != EADDRNOTAVAIL && errno != EPROTONOSUPPORT)
        return -1;
    struct listen_addr v4 = {.any = true};
    struct in_addr any = {.s_addr = htonl(INADDR_ANY)};
    set_v4(&v4, &any, ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port));
    return open_one(&v4.ss, v4.len, false);
}

static void describe_addr(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
        snprintf(out, outlen, "%s:%u", host, ntohs(sin->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
        snprintf(out, outlen, "[%s]:%u", host, ntohs(sin6->sin6_port));
    } else {
        snprintf(out, outlen, "unknown");
    }
}

int listener_open_all(const char *spec, int *fds, size_t max, size_t *n, char *err, size_t errlen)
{
    struct listen_addr addrs[LISTEN_MAX];
    size_t count;

    *n = 0;
    if (spec == NULL)
        spec = "";
    if (parse_spec(spec, addrs, max < LISTEN_MAX ? max : LISTEN_MAX, &count, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < count; i++) {
        int fd = open_addr(&addrs[i]);
        if (fd < 0) {
            char where[INET6_ADDRSTRLEN + 16];
            int saved = errno;
            describe_addr(&addrs[i].ss, where, sizeof where);
            snprintf(err, errlen, "listen: cannot listen on %s: %s", where, strerror(saved));
            for (size_t j = 0; j < *n; j++)
                close(fds[j]);
            *n = 0;
            errno = saved;
            return -1;
        }
        fds[(*n)++] = fd;
    }
    return 0;
}

void listener_describe(int fd, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    if (out == NULL || outlen == 0)
        return;
    memset(&ss, 0, sizeof ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        snprintf(out, outlen, "unknown");
        return;
    }
    describe_addr(&ss, out, outlen);
}

void listener_unmap_v4(struct sockaddr_storage *ss)
{
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
        return;
    struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = s6->sin6_port};
    memcpy(&s4.sin_addr, s6->sin6_addr.s6_addr + 12, 4);
    memset(ss, 0, sizeof *ss);
    memcpy(ss, &s4, sizeof s4);
}
