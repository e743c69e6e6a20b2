/* charset.c — keep attacker-chosen charset names away from GMime's cache.
 *
 * GMime 3.2 remembers every charset name it is asked to convert from, valid
 * or not, in a process-wide hash table that is never pruned
 * (g_mime_charset_iconv_name() in gmime-charset.c).  Each message could add
 * thousands of names ("=?x1?q?a?= =?x2?q?a?= ..."), so a long-running
 * daemon would grow without bound.  Every value handed to GMime therefore
 * goes through here first: a charset name is passed on only if it consists
 * of [A-Za-z0-9._:-], is at most CHARSET_MAX bytes, and is either accepted
 * by iconv_open() or one of the aliases GMime maps itself (preloaded in its
 * table, so they add nothing).  With that character set glibc's accepted
 * names are a fixed list of aliases (it ignores trailing junk such as "!",
 * "+", "," or " ", which the character set excludes), so the cache stays
 * bounded.  Other names are replaced by "us-ascii": the text is then read
 * as ASCII with GMime's fallback charsets, which is what an unknown charset
 * gets anyway. */
#include "mime/internal.h"

#include <iconv.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/mem.h"

#define CHARSET_MAX 40 /* longer names are refused */

/* Aliases from GMime's known_iconv_charsets[] that glibc does not know. */
static const char *const gmime_aliases[] = {
    "iso-10646-1",    "iso_10646-1", "iso10646-1", "iso_10646",     "iso10646",
    "ks_c_5601-1987", "5601",        "ksc-5601",   "ksc-5601-1987", "ksc-5601_1987",
    "ks_c_5861-1992", "euckr-0",     "big5-0",     "big5.eten-0",   "big5hkscs-0",
    "gb-2312",        "gb2312-0",    "gb2312-80",  "gb2312.1980-0", "gb18030-0",
    "gbk-0",          "eucjp-0",     "ujis-0",
};

bool charset_ok(const char *name, size_t len)
{
    char copy[CHARSET_MAX + 1];
    if (len == 0 || len > CHARSET_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!g_ascii_isalnum(c) && c != '.' && c != '_' && c != ':' && c != '-')
            return false;
    }
    memcpy(copy, name, len);
    copy[len] = '\0';
    for (size_t i = 0; i < sizeof gmime_aliases / sizeof gmime_aliases[0]; i++)
        if (strcasecmp(copy, gmime_aliases[i]) == 0)
            return true;
    iconv_t cd = iconv_open("UTF-8", copy);
    if (cd == (iconv_t)-1)
        return false;
    iconv_close(cd);
    return true;
}

/* Length of the charset name at s, which ends at one of stop; 0 if no
 * stop character follows (then it is no charset name for GMime either). */
static size_t name_len(const char *s, const char *stop)
{
    size_t n = strcspn(s, stop);
    return s[n] != '\0' ? n : 0;
}

/* Whether the '=' at eq follows "name*" or "name*0*", the parameter
 * sections whose value starts with "charset'lang'" (RFC 2231 §4). */
static bool rfc2231_start(const char *value, const char *eq)
{
    const char *p = eq;
    while (p > value && (p[-1] == ' ' || p[-1] == '\t'))
        p--;
    if (p == value || p[-1] != '*')
        return false;
    p--; /* on the '*' */
    if (p > value && g_ascii_isdigit(p[-1]))
        return p[-1] == '0' && p - 1 > value && p[-2] == '*';
    return true;
}

char *charset_guard(const char *value)
{
    struct sm_buf b;
    sm_buf_init(&b, 0);
    const char *s = value;
    while (*s != '\0') {
        size_t n = 0;
        const char *name = NULL;
        if (s[0] == '=' && s[1] == '?') { /* RFC 2047: =?charset[*lang]?B|Q?text?= */
            name = s + 2;
            n = name_len(name, "?");
            if (n > 0 &&
                (strchr("BbQq", name[n + 1]) == NULL || name[n + 1] == '\0' || name[n + 2] != '?'))
                n = 0;
            n = n > 0 ? strcspn(name, "*?") : 0;             /* the language is not looked up */
        } else if (s[0] == '=' && rfc2231_start(value, s)) { /* RFC 2231 */
            name = s + 1;
            while (*name == ' ' || *name == '\t' || *name == '"')
                name++;
            n = name_len(name, "'\";");
            if (n > 0 && name[n] != '\'')
                n = 0;
        }
        if (n > 0 && !charset_ok(name, n)) {
            sm_buf_append(&b, s, (size_t)(name - s));
            sm_buf_puts(&b, "us-ascii");
            s = name + n;
            continue;
        }
        sm_buf_append(&b, s, 1);
        s++;
    }
    char *out = sm_strdup(sm_buf_str(&b));
    sm_buf_free(&b);
    return out;
}
