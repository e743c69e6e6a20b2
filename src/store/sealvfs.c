/* sealvfs.c — a VFS shim that seals every SQLite page (see sealvfs.h).
 *
 * Why a shim: Debian's libsqlite3 has no codec hooks (SQLITE_HAS_CODEC is
 * gone since 3.32), and sealmail uses only system libraries.  So the shim
 * sits between SQLite and the "unix" VFS and recognises pages by the size
 * and offset of each read and write.  The recipe, the SQLite 3.40.1 I/O
 * patterns it depends on and the prototype's results are in
 * engineering-notes §1; the crash test must be re-run on every SQLite
 * upgrade because those patterns are not a documented interface.
 *
 * Page format.  Every page ends in 40 reserved bytes (header byte 20):
 * a random 24-byte XChaCha20 nonce and the 16-byte Poly1305 tag.  The
 * rest is ciphertext, except on page 1, where bytes 0..7 are our magic,
 * 8..15 a random database id (both replace "SQLite format 3") and 16..23
 * stay plaintext (page size, reserve: SQLite reads them before anything
 * can be decrypted).  The associated data is the big-endian page number,
 * plus bytes 0..23 on page 1, so a page cannot move, and the header, id
 * and reserve cannot be changed unnoticed.  The page key is
 * crypto_kdf(master, database id), so pages cannot move between files
 * either.  Random nonces need no counter, which a VFS could not keep
 * crash-safely; 192 bits make collisions negligible.
 *
 * Invariants the crash safety rests on:
 *   - encrypt into a scratch buffer, never in SQLite's buffer (SQLite
 *     keeps using it, and computes WAL checksums over it);
 *   - zero the 40 reserved bytes after every successful decrypt, so the
 *     plaintext SQLite checksums is the same whether it wrote the page or
 *     read it back (otherwise WAL recovery discards every frame);
 *   - report POWERSAFE_OVERWRITE, so the WAL never splits a page write;
 *     mask ATOMIC*, SAFE_APPEND and BATCH_ATOMIC, so journals stay files
 *     written in the shapes below;
 *   - fail closed: a write that is not a recognised page or header is
 *     refused (SQLITE_IOERR_WRITE) instead of reaching the disk.
 *
 * Files, by open flag:
 *   MAIN_DB       pages at offset (pgno-1)*size; reads of 16 or 100 bytes
 *                 inside page 1 are served by decrypting the whole page.
 *   WAL           32-byte header and 24-byte frame headers in clear (they
 *                 hold a checksum of the plaintext: a known residual leak);
 *                 the page number of a frame comes from its header.  A
 *                 recovery read (header + page) that fails to authenticate
 *                 gets its checksum inverted, so SQLite ends the log there
 *                 as it would after a torn write.
 *   MAIN_JOURNAL  records pgno(4) | page | cksum(4) after sector-aligned
 *                 headers: page data sits at offsets = 4 (mod 8), headers
 *                 at multiples of 512.
 *   SUPER_JOURNAL passed through (it only holds file names).  A main
 *                 journal records that name too, behind a page number no
 *                 page has (PAGER_SJ_PGNO): passed through; a name of 512
 *                 bytes or more that is not page-sized is refused.
 *                 (Multi-database commits need ATTACH, which the
 *                 authorizer and the key lookup refuse anyway.)
 *   anything else refused (SQLITE_CANTOPEN): temp databases, temp and
 *                 statement journals never exist with temp_store=MEMORY,
 *                 and a forgotten pragma becomes an error, not a leak.
 *
 * Keys.  The master key reaches xOpen through a thread-local slot that
 * sealvfs_open() fills, for one full path name, just around
 * sqlite3_open_v2() (the main file is opened synchronously on the calling
 * thread).  Thread-local rather than a shared registry: another thread
 * opening the same path at that moment cannot pick up this key.  The main
 * file copies the key into sodium_malloc memory and wipes it in xClose.
 * WAL and journal files find their main file with
 * sqlite3_database_file_object() on the name SQLite passes to xOpen.
 * VACUUM INTO fills the same slot for the target name (see
 * sealvfs_vacuum_into()); any other main file opened through the shim has
 * no key and is refused.
 *
 * The page size is taken from each access, never assumed.  An in-place
 * VACUUM to another page size is refused (SQLite's backup packs several
 * new pages into one old page) and changes nothing; VACUUM INTO builds
 * its copy page by page and can change it.
 *
 * A new, empty file gets a random id when opened; if another connection
 * creates the database first, the first page 1 this connection reads
 * supplies the id instead.  Once a connection has read or written page 1,
 * its id is fixed and a page 1 carrying another id is an error. */
#include "store/sealvfs.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/bytes.h"
#include "core/mem.h"
#include "crypto/seal.h"

#define RESERVE SEALVFS_RESERVE_BYTES
#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES /* 24 */
#define TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES      /* 16 */
#define HEADER_BYTES 24 /* page-1 bytes in clear: magic, id, SQLite fields */
#define MIN_PAGE 512
#define MAX_PAGE 65536
#define WAL_HEADER 32
#define FRAME_HEADER 24
#define SECTOR_ALIGN 512
#define PENDING_BYTE_OFFSET 0x40000000 /* SQLite's default PENDING_BYTE */
#define PAGE1_TRIES 3
#define PAGE1_RETRY_US 100
#define BUSY_TIMEOUT_MS 5000
#define KDF_CONTEXT "sealdb01"

static const uint8_t magic[8] = {'s', 'e', 'a', 'l', 'm', 'd', 'b', 1};
static const char sqlite_magic[16] = "SQLite format 3"; /* with its NUL */

