/* test-mime-view.c — the web page's view of a message (mime/view.h):
 * which parts are the text and the HTML, what the attachments are, and
 * that an attachment downloads as exactly the bytes that were attached. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "mime/mime.h"
#include "mime/view.h"

static int memfd_with(const char *text)
{
    int fd = memfd_create("msg", 0);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    return fd;
}

/* "hello attachment\n" in base64 is aGVsbG8gYXR0YWNobWVudAo= */
static const char *const rich =
    "From: =?utf-8?q?J=C3=BCrgen?= <j@example.test>\r\n"
    "To: visitor@tmp.example.test\r\n"
    "Subject: =?iso-8859-1?q?caf=E9?=\r\n"
    "Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
    "Message-ID: <m1@example.test>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    "\r\n"
    "--outer\r\n"
    "Content-Type: multipart/alternative; boundary=\"alt\"\r\n"
    "\r\n"
    "--alt\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Caf=E9 au lait\r\n"
    "--alt\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "PHA+Q2Fmw6k8L3A+Cg==\r\n"
    "--alt--\r\n"
    "--outer\r\n"
    "Content-Type: application/octet-stream; name=\"ignored.bin\"\r\n"
    "Content-Disposition: attachment; filename*=utf-8''..%2F..%2Fna%C3%AFve.txt\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "aGVsbG8gYXR0YWNobWVudAo=\r\n"
    "--outer\r\n"
    "Content-Type: image/png\r\n"
    "Content-ID: <logo@example.test>\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "iVBORw0KGgo=\r\n"
    "--outer\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "Subject: inner\r\n"
    "\r\n"
    "inner body\r\n"
    "--outer--\r\n";

static void test_rich_message(void **state)
{
    (void)state;
    const char *error;
    struct mime_view v;
    int fd = memfd_with(rich);
    assert_int_equal(mime_view_fd(fd, 1 << 20, &v, &error), 0);
    assert_string_equal(v.subject, "caf\xc3\xa9");
    assert_string_equal(v.from, "J\xc3\xbcrgen <j@example.test>");
    assert_string_equal(v.to, "visitor@tmp.example.test");
    assert_string_equal(v.cc, "");
    assert_int_equal(v.date_unix, 1795341600);
    assert_non_null(v.text);
    assert_string_equal(v.text, "Caf\xc3\xa9 au lait");
    assert_non_null(v.html);
    assert_string_equal(v.html, "<p>Caf\xc3\xa9</p>\n");
    assert_false(v.text_truncated);
    assert_int_equal(v.n_attachments, 3);
    /* parts: 0 mixed, 1 alternative, 2 plain, 3 html, 4 file, 5 png, 6 message */
    assert_int_equal(v.attachments[0].part, 4);
    assert_string_equal(v.attachments[0].filename, "_.._na\xc3\xafve.txt");
    assert_string_equal(v.attachments[0].content_type, "application/octet-stream");
    assert_int_equal(v.attachments[1].part, 5);
    assert_string_equal(v.attachments[1].content_id, "logo@example.test");
    assert_string_equal(v.attachments[1].content_type, "image/png");
    assert_int_equal(v.attachments[2].part, 6);
    assert_string_equal(v.attachments[2].content_type, "message/rfc822");
    mime_view_free(&v);

    struct sm_buf b;
    struct mime_view_attachment info;
    sm_buf_init(&b, 0);
    assert_int_equal(mime_view_part_fd(fd, 4, 1 << 20, &b, &info, &error), 1);
    assert_int_equal(b.len, 17);
    assert_memory_equal(b.data, "hello attachment\n", 17);
    mime_view_attachment_free(&info);
    sm_buf_reset(&b);
    assert_int_equal(mime_view_part_fd(fd, 6, 1 << 20, &b, &info, &error), 1);
    assert_non_null(memmem(b.data, b.len, "inner body", 10));
    mime_view_attachment_free(&info);
    /* too large for the limit: an error, not a cut file */
    sm_buf_reset(&b);
    assert_int_equal(mime_view_part_fd(fd, 4, 5, &b, &info, &error), -1);
    /* multiparts and numbers past the end are no attachment */
    sm_buf_reset(&b);
    assert_int_equal(mime_view_part_fd(fd, 1, 1 << 20, &b, &info, &error), 0);
    assert_int_equal(mime_view_part_fd(fd, 99, 1 << 20, &b, &info, &error), 0);
    sm_buf_free(&b);
    close(fd);
}

static void test_plain_message_and_limits(void **state)
{
    (void)state;
    const char *error;
    struct mime_view v;
    int fd = memfd_with("Subject: plain\r\n\r\n0123456789abcdef\r\n");
    assert_int_equal(mime_view_fd(fd, 8, &v, &error), 0);
    assert_string_equal(v.text, "01234567");
    assert_true(v.text_truncated);
    assert_null(v.html);
    assert_int_equal(v.n_attachments, 0);
    mime_view_free(&v);
    close(fd);
    /* nothing at all is still a message */
    fd = memfd_with("");
    assert_int_equal(mime_view_fd(fd, 8, &v, &error), 0);
    assert_string_equal(v.subject, "");
    mime_view_free(&v);
    close(fd);
}

int main(void)
{
    mime_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rich_message),
        cmocka_unit_test(test_plain_message_and_limits),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    mime_shutdown();
    return r;
}
