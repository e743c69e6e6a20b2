/* sealvfs.h — SQLite databases whose every page is sealed (XChaCha20-
 * Poly1305) on its way to disk, over Debian's stock libsqlite3.
 *
 * A store opened with a key is an ordinary SQLite database to the code
 * that uses it; on disk, every page of the database, of its WAL and of its
 * rollback journal is ciphertext with an authentication tag.  A damaged or
 * altered page reads as SQLITE_IOERR_DATA, never as other data.  Stock
 * `sqlite3` and the plain "unix" VFS refuse the file ("file is not a
 * database").  The file format and its limits are in sealvfs.c and in
 * engineering-notes §1.
 *
 * Rules for code holding a handle from sealvfs_open():
 *   - do not change temp_store, mmap_size or the reserve (temporary files
 *     are refused: a statement that needs one fails instead of writing
 *     plaintext);
 *   - do not install another authorizer: the one installed refuses ATTACH
 *     of URI file names ("file:...?vfs=unix" would bypass the shim) and of
 *     names that are not string literals;
 *   - copy a store with sealvfs_vacuum_into(), not with raw VACUUM INTO or
 *     ATTACH: any other database file opened through the shim has no key
 *     and is refused (SQLITE_CANTOPEN);
 *   - new stores get 4096-byte pages; another page size is made by PRAGMA
 *     page_size = N, then sealvfs_vacuum_into() (an in-place VACUUM to
 *     another page size fails with SQLITE_IOERR_WRITE and changes nothing);
 *   - keep synchronous=FULL if you leave WAL mode: a rollback-journal
 *     record that fails authentication is an error (the store will not
 *     open until the journal is dealt with), which only FULL guarantees
 *     a crash never produces;
 *   - the backup API to a plain target writes a decrypted copy: use it only
 *     for deliberate exports.
 *
 * Threading: any thread may open; a handle follows SQLite's rules (the
 * library is built serialized).  Several connections to one file, in one
 * process or many, use SQLite's normal locking (one writer at a time). */
#ifndef SM_SEALVFS_H
#define SM_SEALVFS_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#define SEALVFS_KEY_BYTES 32
#define SEALVFS_NAME "sealvfs"
#define SEALVFS_RESERVE_BYTES 40 /* per page: 24-byte nonce + 16-byte tag */

/* Open (create=true: create if missing) the database at path, a plain
 * file name (URIs, "" and ":memory:" are refused).
 *
 * key != NULL: through the sealing VFS, with that 32-byte master key; each
 * database file derives its own page key from it and a random id stored
 * in the file.  The key is copied into guarded memory (sodium_malloc) for
 * as long as the database is open and wiped when it closes; the caller
 * keeps ownership of its own copy.  key == NULL: the plain "unix" VFS with
 * exactly the same settings (for benchmarks measuring the cost).
 *
 * On success *db_r is configured: 40 reserve bytes per page (set before
 * the first write), PRAGMA temp_store=MEMORY, journal_mode=WAL,
 * synchronous=FULL, mmap_size=0, secure_delete=ON, foreign_keys=ON, a
 * 5000 ms busy timeout, extended result codes, extension loading off,
 * SQLITE_DBCONFIG_DEFENSIVE on, the two-argument fts3_tokenizer() off, and
 * the ATTACH authorizer described above.  A wrong key, a tampered page 1
 * or a file that is not a sealmail store fails here.
 *
 * Returns 0, or -1 with *db_r = NULL and *error_r set to thread-local text
 * valid until this thread's next call (e.g. "sealvfs: /x/user.db: wrong
 * key or damaged store"). */
int sealvfs_open(const char *path, const uint8_t *key, bool create, sqlite3 **db_r,
                 const char **error_r);

/* Close a database opened by sealvfs_open(); sets *db to NULL; accepts
 * NULL and *db == NULL.  Uses sqlite3_close_v2(): if statements are still
 * unfinalized, the connection (and its key material) lives on until the
 * last one is finalized, and is wiped then. */
void sealvfs_close(sqlite3 **db);

/* VACUUM INTO a new file at path (a plain file name that must not exist
 * or be empty), under the same master key as db: the copy gets its own
 * random database id and so its own page key.  For a plain handle (key ==
 * NULL at open) this is plain VACUUM INTO.  Raw "VACUUM INTO" SQL on a
 * sealed handle fails: the shim has no key for the new file.  Returns 0,
 * or -1 with *error_r (thread-local text). */
int sealvfs_vacuum_into(sqlite3 *db, const char *path, const char **error_r);

/* Like sealvfs_vacuum_into(), but the copy is sealed under new_key (32
 * bytes) instead of db's key: a rekey is sealvfs_vacuum_into_key() then
 * rename(2) of the copy over the original while no connection is open.
 * db must be a sealed handle.  Returns 0, or -1 with *error_r. */
int sealvfs_vacuum_into_key(sqlite3 *db, const char *path, const uint8_t *new_key,
                            const char **error_r);

/* True when db's main database goes through the sealing VFS. */
bool sealvfs_is_sealed(sqlite3 *db);

#endif