_Static_assert(NONCE_BYTES + TAG_BYTES == RESERVE, "reserve holds nonce and tag");
_Static_assert(SEALVFS_KEY_BYTES == crypto_kdf_KEYBYTES, "master key is a kdf key");

enum sv_kind { SV_MAIN, SV_WAL, SV_JOURNAL, SV_PASS };

/* Secrets of one main database file, in sodium_malloc memory. */
struct sv_keys {
    uint8_t master[SEALVFS_KEY_BYTES];
    uint8_t key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES]; /* for dbid */
    uint8_t spare[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
};

struct sv_file {
    sqlite3_file base;
    sqlite3_file *lower; /* the unix file, stored right after this struct */
    enum sv_kind kind;
    struct sv_file *db;   /* the main database file (itself for SV_MAIN) */
    struct sv_keys *keys; /* SV_MAIN only */
    uint8_t dbid[8];      /* SV_MAIN: the id the page key is derived from */
    bool id_fixed;        /* SV_MAIN: dbid read from or written to page 1 */
    uint8_t *scratch;     /* ciphertext of the page being written */
    size_t scratch_len;
    bool have_mark; /* WAL: last frame header; journal: last 4-byte write */
    sqlite3_int64 mark_off;
    uint32_t mark_pgno;
};

#define SV_FILE_SIZE ((sizeof(struct sv_file) + 15) & ~(size_t)15)

/* The key for the next main file opened on this thread (see file comment). */
static _Thread_local struct {
    const char *path;
    const uint8_t *master;
} pending;

static sqlite3_vfs sv_vfs;
static const sqlite3_io_methods sv_io;
static pthread_once_t register_once = PTHREAD_ONCE_INIT;
static int register_rc = SQLITE_ERROR;

static sqlite3_vfs *lower_vfs(void)
{
    return sv_vfs.pAppData;
}

/* --- small helpers ------------------------------------------------------ */

/* A page size SQLite can use: a power of two in [512, 65536]. */
static bool is_page_size(sqlite3_int64 n)
{
    return n >= MIN_PAGE && n <= MAX_PAGE && (n & (n - 1)) == 0;
}

/* The page size recorded in a page-1 header (bytes 16-17), or 0. */
static uint32_t header_page_size(const uint8_t *hdr)
{
    uint32_t n = (uint32_t)hdr[16] << 8 | hdr[17];
    if (n == 1)
        n = MAX_PAGE;
    return is_page_size(n) ? n : 0;
}

/* Is hdr (24 bytes) a page-1 header of ours with enough reserve? */
static bool header_ok(const uint8_t *hdr)
{
    return memcmp(hdr, magic, sizeof magic) == 0 && header_page_size(hdr) != 0 &&
           hdr[20] >= RESERVE;
}

/* The pager writes the super-journal name where a record's page number
 * would be, tagged with this page number (PAGER_SJ_PGNO). */
static uint32_t super_journal_pgno(sqlite3_int64 page_size)
{
    return (uint32_t)(PENDING_BYTE_OFFSET / page_size) + 1;
}

static uint8_t *scratch(struct sv_file *f, size_t n)
{
    if (f->scratch_len < n) {
        sm_freep(&f->scratch);
        f->scratch = sm_malloc(n);
        f->scratch_len = n;
    }
    return f->scratch;
}

static int lower_read(struct sv_file *f, void *buf, int amt, sqlite3_int64 off)
{
    return f->lower->pMethods->xRead(f->lower, buf, amt, off);
}

static int lower_write(struct sv_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    return f->lower->pMethods->xWrite(f->lower, buf, amt, off);
}

/* The big-endian 32-bit number at off, as written by SQLite (a frame's or
 * a journal record's page number); 0 when it cannot be read. */
static uint32_t read_pgno(struct sv_file *f, sqlite3_int64 off)
{
    uint8_t b[4];
    if (off < 0 || lower_read(f, b, sizeof b, off) != SQLITE_OK)
        return 0;
    return sm_get_be32(b);
}

/* --- page sealing --------------------------------------------------------- */

static void derive_key(uint8_t *out, const uint8_t *master, const uint8_t id[8])
{
    uint64_t sub = 0;
    for (int i = 0; i < 8; i++)
        sub |= (uint64_t)id[i] << (8 * i);
    crypto_kdf_derive_from_key(out, crypto_aead_xchacha20poly1305_ietf_KEYBYTES, sub, KDF_CONTEXT,
                               master);
}

/* Associated data: big-endian pgno, plus the clear page-1 header. */
static size_t page_ad(uint8_t ad[8 + HEADER_BYTES], uint32_t pgno, const uint8_t *hdr)
{
    memset(ad, 0, 4);
    ad[4] = (uint8_t)(pgno >> 24), ad[5] = (uint8_t)(pgno >> 16);
    ad[6] = (uint8_t)(pgno >> 8), ad[7] = (uint8_t)pgno;
    if (hdr == NULL)
        return 8;
    memcpy(ad + 8, hdr, HEADER_BYTES);
    return 8 + HEADER_BYTES;
}

/* Seal plaintext page pgno (n bytes at in) into out, for database db.
 * Returns 0, or -1 for a page 1 this format cannot hold (reserve too
 * small, page size not n): the caller refuses the write. */
