/* parse.h — IMAP4rev2/rev1 command assembly and parsing (RFC 9051, RFC 3501
 * and the syntax of the extensions sealmail speaks).
 *
 * Two layers, both bounded and fuzzable:
 *
 *   1. The READER (struct imap_reader) takes bytes from an evbuffer and
 *      assembles one complete command: its line, and for every line that
 *      ends in a literal announcement ("{N}", "{N+}" of LITERAL+/LITERAL-
 *      (RFC 7888), "~{N}" literal8 of BINARY (RFC 3516)) the N bytes and the
 *      line(s) after them.  It tells the session when to send "+ Ready" for
 *      a synchronising literal, keeps at most `max_command` bytes in memory,
 *      and writes APPEND literals bigger than `mem_literal_max` to a file
 *      descriptor the session supplies (a memfd), so a 50 MiB message never
 *      sits in the heap.  It is the only part that knows libevent.
 *
 *   2. The PARSER (imap_parse()) turns an assembled command into a typed
 *      struct imap_command: tag, command, UID prefix and the arguments of
 *      every command, validated against the grammar.  It does no I/O.
 *
 * Error replies.  Every failure comes with a static reason text; nothing is
 * allocated to report it.  The session answers "<tag> BAD <reason>" (or the
 * reader's status word, see struct imap_read_error).  When the tag itself
 * could not be read (empty line, bad tag characters, a line too long before
 * its first space) the tag is "*", and the session sends the reply untagged
 * ("* BAD <reason>"), as RFC 9051 §7.1.5 allows for an unidentifiable
 * command.
 *
 * Memory.  A struct imap_raw (assembled command) and a struct imap_command
 * (parsed) each own everything hanging off them and are freed with one
 * call.  Strings in a parsed command are NUL-terminated copies; IMAP strings
 * (quoted, literal) cannot contain NUL, so C strings lose nothing.  Only an
 * APPEND message may be binary; it is a struct imap_literal.  A command may
 * carry a password (LOGIN), so the reader wipes its line buffer after each
 * line, and imap_raw_free() and imap_command_free() wipe what they free. */
#ifndef SM_IMAP_PARSE_H
#define SM_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct evbuffer;

/* ---- Bounds.  Each is the most the parser accepts; beyond it the command
 * gets BAD (or the reader error named), never a bigger allocation. ---- */

/* Longest tag, in bytes.  Clients use short counters ("a0001"); a long tag
 * is only a way to make every reply expensive. */
#define IMAP_TAG_MAX 64
/* Default longest line (one line of a command, CRLF included).  RFC 7162
 * §4 asks servers to accept command lines of at least 8192 octets. */
#define IMAP_LINE_MAX_DEFAULT 8192
/* Default most bytes of one command kept in memory: all its lines plus its
 * in-memory literals. */
#define IMAP_COMMAND_MAX_DEFAULT (64 * 1024)
/* Default biggest APPEND literal (the APPENDLIMIT we advertise). */
#define IMAP_LITERAL_MAX_DEFAULT (50 * 1024 * 1024)
/* Default size above which an APPEND literal goes to an external fd. */
#define IMAP_MEM_LITERAL_MAX_DEFAULT (32 * 1024)
/* LITERAL- (RFC 7888 §4): the biggest non-synchronising literal a client
 * may send without waiting for "+". */
#define IMAP_NONSYNC_MAX_LITERAL_MINUS 4096
/* Most literals in one command (LOGIN has 2; MULTIAPPEND one per message). */
#define IMAP_LITERALS_MAX 256
/* Biggest rejected non-synchronising literal the reader still reads and
 * discards to stay in step with the client; beyond it the connection has
 * to be closed (struct imap_read_error.close). */
