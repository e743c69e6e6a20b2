/* fuzz-http.c — the web entry path on arbitrary bytes from a client.
 *
 * Each input is sent, as a client would send it, over a real loopback TCP
 * connection to httpd's front (http/server.h: evhttp with the connection
 * registration, headers and redirects) and application (http/api.h:
 * routing, bearer tokens, the JSON body of a create, queries) over a real
 * data directory; jobs run on a real worker pool.  The client half-closes
 * and the loop runs until the server closes the connection (bounded in
 * iterations).  Crashes, leaks, UB and hangs are findings; so is a
 * connection the server never closes, or a 5xx answer other than 501 and
 * 503 (bad input must get a 4xx). */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/workpool.h"
#include "crypto/seal.h"
#include "http/api.h"
#include "http/server.h"
#include "mime/mime.h"
#include "store/directory.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ITERATIONS_MAX 200000

static struct event_base *base;
static struct http_server *srv;
static struct sockaddr_in addr;

static void setup(void)
{
    static struct sm_config cfg;
    static char dir[] = "/tmp/fuzz-http-XXXXXX";
    const char *error;
    seal_init();
    mime_init();
    log_set_level(LOG_LEVEL_ERROR);
    if (mkdtemp(dir) == NULL)
        abort();
    config_defaults(&cfg);
    free(cfg.data_dir);
    cfg.data_dir = strdup(dir);
    struct directory *d = directory_open(dir, true, &error);
    if (d == NULL)
        abort();
    directory_close(&d);
    char inboxes[64];
    snprintf(inboxes, sizeof inboxes, "%s/inboxes", dir);
    mkdir(inboxes, 0700);
    base = event_base_new();
    struct workpool *wp = workpool_new(base, 1);
    struct api *api = api_new(&cfg, base, wp);
    struct http_server_params p = {.base = base, .max_connections = 16, .timeout = 5,
                                   .handler = api_handle, .handler_arg = api};
    srv = http_server_new(&p);
    api_set_server(api, srv);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) < 0 ||
        http_server_listen(srv, &fd, 1, false) < 0)
        abort();
}

/* Send everything, reading what comes back meanwhile; true once the
 * server closed. */
static bool pump(int c, const uint8_t *data, size_t size, size_t *sent, char *status, size_t *got)
{
    char buf[4096];
    if (*sent < size) {
        ssize_t n = send(c, data + *sent, size - *sent, MSG_NOSIGNAL);
        if (n > 0)
            *sent += (size_t)n;
        else if (n < 0 && errno != EAGAIN)
            *sent = size; /* the server closed already */
        if (*sent == size)
            shutdown(c, SHUT_WR);
    }
    ssize_t n = recv(c, buf, sizeof buf, 0);
    if (n > 0) {
        size_t keep = *got < 12 ? 12 - *got : 0;
        memcpy(status + *got, buf, (size_t)n < keep ? (size_t)n : keep);
        *got += (size_t)n < keep ? (size_t)n : keep;
    }
    return n == 0 || (n < 0 && errno != EAGAIN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (base == NULL)
        setup();
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c < 0 || (connect(c, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS))
        abort();
    size_t sent = 0, got = 0;
    char status[13] = "";
    if (size == 0)
        shutdown(c, SHUT_WR);
    bool closed = false;
    for (int i = 0; i < ITERATIONS_MAX && !closed; i++) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        closed = pump(c, data, size, &sent, status, &got);
    }
    close(c);
    if (!closed) {
        fprintf(stderr, "fuzz-http: the server kept the connection open\n");
        abort();
    }
    /* only the first response's status line is read: "HTTP/1.1 5xx".
     * 501 is evhttp's answer to an unknown method (RFC 9110 §9.1), 503
     * ours to a full server; any other 5xx is a server error */
    if (got >= 12 && memcmp(status, "HTTP/1.", 7) == 0 && status[9] == '5' &&
        memcmp(status + 9, "501", 3) != 0 && memcmp(status + 9, "503", 3) != 0) {
        fprintf(stderr, "fuzz-http: server error %.12s\n", status);
        abort();
    }
    for (int i = 0; i < 100; i++) /* let the server drop the connection */
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    return 0;
}
