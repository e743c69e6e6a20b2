/* sts-fetch.c — MTA-STS policy fetching and caching (see sts-fetch.h) */
#include "daemon/sts-fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/mem.h"

int sts_fetch_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void sts_fetch_global_free(void)
{
    curl_global_cleanup();
}

/* --- fetching ------------------------------------------------------------------- */

struct body {
    char *data;
    size_t len;
    bool too_large;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    size_t add = size * n;
    if (add > STS_POLICY_MAX - b->len) {
        b->too_large = true;
        return 0; /* libcurl aborts the transfer */
    }
    b->data = sm_realloc(b->data, b->len + add + 1);
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

/* libcurl asks now and then; non-zero aborts (queued is stopping). */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    atomic_bool *stop = arg;
    return stop != NULL && atomic_load(stop) ? 1 : 0;
}

/* "mta-sts.DOMAIN:PORT:ADDR,ADDR" for CURLOPT_RESOLVE (IPv6 in brackets). */
static struct curl_slist *resolve_list(const struct sts_fetch_params *fp)
{
    char entry[1024];
    int n = snprintf(entry, sizeof entry, "mta-sts.%s:%u:", fp->domain, fp->port);
    for (size_t i = 0; i < fp->n_addrs && n > 0 && (size_t)n < sizeof entry; i++) {
        bool v6 = strchr(fp->addrs[i], ':') != NULL;
        n += snprintf(entry + n, sizeof entry - (size_t)n, "%s%s%s%s", i ? "," : "",
                      v6 ? "[" : "", fp->addrs[i], v6 ? "]" : "");
    }
    if (n < 0 || (size_t)n >= sizeof entry)
        return NULL;
    return curl_slist_append(NULL, entry);
}

static void setup(CURL *h, const struct sts_fetch_params *fp, const char *url,
                  struct curl_slist *resolve, struct body *b, char *curl_err)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* §3.3: no redirects */
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (fp->ca_file != NULL && fp->ca_file[0] != '\0')
        curl_easy_setopt(h, CURLOPT_CAINFO, fp->ca_file);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)fp->timeout_s);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)fp->timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads */
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE, (long)STS_POLICY_MAX);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "sealmail-mta-sts");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, fp->stop);
}

/* After the transfer: status 200, text/plain (§3.3). */
static const char *check_reply(CURL *h)
{
    long status = 0;
    char *type = NULL;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &type);
    if (status != 200)
        return "the server's status is not 200";
    if (type == NULL || strncasecmp(type, "text/plain", 10) != 0 ||
        (type[10] != '\0' && type[10] != ';' && type[10] != ' '))
        return "the policy is not text/plain";
    return NULL;
}

int sts_fetch(const struct sts_fetch_params *fp, struct sts_policy *p, char **body_r,
              size_t *len_r, char *err, size_t errlen)
{
    *body_r = NULL;
    *len_r = 0;
    if (!sts_domain_ok(fp->domain) || fp->n_addrs == 0 || fp->n_addrs > STS_FETCH_ADDRS_MAX) {
        snprintf(err, errlen, "no address for mta-sts.%s", fp->domain);
        return -1;
    }
    char url[STS_NAME_MAX + 64];
    if (fp->port == 443)
        snprintf(url, sizeof url, "https://mta-sts.%s/.well-known/mta-sts.txt", fp->domain);
    else
        snprintf(url, sizeof url, "https://mta-sts.%s:%u/.well-known/mta-sts.txt", fp->domain,
                 fp->port);
    struct curl_slist *resolve = resolve_list(fp);
    CURL *h = curl_easy_init();
    if (resolve == NULL || h == NULL) {
        snprintf(err, errlen, "cannot set up the fetch");
        curl_slist_free_all(resolve);
        curl_easy_cleanup(h);
        return -1;
    }
    struct body b = {0};
    char curl_err[CURL_ERROR_SIZE] = "";
    setup(h, fp, url, resolve, &b, curl_err);
    CURLcode rc = curl_easy_perform(h);
    const char *why = NULL;
    if (b.too_large)
        why = "the policy is too large";
    else if (rc != CURLE_OK)
        why = curl_err[0] ? curl_err : curl_easy_strerror(rc);
    else if ((why = check_reply(h)) == NULL)
        sts_policy_parse(b.data ? b.data : "", b.len, p, &why); /* why: what is wrong */
    if (why != NULL)
        snprintf(err, errlen, "%s", why);
    curl_easy_cleanup(h);
    curl_slist_free_all(resolve);
    if (why != NULL) {
        free(b.data);
        return -1;
    }
    *body_r = b.data ? b.data : sm_strdup("");
    *len_r = b.len;
    return 0;
}

