/* privsep.h — privilege separation (DESIGN.md §2).
 *
 * The master opens every socket and then starts each role by re-executing
 * its own binary ("sealmail _role NAME ..."), so every role gets a fresh
 * address-space layout.  The child finds its control channel and
 * listening sockets at fixed descriptor numbers, loads what it needs as
 * root (keys, certificates), then drops to the unprivileged user. */
#ifndef SM_PRIVSEP_H
#define SM_PRIVSEP_H

#include <stddef.h>

#include "net/listener.h"

enum listen_kind {
    LISTEN_SMTP, LISTEN_SMTPS, LISTEN_SUBMISSION, /* smtpd */
    LISTEN_IMAP, LISTEN_IMAPS, LISTEN_POP3, LISTEN_POP3S, /* imapd */
    LISTEN_HTTP, LISTEN_HTTPS,                            /* httpd */
    LISTEN_KINDS
};

/* The role that serves a kind of listener ("smtpd", "imapd", "httpd"). */
const char *listen_kind_role(enum listen_kind k);
/* The service name of a kind for logs ("smtp", "imaps", ...). */
const char *listen_kind_name(enum listen_kind k);

/* Where a role finds its inputs: filled by the master before exec and by
 * privsep_parse_role_args() in the child. */
struct role_args {
    const char *role;           /* "smtpd", "queued", "imapd" */
    const char *config_path;    /* NULL: embedded default */
    int ctl_fd;                 /* control channel to the master */
    int fds[LISTEN_KINDS][LISTEN_MAX];
    size_t n_fds[LISTEN_KINDS];
};

/* Parse "_role NAME CONFIG FDSPEC" (argv after the program name) into ra.
 * CONFIG is "-" for the embedded default.  Returns 0 or -1 on junk. */
int privsep_parse_role_args(int argc, char **argv, struct role_args *ra);
/* Build the FDSPEC text for ra ("3;4,5;6;7;;;;": control, then one list
 * per listen_kind in enum order, empty for kinds the role does not serve). */
void privsep_format_fds(const struct role_args *ra, char *out, size_t outlen);
/* Make the process non-dumpable and core-less; then, when running as
 * root, switch to `user` (its group, no supplementary groups) for good.
 * Dies with fatal() if any step fails or could be undone. */
void privsep_drop(const char *user);
/* Called by a role after it freed everything: in sanitizer builds only,
 * make the process dumpable again so LeakSanitizer can inspect it at
 * exit (it cannot trace a non-dumpable process); a no-op otherwise. */
void privsep_before_exit(void);
/* The uid/gid `user` maps to; -1 if unknown. */
int privsep_lookup_user(const char *user, unsigned *uid_r, unsigned *gid_r);

/* Role entry points (daemon/smtpd.c, daemon/queued.c, daemon/imapd.c).
 * Return the exit status. */
int smtpd_main(const struct role_args *ra);
int queued_main(const struct role_args *ra);
int imapd_main(const struct role_args *ra);
int httpd_main(const struct role_args *ra);

#include "core/config.h"
/* Load the role's configuration (file or embedded default) and start
 * logging as ra->role; dies with fatalx() on error. */
void privsep_role_config(const struct role_args *ra, struct sm_config *cfg);

#endif