#define IMAP_SKIP_MAX ((uint64_t)1 << 30)
/* Most ranges in one sequence set ("1,3:5,7" has 3). */
#define IMAP_SEQ_RANGES_MAX 10000
/* Search program: deepest nesting of NOT/OR/parentheses, and most keys. */
#define IMAP_SEARCH_DEPTH_MAX 32
#define IMAP_SEARCH_NODES_MAX 1000
/* Most SORT criteria (there are 9 distinct ones; REVERSE doubles none). */
#define IMAP_SORT_KEYS_MAX 16
/* Most FETCH items after macro expansion. */
#define IMAP_FETCH_ITEMS_MAX 64
/* Deepest section part number ("1.2.3" has 3) and most HEADER.FIELDS. */
#define IMAP_SECTION_PARTS_MAX 32
#define IMAP_HEADER_FIELDS_MAX 128
/* Most flags in a STORE/APPEND flag list, and most CREATE USE attributes. */
#define IMAP_FLAGS_MAX 128
/* Most messages in one (MULTI)APPEND. */
#define IMAP_APPEND_MAX 64
/* Most LIST patterns, ENABLE capabilities, SETQUOTA resources. */
#define IMAP_LIST_PATTERNS_MAX 64
#define IMAP_ENABLE_MAX 32
#define IMAP_QUOTA_RESOURCES_MAX 16
/* ID (RFC 2971 §3.3): at most 30 pairs, field names of at most 30 bytes,
 * values of at most 1024 bytes. */
#define IMAP_ID_PAIRS_MAX 30
#define IMAP_ID_FIELD_MAX 30
#define IMAP_ID_VALUE_MAX 1024
/* Longest mailbox name in bytes, as sent (mUTF-7 or UTF-8). */
#define IMAP_MAILBOX_MAX 1024

/* ==== 1. The reader ==================================================== */

struct imap_reader_limits {
    size_t max_line;        /* longest line, CRLF included (>= 64) */
    size_t max_command;     /* in-memory bytes of one command (>= max_line) */
    uint64_t max_literal;   /* biggest APPEND literal; others must fit max_command */
    size_t mem_literal_max; /* APPEND literals above this go to an external fd */
    uint64_t nonsync_max;   /* biggest {N+}: IMAP_NONSYNC_MAX_LITERAL_MINUS when
                             * advertising LITERAL-, max_literal for LITERAL+ */
};

/* Fill limits with the IMAP_*_DEFAULT values and LITERAL- semantics. */
void imap_reader_limits_default(struct imap_reader_limits *l);

/* Asked for a writable fd for an external literal of `size` bytes (a memfd
 * in the session).  Return the fd, or -1 to refuse (the command then fails
 * with "NO [SERVERBUG]", the literal is discarded).  The command takes
 * ownership of a returned fd: it is closed by imap_raw_free() /
 * imap_command_free() unless taken (see struct imap_literal). */
typedef int imap_literal_fd_fn(void *ctx, uint64_t size);

enum imap_read_result {
    IMAP_READ_MORE = 0,         /* no complete command yet: wait for input */
    IMAP_READ_CONTINUE,         /* send "+ Ready for literal data" and call again */
    IMAP_READ_COMMAND,          /* a command is ready: imap_reader_take() */
    IMAP_READ_LINE_TOO_LONG,    /* errors: see imap_reader_error() ...      */
    IMAP_READ_COMMAND_TOO_LONG,
    IMAP_READ_LITERAL_TOO_BIG,
    IMAP_READ_FAILED,           /* the fd callback refused, or writing to it failed */
    IMAP_READ_BAD_LINE,         /* a line held a NUL byte (RFC 9051 CHAR8 excludes it) */
};

/* What to answer after an error result. */
struct imap_read_error {
    const char *tag;    /* the command's tag, or "*" if it was not readable */
    const char *status; /* "BAD" or "NO" */
    const char *text;   /* static reason, maybe with a code: "[TOOBIG] ..." */
    bool close;         /* the input cannot be resynchronised: send BYE, close */
};

struct imap_reader; /* opaque */

/* A new reader.  fd_fn may be NULL: then APPEND literals above
 * mem_literal_max are refused (LITERAL_TOO_BIG).  Never returns NULL. */
struct imap_reader *imap_reader_new(const struct imap_reader_limits *limits,
                                    imap_literal_fd_fn *fd_fn, void *fd_ctx);
