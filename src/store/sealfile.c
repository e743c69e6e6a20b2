/* sealfile.c — sealed message files (see sealfile.h).
 *
 * FILE FORMAT (version given by the last magic byte).  Integers are
 * big-endian.
 *
 *   offset  bytes  field
 *   0       8      magic (spool entries "SEALSP\0\1", drop files "SEALDR\0\1")
 *   8       8      u64 size: plaintext bytes; written last
 *   16      4      u32 M: length of the clear metadata
 *   20      M      metadata (a spool envelope, a drop file's arrival time)
 *   20+M    80     32-byte file key sealed (crypto_box_seal) to the public key
 *   100+M   24     crypto_secretstream_xchacha20poly1305 header
 *   124+M   ...    chunks: u32 L (17..65553) then L bytes of ciphertext; every
 *                  chunk but the last holds exactly 64 KiB of plaintext and is
 *                  tagged MESSAGE, the last is tagged FINAL, holds 1..64 KiB (0
 *                  only for empty content) and ends the file.
 *
 * Binding: H = BLAKE2b-256 of bytes 0..124+M with the size field read as
 * zeros; every chunk has H as associated data, the FINAL chunk H || size.
 * The file length follows from M and the size, and the reader checks it
 * before decrypting anything, so a cut or padded file fails up front; a
 * changed byte anywhere else fails a MAC or the key opening. */
#include "store/sealfile.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/bytes.h"
#include "core/fileio.h"
#include "core/mem.h"
#include "crypto/seal.h"

#define OFF_SIZE 8
#define FIXED_LEN 20
#define KEYS_LEN (SEAL_SEALED_KEY_BYTES + SEAL_STREAM_HEADER_BYTES)
#define CHUNK_PLAIN 65536
#define CHUNK_CIPHER_MAX (CHUNK_PLAIN + SEAL_STREAM_ABYTES)
#define AD_LEN (SEAL_HASH_BYTES + 8)

_Static_assert(SEALFILE_PK_BYTES == SEAL_PK_BYTES, "X25519 public key");
_Static_assert(SEALFILE_SK_BYTES == SEAL_SK_BYTES, "X25519 secret key");
_Static_assert(SEALFILE_KEY_BYTES == SEAL_FILE_KEY_BYTES, "file key");

static _Thread_local char errbuf[256];

static const char *errno_msg(const char *what)
{
    snprintf(errbuf, sizeof errbuf, "%s: %s", what, strerror(errno));
    return errbuf;
}

/* --- writing ------------------------------------------------------------------ */

/* Build and write the prefix; start the stream; H into ad. */
static struct seal_stream *write_prefix(int out, const char *magic, const void *meta,
                                        size_t meta_len, const uint8_t *pk,
                                        uint8_t ad[AD_LEN], uint8_t *key_r,
                                        const char **error_r)
{
    size_t len = FIXED_LEN + meta_len + KEYS_LEN;
    uint8_t *prefix = sm_malloc(len);
    memcpy(prefix, magic, SEALFILE_MAGIC_LEN);
    sm_put_be32(prefix + 16, (uint32_t)meta_len);
    if (meta_len > 0)
        memcpy(prefix + FIXED_LEN, meta, meta_len);
    uint8_t *keys = prefix + FIXED_LEN + meta_len;
    struct seal_stream *st =
        seal_stream_push_new_key(pk, keys, keys + SEAL_SEALED_KEY_BYTES, key_r, error_r);
    if (st != NULL) {
        seal_hash(ad, prefix, len);
        if (sm_write_full(out, prefix, len) < 0) {
            *error_r = errno_msg("cannot write sealed file");
            seal_stream_free(&st);
        }
    }
    free(prefix);
    return st;
}

/* Encrypt one chunk of plen bytes and append it. */
static int write_chunk(int out, struct seal_stream *st, const uint8_t *plain, size_t plen,
                       uint8_t *cipher, const uint8_t ad[AD_LEN], bool final,
                       const char **error_r)
{
    size_t clen = plen + SEAL_STREAM_ABYTES;
    sm_put_be32(cipher, (uint32_t)clen);
    if (seal_stream_push(st, plain, plen, ad, final ? AD_LEN : SEAL_HASH_BYTES, final,
                         cipher + 4)
        < 0) {
        *error_r = "cannot encrypt chunk";
        return -1;
    }
    if (sm_write_full(out, cipher, 4 + clen) < 0) {
        *error_r = errno_msg("cannot write sealed file");
        return -1;
    }
    return 0;
}

