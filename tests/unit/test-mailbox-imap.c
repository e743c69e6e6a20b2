/* test-mailbox-imap.c — what the mailbox store serves IMAP and POP3:
 * folders (create with parents, names, UIDVALIDITY, delete, rename,
 * subscribe), flags and keywords with MODSEQs and UNCHANGEDSINCE,
 * expunge and VANISHED, copy and move sharing bodies, append, changes
 * since a MODSEQ, the change token across two handles, transactions,
 * orphan files, file keys recorded in the store (import, APPEND, COPY;
 * read without the secret key; a wrong or stale key fails), the format
 * upgrades, and a 10,000-message folder.  Every test runs on an
 * encrypted store and on a plain one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "crypto/seal.h"
#include "mime/mime.h"
#include "store/drop.h"
#include "store/mailbox-internal.h"
#include "store/mailbox.h"
#include "store/sealfile.h"
#include "store/sealvfs.h"

static char root[64];
static uint8_t pk[32], sk[32], mk[32];
static unsigned serial;

struct variant {
    const char *name;
    const uint8_t *key;
};
static struct variant v_sealed = {"sealed", mk}, v_plain = {"plain", NULL};

struct store {
    char dir[192];
    const uint8_t *key;
    struct mailbox *mb;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/test-mailbox-imap.XXXXXX");
    if (mkdtemp(root) == NULL || seal_init() < 0 || mime_init() < 0)
        return -1;
    seal_keypair(pk, sk);
    seal_random(mk, sizeof mk);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static struct mailbox *open_ok(const struct store *s)
{
    const char *error = NULL;
    struct mailbox *mb = mailbox_open(s->dir, s->key, pk, sk, &error);
    if (mb == NULL)
        fail_msg("mailbox_open: %s", error);
    return mb;
}

/* A new store for one test, opened. */
static void store_new(struct store *s, void **state)
{
    const struct variant *v = *state;
    const char *error = NULL;
    snprintf(s->dir, sizeof s->dir, "%s/%s-%u", root, v->name, serial++);
    s->key = v->key;
    if (mailbox_create(s->dir, s->key, &error) < 0)
        fail_msg("mailbox_create: %s", error);
    s->mb = open_ok(s);
}

static void store_close(struct store *s)
{
    mailbox_close(&s->mb);
}

static int message_fd(const char *text)
{
    int fd = memfd_create("msg", MFD_CLOEXEC);
    size_t n = strlen(text);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    return fd;
}

static void message_text(char *out, size_t len, unsigned i)
{
    snprintf(out, len,
             "From: Sender %u <s%u@example.org>\r\nTo: <rcpt@example.net>\r\n"
             "Subject: message %u\r\nMessage-ID: <%u@example.org>\r\n"
             "Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n\r\n"
             "Body of message %u with the word heron%u in it.\r\n",
             i, i, i, i, i, i);
}

/* Append message i to folder; its UID. */
static uint32_t append(struct mailbox *mb, const char *folder, unsigned i, unsigned flags,
                       const char *keywords)
{
    char text[1024];
    const char *error = NULL;
    uint32_t uid = 0, validity = 0;
    message_text(text, sizeof text, i);
    int fd = message_fd(text);
    if (mailbox_append(mb, folder, fd, flags, keywords, 0, &uid, &validity, &error) != 0)
        fail_msg("mailbox_append: %s", error);
    close(fd);
    assert_true(uid > 0 && validity > 0);
    return uid;
}

static struct mailbox_folder folder(struct mailbox *mb, const char *name)
{
    struct mailbox_folder f;
    const char *error = NULL;
    if (mailbox_folder_get(mb, name, &f, &error) != 1)
        fail_msg("folder %s: %s", name, error ? error : "missing");
    return f;
}

static bool folder_exists(struct mailbox *mb, const char *name)
{
    struct mailbox_folder f;
    const char *error;
    return mailbox_folder_get(mb, name, &f, &error) == 1;
}

/* Files in msg/ (bodies), leftovers of writes excluded. */
static unsigned msg_files(const struct store *s)
{
    char path[256];
    unsigned n = 0;
    snprintf(path, sizeof path, "%s/msg", s->dir);
    DIR *d = opendir(path);
    struct dirent *de;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        n += drop_name_valid(de->d_name);
    closedir(d);
    return n;
}

static bool msg_file_exists(const struct store *s, const char *file)
{
    return drop_exists(s->dir, DROP_AREA_MSG, file);
}

/* The body file of uid in folder (copied). */
static void file_of(struct mailbox *mb, const char *folder, uint32_t uid, char out[64])
{
    struct mailbox_message m;
    const char *error = NULL;
    if (mailbox_message_get(mb, folder, uid, &m, &error) != 1)
        fail_msg("message %s/%u: %s", folder, uid, error ? error : "missing");
    snprintf(out, 64, "%s", m.file);
}

/* --- folders -------------------------------------------------------------------- */

static const struct {
    const char *label, *name;
} bad_names[] = {
    {"empty", ""},
    {"leading slash", "/a"},
    {"trailing slash", "a/"},
    {"double slash", "a//b"},
    {"control character", "a\x01z"},
    {"DEL", "a\x7fz"},
    {"C1 control", "a\xc2\x85z"},
    {"invalid UTF-8", "caf\xc3\x28"},
    {"overlong UTF-8", "a\xc0\xafz"},
    {"surrogate", "a\xed\xa0\x80z"},
    {"cut UTF-8", "caf\xc3"},
    {"wildcard *", "a*"},
    {"wildcard %", "a%b"},
    {"17 levels", "1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17"},
};

static void test_folder_create(void **state)
{
    struct store s;
    const char *error = NULL;
    store_new(&s, state);
    struct mailbox *mb = s.mb;

    assert_int_equal(mailbox_folder_create(mb, "Work/Projects/2026", NULL, &error), 0);
    assert_true(folder_exists(mb, "Work"));
    assert_true(folder_exists(mb, "Work/Projects"));
    struct mailbox_folder f = folder(mb, "Work/Projects/2026");
    assert_string_equal(f.name, "Work/Projects/2026");
    assert_false(f.subscribed);
    assert_int_equal(f.messages, 0);
    assert_int_equal(f.uidnext, 1);
    assert_int_equal(mailbox_folder_create(mb, "Work/Projects", NULL, &error), MAILBOX_EXISTS);
    assert_int_equal(mailbox_folder_create(mb, "inbox", NULL, &error), MAILBOX_EXISTS);
    assert_int_equal(mailbox_folder_create(mb, "work", NULL, &error), 0); /* names are exact */

    /* INBOX and its prefix are case-insensitive */
    assert_string_equal(folder(mb, "iNbOx").name, "INBOX");
    assert_int_equal(mailbox_folder_create(mb, "inbox/Lists", NULL, &error), 0);
    assert_string_equal(folder(mb, "Inbox/Lists").name, "INBOX/Lists");
    assert_false(folder_exists(mb, "INBOX/lists"));

    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        error = NULL;
        if (mailbox_folder_create(mb, bad_names[i].name, NULL, &error) != MAILBOX_CANNOT)
            fail_msg("name accepted: %s", bad_names[i].label);
        assert_non_null(error);
    }
    char longname[MAILBOX_FOLDER_MAX + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(mailbox_folder_create(mb, longname, NULL, &error), MAILBOX_CANNOT);
    longname[MAILBOX_FOLDER_MAX] = '\0';
    assert_int_equal(mailbox_folder_create(mb, longname, NULL, &error), 0);
    assert_int_equal(mailbox_folder_create(mb, "1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16", NULL,
                                           &error), 0);
    assert_int_equal(mailbox_folder_create(mb, "Caf\xc3\xa9 \xe2\x9c\x88 \xf0\x9f\x93\xab", NULL,
                                           &error), 0);

    /* special use */
    assert_int_equal(mailbox_folder_create(mb, "Old Sent", "\\sent", &error), 0);
    assert_string_equal(folder(mb, "Old Sent").special_use, "\\Sent");
    assert_int_equal(mailbox_folder_create(mb, "Odd", "\\Bogus", &error), -1);
    assert_false(folder_exists(mb, "Odd"));

    /* UIDVALIDITY only grows, even for a name deleted and created again */
    uint32_t v1 = folder(mb, "work").uidvalidity;
    assert_int_equal(mailbox_folder_delete(mb, "work", &error), 0);
    assert_int_equal(mailbox_folder_create(mb, "work", NULL, &error), 0);
    uint32_t v2 = folder(mb, "work").uidvalidity;
    assert_true(v2 > v1);
    assert_true(v1 > folder(mb, "Work").uidvalidity);
    store_close(&s);
}

static void test_folder_limit(void **state)
{
    struct store s;
    const char *error = NULL;
    char name[32];
    store_new(&s, state);
    assert_int_equal(mailbox_begin(s.mb, &error), 0);
    int r = 0;
    unsigned made = 0;
    for (unsigned i = 0; r == 0 && i < MAILBOX_FOLDERS_MAX + 10; i++) {
        snprintf(name, sizeof name, "f%u", i);
        if ((r = mailbox_folder_create(s.mb, name, NULL, &error)) == 0)
            made++;
    }
    assert_int_equal(r, -1);
    assert_string_equal(error, "too many folders");
    assert_int_equal(mailbox_commit(s.mb, &error), 0);
    assert_int_equal(made + 6, MAILBOX_FOLDERS_MAX); /* six standard folders */
    store_close(&s);
}

static void test_folder_delete(void **state)
{
    struct store s;
    const char *error = NULL;
    char shared[64], own[64];
    uint32_t new_uid[1];
    store_new(&s, state);
    struct mailbox *mb = s.mb;

    assert_int_equal(mailbox_folder_delete(mb, "INBOX", &error), MAILBOX_CANNOT);
    assert_int_equal(mailbox_folder_delete(mb, "inbox", &error), MAILBOX_CANNOT);
    assert_int_equal(mailbox_folder_delete(mb, "Nope", &error), MAILBOX_NONEXISTENT);
    assert_int_equal(mailbox_folder_create(mb, "P/C", NULL, &error), 0);

    uint32_t in = append(mb, "INBOX", 1, 0, NULL);
    uint32_t mine = append(mb, "P", 2, 0, NULL);
    assert_int_equal(mailbox_copy(mb, "INBOX", &in, 1, "P", false, new_uid, NULL, NULL, NULL,
                                  &error), 1);
    file_of(mb, "INBOX", in, shared);
    file_of(mb, "P", mine, own);
    assert_int_equal(msg_files(&s), 2);

    assert_int_equal(mailbox_folder_delete(mb, "P", &error), 0);
    assert_false(folder_exists(mb, "P"));
    assert_true(folder_exists(mb, "P/C")); /* children stay */
    assert_false(msg_file_exists(&s, own));
    assert_true(msg_file_exists(&s, shared)); /* INBOX still holds it */
    assert_int_equal(msg_files(&s), 1);
    assert_int_equal(folder(mb, "INBOX").messages, 1);
    uint64_t used = 0;
    assert_int_equal(mailbox_usage(mb, &used, &error), 0);
    assert_int_equal(used, folder(mb, "INBOX").bytes);
    store_close(&s);
}

static void folder_names(void *arg, const struct mailbox_folder *f)
{
    strcat(arg, f->name);
    strcat(arg, ";");
}

