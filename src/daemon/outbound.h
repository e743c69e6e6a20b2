/* outbound.h — queued's outbound delivery: the outbound queue (store/outq.h)
 * driven on queued's event loop.
 *
 * Routing (worker thread): outbound_enqueue() is deliver.h's outbound
 * hook.  It DKIM-signs the message when the domain of its From: header
 * is hosted here and has active keys (both keys: RSA and Ed25519,
 * RFC 6376 / RFC 8463; the author domain is what DMARC aligns with, so
 * it is the one that signs), then makes it a durable outq entry.
 *
 * Delivery (loop thread): the loop keeps every entry's id and next
 * attempt time in memory, filled by a full scan at start, by the router
 * (outbound_routed() after each routed batch: new entries go out at once)
 * and by each attempt's end (its saved state, or the entry is gone).
 * Due entries are tried from there, oldest id first, up to max_parallel
 * at a time; a finished attempt starts the next one without reading the
 * queue.  A full scan every scan_interval (outbound_scan()) is the safety
 * net: it lists the queue and reads the state of each entry not already
 * due or running, so what the CLI changed (a retry makes an entry due, a
 * removal takes it away), copies the forwarder queued and anything
 * missed are found within scan_interval;
 * an entry an attempt or the router changed meanwhile keeps the newer,
 * in-memory time.  Nothing here is trusted for safety: each attempt
 * locks the entry and reads its state again.  File work (opening,
 * saving, removing, scans) runs on the engine's own OUTBOUND_THREADS
 * workers, so it never waits behind routing.  One attempt of one entry:
 *   - its lock is taken (the CLI waits) and its message decrypted into a
 *     memfd; an entry whose spool file still exists is left alone (it is
 *     being routed: sending it now could send it twice);
 *   - the pending recipients are grouped by domain; per domain, one after
 *     another: MX lookup (no MX: the domain itself, RFC 5321 §5.1; null
 *     MX, RFC 7505: permanent failure; NXDOMAIN: permanent failure), MX
 *     hosts in preference order, for each its A and AAAA records, and
 *     when the MX and address answers were DNSSEC-secure its TLSA records
 *     (_25._tcp.HOST): secure and present -> SMTP_TLS_DANE (RFC 7672,
 *     before MTA-STS); bogus or failed -> this host is skipped (never a
 *     downgrade); else the MTA-STS policy hook (not implemented: no
 *     policy is ever known, see sts_policy()) -> SMTP_TLS_VERIFY_NAME;
 *     else SMTP_TLS_OPPORTUNISTIC (and once SMTP_TLS_NONE on the same
 *     address when the handshake failed, RFC 7435);
 *   - the next address and MX host are tried only while the failure is
 *     the whole session's before any recipient was answered;
 *   - after each session that decided anything, the state is saved
 *     durably BEFORE the next session starts: a recipient a server
 *     accepted is never sent again.  When the session settled every
 *     recipient (all delivered), there is no next session and the
 *     entry's durable removal is that record: no save comes first.
 * After the attempt: recipients still pending get the next attempt time
 * from the retry schedule, or fail when the entry is older than max_age;
 * failed recipients get a DSN (dsn.h) written to the spool, so it is
 * delivered like any message (a local sender's mailbox, or outbound with
 * the null sender); a delay notice goes out once after delay_notice.
 * A null-sender message never causes a notice.  An entry with nothing
 * left to do is removed. */
#ifndef SM_DAEMON_OUTBOUND_H
#define SM_DAEMON_OUTBOUND_H

#include <stddef.h>
#include <stdint.h>

struct directory;
struct event_base;
struct outbound;
struct sm_config;
struct spool_envelope;
struct workpool;

struct outbound_params {
    const struct sm_config *cfg;
    struct event_base *base;
    struct workpool *pool;
    const uint8_t *pk, *sk;  /* the spool key pair (SPOOL_PK_BYTES, SPOOL_SK_BYTES) */
    const char *spool_dir;   /* data_dir/spool */
    /* A notice was committed to the spool: deliver it as incoming mail. */
    void (*spool_ready)(void *arg, const char *id);
    void *arg;
};

/* Start: DNS resolver, TLS client context, the queue directory (created,
 * crash leftovers removed), the spool for notices.  NULL with *error_r. */
struct outbound *outbound_new(const struct outbound_params *p, const char **error_r);
/* The entries ids were routed (outbound_enqueue) and their spool entries
 * are gone: try them now.  Loop thread. */
void outbound_routed(struct outbound *ob, const char *const *ids, size_t n);
/* Read the whole queue now (entries were created by another writer, the
 * forwarder), as the periodic scan does.  Loop thread. */
void outbound_scan(struct outbound *ob);
/* Attempts still running (sessions are abandoned by outbound_free; the
 * state saved so far stays). */
unsigned outbound_active(const struct outbound *ob);
/* Stop: no new attempts; sessions and DNS queries running are dropped
 * (the state already records what a server accepted).  Call before the
 * worker pool is freed: the attempts waiting for a worker then end in
 * their completions.  Accepts NULL. */
void outbound_stop(struct outbound *ob);
/* Free, after outbound_stop() and the pool's end.  Accepts NULL; sets
 * *ob to NULL. */
void outbound_free(struct outbound **ob);

/* deliver.h's outbound hook, on a worker thread with its own directory
 * handle dir: sign and queue the n remote recipients of spool entry id. */
int outbound_enqueue(struct outbound *ob, struct directory *dir, const char *id,
                     const struct spool_envelope *env, const char *const *rcpts, size_t n,
                     const char *prefix, size_t prefix_len, int body, const char **error_r);

/* Default place of the queue: data_dir/queue. */
int outbound_queue_dir(char *out, size_t outlen, const char *data_dir);

#endif
