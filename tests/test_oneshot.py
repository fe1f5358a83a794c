"""`rcmd [HOST[:PORT]] -c COMMAND` without typer (rcmd.oneshot), and the same through typer.

The plain one-shot is run by client_entry() itself, with the options' defaults; any other
argv goes to the typer app. Both must give the same results: the same output, the same
errors, the same exit status. The typer path is forced by an option given its default.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLIENT_ARGV, uncovered

from rcmd.oneshot import plain_one_shot

ROOT = Path(__file__).resolve().parent.parent
TYPER_PATH = ["--connect-timeout", "10"]  # the default: only the way in changes


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-c", "true"], (None, "true")),
        (["host:9", "-c", "echo hi"], ("host:9", "echo hi")),
        (["-c", "echo hi", "host"], ("host", "echo hi")),
        (["--command", "ls -l", "::1"], ("::1", "ls -l")),
        (["-c", ""], (None, "")),
        (["host"], None),  # the prompt, or a script on stdin
        (["host", "-c"], None),  # typer says what is missing
        (["-c", "-x"], None),  # a command like an option: as typer reads it
        (["-n", "-c", "true"], None),
        (["--help"], None),
        (["a", "b", "-c", "true"], None),
        (["--command=true"], None),
        (["--", "-c", "true"], None),
    ],
)
def test_only_the_plain_one_shot_form_is_taken(args, expected):
    assert plain_one_shot(args) == expected


def rcmd(*args: str, **kwargs) -> tuple[int, str, str]:
    result = subprocess.run(
        [*CLIENT_ARGV, *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, **kwargs
    )
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize(
    "command",
    ["echo out; echo err >&2; exit 3", "printf 'no newline'", "kill -9 $$", "echo 中文"],
)
def test_both_paths_give_the_same_output_and_status(server, command):
    target = f"127.0.0.1:{server.port}"
    fast = rcmd(target, "-c", command)
    assert fast == rcmd(*TYPER_PATH, target, "-c", command)


def test_both_paths_fail_alike_when_nobody_listens():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    fast = rcmd(f"127.0.0.1:{port}", "-c", "true")
    assert fast == rcmd(*TYPER_PATH, f"127.0.0.1:{port}", "-c", "true")
    assert fast[0] != 0
    assert "connection refused" in fast[2]


@pytest.mark.parametrize(
    "secret",
    ["short", "a-long-enough-secret-1234567890"],  # too short; given to a server without auth
)
def test_both_paths_refuse_a_secret_alike(server, secret):
    env = {**os.environ, "RCMD_SECRET": secret}
    fast = rcmd(f"127.0.0.1:{server.port}", "-c", "true", env=env)
    assert fast == rcmd(*TYPER_PATH, f"127.0.0.1:{server.port}", "-c", "true", env=env)
    assert fast[0] != 0
    assert fast[2].startswith("rcmd: ")


def test_a_target_it_cannot_read_is_typer_s_usage_error():
    code, _, stderr = rcmd("host:abc", "-c", "true")
    assert code == 2
    assert "port must be a number, got 'abc'" in stderr
    assert "Usage:" in stderr


#: What a plain one-shot `rcmd -c true` has no use for, each a few ms of its start-up:
#: the CLI's libraries, TLS, the machinery of dataclasses (rcmd.records makes the messages),
#: IDNA for an ASCII host name, what only results, other clients and the server use,
#: typing (annotations only: rcmd's modules import it for type checkers alone) and contextlib.
NOT_FOR_A_ONE_SHOT = (
    "typer",
    "click",
    "rich",
    "prompt_toolkit",
    "ssl",
    "dataclasses",
    "inspect",
    "encodings.idna",
    "hashlib",
    "subprocess",
    "asyncio",
    "rcmd.result",
    "rcmd.scram",
    "typing",
    "pathlib",
    "ipaddress",
    "urllib.parse",
    "shlex",
    "contextlib",
)


def test_the_plain_one_shot_imports_neither_typer_nor_the_prompt(server):
    probe = (
        "import sys\n"
        "from rcmd.oneshot import client_entry\n"
        f"sys.argv = ['rcmd', '127.0.0.1:{server.port}', '-c', 'true']\n"
        "try:\n"
        "    client_entry()\n"
        "except SystemExit as exc:\n"
        f"    loaded = sorted(m for m in {NOT_FOR_A_ONE_SHOT!r} if m in sys.modules)\n"
        "    print(exc.code, loaded)\n"
    )
    # -S: no site, as rcmd installed from a wheel starts (site itself imports little); this
    # checkout's editable install hooks in through site, and its finder imports pathlib.
    env = {**uncovered(), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe], capture_output=True, text=True, timeout=60, check=True, env=env
    )
    assert result.stdout.strip() == "0 []"


def test_an_ascii_host_is_resolved_without_idna():
    from rcmd.client import resolvable

    assert resolvable("127.0.0.1") == b"127.0.0.1"
    assert resolvable("web-01.example") == b"web-01.example"
    assert resolvable("bücher.example") == "bücher.example"  # IDNA encodes it, as before