/* Whether the peer has logged in.  Untrusted, a command keeps at most
 * max_line bytes in memory (literals included) and APPEND gets no
 * external files: nobody can make the server hold files or max_command
 * bytes per connection without a password.  Trusted when the reader is
 * made; the session distrusts it until login. */
void imap_reader_set_trusted(struct imap_reader *r, bool trusted);

/* Free the reader and any command it is assembling; accepts NULL. */
void imap_reader_free(struct imap_reader **rp);

/* Assemble the next command from `in`, consuming what it uses.
 *
 * IMAP_READ_CONTINUE is returned once per synchronising literal, after its
 * "{N}" line is accepted; the session sends "+ ..." and calls again (data
 * may already be buffered).  No continuation is asked for "{N+}".
 *
 * On an error result the session replies with imap_reader_error() at once.
 * The reader then resynchronises by itself on the following calls (which
 * return IMAP_READ_MORE while discarding):
 *   - a line too long: the rest of the line is discarded;
 *   - a synchronising literal too big: nothing more to discard, the client
 *     waits for a "+" that never comes and sees the tagged reply instead
 *     (RFC 9051 §7.5);
 *   - a non-synchronising literal too big ("{N+}" over nonsync_max or over
 *     the size limit): the reply is "BAD [TOOBIG]" or "NO [TOOBIG]" and the
 *     N bytes the client sends anyway are discarded (RFC 7888 §4), then the
 *     rest of the command; if N exceeds IMAP_SKIP_MAX the error says close;
 *   - command too long, too many literals, a NUL byte in a line: the rest
 *     of the command is discarded.
 * "Discarding the rest of the command" means: discard up to the end of the
 * current line; if that line ends in "{N+}", discard N bytes and the next
 * line too, and so on; a line ending in "{N}" ends it (the client waits).
 * If a discarded line announces a "{N+}" bigger than IMAP_SKIP_MAX, one
 * more error result comes, with close set.
 * Lines may end in CRLF or a bare LF (as in Dovecot); the CR is removed.
 * Empty lines between commands are ignored. */
enum imap_read_result imap_reader_read(struct imap_reader *r, struct evbuffer *in);

/* The reply for the last error result.  Pointers stay valid until the next
 * call on the reader. */
const struct imap_read_error *imap_reader_error(const struct imap_reader *r);

/* After IMAP_READ_COMMAND: take the assembled command (ownership passes to
 * the caller; free with imap_raw_free()).  NULL if there is none.  A
 * command not taken is freed by the next imap_reader_read(). */
struct imap_raw *imap_reader_take(struct imap_reader *r);

/* Read one bare line (IDLE's "DONE", an AUTHENTICATE response) of at most
 * max_line bytes.  Returns 1 with *line_r (NUL-terminated, CRLF removed,
 * valid until the next call on the reader) and *len_r, 0 when more input
 * is needed, -1 when the line is too long (the rest of it is then
 * discarded by the following calls).  Only between commands. */
int imap_reader_line(struct imap_reader *r, struct evbuffer *in, const char **line_r,
                     size_t *len_r);

/* True while the reader is in the middle of a command or discarding one:
 * the session must not interpret input on its own (e.g. start IDLE). */
bool imap_reader_busy(const struct imap_reader *r);

/* ---- The assembled command ---- */

/* A literal of the command: in memory (data) or external (fd). */
struct imap_raw_literal {
    size_t offset;  /* in-memory: where its bytes start in imap_raw.data */
    uint64_t size;  /* its length in bytes */
    int fd;         /* external: file holding the bytes (offset at the end); else -1 */
    bool binary;    /* announced as literal8 "~{N}" */
    bool nonsync;   /* announced as "{N+}" */
};

/* An assembled command: the bytes of its lines (CRLF removed) and of its
 * in-memory literals, in order.  Each line that announced a literal ends
 * just before literals[i].offset (or, for an external literal, just where
 * the next line starts, at the same offset). */
struct imap_raw {
    char *data;      /* NUL-terminated for convenience */
    size_t len;
    struct imap_raw_literal *literals;
    size_t n_literals;
};

/* Build a raw command from one complete text without literals (tests,
 * fuzzers, replaying).  `line` is one line without CRLF. */
