/* test-mime-section.c — FETCH BODY[section] and BINARY against Dovecot.
 *
 * tests/unit/data/mime-section/NAME.fetch holds Dovecot 2.3's answer to
 * every FETCH item dovecot-expect.py asked about message NAME.eml (found
 * there or in ../mime): BODY[], HEADER, TEXT, HEADER.FIELDS[.NOT], each
 * part with .MIME/.HEADER/.TEXT, BINARY, BINARY.SIZE, missing sections and
 * partials.  Each answer must match byte for byte (the README there lists
 * the deliberate differences, whose records are sealmail's own, checked by
 * hand).  The other tests check what Dovecot cannot: partials are slices
 * of the whole, sizes equal what is served, BODY[n] has the BODYSTRUCTURE
 * size of part n, the limits, bad specs, and the decoders' edge cases.
 *
 * `test-mime-section --dump FILE ITEM...` prints sealmail's records for
 * the items, in the golden format, for dovecot-expect.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four above */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/buf.h"
#include "mime/mime.h"
#include "mime/section.h"

#ifndef SECTION_TEST_DATA
#error "SECTION_TEST_DATA must name tests/unit/data/mime-section (see src/mime/meson.build)"
#endif
#ifndef MIME_TEST_DATA
#error "MIME_TEST_DATA must name tests/unit/data/mime (see src/mime/meson.build)"
#endif

/* ---- helpers ---- */

static char *read_path(const char *path, size_t *len_r)
{
    *len_r = 0;
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

/* A message analysed through a memfd, as a caller without offsets does. */
struct loaded {
    int fd;
    struct section_file f;
};

static void load_bytes(struct loaded *l, const void *p, size_t len)
{
    const char *error;
    l->fd = memfd_create("test-mime-section", MFD_CLOEXEC);
    assert_true(l->fd >= 0);
    assert_int_equal(write(l->fd, p, len), (ssize_t)len);
    assert_int_equal(section_file_open(l->fd, &l->f, &error), 0);
}

static void unload(struct loaded *l)
{
    section_file_close(&l->f);
    close(l->fd);
}

/* A FETCH item as the golden files name it: BODY[...]<o.c>, BINARY[...]
 * or BINARY.SIZE[...]. */
enum what { W_BODY, W_BINARY, W_BINARY_SIZE };

struct item {
    enum what what;
    unsigned part[SECTION_PART_MAX + 1];
    struct section_spec spec;
    char names[512];
    const char *fields[SECTION_FIELDS_MAX + 1];
    bool has_partial;
    struct section_partial partial;
};

/* Parse "HEADER.FIELDS (A B)" names into it->fields. */
static bool parse_names(struct item *it, const char *s, const char *end)
{
    if (*s++ != '(' || end[-1] != ')' || (size_t)(end - s) >= sizeof it->names)
        return false;
    memcpy(it->names, s, (size_t)(end - 1 - s));
    it->names[end - 1 - s] = '\0';
    it->spec.fields = it->fields;
    for (char *save, *w = strtok_r(it->names, " ", &save); w != NULL;
         w = strtok_r(NULL, " ", &save)) {
        if (it->spec.n_fields == SECTION_FIELDS_MAX)
            return false;
        it->fields[it->spec.n_fields++] = w;
    }
    return true;
}

static bool parse_kind(struct item *it, const char *s, const char *end)
{
    static const struct {
        const char *text;
        enum section_kind kind;
    } kinds[] = {{"HEADER.FIELDS.NOT ", SECTION_HEADER_FIELDS_NOT},
                 {"HEADER.FIELDS ", SECTION_HEADER_FIELDS},
                 {"HEADER", SECTION_HEADER},
                 {"TEXT", SECTION_TEXT},
                 {"MIME", SECTION_MIME}};
    if (s == end)
        return true;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        size_t n = strlen(kinds[k].text);
        if ((size_t)(end - s) < n || strncmp(s, kinds[k].text, n) != 0)
            continue;
        it->spec.kind = kinds[k].kind;
        if (kinds[k].text[n - 1] == ' ')
            return parse_names(it, s + n, end);
        return s + n == end;
    }
    return false;
}