/* --- the cache ---------------------------------------------------------------------- */

#define CACHE_MAGIC "sealmail-mta-sts 1"

bool sts_domain_ok(const char *domain)
{
    size_t n = strlen(domain), label = 0;
    if (n == 0 || n > STS_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = domain[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0;
}

static int cache_path(char *out, size_t outlen, const char *dir, const char *domain,
                      const char *suffix)
{
    if (!sts_domain_ok(domain))
        return -1;
    int n = snprintf(out, outlen, "%s/%s%s", dir, domain, suffix);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int sts_cache_load(const char *dir, const char *domain, struct sts_cached *c)
{
    char path[4096];
    if (cache_path(path, sizeof path, dir, domain, "") < 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? 1 : -1;
    size_t cap = STS_POLICY_MAX + 128;
    char *buf = sm_malloc(cap + 1);
    ssize_t n = sm_read_full(fd, buf, cap + 1);
    close(fd);
    int rc = -1;
    if (n > 0 && (size_t)n <= cap) {
        buf[n] = '\0';
        char *nl = memchr(buf, '\n', (size_t)n);
        char magic[32];
        const char *why;
        if (nl != NULL && sscanf(buf, "%31[^ ] 1 id=%32[A-Za-z0-9] fetched=%" SCNd64, magic,
                                 c->id, &c->fetched) == 3 &&
            strncmp(buf, CACHE_MAGIC " ", sizeof CACHE_MAGIC) == 0 &&
            sts_policy_parse(nl + 1, (size_t)n - (size_t)(nl + 1 - buf), &c->policy, &why))
            rc = 0;
    }
    free(buf);
    return rc;
}

static int write_synced(const char *path, const char *head, const char *body, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    int rc = sm_write_full(fd, head, strlen(head)) == 0 && sm_write_full(fd, body, len) == 0 &&
                     fsync(fd) == 0
                 ? 0
                 : -1;
    return close(fd) == 0 ? rc : -1;
}

int sts_cache_save(const char *dir, const char *domain, const char *id, int64_t fetched,
                   const char *body, size_t len)
{
    char path[4096], tmp[4096], head[128];
    /* a unique temporary name: two fetches may save at once */
    static atomic_uint seq;
    char suffix[48];
    snprintf(suffix, sizeof suffix, ".tmp.%ld.%u", (long)getpid(), atomic_fetch_add(&seq, 1));
    if (cache_path(path, sizeof path, dir, domain, "") < 0 ||
        cache_path(tmp, sizeof tmp, dir, domain, suffix) < 0)
        return -1;
    snprintf(head, sizeof head, CACHE_MAGIC " id=%s fetched=%" PRId64 "\n", id, fetched);
    /* Directory syncs take turns under its flock, from the new file's
     * first sync on: on ext4 without a journal that sync writes the
     * directory too, and a concurrent one can make another saver's
     * directory fsync return before its name is on disk (drop.c). */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    while (flock(dfd, LOCK_EX) < 0 && errno == EINTR)
        ;
    int rc = -1;
    if (write_synced(tmp, head, body, len) < 0 || rename(tmp, path) < 0) {
        int saved = errno; /* the caller reports it */
        unlink(tmp);
        errno = saved;
    } else {
        rc = fsync(dfd) == 0 ? 0 : -1;
    }
    int saved = errno;
    close(dfd); /* releases the flock */
    errno = saved;
    return rc;
}

bool sts_cached_valid(const struct sts_cached *c, int64_t now)
{
    return now >= c->fetched && now - c->fetched < (int64_t)c->policy.max_age;
}