static void test_folder_rename(void **state)
{
    struct store s;
    const char *error = NULL;
    char names[1024] = "";
    store_new(&s, state);
    struct mailbox *mb = s.mb;

    assert_int_equal(mailbox_folder_create(mb, "A/B/C", NULL, &error), 0);
    uint32_t uid = append(mb, "A/B", 1, MAILBOX_FLAGGED, "$Work");
    uint32_t validity = folder(mb, "A/B").uidvalidity;
    assert_int_equal(mailbox_folder_subscribe(mb, "A/B", true, &error), 0);

    assert_int_equal(mailbox_folder_rename(mb, "A/B", "Z/Y", &error), 0);
    assert_false(folder_exists(mb, "A/B"));
    assert_false(folder_exists(mb, "A/B/C"));
    assert_true(folder_exists(mb, "A"));
    assert_true(folder_exists(mb, "Z"));     /* the parent, created */
    assert_true(folder_exists(mb, "Z/Y/C")); /* the child, moved */
    struct mailbox_folder f = folder(mb, "Z/Y");
    assert_int_equal(f.uidvalidity, validity);
    assert_int_equal(f.messages, 1);
    assert_false(f.subscribed); /* the subscription stays with the old name (RFC 9051 §6.3.6) */
    struct mailbox_message m;
    assert_int_equal(mailbox_message_get(mb, "Z/Y", uid, &m, &error), 1);
    assert_string_equal(m.keywords, "$Work");

    assert_int_equal(mailbox_folder_rename(mb, "Nope", "X", &error), MAILBOX_NONEXISTENT);
    assert_int_equal(mailbox_folder_rename(mb, "Z/Y", "A", &error), MAILBOX_EXISTS);
    assert_int_equal(mailbox_folder_rename(mb, "Z", "Z/Y/C/D", &error), MAILBOX_CANNOT);
    assert_int_equal(mailbox_folder_rename(mb, "Z", "bad//name", &error), MAILBOX_CANNOT);
    assert_int_equal(mailbox_folder_create(mb, "Q/Y/C", NULL, &error), 0);
    assert_int_equal(mailbox_folder_delete(mb, "Q/Y", &error), 0);
    /* a child's new name is taken: nothing moves */
    assert_int_equal(mailbox_folder_rename(mb, "Z/Y", "Q/Y", &error), MAILBOX_EXISTS);
    assert_true(folder_exists(mb, "Z/Y/C"));

    /* up into a missing parent's place: "Z/Y" -> "Z" after Z is gone */
    assert_int_equal(mailbox_folder_create(mb, "Z/Y/Y", NULL, &error), 0);
    assert_int_equal(mailbox_folder_delete(mb, "Z", &error), 0);
    assert_int_equal(mailbox_folder_rename(mb, "Z/Y", "Z", &error), 0);
    assert_true(folder_exists(mb, "Z"));
    assert_true(folder_exists(mb, "Z/Y")); /* was Z/Y/Y */
    assert_true(folder_exists(mb, "Z/C"));
    assert_false(folder_exists(mb, "Z/Y/Y"));

    /* INBOX: its mail moves to a new folder, INBOX stays, empty */
    uint32_t u1 = append(mb, "INBOX", 2, MAILBOX_SEEN, NULL);
    uint32_t u2 = append(mb, "INBOX", 3, 0, "$Label1");
    struct mailbox_folder before = folder(mb, "INBOX");
    assert_int_equal(mailbox_folder_rename(mb, "inbox", "Old/Inbox", &error), 0);
    struct mailbox_folder inbox = folder(mb, "INBOX"), old = folder(mb, "Old/Inbox");
    assert_int_equal(inbox.messages, 0);
    assert_int_equal(inbox.bytes, 0);
    assert_int_equal(inbox.uidvalidity, before.uidvalidity);
    assert_int_equal(inbox.uidnext, before.uidnext);
    assert_true(inbox.highestmodseq > before.highestmodseq);
    assert_int_equal(old.messages, 2);
    assert_int_equal(old.unseen, 1);
    assert_int_equal(old.bytes, before.bytes);
    assert_int_equal(old.uidnext, before.uidnext);
    assert_true(old.uidvalidity > before.uidvalidity);
    assert_int_equal(mailbox_message_get(mb, "Old/Inbox", u1, &m, &error), 1);
    assert_int_equal(mailbox_message_get(mb, "Old/Inbox", u2, &m, &error), 1);
    assert_string_equal(m.keywords, "$Label1");
    assert_int_equal(mailbox_message_get(mb, "INBOX", u1, &m, &error), 0);
    assert_int_equal(mailbox_folder_rename(mb, "INBOX", "Old/Inbox", &error), MAILBOX_EXISTS);
    assert_true(mailbox_folders(mb, folder_names, names, &error) > 0);
    assert_non_null(strstr(names, "INBOX;"));
    assert_non_null(strstr(names, "Old;Old/Inbox;"));
    assert_true(uid > 0);
    store_close(&s);
}

static void collect_name(void *arg, const char *name)
{
    strcat(arg, name);
    strcat(arg, " ");
}

static void test_folder_subscribe(void **state)
{
    struct store s;
    const char *error = NULL;
    store_new(&s, state);
    assert_true(folder(s.mb, "Sent").subscribed); /* the standard folders are */
    assert_int_equal(mailbox_folder_create(s.mb, "News", NULL, &error), 0);
    assert_false(folder(s.mb, "News").subscribed);
    assert_int_equal(mailbox_folder_subscribe(s.mb, "News", true, &error), 0);
    assert_true(folder(s.mb, "News").subscribed);
    assert_int_equal(mailbox_folder_subscribe(s.mb, "News", false, &error), 0);
    assert_false(folder(s.mb, "News").subscribed);
    assert_int_equal(mailbox_folder_subscribe(s.mb, "Nope", true, &error), MAILBOX_NONEXISTENT);
    /* RFC 9051 §6.3.8: unsubscribing a name that is not subscribed is fine */
    assert_int_equal(mailbox_folder_subscribe(s.mb, "Nope", false, &error), 0);
    assert_int_equal(mailbox_folder_subscribe(s.mb, "News", false, &error), 0);

    /* a subscription is a name: it outlives DELETE and stays put on RENAME */
    char names[256] = "";
    assert_int_equal(mailbox_folder_subscribe(s.mb, "News", true, &error), 0);
    assert_int_equal(mailbox_folder_delete(s.mb, "News", &error), 0);
    assert_int_equal(mailbox_folder_create(s.mb, "Old", NULL, &error), 0);
    assert_int_equal(mailbox_folder_subscribe(s.mb, "Old", true, &error), 0);
    assert_int_equal(mailbox_folder_rename(s.mb, "Old", "New", &error), 0);
    assert_false(folder(s.mb, "New").subscribed);
    assert_int_equal(mailbox_subscriptions(s.mb, collect_name, names, &error), 8);
    assert_string_equal(names, "Archive Drafts INBOX Junk News Old Sent Trash ");
    assert_int_equal(mailbox_folder_subscribe(s.mb, "News", false, &error), 0);
    assert_int_equal(mailbox_subscriptions(s.mb, collect_name, names, &error), 7);
    store_close(&s);
}

/* \Recent: the first session to see a message claims it. */
static void test_recent(void **state)
{
    struct store s;
    const char *error = NULL;
    uint32_t before;
    uint64_t count;
    store_new(&s, state);
    append(s.mb, "INBOX", 1, 0, NULL);
    uint32_t two = append(s.mb, "INBOX", 2, 0, NULL);
    assert_int_equal(mailbox_recent(s.mb, "INBOX", 0, &before, &count, &error), 0);
    assert_int_equal(before, 0); /* STATUS RECENT: nobody claimed them */
    assert_int_equal(count, 2);
    assert_int_equal(mailbox_recent(s.mb, "INBOX", two, &before, NULL, &error), 0);
    assert_int_equal(before, 0); /* this session claims both */
    assert_int_equal(mailbox_recent(s.mb, "INBOX", two, &before, &count, &error), 0);
    assert_int_equal(before, two); /* the next one gets none */
    assert_int_equal(count, 0);
    assert_int_equal(mailbox_recent(s.mb, "INBOX", 1, &before, NULL, &error), 0);
    assert_int_equal(before, two); /* never back */
    assert_int_equal(mailbox_recent(s.mb, "Nope", 1, &before, NULL, &error),
                     MAILBOX_NONEXISTENT);
    store_close(&s);
}

/* --- flags ---------------------------------------------------------------------- */

static void collect_keyword(void *arg, const char *kw)
{
    strcat(arg, kw);
    strcat(arg, " ");
}

static const struct {
    const char *label, *keywords;
} bad_keywords[] = {
    {"parenthesis", "a(b"},   {"brace", "a{1}"},          {"system flag", "\\Seen"},
    {"quote", "say\"hi"},     {"bracket", "x]"},          {"wildcard", "al*"},
    {"percent", "50%"},       {"8-bit", "caf\xc3\xa9"},   {"control", "a\tb"},
};

