/* datadir.c — data directory creation (see datadir.h).
 *
 * Idempotent by construction: every step checks before it creates, and
 * nothing existing is ever overwritten, so `init` can run at every start. */
#include "daemon/datadir.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/keys.h"
#include "daemon/privsep.h"
#include "mailauth/srs.h"
#include "net/tls.h"
#include "store/directory.h"

static int make_dir(const char *base, const char *sub, mode_t mode, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", base, *sub ? "/" : "", sub);
    if (mkdir(path, mode) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int make_certificate(const struct sm_config *cfg, bool verbose, char *err, size_t errlen)
{
    if (access(cfg->tls_cert, F_OK) == 0 || cfg->tls_cert[0] == '\0')
        return 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", cfg->tls_cert);
    char *slash = strrchr(dir, '/');
    if (slash != NULL) {
        *slash = '\0';
        if (make_dir(dir, "", 0700, err, errlen) < 0)
            return -1;
    }
    if (tls_make_self_signed(cfg->hostname, cfg->tls_cert, cfg->tls_key, err, errlen) < 0)
        return -1;
    if (verbose)
        printf("created self-signed certificate %s for %s\n", cfg->tls_cert, cfg->hostname);
    return 0;
}

/* Give the service user what its roles write, when we are root. */
static int hand_over(const struct sm_config *cfg, char *err, size_t errlen)
{
    unsigned uid, gid;
    if (geteuid() != 0)
        return 0;
    if (privsep_lookup_user(cfg->user, &uid, &gid) < 0) {
        snprintf(err, errlen, "unknown user '%s' ([server] user); create it with "
                 "`useradd --system %s`", cfg->user, cfg->user);
        return -1;
    }
    static const char *const owned[] = {"", "spool", "spool/incoming", "mailboxes", "inboxes",
                                        "directory.db",
                                        "directory.db-wal", "directory.db-shm"};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s%s%s", cfg->data_dir, *owned[i] ? "/" : "", owned[i]);
        if (chown(path, uid, gid) < 0 && errno != ENOENT) {
            snprintf(err, errlen, "chown %s: %s", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* keys/srs.secrets: the SRS secret (forwarding), read as root by smtpd
 * (to verify bounce addresses) and queued (to make them). */
static int srs_create(const char *data_dir, bool verbose, char *err, size_t errlen)
{
    char path[4096];
    struct stat st;
    const char *error;
    snprintf(path, sizeof path, "%s/keys/srs.secrets", data_dir);
    if (stat(path, &st) == 0)
        return 0;
    if (srs_secrets_generate(path, false, &error) < 0) {
        snprintf(err, errlen, "%s: %s", path, error);
        return -1;
    }
    if (verbose)
        printf("created SRS secret in %s/keys\n", data_dir);
    return 0;
}

int datadir_init(const struct sm_config *cfg, bool verbose, char *err, size_t errlen)
{
    const char *error;
    if (make_dir(cfg->data_dir, "", 0750, err, errlen) < 0 ||
        make_dir(cfg->data_dir, "keys", 0700, err, errlen) < 0 ||
        make_dir(cfg->data_dir, "spool", 0700, err, errlen) < 0 ||
        make_dir(cfg->data_dir, "spool/incoming", 0700, err, errlen) < 0 ||
        make_dir(cfg->data_dir, "mailboxes", 0700, err, errlen) < 0 ||
        make_dir(cfg->data_dir, "inboxes", 0700, err, errlen) < 0)
        return -1;
    int created = keys_spool_create(cfg->data_dir, err, errlen);
    if (created < 0 || srs_create(cfg->data_dir, verbose, err, errlen) < 0)
        return -1;
    if (created && verbose)
        printf("created spool key pair in %s/keys\n", cfg->data_dir);
    if (make_certificate(cfg, verbose, err, errlen) < 0)
        return -1;
    struct directory *dir = directory_open(cfg->data_dir, true, &error);
    if (dir == NULL) {
        snprintf(err, errlen, "directory: %s", error);
        return -1;
    }
    directory_close(&dir);
    return hand_over(cfg, err, errlen);
}
