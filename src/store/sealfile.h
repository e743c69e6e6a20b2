/* sealfile.h — one message in a file only a secret-key holder can read.
 *
 * The file format of spool entries (see the FILE FORMAT comment of
 * spool.c, which this module shares) with the envelope generalised to
 * "clear metadata": magic (8 bytes, the last one a version), the
 * plaintext size, the metadata, a fresh file key sealed to an X25519
 * public key, then the content in crypto_secretstream chunks of 64 KiB
 * bound to a hash of everything before them.  The writer can seal but
 * never read back; any changed, cut or appended byte fails the read.
 *
 * A reader that recorded a file's key (the mailbox store keeps it in the
 * message's encrypted row) reads the file again with that key and no
 * X25519 (struct sealfile_key); the chunks' MACs, bound to everything
 * before them, sealed key included, still authenticate every byte, so
 * the key reads that one file only.
 *
 * Mailbox drop files and stored message bodies use it (drop.h); the
 * functions here are synchronous and work on open file descriptors, so
 * the caller decides about temporary names, fsync and renames. */
#ifndef SM_SEALFILE_H
#define SM_SEALFILE_H

#include <stddef.h>
#include <stdint.h>

#define SEALFILE_MAGIC_LEN 8
#define SEALFILE_META_MAX 65536
#define SEALFILE_PK_BYTES 32
#define SEALFILE_SK_BYTES 32
#define SEALFILE_KEY_BYTES 32 /* a file's own key */

/* How a reader opens a file: with the key pair (one X25519 opens the
 * sealed file key), or with the file key itself, recorded when the file
 * was written or first read (no X25519; a wrong key fails the first
 * chunk).  Keep file keys in secret or wiped memory. */
struct sealfile_key {
    const uint8_t *pk, *sk;  /* used when file_key is NULL */
    const uint8_t *file_key; /* SEALFILE_KEY_BYTES, or NULL */
    uint8_t *key_r;          /* not NULL, file_key NULL: gets the opened file key on
                              * success (wiped on failure) */
};

/* Seal prefix (prefix_len bytes, may be 0), then everything readable from
 * in (from its current offset to end of file), into out (at its current
 * offset, normally an empty file), with
 * meta (meta_len <= SEALFILE_META_MAX bytes) in clear but authenticated.
 * Sets *size_r to the plaintext size.  No fsync.  Returns 0, or -1 with
 * *error_r (static or thread-local text). */
int sealfile_write(int out, const char magic[SEALFILE_MAGIC_LEN], const void *meta,
                   size_t meta_len, const uint8_t pk[SEALFILE_PK_BYTES], const void *prefix,
                   size_t prefix_len, int in, uint64_t *size_r, const char **error_r);

/* sealfile_write() that also hands out the fresh file key in key_r
 * (SEALFILE_KEY_BYTES; wiped on failure), for a writer that holds the
 * reading key anyway and records the file key (the mailbox's APPEND). */
int sealfile_write_key(int out, const char magic[SEALFILE_MAGIC_LEN], const void *meta,
                       size_t meta_len, const uint8_t pk[SEALFILE_PK_BYTES], const void *prefix,
                       size_t prefix_len, int in, uint64_t *size_r, uint8_t *key_r,
                       const char **error_r);

/* Open the sealed file in (read from offset 0; a regular file), check its
 * magic, length and every chunk, and write the plaintext to out (a chunk
 * is written only after it is authenticated; on failure the caller must
 * discard what out received).  On success returns 0 and, when meta_r is
 * not NULL, hands the metadata (at most meta_max bytes, else an error) in
 * *meta_r (malloc'd, free()) and its length; *size_r gets the plaintext
 * size when not NULL.  Returns -1 with *error_r on a wrong key, a wrong
 * magic, any damage. */
int sealfile_read(int in, const char magic[SEALFILE_MAGIC_LEN], size_t meta_max,
                  const uint8_t pk[SEALFILE_PK_BYTES], const uint8_t sk[SEALFILE_SK_BYTES],
                  int out, uint8_t **meta_r, size_t *meta_len_r, uint64_t *size_r,
                  const char **error_r);
/* sealfile_read() opened as k says. */
int sealfile_read_k(int in, const char magic[SEALFILE_MAGIC_LEN], size_t meta_max,
                    const struct sealfile_key *k, int out, uint8_t **meta_r, size_t *meta_len_r,
                    uint64_t *size_r, const char **error_r);

/* Plaintext read into memory by sealfile_read_mem(), with the buffers it
 * reuses from file to file (a FETCH of many messages grows them to the
 * largest message once instead of allocating per message).  Zero it
 * before the first use; sealfile_plain_free() wipes the plaintext. */
struct sealfile_plain {
    uint8_t *data;    /* len plaintext bytes, then a NUL */
    size_t len;
    uint64_t size;    /* plaintext size of the whole content (len < size: a prefix) */
    size_t cap;
    uint8_t *raw;     /* ciphertext scratch (not secret) */
    size_t raw_cap;
};

/* sealfile_read() into memory: open the sealed file in (a regular file),
 * check its magic and length, and decrypt into p->data, every chunk
 * authenticated before it is used.  want == 0 (or >= the size) reads the
 * whole content, the FINAL chunk and the size included; otherwise only the
 * 64 KiB chunks that cover the first want bytes are read and
 * authenticated (each chunk is bound to the file's prefix and to its place
 * in the stream, so the prefix served is authentic; damage further on goes
 * unnoticed by this call).  Content larger than max fails.  *meta_r (when
 * not NULL) points to the metadata inside p->raw, valid until the next
 * call.  Returns 0, or -1 with *error_r and p->len 0 (nothing decrypted
 * stays readable). */
int sealfile_read_mem(int in, const char magic[SEALFILE_MAGIC_LEN], size_t meta_max,
                      const uint8_t pk[SEALFILE_PK_BYTES], const uint8_t sk[SEALFILE_SK_BYTES],
                      uint64_t want, uint64_t max, struct sealfile_plain *p,
                      const uint8_t **meta_r, size_t *meta_len_r, const char **error_r);
/* sealfile_read_mem() opened as k says. */
int sealfile_read_mem_k(int in, const char magic[SEALFILE_MAGIC_LEN], size_t meta_max,
                        const struct sealfile_key *k, uint64_t want, uint64_t max,
                        struct sealfile_plain *p, const uint8_t **meta_r, size_t *meta_len_r,
                        const char **error_r);

/* Wipe the plaintext and free both buffers; *p is then empty (reusable). */
void sealfile_plain_free(struct sealfile_plain *p);

#endif
