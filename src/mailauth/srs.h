/* srs.h — the Sender Rewriting Scheme, for mail sealmail forwards.
 *
 * Why: an alias forwards mail from user@orig.example to another provider.
 * Sent on with its original envelope sender, the forwarded copy fails the
 * sender's SPF at the next hop, and bounces would go to a sender we cannot
 * vouch for.  SRS rewrites the envelope sender to an address at our own
 * domain that carries the original inside, signed, so that a bounce can be
 * verified and sent back to where it belongs, and nobody can use us to
 * send "bounces" to arbitrary addresses.
 *
 * Format: the de-facto one of Shevek's libsrs2 ("Guarded" strategy), which
 * postsrsd and python3-srs (pysrs) also speak, so that the other
 * forwarders of a chain, and a secret file taken over from postsrsd,
 * interoperate.  With F our forwarding domain:
 *
 *   user@orig.example              -> SRS0=HHHH=TT=orig.example=user@F
 *   SRS0=hhhh=tt=orig=user@prev    -> SRS1=HHHH=prev==hhhh=tt=orig=user@F
 *   SRS1=hhhh=first==...@prev      -> SRS1=HHHH=first==...@F
 *   x@F (ours already), <>         -> unchanged
 *
 *   TT    the day of forwarding: days since the epoch mod 1024, two
 *         characters of base32 (RFC 4648 alphabet A-Z 2-7), high digit
 *         first.
 *   HHHH  HMAC-SHA1 with the first secret over the parts that follow it
 *         (SRS0: TT, orig.example, user; SRS1: first, the rest after it),
 *         each lowercased (ASCII) and concatenated; the digest in standard
 *         base64, truncated to hash_len characters (4 by default).
 *   SRS1  keeps the SRS0 part it received from the previous forwarder
 *         (after the tag, starting with that forwarder's separator: hence
 *         the "=="), and names that forwarder; it is not checked here but
 *         by the forwarder that made it when the bounce reaches it.  An
 *         SRS1 received from yet another hop is re-signed, still pointing
 *         at the first forwarder (SRS "shortcut": chains do not grow).
 *
 * Case: remote MTAs are not supposed to change the case of a local part,
 * but some do.  The tag and the timestamp are read case-insensitively;
 * the hash is base64 (as libsrs2/pysrs make it) and compared case-
 * insensitively, as libsrs2 does, over data that was lowercased before
 * hashing.  Folding costs a little strength: a forger must guess 4
 * characters that each match 2 of 64 values, 1 in 2^20 per try per
 * address, and every try is a bounce they must deliver to us.  hash_len
 * may be raised (up to SRS_HASH_LEN_MAX) for more; verification takes any
 * hash at least hash_len long (a longer one is checked in full, up to the
 * 27 characters a SHA-1 digest gives).  A lowercased address reverses to
 * the lowercased original, which is all anyone can do.
 *
 * Verification: the hash is recomputed under every secret and compared in
 * constant time (CRYPTO_memcmp, after folding both sides); then the day:
 * an address is accepted from the day it was made until max_age_days
 * later (21 by default), and one day ahead of our clock (another host of
 * ours, or ours before a clock step); anything else is SRS_EXPIRED.  Days
 * wrap at 1024, so a timestamp far in the future reads as long expired:
 * both are the same rejection.  The hash is checked before the day, so
 * SRS_EXPIRED is only ever said of an address we really made.
 *
 * Secrets: the first signs, all verify, so a secret is rotated by putting
 * a new one first and dropping the old one after max_age_days.  They come
 * from a file, one per line, base64 of at least 16 random bytes ('#'
 * starts a comment; blank lines are skipped), which must not be readable
 * by group or others.  The HMAC key is the line's text itself, not its
 * decoded bytes: that is what libsrs2, postsrsd and pysrs do with a
 * secret, so the same file works with them (postsrsd's own secret files,
 * base64 of 18 bytes, load as they are).  The base64 is only checked to
 * keep typos and short passwords out.  Secrets live in sodium_malloc
 * memory (seal_secret_alloc) and are wiped when freed.
 *
 * Limits (RFC 5321 §4.5.3.1): local parts at most SRS_LOCAL_MAX (64) and
 * domains at most SRS_DOMAIN_MAX (253) octets, in and out, and an address
 * at most SRS_ADDRESS_MAX (254: a path "<...>" of 256).  The rewritten
 * local part is longer than the original (13 + the sender's domain + 1
 * for SRS0), so a long sender domain or user name does not fit: then
 * srs_forward() says SRS_TOO_LONG and the caller falls back (forwards
 * without SRS, or refuses).  The 64 also keeps every address we make one
 * our own smtpd accepts when the bounce comes back (src/smtp/parse.c).
 *
 * Accepted syntax: dot-atom local parts (RFC 5322 atext and dots, no
 * leading, trailing or double dot, UTF-8 octets allowed for SMTPUTF8) and
 * LDH or UTF-8 domains; quoted local parts and address literals are
 * SRS_MALFORMED for srs_forward(), so the caller falls back.  The
 * separator after the tag may be '=', '+' or '-' when reading (libsrs2
 * allows admins to pick one); we always write '='.  A sender that only
 * looks like SRS0/SRS1 but does not have its shape is wrapped as a plain
 * sender.
 *
 * Not here: which domain F to use for an alias, and the domain part of a
 * bounce address (srs_reverse() ignores it; the caller only hands it
 * addresses at domains it forwards for).  Thread-safety: a struct srs is
 * read-only after loading, so any number of threads may use it. */