struct imap_raw *imap_raw_from_line(const char *line, size_t len);
/* Free a raw command, closing the fds of external literals; accepts NULL. */
void imap_raw_free(struct imap_raw **rawp);

/* ==== 2. The parser ==================================================== */

enum imap_cmd {
    IMAP_CMD_UNKNOWN = 0,
    IMAP_CMD_CAPABILITY, IMAP_CMD_NOOP, IMAP_CMD_LOGOUT, IMAP_CMD_STARTTLS,
    IMAP_CMD_AUTHENTICATE, IMAP_CMD_LOGIN, IMAP_CMD_ENABLE, IMAP_CMD_SELECT,
    IMAP_CMD_EXAMINE, IMAP_CMD_CREATE, IMAP_CMD_DELETE, IMAP_CMD_RENAME,
    IMAP_CMD_SUBSCRIBE, IMAP_CMD_UNSUBSCRIBE, IMAP_CMD_LIST, IMAP_CMD_LSUB,
    IMAP_CMD_NAMESPACE, IMAP_CMD_STATUS, IMAP_CMD_APPEND, IMAP_CMD_IDLE,
    IMAP_CMD_CHECK, IMAP_CMD_CLOSE, IMAP_CMD_UNSELECT, IMAP_CMD_EXPUNGE,
    IMAP_CMD_SEARCH, IMAP_CMD_SORT, IMAP_CMD_FETCH, IMAP_CMD_STORE, IMAP_CMD_COPY,
    IMAP_CMD_MOVE, IMAP_CMD_ID, IMAP_CMD_GETQUOTA, IMAP_CMD_GETQUOTAROOT,
    IMAP_CMD_SETQUOTA, IMAP_CMD_COMPRESS,
    IMAP_CMD_COUNT
};

/* The command's name in capitals ("UID" not included), "UNKNOWN" for 0. */
const char *imap_cmd_name(enum imap_cmd cmd);

/* ---- Sequence sets (RFC 9051 sequence-set, "$" of RFC 5182) ---- */

/* '*' in a range.  0 is never a valid sequence number or UID (nz-number),
 * so it can stand for "the largest one in the mailbox". */
#define IMAP_SEQ_STAR 0u

/* lo and hi as sent: "7:3" keeps lo=7 hi=3, "5:*" keeps hi=IMAP_SEQ_STAR;
 * a single number has lo == hi. */
struct imap_seq_range {
    uint32_t lo, hi;
};

struct imap_seqset {
    struct imap_seq_range *ranges; /* owned by the command */
    size_t n;                      /* 0 when saved */
    bool saved;                    /* "$": the SEARCHRES saved result */
    bool resolved;                 /* imap_seqset_resolve() ran: sorted, no '*' */
};

/* Whether value is in set, '*' standing for max (the highest sequence
 * number or UID; 0 for an empty mailbox).  Always false for a saved set:
 * the session substitutes its saved result first.  O(log n) on a resolved
 * set (max is then ignored), O(n) otherwise: resolve a set once before
 * testing many messages against it. */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t value, uint32_t max);

/* Rewrite set in place into sorted, non-overlapping, non-adjacent ranges
 * with lo <= hi, '*' replaced by max; ranges resolving to 0 only (max 0)
 * are dropped.  Ready for imap_seqset_next().  Does nothing to a saved set. */
void imap_seqset_resolve(struct imap_seqset *set, uint32_t max);

/* Iteration over a resolved set: start with *cursor = 0; each call stores
 * the next value in *value_r and returns true, false at the end. */
bool imap_seqset_next(const struct imap_seqset *set, uint64_t *cursor, uint32_t *value_r);

/* Parse a sequence set alone ("1,3:5,7:*", "$" when allow_saved).  The
 * ranges are allocated with sm_calloc(): release them with
 * sm_freep(&set->ranges).
 * Returns 0, or -1 with *error_r a static reason. */
int imap_seqset_parse(const char *text, size_t len, bool allow_saved, struct imap_seqset *set,
                      const char **error_r);

/* ---- Dates ---- */

