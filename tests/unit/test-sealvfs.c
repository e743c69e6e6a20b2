/* test-sealvfs.c — the sealing SQLite VFS: no plaintext on disk, every
 * altered byte an error and never other data, crash safety under kill -9.
 *
 * Each test works in its own files under one temporary directory, which
 * is also SQLite's temporary directory (SQLITE_TMPDIR), watched with
 * inotify by the temp-file test.  The crash test forks a writer, kills it
 * with SIGKILL at a random moment (mostly timed from its "opened" message,
 * every fourth round from the fork) and checks every transaction it
 * reported committed.  Environment: SEALVFS_CRASH_ITERATIONS, the number
 * of WAL-mode rounds (default 200; a fifth as many more run in
 * rollback-journal mode; every third round with cache_size=10);
 * SEALVFS_CRASH_SEED, the random delays; SEALVFS_TEST, one test by name. */
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/sealvfs.h"

#define MARKER "zqx-sealvfs-marker-7f3a"
#define ROWS 3000
#define RESERVE 40

static char root[64];
static char tmpdir[96];

static const uint8_t key[SEALVFS_KEY_BYTES] = {
    0x5e, 0xa1, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
    0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
};
static const uint8_t other_key[SEALVFS_KEY_BYTES] = {
    0x5e, 0xa1, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
    0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1e,
};

/* --- helpers -------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/test-sealvfs.XXXXXX");
    if (mkdtemp(root) == NULL)
        return -1;
    snprintf(tmpdir, sizeof tmpdir, "%s/sqlite-tmp", root);
    if (mkdir(tmpdir, 0700) < 0)
        return -1;
    /* read by SQLite once, when it initialises: before any SQLite call */
    return setenv("SQLITE_TMPDIR", tmpdir, 1);
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* root/name into buf; returns buf. */
static const char *in_root(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", root, name);
    return buf;
}

static sqlite3 *open_ok(const char *path, const uint8_t *k, bool create)
{
    sqlite3 *db = NULL;
    const char *error = NULL;
    if (sealvfs_open(path, k, create, &db, &error) < 0)
        fail_msg("sealvfs_open %s: %s", path, error);
    assert_non_null(db);
    return db;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
}

/* The first column of the single row of sql, as text (static buffer) or
 * NULL on an error. */
static const char *query_text(sqlite3 *db, const char *sql)
{
    static char out[256];
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        snprintf(out, sizeof out, "%s",
                 sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "");
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? out : NULL;
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
    const char *text = query_text(db, sql);
    if (text == NULL)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    return strtoll(text, NULL, 10);
}

static void expected_row(int64_t id, char *out, size_t len)
{
    snprintf(out, len, "%s %lld alpha%lld", MARKER, (long long)id, (long long)(id % 10));
}

/* msg rows 1..ROWS with the marker, indexed by an external-content FTS5
 * table, in several transactions with a checkpoint in between so both
 * the database and its WAL hold data. */
static void fill(sqlite3 *db)
{
    sqlite3_stmt *st;
    char text[128];

    exec_ok(db, "CREATE TABLE msg(id INTEGER PRIMARY KEY, x TEXT NOT NULL);"
                "CREATE VIRTUAL TABLE t USING fts5(x, content='msg', content_rowid='id');");
    assert_int_equal(
        sqlite3_prepare_v2(db, "INSERT INTO msg(id, x) VALUES (?1, ?2)", -1, &st, NULL), SQLITE_OK);
    for (int64_t id = 1; id <= ROWS; id++) {
        if (id % 500 == 1)
            exec_ok(db, "BEGIN");
        expected_row(id, text, sizeof text);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
        if (id % 500 == 0)
            exec_ok(db, "COMMIT");
        if (id == ROWS / 2)
            exec_ok(db, "PRAGMA wal_checkpoint(PASSIVE)");
    }
    sqlite3_finalize(st);
    exec_ok(db, "INSERT INTO t(t) VALUES('rebuild')");
}

struct blob {
    uint8_t *data;
    size_t len;
};

/* The whole file (empty if missing); free data. */
static struct blob slurp(const char *path)
{
    struct blob b = {NULL, 0};
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return b;
    fseek(f, 0, SEEK_END);
    b.len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    b.data = malloc(b.len + 1);
    assert_non_null(b.data);
    assert_int_equal(fread(b.data, 1, b.len, f), b.len);
    fclose(f);
    return b;
}

static bool file_contains(const char *path, const void *needle, size_t n)
{
    struct blob b = slurp(path);
    bool found = b.len > 0 && memmem(b.data, b.len, needle, n) != NULL;
    free(b.data);
    return found;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) < 0 ? -1 : st.st_size;
}

static void copy_file(const char *from, const char *to)
{
    struct blob b = slurp(from);
    FILE *f = fopen(to, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b.data, 1, b.len, f), b.len);
    assert_int_equal(fclose(f), 0);
    free(b.data);
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    uint8_t c;
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, off), 1);
    c ^= 0x20;
    assert_int_equal(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

/* No byte of path (and of its -wal and -shm) holds the marker or the
 * standard SQLite magic. */
static void assert_no_plaintext(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char name[256];
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf(name, sizeof name, "%s%s", path, suffixes[i]);
        if (file_contains(name, MARKER, strlen(MARKER)))
            fail_msg("%s holds the marker", name);
        if (file_contains(name, "SQLite format 3", 15))
            fail_msg("%s holds the SQLite magic", name);
    }
}

/* What reading a possibly damaged store gave: rows compared with what was
 * written, errors from any statement. */
struct scan {
    int rows, wrong, errors;
};

static void scan_rows(sqlite3 *db, struct scan *s)
{
    sqlite3_stmt *st;
    char want[128];
    int rc;

    if (sqlite3_prepare_v2(db, "SELECT id, x FROM msg ORDER BY id", -1, &st, NULL) != SQLITE_OK) {
        s->errors++;
        return;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        expected_row(sqlite3_column_int64(st, 0), want, sizeof want);
        const char *x = (const char *)sqlite3_column_text(st, 1);
        s->rows++;
        s->wrong += x == NULL || strcmp(x, want) != 0;
    }
    s->errors += rc != SQLITE_DONE;
    sqlite3_finalize(st);
}

