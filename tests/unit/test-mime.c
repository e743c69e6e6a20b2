/* test-mime.c — the mime module against golden files and its contracts.
 *
 * The golden files in tests/unit/data/mime are Dovecot 2.3's answers for
 * the same messages (README.md there: how they were produced, and the few
 * deliberate differences); ENVELOPE, BODYSTRUCTURE and BODY must match byte
 * for byte.  The other tests check what Dovecot cannot tell us: sort keys,
 * search text, part offsets, LF and CRLF giving the same texts, the limits,
 * errors, and parallel use from threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four above */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mime/internal.h"
#include "mime/mime.h"

#ifndef MIME_TEST_DATA
#error "MIME_TEST_DATA must name tests/unit/data/mime (see src/mime/meson.build)"
#endif

static const char *const corpus[] = {
    "8bit-headers",    "addresses",
    "bare-lf",         "boundaries",
    "cpython-msg_02",  "cpython-msg_06",
    "cpython-msg_14",  "cpython-msg_16",
    "cpython-msg_28",  "cpython-msg_29",
    "cpython-msg_31",  "cpython-msg_33",
    "cpython-msg_36",  "cpython-msg_41",
    "cpython-msg_45",  "deep-120",
    "deep-60",         "digest",
    "empty",           "empty-body",
    "empty-parts",     "encoded-words",
    "extension-data",  "folding",
    "garbage-start",   "groups",
    "headers-nul",     "html-text",
    "many-escapes",    "message-opaque",
    "missing-close",   "mixed-endings",
    "no-blank-line",   "no-boundary-param",
    "no-mime-version", "param-8bit",
    "rfc822-nested",   "same-boundary",
};
#define N_CORPUS (sizeof corpus / sizeof corpus[0])

/* The whole file MIME_TEST_DATA/name.ext (NUL-terminated), or NULL. */
static char *read_data(const char *name, const char *ext, size_t *len_r)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.%s", MIME_TEST_DATA, name, ext);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, len = 0, n;
    char *buf = malloc(cap);
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[len] = '\0';
    *len_r = len;
    return buf;
}

/* Analyse bytes through a memfd, the way delivery calls the module. */
static void analyse(const void *p, size_t len, struct mime_summary *s)
{
    int fd = memfd_create("test-mime", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, len), (ssize_t)len);
    const char *error = NULL;
    assert_int_equal(mime_analyse_fd(fd, s, &error), 0);
    close(fd);
}

/* IMAP syntax of every text, and ten ENVELOPE fields. */
static void check_syntax(const char *label, const struct mime_summary *s)
{
    unsigned items;
    if (!imap_syntax_check(s->envelope, strlen(s->envelope), &items) || items != 10)
        fail_msg("%s: malformed ENVELOPE %s", label, s->envelope);
    if (!imap_syntax_check(s->bodystructure, strlen(s->bodystructure), &items) || items < 2)
        fail_msg("%s: malformed BODYSTRUCTURE %s", label, s->bodystructure);
    if (!imap_syntax_check(s->body, strlen(s->body), &items) || items < 2)
        fail_msg("%s: malformed BODY %s", label, s->body);
}

static void expect_golden(const char *name, const char *field, const char *got)
{
    size_t len;
    char *want = read_data(name, field, &len);
    if (want == NULL)
        fail_msg("%s.%s: golden file missing", name, field);
    if (strlen(got) != len || memcmp(got, want, len) != 0) {
        size_t i = 0;
        while (i < len && got[i] == want[i])
            i++;
        fail_msg("%s.%s differs at byte %zu:\n want %s\n got  %s", name, field, i, want, got);
    }
    free(want);
}

static void test_golden(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CORPUS; i++) {
        size_t len;
        char *eml = read_data(corpus[i], "eml", &len);
        if (eml == NULL)
            fail_msg("%s.eml missing", corpus[i]);
        struct mime_summary s;
        analyse(eml, len, &s);
        check_syntax(corpus[i], &s);
        expect_golden(corpus[i], "envelope", s.envelope);
        expect_golden(corpus[i], "bodystructure", s.bodystructure);
        expect_golden(corpus[i], "body", s.body);
        mime_summary_free(&s);
        free(eml);
    }
}

