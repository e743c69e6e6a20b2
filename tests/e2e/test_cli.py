"""The `sealmail` command line: help, check-config, init, domain, queue."""
import hashlib
import re
import stat

import pytest

from conftest import DOMAIN, run_cli

SUBCOMMANDS = [
    [],
    ["init"],
    ["serve"],
    ["check-config"],
    ["version"],
    ["domain"],
    ["domain", "add"],
    ["domain", "list"],
    ["domain", "remove"],
    ["queue"],
    ["queue", "list"],
    ["queue", "show"],
]

CONTRACT_KEYS = {
    "server": ["hostname", "data_dir", "user", "smtpd_workers", "shutdown_grace"],
    "log": ["level", "syslog", "anonymise_ip"],
    "smtp": ["listen", "smtps_listen", "submission_listen", "max_line", "max_data_line",
             "max_message_size", "max_recipients", "max_errors", "max_connections",
             "max_connections_per_client", "command_timeout", "data_timeout",
             "session_timeout"],
    "tls": ["cert", "key", "sni_dir"],
}


@pytest.fixture
def offline(make_server):
    """A configuration and data directory with no server running."""
    return make_server(start=False)


def test_version(offline):
    res = offline.cli("version")
    assert re.fullmatch(r"sealmail \d+\.\d+\.\d+\S*\n", res.stdout), res


@pytest.mark.parametrize("argv", SUBCOMMANDS, ids=lambda a: " ".join(a) or "top")
def test_help_exits_0_with_usage_on_stdout(offline, argv):
    res = offline.cli(*argv, "--help")
    assert res.returncode == 0
    assert "usage" in res.stdout.lower(), res
    assert res.stderr == "", res
    # asking for help never does the work: no data directory appears
    assert not offline.data.exists(), f"`{' '.join(argv)} --help` created {offline.data}"


def test_unknown_command_is_a_usage_error(offline):
    res = offline.cli("frobnicate", ok=False)
    assert res.returncode != 0
    assert "frobnicate" in res.stderr, res


def test_check_config_accepts_a_valid_file(offline):
    res = offline.cli("check-config")
    assert res.returncode == 0
    assert str(offline.config) in res.stdout, res


BAD_VALUES = [
    # (section, key, value)
    ("smtp", "max_line", "100"),            # below the RFC 5321 minimum of 512
    ("smtp", "command_timeout", "soon"),    # not a duration
    ("log", "anonymise_ip", "maybe"),       # not a boolean
    ("server", "smtpd_workers", "0"),       # out of bounds
    ("smtp", "max_message_size", "12Q"),    # bad size suffix
    ("smtp", "no_such_option", "1"),        # unknown key
    ("tls", "bogus", "x"),                  # unknown key in a known section
]


@pytest.mark.parametrize("section,key,value", BAD_VALUES,
                         ids=[f"{s}.{k}" for s, k, _ in BAD_VALUES])
def test_check_config_reports_file_line_and_key(offline, section, key, value):
    good = offline.config.read_text()
    # put the bad line well after the start, after a valid key of the same section
    text = good + f"[{section}]\n# a comment line\n{key} = {value}\n"
    line = text.count("\n")  # the bad line is the last one
    bad = offline.dir / "bad.ini"
    bad.write_text(text)
    res = run_cli("check-config", config=bad, ok=False)
    assert res.returncode == 1, res
    assert f"{bad}:{line}: [{section}] {key}: " in res.stderr, res
    assert res.stdout == "", res
    # the same error stops `serve` before it listens on anything
    res = run_cli("serve", config=bad, ok=False, timeout=60)
    assert res.returncode == 1, res
    assert f"{bad}:{line}: [{section}] {key}: " in res.stderr, res


def test_check_config_print_shows_effective_values(offline):
    text = offline.config.read_text() + "[tls]\ncert = mine/cert.pem\n\n[smtp]\nmax_recipients = 7\n"
    offline.config.write_text(text)
    res = offline.cli("check-config", "--print")
    out = res.stdout
    sections = re.findall(r"^\[(\w+)\]$", out, re.M)
    for section in CONTRACT_KEYS:
        assert section in sections, out

    def value(section, key):
        body = out.split(f"[{section}]\n", 1)[1].split("\n[", 1)[0]
        m = re.search(rf"^{key} = (.*)$", body, re.M)
        assert m, f"{section}.{key} missing from --print:\n{out}"
        return m.group(1)

    assert value("smtp", "max_recipients") == "7"
    assert value("server", "hostname") == "mx.example.test"
    # relative TLS paths are under data_dir
    assert value("tls", "cert") == f"{offline.data}/mine/cert.pem"
    assert value("smtp", "listen") == f"127.0.0.1:{offline.smtp_port}"


