/* test-msgstream.c — splitting a streamed message into header fields and
 * body, dropping fields, and the bounds on fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "mailauth/msgstream.h"

struct seen {
    char fields[32][256];
    bool complete[32];
    size_t n;
    bool done;
    struct sm_buf body, out;
    const char *drop_prefix;  /* fields starting with this are dropped */
};

static bool on_field(void *arg, const char *f, size_t len, bool complete)
{
    struct seen *s = arg;
    assert_false(s->done);
    if (s->n < 32) {
        snprintf(s->fields[s->n], sizeof s->fields[0], "%.*s", (int)len, f);
        s->complete[s->n] = complete;
    }
    s->n++;
    return s->drop_prefix == NULL || strncmp(f, s->drop_prefix, strlen(s->drop_prefix)) != 0;
}

static void on_done(void *arg)
{
    struct seen *s = arg;
    assert_false(s->done);
    s->done = true;
}

static void on_body(void *arg, const void *p, size_t n)
{
    struct seen *s = arg;
    assert_true(s->done);
    sm_buf_append(&s->body, p, n);
}

static int on_out(void *arg, const void *p, size_t n)
{
    struct seen *s = arg;
    sm_buf_append(&s->out, p, n);
    return 0;
}

static const struct msgstream_sink sink = {on_field, on_done, on_body, on_out};

/* Feed msg in pieces of piece bytes. */
static void run(struct seen *s, const char *msg, size_t piece, size_t field_max, size_t max_fields)
{
    sm_buf_init(&s->body, 0);
    sm_buf_init(&s->out, 0);
    struct msgstream *m = msgstream_new(&sink, s, field_max, max_fields);
    size_t len = strlen(msg);
    for (size_t off = 0; off < len; off += piece)
        assert_int_equal(msgstream_write(m, msg + off, len - off < piece ? len - off : piece), 0);
    assert_int_equal(msgstream_end(m), 0);
    assert_true(s->done);
    msgstream_free(&m);
}

static void done(struct seen *s)
{
    sm_buf_free(&s->body);
    sm_buf_free(&s->out);
}

static const char MSG[] = "Received: from x\r\n\tby y; date\r\n"
                          "Authentication-Results: mx.test; spf=pass\r\n"
                          "From: a@b\r\n"
                          "Subject: folded\r\n  twice\r\n"
                          "\r\n"
                          "Body line\r\n\r\nFrom: not a header\r\n";

static void test_fields_and_body_any_piece_size(void **state)
{
    (void)state;
    static const size_t pieces[] = {1, 2, 3, 7, 64, 4096};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        struct seen s = {0};
        run(&s, MSG, pieces[i], 1024, 100);
        assert_int_equal(s.n, 4);
        assert_string_equal(s.fields[0], "Received: from x\r\n\tby y; date\r\n");
        assert_string_equal(s.fields[3], "Subject: folded\r\n  twice\r\n");
        assert_true(s.complete[3]);
        assert_string_equal(sm_buf_str(&s.body), "Body line\r\n\r\nFrom: not a header\r\n");
        assert_string_equal(sm_buf_str(&s.out), MSG); /* everything kept: unchanged */
        done(&s);
    }
}

static void test_drop_a_field(void **state)
{
    (void)state;
    for (size_t piece = 1; piece < 9; piece++) {
        struct seen s = {.drop_prefix = "Authentication-Results:"};
        run(&s, MSG, piece, 1024, 100);
        assert_int_equal(s.n, 4);
        assert_null(strstr(sm_buf_str(&s.out), "spf=pass"));
        assert_non_null(strstr(sm_buf_str(&s.out), "From: a@b\r\nSubject"));
        assert_int_equal(s.out.len, strlen(MSG) - strlen("Authentication-Results: mx.test; spf=pass\r\n"));
        done(&s);
    }
}

static void test_oversized_fields(void **state)
{
    (void)state;
    char msg[2048];
    char longv[600];
    memset(longv, 'v', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    snprintf(msg, sizeof msg, "X-Long: %s\r\nAuthentication-Results: mx.test;\r\n %s\r\nTo: c\r\n\r\nb",
             longv, longv);
    for (size_t piece = 1; piece < 600; piece += 97) {
        struct seen s = {.drop_prefix = "Authentication-Results:"};
        run(&s, msg, piece, 64, 100);
        assert_int_equal(s.n, 3);
        assert_false(s.complete[0]);
        assert_false(s.complete[1]);
        assert_true(s.complete[2]);
        assert_int_equal(strlen(s.fields[0]), 64);
        /* the long field kept whole, the long A-R dropped whole */
        char want[2048];
        snprintf(want, sizeof want, "X-Long: %s\r\nTo: c\r\n\r\nb", longv);
        assert_string_equal(sm_buf_str(&s.out), want);
        assert_string_equal(sm_buf_str(&s.body), "b");
        done(&s);
    }
}

static void test_field_count_bound_and_odd_input(void **state)
{
    (void)state;
    struct seen s = {.drop_prefix = "B:"};
    run(&s, "A: 1\r\nB: 2\r\nB: 3\r\n\r\n", 1, 64, 2);
    assert_int_equal(s.n, 2); /* the third field got no callback and stays */
    assert_string_equal(sm_buf_str(&s.out), "A: 1\r\nB: 3\r\n\r\n");
    done(&s);

    struct seen t = {0};
    run(&t, "Only: header\r\nno end", 3, 64, 10);
    assert_int_equal(t.n, 2);
    assert_string_equal(sm_buf_str(&t.out), "Only: header\r\nno end");
    assert_int_equal(t.body.len, 0);
    done(&t);

    struct seen u = {0};
    run(&u, "\r\nall body\r\n", 1, 64, 10);
    assert_int_equal(u.n, 0);
    assert_string_equal(sm_buf_str(&u.body), "all body\r\n");
    assert_string_equal(sm_buf_str(&u.out), "\r\nall body\r\n");
    done(&u);

    struct seen v = {0};
    run(&v, " leading space\r\nA: b\r\n\rX\r\n\r", 1, 64, 10);
    assert_string_equal(sm_buf_str(&v.out), " leading space\r\nA: b\r\n\rX\r\n\r");
    done(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_and_body_any_piece_size),
        cmocka_unit_test(test_drop_a_field),
        cmocka_unit_test(test_oversized_fields),
        cmocka_unit_test(test_field_count_bound_and_odd_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