/* A regular file gives the same as a memfd, and the fd keeps its offset. */
static void test_regular_file(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/rfc822-nested.eml", MIME_TEST_DATA);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(lseek(fd, 7, SEEK_SET), 7);
    struct mime_summary s;
    const char *error;
    assert_int_equal(mime_analyse_fd(fd, &s, &error), 0);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 7);
    close(fd);
    expect_golden("rfc822-nested", "bodystructure", s.bodystructure);
    mime_summary_free(&s);
    mime_summary_free(&s); /* a freed summary may be freed again */
}

/* Every message with all-LF and all-CRLF line ends gives the same texts:
 * sizes count a bare LF as CRLF. */
static void test_line_ends(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CORPUS; i++) {
        size_t len;
        char *eml = read_data(corpus[i], "eml", &len);
        char *lf = malloc(len + 1), *crlf = malloc(2 * len + 1);
        size_t nlf = 0, ncrlf = 0;
        for (size_t j = 0; j < len; j++) {
            if (eml[j] == '\r' && j + 1 < len && eml[j + 1] == '\n')
                continue;
            if (eml[j] == '\n')
                crlf[ncrlf++] = '\r';
            crlf[ncrlf++] = eml[j];
            lf[nlf++] = eml[j];
        }
        struct mime_summary a, b;
        analyse(lf, nlf, &a);
        analyse(crlf, ncrlf, &b);
        if (strcmp(a.envelope, b.envelope) != 0 || strcmp(a.bodystructure, b.bodystructure) != 0 ||
            strcmp(a.body, b.body) != 0)
            fail_msg("%s: LF and CRLF differ:\n %s\n %s", corpus[i], a.bodystructure,
                     b.bodystructure);
        mime_summary_free(&a);
        mime_summary_free(&b);
        free(lf);
        free(crlf);
        free(eml);
    }
}

static const struct summary_case {
    const char *name;
    int64_t date;
    const char *subject, *from, *to, *cc, *message_id;
    unsigned n_parts;
    const char *text_has, *text_lacks, *headers_has;
} summary_cases[] = {
    {"html-text", 1738886827, "Caf\xc3\xa9 news", "news@example.com", "reader@example.org", "",
     "<html@example.com>", 5,
     "Caf\xc3\xa9 is open today.\n Caf\xc3\xa9 is open today & tomorrow. \xe2\x82\xac 10 ",
     "attachment text", "Subject: Caf\xc3\xa9 news\n"},
    {"encoded-words", 1738573872,
     "\xc3\x84rve s\xc3\xb6nder and \xc5\xbc"
     "aba folded \"quoted\"",
     "andre@example.org", "john@example.com", "bs@example.com", "<enc-1@example.org>", 1,
     "Gr\xc3\xbc\xc3\x9f"
     "e aus M\xc3\xbcnchen.",
     NULL, "From: Andr\xc3\xa9 M\xc3\xbcller <andre@example.org>\n"},
    {"8bit-headers", 1738656000,
     "Gr\xc3\xbc\xc3\x9f"
     "e \xe2\x80\x94 8-bit",
     "jorg@example.org", "cafe@example.com", "", "<8bit@example.org>", 1, "K\xc3\xa4se", NULL,
     "To: Caf\xc3\xa9 <cafe@example.com>\n"},
    {"mixed-endings", 0, "mixed line endings", "a@example.com", "b@example.com", "", "", 3,
     "CRLF line\nLF line\nlast\nK\xc3\xa4se", NULL, NULL},
    {"rfc822-nested", 1738742400, "Fwd: the original", "fwd@example.com", "you@example.net", "",
     "<outer@example.com>", 9, "Caf\xc3\xa9 at noon?", "hidden",
     /* the MIME header fields of parts too (RFC 9051 §6.4.4 TEXT) */
     "Content-Type: message/rfc822; name=original.eml\n"
     "Content-Disposition: attachment; filename=original.eml\n"},
    {"groups", 1738774800, "groups", "alice@example.com", "", "carol@example.com",
     "<groups@example.com>", 1, "body", NULL, "Bcc: hidden@example.com\n"},
    {"addresses", 0, "addresses", "john@example.com", "routed@example.com", "x@y", "", 1, NULL,
     NULL, NULL},
    {"empty", 0, "", "", "", "", "", 1, NULL, NULL, NULL},
    {"headers-nul", 0,
     "nul\xef\xbf\xbd"
     "byte",
     "nul@example.com", "", "",
     "<a\xef\xbf\xbd"
     "b@example.com>",
     1, "body with  nul", NULL, NULL},
};