static bool parse_item(const char *text, struct item *it)
{
    memset(it, 0, sizeof *it);
    const char *s;
    if (strncmp(text, "BODY[", 5) == 0)
        it->what = W_BODY, s = text + 5;
    else if (strncmp(text, "BINARY[", 7) == 0)
        it->what = W_BINARY, s = text + 7;
    else if (strncmp(text, "BINARY.SIZE[", 12) == 0)
        it->what = W_BINARY_SIZE, s = text + 12;
    else
        return false;
    const char *close = strchr(s, ']');
    if (close == NULL)
        return false;
    it->spec.part = it->part;
    while (s < close && *s >= '0' && *s <= '9') {
        if (it->spec.n_part > SECTION_PART_MAX)
            return false;
        char *e;
        it->part[it->spec.n_part++] = (unsigned)strtoul(s, &e, 10);
        s = e;
        if (*s == '.')
            s++;
    }
    if (!parse_kind(it, s, close))
        return false;
    if (close[1] == '<') {
        it->has_partial = true;
        return sscanf(close + 2, "%" SCNu64 ".%" SCNu64 ">", &it->partial.origin,
                      &it->partial.count) == 2;
    }
    return close[1] == '\0';
}

/* sealmail's answer to item as a golden record. */
static void answer(const struct section_msg *m, const char *text, struct sm_buf *rec)
{
    struct item it;
    struct sm_buf out;
    struct section_result res;
    const char *error;
    uint64_t size = 0;
    enum section_status st;
    assert_true(parse_item(text, &it));
    sm_buf_init(&out, 0);
    const struct section_partial *p = it.has_partial ? &it.partial : NULL;
    if (it.what == W_BODY)
        st = section_body(m, &it.spec, p, &out, &res, &error);
    else if (it.what == W_BINARY)
        st = section_binary(m, &it.spec, p, &out, &res, &error);
    else
        st = section_binary_size(m, &it.spec, &size, &error);
    static const char *const codes[] = {"", "BAD", "NO [LIMIT]", "NO [UNKNOWN-CTE]",
                                        "NO [PARSE]"};
    if (st != SECTION_OK)
        sm_buf_printf(rec, "%s %s\n", text, codes[st]);
    else if (it.what == W_BINARY_SIZE)
        sm_buf_printf(rec, "%s = %" PRIu64 "\n", text, size);
    else {
        assert_int_equal(res.size, out.len);
        sm_buf_printf(rec, "%s {%zu}\n", text, out.len);
        sm_buf_append(rec, out.data != NULL ? out.data : "", out.len);
        sm_buf_puts(rec, "\n");
    }
    sm_buf_free(&out);
}

/* ---- the golden files ---- */

/* The next record of a golden file at *pos: its item and the whole record. */
static bool next_record(const char *g, size_t len, size_t *pos, char *item, size_t item_size,
                        const char **rec, size_t *rec_len)
{
    if (*pos >= len)
        return false;
    const char *s = g + *pos, *nl = memchr(s, '\n', len - *pos);
    assert_non_null(nl);
    size_t end = (size_t)(nl - g) + 1;
    const char *brace = nl;
    while (brace > s && brace[-1] != ' ')
        brace--;
    if (*brace == '{')
        end += strtoull(brace + 1, NULL, 10) + 1;
    /* the item runs to its "]" or to the ">" of its partial */
    const char *cut = memchr(s, ']', (size_t)(nl - s));
    assert_non_null(cut);
    if (cut[1] == '<')
        cut = memchr(cut, '>', (size_t)(nl - cut));
    assert_non_null(cut);
    size_t n = (size_t)(cut + 1 - s);
    assert_true(n < item_size);
    memcpy(item, s, n);
    item[n] = '\0';
    *rec = s;
    *rec_len = end - *pos;
    *pos = end;
    return true;
}

