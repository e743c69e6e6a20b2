/* test-config.c — the option table: defaults, parsing, bounds, errors
 * that name file, line and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"

static char *write_file(const char *text)
{
    static char path[] = "/tmp/sealmail-test-config-XXXXXX";
    char *p = strdup(path);
    int fd = mkstemp(p);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return p;
}

static void test_defaults(void **state)
{
    (void)state;
    struct sm_config cfg;
    config_defaults(&cfg);
    assert_string_equal(cfg.data_dir, "./var");
    assert_string_equal(cfg.smtp_listen, "127.0.0.1:2525");
    assert_int_equal(cfg.smtp_max_message_size, 25 * 1024 * 1024);
    assert_int_equal(cfg.smtp_command_timeout, 300);
    assert_true(cfg.log_anonymise_ip);
    config_free(&cfg);
}

static const struct load_case {
    const char *label;
    const char *text;
    int ok;
    const char *error_part; /* substring of the error, with the line number */
} load_cases[] = {
    {"valid values", "[smtp]\nmax_message_size = 10M\ncommand_timeout = 5m\n"
                     "[log]\nanonymise_ip = no\n", 1, NULL},
    {"unknown key", "[smtp]\n\nmax_messages = 3\n", 0, ":3: [smtp] max_messages: unknown option"},
    {"unknown section", "[nope]\nx = 1\n", 0, ":2: [nope] x: unknown option"},
    {"below minimum", "[smtp]\nmax_line = 100\n", 0, ":2: [smtp] max_line: 100 is out of bounds"},
    {"not a number", "[smtp]\nmax_recipients = lots\n", 0, "max_recipients: not a valid number"},
    {"bad bool", "[log]\nsyslog = maybe\n", 0, "syslog: expected yes or no"},
    {"bad suffix", "[smtp]\nmax_message_size = 10X\n", 0, "not a valid size"},
    {"overflow", "[smtp]\nmax_message_size = 99999999999999999999G\n", 0, "not a valid size"},
    {"syntax", "[smtp\n", 0, ":1: syntax error"},
};

static void test_load_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof load_cases / sizeof load_cases[0]; i++) {
        const struct load_case *c = &load_cases[i];
        struct sm_config cfg;
        char err[512] = "";
        char *path = write_file(c->text);
        config_defaults(&cfg);
        int r = config_load(&cfg, path, err, sizeof err);
        if (c->ok != (r == 0))
            fail_msg("case '%s': result %d, error '%s'", c->label, r, err);
        if (!c->ok && strstr(err, c->error_part) == NULL)
            fail_msg("case '%s': error '%s' lacks '%s'", c->label, err, c->error_part);
        if (c->ok) {
            assert_int_equal(cfg.smtp_max_message_size, 10 * 1024 * 1024);
            assert_int_equal(cfg.smtp_command_timeout, 300);
            assert_false(cfg.log_anonymise_ip);
        }
        unlink(path);
        free(path);
        config_free(&cfg);
    }
}

static void test_finish_paths(void **state)
{
    (void)state;
    struct sm_config cfg;
    char err[256];
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "server", "data_dir", "/srv/mail", err, sizeof err), 0);
    assert_int_equal(config_set(&cfg, "server", "hostname", "mx.example.org", err, sizeof err), 0);
    assert_int_equal(config_finish(&cfg, err, sizeof err), 0);
    assert_string_equal(cfg.tls_cert, "/srv/mail/keys/tls/cert.pem");
    assert_string_equal(cfg.hostname, "mx.example.org");
    config_free(&cfg);

    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "server", "hostname", "bad host", err, sizeof err), 0);
    assert_int_equal(config_finish(&cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "hostname"));
    config_free(&cfg);
}

static void test_sample_is_complete(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    config_print_sample(f);
    fclose(f);
    /* every section and a few keys appear with their defaults */
    assert_non_null(strstr(buf, "[server]"));
    assert_non_null(strstr(buf, "#max_message_size = 25M"));
    assert_non_null(strstr(buf, "#anonymise_ip = yes"));
    /* inih reads lines of at most INI_MAX_LINE (200) bytes: a longer help
     * line would make the uncommented sample unreadable */
    for (const char *line = buf; *line != '\0';) {
        size_t n = strcspn(line, "\n");
        if (n >= 199)
            fail_msg("sample line of %zu bytes: %.60s...", n, line);
        line += n + (line[n] == '\n');
    }
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_load_cases),
        cmocka_unit_test(test_finish_paths),
        cmocka_unit_test(test_sample_is_complete),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