static void test_flags(void **state)
{
    struct store s;
    const char *error = NULL;
    struct mailbox_message after;
    char kws[4096] = "";
    store_new(&s, state);
    struct mailbox *mb = s.mb;
    uint32_t uid = append(mb, "INBOX", 1, 0, NULL);
    struct mailbox_message m;
    assert_int_equal(mailbox_message_get(mb, "INBOX", uid, &m, &error), 1);
    uint64_t modseq = m.modseq;
    assert_int_equal(folder(mb, "INBOX").highestmodseq, modseq);
    assert_int_equal(folder(mb, "INBOX").unseen, 1);

    assert_int_equal(mailbox_store_flags(mb, "INBOX", uid, MAILBOX_FLAGS_ADD, MAILBOX_SEEN, NULL,
                                         0, &after, &error), 1);
    assert_int_equal(after.flags, MAILBOX_SEEN);
    assert_true(after.modseq > modseq);
    assert_int_equal(folder(mb, "INBOX").highestmodseq, after.modseq);
    assert_int_equal(folder(mb, "INBOX").unseen, 0);
    modseq = after.modseq;
    /* already so: no change, MODSEQ kept */
    assert_int_equal(mailbox_store_flags(mb, "INBOX", uid, MAILBOX_FLAGS_ADD, MAILBOX_SEEN, "",
                                         0, &after, &error), 0);
    assert_int_equal(after.modseq, modseq);
    assert_int_equal(mailbox_store_flags(mb, "INBOX", uid, MAILBOX_FLAGS_ADD,
                                         MAILBOX_FLAGGED | MAILBOX_DELETED, "$Junk  Work $junk",
                                         0, &after, &error), 1);
    assert_int_equal(after.flags, MAILBOX_SEEN | MAILBOX_FLAGGED | MAILBOX_DELETED);
    assert_string_equal(after.keywords, "$Junk Work");
    assert_int_equal(folder(mb, "INBOX").deleted, 1);
    assert_int_equal(mailbox_store_flags(mb, "INBOX", uid, MAILBOX_FLAGS_REMOVE, MAILBOX_DELETED,
                                         "WORK", 0, &after, &error), 1);
    assert_int_equal(after.flags, MAILBOX_SEEN | MAILBOX_FLAGGED);
    assert_string_equal(after.keywords, "$Junk");
    assert_int_equal(folder(mb, "INBOX").deleted, 0);
    /* the folder's spelling wins; SET replaces everything */
    assert_int_equal(mailbox_store_flags(mb, "INBOX", uid, MAILBOX_FLAGS_SET, MAILBOX_ANSWERED,
                                         "work $JUNK", 0, &after, &error), 1);
    assert_int_equal(after.flags, MAILBOX_ANSWERED);
    assert_string_equal(after.keywords, "Work $Junk");
    /* the same set in another order is no change */
    assert_int_equal(mailbox_store_flags(mb, "INBOX", uid, MAILBOX_FLAGS_SET, MAILBOX_ANSWERED,
                                         "$junk work", 0, &after, &error), 0);
    assert_int_equal(mailbox_folder_keywords(mb, "INBOX", collect_keyword, kws, &error), 2);
    assert_string_equal(kws, "$Junk Work ");

    /* UNCHANGEDSINCE */
    modseq = after.modseq;
    assert_int_equal(mailbox_store_flags(mb, "INBOX", uid, MAILBOX_FLAGS_ADD, MAILBOX_DRAFT,
                                         NULL, modseq - 1, &after, &error), 2);
    assert_int_equal(after.flags, MAILBOX_ANSWERED);
    assert_int_equal(after.modseq, modseq);
    assert_int_equal(mailbox_store_flags(mb, "INBOX", uid, MAILBOX_FLAGS_ADD, MAILBOX_DRAFT,
                                         NULL, modseq, &after, &error), 1);
    assert_int_equal(after.flags, MAILBOX_ANSWERED | MAILBOX_DRAFT);

    /* errors */
    assert_int_equal(mailbox_store_flags(mb, "INBOX", uid + 100, MAILBOX_FLAGS_ADD, 0, NULL, 0,
                                         &after, &error), MAILBOX_NONEXISTENT);
    assert_int_equal(mailbox_store_flags(mb, "Nope", uid, MAILBOX_FLAGS_ADD, 0, NULL, 0, &after,
                                         &error), MAILBOX_NONEXISTENT);
    assert_int_equal(mailbox_store_flags(mb, "INBOX", uid, MAILBOX_FLAGS_ADD, 64, NULL, 0,
                                         &after, &error), -1);
    for (size_t i = 0; i < sizeof bad_keywords / sizeof bad_keywords[0]; i++)
        if (mailbox_store_flags(mb, "INBOX", uid, MAILBOX_FLAGS_ADD, 0, bad_keywords[i].keywords,
                                0, &after, &error) != -1)
            fail_msg("keyword accepted: %s", bad_keywords[i].label);
    char longkw[MAILBOX_KEYWORD_MAX + 2];
    memset(longkw, 'k', sizeof longkw - 1);
    longkw[sizeof longkw - 1] = '\0';
    assert_int_equal(mailbox_store_flags(mb, "INBOX", uid, MAILBOX_FLAGS_ADD, 0, longkw, 0,
                                         &after, &error), -1);
    longkw[MAILBOX_KEYWORD_MAX] = '\0';
    assert_int_equal(mailbox_store_flags(mb, "INBOX", uid, MAILBOX_FLAGS_ADD, 0, longkw, 0,
                                         &after, &error), 1);

    /* 64 keywords on a message at most, 100 distinct in a folder */
    char many[8192] = "";
    for (unsigned i = 0; i < MAILBOX_MESSAGE_KEYWORDS + 1; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "k%u ", i);
    assert_int_equal(mailbox_store_flags(mb, "INBOX", uid, MAILBOX_FLAGS_SET, 0, many, 0,
                                         &after, &error), -1);
    /* 100 distinct keywords in use in a folder at most ($Junk, Work, kkk... are known) */
    uint32_t holders[3] = {uid, append(mb, "INBOX", 2, 0, NULL), append(mb, "INBOX", 3, 0, NULL)};
    int r = 0;
    unsigned i;
    for (i = 0; r >= 0 && i < 200; i++) {
        char kw[32];
        snprintf(kw, sizeof kw, "w%u", i);
        r = mailbox_store_flags(mb, "INBOX", holders[i / 50], MAILBOX_FLAGS_ADD, 0, kw, 0,
                                &after, &error);
    }
    assert_int_equal(r, -1);
    assert_string_equal(error, "too many keywords in this folder");
    assert_int_equal(i - 1 + 3, MAILBOX_FOLDER_KEYWORDS);
    /* keywords no message holds any more make room */
    assert_int_equal(mailbox_store_flags(mb, "INBOX", holders[1], MAILBOX_FLAGS_SET, 0, NULL, 0,
                                         &after, &error), 1);
    assert_int_equal(mailbox_store_flags(mb, "INBOX", holders[2], MAILBOX_FLAGS_ADD, 0,
                                         "Fresh_Word", 0, &after, &error), 1);
    kws[0] = '\0';
    int known = mailbox_folder_keywords(mb, "INBOX", collect_keyword, kws, &error);
    assert_int_equal(known, 3 + 50 + 1); /* the first message's, and the new one */
    assert_non_null(strstr(kws, "Fresh_Word "));
    assert_null(strstr(kws, "w50 "));
    assert_non_null(strstr(kws, "w49 "));
    store_close(&s);
}

/* --- expunge, copy, move -------------------------------------------------------- */

struct uid_list {
    uint32_t v[64];
    unsigned n;
};

static void add_uid(void *arg, uint32_t uid)
{
    struct uid_list *l = arg;
    if (l->n > 0)
        assert_true(uid > l->v[l->n - 1]);
    l->v[l->n++] = uid;
}

static void add_changed(void *arg, const struct mailbox_message *m)
{
    add_uid(arg, m->uid);
}

static void set_deleted(struct mailbox *mb, const char *folder, uint32_t uid)
{
    const char *error = NULL;
    assert_int_equal(mailbox_store_flags(mb, folder, uid, MAILBOX_FLAGS_ADD, MAILBOX_DELETED,
                                         NULL, 0, NULL, &error), 1);
}

static void test_expunge(void **state)
{
    struct store s;
    const char *error = NULL;
    uint32_t uids[6];
    char shared[64], gone[64];
    store_new(&s, state);
    struct mailbox *mb = s.mb;
    for (unsigned i = 0; i < 6; i++)
        uids[i] = append(mb, "INBOX", i, 0, NULL);
    uint32_t copy_uid;
    assert_int_equal(mailbox_copy(mb, "INBOX", &uids[1], 1, "Archive", false, &copy_uid, NULL,
                                  NULL, NULL, &error), 1);
    file_of(mb, "INBOX", uids[1], shared);
    file_of(mb, "INBOX", uids[3], gone);
    set_deleted(mb, "INBOX", uids[1]);
    set_deleted(mb, "INBOX", uids[3]);
    set_deleted(mb, "INBOX", uids[5]);
    assert_int_equal(folder(mb, "INBOX").deleted, 3);
    uint64_t mark = folder(mb, "INBOX").highestmodseq;

    /* UID EXPUNGE: only \Deleted messages of the set */
    struct uid_list ex = {0};
    uint32_t set[] = {uids[5], uids[0], uids[3], 999};
    assert_int_equal(mailbox_expunge(mb, "INBOX", set, 4, add_uid, &ex, &error), 2);
    assert_int_equal(ex.n, 2);
    assert_int_equal(ex.v[0], uids[3]);
    assert_int_equal(ex.v[1], uids[5]);
    assert_false(msg_file_exists(&s, gone));
    struct mailbox_folder f = folder(mb, "INBOX");
    assert_int_equal(f.messages, 4);
    assert_int_equal(f.deleted, 1);
    assert_true(f.highestmodseq > mark);

    /* VANISHED since the mark */
    struct uid_list van = {0}, chg = {0};
    assert_int_equal(mailbox_changes(mb, "INBOX", mark, add_changed, add_uid, &van, &error), 2);
    assert_int_equal(van.n, 2);
    assert_int_equal(van.v[0], uids[3]);
    assert_int_equal(mailbox_changes(mb, "INBOX", f.highestmodseq, add_changed, add_uid, &chg,
                                     &error), 0);

    /* EXPUNGE: every \Deleted one; a body another folder holds survives */
    ex.n = 0;
    assert_int_equal(mailbox_expunge(mb, "INBOX", NULL, 0, add_uid, &ex, &error), 1);
    assert_int_equal(ex.v[0], uids[1]);
    assert_true(msg_file_exists(&s, shared));
    assert_int_equal(mailbox_expunge(mb, "INBOX", NULL, 0, NULL, NULL, &error), 0);
    set_deleted(mb, "Archive", copy_uid);
    assert_int_equal(mailbox_expunge(mb, "Archive", NULL, 0, NULL, NULL, &error), 1);
    assert_false(msg_file_exists(&s, shared)); /* the last reference is gone */
    assert_int_equal(msg_files(&s), 3);
    assert_int_equal(mailbox_expunge(mb, "Nope", NULL, 0, NULL, NULL, &error),
                     MAILBOX_NONEXISTENT);

    uint32_t *all;
    size_t n;
    assert_int_equal(mailbox_uids(mb, "INBOX", &all, &n, &error), 0);
    assert_int_equal(n, 3);
    assert_int_equal(all[0], uids[0]);
    assert_int_equal(all[1], uids[2]);
    assert_int_equal(all[2], uids[4]);
    free(all);
    struct mailbox_check c;
    assert_int_equal(mailbox_verify(mb, true, &c, &error), 0);
    assert_true(c.integrity_ok);
    assert_int_equal(c.messages, 3);
    assert_int_equal(c.bodies_bad, 0);
    assert_int_equal(c.orphans, 0);
    store_close(&s);
}