/* The content to seal: a prefix in memory, then a file. */
struct source {
    const uint8_t *prefix;
    size_t prefix_len;
    int fd;
};

/* Read one chunk's worth of plaintext; the count, or -1. */
static ssize_t read_plain(struct source *in, uint8_t *buf, const char **error_r)
{
    size_t pre = in->prefix_len < CHUNK_PLAIN ? in->prefix_len : CHUNK_PLAIN;
    if (pre > 0) {
        memcpy(buf, in->prefix, pre);
        in->prefix += pre;
        in->prefix_len -= pre;
    }
    ssize_t n = pre < CHUNK_PLAIN ? sm_read_full(in->fd, buf + pre, CHUNK_PLAIN - pre) : 0;
    if (n < 0)
        *error_r = errno_msg("cannot read content");
    return n < 0 ? -1 : (ssize_t)pre + n;
}

/* Stream in to out; one chunk is read ahead so the last one is known. */
static int write_chunks(int out, struct source *in, struct seal_stream *st, uint8_t ad[AD_LEN],
                        uint64_t *size_r, const char **error_r)
{
    uint8_t *cur = sm_malloc(CHUNK_PLAIN), *next = sm_malloc(CHUNK_PLAIN);
    uint8_t *cipher = sm_malloc(4 + CHUNK_CIPHER_MAX);
    uint64_t size = 0;
    int ret = -1;
    ssize_t n = read_plain(in, cur, error_r), m = 0;

    while (n >= 0) {
        m = n == CHUNK_PLAIN ? read_plain(in, next, error_r) : 0;
        if (m < 0)
            break;
        bool final = m == 0;
        size += (uint64_t)n;
        if (final)
            sm_put_be64(ad + SEAL_HASH_BYTES, size);
        if (write_chunk(out, st, cur, (size_t)n, cipher, ad, final, error_r) < 0)
            break;
        if (final) {
            ret = 0;
            break;
        }
        uint8_t *t = cur;
        cur = next;
        next = t;
        n = m;
    }
    seal_wipe(cur, CHUNK_PLAIN);
    seal_wipe(next, CHUNK_PLAIN);
    free(cur);
    free(next);
    free(cipher);
    *size_r = size;
    return ret;
}

int sealfile_write(int out, const char magic[SEALFILE_MAGIC_LEN], const void *meta,
                   size_t meta_len, const uint8_t pk[SEALFILE_PK_BYTES], const void *prefix,
                   size_t prefix_len, int in, uint64_t *size_r, const char **error_r)
{
    return sealfile_write_key(out, magic, meta, meta_len, pk, prefix, prefix_len, in, size_r,
                              NULL, error_r);
}

int sealfile_write_key(int out, const char magic[SEALFILE_MAGIC_LEN], const void *meta,
                       size_t meta_len, const uint8_t pk[SEALFILE_PK_BYTES], const void *prefix,
                       size_t prefix_len, int in, uint64_t *size_r, uint8_t *key_r,
                       const char **error_r)
{
    struct source src = {prefix, prefix_len, in};
    uint8_t ad[AD_LEN], size[8];
    off_t start = lseek(out, 0, SEEK_CUR);

    if (meta_len > SEALFILE_META_MAX) {
        *error_r = "sealed file metadata too large";
        return -1;
    }
    if (seal_init() < 0 || start < 0) {
        *error_r = start < 0 ? errno_msg("cannot seek") : "libsodium cannot be initialised";
        return -1;
    }
    struct seal_stream *st = write_prefix(out, magic, meta, meta_len, pk, ad, key_r, error_r);
    if (st == NULL)
        return -1;
    int ret = write_chunks(out, &src, st, ad, size_r, error_r);
    if (ret < 0 && key_r != NULL)
        seal_wipe(key_r, SEALFILE_KEY_BYTES);
    seal_stream_free(&st);
    sm_put_be64(size, *size_r);
    if (ret == 0 && pwrite(out, size, sizeof size, start + OFF_SIZE) != (ssize_t)sizeof size) {
        *error_r = errno_msg("cannot write sealed file");
        ret = -1;
    }
    return ret;
}

/* --- reading ------------------------------------------------------------------ */

/* The stream of a file whose sealed key and stream header are at keys:
 * from the recorded file key (no X25519), else by opening the sealed key
 * with the key pair (handing the file key out when asked).  Either way
 * every chunk is then checked against H, which covers the sealed key and
 * the header too: a recorded key reads only the very file it was
 * recorded for, byte for byte. */
