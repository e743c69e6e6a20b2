/* internal.h — what the files of src/html/ share; not part of the API. */
#ifndef SM_HTML_INTERNAL_H
#define SM_HTML_INTERNAL_H

#include <gumbo.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "html/sanitize.h"

/* ---- parse.c: gumbo under budgets ------------------------------------- */

struct html_budget {
    int64_t deadline_ns;   /* thread CPU time (CLOCK_THREAD_CPUTIME_ID) */
    size_t max_memory;     /* live bytes gumbo may hold */
};

struct html_parse;

/* Thread CPU time now, in nanoseconds. */
int64_t html_cpu_now_ns(void);

/* Parse len bytes (any bytes: invalid UTF-8 and NUL become U+FFFD) under
 * the budget.  On SM_HTML_OK *p_r holds the tree (html_parse_output()); on
 * SM_HTML_TOO_COMPLEX nothing is kept.  Free with html_parse_free(). */
enum sm_html_status html_parse(const char *in, size_t len, const struct html_budget *budget,
                               struct html_parse **p_r);
const GumboOutput *html_parse_output(const struct html_parse *p);
void html_parse_free(struct html_parse **pp);

/* Decode one UTF-8 sequence at s (n > 0 bytes available).  Returns the code
 * point and its length in *len_r, or -1 (with *len_r = 1) if the bytes are
 * not well-formed UTF-8 (overlong, surrogate, above U+10FFFF, truncated). */
int32_t html_utf8_decode(const unsigned char *s, size_t n, size_t *len_r);

/* Code points the HTML parser (gumbo) turns into U+FFFD: NUL, C0 controls
 * but tab, LF, FF and CR, DEL and C1 controls, non-characters. */
bool html_forbidden_cp(int32_t cp);

/* ---- css.c: style="" filter ------------------------------------------- */

/* Append to out the declarations of style that pass the allow-list, in
 * normalised form ("prop:value;prop:value"); *url_count_r gets the number
 * of declarations dropped because they held url().  Appends nothing when
 * nothing passes.  Returns -1 if out is full. */
int html_css_filter(const char *style, struct sm_buf *out, unsigned *url_count_r);

/* ---- sanitize.c helpers used by text.c ---------------------------------- */

/* Append s (n bytes, valid UTF-8) escaped for text or for a double-quoted
 * attribute value.  Return -1 if out is full. */
int html_escape_text(struct sm_buf *out, const char *s, size_t n);
int html_escape_attr(struct sm_buf *out, const char *s, size_t n);

#endif
