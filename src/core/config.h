/* config.h — sealmail's configuration: every knob declared once.
 *
 * The table in config.c gives each option its section, name, type, bounds,
 * default and help text; it drives the INI parser, validation, the sample
 * file printed by `sealmail check-config --sample` (kept in dist/) and the
 * documentation.  Protocol code reads limits from struct sm_config and
 * contains no numeric limits of its own. */
#ifndef SM_CONFIG_H
#define SM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct sm_config {
    /* [server] */
    char *hostname;          /* "" in the file means: the machine's host name */
    char *data_dir;
    char *user;
    unsigned smtpd_workers;
    unsigned shutdown_grace; /* seconds */
    /* [log] */
    char *log_level;
    bool log_syslog;
    bool log_anonymise_ip;
    /* [smtp] */
    char *smtp_listen;
    char *smtps_listen;
    char *submission_listen;
    uint64_t smtp_max_line;
    uint64_t smtp_max_data_line;
    uint64_t smtp_max_message_size;
    unsigned smtp_max_recipients;
    unsigned smtp_max_errors;
    unsigned smtp_max_connections;
    unsigned smtp_max_connections_per_client;
    unsigned smtp_command_timeout;
    unsigned smtp_data_timeout;
    unsigned smtp_session_timeout;
    /* [tls] */
    char *tls_cert;
    char *tls_key;
    char *tls_sni_dir;
    char *tls_ciphers;
    /* [spool] */
    uint64_t spool_sync_batch;
    bool spool_hold;
    /* [mailbox] */
    unsigned mailbox_argon2_ops;
    uint64_t mailbox_argon2_memory;  /* bytes */
    uint64_t mailbox_default_quota;  /* bytes, 0: none */
    /* [imap] (IMAP and POP3: the imapd role) */
    char *imap_listen;
    char *imaps_listen;
    char *pop3_listen;
    char *pop3s_listen;
    bool imap_plaintext_loopback;
    unsigned imap_workers;
    uint64_t imap_max_line;
    uint64_t imap_max_command;
    uint64_t imap_append_limit;
    unsigned imap_max_connections;
    unsigned imap_max_connections_per_client;
    unsigned imap_max_sessions_per_account;
    unsigned imap_login_timeout;
    unsigned imap_idle_timeout;
    unsigned pop3_timeout;
    unsigned imap_max_errors;
    unsigned imap_unlock_linger;
    /* [dns] */
    char *dns_forwarders;    /* "" : full recursion from the root */
    char *dns_zone_file;     /* "" : none; tests: every answer from this file */
    char *dns_trust_anchor;
    unsigned dns_timeout;    /* seconds per query */
    char *dns_signed_zone_file; /* "" : none; DNSSEC tests: a zone signed with ldns-signzone */
    /* [auth] (SPF, DKIM, DMARC, ARC on incoming mail) */
    bool auth_enabled;
    char *auth_serv_id;      /* "" : the host name */
    bool auth_dmarc_reject;
    bool auth_dmarc_quarantine;
    char *auth_trusted_arc_sealers;
    char *auth_public_suffix_list;
    unsigned auth_timeout;   /* seconds for all checks of one message */
    /* [queue] (outbound delivery in queued) */
    unsigned queue_max_age;        /* seconds a message may wait before it bounces */
    char *queue_retry_schedule;    /* "5m 15m 30m 1h 2h 4h": delays between attempts */
    unsigned queue_delay_notice;   /* seconds before a delay notice; 0: none */
    unsigned queue_max_parallel;   /* queue entries being tried at once */
    unsigned queue_max_per_destination; /* sessions at once to one recipient domain */
    unsigned queue_scan_interval;  /* seconds between looks for entries that are due */
    unsigned queue_remote_port;    /* port of remote MX hosts: 25 (tests: another) */
    unsigned queue_mta_sts_port;   /* port of MTA-STS policy servers: 443 (tests: another) */
    char *queue_ca_file;           /* trust store for MTA-STS verification; "" : the system's */
    /* [web] (httpd: the disposable-inbox page and its JSON API) */
    char *web_listen;        /* HTTP */
    char *web_https_listen;  /* HTTPS */
    bool web_redirect_http;  /* HTTP answers with a redirect to HTTPS */
    unsigned web_workers;
    unsigned web_max_connections;
    unsigned web_max_streams; /* live event streams */
    unsigned web_timeout;     /* seconds to read a request / idle keep-alive */
    /* [disposable] */
    char *disposable_domains; /* separated by spaces or commas; "" : none */
    unsigned disposable_ttl;  /* seconds */
    unsigned disposable_max_ttl;
    uint64_t disposable_quota;
    unsigned disposable_create_per_hour; /* per client address (IPv6: /64) */
    unsigned disposable_sweep_interval;  /* seconds */
};

/* Fill cfg with the built-in defaults (the embedded configuration). */
void config_defaults(struct sm_config *cfg);
/* Read the INI file at path over the current values of cfg.  On error
 * returns -1 and writes "path:line: [section] key: reason" into err. */
int config_load(struct sm_config *cfg, const char *path, char *err, size_t errlen);
/* Set one option by "section.name" and text value (as the file would);
 * -1 with a reason in err if unknown or out of bounds. */
int config_set(struct sm_config *cfg, const char *section, const char *name, const char *value,
               char *err, size_t errlen);
/* Resolve relative paths against data_dir and fill the host name.
 * Returns -1 with a reason in err if the result is unusable. */
int config_finish(struct sm_config *cfg, char *err, size_t errlen);
/* Release every string of cfg. */
void config_free(struct sm_config *cfg);
/* Print the commented sample configuration (every key, its default, bounds, help). */
void config_print_sample(FILE *out);
/* Print the effective configuration as INI. */
void config_print(const struct sm_config *cfg, FILE *out);

/* Parse "123", "64k", "25M", "1G" (sizes) — exposed for the listeners' parser tests. */
int config_parse_size(const char *text, uint64_t *value_r);
/* Parse "30", "30s", "5m", "2h", "7d" as seconds. */
int config_parse_seconds(const char *text, uint64_t *value_r);

#endif
