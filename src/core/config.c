/* config.c — the option table, the INI reader (inih) and validation.
 *
 * Design: one static table, options[], declares every knob with its type,
 * bounds and default.  Nothing else in the tree knows a default value.
 * Values are parsed with the same code whether they come from the
 * embedded defaults, the file, or config_set(). */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"

enum opt_type { OPT_STR, OPT_BOOL, OPT_UINT, OPT_SIZE, OPT_SECONDS };

struct option_def {
    const char *section;
    const char *name;
    enum opt_type type;
    uint64_t min, max;
    const char *def;
    size_t offset;
    size_t width; /* sizeof the field, for unsigned vs uint64_t */
    const char *help;
};

#define F(field) offsetof(struct sm_config, field), sizeof(((struct sm_config *)0)->field)
#define MiB (1024ull * 1024)

static const struct option_def options[] = {
    {"server", "hostname", OPT_STR, 0, 253, "", F(hostname),
     "Name announced in the SMTP greeting and Received headers; empty: the machine's host name."},
    {"server", "data_dir", OPT_STR, 1, PATH_MAX, "./var", F(data_dir),
     "Directory holding the directory database, keys, spool and mailboxes."},
    {"server", "user", OPT_STR, 1, 64, "sealmail", F(user),
     "Unprivileged user the children run as when sealmail is started as root."},
    {"server", "smtpd_workers", OPT_UINT, 1, 64, "1", F(smtpd_workers),
     "Number of smtpd processes sharing the SMTP listeners."},
    {"server", "shutdown_grace", OPT_SECONDS, 0, 3600, "30", F(shutdown_grace),
     "On SIGTERM, how long running SMTP transactions may take to finish."},

    {"log", "level", OPT_STR, 1, 8, "info", F(log_level), "One of error, warn, info, debug."},
    {"log", "syslog", OPT_BOOL, 0, 1, "no", F(log_syslog),
     "Log to syslog (facility mail) instead of standard error."},
    {"log", "anonymise_ip", OPT_BOOL, 0, 1, "yes", F(log_anonymise_ip),
     "Log client addresses truncated to their /24 (IPv4) or /48 (IPv6)."},

    {"smtp", "listen", OPT_STR, 0, 1024, "127.0.0.1:2525", F(smtp_listen),
     "Addresses for SMTP with STARTTLS (port 25 in production), separated by spaces."},
    {"smtp", "smtps_listen", OPT_STR, 0, 1024, "127.0.0.1:2465", F(smtps_listen),
     "Addresses for SMTP over implicit TLS (port 465)."},
    {"smtp", "submission_listen", OPT_STR, 0, 1024, "127.0.0.1:2587", F(submission_listen),
     "Addresses for message submission (port 587); MAIL needs AUTH, which is not built yet."},
    {"smtp", "max_line", OPT_SIZE, 512, 65536, "2048", F(smtp_max_line),
     "Longest command line accepted, CRLF included (RFC 5321 minimum: 512)."},
    {"smtp", "max_data_line", OPT_SIZE, 1000, 1 * MiB, "65536", F(smtp_max_data_line),
     "Longest header or body line accepted in a message, CRLF included."},
    {"smtp", "max_message_size", OPT_SIZE, 1024, 2048 * MiB, "25M", F(smtp_max_message_size),
     "Largest message accepted, announced in the SIZE extension."},
    {"smtp", "max_recipients", OPT_UINT, 1, 100000, "100", F(smtp_max_recipients),
     "Recipients per message (RFC 5321 asks servers to accept at least 100)."},
    {"smtp", "max_errors", OPT_UINT, 1, 1000, "10", F(smtp_max_errors),
     "Protocol errors a session may make before it is closed with 421."},
    {"smtp", "max_connections", OPT_UINT, 1, 1000000, "1000", F(smtp_max_connections),
     "Simultaneous SMTP connections per smtpd process."},
    {"smtp", "max_connections_per_client", OPT_UINT, 1, 1000000, "50",
     F(smtp_max_connections_per_client),
     "Simultaneous connections from one client address (IPv6: one /64)."},
    {"smtp", "command_timeout", OPT_SECONDS, 1, 3600, "300", F(smtp_command_timeout),
     "Idle time allowed while waiting for a command (RFC 5321 §4.5.3.2: 5 minutes)."},
    {"smtp", "data_timeout", OPT_SECONDS, 1, 3600, "600", F(smtp_data_timeout),
     "Idle time allowed while receiving message data."},
    {"smtp", "session_timeout", OPT_SECONDS, 10, 86400, "1800", F(smtp_session_timeout),
     "Longest a session may last in total, however busy."},

    {"tls", "cert", OPT_STR, 0, PATH_MAX, "keys/tls/cert.pem", F(tls_cert),
     "Default certificate chain (PEM); relative paths are under data_dir."},
    {"tls", "key", OPT_STR, 0, PATH_MAX, "keys/tls/key.pem", F(tls_key),
     "Private key of the default certificate (PEM)."},
    {"tls", "sni_dir", OPT_STR, 0, PATH_MAX, "keys/tls/sni", F(tls_sni_dir),
     "Directory of per-domain certificates: NAME.pem and NAME.key, chosen by SNI."},
    {"tls", "ciphers", OPT_STR, 1, 1024,
     "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
     "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
     F(tls_ciphers), "TLS 1.2 cipher list (Mozilla intermediate); TLS 1.3 uses OpenSSL's suites."},

    {"spool", "sync_batch", OPT_UINT, 1, 4096, "256", F(spool_sync_batch),
     "Most spool files made durable together by one group commit."},
    {"spool", "hold", OPT_BOOL, 0, 1, "no", F(spool_hold),
     "Keep accepted messages in the spool instead of delivering them (maintenance)."},

    {"mailbox", "argon2_ops", OPT_UINT, 2, 32, "3", F(mailbox_argon2_ops),
     "Argon2id passes that turn a password into the key that unwraps a mailbox key."},
    {"mailbox", "argon2_memory", OPT_SIZE, 19 * MiB, 1024 * MiB, "64M", F(mailbox_argon2_memory),
     "Argon2id memory per password check (each login costs this much RAM for a moment)."},
    {"mailbox", "default_quota", OPT_SIZE, 0, 1024 * 1024 * MiB, "0", F(mailbox_default_quota),
     "Quota of a new mailbox unless `user add --quota` says otherwise; 0: no limit."},

    {"imap", "listen", OPT_STR, 0, 1024, "127.0.0.1:2143", F(imap_listen),
     "Addresses for IMAP with STARTTLS (port 143 in production)."},
    {"imap", "imaps_listen", OPT_STR, 0, 1024, "127.0.0.1:2993", F(imaps_listen),
     "Addresses for IMAP over implicit TLS (port 993)."},
    {"imap", "pop3_listen", OPT_STR, 0, 1024, "127.0.0.1:2110", F(pop3_listen),
     "Addresses for POP3 with STLS (port 110)."},
    {"imap", "pop3s_listen", OPT_STR, 0, 1024, "127.0.0.1:2995", F(pop3s_listen),
     "Addresses for POP3 over implicit TLS (port 995)."},
    {"imap", "plaintext_loopback", OPT_BOOL, 0, 1, "no", F(imap_plaintext_loopback),
     "Allow passwords without TLS from 127.0.0.0/8 and ::1 (tests, local tools); never elsewhere."},
    {"imap", "workers", OPT_UINT, 1, 64, "4", F(imap_workers),
     "Threads of the imapd process that unlock mailboxes and run commands on the stores."},
    {"imap", "max_line", OPT_SIZE, 1024, 1 * MiB, "65536", F(imap_max_line),
     "Longest IMAP command line or POP3 line accepted, CRLF included."},
    {"imap", "max_command", OPT_SIZE, 4096, 16 * MiB, "1M", F(imap_max_command),
     "Most bytes of one IMAP command with its literals, APPEND's message aside."},
    {"imap", "append_limit", OPT_SIZE, 1024, 2048 * MiB, "50M", F(imap_append_limit),
     "Largest message APPEND accepts (announced as APPENDLIMIT)."},
    {"imap", "max_connections", OPT_UINT, 1, 1000000, "2000", F(imap_max_connections),
     "Simultaneous IMAP and POP3 connections of the imapd process."},
    {"imap", "max_connections_per_client", OPT_UINT, 1, 1000000, "50",
     F(imap_max_connections_per_client),
     "Simultaneous IMAP and POP3 connections from one client address (IPv6: one /64)."},
    {"imap", "max_sessions_per_account", OPT_UINT, 1, 10000, "20",
     F(imap_max_sessions_per_account), "Logged-in IMAP and POP3 sessions of one mailbox."},
    {"imap", "login_timeout", OPT_SECONDS, 5, 3600, "60", F(imap_login_timeout),
     "Idle time allowed before login."},
    {"imap", "idle_timeout", OPT_SECONDS, 60, 86400, "1800", F(imap_idle_timeout),
     "Idle time allowed after login, IDLE included (RFC 9051 §5.4: at least 30 minutes)."},
    {"imap", "pop3_timeout", OPT_SECONDS, 60, 86400, "600", F(pop3_timeout),
     "Idle time allowed in a POP3 session after login (RFC 1939 §3: at least 10 minutes)."},
    {"imap", "max_errors", OPT_UINT, 1, 1000, "20", F(imap_max_errors),
     "Bad commands a session may send before it is closed."},
    {"imap", "unlock_linger", OPT_SECONDS, 0, 3600, "120", F(imap_unlock_linger),
     "How long a mailbox stays unlocked after its owner's last session ends, so that a "
     "reconnecting client with the same password skips Argon2id; 0: lock at once."},

    {"dns", "forwarders", OPT_STR, 0, 1024, "", F(dns_forwarders),
     "Resolvers to forward queries to (\"addr[@port]\", separated by spaces); empty: full "
     "recursion from the root.  A forwarder must pass DNSSEC records through."},
    {"dns", "zone_file", OPT_STR, 0, PATH_MAX, "", F(dns_zone_file),
     "Answer every query from this file of resource records and send nothing to the network "
     "(tests, air-gapped setups); empty: use the network."},
    {"dns", "trust_anchor", OPT_STR, 0, PATH_MAX, "/usr/share/dns/root.key", F(dns_trust_anchor),
     "DNSSEC root trust anchor (Debian's dns-root-data); empty: no validation."},
    {"dns", "timeout", OPT_SECONDS, 1, 120, "5", F(dns_timeout),
     "How long one DNS query may take before it counts as a temporary failure."},

    {"dns", "signed_zone_file", OPT_STR, 0, PATH_MAX, "", F(dns_signed_zone_file),
     "DNSSEC tests: a zone signed with ldns-signzone, served as validated data (trust_anchor "
     "must hold its DS); like zone_file, nothing then leaves the machine.  Empty: none."},

    {"queue", "max_age", OPT_SECONDS, 60, 30 * 86400, "5d", F(queue_max_age),
     "How long an outbound message is retried before it bounces back to its sender."},
    {"queue", "retry_schedule", OPT_STR, 1, 512, "5m 15m 30m 1h 2h 4h", F(queue_retry_schedule),
     "Delays between delivery attempts (durations, separated by spaces); the last one repeats."},
    {"queue", "delay_notice", OPT_SECONDS, 0, 30 * 86400, "4h", F(queue_delay_notice),
     "Tell the sender once when a message has waited this long (RFC 3464 delayed); 0: never."},
    {"queue", "max_parallel", OPT_UINT, 1, 10000, "100", F(queue_max_parallel),
     "Outbound messages being delivered at the same time."},
    {"queue", "max_per_destination", OPT_UINT, 1, 1000, "20", F(queue_max_per_destination),
     "SMTP sessions open at the same time to one recipient domain."},
    {"queue", "scan_interval", OPT_SECONDS, 1, 3600, "30", F(queue_scan_interval),
     "How often the outbound queue is looked through for messages that are due."},
    {"queue", "remote_port", OPT_UINT, 1, 65535, "25", F(queue_remote_port),
     "Port of the remote mail servers (25; tests use another)."},
    {"queue", "ca_file", OPT_STR, 0, PATH_MAX, "", F(queue_ca_file),
     "Trust store (PEM) for verified outbound TLS (MTA-STS); empty: the system's."},
    {"queue", "mta_sts_port", OPT_UINT, 1, 65535, "443", F(queue_mta_sts_port),
     "Port of the MTA-STS policy servers (443; tests use another)."},

    {"auth", "enabled", OPT_BOOL, 0, 1, "yes", F(auth_enabled),
     "Check SPF, DKIM, DMARC and ARC on incoming mail and add Authentication-Results."},
    {"auth", "authserv_id", OPT_STR, 0, 253, "", F(auth_serv_id),
     "Name in our Authentication-Results headers (incoming ones with it are removed); "
     "empty: the host name."},
    {"auth", "dmarc_reject", OPT_BOOL, 0, 1, "yes", F(auth_dmarc_reject),
     "Refuse (550 5.7.1) mail that fails DMARC when the sender's policy is p=reject."},
    {"auth", "dmarc_quarantine", OPT_BOOL, 0, 1, "yes", F(auth_dmarc_quarantine),
     "File mail that fails DMARC under p=quarantine in the recipient's Junk folder."},
    {"auth", "trusted_arc_sealers", OPT_STR, 0, 4096, "", F(auth_trusted_arc_sealers),
     "Domains (separated by spaces) whose ARC seals we trust: a forwarded message that "
     "passes ARC sealed by one of them keeps the authentication results it had there."},
    {"auth", "public_suffix_list", OPT_STR, 1, PATH_MAX,
     "/usr/share/publicsuffix/public_suffix_list.dat", F(auth_public_suffix_list),
     "Public Suffix List used to find organisational domains (DMARC)."},
    {"auth", "timeout", OPT_SECONDS, 1, 600, "30", F(auth_timeout),
     "Longest the checks of one message may wait for DNS before the missing answers count "
     "as temporary errors."},

    {"web", "listen", OPT_STR, 0, 1024, "127.0.0.1:2080", F(web_listen),
     "Addresses for the web page and JSON API over plain HTTP (port 80 in production)."},
    {"web", "https_listen", OPT_STR, 0, 1024, "127.0.0.1:2443", F(web_https_listen),
     "Addresses for the web page and JSON API over HTTPS (port 443)."},
    {"web", "redirect_http", OPT_BOOL, 0, 1, "yes", F(web_redirect_http),
     "When a certificate is configured, answer plain HTTP with a redirect to HTTPS."},
    {"web", "workers", OPT_UINT, 1, 64, "2", F(web_workers),
     "Threads of the httpd process that open inboxes and read messages."},
    {"web", "max_connections", OPT_UINT, 1, 1000000, "4000", F(web_max_connections),
     "Simultaneous HTTP connections of the httpd process, live streams included."},
    {"web", "max_streams", OPT_UINT, 0, 1000000, "2000", F(web_max_streams),
     "Simultaneous live event streams (new-mail notifications)."},
    {"web", "timeout", OPT_SECONDS, 1, 3600, "30", F(web_timeout),
     "Time allowed to send a request, and to keep an idle connection open."},

    {"disposable", "domains", OPT_STR, 0, 4096, "tmp.localhost", F(disposable_domains),
     "Domains (separated by spaces) for disposable inboxes, not hosted ones; empty: none.  "
     "The default (.localhost, RFC 6761) serves the local demo."},
    {"disposable", "ttl", OPT_SECONDS, 60, 365 * 86400, "3600", F(disposable_ttl),
     "Lifetime of a new inbox, and what one \"extend\" adds."},
    {"disposable", "max_ttl", OPT_SECONDS, 60, 365 * 86400, "604800", F(disposable_max_ttl),
     "Longest an inbox may live, counted from its creation, however often it is extended."},
    {"disposable", "quota", OPT_SIZE, 0, 1024 * MiB, "20M", F(disposable_quota),
     "Bytes of mail one inbox may hold; 0: no limit."},
    {"disposable", "create_per_hour", OPT_UINT, 1, 1000000, "20",
     F(disposable_create_per_hour),
     "Inboxes one client address (IPv6: one /64) may create per hour."},
    {"disposable", "sweep_interval", OPT_SECONDS, 1, 3600, "30", F(disposable_sweep_interval),
     "How often expired inboxes are looked for and shredded."},
};