static char *message_path(const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/%s.eml", SECTION_TEST_DATA, name);
    if (access(path, R_OK) != 0)
        snprintf(path, size, "%s/%s.eml", MIME_TEST_DATA, name);
    return path;
}

static unsigned golden_one(const char *name)
{
    char path[1024], item[512];
    size_t glen = 0, mlen = 0, pos = 0, rec_len;
    const char *rec;
    unsigned n = 0;
    snprintf(path, sizeof path, "%s/%s.fetch", SECTION_TEST_DATA, name);
    char *g = read_path(path, &glen);
    char *msg = read_path(message_path(name, path, sizeof path), &mlen);
    assert_non_null(g);
    assert_non_null(msg);
    struct loaded l;
    load_bytes(&l, msg, mlen);
    while (next_record(g, glen, &pos, item, sizeof item, &rec, &rec_len)) {
        struct sm_buf mine;
        sm_buf_init(&mine, 0);
        answer(&l.f.msg, item, &mine);
        if (mine.len != rec_len || memcmp(mine.data, rec, rec_len) != 0) {
            print_error("%s: %s\n--- Dovecot\n%.*s--- sealmail\n%s", name, item, (int)rec_len,
                        rec, sm_buf_str(&mine));
            fail();
        }
        sm_buf_free(&mine);
        n++;
    }
    unload(&l);
    free(g);
    free(msg);
    return n;
}

static void test_golden(void **state)
{
    (void)state;
    DIR *d = opendir(SECTION_TEST_DATA);
    assert_non_null(d);
    unsigned files = 0, items = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t n = strlen(e->d_name);
        if (n < 7 || strcmp(e->d_name + n - 6, ".fetch") != 0 || strstr(e->d_name, ".dovecot.") != NULL)
            continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(n - 6), e->d_name);
        items += golden_one(name);
        files++;
    }
    closedir(d);
    assert_true(files >= 40);
    print_message("%u messages, %u items as Dovecot serves them\n", files, items);
}

/* ---- contracts on every part of every message ---- */

/* IMAP size of the stored bytes [a, b): bare LF counted as CRLF. */
static uint64_t vsize(const unsigned char *p, uint64_t a, uint64_t b)
{
    uint64_t n = b - a;
    for (uint64_t i = a; i < b; i++)
        n += p[i] == '\n' && (i == 0 || p[i - 1] != '\r');
    return n;
}

/* The section whole, then in pieces of 7 octets, then a few slices: the
 * pieces make up the whole, the slices are substrings, the size agrees. */
static void check_section(const struct section_msg *m, const struct section_spec *spec, bool binary)
{
    struct sm_buf full, piece;
    struct section_result res;
    const char *error;
    uint64_t size;
    sm_buf_init(&full, 0);
    sm_buf_init(&piece, 0);
    enum section_status st = binary ? section_binary(m, spec, NULL, &full, &res, &error)
                                    : section_body(m, spec, NULL, &full, &res, &error);
    enum section_status st2 = binary ? section_binary_size(m, spec, &size, &error)
                                     : section_body_size(m, spec, &size, &error);
    assert_int_equal(st, st2);
    if (st == SECTION_OK) {
        assert_int_equal(size, full.len);
        assert_int_equal(res.size, full.len);
        assert_int_equal(res.has_nul, memchr(sm_buf_str(&full), '\0', full.len) != NULL);
        if (!binary)
            assert_false(res.has_nul);
        for (uint64_t o = 0; o <= full.len + 7; o += 7) {
            struct section_partial p = {o, 7};
            st = binary ? section_binary(m, spec, &p, &piece, &res, &error)
                        : section_body(m, spec, &p, &piece, &res, &error);
            assert_int_equal(st, SECTION_OK);
        }
        assert_int_equal(piece.len, full.len);
        assert_memory_equal(sm_buf_str(&piece), sm_buf_str(&full), full.len);
        struct section_partial slices[] = {{0, 0}, {1, 3}, {full.len / 2, UINT64_MAX},
                                           {UINT64_MAX, 5}, {full.len, 1}};
        for (size_t k = 0; k < sizeof slices / sizeof slices[0]; k++) {
            sm_buf_reset(&piece);
            st = binary ? section_binary(m, spec, &slices[k], &piece, &res, &error)
                        : section_body(m, spec, &slices[k], &piece, &res, &error);
            assert_int_equal(st, SECTION_OK);
            uint64_t o = slices[k].origin < full.len ? slices[k].origin : full.len;
            uint64_t n = full.len - o < slices[k].count ? full.len - o : slices[k].count;
            assert_int_equal(piece.len, n);
            assert_memory_equal(sm_buf_str(&piece), sm_buf_str(&full) + o, n);
        }
    }
    sm_buf_free(&full);
    sm_buf_free(&piece);
}