static void scan_fts(sqlite3 *db, struct scan *s)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(db, "SELECT rowid FROM t WHERE t MATCH 'alpha3'", -1, &st, NULL) !=
        SQLITE_OK) {
        s->errors++;
        return;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        s->wrong += sqlite3_column_int64(st, 0) % 10 != 3;
    s->errors += rc != SQLITE_DONE;
    sqlite3_finalize(st);
}

/* Read everything: the rows, the full-text index, integrity_check. */
static struct scan scan_all(sqlite3 *db)
{
    struct scan s = {0, 0, 0};
    scan_rows(db, &s);
    scan_fts(db, &s);
    const char *ic = query_text(db, "PRAGMA integrity_check");
    s.errors += ic == NULL || strcmp(ic, "ok") != 0;
    return s;
}

/* --- no plaintext, settings, FTS5 ----------------------------------------- */

static void test_no_plaintext_on_disk(void **state)
{
    char path[256];
    (void)state;
    in_root(path, sizeof path, "plain-check.db");
    sqlite3 *db = open_ok(path, key, true);
    assert_true(sealvfs_is_sealed(db));
    fill(db);

    assert_int_equal(query_int(db, "SELECT count(*) FROM msg"), ROWS);
    assert_int_equal(query_int(db, "SELECT count(*) FROM t WHERE t MATCH 'alpha3'"), ROWS / 10);
    assert_int_equal(query_int(db, "SELECT count(*) FROM t WHERE t MATCH "
                                   "'\"zqx sealvfs marker 7f3a\"'"),
                     ROWS);
    assert_int_equal(query_int(db, "SELECT count(*) FROM t WHERE t MATCH '1234'"), 1);
    exec_ok(db, "INSERT INTO t(t) VALUES('integrity-check')");
    assert_string_equal(query_text(db, "PRAGMA integrity_check"), "ok");
    assert_true(file_size(path) > 4096 * 4);
    char wal[300];
    snprintf(wal, sizeof wal, "%s-wal", path);
    assert_true(file_size(wal) > 4096 * 4); /* rows both sides of the checkpoint */
    assert_no_plaintext(path);

    /* the settings sealvfs_open() promises */
    assert_string_equal(query_text(db, "PRAGMA journal_mode"), "wal");
    assert_int_equal(query_int(db, "PRAGMA temp_store"), 2);
    assert_int_equal(query_int(db, "PRAGMA synchronous"), 2);
    assert_int_equal(query_int(db, "PRAGMA mmap_size"), 0);
    assert_int_equal(query_int(db, "PRAGMA secure_delete"), 1);
    assert_int_equal(query_int(db, "PRAGMA foreign_keys"), 1);
    sealvfs_close(&db);
    assert_null(db);

    /* closed: checkpointed into the main file, still sealed */
    assert_no_plaintext(path);
    struct blob b = slurp(path);
    assert_memory_equal(b.data, "sealmdb\1", 8);
    assert_int_equal(b.data[20], RESERVE);
    free(b.data);

    db = open_ok(path, key, false);
    struct scan s = scan_all(db);
    assert_int_equal(s.rows, ROWS);
    assert_int_equal(s.wrong, 0);
    assert_int_equal(s.errors, 0);
    sealvfs_close(&db);
}

/* --- refusals --------------------------------------------------------------- */

static void make_sealed(const char *path)
{
    sqlite3 *db = open_ok(path, key, true);
    exec_ok(db, "CREATE TABLE x(a); INSERT INTO x VALUES ('" MARKER "')");
    sealvfs_close(&db);
}

static void test_wrong_key_and_other_openers(void **state)
{
    char path[256], plain[256], junk[256];
    sqlite3 *db = NULL, *raw = NULL;
    const char *error = NULL;
    (void)state;

    make_sealed(in_root(path, sizeof path, "keys.db"));
    assert_int_equal(sealvfs_open(path, other_key, false, &db, &error), -1);
    assert_null(db);
    assert_non_null(strstr(error, "wrong key or damaged store"));

    /* without the shim */
    error = NULL;
    assert_int_equal(sealvfs_open(path, NULL, false, &db, &error), -1);
    assert_non_null(strstr(error, "not a plain SQLite database"));
    assert_int_equal(sqlite3_open_v2(path, &raw, SQLITE_OPEN_READWRITE, "unix"), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL),
                     SQLITE_NOTADB);
    sqlite3_close(raw);
    assert_no_plaintext(path);

    /* a plain SQLite database is not a sealed store */
    in_root(plain, sizeof plain, "keys-plain.db");
    assert_int_equal(
        sqlite3_open_v2(plain, &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "unix"),
        SQLITE_OK);
    exec_ok(raw, "CREATE TABLE x(a)");
    sqlite3_close(raw);
    assert_int_equal(sealvfs_open(plain, key, false, &db, &error), -1);
    assert_non_null(strstr(error, "not a sealmail store"));

    /* junk, a file too short to hold a header, a missing file, names */
    FILE *f = fopen(in_root(junk, sizeof junk, "keys-junk.db"), "w");
    fputs("this is not a database at all, only text long enough to matter\n", f);
    fclose(f);
    assert_int_equal(sealvfs_open(junk, key, false, &db, &error), -1);
    f = fopen(in_root(junk, sizeof junk, "keys-short.db"), "w");
    fputs("sealmdb", f);
    fclose(f);
    assert_int_equal(sealvfs_open(junk, key, false, &db, &error), -1);
    assert_int_equal(
        sealvfs_open(in_root(junk, sizeof junk, "keys-missing.db"), key, false, &db, &error), -1);
    assert_true(file_size(junk) < 0);
    assert_int_equal(sealvfs_open("file:x.db?vfs=unix", key, true, &db, &error), -1);
    assert_int_equal(sealvfs_open(":memory:", key, true, &db, &error), -1);
    assert_int_equal(sealvfs_open("", key, true, &db, &error), -1);
    assert_null(db);

    /* the right key still works, and closing NULL is a no-op */
    db = open_ok(path, key, false);
    assert_string_equal(query_text(db, "SELECT a FROM x"), MARKER);
    sealvfs_close(&db);
    sealvfs_close(&db);
    sealvfs_close(NULL);
}

