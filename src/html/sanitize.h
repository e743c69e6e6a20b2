/* sanitize.h — HTML mail made safe to show in a browser (issue #7).
 *
 * WHAT.  sm_html_sanitize() takes the text of a text/html MIME part (already
 * decoded to UTF-8 by the caller; invalid UTF-8 is replaced by U+FFFD),
 * parses it with the HTML5 parser gumbo, keeps only an allow-list of
 * elements and attributes, and serialises the cleaned tree as a complete
 * document ("<!DOCTYPE html><html><head></head><body ...>...</body></html>").
 * sm_html_from_text() turns a text/plain part into the same kind of document.
 * Neither uses regular expressions over HTML: decisions are taken on the
 * parsed tree, and the output is written by our own serialiser.
 *
 * WHAT IS KEPT.  Text; formatting (b, i, u, s, strike, em, strong, small,
 * big, sub, sup, tt, code, kbd, samp, var, mark, font, center, ...); p, div,
 * span, br, hr, headings, blockquote, pre, lists, tables, links and images.
 * Attributes follow a per-element allow-list and every value is checked for
 * its kind (colour, length, keyword, free text, identifier, URL).
 *   - Dropped with their content: script, style, template, noscript,
 *     iframe, frame(set), object, embed, applet, svg, math (anything not in
 *     the HTML namespace), form controls, audio/video, canvas, map, head
 *     elements (meta, link, base, title), comments.
 *   - Kept as a neutral element (content stays): unknown tags such as
 *     Word's <o:p> and a few known wrappers (form, fieldset, label, nobr, ...)
 *     become span or div; xmp, listing and plaintext become pre.
 *   - <style> blocks are DROPPED, not filtered: a style sheet applies beyond
 *     its element and needs a full CSS parser (selectors, at-rules, escapes,
 *     nesting) to clean; mail authors inline their CSS because many clients
 *     drop <style> anyway.  The cost is lost media queries and classes.
 *   - style="" attributes are filtered declaration by declaration: the
 *     property must be on an allow-list (colours, fonts, text, box model,
 *     borders, tables, lists; no position, z-index, content, behavior,
 *     -moz-binding, filter, background-image, ...) and the value may contain
 *     only plain tokens: no backslash (so no escapes), no comments, no
 *     quotes except in font-family, no function but rgb()/rgba()/hsl()/
 *     hsla()/calc() — so no url(), expression(), image-set(), @import.
 *     Declarations that fail are dropped; url() ones are counted.
 *   - id (and name on a) are kept when they are plain identifiers, so that
 *     in-mail "#fragment" links work; clobbering needs scripts, and the
 *     document has none.  class is dropped (no style sheet to use it).
 *
 * URLS.  The scheme is read the way a browser reads it: leading and trailing
 * C0 controls and spaces stripped, tab/CR/LF removed anywhere, entities were
 * already decoded by the parser.  Relative URLs are dropped (they would
 * resolve against the web application's own origin).
 *   - a href: http, https, mailto, or "#fragment"; other links lose their
 *     href.  Links get target="_blank" rel="noopener noreferrer" (not the
 *     fragment links, which must stay in the document).
 *   - img src: http/https is a REMOTE image.  By default it is not loaded:
 *     the URL moves to data-sm-src (no src) and stats.remote_images counts
 *     it; with allow_remote_images it stays in src.  srcset is always
 *     dropped (src remains as the fallback); a remote one is counted.
 *   - background="" (body, table, tr, td, th): same rule, data-sm-background.
 *   - img src="cid:X" becomes data-sm-cid="X" (and, when the caller gives
 *     cid_url_prefix, also src=prefix+percent-encoded X, e.g.
 *     "/inbox/3f9a/part/" + cid).  The web layer maps the cid to the
 *     attachment of the same message; it must look the cid up, never use it
 *     as a path.  When the web layer builds the src itself, it is expected to
 *     rewrite data-sm-cid; data-sm-src must only be turned into src after the
 *     user asked for remote images (or rather: sanitise again with
 *     allow_remote_images).
 *   - img src="data:image/(png|gif|jpeg|webp);base64,..." is kept: such
 *     images are inline, load nothing and track nothing.  Other data: URLs
 *     (svg+xml can carry script, text/html is a document) are dropped.
 *   - Any other scheme (javascript:, vbscript:, data:text/html, file:, ...)
 *     removes the attribute.
 *   Input may already contain data-sm-src / data-sm-cid / data-sm-background:
 *   they are treated exactly like src / cid: / background, which makes the
 *   output a fixed point (sanitising it again gives the same bytes).
 *
 * OUTPUT CONTRACT.  The output is valid UTF-8, contains no script, no event
 * handler, no URL with a scheme outside the lists above, no form, no base,
 * no meta, no svg/math, no CSS url(); it is a fixed point of the sanitiser
 * (checked internally: the result is parsed and cleaned again until it no
 * longer changes, at most SM_HTML_MAX_PASSES times, or the call fails).
 * It is meant for <iframe sandbox srcdoc="..."> (sandbox WITHOUT
 * allow-scripts and WITHOUT allow-same-origin; add allow-popups and
 * allow-popups-to-escape-sandbox so target=_blank links open) or to be served
 * as its own document with Content-Type: text/html; charset=utf-8.
 * As a second line of defence the web layer MUST send this CSP with it
 * (for srcdoc: on the embedding page, which the iframe inherits, or in a
 * <meta> the web layer adds itself):
 *     default-src 'none'; img-src data:; style-src 'unsafe-inline';
 *     font-src 'none'; form-action 'none'; frame-ancestors 'self';
 *     base-uri 'none'
 * with "img-src data: https: http:" (plus 'self' if cid_url_prefix is used)
 * only when the user asked for remote images.  No script-src: scripts never
 * run.  Also send Referrer-Policy: no-referrer.
 *
 * LIMITS.  Input at most SM_HTML_MAX_INPUT bytes (2 MiB; more is refused
 * with SM_HTML_TOO_LARGE).  gumbo has no limits of its own and some inputs
 * make it quadratic (deep nesting: 100k nested <div> costs seconds), so the
 * parse runs in a bounded arena (memory budget) with a CPU-time budget, and
 * long runs of text are paced so the budget is checked often; going over
 * either gives SM_HTML_TOO_COMPLEX.  Elements nested deeper than
 * SM_HTML_MAX_DEPTH are flattened (their text stays); the serialiser is
 * iterative, so depth never costs stack.  The output is at most
 * SM_HTML_MAX_OUTPUT bytes (SM_HTML_OUTPUT_TOO_LARGE otherwise).  The CPU
 * budget is the calling thread's CPU time (clock_gettime with
 * CLOCK_THREAD_CPUTIME_ID, which a seccomp filter must allow), so a loaded
 * machine does not refuse legitimate mail.
 * Thread-safe: no global state; run it on a worker thread, never on the
 * event loop (a 2 MiB part takes a noticeable fraction of a second). */