def test_check_config_sample_lists_every_key_and_round_trips(offline, tmp_path):
    sample = run_cli("check-config", "--sample", cwd=tmp_path).stdout
    for section, keys in CONTRACT_KEYS.items():
        assert f"\n[{section}]\n" in sample, section
        body = sample.split(f"\n[{section}]\n", 1)[1].split("\n[", 1)[0]
        for key in keys:
            assert re.search(rf"^#\s*{key} = ", body, re.M), f"{section}.{key} not in sample"
    # uncommenting every key gives a valid file equal to the embedded defaults
    uncommented = re.sub(r"^#(\w+ = )", r"\1", sample, flags=re.M)
    path = tmp_path / "sample.ini"
    path.write_text(uncommented)
    from_sample = run_cli("check-config", "--print", config=path, cwd=tmp_path).stdout
    defaults = run_cli("check-config", "--print", cwd=tmp_path).stdout
    assert from_sample == defaults


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_init_creates_keys_and_is_idempotent(offline):
    first = offline.cli("init")
    keys = offline.data / "keys"
    files = [keys / "spool.pub", keys / "spool.key", keys / "tls" / "cert.pem",
             keys / "tls" / "key.pem", offline.data / "directory.db"]
    for f in files:
        assert f.is_file(), f"{f} missing after init:\n{first}"
    for secret in (keys / "spool.key", keys / "tls" / "key.pem"):
        mode = stat.S_IMODE(secret.stat().st_mode)
        assert mode & 0o077 == 0, f"{secret} is readable by others: {oct(mode)}"
    before = {f: _digest(f) for f in files[:4]}

    offline.cli("domain", "add", DOMAIN)
    second = offline.cli("init")
    assert second.returncode == 0
    after = {f: _digest(f) for f in files[:4]}
    assert before == after, "a second init replaced keys or the certificate"
    assert "created" not in second.stdout.lower(), second
    # the directory survives too
    assert DOMAIN in offline.cli("domain", "list").stdout.split()


def test_domain_add_list_remove(offline):
    offline.cli("init")
    assert offline.cli("domain", "list").stdout.split() == []
    offline.cli("domain", "add", "example.test")
    offline.cli("domain", "add", "Example.ORG")
    assert sorted(offline.cli("domain", "list").stdout.split()) == ["example.org",
                                                                    "example.test"]
    dup = offline.cli("domain", "add", "example.test", ok=False)
    assert dup.returncode != 0 and dup.stderr, dup
    offline.cli("domain", "remove", "example.org")
    assert offline.cli("domain", "list").stdout.split() == ["example.test"]
    gone = offline.cli("domain", "remove", "example.org", ok=False)
    assert gone.returncode != 0 and gone.stderr, gone


@pytest.mark.parametrize("name", ["bad..name", "-bad.test", "a b.test", "x" * 300 + ".test", ""])
def test_domain_add_refuses_invalid_names(offline, name):
    offline.cli("init")
    res = offline.cli("domain", "add", name, ok=False)
    assert res.returncode != 0, res
    assert offline.cli("domain", "list").stdout.split() == []


def test_queue_on_an_empty_spool(offline):
    offline.cli("init")
    assert offline.queue_list() == []
    res = offline.cli("queue", "show", "0123456789abcdef", ok=False)
    assert res.returncode != 0 and res.stderr, res


def test_queue_commands_do_not_hang_on_a_fifo_in_the_spool(offline):
    """A FIFO planted in spool/incoming is reported, never waited on."""
    import os
    offline.cli("init")
    os.mkfifo(offline.data / "spool" / "incoming" / "00000000000000ff")
    res = offline.cli("queue", "list", ok=False, timeout=20)
    assert res.returncode == 1 and "not a regular file" in res.stderr, res
    res = offline.cli("queue", "show", "00000000000000ff", ok=False, timeout=20)
    assert res.returncode == 1 and "not a regular file" in res.stderr, res


@pytest.mark.parametrize("bad_id", ["../../../../../../etc/passwd", "../keys/spool",
                                    "0123456789ABCDEF", "xyz"])
def test_queue_show_refuses_ids_that_are_not_queue_ids(offline, bad_id):
    offline.cli("init")
    key = offline.data / "keys" / "spool.key"
    res = offline.cli("queue", "show", bad_id, "--key", key, ok=False)
    assert res.returncode != 0, res
    assert "root:" not in res.stdout


def test_queue_list_escapes_control_bytes_from_a_hostile_spool_file(make_server):
    """The envelope of a spool file is shown to an operator's terminal: a lone
    0x9b (an 8-bit CSI) planted in it is printed escaped, valid UTF-8 as is."""
    from conftest import SMTPConn
    server = make_server()
    with SMTPConn(server.smtp_port) as c:
        c.ehlo()
        c.send_message(b"Subject: x\r\n\r\nhi\r\n", sender="aXb\u00f6@sender.example",
                       params=" SMTPUTF8")
        c.quit()
    (queue_id,) = server.queue_list()
    data = server.spool_bytes(queue_id)   # a file, or a segment record
    assert data.count(b"aXb\xc3\xb6@") == 1
    server.rewrite_spool_bytes(queue_id, data.replace(b"aXb\xc3\xb6@", b"a\x9bb\xc3\xb6@"))
    res = server.cli("queue", "list")
    assert b"\x9b" not in res.stdout_bytes, res.stdout_bytes
    assert "<a\\x9bb\u00f6@sender.example>" in res.stdout, res.stdout
