/* mailbox-append.c — messages coming into the store: the import of drop/
 * and IMAP APPEND; and the compact text of MIME part offsets both store.
 *
 * IMPORT AND CRASHES.  One transaction records every drop file; after the
 * commit the files are renamed from drop/ to msg/ and both directories
 * are synced.  A crash before the commit leaves the files in drop/ and
 * nothing in the store: the next import does it all again.  A crash after
 * it leaves some recorded files in drop/: the next import finds their
 * names in messages.file and only moves them (and readers look in drop/
 * when msg/ lacks a file).  A file delivered twice under the same name is
 * recorded once (messages.file is UNIQUE).  So nothing is lost and
 * nothing is duplicated, whenever the process dies.
 *
 * APPEND.  The owner's message is sealed to the mailbox's public key (like
 * a delivery) straight into msg/ under a fresh random name, made durable,
 * and only then recorded.  A crash before the commit leaves an orphan file
 * in msg/, which mailbox_verify() removes; a failed or rolled-back
 * transaction removes it at once.
 *
 * FILE KEYS.  Both record the body file's own key in file_keys (format 8),
 * so readers open it without an X25519: the importer gets it from the
 * drop file it opens anyway, APPEND from the sealing.  COPY and MOVE make
 * mail rows that share the message row, and so its file, key and header.
 *
 * HEADER BLOCKS.  Both also keep the message's top header block, its
 * empty line included, in headers (format 9) when it ends within
 * MB_HEADER_BLOCK_MAX bytes: FETCH serves header items from it without
 * opening the file (as Dovecot's index cache does).  It is cut from the
 * plaintext with section.c's own rule, so the bytes served are the file's.
 *
 * PARTS.  messages.parts is "SECTION:HEADER_START:BODY_START:BODY_END"
 * per MIME part in document order, separated by single spaces, numbers in
 * decimal: what FETCH BODY[section] needs without parsing the message
 * again. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/fileio.h"
#include "core/mem.h"
#include "crypto/seal.h"
#include "mime/mime.h"
#include "mime/section.h"
#include "store/drop.h"
#include "store/mailbox-internal.h"
#include "store/sealfile.h"

#define IMPORT_BATCH_MAX 100000 /* files one import takes; the rest wait for the next */
#define SECTION_MAX 512         /* bytes of one section number in parts */
/* file keys an import records for an upgraded store (one X25519 and a read
 * each: 47-77 ms for 1,000 in a release build on 2 busy vCPUs, added to a
 * login until all are there) */
#define KEY_FILL_BATCH 1000

/* --- recording a message --------------------------------------------------------- */

static const char SQL_INSERT_MESSAGE[] =
    "INSERT INTO messages (file, size, internaldate, date, subject, from_addr, to_addr,"
    " cc_addr, message_id, envelope, bodystructure, body, parts)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
/* a table of its own (format 10): the texts would fill the messages rows */
static const char SQL_INSERT_TEXTS[] =
    "INSERT INTO texts (id, search_headers, search_text) VALUES (?1, ?2, ?3)";
/* OR REPLACE: a key left behind by a row deleted outside the trigger's reach */
static const char SQL_INSERT_KEY[] = "INSERT OR REPLACE INTO file_keys (id, key) VALUES (?1, ?2)";

static const char SQL_INSERT_HEADER[] =
    "INSERT OR REPLACE INTO headers (id, block) VALUES (?1, ?2)";

int mb_record_header(struct mailbox *mb, int64_t id, int fd, const char **error_r)
{
    unsigned char *buf = sm_malloc(MB_HEADER_BLOCK_MAX);
    ssize_t n = sm_pread_full(fd, buf, MB_HEADER_BLOCK_MAX, 0);
    size_t len = n > 0 ? section_header_length(buf, (size_t)n) : 0;
    int ret = 0;
    if (n < 0) {
        *error_r = mb_errno_msg("cannot read the message");
        ret = -1;
    } else if (len > 0) { /* else: no header block within the bound, the file serves it */
        sqlite3_stmt *st = mb_stmt(mb, SQL_INSERT_HEADER, error_r);
        if (st == NULL) {
            ret = -1;
        } else {
            sqlite3_bind_int64(st, 1, id);
            sqlite3_bind_blob(st, 2, buf, (int)len, SQLITE_STATIC);
            ret = mb_run(mb, st, error_r) == SQLITE_DONE ? 0 : -1;
        }
    }
    seal_wipe(buf, MB_HEADER_BLOCK_MAX); /* message content */
    free(buf);
    return ret;
}