static void check_part(const struct section_msg *m, const unsigned *num, unsigned n)
{
    static const char *const names[] = {"From", "Subject", "Received", "Content-Type"};
    struct section_spec spec = {num, n, SECTION_NONE, names, 4};
    for (int k = SECTION_NONE; k <= SECTION_MIME; k++) {
        spec.kind = (enum section_kind)k;
        if (k == SECTION_MIME && n == 0)
            continue;
        check_section(m, &spec, false);
    }
    spec.kind = SECTION_NONE;
    check_section(m, &spec, true);
}

/* The header sections of a prefix that holds the whole top header
 * (section_header_complete()) are those of the whole message: what lets
 * FETCH decrypt only the first chunks of a message for them. */
static void check_header_prefixes(const struct section_msg *m)
{
    static const char *const names[] = {"Subject", "from", "Content-Type"};
    static const enum section_kind kinds[] = {SECTION_HEADER, SECTION_HEADER_FIELDS,
                                              SECTION_HEADER_FIELDS_NOT};
    size_t block = section_header_length(m->data, m->len);
    if (!section_header_complete(m->data, m->len)) { /* FETCH reads such a message whole */
        assert_int_equal(block, 0);
        return;
    }
    /* the block the store keeps: the header and its empty line, LF included */
    assert_true(block > 0 && block <= m->len && m->data[block - 1] == '\n');
    assert_int_equal(section_header_length(m->data, block), block);
    assert_int_equal(section_header_length(m->data, block - 1), 0);
    size_t first = 0, hi = m->len; /* the shortest complete prefix (completeness only grows) */
    while (first < hi) {
        size_t mid = first + (hi - first) / 2;
        if (section_header_complete(m->data, mid))
            hi = mid;
        else
            first = mid + 1;
    }
    assert_false(first > 0 && section_header_complete(m->data, first - 1));
    for (size_t k = 0; k < 3; k++) {
        struct section_spec spec = {NULL, 0, kinds[k], names, 3};
        assert_true(section_header_only(&spec));
        struct sm_buf whole, part;
        const char *error;
        sm_buf_init(&whole, 0);
        assert_int_equal(section_body(m, &spec, NULL, &whole, NULL, &error), SECTION_OK);
        for (size_t len = first; len <= m->len && len < first + 4; len++) {
            struct section_msg prefix = {m->data, len, m->parts, m->n_parts};
            sm_buf_init(&part, 0);
            assert_int_equal(section_body(&prefix, &spec, NULL, &part, NULL, &error), SECTION_OK);
            assert_int_equal(part.len, whole.len);
            assert_memory_equal(part.data, whole.data, whole.len);
            sm_buf_free(&part);
        }
        /* the stored block alone, without part offsets (as FETCH serves it) */
        struct section_msg stored = {m->data, block, NULL, 0};
        sm_buf_init(&part, 0);
        assert_int_equal(section_body(&stored, &spec, NULL, &part, NULL, &error), SECTION_OK);
        assert_int_equal(part.len, whole.len);
        assert_memory_equal(part.data, whole.data, whole.len);
        sm_buf_free(&part);
        sm_buf_free(&whole);
    }
    struct section_spec text = {NULL, 0, SECTION_TEXT, NULL, 0};
    assert_false(section_header_only(&text));
}