#define N_OPTIONS (sizeof options / sizeof options[0])

static const struct option_def *option_find(const char *section, const char *name)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strcmp(options[i].section, section) == 0 && strcmp(options[i].name, name) == 0)
            return &options[i];
    return NULL;
}

static int parse_uint_suffix(const char *text, uint64_t *value_r, const char *suffixes,
                             const uint64_t *mult)
{
    errno = 0;
    char *end;
    if (!isdigit((unsigned char)*text))
        return -1;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0)
        return -1;
    uint64_t m = 1;
    if (*end != '\0') {
        const char *s = strchr(suffixes, *end);
        if (s == NULL || end[1] != '\0')
            return -1;
        m = mult[s - suffixes];
    }
    if (m != 0 && v > UINT64_MAX / m)
        return -1;
    *value_r = v * m;
    return 0;
}

int config_parse_size(const char *text, uint64_t *value_r)
{
    static const uint64_t mult[] = {1024, 1024, 1024 * 1024, 1024 * 1024, 1024ull * 1024 * 1024,
                                    1024ull * 1024 * 1024};
    return parse_uint_suffix(text, value_r, "kKmMgG", mult);
}

int config_parse_seconds(const char *text, uint64_t *value_r)
{
    static const uint64_t mult[] = {1, 60, 3600, 86400};
    return parse_uint_suffix(text, value_r, "smhd", mult);
}

