/* parse-internal.h — what the parse*.c files share; not the module's
 * interface (that is parse.h).
 *
 * The parser walks an assembled command with a cursor.  The command is a
 * sequence of lines separated by literals: line k ends where literal k
 * starts (raw->literals[k].offset), so the cursor always knows the end of
 * the current line and reading past it is impossible.  Every function that
 * can fail returns 0 or -1 and records the first reason in cur->error. */
#ifndef SM_IMAP_PARSE_INTERNAL_H
#define SM_IMAP_PARSE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap/parse.h"

/* ---- the per-command arena (parse.c) ---- */

/* Zeroed memory that lives as long as the command; never NULL. */
void *arena_alloc(struct imap_arena **a, size_t n);
/* A NUL-terminated copy of n bytes. */
char *arena_strndup(struct imap_arena **a, const char *s, size_t n);
/* Free the chunks, wiping what they held first. */
void arena_free(struct imap_arena **a);

/* ---- the cursor ---- */

struct cur {
    struct imap_raw *raw;
    struct imap_command *cmd;
    const char *p;        /* next byte */
    const char *end;      /* end of the current line */
    size_t lit;           /* index of the next literal */
    const char *error;    /* first failure, static */
    size_t nodes;         /* search keys allocated so far */
};

/* Record why (only the first reason counts) and return -1. */
int cur_fail(struct cur *c, const char *why);
/* The next byte, or -1 at the end of the current line. */
int cur_peek(const struct cur *c);
/* True at the end of the whole command. */
bool cur_at_end(const struct cur *c);
/* Consume the byte ch, or fail with why. */
int cur_expect(struct cur *c, char ch, const char *why);
/* Consume one SP ("Missing argument" when the command ends instead). */
int cur_sp(struct cur *c);
/* Fail with "Unexpected extra arguments" unless at the end of the command. */
int cur_end(struct cur *c);

/* Take bytes while ok(byte); the span points into the raw command.  Fails
 * with why when empty. */
int cur_span(struct cur *c, bool (*ok)(unsigned char), const char **s_r, size_t *len_r,
             const char *why);
/* An atom (1*ATOM-CHAR). */
int cur_atom(struct cur *c, const char **s_r, size_t *len_r);
/* If the next word (letters, digits, '.', '-', '=') is kw (any case),
 * consume it and return true; otherwise consume nothing. */
bool cur_keyword(struct cur *c, const char *kw);

/* string / astring / nstring, copied into the arena.  A literal8 or an
 * external literal is refused.  nstring gives NULL for NIL. */
int cur_string(struct cur *c, char **out);
int cur_astring(struct cur *c, char **out);
int cur_nstring(struct cur *c, char **out);
/* An APPEND message: a literal, literal8 allowed, external allowed. */
int cur_message_literal(struct cur *c, struct imap_literal *out);
/* A mailbox name: astring, INBOX normalised, length checked. */
int cur_mailbox(struct cur *c, const char **out);
/* An atom upper-cased into the arena. */
int cur_atom_upper(struct cur *c, const char **out);

/* nz-number (32 bits), number64 / mod-sequence-value (63 bits). */
int cur_nz_number(struct cur *c, uint32_t *v);
int cur_number64(struct cur *c, uint64_t *v);
int cur_nz_number64(struct cur *c, uint64_t *v);

/* A sequence set into the arena ("$" only when allow_saved). */
int cur_seqset(struct cur *c, bool allow_saved, struct imap_seqset *set);
/* date (optionally quoted) and quoted date-time. */
int cur_date(struct cur *c, time_t *t);
int cur_datetime(struct cur *c, time_t *t);
/* A flag ("\Seen", "$Label", "\Extension").  allow_star: "\*" too. */
int cur_flag(struct cur *c, bool allow_star, const char **out);
/* "(" [flag *(SP flag)] ")" */
int cur_flag_list(struct cur *c, const char ***flags, size_t *n);

/* ---- shared character classes and checks ---- */

bool imap_is_atom_char(unsigned char ch);
bool imap_is_astring_char(unsigned char ch);
/* A tag: 1*ASTRING-CHAR without '+', at most IMAP_TAG_MAX bytes. */
bool imap_tag_valid(const char *s, size_t len);
/* Find a literal announcement ("{N}", "{N+}", "~{N}") ending line[0..len).
 * Returns true with where it starts; *size_r is UINT64_MAX when N does not
 * fit number64 (63 bits). */
bool imap_literal_announce(const char *line, size_t len, size_t *start_r, uint64_t *size_r,
                           bool *nonsync_r, bool *binary_r);
/* Valid UTF-8 (shortest forms, no surrogates); controls are checked only
 * when !allow_controls (C0 and DEL refused).  parse-mutf7.c. */
bool imap_utf8_check(const char *s, size_t len, bool allow_controls);

/* Sequence sets: count the ranges of text (-1 beyond IMAP_SEQ_RANGES_MAX)
 * and parse into ranges[count].  parse-seqset.c. */
int seqset_parse_into(const char *text, size_t len, bool allow_saved, struct imap_seqset *set,
                      struct imap_seq_range *ranges, const char **error_r);
long seqset_count(const char *text, size_t len);
bool seqset_char(unsigned char ch);

/* ---- command families (one file each) ---- */

int parse_search(struct cur *c);   /* SEARCH; parse-search.c */
int parse_sort(struct cur *c);     /* SORT */
int parse_fetch(struct cur *c);    /* FETCH; parse-fetch.c */
int parse_store(struct cur *c);    /* STORE */
int parse_select(struct cur *c);   /* SELECT, EXAMINE; parse-mailbox.c */
int parse_create(struct cur *c);
int parse_list(struct cur *c);
int parse_lsub(struct cur *c);
int parse_status(struct cur *c);
int parse_append(struct cur *c);

#endif
