/* sts-policy.h — the two texts of MTA-STS (RFC 8461): the "_mta-sts" TXT
 * record (§3.1) and the policy file served over HTTPS (§3.2).
 *
 * What: pure parsers, no I/O.  queued reads the TXT record to learn the
 * policy's current id, fetches the policy when the id is new (sts-fetch.h)
 * and applies what sts_policy_parse() found: in mode "enforce", mail goes
 * only to MX hosts matching an "mx" pattern, over STARTTLS with a
 * certificate valid for the host's name (smtp/client.h, VERIFY_NAME).
 *
 * Both parsers are strict where RFC 8461 is (the version first in the
 * record, digits only in max_age, a known mode) and lenient where it asks
 * for it (unknown fields are ignored).  A text that does not parse is no
 * policy: the RFC says the sender then behaves as if the domain had none
 * (§3.1, §3.3), unless it holds an unexpired policy from earlier.
 *
 * Limits: a policy file of at most STS_POLICY_MAX bytes, lines of at most
 * STS_LINE_MAX, at most STS_MX_MAX "mx" patterns of DNS_NAME_MAX
 * characters; max_age is capped at STS_MAX_AGE_MAX (one year, §3.2).
 * Anything beyond a limit makes the text invalid, never truncated. */
#ifndef SM_SMTP_STS_POLICY_H
#define SM_SMTP_STS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STS_POLICY_MAX (64 * 1024)
#define STS_LINE_MAX 1024
#define STS_MX_MAX 32
#define STS_ID_MAX 32
#define STS_NAME_MAX 253
#define STS_MAX_AGE_MAX 31557600u

enum sts_mode { STS_MODE_NONE, STS_MODE_TESTING, STS_MODE_ENFORCE };

struct sts_policy {
    enum sts_mode mode;
    uint32_t max_age;                    /* seconds */
    char mx[STS_MX_MAX][STS_NAME_MAX + 1];
    size_t n_mx;
};

/* The id of one TXT record (§3.1): "v=STSv1" first, then ";"-separated
 * fields, exactly one "id=" of 1-32 letters and digits; other fields must
 * be well formed and are ignored.  true with id (STS_ID_MAX + 1 bytes). */
bool sts_txt_parse(const char *txt, size_t len, char *id);

/* Does this TXT record claim to be MTA-STS ("v=STSv1" then ";" or the
 * end)?  Records that do not are skipped before counting (§3.1). */
bool sts_txt_is_sts(const char *txt, size_t len);

/* A policy file (§3.2): CRLF- or LF-terminated "key: value" lines;
 * version STSv1, mode, max_age required, and at least one mx unless the
 * mode is none.  true with *p filled; false with a short reason in why. */
bool sts_policy_parse(const char *text, size_t len, struct sts_policy *p, const char **why);

/* Does host match one of the policy's mx patterns (§4.1)? */
bool sts_policy_allows_mx(const struct sts_policy *p, const char *host);

const char *sts_mode_name(enum sts_mode m);

#endif
