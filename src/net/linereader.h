/* linereader.h — the one bounded reader for all network text.
 *
 * linereader_next() takes the next line out of an evbuffer.  A line is at
 * most `max` bytes including its terminator.  The reader never buffers
 * more than it is given and never searches past max bytes, so a peer that
 * sends megabytes without a newline costs O(max) per call, not O(n).
 *
 * Results:
 *   LR_LINE     a line ending in CRLF; the copy excludes the CRLF;
 *   LR_MORE     no complete line yet: wait for more input;
 *   LR_TOOLONG  the line exceeded max: the reader now discards input up to
 *               and including the next LF (further calls return LR_MORE
 *               while discarding, then continue normally);
 *   LR_BARE_LF  a line ended in LF without CR (the copy excludes the LF);
 *   LR_BARE_CR  a CRLF-terminated line contains a CR not followed by LF.
 * The last two still consume the line, so the caller decides whether bare
 * line ends are an error (SMTP DATA: always; see RFC 5321 §2.3.8).
 * bare_before tells, for each line returned, whether the line before it
 * ended in a bare LF, overlong discarded lines included: SMTP needs it to
 * refuse "\n.\r\n" as an end of data. */
#ifndef SM_LINEREADER_H
#define SM_LINEREADER_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

enum lr_result { LR_MORE = 0, LR_LINE, LR_TOOLONG, LR_BARE_LF, LR_BARE_CR };

struct linereader {
    size_t max;        /* longest line, terminator included */
    bool skipping;     /* discarding the rest of an overlong line */
    bool skip_last_cr; /* while skipping: the last byte discarded was CR */
    bool last_bare;    /* the last completed line (skipped ones too) ended in a bare LF */
    bool bare_before;  /* for the line just returned: the line before it ended in a bare LF */
};

/* Prepare a reader for lines of at most max bytes (max >= 3). */
void linereader_init(struct linereader *lr, size_t max);
/* Take the next line from in into line (capacity >= lr->max bytes; the
 * result is NUL-terminated, *len_r excludes the terminator).  NUL bytes
 * inside the line are kept: callers that need C strings must check
 * strlen(line) == *len_r. */
enum lr_result linereader_next(struct linereader *lr, struct evbuffer *in, char *line,
                               size_t *len_r);
/* The length of the longest prefix of p[0..n) made of whole lines that
 * linereader_next() would return as LR_LINE with bare_before false, none
 * of them beginning with `stop`; the reader moves past them.  A caller
 * that takes such lines as they stand (CRLF and all) uses this on the
 * bytes it can see to skip a search and a copy per line, and falls back
 * to linereader_next() when it returns 0: for a line that needs a
 * decision, that runs past n, or while an overlong line is discarded. */
size_t linereader_clean_prefix(struct linereader *lr, const char *p, size_t n, char stop);

#endif