static int seal_page(struct sv_file *db, uint32_t pgno, const uint8_t *in, uint8_t *out, size_t n)
{
    uint8_t ad[8 + HEADER_BYTES];
    size_t body = n - RESERVE, skip = 0, adlen;

    if (pgno == 1) {
        if (in[20] < RESERVE || header_page_size(in) != n)
            return -1;
        memcpy(out, magic, sizeof magic);
        memcpy(out + 8, db->dbid, sizeof db->dbid);
        memcpy(out + 16, in + 16, HEADER_BYTES - 16);
        db->id_fixed = true;
        skip = HEADER_BYTES;
    }
    adlen = page_ad(ad, pgno, pgno == 1 ? out : NULL);
    randombytes_buf(out + body, NONCE_BYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(out + skip, out + body + NONCE_BYTES, NULL,
                                                        in + skip, body - skip, ad, adlen, NULL,
                                                        out + body, db->keys->key);
    return 0;
}

/* The key page 1 in buf was sealed with: db's, or, while db's id is not
 * fixed yet, one derived (into spare) from the id buf carries.  NULL if
 * the page cannot be ours. */
static const uint8_t *page1_key(struct sv_file *db, const uint8_t *buf)
{
    if (memcmp(buf, magic, sizeof magic) != 0)
        return NULL;
    if (memcmp(buf + 8, db->dbid, sizeof db->dbid) == 0)
        return db->keys->key;
    if (db->id_fixed)
        return NULL; /* a page 1 of another database */
    derive_key(db->keys->spare, db->keys->master, buf + 8);
    return db->keys->spare;
}

/* Authenticate and decrypt page pgno (n bytes) in place.  On success the
 * reserve is zeroed and page 1 gets SQLite's magic back.  Returns 0, or -1
 * (buf then holds nothing usable). */
static int open_page(struct sv_file *db, uint32_t pgno, uint8_t *buf, size_t n)
{
    uint8_t ad[8 + HEADER_BYTES];
    const uint8_t *key = db->keys->key;
    size_t body = n - RESERVE, skip = 0, adlen;

    if (pgno == 0)
        return -1;
    if (pgno == 1) {
        if (header_page_size(buf) != n || (key = page1_key(db, buf)) == NULL)
            return -1;
        skip = HEADER_BYTES;
    }
    adlen = page_ad(ad, pgno, pgno == 1 ? buf : NULL);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(buf + skip, NULL, buf + skip,
                                                            body - skip, buf + body + NONCE_BYTES,
                                                            ad, adlen, buf + body, key) != 0)
        return -1;
    sodium_memzero(buf + body, RESERVE);
    if (pgno == 1) {
        if (key == db->keys->spare) { /* adopt the id another connection chose */
            memcpy(db->keys->key, db->keys->spare, sizeof db->keys->key);
            memcpy(db->dbid, ad + 8 + 8, sizeof db->dbid);
        }
        db->id_fixed = true;
        memcpy(buf, sqlite_magic, sizeof sqlite_magic);
    }
    return 0;
}

/* --- main database file --------------------------------------------------- */

/* One attempt at a read inside page 1: a whole-page read, or the 16- and
 * 100-byte header reads SQLite makes before it knows the page size. */
static int page1_read_once(struct sv_file *f, uint8_t *buf, int amt, sqlite3_int64 off)
{
    uint8_t hdr[HEADER_BYTES];
    int rc = lower_read(f, hdr, sizeof hdr, 0);

    if (rc == SQLITE_IOERR_SHORT_READ && sodium_is_zero(hdr, sizeof hdr)) {
        memset(buf, 0, (size_t)amt); /* an empty database */
        return SQLITE_IOERR_SHORT_READ;
    }
    if (rc != SQLITE_OK)
        return rc == SQLITE_IOERR_SHORT_READ ? SQLITE_IOERR_DATA : rc;
    uint32_t n = header_page_size(hdr);
    if (n == 0)
        return SQLITE_IOERR_DATA;
    if (off + amt > n)
        return SQLITE_IOERR_READ;
    uint8_t *page = off == 0 && (uint32_t)amt == n ? buf : scratch(f, n);
    rc = lower_read(f, page, (int)n, 0);
    if (rc == SQLITE_OK && open_page(f, 1, page, n) < 0)
        rc = SQLITE_IOERR_DATA;
    else if (rc == SQLITE_IOERR_SHORT_READ)
        rc = SQLITE_IOERR_DATA;
    if (rc == SQLITE_OK && page != buf)
        memcpy(buf, page + off, (size_t)amt);
    if (page != buf)
        sodium_memzero(page, n);
    if (rc != SQLITE_OK)
        memset(buf, 0, (size_t)amt);
    return rc;
}

/* Page 1 is the one page SQLite reads without a lock (the header, when a
 * connection opens), so a checkpoint in another process or a creator may
 * be writing it at that moment and the read can be torn (seen in
 * test_open_during_checkpoints): an authentication failure is retried a
 * few times, 100 us apart.  Tampering fails every time. */
static int page1_read(struct sv_file *f, uint8_t *buf, int amt, sqlite3_int64 off)
{
    int rc = page1_read_once(f, buf, amt, off);
    for (int i = 1; i < PAGE1_TRIES && rc == SQLITE_IOERR_DATA; i++) {
        lower_vfs()->xSleep(lower_vfs(), PAGE1_RETRY_US);
        rc = page1_read_once(f, buf, amt, off);
    }
    return rc;
}

static int main_read(struct sv_file *f, uint8_t *buf, int amt, sqlite3_int64 off)
{
    if (off == 0 || !is_page_size(amt) || off % amt != 0)
        return page1_read(f, buf, amt, off);
    int rc = lower_read(f, buf, amt, off);
    if (rc == SQLITE_IOERR_SHORT_READ && sodium_is_zero(buf, (size_t)amt))
        return rc; /* past the end: SQLite takes zeros */
    if (rc == SQLITE_IOERR_SHORT_READ)
        rc = SQLITE_IOERR_DATA; /* a page cut short */
    if (rc == SQLITE_OK && open_page(f, (uint32_t)(off / amt + 1), buf, (size_t)amt) < 0)
        rc = SQLITE_IOERR_DATA;
    if (rc != SQLITE_OK)
        memset(buf, 0, (size_t)amt);
    return rc;
}