static int parse_bool(const char *text, bool *value_r)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *value_r = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *value_r = false;
            return 0;
        }
    }
    return -1;
}

static int option_assign(struct sm_config *cfg, const struct option_def *o, const char *value,
                         char *err, size_t errlen)
{
    char *field = (char *)cfg + o->offset;
    uint64_t v = 0;
    int r = 0;

    switch (o->type) {
    case OPT_STR: {
        size_t len = strlen(value);
        if (len < o->min || len > o->max) {
            snprintf(err, errlen, "length must be %" PRIu64 "..%" PRIu64, o->min, o->max);
            return -1;
        }
        char **s = (char **)(void *)field;
        free(*s);
        *s = sm_strdup(value);
        return 0;
    }
    case OPT_BOOL:
        if (parse_bool(value, (bool *)(void *)field) < 0) {
            snprintf(err, errlen, "expected yes or no, got '%.40s'", value);
            return -1;
        }
        return 0;
    case OPT_UINT:
        r = parse_uint_suffix(value, &v, "", NULL);
        break;
    case OPT_SIZE:
        r = config_parse_size(value, &v);
        break;
    case OPT_SECONDS:
        r = config_parse_seconds(value, &v);
        break;
    }
    if (r < 0) {
        snprintf(err, errlen, "not a valid %s: '%.40s'",
                 o->type == OPT_SIZE ? "size" : o->type == OPT_SECONDS ? "duration" : "number",
                 value);
        return -1;
    }
    if (v < o->min || v > o->max) {
        snprintf(err, errlen, "%" PRIu64 " is out of bounds %" PRIu64 "..%" PRIu64, v, o->min,
                 o->max);
        return -1;
    }
    if (o->width == sizeof(uint64_t))
        *(uint64_t *)(void *)field = v;
    else
        *(unsigned *)(void *)field = (unsigned)v;
    return 0;
}

