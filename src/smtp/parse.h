/* parse.h — pure parsers for SMTP command lines (RFC 5321 §4.1, RFC 6531).
 *
 * Nothing here does I/O or keeps state: each function takes one command
 * line (CRLF already removed, bounded by the line reader) and fills a
 * result, or fails with the exact reply the server should send.  That
 * keeps the rules testable on their own and fuzzable in isolation. */
#ifndef SM_SMTP_PARSE_H
#define SM_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 5321 §4.5.3.1 size limits. */
#define SMTP_LOCAL_MAX 64
#define SMTP_DOMAIN_MAX 255
#define SMTP_PATH_MAX 256
#define SMTP_PARAMS_MAX 8

enum smtp_verb {
    SMTP_VERB_UNKNOWN, SMTP_VERB_HELO, SMTP_VERB_EHLO, SMTP_VERB_MAIL, SMTP_VERB_RCPT,
    SMTP_VERB_DATA, SMTP_VERB_BDAT, SMTP_VERB_RSET, SMTP_VERB_NOOP, SMTP_VERB_QUIT,
    SMTP_VERB_HELP, SMTP_VERB_VRFY, SMTP_VERB_EXPN, SMTP_VERB_STARTTLS, SMTP_VERB_AUTH,
};

/* A parse failure: the reply to send ("501 5.5.4 ..."), a static string. */
struct smtp_parse_error {
    const char *reply;
};

/* Split a command line into its verb and argument text.  *args_r points
 * into line, after the verb and one space ("" if none).  The verb is
 * matched case-insensitively; unknown verbs give SMTP_VERB_UNKNOWN. */
enum smtp_verb smtp_parse_verb(const char *line, const char **args_r);

/* A parsed "MAIL FROM:<path> params" or "RCPT TO:<path> params". */
struct smtp_path {
    char address[SMTP_PATH_MAX + 1]; /* "local@domain", "" for <>, "postmaster" */
    char domain[SMTP_DOMAIN_MAX + 1];/* lowercase ASCII part after '@' ("" if none) */
    bool utf8;                       /* address contains non-ASCII (needs SMTPUTF8) */
    size_t n_params;
    char *param_key[SMTP_PARAMS_MAX];   /* point into the caller's line copy */
    char *param_value[SMTP_PARAMS_MAX]; /* NULL for a keyword without '=' */
};

/* Parse the argument of MAIL ("FROM:<...> ...") or RCPT ("TO:<...> ...").
 * prefix is "FROM:" or "TO:".  args is modified in place (parameters are
 * split).  A space after the colon is tolerated.  The null path <> is
 * accepted only when allow_null.  Source routes are accepted and dropped
 * (§4.1.2).  Returns 0 or -1 with err->reply set. */
int smtp_parse_path(char *args, const char *prefix, bool allow_null, struct smtp_path *path,
                    struct smtp_parse_error *err);

/* Validate an EHLO/HELO argument: a domain or an address literal. */
int smtp_parse_helo(const char *args, struct smtp_parse_error *err);

/* Parse "BDAT <size> [LAST]". */
int smtp_parse_bdat(const char *args, uint64_t *size_r, bool *last_r,
                    struct smtp_parse_error *err);

/* Parse a decimal SIZE= value; -1 on junk or overflow. */
int smtp_parse_size(const char *text, uint64_t *size_r);

/* True if s is valid UTF-8 without C0/C1 controls and DEL. */
bool smtp_valid_utf8(const char *s, size_t len);

#endif
