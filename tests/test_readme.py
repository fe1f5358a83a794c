"""The README tells the truth: every code block in it runs, as written, against real servers.

As docs test runners do: each fenced block is extracted and run. Python blocks run with the
README's address (``"127.0.0.1", 9000``, ``"server.example", 9000``) replaced by a real
server's on port 0. Shell blocks run line by line in bash, with ``rcmd``'s target pointed at
a real server on port 0 (``rcmd-server`` lines get ``--port 0``), in a sandbox that is $HOME
and the working directory (it holds ``~/.rcmd-secret``, ``server.pem``, ``server.key`` and
``ca.pem``). A line that cannot run here is listed in SKIPPED with the reason; a line that is
neither run nor listed fails the test, so a new example cannot slip in unchecked.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from rcmd.console import ExitStatus

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)

#: Shell lines not run as written, each with the reason.
SKIPPED = {
    "make demo": "sets up .venv, downloading packages; tests/test_demos.py runs the demo itself",
    "make test": "runs the whole suite, this test among it",
    "make lint": "CI runs it before the tests (.ci/run), and it downloads the lint tools",
    "rcmd": "the interactive prompt: tests/test_prompt.py drives it in a pty",
    "rcmd host:9001": "the interactive prompt: tests/test_prompt.py drives it in a pty",
    "rcmd -t -c 'tty'": "needs a terminal: tests/test_terminal.py runs -t in a real pty",
    "rcmd-server --host 0.0.0.0 --secret-file ~/.rcmd-secret": (
        "listens beyond loopback: the same server is started on 127.0.0.1 for the lines after it"
    ),
    "rcmd-server --host 0.0.0.0 --secret-file ~/.rcmd-secret --tls-cert server.pem --tls-key server.key": (
        "listens beyond loopback: the same server is started on 127.0.0.1 for the lines after it"
    ),
    "rcmd server.example:9000 --secret-file ~/.rcmd-secret --tls -c uptime": (
        "needs a certificate from a CA the system trusts; the --tls-ca line below runs instead"
    ),
}
#: Shell lines that exit with something other than 0, by design.
EXPECTED_STATUS = {
    "rcmd :9001 -c 'sleep 60' --timeout 1": ExitStatus.TIMED_OUT,
    "rcmd --framing naive -c 'seq 1 3000'": ExitStatus.STATUS_UNKNOWN,  # naive: no exit status
    "printf 'for i in 1 2; do echo $i; done\\nexit 3\\n' | rcmd": 3,  # the script's own status
}
#: The README's addresses, and what the tests put in their place.
TARGETS = re.compile(r"(?<![\w.-])(?:host:9001|:9001|server\.example:9000)(?![\w.])")
PY_ADDRESSES = re.compile(r'"(?:127\.0\.0\.1|server\.example)", 9000')


def code_blocks(language: str) -> list[str]:
    return [m.group(2) for m in FENCE.finditer(README.read_text()) if m.group(1) == language]


def shell_lines(block: str) -> list[str]:
    """The commands of a shell block: comments dropped, comment-only lines skipped."""
    lines = (re.sub(r"(^|\s+)#\s.*$", "", line).rstrip() for line in block.splitlines())
    return [line for line in lines if line]


def test_every_block_is_sh_python_or_text():
    languages = {m.group(1) for m in FENCE.finditer(README.read_text())}
    assert languages <= {"sh", "python", "text"}, "label each block, so the runner knows what it is"
    assert code_blocks("sh")
    assert code_blocks("python")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """$HOME and working directory for the examples: a secret and a TLS certificate chain."""
    home = tmp_path_factory.mktemp("readme-home")
    secret = home / ".rcmd-secret"
    secret.write_text("readme-example-secret-0123456789abcdef\n")
    secret.chmod(0o600)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(home / "server.pem"))
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(str(home / "server.pem"), append=True)
    cert.private_key_pem.write_to_path(str(home / "server.key"))
    ca.cert_pem.write_to_path(str(home / "ca.pem"))
    return home


def example_env(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("RCMD_SECRET", "NO_COLOR")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    return env


def start_server(server_factory, line: str, home: Path):
    """Start the server a ``rcmd-server ...`` line describes, on loopback, port 0."""
    args = shlex.split(line.replace("--host 0.0.0.0", "--host 127.0.0.1"))[1:]
    args = [str(home / arg[2:]) if arg.startswith("~/") else arg for arg in args]
    args = [str(home / arg) if (home / arg).is_file() else arg for arg in args]  # server.pem, ...
    server = server_factory(*args, env={"RCMD_SECRET": ""})
    assert "listening on 127.0.0.1:" in server.banner
    return server


@pytest.mark.parametrize("block", code_blocks("sh"), ids=lambda block: shell_lines(block)[0][:40])
def test_shell_block(block, sandbox, server_factory, server, naive_server):
    assert (ROOT / "rcmd").is_dir()
    assert (Path(sys.executable).parent / "rcmd").exists(), "install rcmd in this Python (pip install -e .)"
    env = example_env(sandbox)
    block_server = None  # the last server this block started: its client lines talk to it
    for line in shell_lines(block):
        stand_in = line.startswith("rcmd-server") and "--host 0.0.0.0" in line
        if line in SKIPPED and not stand_in:
            continue
        if line.startswith("rcmd-server"):
            if block_server is not None:
                assert block_server.stop() == 0  # SIGTERM: a clean stop
            block_server = start_server(server_factory, line, sandbox)
            assert line in SKIPPED or "--host" not in line
            continue
        if re.search(r"(?<![\w./-])rcmd(?![\w-])", line):
            target = block_server or (naive_server if "--framing naive" in line else server)
            address = f"127.0.0.1:{target.port}"
            if TARGETS.search(line):
                command = TARGETS.sub(address, line)
            else:
                command = re.sub(r"(?<![\w./-])rcmd(?![\w-])", f"rcmd {address}", line, count=1)
        else:
            command = line
        proc = subprocess.run(["bash", "-c", command], cwd=sandbox, env=env, capture_output=True, timeout=60)
        expected = EXPECTED_STATUS.get(line, 0)
        assert proc.returncode == expected, f"{command}: {proc.returncode}\n{proc.stderr.decode()}"
        if "--framing naive -c 'seq 1 3000'" in line:
            assert len(proc.stdout) == 1024  # "you get the first 1024 bytes"
    if block_server is not None:
        assert block_server.stop() == 0


def test_skip_list_names_only_lines_in_the_readme():
    lines = {line for block in code_blocks("sh") for line in shell_lines(block)}
    assert set(SKIPPED) <= lines, f"SKIPPED names lines no longer in the README: {set(SKIPPED) - lines}"
    assert set(EXPECTED_STATUS) <= lines


@pytest.fixture(scope="module")
def tls_auth_server(server_factory, sandbox):
    return server_factory(
        "--secret-file",
        str(sandbox / ".rcmd-secret"),
        "--tls-cert",
        str(sandbox / "server.pem"),
        "--tls-key",
        str(sandbox / "server.key"),
        env={"RCMD_SECRET": ""},
    )


@pytest.mark.parametrize(
    "block", [pytest.param(block, id=f"python-{i}") for i, block in enumerate(code_blocks("python"))]
)
def test_python_block(block, sandbox, server, tls_auth_server):
    def address(match: re.Match) -> str:
        target = tls_auth_server if "server.example" in match.group(0) else server
        return f'"127.0.0.1", {target.port}'

    code = PY_ADDRESSES.sub(address, block)
    assert "9000" not in code, "an address the test does not know how to replace"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=sandbox,
        env=example_env(sandbox),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout  # every example prints what it got


def test_exit_code_table_lists_every_code_rcmd_gives():
    table = re.search(r"\| code \| meaning \|\n\|[-|]+\|\n((?:\|.*\|\n)+)", README.read_text())
    assert table
    listed = {int(row.split("|")[1]) for row in table.group(1).splitlines()}
    own = {int(code) for code in ExitStatus} - {ExitStatus.OK, ExitStatus.SIGNAL_BASE}
    assert listed == own


def test_api_reference_is_generated_from_the_current_docstrings():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "make_api.py"), "--check"], capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr.decode()
    reference = (ROOT / "docs" / "API.md").read_text()
    import rcmd

    for name in rcmd.__all__:
        if name != "__version__":
            assert f"{name}" in reference