/* --- tampering ------------------------------------------------------------- */

struct flip_case {
    const char *label;
    int page;   /* 1-based */
    int offset; /* within the page; negative: from the end */
};

static const struct flip_case flip_cases[] = {
    {"page 1 magic", 1, 3},
    {"page 1 database id", 1, 10},
    {"page 1 page size (header byte 17)", 1, 17},
    {"page 1 reserve (header byte 20)", 1, 20},
    {"page 1 header byte 23", 1, 23},
    {"page 1 ciphertext", 1, 300},
    {"page 1 nonce", 1, -30},
    {"page 1 tag", 1, -1},
    {"page 2 ciphertext", 2, 0},
    {"page 3 nonce", 3, -40},
    {"page 5 ciphertext", 5, 2000},
    {"middle page ciphertext", 0, 1000},
    {"last page tag", -1, -16},
};

/* Open a damaged copy and read everything: some error must show, and no
 * row may differ from what was written. */
static void check_damaged(const char *path, const char *label)
{
    sqlite3 *db = NULL;
    const char *error = NULL;

    if (sealvfs_open(path, key, false, &db, &error) < 0) {
        assert_non_null(error);
        return;
    }
    struct scan s = scan_all(db);
    sealvfs_close(&db);
    if (s.wrong != 0)
        fail_msg("%s: %d wrong rows", label, s.wrong);
    if (s.errors == 0)
        fail_msg("%s: not detected (%d rows read)", label, s.rows);
}

static void test_flipped_bytes_in_pages(void **state)
{
    char base[256], copy[256];
    (void)state;

    in_root(base, sizeof base, "tamper-base.db");
    sqlite3 *db = open_ok(base, key, true);
    fill(db);
    sealvfs_close(&db);
    off_t size = file_size(base);
    int pages = (int)(size / 4096);
    assert_true(pages > 10);

    for (size_t i = 0; i < sizeof flip_cases / sizeof flip_cases[0]; i++) {
        const struct flip_case *c = &flip_cases[i];
        int page = c->page == 0 ? pages / 2 : c->page < 0 ? pages : c->page;
        off_t off = (off_t)(page - 1) * 4096 + (c->offset < 0 ? 4096 + c->offset : c->offset);
        snprintf(copy, sizeof copy, "%s/tamper-%zu.db", root, i);
        copy_file(base, copy);
        flip_byte(copy, off);
        check_damaged(copy, c->label);
    }
}

/* Frame i (0-based) of a WAL with 4096-byte pages: header offset. */
static off_t frame_off(int i)
{
    return 32 + (off_t)i * (4096 + 24);
}

/* A WAL with several commits, none checkpointed: rows 1..ROWS written in
 * 6 transactions with autocheckpoint off.  The connection stays open. */
static sqlite3 *wal_with_commits(const char *path)
{
    sqlite3 *db = open_ok(path, key, true);
    exec_ok(db, "PRAGMA wal_autocheckpoint = 0");
    exec_ok(db, "CREATE TABLE msg(id INTEGER PRIMARY KEY, x TEXT NOT NULL);"
                "CREATE VIRTUAL TABLE t USING fts5(x, content='msg', content_rowid='id');");
    exec_ok(db, "PRAGMA wal_checkpoint(TRUNCATE)"); /* the schema in the main file */
    for (int id = 1; id <= ROWS; id++) {
        char sql[256], text[128];
        if (id % 500 == 1)
            exec_ok(db, "BEGIN");
        expected_row(id, text, sizeof text);
        snprintf(sql, sizeof sql,
                 "INSERT INTO msg(id, x) VALUES (%d, '%s');"
                 "INSERT INTO t(rowid, x) VALUES (%d, '%s')",
                 id, text, id, text);
        exec_ok(db, sql);
        if (id % 500 == 0)
            exec_ok(db, "COMMIT");
    }
    return db;
}

/* Recovery: a copy of database and WAL (no -shm) as a crash leaves them.
 * A damaged frame ends the log there (a silent loss of later commits,
 * see engineering-notes §1.5), never wrong data. */
static void test_flipped_wal_frame_recovery(void **state)
{
    char path[256], copy[256], wal[300], copy_wal[300];
    (void)state;

    sqlite3 *db = wal_with_commits(in_root(path, sizeof path, "walrec.db"));
    snprintf(wal, sizeof wal, "%s-wal", path);
    int frames = (int)((file_size(wal) - 32) / (4096 + 24));
    assert_true(frames > 20);
    assert_no_plaintext(path);

    static const struct {
        const char *label;
        int where; /* within the frame, header included */
    } spots[] = {{"intact", -1},
                 {"frame page data", 24 + 1000},
                 {"frame page number", 3},
                 {"frame tag", 24 + 4096 - 1}};
    for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
        snprintf(copy, sizeof copy, "%s/walrec-%zu.db", root, i);
        snprintf(copy_wal, sizeof copy_wal, "%s-wal", copy);
        copy_file(path, copy);
        copy_file(wal, copy_wal);
        if (spots[i].where >= 0)
            flip_byte(copy_wal, frame_off(frames / 2) + spots[i].where);
        sqlite3 *c = open_ok(copy, key, false);
        struct scan s = scan_all(c);
        sealvfs_close(&c);
        if (s.wrong != 0 || s.errors != 0)
            fail_msg("%s: %d wrong rows, %d errors", spots[i].label, s.wrong, s.errors);
        if (spots[i].where < 0)
            assert_int_equal(s.rows, ROWS);
        else if (s.rows >= ROWS)
            fail_msg("%s: the damaged frame was used", spots[i].label);
    }
    sealvfs_close(&db);
}