static void test_copy_move(void **state)
{
    struct store s;
    const char *error = NULL;
    uint32_t uids[4], new_uids[4], validity = 0;
    char before[64], after_file[64];
    store_new(&s, state);
    struct mailbox *mb = s.mb;
    for (unsigned i = 0; i < 4; i++)
        uids[i] = append(mb, "INBOX", i, i == 2 ? MAILBOX_SEEN : 0, i == 2 ? "$Important" : "");
    assert_int_equal(mailbox_folder_create(mb, "Dest", NULL, &error), 0);
    struct mailbox_folder dest = folder(mb, "Dest");

    /* COPY in the given order; a missing UID is skipped */
    uint32_t set[] = {uids[2], 4242, uids[0]};
    assert_int_equal(mailbox_copy(mb, "INBOX", set, 3, "Dest", false, new_uids, &validity, NULL,
                                  NULL, &error), 2);
    assert_int_equal(validity, dest.uidvalidity);
    assert_int_equal(new_uids[0], dest.uidnext);
    assert_int_equal(new_uids[1], 0);
    assert_int_equal(new_uids[2], dest.uidnext + 1);
    file_of(mb, "INBOX", uids[2], before);
    file_of(mb, "Dest", new_uids[0], after_file);
    assert_string_equal(before, after_file); /* one body, shared */
    assert_int_equal(msg_files(&s), 4);
    struct mailbox_message m;
    assert_int_equal(mailbox_message_get(mb, "Dest", new_uids[0], &m, &error), 1);
    assert_int_equal(m.flags, MAILBOX_SEEN);
    assert_string_equal(m.keywords, "$Important");
    assert_int_equal(m.modseq, folder(mb, "Dest").highestmodseq - 1);
    dest = folder(mb, "Dest");
    assert_int_equal(dest.messages, 2);
    assert_int_equal(dest.unseen, 1);
    uint64_t sizes = m.size;
    assert_int_equal(mailbox_message_get(mb, "INBOX", uids[0], &m, &error), 1);
    assert_int_equal(dest.bytes, sizes + m.size);
    char kws[256] = "";
    assert_int_equal(mailbox_folder_keywords(mb, "Dest", collect_keyword, kws, &error), 1);

    /* MOVE: the source rows go and are reported and recorded */
    struct uid_list moved = {0}, van = {0};
    uint64_t mark = folder(mb, "INBOX").highestmodseq;
    uint32_t mset[] = {uids[3], uids[1]};
    assert_int_equal(mailbox_copy(mb, "INBOX", mset, 2, "Dest", true, new_uids, &validity,
                                  add_uid, &moved, &error), 2);
    assert_int_equal(moved.n, 2);
    assert_int_equal(moved.v[0], uids[1]);
    assert_int_equal(moved.v[1], uids[3]);
    assert_int_equal(new_uids[0], dest.uidnext);
    assert_int_equal(new_uids[1], dest.uidnext + 1);
    assert_int_equal(folder(mb, "INBOX").messages, 2);
    assert_int_equal(folder(mb, "Dest").messages, 4);
    assert_int_equal(msg_files(&s), 4);
    assert_int_equal(mailbox_changes(mb, "INBOX", mark, NULL, add_uid, &van, &error), 2);
    assert_int_equal(van.v[0], uids[1]);

    /* COPY to the same folder, MOVE within it */
    assert_int_equal(mailbox_copy(mb, "INBOX", uids, 1, "INBOX", false, new_uids, NULL, NULL,
                                  NULL, &error), 1);
    assert_int_equal(new_uids[0], uids[3] + 1);
    assert_int_equal(folder(mb, "INBOX").messages, 3);
    assert_int_equal(mailbox_copy(mb, "INBOX", uids, 1, "INBOX", true, new_uids, NULL, NULL,
                                  NULL, &error), 1);
    assert_int_equal(folder(mb, "INBOX").messages, 3);
    assert_int_equal(mailbox_copy(mb, "INBOX", uids, 1, "Nope", false, new_uids, NULL, NULL,
                                  NULL, &error), MAILBOX_NONEXISTENT);
    assert_int_equal(mailbox_copy(mb, "Nope", uids, 1, "INBOX", false, new_uids, NULL, NULL,
                                  NULL, &error), MAILBOX_NONEXISTENT);
    store_close(&s);
}

/* --- append --------------------------------------------------------------------- */

static const char multipart[] =
    "From: Alice <alice@example.org>\r\n"
    "To: Bob <bob@example.net>\r\n"
    "Subject: with an attachment\r\n"
    "Date: Mon, 23 Nov 2026 09:30:00 +0100\r\n"
    "Message-ID: <part@example.org>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n"
    "\r\n"
    "preamble\r\n"
    "--XYZ\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "The kingfisher text part.\r\n"
    "--XYZ\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "AAECAwQF\r\n"
    "--XYZ--\r\n";

static void count_hit(void *arg, uint32_t uid)
{
    (void)uid;
    (*(unsigned *)arg)++;
}