static int main_write(struct sv_file *f, const uint8_t *buf, int amt, sqlite3_int64 off)
{
    if (!is_page_size(amt) || off % amt != 0 || off / amt >= UINT32_MAX)
        return SQLITE_IOERR_WRITE;
    uint8_t *out = scratch(f, (size_t)amt);
    if (seal_page(f, (uint32_t)(off / amt + 1), buf, out, (size_t)amt) < 0)
        return SQLITE_IOERR_WRITE;
    return lower_write(f, out, amt, off);
}

/* --- WAL ------------------------------------------------------------------ */

/* Offsets of frame i (0-based) of a WAL with n-byte pages: header at
 * 32 + i*(n+24), page at 32 + i*(n+24) + 24.  Page size is taken from the
 * access itself, so nothing depends on having seen the WAL header. */
static bool is_frame_page(int amt, sqlite3_int64 off)
{
    return is_page_size(amt) && off >= WAL_HEADER + FRAME_HEADER &&
           (off - WAL_HEADER - FRAME_HEADER) % (amt + FRAME_HEADER) == 0;
}

static bool is_whole_frame(int amt, sqlite3_int64 off)
{
    return is_page_size(amt - FRAME_HEADER) && off >= WAL_HEADER && (off - WAL_HEADER) % amt == 0;
}

static int wal_write(struct sv_file *f, const uint8_t *buf, int amt, sqlite3_int64 off)
{
    if (amt == WAL_HEADER && off == 0)
        return lower_write(f, buf, amt, off);
    if (amt == FRAME_HEADER && off >= WAL_HEADER) {
        f->have_mark = true, f->mark_off = off, f->mark_pgno = sm_get_be32(buf);
        return lower_write(f, buf, amt, off);
    }
    if (!is_frame_page(amt, off))
        return SQLITE_IOERR_WRITE;
    /* a new frame follows its header; a frame rewritten in the same
     * transaction keeps the header already on disk */
    uint32_t pgno = f->have_mark && f->mark_off == off - FRAME_HEADER
                        ? f->mark_pgno
                        : read_pgno(f, off - FRAME_HEADER);
    uint8_t *out = scratch(f, (size_t)amt);
    if (pgno == 0 || seal_page(f->db, pgno, buf, out, (size_t)amt) < 0)
        return SQLITE_IOERR_WRITE;
    return lower_write(f, out, amt, off);
}

/* Recovery and checksum rewriting read header and page together.  A frame
 * that does not authenticate is reported as SQLite reports a torn frame:
 * its stored checksum no longer matches (bytes 16..23 inverted). */
static int wal_read_frame(struct sv_file *f, uint8_t *buf, int amt, sqlite3_int64 off)
{
    int rc = lower_read(f, buf, amt, off);
    if (rc != SQLITE_OK)
        return rc;
    uint8_t *page = buf + FRAME_HEADER;
    if (open_page(f->db, sm_get_be32(buf), page, (size_t)amt - FRAME_HEADER) < 0) {
        memset(page, 0, (size_t)amt - FRAME_HEADER);
        for (int i = 16; i < 24; i++)
            buf[i] = (uint8_t)~buf[i];
    }
    return SQLITE_OK;
}

static int wal_read(struct sv_file *f, uint8_t *buf, int amt, sqlite3_int64 off)
{
    if (is_whole_frame(amt, off))
        return wal_read_frame(f, buf, amt, off);
    if (!is_frame_page(amt, off)) /* headers, checksums */
        return amt < MIN_PAGE ? lower_read(f, buf, amt, off) : SQLITE_IOERR_READ;
    uint32_t pgno = read_pgno(f, off - FRAME_HEADER);
    int rc = lower_read(f, buf, amt, off);
    if (rc == SQLITE_IOERR_SHORT_READ)
        rc = SQLITE_IOERR_DATA; /* a frame the wal-index lists must exist */
    if (rc == SQLITE_OK && open_page(f->db, pgno, buf, (size_t)amt) < 0)
        rc = SQLITE_IOERR_DATA;
    if (rc != SQLITE_OK)
        memset(buf, 0, (size_t)amt);
    return rc;
}

/* --- rollback journal ----------------------------------------------------- */

static bool is_record_page(int amt, sqlite3_int64 off)
{
    return is_page_size(amt) && off >= 4 && off % 8 == 4;
}

static int journal_write(struct sv_file *f, const uint8_t *buf, int amt, sqlite3_int64 off)
{
    if (amt == 4) { /* a record's page number or checksum, nRec */
        f->have_mark = true, f->mark_off = off, f->mark_pgno = sm_get_be32(buf);
        return lower_write(f, buf, amt, off);
    }
    if (is_record_page(amt, off)) {
        uint32_t pgno =
            f->have_mark && f->mark_off == off - 4 ? f->mark_pgno : read_pgno(f, off - 4);
        if (pgno == super_journal_pgno(amt))
            return lower_write(f, buf, amt, off); /* a super-journal name */
        uint8_t *out = scratch(f, (size_t)amt);
        if (pgno == 0 || seal_page(f->db, pgno, buf, out, (size_t)amt) < 0)
            return SQLITE_IOERR_WRITE;
        return lower_write(f, out, amt, off);
    }
    if (amt < MIN_PAGE || off % SECTOR_ALIGN == 0) /* headers, nRec, names */
        return lower_write(f, buf, amt, off);
    return SQLITE_IOERR_WRITE;
}

