/* test-conn.c — pausing a plain connection: input that comes while it
 * is paused stays in the socket, unread and unreported, the read event
 * comes off once (no busy loop on a readable socket), and resuming
 * reads it and reports it. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/conn.h"

struct seen {
    int datain, other;
};

static void on_event(struct conn *c, enum conn_event ev, void *arg)
{
    (void)c;
    struct seen *s = arg;
    if (ev == CONN_DATAIN)
        s->datain++;
    else
        s->other++;
}

/* Run the loop without blocking, a few turns. */
static void turn(struct event_base *base)
{
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

static int added(struct event_base *base)
{
    return event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED);
}

/* The bytes input holds, as a string, drained. */
static void assert_input(struct conn *c, const char *want)
{
    struct evbuffer *in = conn_input(c);
    char got[64] = {0};
    assert_int_equal(evbuffer_get_length(in), strlen(want));
    evbuffer_remove(in, got, sizeof got - 1);
    assert_string_equal(got, want);
}

static void send_text(int fd, const char *s)
{
    assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

static void test_pause_leaves_input_in_the_socket(void **state)
{
    (void)state;
    int sv[2];
    char peek[16];
    struct seen seen = {0};
    struct event_base *base = event_base_new();
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    struct conn *c = conn_new(base, sv[0], NULL, 1 << 20, on_event, &seen);

    send_text(sv[1], "one\r\n");
    turn(base);
    assert_int_equal(seen.datain, 1);
    assert_input(c, "one\r\n");

    int watching = added(base);
    conn_pause(c);
    turn(base); /* nothing came: nothing changes */
    assert_int_equal(added(base), watching);

    send_text(sv[1], "two\r\n");
    turn(base);
    assert_int_equal(seen.datain, 1);                              /* not reported */
    assert_int_equal(evbuffer_get_length(conn_input(c)), 0);       /* not read */
    assert_int_equal(recv(sv[0], peek, sizeof peek, MSG_PEEK), 5); /* still in the socket */
    assert_int_equal(added(base), watching - 1);                   /* and no longer watched */

    conn_resume(c);
    turn(base);
    assert_int_equal(seen.datain, 2);
    assert_input(c, "two\r\n");
    assert_int_equal(added(base), watching);
    assert_int_equal(seen.other, 0);

    conn_free(&c);
    close(sv[1]);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pause_leaves_input_in_the_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