/* date: "1-Jan-2024" or "01-Jan-2024" (the quotes already removed) to the
 * unix time of that day's 00:00:00 UTC.  Years 1900..9999; the day must
 * exist in the month.  Returns 0 or -1. */
int imap_parse_date(const char *s, size_t len, time_t *t_r);

/* date-time: "01-Jan-2024 10:00:00 +0000" or " 1-Jan-2024 ..." (without
 * the quotes) to unix time, the zone applied.  Returns 0 or -1. */
int imap_parse_datetime(const char *s, size_t len, time_t *t_r);

/* ---- Mailbox names ---- */

struct sm_buf;

/* Modified UTF-7 (RFC 3501 §5.1.3) to UTF-8, appended to out.  Strict: a
 * non-ASCII byte, an unterminated or empty shift other than "&-", a
 * printable ASCII character or an unpaired surrogate inside a shift,
 * leftover non-zero bits, or two shifts in a row are rejected.  Returns 0,
 * or -1 (out then holds a partial result the caller should discard). */
int imap_mutf7_decode(const char *in, size_t len, struct sm_buf *out);

/* UTF-8 (validated) to modified UTF-7, appended to out.  Returns 0 or -1
 * on invalid UTF-8 or when out's maximum is reached. */
int imap_mutf7_encode(const char *in, size_t len, struct sm_buf *out);

/* True if s is valid UTF-8 (shortest forms, no surrogates) without C0
 * controls or DEL: what a UTF-8 mailbox name (UTF8=ACCEPT) may contain. */
bool imap_utf8_valid(const char *s, size_t len);

/* ---- Arguments ---- */

/* A message of APPEND.  Either in memory or in an external file. */
struct imap_literal {
    const char *data; /* in memory; NULL when external */
    uint64_t size;
    int fd;           /* external: readable/writable file of size bytes, position at its
                       * end; -1 otherwise.  Owned by the command, closed by
                       * imap_command_free(); set it to -1 to take it. */
    bool binary;      /* sent as literal8 "~{N}" (may contain NUL) */
};

struct imap_args_authenticate {
    const char *mechanism;        /* upper-cased, e.g. "PLAIN" */
    const char *initial_response; /* SASL-IR base64 text, "" for "=", NULL if absent */
};

struct imap_args_login {
    const char *user;
    const char *password; /* the session wipes it after use */
};

struct imap_args_enable {
    const char **caps; /* upper-cased atoms, e.g. "CONDSTORE", "UTF8=ACCEPT" */
    size_t n_caps;
};

struct imap_args_select {           /* SELECT, EXAMINE */
    const char *mailbox;
    bool condstore;                 /* (CONDSTORE) */
    bool qresync;                   /* (QRESYNC (...)) given */
    uint32_t uidvalidity;           /* QRESYNC: nz-number */
    uint64_t modseq;                /* QRESYNC: mod-sequence-value */
    struct imap_seqset known_uids;  /* QRESYNC: n == 0 when absent */
    struct imap_seqset seq_match;   /* QRESYNC seq-match-data: n == 0 when absent */
    struct imap_seqset uid_match;
};

/* SPECIAL-USE attributes (RFC 6154), bits. */
enum imap_special_use {
    IMAP_USE_ALL = 1 << 0, IMAP_USE_ARCHIVE = 1 << 1, IMAP_USE_DRAFTS = 1 << 2,
    IMAP_USE_FLAGGED = 1 << 3, IMAP_USE_JUNK = 1 << 4, IMAP_USE_SENT = 1 << 5,
    IMAP_USE_TRASH = 1 << 6,
    IMAP_USE_OTHER = 1 << 7, /* an extension attribute the parser does not know */
};

struct imap_args_create {
    const char *mailbox;
    unsigned use; /* enum imap_special_use bits from "(USE (...))", 0 if none */
};

struct imap_args_mailbox { /* DELETE, SUBSCRIBE, UNSUBSCRIBE, GETQUOTAROOT */
    const char *mailbox;
};

struct imap_args_rename {
    const char *from, *to;
};