/* Normal reads: with a live wal-index, a damaged frame is an error. */
static void test_flipped_wal_frame_read(void **state)
{
    char path[256], wal[300];
    (void)state;

    sqlite3 *db = wal_with_commits(in_root(path, sizeof path, "walread.db"));
    snprintf(wal, sizeof wal, "%s-wal", path);
    int frames = (int)((file_size(wal) - 32) / (4096 + 24));
    struct blob b = slurp(wal);
    int victim = -1;
    for (int i = frames - 1; i >= 0 && victim < 0; i--) {
        const uint8_t *h = b.data + frame_off(i);
        uint32_t pgno = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
        if (pgno > 1)
            victim = i; /* the newest version of some page other than 1 */
    }
    free(b.data);
    assert_true(victim >= 0);
    flip_byte(wal, frame_off(victim) + 24 + 2000);

    sqlite3 *reader = open_ok(path, key, false); /* uses db's wal-index */
    struct scan s = scan_all(reader);
    assert_int_equal(s.wrong, 0);
    assert_true(s.errors > 0);
    sealvfs_close(&reader);
    flip_byte(wal, frame_off(victim) + 24 + 2000); /* repair: readable again */
    reader = open_ok(path, key, false);
    s = scan_all(reader);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.rows, ROWS);
    sealvfs_close(&reader);
    sealvfs_close(&db);
}

/* A rollback journal made hot by copying mid-transaction (after pages
 * spilled into the database): played back it restores the data; with a
 * damaged record it is an error. */
static void test_rollback_journal(void **state)
{
    char path[256], journal[300], copy[256], copy_journal[300];
    (void)state;

    in_root(path, sizeof path, "journal.db");
    sqlite3 *db = open_ok(path, key, true);
    fill(db);
    assert_string_equal(query_text(db, "PRAGMA journal_mode = DELETE"), "delete");
    exec_ok(db, "PRAGMA cache_size = 10");
    exec_ok(db, "BEGIN; UPDATE msg SET x = 'changed ' || x");
    snprintf(journal, sizeof journal, "%s-journal", path);
    assert_true(file_size(journal) > 4096 * 10);
    assert_no_plaintext(path); /* the journal too */

    for (int damage = 0; damage < 3; damage++) {
        snprintf(copy, sizeof copy, "%s/journal-%d.db", root, damage);
        snprintf(copy_journal, sizeof copy_journal, "%s-journal", copy);
        copy_file(path, copy);
        copy_file(journal, copy_journal);
        if (damage == 1)
            flip_byte(copy_journal, 4096 + 4 + 100); /* first record's page */
        if (damage == 2)
            flip_byte(copy_journal, 4096 + 3); /* first record's page number */
        if (damage == 0) {
            sqlite3 *c = open_ok(copy, key, false); /* rolls the journal back */
            struct scan s = scan_all(c);
            assert_int_equal(s.rows, ROWS);
            assert_int_equal(s.wrong, 0);
            assert_int_equal(s.errors, 0);
            sealvfs_close(&c);
        } else {
            check_damaged(copy, damage == 1 ? "journal page" : "journal page number");
        }
    }
    exec_ok(db, "ROLLBACK");
    assert_int_equal(query_int(db, "SELECT count(*) FROM msg WHERE x LIKE 'changed%'"), 0);
    sealvfs_close(&db);
}

/* --- VACUUM, copies, ATTACH ------------------------------------------------ */

static void test_vacuum(void **state)
{
    char path[256], copy[256], rekeyed[256], raw[256];
    sqlite3 *db, *c;
    const char *error = NULL;
    (void)state;

    db = open_ok(in_root(path, sizeof path, "vacuum.db"), key, true);
    fill(db);
    exec_ok(db, "DELETE FROM msg WHERE id % 2 = 0; INSERT INTO t(t) VALUES('rebuild')");
    exec_ok(db, "VACUUM");
    assert_int_equal(query_int(db, "SELECT count(*) FROM msg"), ROWS / 2);
    assert_string_equal(query_text(db, "PRAGMA integrity_check"), "ok");
    assert_no_plaintext(path);

    /* a copy under the same master key, with its own id */
    assert_int_equal(sealvfs_vacuum_into(db, in_root(copy, sizeof copy, "vacuum-copy.db"), &error),
                     0);
    assert_no_plaintext(copy);
    c = open_ok(copy, key, false);
    assert_int_equal(query_int(c, "SELECT count(*) FROM msg"), ROWS / 2);
    assert_int_equal(query_int(c, "SELECT count(*) FROM t WHERE t MATCH 'alpha3'"), ROWS / 10);
    assert_string_equal(query_text(c, "PRAGMA integrity_check"), "ok");
    sealvfs_close(&c);
    struct blob a = slurp(path), b = slurp(copy);
    assert_memory_not_equal(a.data + 8, b.data + 8, 8);
    free(a.data), free(b.data);

    /* a copy under a new key (rekey) */
    assert_int_equal(sealvfs_vacuum_into_key(db,
                                             in_root(rekeyed, sizeof rekeyed, "vacuum-rekeyed.db"),
                                             other_key, &error),
                     0);
    assert_int_equal(sealvfs_open(rekeyed, key, false, &c, &error), -1);
    c = open_ok(rekeyed, other_key, false);
    assert_int_equal(query_int(c, "SELECT count(*) FROM msg"), ROWS / 2);
    sealvfs_close(&c);

    /* raw VACUUM INTO and ATTACH: no key for the file, or a URI: refused,
     * and nothing is written */
    in_root(raw, sizeof raw, "vacuum-raw.db");
    char sql[512];
    snprintf(sql, sizeof sql, "VACUUM INTO '%s'", raw);
    assert_int_not_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    snprintf(sql, sizeof sql, "VACUUM INTO 'file:%s?vfs=unix'", raw);
    assert_int_not_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    snprintf(sql, sizeof sql, "ATTACH 'file:%s?vfs=unix' AS leak", raw);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_AUTH);
    snprintf(sql, sizeof sql, "ATTACH '%s' AS nokey", raw);
    assert_int_not_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_not_equal(sealvfs_vacuum_into(db, copy, &error), 0); /* exists */
    assert_true(file_size(raw) < 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM msg"), ROWS / 2);
    sealvfs_close(&db);
}