static void test_summary(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof summary_cases / sizeof summary_cases[0]; i++) {
        const struct summary_case *c = &summary_cases[i];
        size_t len;
        char *eml = read_data(c->name, "eml", &len);
        struct mime_summary s;
        analyse(eml, len, &s);
        if (s.date != c->date || strcmp(s.subject, c->subject) != 0 ||
            strcmp(s.from, c->from) != 0 || strcmp(s.to, c->to) != 0 || strcmp(s.cc, c->cc) != 0 ||
            strcmp(s.message_id, c->message_id) != 0 || s.n_parts != c->n_parts || s.truncated)
            fail_msg("%s: date=%lld subject=[%s] from=[%s] to=[%s] cc=[%s] id=[%s] parts=%u "
                     "truncated=%d",
                     c->name, (long long)s.date, s.subject, s.from, s.to, s.cc, s.message_id,
                     s.n_parts, s.truncated);
        if (c->text_has != NULL && strstr(s.search_text, c->text_has) == NULL)
            fail_msg("%s: search_text lacks [%s]: [%s]", c->name, c->text_has, s.search_text);
        if (c->text_lacks != NULL && strstr(s.search_text, c->text_lacks) != NULL)
            fail_msg("%s: search_text has [%s]", c->name, c->text_lacks);
        if (c->headers_has != NULL && strstr(s.search_headers, c->headers_has) == NULL)
            fail_msg("%s: search_headers lacks [%s]: [%s]", c->name, c->headers_has,
                     s.search_headers);
        assert_true(g_utf8_validate(s.search_text, -1, NULL));
        assert_true(g_utf8_validate(s.search_headers, -1, NULL));
        assert_true(g_utf8_validate(s.subject, -1, NULL));
        mime_summary_free(&s);
        free(eml);
    }
}

/* SORT keys: i;unicode-casemap (RFC 5051) and the RFC 5957 display value. */
static void test_sort_keys(void **state)
{
    (void)state;
    char *a = mime_casemap("\xc3\xa4rve s\xc3\xb6nder"), *b = mime_casemap("alternative"),
         *c = mime_casemap("Bare LF"), *d = mime_casemap("\xc7\x86"), *e = mime_casemap("x\xff");
    assert_string_equal(a, "A\xcc\x88RVE SO\xcc\x88NDER"); /* titlecase, then NFD */
    assert_true(strcmp(b, a) < 0 && strcmp(a, c) < 0);    /* alternative < Ärve < Bare */
    assert_string_equal(d, "\xc7\x85"); /* U+01C6 dz titlecases to U+01C5 Dz */
    assert_string_equal(e, "XY\xcc\x88"); /* not UTF-8: read as Latin-1: y diaeresis */
    free(a), free(b), free(c), free(d), free(e);

    static const char eml[] = "From: \"Smith, John \\\"JJ\\\"\" <john@example.com>\r\n"
                              "To: <rcpt@example.net>, =?utf-8?q?J=C3=B6rg?= <j@example.org>\r\n"
                              "Subject: keys\r\n\r\nbody\r\n";
    struct mime_summary s;
    analyse(eml, sizeof eml - 1, &s);
    char *from = mime_envelope_display(s.envelope, MIME_ENV_FROM);
    char *to = mime_envelope_display(s.envelope, MIME_ENV_TO);
    char *none = mime_envelope_display("(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)", MIME_ENV_TO);
    char *junk = mime_envelope_display("(\"unterminated", MIME_ENV_FROM);
    assert_string_equal(from, "Smith, John \"JJ\"");
    assert_string_equal(to, "rcpt@example.net"); /* no name: mailbox@host */
    assert_string_equal(none, "");
    assert_string_equal(junk, "");
    free(from), free(to), free(none), free(junk);
    mime_summary_free(&s);
}

