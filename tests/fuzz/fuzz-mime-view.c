/* fuzz-mime-view.c — the web page's view of arbitrary messages.
 *
 * Each input is written to a memfd and viewed exactly as httpd does
 * (mime_view_fd), then every attachment it lists is decoded
 * (mime_view_part_fd).  Crashes, leaks, UB and timeouts are findings, and
 * so is a view that breaks view.h's contract: text and HTML valid UTF-8
 * within the limit, filenames valid UTF-8 without control characters,
 * slashes, quotes or leading dots, and every listed part decodable. */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mime/mime.h"
#include "mime/view.h"

#define MAX_TEXT 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *text)
{
    fprintf(stderr, "fuzz-mime-view: %s: %s\n", what, text != NULL ? text : "(null)");
    abort();
}

static void check_utf8(const char *what, const char *text, size_t max)
{
    if (text == NULL || !g_utf8_validate(text, -1, NULL) || strlen(text) > max)
        fail(what, text);
}

static void check_filename(const char *name)
{
    check_utf8("filename", name, MIME_VIEW_FILENAME_MAX);
    if (name[0] == '.' || name[0] == ' ')
        fail("filename starts with a dot or space", name);
    for (const char *c = name; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || *c == '/' || *c == '\\' || *c == '"' || *c == 0x7f)
            fail("filename character", name);
}

static void check(const struct mime_view *v, int fd)
{
    const char *fields[] = {v->subject, v->from, v->to, v->cc, v->reply_to, v->date,
                            v->message_id};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        check_utf8("header", fields[i], (size_t)-1);
    if (v->text != NULL)
        check_utf8("text", v->text, MAX_TEXT);
    if (v->html != NULL)
        check_utf8("html", v->html, MAX_TEXT);
    if (v->n_attachments > MIME_VIEW_ATTACHMENTS_MAX)
        fail("attachments", "too many");
    for (unsigned i = 0; i < v->n_attachments && i < 8; i++) {
        const struct mime_view_attachment *a = &v->attachments[i];
        check_filename(a->filename);
        struct sm_buf b;
        struct mime_view_attachment info;
        const char *error;
        sm_buf_init(&b, 0);
        int r = mime_view_part_fd(fd, a->part, 1 << 20, &b, &info, &error);
        if (r == 0)
            fail("listed part not found", a->content_type);
        if (r > 0) {
            if (strcmp(info.content_type, a->content_type) != 0)
                fail("part type differs", info.content_type);
            mime_view_attachment_free(&info);
        }
        sm_buf_free(&b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int initialised;
    if (!initialised) {
        mime_init();
        initialised = 1;
    }
    int fd = memfd_create("fuzz-mime-view", 0);
    if (fd < 0)
        abort();
    if (size > 0 && write(fd, data, size) != (ssize_t)size)
        abort();
    struct mime_view v;
    const char *error;
    if (mime_view_fd(fd, MAX_TEXT, &v, &error) < 0)
        fail("mime_view_fd", error);
    check(&v, fd);
    mime_view_free(&v);
    close(fd);
    return 0;
}