/* Page size is read from each access, not assumed: copies made with
 * another page size (PRAGMA page_size, then sealvfs_vacuum_into()) work,
 * 64 KiB (stored as 1 in the header) included.  An in-place VACUUM to
 * another page size cannot: SQLite packs several new pages into one old
 * one while copying, so the shim refuses the write and the store stays
 * as it was. */
static void test_page_sizes(void **state)
{
    static const int sizes[] = {1024, 8192, 65536};
    char path[256], copy[256], name[64], sql[64];
    const char *error = NULL;
    (void)state;

    sqlite3 *db = open_ok(in_root(path, sizeof path, "pagesize.db"), key, true);
    fill(db);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        snprintf(name, sizeof name, "pagesize-%d.db", sizes[i]);
        snprintf(sql, sizeof sql, "PRAGMA page_size = %d", sizes[i]);
        exec_ok(db, sql);
        if (sealvfs_vacuum_into(db, in_root(copy, sizeof copy, name), &error) < 0)
            fail_msg("%s", error);
        assert_no_plaintext(copy);
        sqlite3 *c = open_ok(copy, key, false);
        assert_int_equal(query_int(c, "PRAGMA page_size"), sizes[i]);
        exec_ok(c, "UPDATE msg SET x = x WHERE id % 7 = 0; INSERT INTO t(t) VALUES('rebuild')");
        struct scan s = scan_all(c);
        assert_int_equal(s.rows, ROWS);
        assert_int_equal(s.wrong + s.errors, 0);
        sealvfs_close(&c);
        assert_no_plaintext(copy);
        struct blob b = slurp(copy);
        assert_int_equal(b.data[16] << 8 | b.data[17], sizes[i] == 65536 ? 1 : sizes[i]);
        free(b.data);
    }

    assert_string_equal(query_text(db, "PRAGMA journal_mode = DELETE"), "delete");
    exec_ok(db, "PRAGMA page_size = 8192");
    assert_int_equal(sqlite3_exec(db, "VACUUM", NULL, NULL, NULL), SQLITE_IOERR_WRITE);
    assert_int_equal(query_int(db, "PRAGMA page_size"), 4096);
    sealvfs_close(&db);
    db = open_ok(path, key, false);
    struct scan s = scan_all(db);
    assert_int_equal(s.rows, ROWS);
    assert_int_equal(s.wrong + s.errors, 0);
    sealvfs_close(&db);
}

/* --- temporary files ------------------------------------------------------- */

/* Events on SQLite's temporary directory since the watch was set. */
static int tmp_events(int fd)
{
    char buf[4096];
    int n = 0;
    ssize_t len;
    while ((len = read(fd, buf, sizeof buf)) > 0)
        n += (int)len;
    return n;
}

static void test_temp_files_never_plaintext(void **state)
{
    char path[256];
    (void)state;

    int ifd = inotify_init1(IN_NONBLOCK);
    assert_true(ifd >= 0);
    assert_true(inotify_add_watch(ifd, tmpdir, IN_CREATE | IN_MODIFY | IN_MOVED_TO) >= 0);

    sqlite3 *db = open_ok(in_root(path, sizeof path, "temp.db"), key, true);
    fill(db);
    exec_ok(db, "PRAGMA cache_size = 10");
    /* temp_store=MEMORY: all of these stay in memory */
    exec_ok(db, "CREATE TEMP TABLE tt AS SELECT * FROM msg;"
                "CREATE INDEX temp.tt_x ON tt(x);"
                "BEGIN; UPDATE msg SET x = x || ' '; UPDATE msg SET x = rtrim(x); COMMIT;");
    assert_int_equal(query_int(db, "SELECT count(*) FROM"
                                   " (SELECT x, randomblob(1000) FROM msg ORDER BY random())"),
                     ROWS); /* 3 MB: a sorter would spill to a file */
    assert_int_equal(query_int(db, "SELECT count(DISTINCT x) FROM tt"), ROWS);
    exec_ok(db, "DROP TABLE tt");

    /* temp_store=FILE: whatever needs a temporary file fails instead */
    exec_ok(db, "PRAGMA temp_store = FILE");
    int rc =
        sqlite3_exec(db, "SELECT x, randomblob(1000) FROM msg ORDER BY random()", NULL, NULL, NULL);
    assert_int_equal(rc & 0xff, SQLITE_CANTOPEN);
    /* a statement journal past 64 KiB, a temp table: refused, or kept in
     * the page cache; never in a file */
    rc = sqlite3_exec(db, "BEGIN; UPDATE msg SET x = x || randomblob(100)", NULL, NULL, NULL);
    assert_true(rc == SQLITE_OK || (rc & 0xff) == SQLITE_CANTOPEN);
    exec_ok(db, "ROLLBACK");
    rc = sqlite3_exec(db, "CREATE TEMP TABLE t2 AS SELECT * FROM msg", NULL, NULL, NULL);
    assert_true(rc == SQLITE_OK || (rc & 0xff) == SQLITE_CANTOPEN);
    if (rc == SQLITE_OK)
        sqlite3_exec(db, "SELECT count(*) FROM t2 ORDER BY x", NULL, NULL, NULL);
    assert_int_equal(tmp_events(ifd), 0);
    char probe[160]; /* the watch itself works */
    snprintf(probe, sizeof probe, "%s/probe", tmpdir);
    fclose(fopen(probe, "w"));
    unlink(probe);
    assert_true(tmp_events(ifd) > 0);
    close(ifd);

    exec_ok(db, "PRAGMA temp_store = MEMORY");
    struct scan s = scan_all(db);
    assert_int_equal(s.rows, ROWS);
    assert_int_equal(s.errors + s.wrong, 0);
    sealvfs_close(&db);
    assert_no_plaintext(path);
}

