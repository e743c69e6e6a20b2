/* log.h — one line per event, key=value, to stderr or syslog.
 *
 * Lines look like "smtpd: 1a2b3c4d5e6f7081 smtp connected client=192.0.2.0".
 * Never log message content, passwords or keys; pass client addresses
 * through log_addr() so they are anonymised unless the operator opted out.
 *
 * Three kinds of failure, never mixed:
 *   sm_panic()  an invariant broke: abort with a core dump (where allowed);
 *   fatal()     the process cannot continue; fatal() appends strerror(errno),
 *               fatalx() does not;
 *   log_warn()  something failed and we keep going. */
#ifndef SM_LOG_H
#define SM_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define SM_PRINTF(f, a) __attribute__((format(printf, f, a)))

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Start logging as process `ident` ("master", "smtpd", ...); to syslog
 * (facility mail) when use_syslog, else to stderr.  Safe to call again. */
void log_init(const char *ident, bool use_syslog, enum log_level level);
/* Parse "error|warn|info|debug"; returns -1 if unknown. */
int log_level_parse(const char *name, enum log_level *level_r);
/* Whether client addresses are anonymised (default true). */
void log_set_anonymise(bool anonymise);
void log_set_level(enum log_level level);
bool log_debug_enabled(void);

void log_error(const char *fmt, ...) SM_PRINTF(1, 2);
void log_warn(const char *fmt, ...) SM_PRINTF(1, 2);
void log_info(const char *fmt, ...) SM_PRINTF(1, 2);
void log_debug(const char *fmt, ...) SM_PRINTF(1, 2);

_Noreturn void fatal(const char *fmt, ...) SM_PRINTF(1, 2);
_Noreturn void fatalx(const char *fmt, ...) SM_PRINTF(1, 2);
_Noreturn void sm_panic(const char *fmt, ...) SM_PRINTF(1, 2);

#define LOG_ADDR_LEN 64
/* Write a printable form of sa into out (LOG_ADDR_LEN bytes): with
 * anonymisation on, IPv4 keeps its /24 and IPv6 its /48, the rest zeroed
 * (192.0.2.0, 2001:db8:1::).  Returns out. */
const char *log_addr(const struct sockaddr *sa, char *out);

#endif