static struct seal_stream *open_stream(const struct sealfile_key *k, const uint8_t *keys,
                                       const char **error_r)
{
    const uint8_t *header = keys + SEAL_SEALED_KEY_BYTES;
    if (k->file_key != NULL)
        return seal_stream_pull_with_key(k->file_key, header, error_r);
    return seal_stream_pull_new_key(keys, header, k->pk, k->sk, k->key_r, error_r);
}

struct prefix {
    uint8_t *data; /* FIXED_LEN + meta_len + KEYS_LEN bytes */
    size_t len, meta_len;
    uint64_t size;
};

static int read_prefix(int in, const char *magic, size_t meta_max, struct prefix *pr,
                       const char **error_r)
{
    uint8_t fixed[FIXED_LEN];
    ssize_t n = pread(in, fixed, FIXED_LEN, 0);

    if (n < 0) {
        *error_r = errno_msg("cannot read sealed file");
        return -1;
    }
    if ((size_t)n < SEALFILE_MAGIC_LEN || memcmp(fixed, magic, SEALFILE_MAGIC_LEN) != 0) {
        *error_r = "not a sealed file of this kind (bad magic or version)";
        return -1;
    }
    pr->size = sm_get_be64(fixed + OFF_SIZE);
    pr->meta_len = n == FIXED_LEN ? sm_get_be32(fixed + 16) : SIZE_MAX;
    if (pr->meta_len > meta_max || pr->meta_len > SEALFILE_META_MAX) {
        *error_r = n < FIXED_LEN ? "truncated sealed file" : "sealed file metadata too large";
        return -1;
    }
    pr->len = FIXED_LEN + pr->meta_len + KEYS_LEN;
    pr->data = sm_malloc(pr->len);
    n = pread(in, pr->data, pr->len, 0);
    if (n != (ssize_t)pr->len) {
        *error_r = n < 0 ? errno_msg("cannot read sealed file") : "truncated sealed file";
        sm_freep(&pr->data);
        return -1;
    }
    return 0;
}

/* The file length must be what the metadata length and the size imply. */
static int check_length(int in, const struct prefix *pr, const char **error_r)
{
    struct stat st;
    uint64_t chunks = pr->size == 0 ? 1 : (pr->size - 1) / CHUNK_PLAIN + 1;

    if (fstat(in, &st) < 0) {
        *error_r = errno_msg("cannot stat sealed file");
        return -1;
    }
    if (!S_ISREG(st.st_mode) || pr->size > (uint64_t)INT64_MAX / 2 ||
        (uint64_t)st.st_size != pr->len + chunks * (4 + SEAL_STREAM_ABYTES) + pr->size) {
        *error_r = "sealed file is truncated or damaged (length does not match size)";
        return -1;
    }
    return 0;
}

/* Read a chunk length at *off; 1 read, 0 at end of file, -1 error. */
static int read_chunk_len(int in, off_t *off, uint32_t *len_r, const char **error_r)
{
    uint8_t b[4];
    ssize_t n = pread(in, b, sizeof b, *off);
    if (n == 0)
        return 0;
    if (n != (ssize_t)sizeof b) {
        *error_r = n < 0 ? errno_msg("cannot read sealed file") : "truncated sealed file";
        return -1;
    }
    *off += 4;
    *len_r = sm_get_be32(b);
    if (*len_r < SEAL_STREAM_ABYTES || *len_r > CHUNK_CIPHER_MAX) {
        *error_r = "damaged sealed file (bad chunk length)";
        return -1;
    }
    return 1;
}

/* One chunk: authenticate, decrypt, check its place, write it out. */
static int read_one(int in, off_t *off, uint32_t clen, struct seal_stream *st,
                    const uint8_t ad[AD_LEN], bool last, uint8_t *cipher, uint8_t *plain,
                    int out, uint64_t *total, uint64_t size, const char **error_r)
{
    bool final = false;
    ssize_t n = pread(in, cipher, clen, *off);
    if (n != (ssize_t)clen) {
        *error_r = n < 0 ? errno_msg("cannot read sealed file") : "truncated sealed file";
        return -1;
    }
    *off += clen;
    size_t plen = clen - SEAL_STREAM_ABYTES;
    if (seal_stream_pull(st, cipher, clen, ad, last ? AD_LEN : SEAL_HASH_BYTES, plain, &final) <
            0 ||
        final != last || plen > size - *total || (final && *total + plen != size)) {
        *error_r = "sealed file is damaged, truncated or not for this key";
        return -1;
    }
    if (plen > 0 && sm_write_full(out, plain, plen) < 0) {
        *error_r = errno_msg("cannot write content");
        return -1;
    }
    *total += plen;
    return 0;
}