/* A record that does not authenticate is an error, not the end of the
 * journal: with synchronous=FULL every record the header counts was
 * synced before the database was touched, so only tampering or media
 * damage gets here, and stopping the rollback would leave a mixture. */
static int journal_read(struct sv_file *f, uint8_t *buf, int amt, sqlite3_int64 off)
{
    if (!is_record_page(amt, off))
        return lower_read(f, buf, amt, off); /* headers, names: clear */
    uint32_t pgno = read_pgno(f, off - 4);
    int rc = lower_read(f, buf, amt, off);
    if (rc == SQLITE_IOERR_SHORT_READ)
        memset(buf, 0, (size_t)amt); /* a cut journal: SQLite ends playback */
    if (rc != SQLITE_OK || pgno == super_journal_pgno(amt))
        return rc;
    if (open_page(f->db, pgno, buf, (size_t)amt) < 0) {
        memset(buf, 0, (size_t)amt);
        return SQLITE_IOERR_DATA;
    }
    return SQLITE_OK;
}

/* --- sqlite3_io_methods ---------------------------------------------------- */

static int sv_close(sqlite3_file *pf)
{
    struct sv_file *f = (struct sv_file *)pf;
    int rc = f->lower->pMethods != NULL ? f->lower->pMethods->xClose(f->lower) : SQLITE_OK;
    seal_secret_free(&f->keys);
    sm_freep(&f->scratch);
    f->scratch_len = 0;
    return rc;
}

static int sv_read(sqlite3_file *pf, void *buf, int amt, sqlite3_int64 off)
{
    struct sv_file *f = (struct sv_file *)pf;
    switch (f->kind) {
    case SV_MAIN:
        return main_read(f, buf, amt, off);
    case SV_WAL:
        return wal_read(f, buf, amt, off);
    case SV_JOURNAL:
        return journal_read(f, buf, amt, off);
    case SV_PASS:
        break;
    }
    return lower_read(f, buf, amt, off);
}

static int sv_write(sqlite3_file *pf, const void *buf, int amt, sqlite3_int64 off)
{
    struct sv_file *f = (struct sv_file *)pf;
    switch (f->kind) {
    case SV_MAIN:
        return main_write(f, buf, amt, off);
    case SV_WAL:
        return wal_write(f, buf, amt, off);
    case SV_JOURNAL:
        return journal_write(f, buf, amt, off);
    case SV_PASS:
        break;
    }
    return lower_write(f, buf, amt, off);
}

#define LOWER(pf) (((struct sv_file *)(pf))->lower)

static int sv_truncate(sqlite3_file *pf, sqlite3_int64 size)
{
    return LOWER(pf)->pMethods->xTruncate(LOWER(pf), size);
}

static int sv_sync(sqlite3_file *pf, int flags)
{
    return LOWER(pf)->pMethods->xSync(LOWER(pf), flags);
}

static int sv_file_size(sqlite3_file *pf, sqlite3_int64 *size)
{
    return LOWER(pf)->pMethods->xFileSize(LOWER(pf), size);
}

static int sv_lock(sqlite3_file *pf, int lock)
{
    return LOWER(pf)->pMethods->xLock(LOWER(pf), lock);
}

static int sv_unlock(sqlite3_file *pf, int lock)
{
    return LOWER(pf)->pMethods->xUnlock(LOWER(pf), lock);
}

static int sv_check_reserved_lock(sqlite3_file *pf, int *out)
{
    return LOWER(pf)->pMethods->xCheckReservedLock(LOWER(pf), out);
}

static int sv_file_control(sqlite3_file *pf, int op, void *arg)
{
    switch (op) {
    case SQLITE_FCNTL_BEGIN_ATOMIC_WRITE:
    case SQLITE_FCNTL_COMMIT_ATOMIC_WRITE:
    case SQLITE_FCNTL_ROLLBACK_ATOMIC_WRITE:
        return SQLITE_NOTFOUND; /* never advertised: see sv_device_characteristics */
    case SQLITE_FCNTL_VFSNAME: {
        int rc = LOWER(pf)->pMethods->xFileControl(LOWER(pf), op, arg);
        if (rc == SQLITE_OK && *(char **)arg != NULL)
            *(char **)arg = sqlite3_mprintf("%s/%z", SEALVFS_NAME, *(char **)arg);
        return rc;
    }
    default:
        return LOWER(pf)->pMethods->xFileControl(LOWER(pf), op, arg);
    }
}

static int sv_sector_size(sqlite3_file *pf)
{
    return LOWER(pf)->pMethods->xSectorSize(LOWER(pf));
}

static int sv_device_characteristics(sqlite3_file *pf)
{
    int dc = LOWER(pf)->pMethods->xDeviceCharacteristics(LOWER(pf));
    dc &= ~(SQLITE_IOCAP_ATOMIC | SQLITE_IOCAP_ATOMIC512 | SQLITE_IOCAP_ATOMIC1K |
            SQLITE_IOCAP_ATOMIC2K | SQLITE_IOCAP_ATOMIC4K | SQLITE_IOCAP_ATOMIC8K |
            SQLITE_IOCAP_ATOMIC16K | SQLITE_IOCAP_ATOMIC32K | SQLITE_IOCAP_ATOMIC64K |
            SQLITE_IOCAP_SAFE_APPEND | SQLITE_IOCAP_BATCH_ATOMIC);
    return dc | SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}

/* The wal-index holds page numbers, salts and checksums, never content. */
static int sv_shm_map(sqlite3_file *pf, int region, int size, int extend, void volatile **pp)
{
    return LOWER(pf)->pMethods->xShmMap(LOWER(pf), region, size, extend, pp);
}