/* TEXT searches every header field (RFC 9051 §6.4.4), so search_headers
 * holds all top-level fields, decoded: the fields SEARCH keys match first,
 * then the others in their order, then the MIME fields in their own form. */
static void test_search_headers_all_fields(void **state)
{
    (void)state;
    static const char eml[] = "Received: from relay.example by mx.example\r\n"
                              "X-Ticket: =?utf-8?q?Z=C3=BCrich?=\r\n 4711\r\n"
                              "From: <a@example.com>\r\n"
                              "Content-Type: text/plain; charset=utf-8\r\n"
                              "Subject: s\r\n\r\nbody\r\n";
    struct mime_summary s;
    analyse(eml, sizeof eml - 1, &s);
    assert_string_equal(s.search_headers, "From: <a@example.com>\n"
                                          "Subject: s\n"
                                          "Received: from relay.example by mx.example\n"
                                          "X-Ticket: Z\xc3\xbcrich 4711\n"
                                          "Content-Type: text/plain; charset=utf-8\n");
    mime_summary_free(&s);
}

/* RFC 5256 §2.1 base subjects: each case is a step of the algorithm. */
static void test_base_subject(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"Re: hello", "hello"},
        {"RE:  Fwd:\tFW: hello  ", "hello"},         /* step 1, then several leaders */
        {"Re [list]: hello", "hello"},                /* a blob inside subj-refwd */
        {"[list] Re: hello", "hello"},                /* blobs before subj-refwd */
        {"[list] hello", "hello"},                    /* step 4 */
        {"[a][b] hello", "hello"},                    /* step 4, repeated (step 5) */
        {"[list]", "[list]"},                         /* step 4 keeps a blob with nothing after */
        {"[a] [b]", "[b]"},
        {"Re: [list]", "[list]"},
        {"hello (fwd)", "hello"},                     /* step 2 */
        {"hello (FWD)(fwd)  ", "hello"},
        {"[Fwd: Re: hello]", "hello"},                /* step 6, then back to step 2 */
        {"[fwd: [fwd: hello (fwd)]]", "hello"},
        {"[fwd: hello", "[fwd: hello"},               /* no closing bracket: kept */
        {"Reply: hello", "Reply: hello"},             /* "re" must be followed by ":" */
        {"Re hello", "Re hello"},
        {"Fwdx: hello", "Fwdx: hello"},
        {"hello [x]", "hello [x]"},                   /* blobs count only at the start */
        {"Re: Re:", ""},
        {"", ""},
        {"   ", ""},
        {"[unterminated hello", "[unterminated hello"},
        {"S\xc3\xa4tze Re: x", "S\xc3\xa4tze Re: x"}, /* only leaders are removed */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *b = mime_base_subject(cases[i][0]);
        if (strcmp(b, cases[i][1]) != 0)
            fail_msg("base subject of \"%s\": \"%s\", expected \"%s\"", cases[i][0], b, cases[i][1]);
        free(b);
    }    /* a hostile subject of many blobs: the same answer, in one pass (the
     * subject is bounded at MIME_HEADER_MAX, 64 KiB) */
    char *many = malloc(3 * 20000 + 2), *b;
    for (size_t i = 0; i < 20000; i++)
        memcpy(many + 3 * i, "[a]", 3);
    memcpy(many + 3 * 20000, "x", 2);
    b = mime_base_subject(many);
    assert_string_equal(b, "x");
    free(b);
    many[3 * 20000] = '\0'; /* blobs only: the last one stays */
    b = mime_base_subject(many);
    assert_string_equal(b, "[a]");
    free(b);
    free(many);
}