static int read_chunks(int in, off_t off, struct seal_stream *st, const uint8_t ad[AD_LEN],
                       uint64_t size, int out, const char **error_r)
{
    uint8_t *cipher = sm_malloc(CHUNK_CIPHER_MAX), *plain = sm_malloc(CHUNK_PLAIN);
    uint64_t total = 0;
    uint32_t clen, next_len = 0;
    int more = read_chunk_len(in, &off, &clen, error_r), ret = -1;

    if (more == 0)
        *error_r = "truncated sealed file";
    while (more > 0) {
        /* the chunk is the last one exactly when the file ends after it */
        off_t after = off + clen;
        more = read_chunk_len(in, &after, &next_len, error_r);
        if (more < 0 ||
            read_one(in, &off, clen, st, ad, more == 0, cipher, plain, out, &total, size,
                     error_r) < 0)
            break;
        if (more == 0)
            ret = 0;
        off = after;
        clen = next_len;
    }
    seal_wipe(plain, CHUNK_PLAIN);
    free(plain);
    free(cipher);
    return ret;
}

int sealfile_read(int in, const char magic[SEALFILE_MAGIC_LEN], size_t meta_max,
                  const uint8_t pk[SEALFILE_PK_BYTES], const uint8_t sk[SEALFILE_SK_BYTES],
                  int out, uint8_t **meta_r, size_t *meta_len_r, uint64_t *size_r,
                  const char **error_r)
{
    struct sealfile_key k = {.pk = pk, .sk = sk};
    return sealfile_read_k(in, magic, meta_max, &k, out, meta_r, meta_len_r, size_r, error_r);
}

int sealfile_read_k(int in, const char magic[SEALFILE_MAGIC_LEN], size_t meta_max,
                    const struct sealfile_key *k, int out, uint8_t **meta_r, size_t *meta_len_r,
                    uint64_t *size_r, const char **error_r)
{
    struct prefix pr;
    uint8_t ad[AD_LEN];

    if (seal_init() < 0) {
        *error_r = "libsodium cannot be initialised";
        return -1;
    }
    if (read_prefix(in, magic, meta_max, &pr, error_r) < 0)
        return -1;
    int ret = check_length(in, &pr, error_r);
    memset(pr.data + OFF_SIZE, 0, 8); /* H is computed with the size unknown */
    seal_hash(ad, pr.data, pr.len);
    sm_put_be64(ad + SEAL_HASH_BYTES, pr.size);
    const uint8_t *keys = pr.data + FIXED_LEN + pr.meta_len;
    struct seal_stream *st = ret < 0 ? NULL : open_stream(k, keys, error_r);
    ret = st != NULL ? read_chunks(in, (off_t)pr.len, st, ad, pr.size, out, error_r) : -1;
    seal_stream_free(&st);
    if (ret < 0 && k->key_r != NULL)
        seal_wipe(k->key_r, SEALFILE_KEY_BYTES);
    if (ret == 0 && meta_r != NULL) {
        *meta_r = sm_malloc(pr.meta_len + 1);
        memcpy(*meta_r, pr.data + FIXED_LEN, pr.meta_len);
        *meta_len_r = pr.meta_len;
    }
    if (ret == 0 && size_r != NULL)
        *size_r = pr.size;
    free(pr.data);
    return ret;
}

/* --- reading into memory ------------------------------------------------------ */

/* Where the parts of a sealed file lie, from its prefix and length.  The
 * writer's layout is fixed (every chunk but the last holds 64 KiB), so
 * each chunk's offset and length follow from the size: the whole file
 * (prefix and first chunk) is read with one pread when it is small. */
struct layout {
    size_t prefix_len, meta_len;
    size_t head;        /* bytes at the start of p->raw: the prefix and what followed */
    uint64_t size, chunks;
};

/* Replace a buffer by an empty one of at least n bytes, wiping the old
 * one when it held plaintext (realloc could leave a copy behind). */
static void grow(uint8_t **buf, size_t *cap, size_t n, bool secret)
{
    if (*cap >= n)
        return;
    if (secret && *buf != NULL)
        seal_wipe(*buf, *cap);
    free(*buf);
    *buf = sm_malloc(n);
    *cap = n;
}