static int sv_shm_lock(sqlite3_file *pf, int offset, int n, int flags)
{
    return LOWER(pf)->pMethods->xShmLock(LOWER(pf), offset, n, flags);
}

static void sv_shm_barrier(sqlite3_file *pf)
{
    LOWER(pf)->pMethods->xShmBarrier(LOWER(pf));
}

static int sv_shm_unmap(sqlite3_file *pf, int delete_flag)
{
    return LOWER(pf)->pMethods->xShmUnmap(LOWER(pf), delete_flag);
}

/* Memory-mapped pages would hand SQLite ciphertext: always decline. */
static int sv_fetch(sqlite3_file *pf, sqlite3_int64 off, int amt, void **pp)
{
    (void)pf, (void)off, (void)amt;
    *pp = NULL;
    return SQLITE_OK;
}

static int sv_unfetch(sqlite3_file *pf, sqlite3_int64 off, void *p)
{
    if (p != NULL) /* never handed out */
        return SQLITE_OK;
    return LOWER(pf)->pMethods->xUnfetch(LOWER(pf), off, p);
}

static const sqlite3_io_methods sv_io = {
    .iVersion = 3,
    .xClose = sv_close,
    .xRead = sv_read,
    .xWrite = sv_write,
    .xTruncate = sv_truncate,
    .xSync = sv_sync,
    .xFileSize = sv_file_size,
    .xLock = sv_lock,
    .xUnlock = sv_unlock,
    .xCheckReservedLock = sv_check_reserved_lock,
    .xFileControl = sv_file_control,
    .xSectorSize = sv_sector_size,
    .xDeviceCharacteristics = sv_device_characteristics,
    .xShmMap = sv_shm_map,
    .xShmLock = sv_shm_lock,
    .xShmBarrier = sv_shm_barrier,
    .xShmUnmap = sv_shm_unmap,
    .xFetch = sv_fetch,
    .xUnfetch = sv_unfetch,
};

/* --- xOpen ---------------------------------------------------------------- */

/* Is there a key for the main file name?  Checked before the lower open,
 * so a refused name is not even created. */
static bool key_pending(const char *name)
{
    return name != NULL && pending.path != NULL && strcmp(name, pending.path) == 0;
}

/* A new main file: the key from the pending slot, the id from the file
 * (or a fresh one for an empty file).  SQLITE_NOTADB for a file that is
 * not a store of ours. */
static int main_open(struct sv_file *f)
{
    uint8_t hdr[HEADER_BYTES];
    sqlite3_int64 size = 0;

    int rc = lower_read(f, hdr, sizeof hdr, 0);
    if (rc == SQLITE_IOERR_SHORT_READ && sv_file_size(&f->base, &size) == SQLITE_OK && size == 0) {
        seal_random(f->dbid, sizeof f->dbid); /* new; see the file comment */
    } else if (rc == SQLITE_OK && header_ok(hdr)) {
        memcpy(f->dbid, hdr + 8, sizeof f->dbid);
        f->id_fixed = true;
    } else {
        return rc == SQLITE_OK || rc == SQLITE_IOERR_SHORT_READ ? SQLITE_NOTADB : rc;
    }
    f->keys = seal_secret_alloc(sizeof *f->keys);
    memcpy(f->keys->master, pending.master, sizeof f->keys->master);
    derive_key(f->keys->key, f->keys->master, f->dbid);
    pending.path = NULL, pending.master = NULL; /* one file per registration */
    f->db = f;
    return SQLITE_OK;
}

/* A WAL or journal: it belongs to the main file SQLite derived its name
 * from, which must be one of ours. */
static int companion_open(struct sv_file *f, const char *name)
{
    sqlite3_file *owner = name != NULL ? sqlite3_database_file_object(name) : NULL;
    if (owner == NULL || owner->pMethods != &sv_io || ((struct sv_file *)owner)->kind != SV_MAIN)
        return SQLITE_CANTOPEN;
    f->db = (struct sv_file *)owner;
    return SQLITE_OK;
}

static int sv_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *pf, int flags, int *out_flags)
{
    struct sv_file *f = (struct sv_file *)pf;
    (void)vfs;

    memset(f, 0, sizeof *f);
    f->lower = (sqlite3_file *)((char *)f + SV_FILE_SIZE);
    if (flags & SQLITE_OPEN_MAIN_DB)
        f->kind = SV_MAIN;
    else if (flags & SQLITE_OPEN_WAL)
        f->kind = SV_WAL;
    else if (flags & SQLITE_OPEN_MAIN_JOURNAL)
        f->kind = SV_JOURNAL;
    else if (flags & SQLITE_OPEN_SUPER_JOURNAL)
        f->kind = SV_PASS;
    else
        return SQLITE_CANTOPEN; /* temp and transient files, statement journals */

    int rc = SQLITE_OK;
    if (f->kind == SV_WAL || f->kind == SV_JOURNAL)
        rc = companion_open(f, name);
    else if (f->kind == SV_MAIN && !key_pending(name))
        rc = SQLITE_CANTOPEN; /* no key for this file */
    if (rc != SQLITE_OK)
        return rc;
    rc = lower_vfs()->xOpen(lower_vfs(), name, f->lower, flags, out_flags);
    if (rc != SQLITE_OK)
        return rc;
    f->base.pMethods = &sv_io; /* from here, sv_close cleans up */
    if (f->kind == SV_MAIN && (rc = main_open(f)) != SQLITE_OK) {
        sv_close(pf);
        f->base.pMethods = NULL;
    }
    return rc;
}

