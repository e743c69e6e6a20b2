"""docs/api.md's examples run as written (issue #7: "documented in
docs/api.md with examples that run"): every ```sh block, in order, in one
bash with -e and pipefail, against a real server; the outputs the text
promises are checked."""
import re
import subprocess
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def shell_blocks(text):
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def test_api_examples_run(make_server):
    srv = make_server({"spool": {"hold": "no"}})  # the embedded default's tmp.localhost
    blocks = shell_blocks(DOC.read_text())
    assert len(blocks) >= 10, "the examples went missing from docs/api.md"
    script = "set -euo pipefail\n" + "\n".join(blocks)
    env = {"PATH": "/usr/bin:/bin", "BASE": f"https://127.0.0.1:{srv.https_port}",
           "SMTP": f"127.0.0.1:{srv.smtp_port}", "HOME": str(srv.dir)}
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                       cwd=srv.dir, timeout=120)
    out = p.stdout
    assert p.returncode == 0, f"exit {p.returncode}\n--- stdout\n{out}\n--- stderr\n{p.stderr}"
    assert '"domains": [\n    "tmp.localhost"\n  ]' in out
    assert re.search(r"^docs-\d+-\d+@tmp\.localhost$", out, re.M)
    assert "address_taken" in out and "unauthorized" in out
    assert re.findall(r"^(401|204)$", out, re.M) == ["401", "204", "204", "401"]
    assert '"subject": "Your code is 421337"' in out
    assert "event: ready" in out
    assert re.search(r"^1$", out, re.M)  # grep -c found the subject in the .eml