/* The length a file must have by its prefix's fields (at least FIXED_LEN
 * bytes at b), or 0 when they are out of bounds. */
static uint64_t expected_length(const uint8_t *b, size_t meta_max)
{
    uint64_t size = sm_get_be64(b + OFF_SIZE), meta_len = sm_get_be32(b + 16);
    if (size > (uint64_t)INT64_MAX / 2 || meta_len > meta_max)
        return 0;
    uint64_t chunks = size == 0 ? 1 : (size - 1) / CHUNK_PLAIN + 1;
    return FIXED_LEN + meta_len + KEYS_LEN + chunks * (4 + SEAL_STREAM_ABYTES) + size;
}

/* Read the head of the file (the prefix and, for a small file, all of it)
 * into p->raw and check the magic, the metadata length and the file
 * length against the size.  One pread asks for more than a head can be:
 * when fewer bytes come, exactly as many as the prefix says the file has,
 * that was the whole file, with no fstat (one per message was 5% of a
 * FETCH); a FIFO or a directory fails the pread (ESPIPE, EISDIR), and
 * what is read must still pass every MAC.  Otherwise (a large file, or a
 * short read that does not add up) fstat gives the length and makes sure
 * it is a regular file, and the head is read again in full. */
static int read_head(int in, const char *magic, size_t meta_max, struct sealfile_plain *p,
                     struct layout *l, const char **error_r)
{
    if (meta_max > SEALFILE_META_MAX)
        meta_max = SEALFILE_META_MAX;
    size_t head = FIXED_LEN + meta_max + KEYS_LEN + 4 + CHUNK_CIPHER_MAX;
    struct stat sb;
    grow(&p->raw, &p->raw_cap, head + 1, false);
    ssize_t n = pread(in, p->raw, head + 1, 0);
    bool whole = n >= FIXED_LEN && (size_t)n <= head &&
                 expected_length(p->raw, meta_max) == (uint64_t)n;
    uint64_t file_len = whole ? (uint64_t)n : 0;
    if (n >= 0 && !whole) {
        if (fstat(in, &sb) < 0 || !S_ISREG(sb.st_mode)) {
            *error_r = "sealed file is not a regular file";
            return -1;
        }
        file_len = (uint64_t)sb.st_size;
        if ((size_t)n > head) {
            n = (ssize_t)head; /* a large file: its head is all there */
        } else {
            if (file_len < head)
                head = (size_t)file_len;
            n = sm_pread_full(in, p->raw, head, 0);
        }
    }
    if (n < 0) {
        *error_r = errno_msg("cannot read sealed file");
        return -1;
    }
    if ((size_t)n < SEALFILE_MAGIC_LEN || memcmp(p->raw, magic, SEALFILE_MAGIC_LEN) != 0) {
        *error_r = "not a sealed file of this kind (bad magic or version)";
        return -1;
    }
    l->head = (size_t)n;
    l->size = sm_get_be64(p->raw + OFF_SIZE);
    l->meta_len = l->head >= FIXED_LEN ? sm_get_be32(p->raw + 16) : SIZE_MAX;
    if (l->meta_len > meta_max) {
        *error_r = l->head < FIXED_LEN ? "truncated sealed file" : "sealed file metadata too large";
        return -1;
    }
    l->prefix_len = FIXED_LEN + l->meta_len + KEYS_LEN;
    l->chunks = l->size == 0 ? 1 : (l->size - 1) / CHUNK_PLAIN + 1;
    if (l->size > (uint64_t)INT64_MAX / 2 || l->head < l->prefix_len ||
        file_len != l->prefix_len + l->chunks * (4 + SEAL_STREAM_ABYTES) + l->size) {
        *error_r = "sealed file is truncated or damaged (length does not match size)";
        return -1;
    }
    return 0;
}

/* The bytes [off, off + len) of the file: in the head already, or read
 * into p->raw after the prefix (which stays for the metadata). */
static const uint8_t *file_bytes(int in, struct sealfile_plain *p, const struct layout *l,
                                 uint64_t off, size_t len, const char **error_r)
{
    if (off + len <= l->head)
        return p->raw + off;
    uint8_t *to = p->raw + l->prefix_len; /* raw_cap >= prefix + one chunk: see read_head */
    if (sm_pread_full(in, to, len, (off_t)off) != (ssize_t)len) {
        *error_r = errno_msg("cannot read sealed file");
        return NULL;
    }
    return to;
}