static void test_append(void **state)
{
    struct store s;
    const char *error = NULL;
    uint32_t uid = 0, validity = 0;
    store_new(&s, state);
    struct mailbox *mb = s.mb;
    struct mailbox_folder f = folder(mb, "Sent");
    int fd = message_fd(multipart);
    assert_int_equal(mailbox_append(mb, "sent", fd, 0, NULL, 0, &uid, &validity, &error),
                     MAILBOX_NONEXISTENT); /* only INBOX is case-insensitive */
    assert_int_equal(mailbox_append(mb, "Sent", fd, MAILBOX_SEEN | MAILBOX_DRAFT, "$MDNSent",
                                    1800000000, &uid, &validity, &error), 0);
    close(fd);
    assert_int_equal(uid, f.uidnext);
    assert_int_equal(validity, f.uidvalidity);
    assert_int_equal(msg_files(&s), 1);

    struct mailbox_message m;
    assert_int_equal(mailbox_message_get(mb, "Sent", uid, &m, &error), 1);
    assert_int_equal(m.size, sizeof multipart - 1);
    assert_int_equal(m.internaldate, 1800000000);
    assert_int_equal(m.flags, MAILBOX_SEEN | MAILBOX_DRAFT);
    assert_string_equal(m.keywords, "$MDNSent");
    assert_string_equal(m.subject, "with an attachment");
    assert_string_equal(m.from, "alice@example.org");
    assert_string_equal(m.to, "bob@example.net");
    assert_string_equal(m.message_id, "<part@example.org>");
    assert_true(m.date > 0);
    assert_non_null(strstr(m.bodystructure, "\"mixed\""));
    assert_non_null(strstr(m.body, "\"mixed\""));
    assert_non_null(strstr(m.envelope, "with an attachment"));
    assert_true(m.modseq > f.highestmodseq);

    /* the parts give back each section's bytes */
    struct mime_part_offsets *parts;
    unsigned n;
    assert_int_equal(mailbox_parts_decode(m.parts, &parts, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(parts[0].section, "1");
    assert_string_equal(parts[1].section, "2");
    assert_memory_equal(multipart + parts[0].body_start, "The kingfisher text part.",
                        parts[0].body_end - parts[0].body_start);
    assert_memory_equal(multipart + parts[1].body_start, "AAECAwQF",
                        parts[1].body_end - parts[1].body_start);
    mailbox_parts_free(parts, n);

    /* the body, byte for byte */
    char file[64];
    snprintf(file, sizeof file, "%s", m.file);
    int body = mailbox_open_body(mb, file, &error);
    assert_true(body >= 0);
    char back[2048];
    ssize_t got = pread(body, back, sizeof back, 0);
    close(body);
    assert_int_equal(got, sizeof multipart - 1);
    assert_memory_equal(back, multipart, sizeof multipart - 1);
    assert_int_equal(mailbox_open_body(mb, "00000000000000000000000000000000", &error), -1);
    /* ... and into memory, the buffer reused from read to read */
    struct mailbox_body mem = MAILBOX_BODY_INIT;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(mailbox_body_read(mb, file, i, SIZE_MAX, &mem, &error), 0);
        assert_true(mem.whole);
        assert_int_equal(mem.len, sizeof multipart - 1);
        assert_memory_equal(mem.data, multipart, sizeof multipart - 1);
    }
    assert_int_equal(mailbox_body_read(mb, file, 0, 10, &mem, &error), -1);
    assert_int_equal(mailbox_body_read(mb, "00000000000000000000000000000000", 0, SIZE_MAX, &mem,
                                       &error), -1);
    assert_int_equal(mem.len, 0);
    mailbox_body_release(&mem);

    unsigned hits = 0;
    assert_int_equal(mailbox_search_text(mb, "Sent", "kingfisher", count_hit, &hits, &error), 1);
    assert_int_equal(hits, 1);

    /* refusals write nothing */
    fd = message_fd(multipart);
    assert_int_equal(mailbox_append(mb, "Sent", fd, 0, "bad(kw", 0, &uid, &validity, &error),
                     -1);
    assert_int_equal(mailbox_append(mb, "Sent", fd, 1u << 9, NULL, 0, &uid, &validity, &error),
                     -1);
    /* internaldate 0 is now */
    assert_int_equal(mailbox_append(mb, "INBOX", fd, 0, NULL, 0, &uid, NULL, &error), 0);
    close(fd);
    assert_int_equal(mailbox_message_get(mb, "INBOX", uid, &m, &error), 1);
    assert_true(m.internaldate >= (int64_t)time(NULL) - 60);
    assert_int_equal(msg_files(&s), 2);

    /* a body in a memfd of 3 MB, with bare LF line ends */
    size_t big = 3 * 1024 * 1024;
    char *data = malloc(big);
    memset(data, 'x', big);
    memcpy(data, "Subject: big\n\n", 14);
    for (size_t i = 100; i < big; i += 77)
        data[i] = '\n';
    fd = memfd_create("big", MFD_CLOEXEC);
    assert_int_equal(write(fd, data, big), (ssize_t)big);
    assert_int_equal(mailbox_append(mb, "INBOX", fd, 0, NULL, 0, &uid, NULL, &error), 0);
    close(fd);
    assert_int_equal(mailbox_message_get(mb, "INBOX", uid, &m, &error), 1);
    size_t lfs = 0; /* the IMAP size counts each bare LF as CRLF (RFC 9051 §2.3.4) */
    for (size_t i = 0; i < big; i++)
        lfs += data[i] == '\n';
    assert_int_equal(m.size, big + lfs);
    body = mailbox_open_body(mb, m.file, &error);
    char *round = malloc(big);
    assert_int_equal(pread(body, round, big, 0), (ssize_t)big);
    assert_memory_equal(round, data, big);
    close(body);
    /* its first chunk only (a FETCH of the header), then all of it */
    assert_int_equal(mailbox_body_read(mb, m.file, 20, SIZE_MAX, &mem, &error), 0);
    assert_false(mem.whole);
    assert_int_equal(mem.len, 65536);
    assert_memory_equal(mem.data, data, 65536);
    assert_int_equal(mailbox_body_read(mb, m.file, 0, SIZE_MAX, &mem, &error), 0);
    assert_true(mem.whole);
    assert_int_equal(mem.len, big);
    assert_memory_equal(mem.data, data, big);
    mailbox_body_release(&mem);
    free(round);
    free(data);
    store_close(&s);
}

static void test_parts_decode(void **state)
{
    struct mime_part_offsets *p;
    unsigned n;
    (void)state;
    assert_int_equal(mailbox_parts_decode("", &p, &n), 0);
    assert_null(p);
    assert_int_equal(n, 0);
    assert_int_equal(mailbox_parts_decode("1:0:10:20 1.2:20:30:40", &p, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(p[1].section, "1.2");
    assert_int_equal(p[1].header_start, 20);
    assert_int_equal(p[1].body_start, 30);
    assert_int_equal(p[1].body_end, 40);
    mailbox_parts_free(p, n);
    static const char *const bad[] = {
        "1:0:10",         "1:0:10:20 ",           "1:0:10:20  2:0:0:0", "x:0:0:0",
        "1:20:10:30",     "1:0:30:20",            "1:0:0:99999999999999999999",
        "1;0:0:0",        "1:0:0:0:0",            " 1:0:0:0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = (void *)1;
        if (mailbox_parts_decode(bad[i], &p, &n) != -1)
            fail_msg("accepted: \"%s\"", bad[i]);
        assert_null(p);
    }
}

/* --- changes, the change token, transactions ------------------------------------ */

static void test_changes(void **state)
{
    struct store s;
    const char *error = NULL;
    uint32_t uids[5];
    store_new(&s, state);
    struct mailbox *mb = s.mb;
    for (unsigned i = 0; i < 5; i++)
        uids[i] = append(mb, "INBOX", i, 0, NULL);
    uint64_t mark = folder(mb, "INBOX").highestmodseq;
    struct uid_list chg = {0}, van = {0};
    assert_int_equal(mailbox_changes(mb, "INBOX", 0, add_changed, NULL, &chg, &error), 5);
    assert_int_equal(chg.n, 5);
    chg.n = 0;
    assert_int_equal(mailbox_changes(mb, "INBOX", mark, add_changed, add_uid, &chg, &error), 0);
    set_deleted(mb, "INBOX", uids[3]);
    assert_int_equal(mailbox_store_flags(mb, "INBOX", uids[1], MAILBOX_FLAGS_ADD, 0, "seen-by-x",
                                         0, NULL, &error), 1);
    uint32_t fresh = append(mb, "INBOX", 9, 0, NULL);
    assert_int_equal(mailbox_expunge(mb, "INBOX", NULL, 0, NULL, NULL, &error), 1);
    /* the count includes the vanished UID, reported or not */
    assert_int_equal(mailbox_changes(mb, "INBOX", mark, add_changed, NULL, &chg, &error), 3);
    assert_int_equal(chg.n, 2);
    assert_int_equal(chg.v[0], uids[1]);
    assert_int_equal(chg.v[1], fresh);
    assert_int_equal(mailbox_changes(mb, "INBOX", mark, NULL, add_uid, &van, &error), 3);
    assert_int_equal(van.v[0], uids[3]);
    assert_int_equal(mailbox_changes(mb, "Nope", 0, NULL, NULL, NULL, &error),
                     MAILBOX_NONEXISTENT);

    /* ranges */
    chg.n = 0;
    assert_int_equal(mailbox_messages_range(mb, "INBOX", uids[1], uids[2], add_changed, &chg,
                                            &error), 2);
    chg.n = 0;
    assert_int_equal(mailbox_messages_range(mb, "INBOX", MAILBOX_UID_ANY, uids[4], add_changed,
                                            &chg, &error), 2);
    assert_int_equal(chg.v[1], fresh);
    chg.n = 0;
    assert_int_equal(mailbox_messages(mb, "INBOX", add_changed, &chg, &error), 5);
    assert_int_equal(mailbox_messages(mb, "Nope", add_changed, &chg, &error),
                     MAILBOX_NONEXISTENT);
    struct mailbox_message m;
    assert_int_equal(mailbox_message_get(mb, "INBOX", uids[3], &m, &error), 0);
    assert_int_equal(mailbox_message_get(mb, "Nope", uids[0], &m, &error), MAILBOX_NONEXISTENT);

    /* lists: the UIDs asked for that the folder holds (uids[3] is gone,
     * uids[2] not asked for), with only the texts asked for */
    struct mailbox_list l;
    uint32_t want[] = {uids[0], uids[1], uids[3], uids[4], fresh};
    assert_int_equal(mailbox_messages_list(mb, "INBOX", want, 5, MAILBOX_COL_ENVELOPE, &l,
                                           &error), 0);
    assert_int_equal(l.n, 4);
    assert_int_equal(l.v[0].uid, uids[0]);
    assert_int_equal(l.v[1].uid, uids[1]);
    assert_string_equal(l.v[1].keywords, "seen-by-x");
    assert_int_equal(l.v[2].uid, uids[4]);
    assert_int_equal(l.v[3].uid, fresh);
    assert_int_equal(mailbox_message_get(mb, "INBOX", fresh, &m, &error), 1);
    assert_string_equal(l.v[3].envelope, m.envelope);
    assert_string_equal(l.v[3].file, m.file);
    assert_string_equal(l.v[3].parts, m.parts);
    assert_int_equal(l.v[3].size, m.size);
    assert_int_equal(l.v[3].modseq, m.modseq);
    assert_string_equal(l.v[3].bodystructure, "");
    assert_string_equal(l.v[3].body, "");
    mailbox_list_free(&l);
    assert_int_equal(mailbox_messages_list(mb, "INBOX", want, 0, 0, &l, &error), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(mailbox_messages_list(mb, "Nope", want, 5, 0, &l, &error),
                     MAILBOX_NONEXISTENT);
    assert_int_equal(l.n, 0);
    store_close(&s);
}

static uint64_t token(struct mailbox *mb)
{
    uint64_t t = 0;
    const char *error = NULL;
    if (mailbox_change_token(mb, &t, &error) < 0)
        fail_msg("mailbox_change_token: %s", error);
    return t;
}

static void test_change_token(void **state)
{
    struct store s;
    const char *error = NULL;
    store_new(&s, state);
    struct mailbox *other = open_ok(&s); /* a second connection, as another process has */
    uint32_t uid = append(s.mb, "INBOX", 1, 0, NULL);
    uint64_t t0 = token(s.mb);
    assert_int_equal(token(s.mb), t0);
    /* a change through the other handle */
    assert_int_equal(mailbox_store_flags(other, "INBOX", uid, MAILBOX_FLAGS_ADD, MAILBOX_SEEN,
                                         NULL, 0, NULL, &error), 1);
    uint64_t t1 = token(s.mb);
    assert_true(t1 != t0);
    assert_int_equal(token(s.mb), t1);
    /* no change: the same token */
    assert_int_equal(mailbox_store_flags(other, "INBOX", uid, MAILBOX_FLAGS_ADD, MAILBOX_SEEN,
                                         NULL, 0, NULL, &error), 0);
    assert_int_equal(token(s.mb), t1);
    /* the handle's own change */
    assert_int_equal(mailbox_folder_create(s.mb, "New", NULL, &error), 0);
    uint64_t t2 = token(s.mb);
    assert_true(t2 != t1);
    /* the other handle sees it too, and its state is current */
    struct mailbox_folder f;
    assert_int_equal(mailbox_folder_get(other, "New", &f, &error), 1);
    /* a delivery to drop/ */
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
    int fd = message_fd("Subject: delivered\r\n\r\nhi\r\n");
    uint64_t sealed;
    assert_int_equal(drop_deliver(s.dir, "00000000000000aa", pk, 1700000000, fd, &sealed, &error),
                     1);
    close(fd);
    uint64_t t3 = token(s.mb);
    assert_true(t3 != t2);
    struct mailbox_import_stats st;
    assert_int_equal(mailbox_import(other, &st, &error), 0);
    assert_int_equal(st.imported, 1);
    assert_true(token(s.mb) != t3);
    assert_int_equal(folder(s.mb, "INBOX").messages, 2);
    /* an imported message has its part offsets too */
    struct mailbox_message m;
    assert_int_equal(mailbox_message_get(s.mb, "INBOX", uid + 1, &m, &error), 1);
    assert_string_equal(m.parts, "1:0:22:26");
    assert_int_equal(m.modseq, folder(s.mb, "INBOX").highestmodseq);
    mailbox_close(&other);
    store_close(&s);
}

static void test_transactions(void **state)
{
    struct store s;
    const char *error = NULL;
    char file[64];
    store_new(&s, state);
    struct mailbox *mb = s.mb;
    uint32_t a = append(mb, "INBOX", 1, 0, NULL);
    uint32_t b = append(mb, "INBOX", 2, 0, NULL);
    file_of(mb, "INBOX", b, file);

    /* rollback undoes everything, removes appended files, keeps doomed ones */
    assert_int_equal(mailbox_begin(mb, &error), 0);
    assert_int_equal(mailbox_begin(mb, &error), -1);
    set_deleted(mb, "INBOX", a);
    set_deleted(mb, "INBOX", b);
    assert_int_equal(mailbox_expunge(mb, "INBOX", NULL, 0, NULL, NULL, &error), 2);
    assert_true(msg_file_exists(&s, file)); /* not before the commit */
    append(mb, "INBOX", 3, 0, NULL);
    assert_int_equal(msg_files(&s), 3);
    assert_int_equal(mailbox_folder_create(mb, "Temp", NULL, &error), 0);
    /* a failing call inside undoes only itself */
    assert_int_equal(mailbox_folder_create(mb, "Temp", NULL, &error), MAILBOX_EXISTS);
    assert_true(folder_exists(mb, "Temp"));
    mailbox_rollback(mb);
    assert_false(folder_exists(mb, "Temp"));
    assert_int_equal(folder(mb, "INBOX").messages, 2);
    assert_int_equal(folder(mb, "INBOX").deleted, 0);
    assert_int_equal(msg_files(&s), 2);
    assert_int_equal(mailbox_commit(mb, &error), -1);

    /* commit: the files of expunged bodies go after it */
    assert_int_equal(mailbox_begin(mb, &error), 0);
    set_deleted(mb, "INBOX", b);
    assert_int_equal(mailbox_expunge(mb, "INBOX", NULL, 0, NULL, NULL, &error), 1);
    uint32_t c = append(mb, "INBOX", 4, 0, NULL);
    assert_true(msg_file_exists(&s, file));
    assert_int_equal(mailbox_commit(mb, &error), 0);
    assert_false(msg_file_exists(&s, file));
    assert_int_equal(msg_files(&s), 2);
    assert_int_equal(folder(mb, "INBOX").messages, 2);
    assert_int_equal(mailbox_import(mb, &(struct mailbox_import_stats){0}, &error), 0);
    assert_true(c > b);

    /* closing with an open group rolls it back */
    assert_int_equal(mailbox_begin(mb, &error), 0);
    assert_int_equal(mailbox_folder_create(mb, "Lost", NULL, &error), 0);
    mailbox_close(&s.mb);
    s.mb = open_ok(&s);
    assert_false(folder_exists(s.mb, "Lost"));
    store_close(&s);
}

/* FETCH BODY[] sets \Seen as it goes: a callback that reads and writes
 * through the same handle while the iteration runs. */
struct reentry {
    struct mailbox *mb;
    unsigned seen, got;
};

static void mark_seen(void *arg, const struct mailbox_message *m)
{
    struct reentry *r = arg;
    struct mailbox_message again;
    const char *error = NULL;
    uint32_t uid = m->uid;
    r->got += mailbox_message_get(r->mb, "INBOX", uid, &again, &error) == 1 && again.uid == uid;
    if (mailbox_store_flags(r->mb, "INBOX", uid, MAILBOX_FLAGS_ADD, MAILBOX_SEEN, NULL, 0, NULL,
                            &error) == 1)
        r->seen++;
    else
        fail_msg("store in a callback: %s", error);
}

static void test_reentry(void **state)
{
    struct store s;
    const char *error = NULL;
    store_new(&s, state);
    for (unsigned i = 0; i < 5; i++)
        append(s.mb, "INBOX", i, 0, NULL);
    struct reentry r = {s.mb, 0, 0};
    assert_int_equal(mailbox_messages(s.mb, "INBOX", mark_seen, &r, &error), 5);
    assert_int_equal(r.seen, 5);
    assert_int_equal(r.got, 5);
    assert_int_equal(folder(s.mb, "INBOX").unseen, 0);
    store_close(&s);
}

/* --- orphans, the format version ------------------------------------------------ */

static void test_orphans_and_version(void **state)
{
    struct store s;
    const char *error = NULL;
    char path[320];
    uint64_t sealed;
    store_new(&s, state);
    append(s.mb, "INBOX", 1, 0, NULL);
    /* two files no row names, as an append killed before its commit leaves */
    int fd = message_fd("Subject: orphan\r\n\r\nx\r\n");
    const char *names[] = {"0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"};
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(drop_store(s.dir, DROP_AREA_MSG, names[i], pk, 1, fd, &sealed, &error),
                         1);
    close(fd);
    snprintf(path, sizeof path, "%s/msg/%s", s.dir, names[0]);
    struct timespec old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
    struct mailbox_check c;
    assert_int_equal(mailbox_verify(s.mb, false, &c, &error), 0);
    assert_int_equal(c.orphans, 2);
    assert_int_equal(c.orphans_removed, 1); /* the young one may be an append in flight */
    assert_false(drop_exists(s.dir, DROP_AREA_MSG, names[0]));
    assert_true(drop_exists(s.dir, DROP_AREA_MSG, names[1]));
    assert_int_equal(msg_files(&s), 2);
    store_close(&s);

    /* another format version is refused with a clear message */
    sqlite3 *db;
    snprintf(path, sizeof path, "%s/store.db", s.dir);
    assert_int_equal(sealvfs_open(path, s.key, false, &db, &error), 0);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
    sealvfs_close(&db);
    assert_null(mailbox_open(s.dir, s.key, pk, sk, &error));
    assert_string_equal(error, "store format 1 not supported");
}

/* --- an older format is upgraded when opened ---------------------------------------- */

/* Run sql on the closed store of s (through the VFS: it may be sealed). */
static void store_sql(const struct store *s, const char *sql)
{
    char path[256];
    const char *error = NULL;
    sqlite3 *db;
    snprintf(path, sizeof path, "%s/store.db", s->dir);
    assert_int_equal(sealvfs_open(path, s->key, false, &db, &error), 0);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sealvfs_close(&db);
}

/* The integer the query sql gives on the closed store of s. */
static int64_t store_count(const struct store *s, const char *sql)
{
    char path[256];
    const char *error = NULL;
    sqlite3 *db;
    sqlite3_stmt *st;
    snprintf(path, sizeof path, "%s/store.db", s->dir);
    assert_int_equal(sealvfs_open(path, s->key, false, &db, &error), 0);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sealvfs_close(&db);
    return n;
}

/* SQL that takes what format 10 changed off a store: the texts back in
 * messages, the full-text index over them (before faking an older one). */
#define OLDER_THAN_10                                                                       \
    "DROP TRIGGER texts_fts_insert; DROP TRIGGER texts_fts_delete;"                         \
    "DROP TRIGGER messages_texts_delete; DROP TABLE messages_fts;"                          \
    "ALTER TABLE messages ADD COLUMN search_headers TEXT NOT NULL DEFAULT '';"              \
    "ALTER TABLE messages ADD COLUMN search_text TEXT NOT NULL DEFAULT '';"                 \
    "UPDATE messages SET search_headers = (SELECT t.search_headers FROM texts t"            \
    "  WHERE t.id = messages.id), search_text = (SELECT t.search_text FROM texts t"          \
    "  WHERE t.id = messages.id);"                                                          \
    "DROP TABLE texts;"                                                                     \
    "CREATE VIRTUAL TABLE messages_fts USING fts5 (search_headers, search_text,"            \
    "  content = 'messages', content_rowid = 'id',"                                         \
    "  tokenize = 'unicode61 remove_diacritics 2');"                                        \
    "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');"                           \
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN"                     \
    "  INSERT INTO messages_fts (rowid, search_headers, search_text)"                       \
    "  VALUES (new.id, new.search_headers, new.search_text);"                               \
    "END;"                                                                                  \
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN"                     \
    "  INSERT INTO messages_fts (messages_fts, rowid, search_headers, search_text)"         \
    "  VALUES ('delete', old.id, old.search_headers, old.search_text);"                     \
    "END;"
/* fails (store_sql()) when messages_fts does not match its content */
#define FTS_CHECK "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check');"
/* ... format 9 */
#define OLDER_THAN_9 OLDER_THAN_10 "DROP TRIGGER messages_header_delete; DROP TABLE headers;"
#define OLDER_THAN_8 OLDER_THAN_9

static void count_uid(void *arg, uint32_t uid)
{
    (void)uid;
    (*(unsigned *)arg)++;
}

static void test_upgrade(void **state)
{
    unsigned hits = 0;
    struct store s;
    struct mailbox_message m;
    const char *error = NULL;
    uint32_t uid;
    static const char text[] = "Subject: lf\nFrom: a@example.org\nX-Ticket: zebra\n" /* bare LFs */
                               "Content-Type: text/plain; name=report.bin\n\nbody\n";
    store_new(&s, state);
    int fd = message_fd(text);
    assert_int_equal(mailbox_append(s.mb, "INBOX", fd, 0, NULL, 0, &uid, NULL, &error), 0);
    close(fd);
    store_close(&s);

    /* format 2: the size of a message was the octets of its file, and a
     * subscription was a column of its folder */
    store_sql(&s, OLDER_THAN_8 "DROP TRIGGER messages_key_delete; DROP TABLE file_keys;"
                  "DROP TABLE key_fill;"
                  "UPDATE messages SET size = 80, search_headers = 'Subject: lf';"
                  "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');"
                  "UPDATE folders SET bytes = 80 WHERE name = 'INBOX';"
                  "ALTER TABLE folders ADD COLUMN subscribed INTEGER NOT NULL DEFAULT 0;"
                  "UPDATE folders SET subscribed = 1 WHERE name IN ('INBOX', 'Sent');"
                  "DROP TABLE subscriptions; ALTER TABLE folders DROP COLUMN recent_uid;"
                  "PRAGMA user_version = 2");
    s.mb = open_ok(&s);
    assert_int_equal(mailbox_message_get(s.mb, "INBOX", uid, &m, &error), 1);
    assert_int_equal(m.size, sizeof text - 1 + 6); /* each LF counts as CRLF */
    assert_int_equal(folder(s.mb, "INBOX").bytes, sizeof text - 1 + 6);
    /* format 5: the MIME header fields are indexed for TEXT */
    assert_int_equal(mailbox_search_text(s.mb, "INBOX", "\"report.bin\"", count_uid, &hits,
                                         &error), 1);
    char names[64] = "";
    assert_int_equal(mailbox_subscriptions(s.mb, collect_name, names, &error), 2);
    assert_string_equal(names, "INBOX Sent ");
    assert_true(folder(s.mb, "Sent").subscribed);
    assert_false(folder(s.mb, "Trash").subscribed);
    /* format 6: the mail of an upgraded store is not \Recent any more */
    uint32_t before;
    uint64_t recent;
    assert_int_equal(mailbox_recent(s.mb, "INBOX", 0, &before, &recent, &error), 0);
    assert_int_equal(before, uid);
    assert_int_equal(recent, 0);
    store_close(&s);
    s.mb = open_ok(&s); /* upgraded once: opens as it is now */
    store_close(&s);
    store_sql(&s, FTS_CHECK); /* the re-analysis replaced the index entries */

    /* format 7: every top-level header field is indexed for TEXT */
    store_sql(&s, OLDER_THAN_8 "DROP TRIGGER messages_key_delete; DROP TABLE file_keys;"
                  "DROP TABLE key_fill;"
                  "UPDATE messages SET search_headers = 'Subject: lf';"
                  "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');"
                  "PRAGMA user_version = 6");
    s.mb = open_ok(&s);
    hits = 0;
    assert_int_equal(mailbox_search_text(s.mb, "INBOX", "zebra", count_uid, &hits, &error), 1);
    store_close(&s);
    store_sql(&s, FTS_CHECK);
}

/* --- file keys ------------------------------------------------------------------- */

/* The rows of folder as a FETCH reads them: how many, how many with a
 * recorded file key; the key of uid into key_r when asked. */
static unsigned keyed_rows(struct mailbox *mb, const char *folder, unsigned *total_r,
                           uint32_t uid, uint8_t *key_r)
{
    uint32_t *uids;
    size_t n;
    const char *error = NULL;
    struct mailbox_list l;
    unsigned keyed = 0;
    assert_int_equal(mailbox_uids(mb, folder, &uids, &n, &error), 0);
    assert_int_equal(mailbox_messages_list(mb, folder, uids, n, 0, &l, &error), 0);
    assert_int_equal(l.n, n);
    for (size_t i = 0; i < l.n; i++) {
        keyed += l.v[i].file_key != NULL;
        if (l.v[i].uid == uid && key_r != NULL && l.v[i].file_key != NULL)
            memcpy(key_r, l.v[i].file_key, DROP_KEY_BYTES);
    }
    mailbox_list_free(&l);
    free(uids);
    *total_r = (unsigned)n;
    return keyed;
}

/* Every body of folder reads, through each reader (lookup of the key,
 * the key of the row, the descriptor), and is message i's text. */
static void bodies_read(struct mailbox *mb, const char *folder, bool with_row_key)
{
    uint32_t *uids;
    size_t n;
    const char *error = NULL;
    struct mailbox_list l;
    struct mailbox_body b = MAILBOX_BODY_INIT;
    assert_int_equal(mailbox_uids(mb, folder, &uids, &n, &error), 0);
    assert_int_equal(mailbox_messages_list(mb, folder, uids, n, 0, &l, &error), 0);
    for (size_t i = 0; i < l.n; i++) {
        const struct mailbox_message *m = &l.v[i];
        if (mailbox_body_read(mb, m->file, 0, SIZE_MAX, &b, &error) != 0)
            fail_msg("%s uid %u: %s", folder, m->uid, error);
        assert_non_null(strstr((const char *)b.data, "Body of message"));
        if (with_row_key && mailbox_body_read_key(mb, m->file, m->file_key, 1, SIZE_MAX, &b,
                                                  &error) != 0)
            fail_msg("%s uid %u with the row's key: %s", folder, m->uid, error);
        int fd = mailbox_open_body(mb, m->file, &error);
        if (fd < 0)
            fail_msg("%s uid %u as a descriptor: %s", folder, m->uid, error);
        close(fd);
    }
    mailbox_body_release(&b);
    mailbox_list_free(&l);
    free(uids);
}

/* Deliver message i to the store of s as the SMTP side does (sealed to
 * pk_to, under name) and import it. */
static void deliver_import(struct store *s, const uint8_t *pk_to, const char *name, unsigned i)
{
    char text[1024];
    const char *error = NULL;
    uint64_t sealed;
    struct mailbox_import_stats st;
    message_text(text, sizeof text, i);
    int fd = message_fd(text);
    assert_int_equal(drop_deliver(s->dir, name, pk_to, 1, fd, &sealed, &error), 1);
    close(fd);
    assert_int_equal(mailbox_import(s->mb, &st, &error), 0);
    assert_int_equal(st.imported, 1);
}

/* The store of s opened with the right public key and a wrong secret key:
 * only bodies with a recorded key can be read. */
static struct mailbox *open_wrong_sk(const struct store *s)
{
    uint8_t pk2[32], sk2[32];
    const char *error = NULL;
    seal_keypair(pk2, sk2);
    struct mailbox *mb = mailbox_open(s->dir, s->key, pk, sk2, &error);
    if (mb == NULL)
        fail_msg("mailbox_open: %s", error);
    return mb;
}

static void test_file_keys(void **state)
{
    struct store s;
    const char *error = NULL;
    unsigned total;
    uint32_t new_uids[2];
    uint8_t k_inbox[DROP_KEY_BYTES], k_copy[DROP_KEY_BYTES];
    store_new(&s, state);

    /* APPEND, COPY, MOVE and the import of a delivery all leave a key */
    uint32_t a = append(s.mb, "INBOX", 1, 0, NULL);
    uint32_t b = append(s.mb, "INBOX", 2, 0, NULL);
    deliver_import(&s, pk, "7000000000000007", 3);
    assert_int_equal(mailbox_folder_create(s.mb, "Dest", NULL, &error), 0);
    assert_int_equal(mailbox_copy(s.mb, "INBOX", &a, 1, "Dest", false, new_uids, NULL, NULL,
                                  NULL, &error), 1);
    assert_int_equal(mailbox_copy(s.mb, "INBOX", &b, 1, "Dest", true, new_uids + 1, NULL, NULL,
                                  NULL, &error), 1);
    assert_int_equal(keyed_rows(s.mb, "INBOX", &total, a, k_inbox), 2);
    assert_int_equal(total, 2);
    assert_int_equal(keyed_rows(s.mb, "Dest", &total, new_uids[0], k_copy), 2);
    assert_int_equal(total, 2);
    assert_memory_equal(k_inbox, k_copy, sizeof k_copy); /* a copy shares file and key */
    bodies_read(s.mb, "INBOX", true);
    store_close(&s);

    /* the bodies read without the secret key: no X25519 at all */
    s.mb = open_wrong_sk(&s);
    bodies_read(s.mb, "INBOX", true);
    bodies_read(s.mb, "Dest", true);
    struct mailbox_check c;
    assert_int_equal(mailbox_verify(s.mb, true, &c, &error), 0);
    assert_int_equal(c.bodies_bad, 0);
    /* ... and a row without its key does not (it needs the key pair) */
    char file[64];
    file_of(s.mb, "INBOX", a, file);
    struct mailbox_body body = MAILBOX_BODY_INIT;
    assert_int_equal(mailbox_body_read_key(s.mb, file, NULL, 0, SIZE_MAX, &body, &error), -1);
    /* a wrong key fails, with or without the right key pair */
    uint8_t wrong[DROP_KEY_BYTES];
    seal_random(wrong, sizeof wrong);
    assert_int_equal(mailbox_body_read_key(s.mb, file, wrong, 0, SIZE_MAX, &body, &error), -1);
    store_close(&s);
    s.mb = open_ok(&s);
    assert_int_equal(mailbox_body_read_key(s.mb, file, wrong, 0, SIZE_MAX, &body, &error), -1);
    assert_int_equal(mailbox_body_read_key(s.mb, file, NULL, 0, SIZE_MAX, &body, &error), 0);
    assert_int_equal(mailbox_body_read_key(s.mb, file, k_inbox, 0, SIZE_MAX, &body, &error), 0);

    /* the body file replaced by another sealed to the mailbox's public key
     * (anyone who can deliver can make one) under the same name: the key
     * pair would read it, the recorded key refuses it, no fallback */
    assert_int_equal(drop_remove(s.dir, DROP_AREA_MSG, file, &error), 0);
    uint64_t sealed;
    int fd = message_fd("Subject: forged\r\n\r\nBody of message forged\r\n");
    assert_int_equal(drop_store(s.dir, DROP_AREA_MSG, file, pk, 1, fd, &sealed, &error), 1);
    close(fd);
    assert_int_equal(mailbox_body_read_key(s.mb, file, NULL, 0, SIZE_MAX, &body, &error), 0);
    assert_int_equal(mailbox_body_read(s.mb, file, 0, SIZE_MAX, &body, &error), -1);
    assert_int_equal(mailbox_body_read_key(s.mb, file, k_inbox, 0, SIZE_MAX, &body, &error), -1);
    assert_int_equal(mailbox_open_body(s.mb, file, &error), -1);
    assert_int_equal(mailbox_verify(s.mb, true, &c, &error), 0);
    assert_int_equal(c.bodies_bad, 2); /* the message, and its copy in Dest */

    /* a damaged sealed-key block, the chunks intact: refused even with the
     * recorded key, which never needs that block (it is bound into every
     * chunk, so a file is read only as a whole, as it was written) */
    file_of(s.mb, "INBOX", 3, file); /* the imported one */
    char path[320];
    snprintf(path, sizeof path, "%s/msg/%s", s.dir, file);
    fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t fixed[20];
    assert_int_equal(pread(fd, fixed, sizeof fixed, 0), 20);
    off_t sealed_key = 20 + (off_t)((uint32_t)fixed[16] << 24 | (uint32_t)fixed[17] << 16 |
                                    (uint32_t)fixed[18] << 8 | fixed[19]);
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, sealed_key + 40), 1);
    byte ^= 1;
    assert_int_equal(pwrite(fd, &byte, 1, sealed_key + 40), 1);
    close(fd);
    assert_int_equal(mailbox_body_read(s.mb, file, 0, SIZE_MAX, &body, &error), -1);
    assert_int_equal(mailbox_body_read(s.mb, file, 1, SIZE_MAX, &body, &error), -1);
    mailbox_body_release(&body);

    /* a key outlives no message: expunged rows take it along */
    assert_int_equal(mailbox_folder_delete(s.mb, "Dest", &error), 0);
    assert_int_equal(mailbox_store_flags(s.mb, "INBOX", a, MAILBOX_FLAGS_ADD, MAILBOX_DELETED,
                                         NULL, 0, NULL, &error), 1);
    assert_int_equal(mailbox_expunge(s.mb, "INBOX", NULL, 0, NULL, NULL, &error), 1);
    store_close(&s);
    assert_int_equal(store_count(&s, "SELECT count(*) FROM file_keys"), 1); /* the import's */
    assert_int_equal(store_count(&s, "SELECT count(*) FROM file_keys"
                                     " WHERE id NOT IN (SELECT id FROM messages)"), 0);
}

/* A format 6 store (7 would do too): its rows have no keys, read as before, and get them
 * a batch at a time (mailbox_import() does one per call). */
static void test_upgrade_keys(void **state)
{
    struct store s;
    const char *error = NULL;
    unsigned total;
    store_new(&s, state);
    for (unsigned i = 0; i < 5; i++)
        append(s.mb, "INBOX", i, 0, NULL);
    uint32_t one = 1, copied;
    assert_int_equal(mailbox_copy(s.mb, "INBOX", &one, 1, "Archive", false, &copied, NULL, NULL,
                                  NULL, &error), 1);
    store_close(&s);
    store_sql(&s, OLDER_THAN_8 "DROP TRIGGER messages_key_delete; DROP TABLE file_keys; DROP TABLE key_fill;"
                  "PRAGMA user_version = 6");

    s.mb = open_ok(&s);
    assert_int_equal(keyed_rows(s.mb, "INBOX", &total, 0, NULL), 0);
    assert_int_equal(total, 5);
    bodies_read(s.mb, "INBOX", true); /* NULL keys: the key pair opens them */
    bodies_read(s.mb, "Archive", true);
    /* one body that cannot be read is skipped, the others filled */
    char gone[64], path[320];
    file_of(s.mb, "INBOX", 3, gone);
    snprintf(path, sizeof path, "%s/msg/%s", s.dir, gone);
    char aside[340];
    snprintf(aside, sizeof aside, "%s.aside", path);
    assert_int_equal(rename(path, aside), 0);
    assert_int_equal(mb_fill_file_keys(s.mb, 2, &error), 0);
    assert_int_equal(keyed_rows(s.mb, "INBOX", &total, 0, NULL), 2);
    assert_int_equal(keyed_rows(s.mb, "Archive", &total, 0, NULL), 1); /* the copy too */
    assert_int_equal(mb_fill_file_keys(s.mb, 2, &error), 0);
    assert_int_equal(keyed_rows(s.mb, "INBOX", &total, 0, NULL), 3);
    assert_int_equal(rename(aside, path), 0);
    struct mailbox_import_stats st;
    assert_int_equal(mailbox_import(s.mb, &st, &error), 0); /* the last batch, and done */
    assert_int_equal(keyed_rows(s.mb, "INBOX", &total, 0, NULL), 4);
    assert_int_equal(mb_fill_file_keys(s.mb, 2, &error), 0);
    assert_int_equal(keyed_rows(s.mb, "INBOX", &total, 0, NULL), 4); /* the skipped one stays */
    uint32_t uid = append(s.mb, "INBOX", 9, 0, NULL);             /* new ones have keys */
    assert_true(uid > 5);
    assert_int_equal(keyed_rows(s.mb, "INBOX", &total, 0, NULL), 5);
    assert_int_equal(total, 6);
    store_close(&s);

    /* without the secret key, all but the skipped one read */
    s.mb = open_wrong_sk(&s);
    struct mailbox_body b = MAILBOX_BODY_INIT;
    for (uint32_t u = 1; u <= 6; u++) {
        char file[64];
        file_of(s.mb, "INBOX", u, file);
        assert_int_equal(mailbox_body_read(s.mb, file, 0, SIZE_MAX, &b, &error), u == 3 ? -1 : 0);
    }
    mailbox_body_release(&b);
    store_close(&s);
    s.mb = open_ok(&s);
    bodies_read(s.mb, "INBOX", true);
    store_close(&s);
}

/* --- header blocks (format 9) ------------------------------------------------------ */

/* The stored header block of uid in folder as FETCH reads it (into out,
 * NUL-terminated): its length, or -1 when there is none. */
static ssize_t header_of(struct mailbox *mb, const char *folder, uint32_t uid, char *out,
                         size_t outlen, unsigned cols)
{
    struct mailbox_list l;
    const char *error = NULL;
    ssize_t n = -2;
    assert_int_equal(mailbox_messages_list(mb, folder, &uid, 1, cols, &l, &error), 0);
    assert_int_equal(l.n, 1);
    if (l.v[0].header == NULL) {
        n = -1;
    } else {
        assert_true(l.v[0].header_len < outlen);
        memcpy(out, l.v[0].header, l.v[0].header_len);
        out[l.v[0].header_len] = '\0';
        n = (ssize_t)l.v[0].header_len;
    }
    mailbox_list_free(&l);
    return n;
}

static uint32_t append_text(struct mailbox *mb, const char *folder, const char *text)
{
    const char *error = NULL;
    uint32_t uid = 0;
    int fd = message_fd(text);
    if (mailbox_append(mb, folder, fd, 0, NULL, 0, &uid, NULL, &error) != 0)
        fail_msg("mailbox_append: %s", error);
    close(fd);
    return uid;
}

static void test_header_blocks(void **state)
{
    struct store s;
    const char *error = NULL;
    char text[1024], hdr[1024];
    static const char bare[] = "Subject: lf\nX-A: 1\n\nbody\n";
    static const char no_body[] = "Subject: no empty line\r\nX-A: 1\r\n";
    store_new(&s, state);

    /* APPEND and import keep the block up to its empty line */
    uint32_t a = append(s.mb, "INBOX", 1, 0, NULL);
    message_text(text, sizeof text, 1);
    size_t want = (size_t)(strstr(text, "\r\n\r\n") - text) + 4;
    assert_int_equal(header_of(s.mb, "INBOX", a, hdr, sizeof hdr, MAILBOX_COL_HEADER),
                     (ssize_t)want);
    assert_memory_equal(hdr, text, want);
    assert_int_equal(header_of(s.mb, "INBOX", a, hdr, sizeof hdr, 0), -1); /* not asked */
    message_text(text, sizeof text, 2);
    deliver_import(&s, pk, "7000000000000002", 2);
    assert_int_equal(header_of(s.mb, "INBOX", a + 1, hdr, sizeof hdr, MAILBOX_COL_HEADER),
                     (ssize_t)want);
    assert_memory_equal(hdr, text, want);

    /* bare LFs kept as they are (section.c converts on the way out) */
    uint32_t b = append_text(s.mb, "INBOX", bare);
    assert_int_equal(header_of(s.mb, "INBOX", b, hdr, sizeof hdr, MAILBOX_COL_HEADER), 20);
    assert_memory_equal(hdr, bare, 20);
    /* no empty line, or a header past the bound: none, the file serves it */
    uint32_t c = append_text(s.mb, "INBOX", no_body);
    assert_int_equal(header_of(s.mb, "INBOX", c, hdr, sizeof hdr, MAILBOX_COL_HEADER), -1);
    size_t big_len = MB_HEADER_BLOCK_MAX + 100;
    char *big = malloc(big_len + 64);
    assert_non_null(big);
    size_t n = 0;
    while (n < MB_HEADER_BLOCK_MAX)
        n += (size_t)sprintf(big + n, "X-Filler: %08zu\r\n", n);
    strcpy(big + n, "\r\nbody\r\n");
    uint32_t d = append_text(s.mb, "INBOX", big);
    assert_int_equal(header_of(s.mb, "INBOX", d, hdr, sizeof hdr, MAILBOX_COL_HEADER), -1);
    /* just within the bound: kept */
    n = 0;
    while (n + 22 + 2 <= MB_HEADER_BLOCK_MAX)
        n += (size_t)sprintf(big + n, "X-Filler: %08zu\r\n", n);
    strcpy(big + n, "\r\nbody\r\n");
    uint32_t e = append_text(s.mb, "INBOX", big);
    struct mailbox_list l;
    assert_int_equal(mailbox_messages_list(s.mb, "INBOX", &e, 1, MAILBOX_COL_HEADER, &l, &error),
                     0);
    assert_int_equal(l.n, 1);
    assert_non_null(l.v[0].header);
    assert_int_equal(l.v[0].header_len, n + 2);
    assert_memory_equal(l.v[0].header, big, n + 2);
    mailbox_list_free(&l);
    free(big);

    /* a copy shares the block; an expunge takes it along */
    uint32_t copied;
    assert_int_equal(mailbox_copy(s.mb, "INBOX", &a, 1, "Archive", false, &copied, NULL, NULL,
                                  NULL, &error), 1);
    assert_int_equal(header_of(s.mb, "Archive", copied, hdr, sizeof hdr, MAILBOX_COL_HEADER),
                     (ssize_t)want);
    assert_int_equal(mailbox_store_flags(s.mb, "INBOX", b, MAILBOX_FLAGS_ADD, MAILBOX_DELETED,
                                         NULL, 0, NULL, &error), 1);
    assert_int_equal(mailbox_expunge(s.mb, "INBOX", NULL, 0, NULL, NULL, &error), 1);
    store_close(&s);
    assert_int_equal(store_count(&s, "SELECT count(*) FROM headers"), 3); /* a, import, e */
    assert_int_equal(store_count(&s, "SELECT count(*) FROM headers"
                                     " WHERE id NOT IN (SELECT id FROM messages)"), 0);

    /* a format 8 store: its rows have no block (served from the file), new ones do */
    store_sql(&s, OLDER_THAN_9 "PRAGMA user_version = 8");
    s.mb = open_ok(&s);
    assert_int_equal(header_of(s.mb, "INBOX", a, hdr, sizeof hdr, MAILBOX_COL_HEADER), -1);
    bodies_read(s.mb, "Archive", true);
    uint32_t f = append(s.mb, "INBOX", 3, 0, NULL);
    message_text(text, sizeof text, 3);
    want = (size_t)(strstr(text, "\r\n\r\n") - text) + 4;
    assert_int_equal(header_of(s.mb, "INBOX", f, hdr, sizeof hdr, MAILBOX_COL_HEADER),
                     (ssize_t)want);
    assert_memory_equal(hdr, text, want);
    store_close(&s);
    assert_int_equal(store_count(&s, "PRAGMA user_version"), MB_STORE_VERSION);
}

/* --- texts of their own (format 10) ------------------------------------------------ */

#define HAS_SEARCH_TEXT "SELECT count(*) FROM pragma_table_info('messages')" \
                        " WHERE name = 'search_text'"

static unsigned text_hits(struct mailbox *mb, const char *word)
{
    unsigned hits = 0;
    const char *error = NULL;
    assert_true(mailbox_search_text(mb, "INBOX", word, count_uid, &hits, &error) >= 0);
    return hits;
}

/* A new store keeps the texts apart; a format 9 store is moved over, its
 * index rebuilt; expunge and append keep texts and index in step. */
static void test_upgrade_texts(void **state)
{
    struct store s;
    const char *error = NULL;
    uint32_t uids[4];
    store_new(&s, state);
    for (unsigned i = 0; i < 4; i++)
        uids[i] = append(s.mb, "INBOX", i, 0, NULL);
    store_close(&s);
    assert_int_equal(store_count(&s, HAS_SEARCH_TEXT), 0);
    assert_int_equal(store_count(&s, "SELECT count(*) FROM texts"), 4);

    store_sql(&s, OLDER_THAN_10 "PRAGMA user_version = 9");
    assert_int_equal(store_count(&s, HAS_SEARCH_TEXT), 1);
    s.mb = open_ok(&s);
    assert_int_equal(text_hits(s.mb, "heron2"), 1);
    assert_int_equal(text_hits(s.mb, "message"), 4);
    store_close(&s);
    assert_int_equal(store_count(&s, "PRAGMA user_version"), MB_STORE_VERSION);
    assert_int_equal(store_count(&s, HAS_SEARCH_TEXT), 0);
    assert_int_equal(store_count(&s, "SELECT count(*) FROM texts"), 4);
    store_sql(&s, FTS_CHECK);

    s.mb = open_ok(&s);
    set_deleted(s.mb, "INBOX", uids[2]);
    assert_int_equal(mailbox_expunge(s.mb, "INBOX", NULL, 0, NULL, NULL, &error), 1);
    assert_int_equal(text_hits(s.mb, "heron2"), 0);
    append(s.mb, "INBOX", 7, 0, NULL);
    assert_int_equal(text_hits(s.mb, "heron7"), 1);
    store_close(&s);
    assert_int_equal(store_count(&s, "SELECT count(*) FROM texts"), 4);
    assert_int_equal(store_count(&s, "SELECT count(*) FROM texts"
                                     " WHERE id NOT IN (SELECT id FROM messages)"), 0);
    store_sql(&s, FTS_CHECK);
}

/* --- a large folder ------------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void count_message(void *arg, const struct mailbox_message *m)
{
    (void)m;
    (*(unsigned *)arg)++;
}

static void test_large_folder(void **state)
{
    enum { N = 10000 };
    struct store s;
    const char *error = NULL;
    store_new(&s, state);
    struct mailbox *mb = s.mb;
    uint32_t first = append(mb, "INBOX", 1, 0, NULL);
    uint32_t *src = malloc(N * sizeof *src), *dst = malloc(N * sizeof *dst);
    for (unsigned i = 0; i < N; i++)
        src[i] = first;
    double t0 = now_ms();
    assert_int_equal(mailbox_folder_create(mb, "Big", NULL, &error), 0);
    assert_int_equal(mailbox_copy(mb, "INBOX", src, N, "Big", false, dst, NULL, NULL, NULL,
                                  &error), N);
    double t_copy = now_ms() - t0;

    uint64_t mark = folder(mb, "Big").highestmodseq;
    t0 = now_ms();
    assert_int_equal(mailbox_begin(mb, &error), 0);
    for (unsigned i = 0; i < N; i += 10)
        assert_int_equal(mailbox_store_flags(mb, "Big", dst[i], MAILBOX_FLAGS_ADD,
                                             MAILBOX_SEEN | (i % 20 ? 0 : MAILBOX_DELETED),
                                             "$Done", 0, NULL, &error), 1);
    assert_int_equal(mailbox_commit(mb, &error), 0);
    double t_store = now_ms() - t0;

    t0 = now_ms();
    uint32_t *uids;
    size_t n;
    for (int k = 0; k < 10; k++) {
        assert_int_equal(mailbox_uids(mb, "Big", &uids, &n, &error), 0);
        free(uids);
    }
    double t_uids = (now_ms() - t0) / 10;
    assert_int_equal(n, N);

    t0 = now_ms();
    struct mailbox_folder f;
    for (int k = 0; k < 1000; k++)
        assert_int_equal(mailbox_folder_get(mb, "Big", &f, &error), 1);
    double t_status = (now_ms() - t0) / 1000;
    assert_int_equal(f.messages, N);
    assert_int_equal(f.unseen, N - N / 10);
    assert_int_equal(f.deleted, N / 20);

    t0 = now_ms();
    unsigned changed = 0;
    assert_int_equal(mailbox_changes(mb, "Big", mark, count_message, NULL, &changed, &error),
                     N / 10);
    double t_changes = now_ms() - t0;

    t0 = now_ms();
    unsigned all = 0;
    assert_int_equal(mailbox_messages_range(mb, "Big", 1, MAILBOX_UID_ANY, count_message, &all,
                                            &error), N);
    double t_fetch = now_ms() - t0;

    t0 = now_ms();
    assert_int_equal(mailbox_expunge(mb, "Big", NULL, 0, NULL, NULL, &error), N / 20);
    double t_expunge = now_ms() - t0;
    t0 = now_ms();
    assert_int_equal(mailbox_folder_delete(mb, "Big", &error), 0);
    double t_delete = now_ms() - t0;
    assert_int_equal(msg_files(&s), 1);
    print_message("%s, 10,000 messages: copy %.0f ms, 1,000 STOREs in one transaction %.0f ms,"
                  " UIDs %.2f ms, folder_get %.3f ms, changes %.1f ms, all rows %.0f ms,"
                  " expunge of 500 %.0f ms, folder delete %.0f ms\n",
                  ((const struct variant *)*state)->name, t_copy, t_store, t_uids, t_status,
                  t_changes, t_fetch, t_expunge, t_delete);
    /* generous bounds (sanitizers, a slow disk): what matters is no scan per call */
    assert_true(t_uids < 200);
    assert_true(t_status < 5);
    assert_true(t_changes < 500);
    free(src);
    free(dst);
    store_close(&s);
}

#define BOTH(fn)                                                                            \
    cmocka_unit_test_prestate(fn, &v_sealed), cmocka_unit_test_prestate(fn, &v_plain)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_folder_create),   BOTH(test_folder_limit),  BOTH(test_folder_delete),
        BOTH(test_folder_rename),   BOTH(test_folder_subscribe), BOTH(test_recent),
        BOTH(test_flags),
        BOTH(test_expunge),         BOTH(test_copy_move),     BOTH(test_append),
        cmocka_unit_test(test_parts_decode),
        BOTH(test_changes),         BOTH(test_change_token),  BOTH(test_transactions),
        BOTH(test_reentry),
        BOTH(test_orphans_and_version), BOTH(test_upgrade), BOTH(test_file_keys),
        BOTH(test_upgrade_keys),        BOTH(test_header_blocks), BOTH(test_upgrade_texts),
        BOTH(test_large_folder),
    };
    log_init("test-mailbox-imap", false, LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