/* --- backup API ------------------------------------------------------------ */

/* To a plain target: a decrypted export (deliberate).  From a database
 * without the reserve into a sealed one: page 1 is refused, so the backup
 * fails and nothing of the source reaches the sealed files. */
static void test_backup(void **state)
{
    char sealed[256], exported[256], plain[256];
    sqlite3 *db, *raw;
    (void)state;

    db = open_ok(in_root(sealed, sizeof sealed, "backup.db"), key, true);
    fill(db);
    assert_int_equal(sqlite3_open_v2(in_root(exported, sizeof exported, "backup-export.db"), &raw,
                                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "unix"),
                     SQLITE_OK);
    sqlite3_backup *b = sqlite3_backup_init(raw, "main", db, "main");
    assert_non_null(b);
    assert_int_equal(sqlite3_backup_step(b, -1), SQLITE_DONE);
    assert_int_equal(sqlite3_backup_finish(b), SQLITE_OK);
    assert_int_equal(query_int(raw, "SELECT count(*) FROM msg"), ROWS);
    sqlite3_close(raw);
    sealvfs_close(&db);

    assert_int_equal(sqlite3_open_v2(in_root(plain, sizeof plain, "backup-plain.db"), &raw,
                                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "unix"),
                     SQLITE_OK);
    exec_ok(raw, "CREATE TABLE other(x); INSERT INTO other VALUES ('" MARKER "')");
    db = open_ok(sealed, key, false);
    b = sqlite3_backup_init(db, "main", raw, "main");
    assert_non_null(b);
    int rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    assert_int_equal(rc, SQLITE_IOERR_WRITE);
    sqlite3_close(raw);
    assert_no_plaintext(sealed);
    sealvfs_close(&db);
    db = open_ok(sealed, key, false);
    struct scan s = scan_all(db);
    assert_int_equal(s.rows, ROWS);
    assert_int_equal(s.wrong + s.errors, 0);
    sealvfs_close(&db);
}

/* --- plain mode ------------------------------------------------------------ */

static void test_plain_mode(void **state)
{
    char path[256];
    sqlite3 *db, *raw;
    const char *error = NULL;
    (void)state;

    db = open_ok(in_root(path, sizeof path, "plain.db"), NULL, true);
    assert_false(sealvfs_is_sealed(db));
    fill(db);
    assert_string_equal(query_text(db, "PRAGMA journal_mode"), "wal");
    assert_int_equal(query_int(db, "PRAGMA temp_store"), 2);
    assert_int_equal(query_int(db, "PRAGMA secure_delete"), 1);
    sealvfs_close(&db);
    assert_true(file_contains(path, "SQLite format 3", 15));
    assert_true(file_contains(path, MARKER, strlen(MARKER)));

    assert_int_equal(sqlite3_open_v2(path, &raw, SQLITE_OPEN_READONLY, "unix"), SQLITE_OK);
    assert_int_equal(query_int(raw, "SELECT count(*) FROM msg"), ROWS);
    sqlite3_close(raw);
    assert_int_equal(sealvfs_open(path, key, false, &db, &error), -1);
    assert_non_null(strstr(error, "not a sealmail store"));
}

/* --- several connections ----------------------------------------------------- */

static void insert_rows(sqlite3 *db, int who, int count)
{
    char sql[128];
    for (int i = 0; i < count; i++) {
        snprintf(sql, sizeof sql, "BEGIN IMMEDIATE; INSERT INTO w(who, n) VALUES (%d, %d); COMMIT",
                 who, i);
        exec_ok(db, sql);
    }
}

static void test_connections_and_processes(void **state)
{
    char path[256];
    (void)state;

    sqlite3 *a = open_ok(in_root(path, sizeof path, "multi.db"), key, true);
    exec_ok(a, "CREATE TABLE w(who INTEGER, n INTEGER)");
    sqlite3 *b = open_ok(path, key, false);
    insert_rows(a, 1, 10);
    assert_int_equal(query_int(b, "SELECT count(*) FROM w"), 10);
    insert_rows(b, 2, 10);
    assert_int_equal(query_int(a, "SELECT count(*) FROM w"), 20);
    sealvfs_close(&b);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* a second process writing at the same time */
        sqlite3 *c = NULL;
        const char *error;
        if (sealvfs_open(path, key, false, &c, &error) < 0)
            _exit(2);
        for (int i = 0; i < 100; i++) {
            char sql[128];
            snprintf(sql, sizeof sql,
                     "BEGIN IMMEDIATE; INSERT INTO w(who, n) VALUES (3, %d); COMMIT", i);
            if (sqlite3_exec(c, sql, NULL, NULL, NULL) != SQLITE_OK)
                _exit(3);
        }
        sealvfs_close(&c);
        _exit(0);
    }
    insert_rows(a, 1, 100);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(query_int(a, "SELECT count(*) FROM w"), 220);
    assert_int_equal(query_int(a, "SELECT count(*) FROM w WHERE who = 3"), 100);
    assert_string_equal(query_text(a, "PRAGMA integrity_check"), "ok");
    sealvfs_close(&a);
}

/* SQLite reads the page-1 header of a database it opens without a lock,
 * while another process may be checkpointing page 1 into the file: such
 * a read can be torn, and the shim retries it.  A writer checkpointing
 * every few commits, an opener opening over and over: every open works. */