/* --- the rest of the VFS: the unix VFS, minus extension loading ---------- */

static int sv_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    return lower_vfs()->xDelete(lower_vfs(), name, sync_dir);
}

static int sv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return lower_vfs()->xAccess(lower_vfs(), name, flags, out);
}

static int sv_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return lower_vfs()->xFullPathname(lower_vfs(), name, n, out);
}

static void *sv_dl_open(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs, (void)name;
    return NULL;
}

static void sv_dl_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    if (n > 0)
        snprintf(out, (size_t)n, "%s", "extension loading is disabled");
}

static void (*sv_dl_sym(sqlite3_vfs *vfs, void *handle, const char *sym))(void)
{
    (void)vfs, (void)handle, (void)sym;
    return NULL;
}

static void sv_dl_close(sqlite3_vfs *vfs, void *handle)
{
    (void)vfs, (void)handle;
}

static int sv_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return lower_vfs()->xRandomness(lower_vfs(), n, out);
}

static int sv_sleep(sqlite3_vfs *vfs, int usec)
{
    (void)vfs;
    return lower_vfs()->xSleep(lower_vfs(), usec);
}

static int sv_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return lower_vfs()->xCurrentTime(lower_vfs(), out);
}

static int sv_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return lower_vfs()->xGetLastError(lower_vfs(), n, out);
}

static int sv_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return lower_vfs()->xCurrentTimeInt64(lower_vfs(), out);
}

static int sv_set_system_call(sqlite3_vfs *vfs, const char *name, sqlite3_syscall_ptr fn)
{
    (void)vfs;
    return lower_vfs()->xSetSystemCall(lower_vfs(), name, fn);
}

static sqlite3_syscall_ptr sv_get_system_call(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return lower_vfs()->xGetSystemCall(lower_vfs(), name);
}

static const char *sv_next_system_call(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return lower_vfs()->xNextSystemCall(lower_vfs(), name);
}

static void register_vfs(void)
{
    sqlite3_vfs *unix_vfs = sqlite3_vfs_find("unix");
    if (seal_init() < 0 || unix_vfs == NULL || unix_vfs->iVersion < 3)
        return;
    sv_vfs = (sqlite3_vfs){
        .iVersion = 3,
        .szOsFile = (int)(SV_FILE_SIZE + (size_t)unix_vfs->szOsFile),
        .mxPathname = unix_vfs->mxPathname,
        .zName = SEALVFS_NAME,
        .pAppData = unix_vfs,
        .xOpen = sv_open,
        .xDelete = sv_delete,
        .xAccess = sv_access,
        .xFullPathname = sv_full_pathname,
        .xDlOpen = sv_dl_open,
        .xDlError = sv_dl_error,
        .xDlSym = sv_dl_sym,
        .xDlClose = sv_dl_close,
        .xRandomness = sv_randomness,
        .xSleep = sv_sleep,
        .xCurrentTime = sv_current_time,
        .xGetLastError = sv_get_last_error,
        .xCurrentTimeInt64 = sv_current_time_int64,
        .xSetSystemCall = sv_set_system_call,
        .xGetSystemCall = sv_get_system_call,
        .xNextSystemCall = sv_next_system_call,
    };
    register_rc = sqlite3_vfs_register(&sv_vfs, 0);
}

/* --- public API ----------------------------------------------------------- */

static _Thread_local char error_text[1024];

static const char *set_error(const char *path, const char *what)
{
    snprintf(error_text, sizeof error_text, "sealvfs: %s: %s", path, what);
    return error_text;
}

/* Why a SQLite result code failed an open or a copy, in words. */
static const char *describe(int rc, bool sealed)
{
    switch (rc) {
    case SQLITE_IOERR_DATA:
        return "wrong key or damaged store";
    case SQLITE_NOTADB:
        return sealed ? "not a sealmail store (or its header is damaged)"
                      : "not a plain SQLite database (a sealed store needs its key)";
    case SQLITE_CANTOPEN_SYMLINK:
        return "refusing a path through a symbolic link";
    default:
        return sqlite3_errstr(rc);
    }
}

/* Plain file names only: SQLite is built with URI support, and a URI could
 * name another VFS (file:x?vfs=unix) and bypass the shim. */
static bool path_ok(const char *path)
{
    return path != NULL && path[0] != '\0' && strcmp(path, ":memory:") != 0 &&
           strncasecmp(path, "file:", 5) != 0;
}

/* Refuse ATTACH of URIs and of names that are not string literals (the
 * authorizer sees NULL for those); plain names go through the shim,
 * which refuses files it has no key for. */
static int authorize(void *arg, int action, const char *a1, const char *a2, const char *a3,
                     const char *a4)
{
    (void)arg, (void)a2, (void)a3, (void)a4;
    if (action == SQLITE_ATTACH && (a1 == NULL || strncasecmp(a1, "file:", 5) == 0))
        return SQLITE_DENY;
    return SQLITE_OK;
}

/* Run one statement to completion; its first text column (if any) goes to
 * out.  Returns the extended SQLite result code. */
static int run(sqlite3 *db, const char *sql, const char *bind, char *out, size_t outlen)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sqlite3_extended_errcode(db);
    if (bind != NULL)
        sqlite3_bind_text(st, 1, bind, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (out != NULL && sqlite3_column_text(st, 0) != NULL)
            snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : sqlite3_extended_errcode(db);
}

/* Two connections creating one database at the same moment can deadlock
 * on the switch to WAL (each holds a read lock and wants to write); SQLite
 * then answers SQLITE_BUSY at once instead of waiting, and the loser
 * retries here, within the busy timeout. */