/* Authenticate and decrypt chunks [0, need) straight into p->data. */
static int pull_chunks(int in, struct sealfile_plain *p, const struct layout *l, uint64_t need,
                       struct seal_stream *st, const uint8_t ad[AD_LEN], const char **error_r)
{
    for (uint64_t i = 0; i < need; i++) {
        bool last = i == l->chunks - 1, final = false;
        size_t plen = last ? (size_t)(l->size - i * CHUNK_PLAIN) : CHUNK_PLAIN;
        size_t clen = plen + SEAL_STREAM_ABYTES;
        uint64_t off = l->prefix_len + i * (4 + CHUNK_CIPHER_MAX);
        const uint8_t *c = file_bytes(in, p, l, off, 4 + clen, error_r);
        if (c == NULL)
            return -1;
        if (sm_get_be32(c) != clen) {
            *error_r = "damaged sealed file (bad chunk length)";
            return -1;
        }
        if (seal_stream_pull(st, c + 4, clen, ad, last ? AD_LEN : SEAL_HASH_BYTES,
                             p->data + i * CHUNK_PLAIN, &final) < 0 ||
            final != last) {
            *error_r = "sealed file is damaged, truncated or not for this key";
            return -1;
        }
    }
    return 0;
}

/* Open the stream (see open_stream()) and decrypt what want asks. */
static int decrypt_mem(int in, const struct sealfile_key *k, uint64_t want,
                       uint64_t max, struct sealfile_plain *p, const struct layout *l,
                       const char **error_r)
{
    uint8_t ad[AD_LEN];
    uint64_t need = want == 0 || want >= l->size ? l->chunks : (want - 1) / CHUNK_PLAIN + 1;
    uint64_t len = need == l->chunks ? l->size : need * CHUNK_PLAIN;
    if (len > max || len >= SIZE_MAX) {
        *error_r = "message too large to read into memory";
        return -1;
    }
    memset(p->raw + OFF_SIZE, 0, 8); /* H is computed with the size unknown */
    seal_hash(ad, p->raw, l->prefix_len);
    sm_put_be64(ad + SEAL_HASH_BYTES, l->size);
    const uint8_t *keys = p->raw + FIXED_LEN + l->meta_len;
    struct seal_stream *st = open_stream(k, keys, error_r);
    if (st == NULL)
        return -1;
    grow(&p->data, &p->cap, (size_t)len + 1, true);
    int ret = pull_chunks(in, p, l, need, st, ad, error_r);
    seal_stream_free(&st);
    if (ret < 0) {
        seal_wipe(p->data, p->cap);
        return -1;
    }
    p->len = (size_t)len;
    p->data[p->len] = '\0';
    return 0;
}

int sealfile_read_mem(int in, const char magic[SEALFILE_MAGIC_LEN], size_t meta_max,
                      const uint8_t pk[SEALFILE_PK_BYTES], const uint8_t sk[SEALFILE_SK_BYTES],
                      uint64_t want, uint64_t max, struct sealfile_plain *p,
                      const uint8_t **meta_r, size_t *meta_len_r, const char **error_r)
{
    struct sealfile_key k = {.pk = pk, .sk = sk};
    return sealfile_read_mem_k(in, magic, meta_max, &k, want, max, p, meta_r, meta_len_r,
                               error_r);
}

int sealfile_read_mem_k(int in, const char magic[SEALFILE_MAGIC_LEN], size_t meta_max,
                        const struct sealfile_key *k, uint64_t want, uint64_t max,
                        struct sealfile_plain *p, const uint8_t **meta_r, size_t *meta_len_r,
                        const char **error_r)
{
    struct layout l;
    p->len = 0;
    p->size = 0;
    if (seal_init() < 0) {
        *error_r = "libsodium cannot be initialised";
        return -1;
    }
    if (read_head(in, magic, meta_max, p, &l, error_r) < 0 ||
        decrypt_mem(in, k, want, max, p, &l, error_r) < 0) {
        if (k->key_r != NULL)
            seal_wipe(k->key_r, SEALFILE_KEY_BYTES);
        return -1;
    }
    p->size = l.size;
    if (meta_r != NULL) {
        *meta_r = p->raw + FIXED_LEN;
        *meta_len_r = l.meta_len;
    }
    return 0;
}

void sealfile_plain_free(struct sealfile_plain *p)
{
    if (p->data != NULL)
        seal_wipe(p->data, p->cap);
    free(p->data);
    free(p->raw);
    memset(p, 0, sizeof *p);
}