static const struct section_case {
    const char *name, *section, *body; /* body: exact bytes of the part's body */
} section_cases[] = {
    {"html-text", "1.1", "Caf=E9 is open =\r\ntoday."},
    {"html-text", "2", "attachment text is not indexed"},
    {"rfc822-nested", "1", "See the attached message.\r\n"},
    {"rfc822-nested", "2.1", "Caf=C3=A9 at noon?"},
    {"rfc822-nested", "3", ""},
    {"rfc822-nested", "3.1", ""},
    {"rfc822-nested", "4", "U3ViamVjdDogaGlkZGVuDQoNCmJvZHkNCg=="},
    {"empty-parts", "1", ""},
    {"empty-parts", "2", "x"},
    {"bare-lf", "2", "<p>hi <b>there</b></p>"},
    {"no-blank-line", "1", ""},
    {"garbage-start", "1", "body\r\n"},
};

static void test_sections(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof section_cases / sizeof section_cases[0]; i++) {
        const struct section_case *c = &section_cases[i];
        size_t len;
        char *eml = read_data(c->name, "eml", &len);
        struct mime_summary s;
        analyse(eml, len, &s);
        const struct mime_part_offsets *p = NULL;
        for (unsigned j = 0; j < s.n_sections; j++) {
            assert_true(s.parts[j].header_start <= s.parts[j].body_start);
            assert_true(s.parts[j].body_start <= s.parts[j].body_end && s.parts[j].body_end <= len);
            if (strcmp(s.parts[j].section, c->section) == 0)
                p = &s.parts[j];
        }
        if (p == NULL)
            fail_msg("%s: no section %s", c->name, c->section);
        size_t n = (size_t)(p->body_end - p->body_start);
        if (n != strlen(c->body) || memcmp(eml + p->body_start, c->body, n) != 0)
            fail_msg("%s %s: body [%.*s]", c->name, c->section, (int)n, eml + p->body_start);
        mime_summary_free(&s);
        free(eml);
    }
}

/* n nested multiparts (n > MIME_DEPTH_MAX) or message/rfc822 parts. */
static char *nested(unsigned n, bool messages, size_t *len_r)
{
    struct sm_buf b;
    sm_buf_init(&b, 0);
    sm_buf_puts(&b, "Subject: deep\r\n");
    for (unsigned i = 0; i < n; i++) {
        if (messages)
            sm_buf_printf(&b, "Content-Type: message/rfc822\r\n\r\nSubject: level %u\r\n", i);
        else
            sm_buf_printf(&b, "Content-Type: multipart/mixed; boundary=\"=%u=\"\r\n\r\n--=%u=\r\n",
                          i, i);
    }
    sm_buf_puts(&b, "\r\nbottom\r\n");
    *len_r = b.len;
    return b.data;
}