#ifndef SM_SRS_H
#define SM_SRS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define SRS_LOCAL_MAX 64           /* octets in a local part */
#define SRS_DOMAIN_MAX 253         /* octets in a domain */
#define SRS_ADDRESS_MAX 254        /* local@domain: a 256-octet path with <> */
#define SRS_MAX_AGE_DEFAULT 21     /* days a rewritten address stays valid */
#define SRS_MAX_AGE_MAX 365        /* bounded well inside the 1024-day cycle */
#define SRS_HASH_LEN_DEFAULT 4     /* base64 characters of the HMAC written */
#define SRS_HASH_LEN_MAX 16        /* most that may be configured */
#define SRS_SECRETS_MAX 8          /* secrets held at once (1 signs) */
#define SRS_SECRET_TEXT_MAX 128    /* characters of one secret line */
#define SRS_SECRET_MIN_BYTES 16    /* decoded bytes a secret must have */
#define SRS_SECRET_GEN_BYTES 32    /* random bytes srs_secrets_generate() makes */
#define SRS_SECRET_FILE_MAX 16384  /* bytes of a secret file */

enum srs_result {
    SRS_OK = 0,    /* rewritten (forward) or reversed (reverse) */
    SRS_UNCHANGED, /* forward: the null sender, or already at domain F */
    SRS_NOT_SRS,   /* reverse: the local part is not SRS0/SRS1 */
    SRS_MALFORMED, /* the input has not the syntax we accept */
    SRS_FORGED,    /* reverse: the hash verifies under no secret */
    SRS_EXPIRED,   /* reverse: authentic, but too old (or from the future) */
    SRS_TOO_LONG,  /* an input, or the rewritten address, exceeds a limit */
};

struct srs_options {
    unsigned max_age_days; /* 1..SRS_MAX_AGE_MAX */
    unsigned hash_len;     /* SRS_HASH_LEN_DEFAULT..SRS_HASH_LEN_MAX */
};

struct srs;

/* Fill o with the defaults (21 days, 4-character hash). */
void srs_options_default(struct srs_options *o);

/* A fresh rewriter with no secret yet; opts NULL means the defaults.
 * Returns NULL with *error_r (static text) when an option is out of
 * bounds.  Add secrets with srs_add_secret(); forwarding or reversing
 * with none is a programming error (sm_panic).  Free with srs_free(). */
struct srs *srs_new(const struct srs_options *opts, const char **error_r);

/* Add one secret (its text, len characters; see the top comment): the
 * first added signs, every one verifies.  Returns 0, or -1 with
 * *error_r when it is not base64 of at least SRS_SECRET_MIN_BYTES bytes,
 * is longer than SRS_SECRET_TEXT_MAX, or SRS_SECRETS_MAX are held. */
int srs_add_secret(struct srs *srs, const char *text, size_t len, const char **error_r);

/* Add the secrets of a secret file's content (len bytes, see the top
 * comment), in order.  Returns the number added (>= 1), or -1 with
 * *error_r (naming no secret) when a line is bad or there is none. */
int srs_add_secrets_text(struct srs *srs, const char *text, size_t len, const char **error_r);

/* srs_new() and srs_add_secrets_text() on the file at path, which must be
 * a regular file, at most SRS_SECRET_FILE_MAX bytes, not accessible by
 * group or others.  The content is read into secret memory and wiped.
 * Returns NULL with *error_r (and errno, for system errors). */
struct srs *srs_load(const char *path, const struct srs_options *opts, const char **error_r);

/* Write a secret file at path holding a new secret (SRS_SECRET_GEN_BYTES
 * random bytes, base64) after a comment line.  Without rotate, an
 * existing file is an error (a secret is never lost by accident); with
 * rotate, the secrets of the existing file follow the new one (the oldest
 * dropped beyond SRS_SECRETS_MAX), and a missing file is created.  The
 * file is written to a temporary name with mode 0600, synced, renamed
 * over path and the directory synced, so readers see the old file or the
 * new one, whole.  Returns 0, or -1 with *error_r (and errno). */
int srs_secrets_generate(const char *path, bool rotate, const char **error_r);

/* Wipe and free; sets *srs to NULL, accepts NULL. */
void srs_free(struct srs **srs);

/* Rewrite the envelope sender `sender` ("local@domain", or "" / "<>" for
 * the null sender) of mail forwarded by `domain` (F), at time now, into
 * out (NUL-terminated).  Returns SRS_OK with the SRS0/SRS1 address,
 * SRS_UNCHANGED with a copy of sender ("" for the null sender) when it
 * must not be rewritten, or SRS_MALFORMED / SRS_TOO_LONG with out = "". */
enum srs_result srs_forward(const struct srs *srs, const char *sender, const char *domain,
                            time_t now, char out[SRS_ADDRESS_MAX + 1]);

/* Reverse `address` ("local@domain", an SRS address at one of our
 * domains; the domain is not looked at), at time now, into out.  Returns
 * SRS_OK with the original sender (from SRS0) or the previous forwarder's
 * SRS0 address (from SRS1), or SRS_NOT_SRS, SRS_MALFORMED, SRS_FORGED,
 * SRS_EXPIRED, SRS_TOO_LONG with out = "".  SRS1 carries no day: it is
 * the previous forwarder that checks the age of what it made. */
enum srs_result srs_reverse(const struct srs *srs, const char *address, time_t now,
                            char out[SRS_ADDRESS_MAX + 1]);

/* Whether local part local (len octets) starts like an SRS address
 * ("SRS0" or "SRS1", any case, then '=', '+' or '-'): a quick test for
 * routing, with no check of the rest. */
bool srs_is_srs(const char *local, size_t len);

/* A short constant name for a result ("ok", "forged", ...), for logs. */
const char *srs_result_name(enum srs_result r);

#endif