int mb_record_file_key(struct mailbox *mb, int64_t id, const uint8_t key[DROP_KEY_BYTES],
                       const char **error_r)
{
    sqlite3_stmt *st = mb_stmt(mb, SQL_INSERT_KEY, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_blob(st, 2, key, DROP_KEY_BYTES, SQLITE_STATIC);
    return mb_run(mb, st, error_r) == SQLITE_DONE ? 0 : -1;
}

int mb_insert_texts(struct mailbox *mb, int64_t id, const struct mime_summary *s,
                    const char **error_r)
{
    sqlite3_stmt *st = mb_stmt(mb, SQL_INSERT_TEXTS, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, s->search_headers != NULL ? s->search_headers : "", -1,
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 3, s->search_text != NULL ? s->search_text : "", -1, SQLITE_STATIC);
    return mb_run(mb, st, error_r) == SQLITE_DONE ? 0 : -1;
}

void mb_parts_encode(const struct mime_summary *s, struct sm_buf *b)
{
    for (unsigned i = 0; i < s->n_sections; i++) {
        const struct mime_part_offsets *p = &s->parts[i];
        sm_buf_printf(b, "%s%s:%" PRIu64 ":%" PRIu64 ":%" PRIu64, i > 0 ? " " : "", p->section,
                      p->header_start, p->body_start, p->body_end);
    }
}

int mb_insert_message(struct mailbox *mb, const char *file, int64_t received,
                      const struct mime_summary *s, const uint8_t *file_key, int fd,
                      int64_t *id_r, const char **error_r)
{
    struct sm_buf parts;
    sqlite3_stmt *st = mb_stmt(mb, SQL_INSERT_MESSAGE, error_r);
    if (st == NULL)
        return -1;
    sm_buf_init(&parts, 0);
    mb_parts_encode(s, &parts);
    sqlite3_bind_text(st, 1, file, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)s->size); /* the IMAP size, not the file's */
    sqlite3_bind_int64(st, 3, received);
    sqlite3_bind_int64(st, 4, s->date);
    const char *text[] = {s->subject,       s->from, s->to,      s->cc,
                          s->message_id,    s->envelope, s->bodystructure, s->body,
                          sm_buf_str(&parts)};
    for (int i = 0; i < 9; i++)
        sqlite3_bind_text(st, 5 + i, text[i] != NULL ? text[i] : "", -1, SQLITE_STATIC);
    int rc = mb_run(mb, st, error_r);
    sm_buf_free(&parts);
    if (rc != SQLITE_DONE)
        return -1;
    *id_r = sqlite3_last_insert_rowid(mb->db);
    if (mb_insert_texts(mb, *id_r, s, error_r) < 0)
        return -1;
    if (file_key != NULL && mb_record_file_key(mb, *id_r, file_key, error_r) < 0)
        return -1;
    return fd >= 0 ? mb_record_header(mb, *id_r, fd, error_r) : 0;
}

/* --- import --------------------------------------------------------------------- */

static void names_add(void *arg, const char *name)
{
    struct mb_names *ns = arg;
    if (ns->n < IMPORT_BATCH_MAX)
        mb_names_add(ns, name);
}

static const char SQL_KNOWN[] = "SELECT 1 FROM messages WHERE file = ?1";

/* 1 when file is recorded in the store already, 0 when not, -1. */
static int is_known(struct mailbox *mb, const char *file, const char **error_r)
{
    sqlite3_stmt *st = mb_stmt(mb, SQL_KNOWN, error_r);
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, file, -1, SQLITE_STATIC);
    int rc = mb_run(mb, st, error_r);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* Open, analyse and record one drop file in INBOX, or in Junk when the
 * delivery said so (DMARC quarantine) and the store has a Junk folder.
 * 1: the store has it (now or from an earlier import); 0: refused (logged
 * and counted); -1: a store error that aborts the import. */
static int import_one(struct mailbox *mb, int64_t inbox, int64_t junk, const char *file,
                      struct mailbox_import_stats *stats, const char **error_r)
{
    unsigned flags = 0;
    uint8_t key[DROP_KEY_BYTES];
    struct mime_summary s;
    const char *why;
    int64_t received, id;
    uint64_t size;
    uint32_t uid;

    int known = is_known(mb, file, error_r);
    if (known != 0) {
        stats->already += known > 0;
        return known;
    }
    int fd = memfd_create("sealmail-import", MFD_CLOEXEC);
    if (fd < 0) {
        *error_r = mb_errno_msg("memfd_create");
        return -1;
    }
    int ret = 0;
    struct sealfile_key k = {.pk = mb->pk, .sk = mb->sk, .key_r = key};
    if (drop_read_k(mb->dir, DROP_AREA_DROP, file, &k, fd, &received, &size, &flags, &why) < 0) {
        log_warn("mailbox import-refused file=%s error=\"%s\"", file, why);
        stats->refused++;
    } else if (mime_analyse_fd(fd, &s, &why) < 0) {
        log_warn("mailbox import-refused file=%s error=\"%s\"", file, why);
        stats->refused++;
    } else {
        ret = mb_insert_message(mb, file, received, &s, key, fd, &id, error_r) < 0 ||
                      mb_insert_mail(mb, (flags & DROP_F_JUNK) && junk > 0 ? junk : inbox, id,
                                     0, "", &uid, error_r) < 0
                  ? -1
                  : 1;
        mime_summary_free(&s);
        stats->imported += ret > 0;
        stats->bytes += ret > 0 ? size : 0;
    }
    close(fd); /* the plaintext copy lived only in this memfd */
    seal_wipe(key, sizeof key);
    return ret;
}