int config_set(struct sm_config *cfg, const char *section, const char *name, const char *value,
               char *err, size_t errlen)
{
    const struct option_def *o = option_find(section, name);
    if (o == NULL) {
        snprintf(err, errlen, "unknown option");
        return -1;
    }
    return option_assign(cfg, o, value, err, errlen);
}

void config_defaults(struct sm_config *cfg)
{
    char err[128];
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (option_assign(cfg, &options[i], options[i].def, err, sizeof err) < 0)
            sm_panic("default of %s.%s: %s", options[i].section, options[i].name, err);
}

struct load_state {
    struct sm_config *cfg;
    char why[200];     /* reason of the first failing key */
    char key[96];      /* "[section] name" of that key */
    bool failed;
};

/* Debian's inih has no line numbers in handlers: returning 0 marks the
 * line as an error and ini_parse_file() returns the first such line. */
static int ini_on_value(void *user, const char *section, const char *name, const char *value)
{
    struct load_state *st = user;
    char why[200];
    if (config_set(st->cfg, section, name, value, why, sizeof why) == 0)
        return 1;
    if (!st->failed) {
        st->failed = true;
        snprintf(st->why, sizeof st->why, "%s", why);
        snprintf(st->key, sizeof st->key, "[%s] %s", section, name);
    }
    return 0;
}