static void test_limits(void **state)
{
    (void)state;
    struct mime_summary s;
    size_t len;
    for (int messages = 0; messages <= 1; messages++) {
        char *deep = nested(3 * MIME_DEPTH_MAX, messages, &len);
        analyse(deep, len, &s);
        check_syntax("deep", &s);
        assert_true(s.truncated);
        assert_true(s.n_parts <= MIME_DEPTH_MAX + 1);
        assert_non_null(strstr(s.bodystructure, "(\"application\" \"octet-stream\""));
        mime_summary_free(&s);
        free(deep);
    }

    /* more parts than MIME_PARTS_MAX: the rest is one last part */
    struct sm_buf b;
    sm_buf_init(&b, 0);
    sm_buf_puts(&b, "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
    for (unsigned i = 0; i < MIME_PARTS_MAX + 500; i++)
        sm_buf_puts(&b, "--b\r\n\r\nx\r\n");
    sm_buf_puts(&b, "--b--\r\n");
    analyse(b.data, b.len, &s);
    check_syntax("parts", &s);
    assert_true(s.truncated);
    assert_int_equal(s.n_parts, MIME_PARTS_MAX);
    mime_summary_free(&s);
    sm_buf_free(&b);

    /* a huge header and too many addresses */
    sm_buf_init(&b, 0);
    sm_buf_puts(&b, "Subject: ");
    for (unsigned i = 0; i < 2 * MIME_HEADER_MAX / 8; i++)
        sm_buf_puts(&b, "\"quote\" ");
    sm_buf_puts(&b, "\r\nTo: ");
    for (unsigned i = 0; i < MIME_HEADER_MAX / 4; i++)
        sm_buf_puts(&b, "a@b,");
    sm_buf_puts(&b, "\r\n\r\nbody\r\n");
    analyse(b.data, b.len, &s);
    check_syntax("header", &s);
    assert_true(s.truncated);
    assert_true(strlen(s.envelope) < 2 * MIME_HEADER_MAX + 60 * MIME_ADDRESSES_MAX);
    mime_summary_free(&s);
    sm_buf_free(&b);

    /* search text is bounded */
    sm_buf_init(&b, 0);
    sm_buf_puts(&b, "Subject: big\r\n\r\n");
    for (unsigned i = 0; i < MIME_SEARCH_TEXT_MAX / 8; i++)
        sm_buf_puts(&b, "0123456789 \xc3\xa9t\xc3\xa9\n");
    analyse(b.data, b.len, &s);
    assert_false(s.truncated);
    assert_true(s.search_truncated);
    assert_true(strlen(s.search_text) <= MIME_SEARCH_TEXT_MAX);
    assert_true(strlen(s.search_text) > MIME_SEARCH_TEXT_MAX - 64);
    assert_true(g_utf8_validate(s.search_text, -1, NULL));
    mime_summary_free(&s);
    sm_buf_free(&b);
}

static void test_errors(void **state)
{
    (void)state;
    struct mime_summary s;
    const char *error = NULL;
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(mime_analyse_fd(p[0], &s, &error), -1);
    assert_non_null(error);
    assert_null(s.envelope);
    mime_summary_free(&s);
    close(p[0]);
    close(p[1]);
    error = NULL;
    assert_int_equal(mime_analyse_fd(-1, &s, &error), -1);
    assert_non_null(error);
    int dir = open(MIME_TEST_DATA, O_RDONLY | O_DIRECTORY);
    assert_true(dir >= 0);
    assert_int_equal(mime_analyse_fd(dir, &s, &error), -1);
    close(dir);
    assert_int_equal(mime_init(), 0); /* idempotent */
}

static const struct guard_case {
    const char *in, *out;
} guard_cases[] = {
    {"=?utf-8?q?caf=C3=A9?= =?UTF-8*en?B?YQ==?=", "=?utf-8?q?caf=C3=A9?= =?UTF-8*en?B?YQ==?="},
    {"=?x-bogus-1?q?a?= =?x-bogus-2*fr?Q?b?=", "=?us-ascii?q?a?= =?us-ascii*fr?Q?b?="},
    {"=?utf-8!!!?q?a?= =?utf-8+?b?YQ==?=", "=?us-ascii?q?a?= =?us-ascii?b?YQ==?="},
    {"=?aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa?q?a?=", "=?us-ascii?q?a?="},
    {"=?ks_c_5601-1987?B?x?= =?windows-1252?q?a?=", "=?ks_c_5601-1987?B?x?= =?windows-1252?q?a?="},
    {"Why =?not? =?also not?x?", "Why =?not? =?also not?x?"},
    {"text/plain; name*=bogus'en'x; a*0*=\"nope''y\"; a*1*=zzz'w",
     "text/plain; name*=us-ascii'en'x; a*0*=\"us-ascii''y\"; a*1*=zzz'w"},
    {"attachment; filename*=UTF-8''%E2%82%AC.txt", "attachment; filename*=UTF-8''%E2%82%AC.txt"},
};

/* Charset names that could grow GMime's global cache never reach it. */
static void test_charset_guard(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof guard_cases / sizeof guard_cases[0]; i++) {
        char *out = charset_guard(guard_cases[i].in);
        if (strcmp(out, guard_cases[i].out) != 0)
            fail_msg("guard [%s] gave [%s]", guard_cases[i].in, out);
        free(out);
    }
    assert_true(charset_ok("iso-8859-1", 10));
    assert_true(charset_ok("GB2312-80", 9));
    assert_false(charset_ok("utf-8 ", 6));
    assert_false(charset_ok("UTF-8//TRANSLIT", 15));
    assert_false(charset_ok("x-unknown", 9));

    /* such a message is still read: ASCII text survives, output well-formed */
    static const char msg[] = "Subject: =?x-bogus?q?plain_words?=\r\n"
                              "MIME-Version: 1.0\r\n"
                              "Content-Type: text/plain; charset=x-bogus; name*=x-bogus''a%41\r\n"
                              "\r\nbody words\r\n";
    struct mime_summary s;
    analyse(msg, sizeof msg - 1, &s);
    check_syntax("bogus charsets", &s);
    assert_string_equal(s.subject, "plain words");
    assert_non_null(strstr(s.search_text, "body words"));
    assert_non_null(strstr(s.bodystructure, "\"name\" \"aA\""));
    mime_summary_free(&s);
}