/* After the commit: the files the store now has move to msg/ (refused
 * ones were dropped from ns and stay in drop/). */
static int move_files(struct mailbox *mb, const struct mb_names *ns, const char **error_r)
{
    for (size_t i = 0; i < ns->n; i++)
        if (ns->v[i] != NULL && drop_move_to_msg(mb->dir, ns->v[i], error_r) < 0)
            return -1;
    return drop_sync(mb->dir, error_r);
}

/* Record every name of ns in one transaction. */
static int import_all(struct mailbox *mb, struct mb_names *ns,
                      struct mailbox_import_stats *stats, const char **error_r)
{
    struct mb_txn t;
    int64_t inbox, junk = 0;
    if (mb_folder_id(mb, "INBOX", &inbox, NULL, error_r) < 0 ||
        mb_junk_folder(mb, &junk, error_r) < 0 || mb_txn_begin(mb, &t, error_r) < 0)
        return -1;
    for (size_t i = 0; i < ns->n; i++) {
        int r = import_one(mb, inbox, junk, ns->v[i], stats, error_r);
        if (r < 0) {
            mb_txn_abort(mb, &t);
            return -1;
        }
        if (r == 0)
            sm_freep(&ns->v[i]); /* refused: it stays in drop/ */
    }
    return mb_txn_commit(mb, &t, error_r);
}

int mailbox_import(struct mailbox *mb, struct mailbox_import_stats *stats, const char **error_r)
{
    struct mb_names ns = {0};

    memset(stats, 0, sizeof *stats);
    if (mb->in_group) {
        *error_r = "import cannot run inside a transaction";
        return -1;
    }
    if (drop_list(mb->dir, names_add, &ns, error_r) < 0)
        return -1;
    int ret = 0;
    const char *move_error;
    if (ns.n > 0 && (ret = import_all(mb, &ns, stats, error_r)) == 0 &&
        move_files(mb, &ns, &move_error) < 0)
        /* committed: the next import finishes the move, readers look in
         * drop/ meanwhile; -1 would claim nothing was committed */
        log_warn("mailbox import-move-failed error=\"%s\"", move_error);
    mb_names_free(&ns);
    const char *fill_error;
    if (ret == 0 && mb_fill_file_keys(mb, KEY_FILL_BATCH, &fill_error) < 0)
        /* those bodies are read through their sealed keys meanwhile */
        log_warn("mailbox key-fill-failed error=\"%s\"", fill_error);
    return ret;
}

/* --- append --------------------------------------------------------------------- */

/* Seal fd into msg/ under a fresh random name (in name[33]); its file key
 * in key. */
static int store_file(struct mailbox *mb, int fd, int64_t internaldate, char *name,
                      uint8_t key[DROP_KEY_BYTES], const char **error_r)
{
    uint8_t rnd[16];
    uint64_t sealed;
    for (int attempt = 0; attempt < 3; attempt++) {
        seal_random(rnd, sizeof rnd);
        for (size_t i = 0; i < sizeof rnd; i++)
            snprintf(name + 2 * i, 3, "%02x", rnd[i]);
        int r = drop_store_key(mb->dir, DROP_AREA_MSG, name, mb->pk, internaldate, fd, &sealed,
                               key, error_r);
        if (r != 0)
            return r < 0 ? -1 : 0;
    }
    *error_r = "cannot find a free message file name";
    return -1;
}

/* The rows of an appended message whose file is name. */
static int append_rows(struct mailbox *mb, int64_t folder, const char *name,
                       const uint8_t *key, int fd, int64_t internaldate,
                       const struct mime_summary *s, unsigned flags, struct mb_keywords *k,
                       uint32_t *uid_r, const char **error_r)
{
    struct sm_buf kw;
    int64_t id;
    if (mb_keywords_adopt(mb, folder, k, true, error_r) < 0 ||
        mb_insert_message(mb, name, internaldate, s, key, fd, &id, error_r) < 0)
        return -1;
    sm_buf_init(&kw, 0);
    mb_keywords_join(k, &kw);
    int ret = mb_insert_mail(mb, folder, id, flags, sm_buf_str(&kw), uid_r, error_r);
    sm_buf_free(&kw);
    return ret;
}