static void check_message(const char *path)
{
    size_t len = 0;
    char *msg = read_path(path, &len);
    assert_non_null(msg);
    struct loaded l;
    load_bytes(&l, msg, len);
    const struct section_msg *m = &l.f.msg;
    check_part(m, NULL, 0);
    check_header_prefixes(m);
    for (unsigned i = 0; i < m->n_parts; i++) {
        unsigned num[SECTION_PART_MAX + 1], n = 0;
        char *e = m->parts[i].section;
        while (*e != '\0' && n <= SECTION_PART_MAX) {
            num[n++] = (unsigned)strtoul(e, &e, 10);
            e += *e == '.';
        }
        check_part(m, num, n);
        /* BODY[n] has exactly the BODYSTRUCTURE size of part n */
        struct section_spec spec = {num, n, SECTION_NONE, NULL, 0};
        uint64_t size;
        const char *error;
        assert_int_equal(section_body_size(m, &spec, &size, &error), SECTION_OK);
        assert_int_equal(size, vsize(m->data, m->parts[i].body_start, m->parts[i].body_end));
    }
    unload(&l);
    free(msg);
}

static void test_contracts(void **state)
{
    (void)state;
    const char *const dirs[] = {SECTION_TEST_DATA, MIME_TEST_DATA};
    unsigned count = 0;
    for (size_t d = 0; d < 2; d++) {
        DIR *dir = opendir(dirs[d]);
        assert_non_null(dir);
        for (struct dirent *e; (e = readdir(dir)) != NULL;) {
            size_t n = strlen(e->d_name);
            if (n < 5 || strcmp(e->d_name + n - 4, ".eml") != 0)
                continue;
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dirs[d], e->d_name);
            check_message(path);
            count++;
        }
        closedir(dir);
    }
    assert_true(count >= 50);
}

/* ---- specs, limits, damaged offsets ---- */

static const char simple[] = "From: a@example.org\r\n"
                             "Subject: hi\r\n"
                             "MIME-Version: 1.0\r\n"
                             "Content-Type: multipart/mixed; boundary=x\r\n"
                             "\r\n"
                             "--x\r\n"
                             "Content-Type: text/plain\r\n"
                             "\r\n"
                             "one\r\n"
                             "--x--\r\n";