/* STATUS data items, bits (also LIST ... RETURN (STATUS (...))). */
enum imap_status_item {
    IMAP_STATUS_MESSAGES = 1 << 0, IMAP_STATUS_UIDNEXT = 1 << 1,
    IMAP_STATUS_UIDVALIDITY = 1 << 2, IMAP_STATUS_UNSEEN = 1 << 3,
    IMAP_STATUS_DELETED = 1 << 4, IMAP_STATUS_SIZE = 1 << 5, IMAP_STATUS_RECENT = 1 << 6,
    IMAP_STATUS_HIGHESTMODSEQ = 1 << 7, IMAP_STATUS_APPENDLIMIT = 1 << 8,
};

/* LIST-EXTENDED selection options (RFC 5258 §3.1, RFC 6154), bits. */
enum imap_list_select {
    IMAP_LIST_SEL_SUBSCRIBED = 1 << 0, IMAP_LIST_SEL_REMOTE = 1 << 1,
    IMAP_LIST_SEL_RECURSIVEMATCH = 1 << 2, IMAP_LIST_SEL_SPECIAL_USE = 1 << 3,
};

/* LIST-EXTENDED return options (RFC 5258 §3.2, RFC 5819, RFC 6154), bits. */
enum imap_list_return {
    IMAP_LIST_RET_SUBSCRIBED = 1 << 0, IMAP_LIST_RET_CHILDREN = 1 << 1,
    IMAP_LIST_RET_SPECIAL_USE = 1 << 2, IMAP_LIST_RET_STATUS = 1 << 3,
};

struct imap_args_list {        /* LIST, LSUB (LSUB uses reference and patterns[0]) */
    const char *reference;
    const char **patterns;     /* list-mailbox, '%' and '*' kept; INBOX not normalised */
    size_t n_patterns;         /* >= 1 ("" is a pattern: the delimiter query) */
    unsigned select;           /* enum imap_list_select bits */
    unsigned ret;              /* enum imap_list_return bits */
    unsigned status_items;     /* with IMAP_LIST_RET_STATUS: enum imap_status_item bits */
    bool extended;             /* selection options, a pattern list or RETURN was used:
                                * reply in the LIST-EXTENDED way */
};

struct imap_args_status {
    const char *mailbox;
    unsigned items; /* enum imap_status_item bits, at least one */
};

struct imap_append_msg {
    const char **flags;   /* as sent, e.g. "\\Seen", "$Forwarded" */
    size_t n_flags;
    bool has_date;
    time_t date;          /* the date-time argument, when has_date */
    bool utf8;            /* sent as "UTF8 (~{N})" (RFC 6855 §4) */
    struct imap_literal msg;
};

struct imap_args_append {
    const char *mailbox;
    struct imap_append_msg *msgs; /* one, or more with MULTIAPPEND (RFC 3502) */
    size_t n_msgs;
};

/* ---- SEARCH ---- */

enum imap_search_key {
    IMAP_SK_AND,        /* children: all must match (top level, parentheses) */
    IMAP_SK_OR,         /* children: exactly two */
    IMAP_SK_NOT,        /* children: exactly one */
    IMAP_SK_SEQSET,     /* set: message sequence numbers (or "$") */
    IMAP_SK_UID,        /* set: UIDs (or "$") */
    IMAP_SK_ALL, IMAP_SK_ANSWERED, IMAP_SK_DELETED, IMAP_SK_DRAFT, IMAP_SK_FLAGGED,
    IMAP_SK_NEW, IMAP_SK_OLD, IMAP_SK_RECENT, IMAP_SK_SEEN, IMAP_SK_UNANSWERED,
    IMAP_SK_UNDELETED, IMAP_SK_UNDRAFT, IMAP_SK_UNFLAGGED, IMAP_SK_UNSEEN,
    IMAP_SK_KEYWORD, IMAP_SK_UNKEYWORD, /* str: the flag keyword */
    IMAP_SK_BCC, IMAP_SK_BODY, IMAP_SK_CC, IMAP_SK_FROM, IMAP_SK_SUBJECT,
    IMAP_SK_TEXT, IMAP_SK_TO,           /* str: the text to find */
    IMAP_SK_HEADER,                     /* field: header name, str: text */
    IMAP_SK_BEFORE, IMAP_SK_ON, IMAP_SK_SINCE, /* date: internal date */
    IMAP_SK_SENTBEFORE, IMAP_SK_SENTON, IMAP_SK_SENTSINCE, /* date: Date: header */
    IMAP_SK_LARGER, IMAP_SK_SMALLER,    /* number: RFC822.SIZE */
    IMAP_SK_MODSEQ,                     /* number: mod-sequence (CONDSTORE);
                                         * field: entry name or NULL, str: entry type */
};

