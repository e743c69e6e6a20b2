/* util.c — small helpers shared by the subcommands: help, flags,
 * reading secrets, and dropping root before touching mailboxes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "crypto/seal.h"
#include "daemon/privsep.h"

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

/* --- secrets from the terminal or standard input ------------------------------- */

/* Read one line into buf (secret memory) with read(2), so no stdio buffer
 * keeps a copy.  Returns its length, or -1 (end of input, too long). */
static ssize_t read_line_fd(int fd, char *buf, size_t max)
{
    size_t n = 0;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return n > 0 ? (ssize_t)n : -1;
        if (c == '\n')
            break;
        if (n + 1 >= max)
            return -1;
        buf[n++] = c;
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    return (ssize_t)n;
}

/* Prompt on the terminal with echo off. */
static ssize_t read_tty(const char *prompt, char *buf, size_t max)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -1;
    struct termios old, quiet;
    bool have = tcgetattr(fd, &old) == 0;
    if (have) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    (void)!write(fd, prompt, strlen(prompt));
    ssize_t n = read_line_fd(fd, buf, max);
    (void)!write(fd, "\n", 1);
    if (have)
        tcsetattr(fd, TCSAFLUSH, &old);
    close(fd);
    return n;
}

char *cli_read_secret(const char *prompt, bool from_stdin)
{
    char *buf = seal_secret_alloc(CLI_SECRET_MAX + 1);
    ssize_t n = from_stdin ? read_line_fd(STDIN_FILENO, buf, CLI_SECRET_MAX + 1)
                           : read_tty(prompt, buf, CLI_SECRET_MAX + 1);
    if (n <= 0) {
        seal_secret_free(&buf);
        return NULL;
    }
    return buf;
}

char *cli_new_password(bool from_stdin)
{
    char *a = cli_read_secret("New password: ", from_stdin);
    if (a == NULL || from_stdin)
        return a;
    char *b = cli_read_secret("Repeat the new password: ", false);
    bool same = b != NULL && strlen(a) == strlen(b) && seal_equal(a, b, strlen(a));
    seal_secret_free(&b);
    if (!same) {
        fprintf(stderr, "the two passwords differ\n");
        seal_secret_free(&a);
    }
    return a;
}

int cli_find_flag(int *argc, char **argv, const char *flag)
{
    for (int i = 1; i < *argc; i++)
        if (strcmp(argv[i], flag) == 0) {
            memmove(argv + i, argv + i + 1, (size_t)(*argc - i) * sizeof *argv);
            (*argc)--;
            return 1;
        }
    return 0;
}

const char *cli_take_option(int *argc, char **argv, const char *flag)
{
    for (int i = 1; i + 1 < *argc; i++)
        if (strcmp(argv[i], flag) == 0) {
            const char *value = argv[i + 1];
            memmove(argv + i, argv + i + 2, (size_t)(*argc - i - 1) * sizeof *argv);
            *argc -= 2;
            return value;
        }
    return NULL;
}

void cli_drop_privileges(const struct cli_ctx *ctx)
{
    privsep_drop(ctx->cfg->user);
}

void cli_before_exit(void)
{
    privsep_before_exit();
}
