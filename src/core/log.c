/* log.c — line logging to stderr or syslog (see log.h).
 *
 * Every line is formatted into a fixed stack buffer and written with one
 * write(2) so lines from several processes sharing stderr never interleave.
 * Overlong lines are truncated, never split. */
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *log_ident = "sealmail";
static bool log_syslog;
static bool log_anonymise = true;
static enum log_level log_level = LOG_LEVEL_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_init(const char *ident, bool use_syslog, enum log_level level)
{
    log_ident = ident;
    log_level = level;
    if (log_syslog)
        closelog();
    log_syslog = use_syslog;
    if (use_syslog)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

int log_level_parse(const char *name, enum log_level *level_r)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *level_r = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

void log_set_anonymise(bool anonymise)
{
    log_anonymise = anonymise;
}

void log_set_level(enum log_level level)
{
    log_level = level;
}

bool log_debug_enabled(void)
{
    return log_level >= LOG_LEVEL_DEBUG;
}

static void log_emit(enum log_level level, const char *suffix, const char *fmt, va_list ap)
    SM_PRINTF(3, 0);

static void log_emit(enum log_level level, const char *suffix, const char *fmt, va_list ap)
{
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    char msg[2048];
    int saved = errno;

    vsnprintf(msg, sizeof msg, fmt, ap);
    if (log_syslog) {
        syslog(prio[level], "%s%s%s", msg, suffix ? ": " : "", suffix ? suffix : "");
        errno = saved;
        return;
    }
    char line[2300];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s %s%s%s\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, log_ident, (int)getpid(),
                     level_names[level], msg, suffix ? ": " : "", suffix ? suffix : "");
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = sizeof line - 1;
        line[n - 1] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
    errno = saved;
}

#define LOG_FN(name, level)                                                                        \
    void name(const char *fmt, ...)                                                                \
    {                                                                                              \
        if (log_level < level)                                                                     \
            return;                                                                                \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        log_emit(level, NULL, fmt, ap);                                                            \
        va_end(ap);                                                                                \
    }
LOG_FN(log_error, LOG_LEVEL_ERROR)
LOG_FN(log_warn, LOG_LEVEL_WARN)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_debug, LOG_LEVEL_DEBUG)

void fatal(const char *fmt, ...)
{
    const char *why = strerror(errno);
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_LEVEL_ERROR, why, fmt, ap);
    va_end(ap);
    exit(1);
}

void fatalx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_LEVEL_ERROR, NULL, fmt, ap);
    va_end(ap);
    exit(1);
}

void sm_panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_LEVEL_ERROR, "panic", fmt, ap);
    va_end(ap);
    abort();
}

const char *log_addr(const struct sockaddr *sa, char *out)
{
    char tmp[INET6_ADDRSTRLEN];
    snprintf(out, LOG_ADDR_LEN, "unknown");
    if (sa == NULL)
        return out;
    if (sa->sa_family == AF_INET) {
        struct in_addr a = ((const struct sockaddr_in *)(const void *)sa)->sin_addr;
        if (log_anonymise)
            a.s_addr &= htonl(0xffffff00u);
        if (inet_ntop(AF_INET, &a, tmp, sizeof tmp))
            snprintf(out, LOG_ADDR_LEN, "%s", tmp);
    } else if (sa->sa_family == AF_INET6) {
        struct in6_addr a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (log_anonymise)
            memset(a.s6_addr + 6, 0, 10);
        if (inet_ntop(AF_INET6, &a, tmp, sizeof tmp))
            snprintf(out, LOG_ADDR_LEN, "%s", tmp);
    } else if (sa->sa_family == AF_UNIX) {
        snprintf(out, LOG_ADDR_LEN, "local");
    }
    return out;
}