static void test_open_during_checkpoints(void **state)
{
    char path[256];
    int fds[2];
    (void)state;

    sqlite3 *db = open_ok(in_root(path, sizeof path, "ckpt.db"), key, true);
    exec_ok(db, "CREATE TABLE w(who INTEGER, n INTEGER, pad BLOB)");
    sealvfs_close(&db);
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sqlite3 *c = NULL;
        const char *error;
        close(fds[0]);
        if (sealvfs_open(path, key, false, &c, &error) < 0 ||
            sqlite3_exec(c, "PRAGMA wal_autocheckpoint = 4; PRAGMA synchronous = OFF", NULL, NULL,
                         NULL) != SQLITE_OK)
            _exit(2);
        for (int i = 0; i < 3000; i++)
            if (sqlite3_exec(c, "INSERT INTO w VALUES (1, 0, randomblob(3000))", NULL, NULL,
                             NULL) != SQLITE_OK)
                _exit(3);
        sealvfs_close(&c);
        _exit(0);
    }
    close(fds[1]);
    int opens = 0, status;
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    while (poll(&pfd, 1, 0) == 0) { /* until the writer exits (EOF) */
        sqlite3 *r = open_ok(path, key, false);
        (void)query_int(r, "SELECT count(*) FROM w");
        sealvfs_close(&r);
        opens++;
    }
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    db = open_ok(path, key, false);
    assert_int_equal(query_int(db, "SELECT count(*) FROM w"), 3000);
    assert_string_equal(query_text(db, "PRAGMA integrity_check"), "ok");
    sealvfs_close(&db);
    print_message("sealvfs: %d opens while the writer checkpointed\n", opens);
}

/* Two threads create the same new store at the same moment: whichever
 * writes page 1 first chooses the id, and the other adopts it. */
struct creator {
    const char *path;
    pthread_barrier_t *barrier;
    int who, result;
    char error[256];
};

static void *create_and_write(void *arg)
{
    struct creator *c = arg;
    sqlite3 *db = NULL;
    const char *error;
    char sql[160];

    pthread_barrier_wait(c->barrier);
    c->result = -1;
    if (sealvfs_open(c->path, key, true, &db, &error) < 0) {
        snprintf(c->error, sizeof c->error, "%s", error);
        return NULL;
    }
    snprintf(sql, sizeof sql,
             "CREATE TABLE IF NOT EXISTS w(who INTEGER, n INTEGER);"
             "BEGIN IMMEDIATE; INSERT INTO w VALUES (%d, 0); COMMIT",
             c->who);
    c->result = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sealvfs_close(&db);
    return NULL;
}

static void test_concurrent_create(void **state)
{
    char path[256], name[64];
    pthread_barrier_t barrier;
    (void)state;

    pthread_barrier_init(&barrier, NULL, 2);
    for (int round = 0; round < 20; round++) {
        snprintf(name, sizeof name, "race-%d.db", round);
        in_root(path, sizeof path, name);
        struct creator c[2] = {{path, &barrier, 1, -1, ""}, {path, &barrier, 2, -1, ""}};
        pthread_t th[2];
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&th[i], NULL, create_and_write, &c[i]), 0);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        for (int i = 0; i < 2; i++)
            if (c[i].result != SQLITE_OK)
                fail_msg("round %d, thread %d: %d %s", round, i, c[i].result, c[i].error);
        sqlite3 *db = open_ok(path, key, false);
        assert_int_equal(query_int(db, "SELECT count(*) FROM w"), 2);
        assert_string_equal(query_text(db, "PRAGMA integrity_check"), "ok");
        sealvfs_close(&db);
    }
    pthread_barrier_destroy(&barrier);
}

/* --- kill -9 ---------------------------------------------------------------- */

struct crash_mode {
    const char *label;
    bool wal;
    bool small_cache; /* cache_size=10: pages spill before the commit */
    int rows;         /* per transaction */
    int payload;      /* bytes per row */
};

static const struct crash_mode crash_modes[] = {
    {"wal", true, false, 20, 200},
    {"wal, cache_size=10", true, true, 150, 300},
    {"rollback journal", false, false, 20, 200},
    {"rollback journal, cache_size=10", false, true, 150, 300},
};

static const char crash_schema[] =
    "CREATE TABLE r(id INTEGER PRIMARY KEY, it INTEGER NOT NULL, txn INTEGER NOT NULL,"
    "  k INTEGER NOT NULL, hits INTEGER NOT NULL DEFAULT 0, pad BLOB);"
    "CREATE INDEX r_it ON r(it, txn);"
    "CREATE TABLE state(id INTEGER PRIMARY KEY CHECK (id = 1), it INTEGER, txn INTEGER);"
    "INSERT INTO state VALUES (1, 0, 0);";

/* One transaction of round it: rows new rows, the previous transaction's
 * rows touched, the state row set.  0 or an SQLite error code. */
static int crash_txn(sqlite3 *db, sqlite3_stmt *ins, int it, int txn, const struct crash_mode *m)
{
    char sql[160];
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (int k = 0; k < m->rows && rc == SQLITE_OK; k++) {
        sqlite3_bind_int(ins, 1, it);
        sqlite3_bind_int(ins, 2, txn);
        sqlite3_bind_int(ins, 3, k);
        sqlite3_bind_int(ins, 4, m->payload);
        rc = sqlite3_step(ins) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        sqlite3_reset(ins);
    }
    snprintf(sql, sizeof sql,
             "UPDATE r SET hits = hits + 1 WHERE it = %d AND txn = %d;"
             "UPDATE state SET it = %d, txn = %d WHERE id = 1;"
             "COMMIT",
             it, txn - 1, it, txn);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return rc;
}

/* The child: commit transactions until killed, reporting each number
 * after COMMIT has returned.  Never returns. */
