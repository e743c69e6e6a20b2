/* section.c — FETCH BODY[section] and BINARY[part] from a stored message
 * (see section.h).  Work in progress: the API is stable, the bodies follow. */
#include "mime/section.h"

#include <string.h>
#include <sys/mman.h>

#include "core/mem.h"

static enum section_status todo(const char **error_r)
{
    *error_r = "section: not implemented yet";
    return SECTION_BAD;
}

enum section_status section_body(const struct section_msg *m, const struct section_spec *spec,
                                 const struct section_partial *partial, struct sm_buf *out,
                                 struct section_result *res, const char **error_r)
{
    (void)m, (void)spec, (void)partial, (void)out, (void)res;
    return todo(error_r);
}

enum section_status section_binary(const struct section_msg *m, const struct section_spec *spec,
                                   const struct section_partial *partial, struct sm_buf *out,
                                   struct section_result *res, const char **error_r)
{
    (void)m, (void)spec, (void)partial, (void)out, (void)res;
    return todo(error_r);
}

enum section_status section_binary_size(const struct section_msg *m,
                                        const struct section_spec *spec, uint64_t *size_r,
                                        const char **error_r)
{
    (void)m, (void)spec;
    *size_r = 0;
    return todo(error_r);
}

enum section_status section_body_size(const struct section_msg *m, const struct section_spec *spec,
                                      uint64_t *size_r, const char **error_r)
{
    (void)m, (void)spec;
    *size_r = 0;
    return todo(error_r);
}

int section_file_open(int fd, struct section_file *f, const char **error_r)
{
    memset(f, 0, sizeof *f);
    (void)fd;
    *error_r = "section: not implemented yet";
    return -1;
}

void section_file_close(struct section_file *f)
{
    if (f->map != NULL)
        munmap(f->map, f->map_len);
    mime_summary_free(&f->summary);
    memset(f, 0, sizeof *f);
}

const char *section_status_name(enum section_status st)
{
    static const char *const names[] = {"ok", "bad", "too-big", "unknown-cte", "corrupt"};
    return (unsigned)st < sizeof names / sizeof names[0] ? names[st] : "?";
}