static int set_wal(sqlite3 *db)
{
    char mode[16] = "";
    int rc;

    for (int waited = 0;; waited += 10) {
        rc = run(db, "PRAGMA journal_mode = WAL", NULL, mode, sizeof mode);
        if ((rc & 0xff) != SQLITE_BUSY || waited >= BUSY_TIMEOUT_MS)
            break;
        sqlite3_sleep(10);
    }
    return rc == SQLITE_OK && strcmp(mode, "wal") != 0 ? SQLITE_CANTOPEN : rc;
}

static const char *const settings[] = {
    "PRAGMA temp_store = MEMORY", "PRAGMA mmap_size = 0",      "PRAGMA secure_delete = ON",
    "PRAGMA foreign_keys = ON",   "PRAGMA synchronous = FULL",
};

/* Everything sealvfs_open() promises, in an order that sets the reserve and
 * temp_store before anything is written; then read the schema, which
 * decrypts page 1 and the schema pages.  Returns a result code. */
static int configure(sqlite3 *db)
{
    int reserve = RESERVE, rc;

    sqlite3_extended_result_codes(db, 1);
    sqlite3_file_control(db, "main", SQLITE_FCNTL_RESERVE_BYTES, &reserve);
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)NULL);
    sqlite3_enable_load_extension(db, 0);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 0, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_set_authorizer(db, authorize, NULL);
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if ((rc = run(db, settings[i], NULL, NULL, 0)) != SQLITE_OK)
            return rc;
    if ((rc = set_wal(db)) != SQLITE_OK)
        return rc;
    return run(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, 0);
}

/* The full path name SQLite will give xOpen for path; NULL on error. */
static char *full_pathname(const char *path)
{
    char *full = sm_malloc((size_t)sv_vfs.mxPathname + 1);
    int rc = sv_vfs.xFullPathname(&sv_vfs, path, sv_vfs.mxPathname + 1, full);
    if (rc != SQLITE_OK && rc != SQLITE_OK_SYMLINK)
        sm_freep(&full);
    return full;
}

int sealvfs_open(const char *path, const uint8_t *key, bool create, sqlite3 **db_r,
                 const char **error_r)
{
    sqlite3 *db = NULL;
    char *full = NULL;
    int rc, flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_PRIVATECACHE |
                    (create ? SQLITE_OPEN_CREATE : 0);

    *db_r = NULL;
    if (!path_ok(path)) {
        *error_r = set_error(path != NULL ? path : "(null)", "not a plain file name");
        return -1;
    }
    if (key != NULL) {
        pthread_once(&register_once, register_vfs);
        if (register_rc != SQLITE_OK || (full = full_pathname(path)) == NULL) {
            *error_r = set_error(path, "cannot set up the sealing VFS");
            return -1;
        }
        pending.path = full, pending.master = key;
    }
    rc = sqlite3_open_v2(path, &db, flags, key != NULL ? SEALVFS_NAME : "unix");
    pending.path = NULL, pending.master = NULL;
    sm_freep(&full);
    if (rc == SQLITE_OK)
        rc = configure(db);
    else if (db != NULL)
        rc = sqlite3_extended_errcode(db);
    if (rc != SQLITE_OK) {
        *error_r = set_error(path, describe(rc, key != NULL));
        sqlite3_close_v2(db);
        return -1;
    }
    *db_r = db;
    return 0;
}

void sealvfs_close(sqlite3 **db)
{
    if (db == NULL || *db == NULL)
        return;
    sqlite3_close_v2(*db);
    *db = NULL;
}

/* db's main file, if it goes through the shim. */
static struct sv_file *sealed_main(sqlite3 *db)
{
    sqlite3_file *fp = NULL;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &fp) != SQLITE_OK ||
        fp == NULL || fp->pMethods != &sv_io)
        return NULL;
    struct sv_file *f = (struct sv_file *)fp;
    return f->kind == SV_MAIN ? f : NULL;
}

bool sealvfs_is_sealed(sqlite3 *db)
{
    return sealed_main(db) != NULL;
}

/* VACUUM INTO path, the target keyed with master (NULL: plain). */
static int vacuum_into(sqlite3 *db, const char *path, const uint8_t *master, const char **error_r)
{
    char *full = NULL;

    if (!path_ok(path)) {
        *error_r = set_error(path != NULL ? path : "(null)", "not a plain file name");
        return -1;
    }
    if (master != NULL) {
        if ((full = full_pathname(path)) == NULL) {
            *error_r = set_error(path, "cannot resolve the path");
            return -1;
        }
        pending.path = full, pending.master = master;
    }
    int rc = run(db, "VACUUM INTO ?1", path, NULL, 0);
    pending.path = NULL, pending.master = NULL;
    sm_freep(&full);
    if (rc != SQLITE_OK) {
        snprintf(error_text, sizeof error_text, "sealvfs: VACUUM INTO %s: %s (%s)", path,
                 describe(rc, master != NULL), sqlite3_errmsg(db));
        *error_r = error_text;
        return -1;
    }
    return 0;
}

int sealvfs_vacuum_into(sqlite3 *db, const char *path, const char **error_r)
{
    struct sv_file *f = sealed_main(db);
    return vacuum_into(db, path, f != NULL ? f->keys->master : NULL, error_r);
}

int sealvfs_vacuum_into_key(sqlite3 *db, const char *path, const uint8_t *new_key,
                            const char **error_r)
{
    if (sealed_main(db) == NULL || new_key == NULL) {
        *error_r = set_error(path != NULL ? path : "(null)", "not a sealed store");
        return -1;
    }
    return vacuum_into(db, path, new_key, error_r);
}