static void test_bad_specs(void **state)
{
    (void)state;
    static char longname[SECTION_FIELD_NAME_MAX + 2];
    memset(longname, 'x', sizeof longname - 1);
    static const char *many[SECTION_FIELDS_MAX + 1];
    for (size_t i = 0; i < SECTION_FIELDS_MAX + 1; i++)
        many[i] = "From";
    static const char *const empty_name[] = {""}, *const long_name[] = {longname};
    static const unsigned one[] = {1}, zero[] = {1, 0}, deep[SECTION_PART_MAX + 1] = {1};
    static const struct {
        const char *label;
        struct section_spec spec;
        bool binary;
    } cases[] = {
        {"MIME of the message", {NULL, 0, SECTION_MIME, NULL, 0}, false},
        {"part number 0", {zero, 2, SECTION_NONE, NULL, 0}, false},
        {"too deep", {deep, SECTION_PART_MAX + 1, SECTION_NONE, NULL, 0}, false},
        {"no field names", {NULL, 0, SECTION_HEADER_FIELDS, many, 0}, false},
        {"too many names", {NULL, 0, SECTION_HEADER_FIELDS_NOT, many, SECTION_FIELDS_MAX + 1}, false},
        {"empty name", {one, 1, SECTION_HEADER_FIELDS, empty_name, 1}, false},
        {"overlong name", {NULL, 0, SECTION_HEADER_FIELDS, long_name, 1}, false},
        {"unknown kind", {NULL, 0, (enum section_kind)42, NULL, 0}, false},
        {"BINARY of a header", {one, 1, SECTION_HEADER, NULL, 0}, true},
        {"BINARY of MIME", {one, 1, SECTION_MIME, NULL, 0}, true},
        {"BINARY part number 0", {zero, 2, SECTION_NONE, NULL, 0}, true},
    };
    struct loaded l;
    load_bytes(&l, simple, sizeof simple - 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sm_buf out;
        const char *error = NULL;
        uint64_t size = 1;
        sm_buf_init(&out, 0);
        sm_buf_puts(&out, "kept");
        enum section_status st =
            cases[i].binary ? section_binary(&l.f.msg, &cases[i].spec, NULL, &out, NULL, &error)
                            : section_body(&l.f.msg, &cases[i].spec, NULL, &out, NULL, &error);
        if (st != SECTION_BAD)
            fail_msg("%s: %s", cases[i].label, section_status_name(st));
        assert_non_null(error);
        assert_string_equal(sm_buf_str(&out), "kept");
        st = cases[i].binary ? section_binary_size(&l.f.msg, &cases[i].spec, &size, &error)
                             : section_body_size(&l.f.msg, &cases[i].spec, &size, &error);
        assert_int_equal(st, SECTION_BAD);
        assert_int_equal(size, 0);
        sm_buf_free(&out);
    }
    /* the largest allowed requests are fine */
    struct section_spec ok = {NULL, 0, SECTION_HEADER_FIELDS, many, SECTION_FIELDS_MAX};
    struct sm_buf out;
    const char *error;
    sm_buf_init(&out, 0);
    assert_int_equal(section_body(&l.f.msg, &ok, NULL, &out, NULL, &error), SECTION_OK);
    assert_string_equal(sm_buf_str(&out), "From: a@example.org\r\n\r\n");
    sm_buf_free(&out);
    unload(&l);
}

static void test_limits(void **state)
{
    (void)state;
    struct loaded l;
    load_bytes(&l, simple, sizeof simple - 1);
    struct section_spec all = {NULL, 0, SECTION_NONE, NULL, 0};
    struct section_result res;
    const char *error;
    for (int binary = 0; binary < 2; binary++) {
        struct sm_buf out;
        sm_buf_init(&out, sizeof simple - 1 + 2);
        sm_buf_puts(&out, "ab");
        enum section_status st = binary ? section_binary(&l.f.msg, &all, NULL, &out, &res, &error)
                                        : section_body(&l.f.msg, &all, NULL, &out, &res, &error);
        assert_int_equal(st, SECTION_OK); /* exactly fits */
        assert_int_equal(out.len, sizeof simple - 1 + 2);
        sm_buf_free(&out);
        sm_buf_init(&out, sizeof simple - 1);
        sm_buf_puts(&out, "ab");
        st = binary ? section_binary(&l.f.msg, &all, NULL, &out, &res, &error)
                    : section_body(&l.f.msg, &all, NULL, &out, &res, &error);
        assert_int_equal(st, SECTION_TOO_BIG);
        assert_string_equal(sm_buf_str(&out), "ab"); /* unchanged */
        struct section_partial p = {10, sizeof simple - 3};
        st = binary ? section_binary(&l.f.msg, &all, &p, &out, &res, &error)
                    : section_body(&l.f.msg, &all, &p, &out, &res, &error);
        assert_int_equal(st, SECTION_OK);
        assert_int_equal(res.size, sizeof simple - 11);
        assert_memory_equal(out.data + 2, simple + 10, res.size);
        sm_buf_free(&out);
    }
    unload(&l);
}