static _Noreturn void crash_child(const char *path, int wfd, int it, const struct crash_mode *m)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *ins;
    const char *error;

    if (sealvfs_open(path, key, false, &db, &error) < 0) {
        fprintf(stderr, "crash child: %s\n", error);
        _exit(2);
    }
    if (!m->wal && sqlite3_exec(db, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL) != SQLITE_OK)
        _exit(3);
    if (m->small_cache && sqlite3_exec(db, "PRAGMA cache_size = 10", NULL, NULL, NULL) != SQLITE_OK)
        _exit(3);
    if (sqlite3_prepare_v2(db, "INSERT INTO r(it, txn, k, pad) VALUES (?1, ?2, ?3, randomblob(?4))",
                           -1, &ins, NULL) != SQLITE_OK)
        _exit(3);
    int opened = 0;
    if (write(wfd, &opened, sizeof opened) != sizeof opened)
        _exit(5);
    for (int txn = 1; txn < 100000; txn++) {
        int rc = crash_txn(db, ins, it, txn, m);
        if (rc != SQLITE_OK) {
            fprintf(stderr, "crash child: txn %d: %s\n", txn, sqlite3_errmsg(db));
            _exit(4);
        }
        if (write(wfd, &txn, sizeof txn) != sizeof txn)
            _exit(5);
    }
    _exit(0);
}

/* After the kill: every reported transaction is there, each one whole,
 * nothing of a transaction that did not commit. */
static void crash_check(const char *path, int it, int reported, const struct crash_mode *m)
{
    char sql[200];
    sqlite3 *db = open_ok(path, key, false);

    assert_string_equal(query_text(db, "PRAGMA integrity_check"), "ok");
    int64_t state_it = query_int(db, "SELECT it FROM state");
    int64_t committed = state_it == it ? query_int(db, "SELECT txn FROM state") : 0;
    if (committed < reported || committed > reported + 1)
        fail_msg("%s round %d: reported %d, found %lld", m->label, it, reported,
                 (long long)committed);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM r WHERE it = %d", it);
    assert_int_equal(query_int(db, sql), committed * m->rows);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM r WHERE it = %d AND (txn > %lld OR hits != (txn < %lld))", it,
             (long long)committed, (long long)committed);
    assert_int_equal(query_int(db, sql), 0);
    snprintf(sql, sizeof sql, "DELETE FROM r WHERE it = %d", it);
    exec_ok(db, sql);
    sealvfs_close(&db);
}

/* Did the killed writer leave something to recover? */
static bool left_hot_file(const char *path)
{
    char name[300];
    snprintf(name, sizeof name, "%s-wal", path);
    if (file_size(name) > 32)
        return true;
    snprintf(name, sizeof name, "%s-journal", path);
    return file_size(name) > 0;
}

struct crash_stats {
    int rounds, hot, committed, empty; /* empty: killed before any commit */
};

/* One round: fork the writer, kill it delay_us after it has opened the
 * store (or, when blind, after the fork: the kill may then land in the
 * open and its recovery), check. */
static void crash_round(const char *path, int it, const struct crash_mode *m, long delay_us,
                        bool blind, struct crash_stats *st)
{
    int fds[2], status, n, reported = 0;

    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        crash_child(path, fds[1], it, m);
    }
    close(fds[1]);
    if (!blind) /* the writer's first message: opened (0), or EOF */
        (void)!read(fds[0], &n, sizeof n);
    struct timespec ts = {delay_us / 1000000, (delay_us % 1000000) * 1000};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    while (read(fds[0], &n, sizeof n) == sizeof n)
        reported = n;
    close(fds[0]);
    if (!WIFSIGNALED(status))
        fail_msg("%s round %d: the writer failed (status %d)", m->label, it, status);
    st->rounds++;
    st->hot += left_hot_file(path);
    st->committed += reported;
    st->empty += reported == 0;
    crash_check(path, it, reported, m);
}

static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? atoi(v) : dflt;
}

static void test_crash_kill9(void **state)
{
    char path[256];
    (void)state;
    int wal_rounds = env_int("SEALVFS_CRASH_ITERATIONS", 200);
    int journal_rounds = wal_rounds / 5;
    unsigned seed = (unsigned)env_int("SEALVFS_CRASH_SEED", 1);
    struct crash_stats st[4];
    time_t start = time(NULL);

    memset(st, 0, sizeof st);

    sqlite3 *db = open_ok(in_root(path, sizeof path, "crash.db"), key, true);
    exec_ok(db, crash_schema);
    sealvfs_close(&db);
    for (int it = 1; it <= wal_rounds + journal_rounds; it++) {
        size_t mi = (it <= wal_rounds ? 0 : 2) + (it % 3 == 0);
        bool blind = it % 4 == 0;
        long delay_us = (blind ? 5000 : 500) + (long)(rand_r(&seed) % 30000);
        crash_round(path, it, &crash_modes[mi], delay_us, blind, &st[mi]);
    }
    for (size_t mi = 0; mi < 4; mi++)
        print_message("sealvfs crash: %-32s %3d rounds, %3d left a hot WAL/journal, "
                      "%4d commits reported and found, %2d rounds killed before one\n",
                      crash_modes[mi].label, st[mi].rounds, st[mi].hot, st[mi].committed,
                      st[mi].empty);
    print_message("sealvfs crash: %d rounds in %ld s\n", wal_rounds + journal_rounds,
                  (long)(time(NULL) - start));
    assert_true(st[0].hot + st[1].hot > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_plaintext_on_disk),
        cmocka_unit_test(test_wrong_key_and_other_openers),
        cmocka_unit_test(test_flipped_bytes_in_pages),
        cmocka_unit_test(test_flipped_wal_frame_recovery),
        cmocka_unit_test(test_flipped_wal_frame_read),
        cmocka_unit_test(test_rollback_journal),
        cmocka_unit_test(test_vacuum),
        cmocka_unit_test(test_page_sizes),
        cmocka_unit_test(test_temp_files_never_plaintext),
        cmocka_unit_test(test_backup),
        cmocka_unit_test(test_plain_mode),
        cmocka_unit_test(test_connections_and_processes),
        cmocka_unit_test(test_open_during_checkpoints),
        cmocka_unit_test(test_concurrent_create),
        cmocka_unit_test(test_crash_kill9),
    };
    const char *only = getenv("SEALVFS_TEST"); /* run one test by name */
    if (only != NULL && *only != '\0')
        cmocka_set_test_filter(only);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