struct imap_search_node {
    enum imap_search_key key;
    struct imap_search_node *child; /* first child (AND, OR, NOT) */
    struct imap_search_node *next;  /* next sibling in the parent's list */
    const char *field;              /* HEADER field name; MODSEQ entry name */
    const char *str;                /* string argument; MODSEQ entry type
                                     * ("priv", "shared" or "all") */
    time_t date;                    /* 00:00:00 UTC of the date argument */
    uint64_t number;
    struct imap_seqset set;
};

/* ESEARCH RETURN options (RFC 4731, RFC 5182 SAVE), bits. */
enum imap_search_return {
    IMAP_SEARCH_RET_MIN = 1 << 0, IMAP_SEARCH_RET_MAX = 1 << 1,
    IMAP_SEARCH_RET_ALL = 1 << 2, IMAP_SEARCH_RET_COUNT = 1 << 3,
    IMAP_SEARCH_RET_SAVE = 1 << 4,
};

enum imap_sort_criterion {
    IMAP_SORT_ARRIVAL, IMAP_SORT_CC, IMAP_SORT_DATE, IMAP_SORT_FROM, IMAP_SORT_SIZE,
    IMAP_SORT_SUBJECT, IMAP_SORT_TO, IMAP_SORT_DISPLAYFROM, IMAP_SORT_DISPLAYTO,
};

struct imap_sort_key {
    enum imap_sort_criterion criterion;
    bool reverse;
};

struct imap_args_search {         /* SEARCH and SORT */
    bool esearch;                 /* "RETURN (...)" given: answer with ESEARCH */
    unsigned ret;                 /* enum imap_search_return bits; RETURN () gives ALL */
    const char *charset;          /* upper-cased; NULL when absent (SEARCH only) */
    struct imap_search_node *keys;/* an IMAP_SK_AND node holding the keys */
    struct imap_sort_key sort[IMAP_SORT_KEYS_MAX]; /* SORT only */
    size_t n_sort;
};

/* ---- FETCH ---- */

enum imap_fetch_att {
    IMAP_FETCH_ENVELOPE, IMAP_FETCH_FLAGS, IMAP_FETCH_INTERNALDATE, IMAP_FETCH_RFC822,
    IMAP_FETCH_RFC822_HEADER, IMAP_FETCH_RFC822_SIZE, IMAP_FETCH_RFC822_TEXT,
    IMAP_FETCH_BODY,          /* non-extensible BODYSTRUCTURE ("BODY" alone) */
    IMAP_FETCH_BODYSTRUCTURE, IMAP_FETCH_UID, IMAP_FETCH_MODSEQ,
    IMAP_FETCH_BODY_SECTION,  /* BODY[section]<partial> and BODY.PEEK[...] */
    IMAP_FETCH_BINARY,        /* BINARY[part]<partial> and BINARY.PEEK[...] */
    IMAP_FETCH_BINARY_SIZE,   /* BINARY.SIZE[part] */
};

enum imap_section_text {
    IMAP_SECTION_ALL,               /* "[]" or "[1.2]": the whole (part) */
    IMAP_SECTION_HEADER, IMAP_SECTION_HEADER_FIELDS, IMAP_SECTION_HEADER_FIELDS_NOT,
    IMAP_SECTION_TEXT, IMAP_SECTION_MIME,
};

struct imap_section {
    uint32_t parts[IMAP_SECTION_PARTS_MAX]; /* "1.2.3": {1,2,3} */
    size_t n_parts;
    enum imap_section_text text;
    const char **fields;  /* HEADER.FIELDS[.NOT]: the names, upper-cased */
    size_t n_fields;
};

