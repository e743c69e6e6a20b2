/* privsep.c — dropping privileges and passing roles their inputs (see privsep.h).
 *
 * The order is the one OpenSMTPD makes visible: no core dumps, not
 * dumpable, drop groups, then gid, then uid, then check that root cannot
 * be regained.  Every step ends in fatal() when it fails. */
#include "daemon/privsep.h"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/log.h"

int privsep_lookup_user(const char *user, unsigned *uid_r, unsigned *gid_r)
{
    struct passwd *pw = getpwnam(user);
    if (pw == NULL)
        return -1;
    *uid_r = pw->pw_uid;
    *gid_r = pw->pw_gid;
    return 0;
}

void privsep_drop(const char *user)
{
    struct rlimit no_core = {0, 0};
    if (setrlimit(RLIMIT_CORE, &no_core) < 0)
        fatal("setrlimit(RLIMIT_CORE)");
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        fatal("prctl(PR_SET_DUMPABLE)");
    if (geteuid() != 0)
        return;
    unsigned uid, gid;
    if (privsep_lookup_user(user, &uid, &gid) < 0)
        fatalx("unknown user '%s' ([server] user); create it (useradd --system %s)", user,
               user);
    if (uid == 0)
        fatalx("[server] user '%s' is root: refusing to run children as root", user);
    gid_t g = (gid_t)gid;
    if (setgroups(1, &g) < 0)
        fatal("setgroups");
    if (setresgid(g, g, g) < 0)
        fatal("setresgid");
    if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0)
        fatal("setresuid");
    if (setuid(0) == 0 || seteuid(0) == 0)
        fatalx("could regain root after dropping privileges");
    /* setresuid resets the dumpable flag: set it again */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        fatal("prctl(PR_SET_DUMPABLE)");
}

#if defined(__SANITIZE_ADDRESS__)
#define SM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SM_SANITIZED 1
#endif
#endif

void privsep_before_exit(void)
{
#ifdef SM_SANITIZED
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
}

static const struct {
    const char *role, *name;
} listen_kinds[LISTEN_KINDS] = {
    [LISTEN_SMTP] = {"smtpd", "smtp"},       [LISTEN_SMTPS] = {"smtpd", "smtps"},
    [LISTEN_SUBMISSION] = {"smtpd", "submission"},
    [LISTEN_IMAP] = {"imapd", "imap"},       [LISTEN_IMAPS] = {"imapd", "imaps"},
    [LISTEN_POP3] = {"imapd", "pop3"},       [LISTEN_POP3S] = {"imapd", "pop3s"},
    [LISTEN_HTTP] = {"httpd", "http"},       [LISTEN_HTTPS] = {"httpd", "https"},
};

const char *listen_kind_role(enum listen_kind k)
{
    return listen_kinds[k].role;
}

const char *listen_kind_name(enum listen_kind k)
{
    return listen_kinds[k].name;
}

void privsep_format_fds(const struct role_args *ra, char *out, size_t outlen)
{
    size_t n = (size_t)snprintf(out, outlen, "%d", ra->ctl_fd);
    for (int k = 0; k < LISTEN_KINDS && n < outlen; k++) {
        n += (size_t)snprintf(out + n, outlen - n, ";");
        for (size_t i = 0; i < ra->n_fds[k] && n < outlen; i++)
            n += (size_t)snprintf(out + n, outlen - n, "%s%d", i ? "," : "", ra->fds[k][i]);
    }
}

static int parse_fd(const char *s, char **end)
{
    long v = strtol(s, end, 10);
    if (*end == s || v < 0 || v > 65535)
        return -1;
    return (int)v;
}

int privsep_parse_role_args(int argc, char **argv, struct role_args *ra)
{
    memset(ra, 0, sizeof *ra);
    if (argc != 4 || strcmp(argv[0], "_role") != 0)
        return -1;
    ra->role = argv[1];
    ra->config_path = strcmp(argv[2], "-") == 0 ? NULL : argv[2];
    char *p = argv[3], *end;
    if ((ra->ctl_fd = parse_fd(p, &end)) < 0)
        return -1;
    for (int k = 0; k < LISTEN_KINDS; k++) {
        if (*end != ';')
            return -1;
        p = end + 1;
        end = p;
        while (*p != ';' && *p != '\0') {
            if (ra->n_fds[k] == LISTEN_MAX)
                return -1;
            int fd = parse_fd(p, &end);
            if (fd < 0 || (*end != ',' && *end != ';' && *end != '\0'))
                return -1;
            ra->fds[k][ra->n_fds[k]++] = fd;
            p = *end == ',' ? end + 1 : end;
        }
        end = p;
    }
    return *end == '\0' ? 0 : -1;
}

void privsep_role_config(const struct role_args *ra, struct sm_config *cfg)
{
    char err[512];
    enum log_level level = LOG_LEVEL_INFO;
    config_defaults(cfg);
    if (ra->config_path != NULL && config_load(cfg, ra->config_path, err, sizeof err) < 0)
        fatalx("%s", err);
    if (config_finish(cfg, err, sizeof err) < 0)
        fatalx("%s", err);
    log_level_parse(cfg->log_level, &level);
    log_init(ra->role, cfg->log_syslog, level);
    signal(SIGPIPE, SIG_IGN); /* a peer that went away is an I/O error, not a signal */
    signal(SIGINT, SIG_IGN);  /* Ctrl-C reaches the whole group: the master drains us */
    log_set_anonymise(cfg->log_anonymise_ip);
}