int config_load(struct sm_config *cfg, const char *path, char *err, size_t errlen)
{
    struct load_state st = {.cfg = cfg};
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int line = ini_parse_file(f, ini_on_value, &st);
    fclose(f);
    if (line == 0)
        return 0;
    if (st.failed)
        snprintf(err, errlen, "%s:%d: %s: %s", path, line, st.key, st.why);
    else
        snprintf(err, errlen, "%s:%d: syntax error", path, line);
    return -1;
}

static void path_under_data_dir(const struct sm_config *cfg, char **path)
{
    if (**path == '\0' || **path == '/')
        return;
    size_t n = strlen(cfg->data_dir) + strlen(*path) + 2;
    char *full = sm_malloc(n);
    snprintf(full, n, "%s/%s", cfg->data_dir, *path);
    free(*path);
    *path = full;
}

int config_finish(struct sm_config *cfg, char *err, size_t errlen)
{
    enum log_level lvl;
    if (log_level_parse(cfg->log_level, &lvl) < 0) {
        snprintf(err, errlen, "[log] level: unknown level '%s'", cfg->log_level);
        return -1;
    }
    if (cfg->hostname[0] == '\0') {
        char host[256] = "";
        if (gethostname(host, sizeof host - 1) < 0 || host[0] == '\0')
            snprintf(host, sizeof host, "localhost");
        free(cfg->hostname);
        cfg->hostname = sm_strdup(host);
    }
    for (const char *p = cfg->hostname; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.') {
            snprintf(err, errlen, "[server] hostname: '%s' is not a host name", cfg->hostname);
            return -1;
        }
    }
    path_under_data_dir(cfg, &cfg->tls_cert);
    path_under_data_dir(cfg, &cfg->tls_key);
    path_under_data_dir(cfg, &cfg->tls_sni_dir);
    path_under_data_dir(cfg, &cfg->dns_zone_file);
    path_under_data_dir(cfg, &cfg->dns_signed_zone_file);
    path_under_data_dir(cfg, &cfg->queue_ca_file);
    if (cfg->auth_serv_id[0] == '\0') {
        free(cfg->auth_serv_id);
        cfg->auth_serv_id = sm_strdup(cfg->hostname);
    }
    for (const char *p = cfg->auth_serv_id; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.') {
            snprintf(err, errlen, "[auth] authserv_id: '%s' is not a domain name",
                     cfg->auth_serv_id);
            return -1;
        }
    }
    return 0;
}