/* The file is durable in msg/: record it in one transaction. */
static int append_record(struct mailbox *mb, int64_t folder, const char *name,
                         const uint8_t *key, int fd, int64_t internaldate,
                         const struct mime_summary *s, unsigned flags, struct mb_keywords *k,
                         uint32_t *uid_r, const char **error_r)
{
    struct mb_txn t;
    const char *why;
    if (mb_txn_begin(mb, &t, error_r) < 0) {
        drop_remove(mb->dir, DROP_AREA_MSG, name, &why);
        return -1;
    }
    mb_names_add(&mb->fresh, name); /* removed again if the rows roll back */
    if (append_rows(mb, folder, name, key, fd, internaldate, s, flags, k, uid_r, error_r) < 0) {
        mb_txn_abort(mb, &t);
        return -1;
    }
    return mb_txn_commit(mb, &t, error_r);
}

int mailbox_append(struct mailbox *mb, const char *folder, int fd, unsigned flags,
                   const char *keywords, int64_t internaldate, uint32_t *uid_r,
                   uint32_t *uidvalidity_r, const char **error_r)
{
    struct mb_keywords k = {0};
    struct mime_summary s;
    struct stat st;
    char name[DROP_NAME_MAX + 1];
    uint8_t key[DROP_KEY_BYTES];
    int64_t id;
    uint32_t uid, validity;

    if ((flags & ~MB_FLAGS_ALL) != 0) {
        *error_r = "invalid flags";
        return -1;
    }
    int ret = mb_folder_id(mb, folder, &id, &validity, error_r);
    if (ret < 0)
        return ret;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        *error_r = "message to append is not a regular file";
        return -1;
    }
    if (mb_keywords_parse(keywords, &k, error_r) < 0)
        return -1;
    if (internaldate == 0)
        internaldate = (int64_t)time(NULL);
    ret = -1;
    if (mime_analyse_fd(fd, &s, error_r) == 0) {
        if (store_file(mb, fd, internaldate, name, key, error_r) == 0)
            ret = append_record(mb, id, name, key, fd, internaldate, &s, flags, &k, &uid,
                                error_r);
        seal_wipe(key, sizeof key);
        mime_summary_free(&s);
    }
    mb_keywords_free(&k);
    if (ret < 0)
        return -1;
    if (uid_r != NULL)
        *uid_r = uid;
    if (uidvalidity_r != NULL)
        *uidvalidity_r = validity;
    return 0;
}

/* --- part offsets --------------------------------------------------------------- */

static bool parse_u64(const char **p, char end, uint64_t *v)
{
    const char *s = *p;
    uint64_t n = 0;
    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (n > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return false;
        n = n * 10 + (uint64_t)(*s - '0');
    }
    if (*s != end)
        return false;
    *p = s + (end != '\0');
    *v = n;
    return true;
}

/* One "SECTION:H:B:E" entry at *p, up to a space or the end. */
static bool parse_part(const char **p, struct mime_part_offsets *out)
{
    const char *s = *p;
    size_t n = strspn(s, "0123456789.");
    if (n > SECTION_MAX || s[n] != ':')
        return false;
    const char *q = s + n + 1;
    uint64_t h, b, e;
    const char *space = strchr(q, ' ');
    char last = space != NULL ? ' ' : '\0';
    if (!parse_u64(&q, ':', &h) || !parse_u64(&q, ':', &b) || !parse_u64(&q, last, &e) ||
        h > b || b > e)
        return false;
    out->section = sm_strndup(s, n);
    out->header_start = h;
    out->body_start = b;
    out->body_end = e;
    *p = q;
    return true;
}

int mailbox_parts_decode(const char *parts, struct mime_part_offsets **parts_r, unsigned *n_r)
{
    *parts_r = NULL;
    *n_r = 0;
    if (parts[0] == '\0')
        return 0;
    size_t count = 1;
    for (const char *c = parts; *c != '\0'; c++)
        count += *c == ' ';
    if (count > UINT32_MAX)
        return -1;
    struct mime_part_offsets *v = sm_calloc(count, sizeof *v);
    const char *p = parts;
    unsigned n = 0;
    while (n < count && parse_part(&p, &v[n]))
        n++;
    if (n < count || *p != '\0') {
        mailbox_parts_free(v, n);
        return -1;
    }
    *parts_r = v;
    *n_r = n;
    return 0;
}

void mailbox_parts_free(struct mime_part_offsets *parts, unsigned n)
{
    if (parts == NULL)
        return;
    for (unsigned i = 0; i < n; i++)
        free(parts[i].section);
    free(parts);
}
