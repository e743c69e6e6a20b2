/* reply.h — a bounded parser for SMTP replies (RFC 5321 §4.2, RFC 3463),
 * the client's view of a server.
 *
 * Replies come from a remote server we do not control, so they are hostile
 * input: the parser takes one line at a time (CRLF removed, already bounded
 * by net/linereader), keeps its state between lines (resumable: a reply may
 * arrive one byte at a time), and refuses anything that is not a reply:
 *   - every line starts with a three-digit code 2yz..5yz, y in 0..5
 *     (RFC 5321 §4.2: 1yz is never used by SMTP), followed by ' ', '-'
 *     or the end of the line;
 *   - all lines of a multi-line reply carry the same code;
 *   - at most SMTP_REPLY_LINES_MAX lines per reply.
 * Line length is the line reader's business: the client reads reply lines
 * of at most SMTP_REPLY_LINE_MAX bytes (RFC 5321 §4.5.3.1.5 says 512; real
 * servers send longer texts, so we accept up to 2000).
 *
 * The kept text is printable ASCII only: other bytes become '?', so a reply
 * can go into a log line or a DSN as it is.  Lines that do not fit the
 * text buffer whole are left out (never cut in the middle, so an EHLO
 * keyword such as "SIZE 10000000" is never shortened into another value).
 * The enhanced status code (RFC 3463 class.subject.detail) of the first
 * line is split off when its class matches the reply code's first digit. */
#ifndef SM_SMTP_REPLY_H
#define SM_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#define SMTP_REPLY_LINE_MAX 2000  /* bytes of one reply line, CRLF included */
#define SMTP_REPLY_LINES_MAX 100  /* lines of one reply */
#define SMTP_REPLY_TEXT_MAX 4096  /* kept text, lines separated by '\n' */
#define SMTP_ENHANCED_MAX 12      /* "5.123.123" plus NUL, rounded up */

struct smtp_reply {
    int code;                          /* 200..559 */
    char enhanced[SMTP_ENHANCED_MAX];  /* "2.1.5", or "" when absent */
    char text[SMTP_REPLY_TEXT_MAX];    /* text of each line after "NNN "/"NNN-"
                                          (and the first line's enhanced code),
                                          lines joined by '\n' */
    size_t text_len;
    size_t n_lines;                    /* lines received (kept or not) */
};

struct smtp_reply_parser {
    struct smtp_reply r;
    bool open;                         /* inside a multi-line reply */
};

enum smtp_reply_result { SMTP_REPLY_MORE, SMTP_REPLY_DONE, SMTP_REPLY_ERROR };

/* Prepare for the next reply (also after DONE or ERROR). */
void smtp_reply_init(struct smtp_reply_parser *p);
/* Feed one line (len bytes, without its line end; NUL bytes allowed).
 * SMTP_REPLY_MORE: a continuation line, feed the next one;
 * SMTP_REPLY_DONE: p->r is the complete reply;
 * SMTP_REPLY_ERROR: malformed, *error_r says why (a static string); the
 * connection cannot be trusted any further. */
enum smtp_reply_result smtp_reply_feed(struct smtp_reply_parser *p, const char *line, size_t len,
                                       const char **error_r);

/* The i-th kept line of r's text (i from 0), into out (NUL-terminated);
 * false when there is no such line. */
bool smtp_reply_line(const struct smtp_reply *r, size_t i, char *out, size_t outlen);

/* Parse an RFC 3463 enhanced status code at the start of s: "c.sss.ddd"
 * with c in {2,4,5}, 1..3 digits each, followed by ' ' or the end.
 * Returns its length (0 if none) and copies it into out
 * (SMTP_ENHANCED_MAX bytes). */
size_t smtp_reply_enhanced(const char *s, size_t len, char *out);

#endif