void config_free(struct sm_config *cfg)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (options[i].type == OPT_STR)
            sm_freep((char *)cfg + options[i].offset);
}

static const char *type_name(enum opt_type t)
{
    static const char *const names[] = {"text", "yes|no", "number", "size", "duration"};
    return names[t];
}

void config_print_sample(FILE *out)
{
    const char *section = "";
    fprintf(out, "# sealmail configuration — every option with its default.\n"
                 "# Generated by `sealmail check-config --sample`; uncomment to change.\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option_def *o = &options[i];
        if (strcmp(section, o->section) != 0) {
            section = o->section;
            fprintf(out, "\n[%s]\n", section);
        }
        fprintf(out, "\n# %s\n", o->help);
        if (o->type == OPT_STR)
            fprintf(out, "# (%s)\n", type_name(o->type));
        else if (o->type != OPT_BOOL)
            fprintf(out, "# (%s, %" PRIu64 "..%" PRIu64 ")\n", type_name(o->type), o->min, o->max);
        else
            fprintf(out, "# (%s)\n", type_name(o->type));
        fprintf(out, "#%s = %s\n", o->name, o->def);
    }
}

void config_print(const struct sm_config *cfg, FILE *out)
{
    const char *section = "";
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option_def *o = &options[i];
        const char *field = (const char *)cfg + o->offset;
        if (strcmp(section, o->section) != 0) {
            section = o->section;
            fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
        }
        fprintf(out, "%s = ", o->name);
        switch (o->type) {
        case OPT_STR:
            fprintf(out, "%s\n", *(char *const *)(const void *)field);
            break;
        case OPT_BOOL:
            fprintf(out, "%s\n", *(const bool *)(const void *)field ? "yes" : "no");
            break;
        default:
            if (o->width == sizeof(uint64_t))
                fprintf(out, "%" PRIu64 "\n", *(const uint64_t *)(const void *)field);
            else
                fprintf(out, "%u\n", *(const unsigned *)(const void *)field);
        }
    }
}