/* Several threads analyse the corpus at once and get the golden texts. */
#define THREADS 8

static void *thread_main(void *arg)
{
    size_t first = (size_t)(uintptr_t)arg;
    for (size_t k = 0; k < 3 * N_CORPUS; k++) {
        const char *name = corpus[(first + k) % N_CORPUS];
        size_t len, blen;
        char *eml = read_data(name, "eml", &len), *want = read_data(name, "bodystructure", &blen);
        struct mime_summary s;
        analyse(eml, len, &s);
        bool ok = strcmp(s.bodystructure, want) == 0;
        mime_summary_free(&s);
        free(eml);
        free(want);
        if (!ok)
            return (void *)(uintptr_t)((first + k) % N_CORPUS + 1); /* 1 + corpus index */
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    for (size_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, thread_main, (void *)(uintptr_t)(i * 5)), 0);
    for (size_t i = 0; i < THREADS; i++) {
        void *bad;
        assert_int_equal(pthread_join(t[i], &bad), 0);
        if (bad != NULL)
            fail_msg("thread %zu: %s differs", i, corpus[(uintptr_t)bad - 1]);
    }
}

/* The deepest inputs fit in a 256 KiB thread stack (recursion is bounded
 * by MIME_DEPTH_MAX and small per level), even under AddressSanitizer. */
static void *small_stack_main(void *arg)
{
    (void)arg;
    for (int messages = 0; messages <= 1; messages++) {
        size_t len;
        char *deep = nested(3 * MIME_DEPTH_MAX, messages, &len);
        struct mime_summary s;
        analyse(deep, len, &s);
        mime_summary_free(&s);
        free(deep);
    }
    return NULL;
}

static void test_small_stack(void **state)
{
    (void)state;
    pthread_attr_t attr;
    pthread_t t;
    assert_int_equal(pthread_attr_init(&attr), 0);
    assert_int_equal(pthread_attr_setstacksize(&attr, 256 * 1024), 0);
    assert_int_equal(pthread_create(&t, &attr, small_stack_main, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    pthread_attr_destroy(&attr);
}

static int setup(void **state)
{
    (void)state;
    return mime_init();
}

static int teardown(void **state)
{
    (void)state;
    mime_shutdown(); /* GMime's one-time allocations, for LeakSanitizer */
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),      cmocka_unit_test(test_regular_file),
        cmocka_unit_test(test_line_ends),   cmocka_unit_test(test_summary), cmocka_unit_test(test_sort_keys),
        cmocka_unit_test(test_base_subject),
        cmocka_unit_test(test_search_headers_all_fields),
        cmocka_unit_test(test_sections),    cmocka_unit_test(test_limits),
        cmocka_unit_test(test_errors),      cmocka_unit_test(test_threads),
        cmocka_unit_test(test_small_stack), cmocka_unit_test(test_charset_guard),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