/* Offsets that do not fit the bytes select wrong bytes at worst. */
static void test_damaged_offsets(void **state)
{
    (void)state;
    struct mime_part_offsets parts[] = {
        {"1", 5, 3, 1000}, {"1.1", 2000, 3000, 10}, {"2", UINT64_MAX, UINT64_MAX, UINT64_MAX},
        {"2.1", 0, 0, 0}, {NULL, 0, 1, 2},
    };
    struct section_msg m = {(const unsigned char *)simple, sizeof simple - 1, parts, 5};
    static const unsigned nums[][2] = {{1, 0}, {1, 1}, {2, 0}, {2, 1}, {3, 0}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        unsigned n = nums[i][1] != 0 ? 2 : 1;
        check_part(&m, nums[i], n);
    }
    check_part(&m, NULL, 0);
    struct section_msg empty = {NULL, 0, NULL, 0};
    check_part(&empty, NULL, 0);
    check_part(&empty, nums[0], 1);
}

static void test_file_errors(void **state)
{
    (void)state;
    int p[2];
    struct section_file f;
    const char *error = NULL;
    assert_int_equal(pipe(p), 0);
    assert_int_equal(section_file_open(p[0], &f, &error), -1);
    assert_non_null(error);
    section_file_close(&f); /* empty: harmless */
    section_file_close(&f);
    close(p[0]);
    close(p[1]);
    struct loaded l; /* an empty file is an empty message */
    load_bytes(&l, "", 0);
    struct section_spec all = {NULL, 0, SECTION_NONE, NULL, 0};
    uint64_t size = 1;
    assert_int_equal(section_body_size(&l.f.msg, &all, &size, &error), SECTION_OK);
    assert_int_equal(size, 0);
    unload(&l);
    assert_string_equal(section_status_name(SECTION_UNKNOWN_CTE), "unknown-cte");
    assert_string_equal(section_status_name((enum section_status)99), "?");
}

/* ---- the decoders ---- */

#define UNKNOWN 1 /* want_len of an error row: SECTION_UNKNOWN_CTE */