struct imap_fetch_item {
    enum imap_fetch_att att;
    bool peek;                /* .PEEK: do not set \Seen */
    struct imap_section section;
    bool partial;             /* "<offset.length>" given */
    uint64_t offset, length;  /* length >= 1 */
};

struct imap_args_fetch {
    struct imap_seqset set;
    struct imap_fetch_item *items; /* macros ALL/FAST/FULL expanded */
    size_t n_items;
    bool has_changedsince;
    uint64_t changedsince;
    bool vanished;            /* (CHANGEDSINCE n VANISHED): UID FETCH only */
};

enum imap_store_op { IMAP_STORE_SET, IMAP_STORE_ADD, IMAP_STORE_REMOVE };

struct imap_args_store {
    struct imap_seqset set;
    bool has_unchangedsince;
    uint64_t unchangedsince;
    enum imap_store_op op;
    bool silent;
    const char **flags;       /* as sent; "\Recent" and "\*" are refused */
    size_t n_flags;
};

struct imap_args_copy {        /* COPY, MOVE */
    struct imap_seqset set;
    const char *mailbox;
};

struct imap_args_expunge {     /* UID EXPUNGE; EXPUNGE alone has set.n == 0 */
    struct imap_seqset set;
};

struct imap_args_id {
    bool nil;                  /* "ID NIL" */
    const char **keys;
    const char **values;       /* NULL for a NIL value */
    size_t n;
};

struct imap_quota_resource {
    const char *name;          /* upper-cased, e.g. "STORAGE" */
    uint64_t limit;
};

struct imap_args_quota {       /* GETQUOTA root, SETQUOTA root (resources) */
    const char *root;
    struct imap_quota_resource *resources;
    size_t n_resources;
};

struct imap_args_compress {
    const char *mechanism;     /* upper-cased, e.g. "DEFLATE" */
};

/* A parsed command.  Mailbox names are the astring as sent, except that
 * any case of "INBOX" becomes "INBOX"; converting mUTF-7/UTF-8 is the
 * session's business (imap_mutf7_decode()). */
struct imap_command {
    char tag[IMAP_TAG_MAX + 1];  /* "*" when it could not be read */
    enum imap_cmd cmd;           /* IMAP_CMD_UNKNOWN when not recognised */
    bool uid;                    /* "UID FETCH" etc. */
    union {
        struct imap_args_authenticate authenticate;
        struct imap_args_login login;
        struct imap_args_enable enable;
        struct imap_args_select select;     /* SELECT, EXAMINE */
        struct imap_args_create create;
        struct imap_args_mailbox mailbox;   /* DELETE, (UN)SUBSCRIBE, GETQUOTAROOT */
        struct imap_args_rename rename;
        struct imap_args_list list;         /* LIST, LSUB */
        struct imap_args_status status;
        struct imap_args_append append;
        struct imap_args_search search;     /* SEARCH, SORT */
        struct imap_args_fetch fetch;
        struct imap_args_store store;
        struct imap_args_copy copy;         /* COPY, MOVE */
        struct imap_args_expunge expunge;
        struct imap_args_id id;
        struct imap_args_quota quota;       /* GETQUOTA, SETQUOTA */
        struct imap_args_compress compress;
    } args;
    struct imap_arena *arena;    /* private: everything above is allocated here */
};

/* Parse an assembled command.  Always sets *cmd_r to a new command (free
 * it with imap_command_free()): on success the whole command, on failure
 * at least the tag ("*" if unreadable) and, when recognised, cmd and uid.
 * Returns 0, or -1 with *error_r a static reason for "<tag> BAD <reason>".
 * External literals (APPEND) move from raw into the command (raw's fd
 * becomes -1), so raw can be freed at once either way. */
int imap_parse(struct imap_raw *raw, struct imap_command **cmd_r, const char **error_r);

/* Free a command, closing the fds of its external literals; accepts NULL. */
void imap_command_free(struct imap_command **cmdp);

#endif