#ifndef SM_HTML_SANITIZE_H
#define SM_HTML_SANITIZE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

#define SM_HTML_MAX_INPUT (2u * 1024 * 1024)
#define SM_HTML_MAX_OUTPUT (16u * 1024 * 1024)
#define SM_HTML_MAX_DEPTH 256
#define SM_HTML_MAX_PASSES 4
/* Parse budgets, per call and all passes together.  CPU time: a base plus
 * a cost per KiB of input (2 MiB: 2.3 s; a legitimate 2 MiB newsletter takes
 * about 0.3 s for both passes), four times that in sanitizer builds.
 * Memory: what gumbo holds, with allocator overhead; a 2 MiB newsletter
 * (12k table rows, links and images) needs between 32 and 64 MiB. */
#define SM_HTML_PARSE_CPU_MS_BASE 250
#define SM_HTML_PARSE_CPU_MS_PER_KIB 1
#define SM_HTML_PARSE_MEMORY (128u * 1024 * 1024)

enum sm_html_status {
    SM_HTML_OK = 0,
    SM_HTML_TOO_LARGE,        /* input over the size limit: refused */
    SM_HTML_TOO_COMPLEX,      /* parse over its CPU or memory budget */
    SM_HTML_OUTPUT_TOO_LARGE, /* cleaned document over SM_HTML_MAX_OUTPUT */
    SM_HTML_UNSTABLE,         /* no fixed point after SM_HTML_MAX_PASSES */
};

struct sm_html_options {
    bool allow_remote_images;    /* keep http(s) img src / background */
    const char *cid_url_prefix;  /* NULL: cid images only get data-sm-cid */
    size_t max_input;            /* 0 or more than SM_HTML_MAX_INPUT: the maximum */
    unsigned cpu_ms;             /* 0: SM_HTML_PARSE_CPU_MS_BASE + _PER_KIB x KiB */
    size_t max_memory;           /* 0: SM_HTML_PARSE_MEMORY */
};

/* What the sanitiser did, for the page ("3 remote images blocked") and for
 * tests.  Counted on the caller's input (the first pass). */
struct sm_html_stats {
    unsigned remote_images;      /* http(s) img src, srcset, background: blocked,
                                  * or kept with allow_remote_images */
    unsigned remote_css;         /* url() found in style attributes (always removed) */
    unsigned cid_images;         /* cid: images rewritten to data-sm-cid */
    unsigned data_images;        /* data:image/... kept inline */
    unsigned links;              /* links kept (http, https, mailto) */
    unsigned dropped_elements;   /* elements removed (with their content) */
    unsigned dropped_attributes; /* attributes removed (not allowed, or bad value) */
    unsigned flattened;          /* elements unwrapped because nested too deep */
};

/* Sanitise len bytes of HTML (need not be NUL-terminated).  opts may be
 * NULL (defaults: remote images blocked).  out is initialised by the call
 * and holds the document on SM_HTML_OK, nothing otherwise; the caller
 * always releases it with sm_buf_free().  stats may be NULL.  Returns
 * SM_HTML_OK or the reason for refusing. */
enum sm_html_status sm_html_sanitize(const char *html, size_t len,
                                     const struct sm_html_options *opts,
                                     struct sm_buf *out, struct sm_html_stats *stats);

/* Turn len bytes of plain text into a document of the same shape: every
 * character escaped, line breaks kept (a <pre> with white-space:pre-wrap),
 * http/https URLs made links with target="_blank" rel="noopener noreferrer".
 * The result is a fixed point of sm_html_sanitize().  Input over
 * SM_HTML_MAX_INPUT gives SM_HTML_TOO_LARGE; out as above. */
enum sm_html_status sm_html_from_text(const char *text, size_t len, struct sm_buf *out);

/* A short English text for a status ("HTML too large"); never NULL. */
const char *sm_html_strerror(enum sm_html_status status);

#endif