static void test_decoders(void **state)
{
    (void)state;
    static const struct {
        const char *label, *cte, *body; /* body as stored, CRLF */
        const char *want; /* NULL: an error, want_len SECTION_CORRUPT or UNKNOWN */
        size_t want_len;
    } cases[] = {
        {"base64", "base64", "aGVsbG8=", "hello", 5},
        {"base64 blanks", "base64", " aG\tVs \r\nbG8=\r\n \r\n", "hello", 5},
        {"base64 ==", "base64", "aA==", "h", 1},
        {"base64 = =", "base64", "aA=\r\n =\r\n", "h", 1},
        {"base64 no padding needed", "base64", "YWJj", "abc", 3},
        {"base64 empty", "base64", "", "", 0},
        {"base64 NUL", "base64", "AGEA", "\0a\0", 3},
        {"base64 bad char", "base64", "aGVs*bG8=", NULL, 0},
        {"base64 = first", "base64", "=aGk", NULL, 0},
        {"base64 x= alone", "base64", "aGVsbA=", NULL, 0},
        {"base64 x=== ", "base64", "aA===", NULL, 0},
        {"base64 after padding", "base64", "aGk=aGk=", NULL, 0},
        {"base64 truncated", "base64", "aGVsbG8", NULL, 0},
        {"base64 dot", "base64", "aGk=.", NULL, 0},
        {"qp", "quoted-printable", "a=3Db", "a=b", 3},
        {"qp lower hex", "quoted-printable", "caf=c3=a9", "caf\xc3\xa9", 5},
        {"qp soft", "quoted-printable", "a=\r\nb", "ab", 2},
        {"qp soft blanks", "quoted-printable", "a= \t\r\nb", "ab", 2},
        {"qp trailing", "quoted-printable", "a  \r\nb\t", "a\r\nb", 4},
        {"qp LF", "quoted-printable", "a\nb", "a\r\nb", 4},
        {"qp 76 blanks", "quoted-printable",
         "a                                                                            b",
         "a                                                                            b", 78},
        {"qp 77 blanks", "quoted-printable",
         "a                                                                             b", NULL,
         0},
        {"qp bad hex", "quoted-printable", "=ZZ", NULL, 0},
        {"qp half hex", "quoted-printable", "=4", NULL, 0},
        {"qp = blank text", "quoted-printable", "= x", NULL, 0},
        {"qp lone CR", "quoted-printable", "a\rb", NULL, 0},
        {"qp = at end", "quoted-printable", "a=", NULL, 0},
        {"7bit", "7bit", "a\nb", "a\r\nb", 4},
        {"binary NUL", "binary", "a\0b", "a\0b", 3},
        {"no token", "(comment only)", "a\nb", NULL, UNKNOWN},
        {"empty value", "", "a\nb", NULL, UNKNOWN},
        {"token and junk", "base64 junk", "aGk=", NULL, UNKNOWN},
        {"x-uuencode", "x-uuencode", "begin 644 f", NULL, UNKNOWN},
        {"token and parameters", "base64; x=y", "aGk=", "hi", 2},
        {"token and ;", "7bit;", "a\nb", "a\r\nb", 4},
        {"comments", "(c) BASE64 (d)", "aGk=", "hi", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sm_buf msg, out;
        sm_buf_init(&msg, 0);
        sm_buf_init(&out, 0);
        sm_buf_printf(&msg, "MIME-Version: 1.0\r\nContent-Transfer-Encoding: %s\r\n\r\n",
                      cases[i].cte);
        size_t blen = strlen(cases[i].body);
        if (strcmp(cases[i].label, "binary NUL") == 0)
            blen = 3;
        sm_buf_append(&msg, cases[i].body, blen);
        struct loaded l;
        load_bytes(&l, msg.data, msg.len);
        static const unsigned one[] = {1};
        struct section_spec spec = {one, 1, SECTION_NONE, NULL, 0};
        struct section_result res;
        const char *error;
        enum section_status st = section_binary(&l.f.msg, &spec, NULL, &out, &res, &error);
        if (cases[i].want == NULL) {
            if (st != (cases[i].want_len == UNKNOWN ? SECTION_UNKNOWN_CTE : SECTION_CORRUPT))
                fail_msg("%s: %s", cases[i].label, section_status_name(st));
        } else {
            if (st != SECTION_OK || out.len != cases[i].want_len ||
                memcmp(sm_buf_str(&out), cases[i].want, out.len) != 0)
                fail_msg("%s: %s [%s]", cases[i].label, section_status_name(st), sm_buf_str(&out));
            assert_int_equal(res.has_nul, memchr(cases[i].want, '\0', cases[i].want_len) != NULL);
        }
        unload(&l);
        sm_buf_free(&msg);
        sm_buf_free(&out);
    }
}

int main(int argc, char **argv)
{
    mime_init();
    if (argc >= 3 && strcmp(argv[1], "--dump") == 0) {
        size_t len = 0;
        char *msg = read_path(argv[2], &len);
        if (msg == NULL)
            return 1;
        struct loaded l;
        load_bytes(&l, msg, len);
        for (int i = 3; i < argc; i++) {
            struct sm_buf rec;
            sm_buf_init(&rec, 0);
            answer(&l.f.msg, argv[i], &rec);
            fwrite(rec.data, 1, rec.len, stdout);
            sm_buf_free(&rec);
        }
        unload(&l);
        free(msg);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),          cmocka_unit_test(test_contracts),
        cmocka_unit_test(test_bad_specs),       cmocka_unit_test(test_limits),
        cmocka_unit_test(test_damaged_offsets), cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_decoders),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    mime_shutdown();
    return r;
}
