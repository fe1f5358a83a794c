"""``rcmd -H``: live prefixed lines, gathered outputs, the failure summary and the exit code,
run as a real subprocess against a ServerFarm (real servers on loopback)."""

from __future__ import annotations

import io
import os
import socket
import subprocess

import pytest
from conftest import CLIENT_ARGV

from rcmd.client import CompletedCommand
from rcmd.fanout import HOST_COLORS, LinePrinter, describe_failure, fleet_status
from rcmd.hostset import fold
from rcmd.server.farm import ServerFarm

SECRET = "fanout-test-secret-0123456789"


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    root = tmp_path_factory.mktemp("fanout-farm")
    dirs = [root / f"s{i}" for i in range(6)]
    for folder in dirs:
        folder.mkdir()
    with ServerFarm(6, encoding="utf-8", per_server=lambda i: {"cwd": str(dirs[i])}) as farm:
        yield farm


def rcmd(*args: str, input: bytes = b"", env: dict | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("RCMD_SECRET", "NO_COLOR")}
    return subprocess.run(
        [*CLIENT_ARGV, *args],
        input=input,
        capture_output=True,
        timeout=120,
        env={**environ, **(env or {})},
    )  # type: ignore[call-overload,no-any-return]


def lines(data: bytes) -> list[str]:
    return data.decode().splitlines()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_live_lines_are_prefixed_whole_and_a_last_partial_line_is_flushed(farm):
    hosts = farm.hosts[:4]
    # Many small writes make one line: chunks of four hosts arrive interleaved.
    command = "for i in $(seq 300); do printf %s $i; done; echo; printf tail; echo err >&2"
    proc = rcmd("-H", ",".join(hosts), "-c", command)
    assert proc.returncode == 0, proc.stderr
    whole = "".join(str(i) for i in range(1, 301))
    assert sorted(lines(proc.stdout)) == sorted(
        [f"{h}: {whole}" for h in hosts] + [f"{h}: tail" for h in hosts]
    )
    assert sorted(lines(proc.stderr)) == sorted(f"{h}: err" for h in hosts)


def test_gather_prints_each_distinct_output_once_under_its_folded_hosts(farm):
    odd = farm.configs[1].cwd
    command = f'if [ "$PWD" = {odd} ]; then echo other; else echo same; echo again; fi'
    proc = rcmd("-H", ",".join(farm.hosts), "-b", "-c", command)
    assert proc.returncode == 0, proc.stderr
    same = [h for h in farm.hosts if h != farm.hosts[1]]
    blocks = sorted(
        [(fold(same), 5, "same\nagain\n"), (farm.hosts[1], 1, "other\n")],
    )
    rule = "-" * 15
    assert proc.stdout.decode() == "".join(f"{rule}\n{h} ({n})\n{rule}\n{text}" for h, n, text in blocks)


def test_exit_code_is_the_largest_status_and_failures_are_summed_up(farm):
    three, five = farm.configs[0].cwd, farm.configs[1].cwd
    command = f'case "$PWD" in {three}) exit 3;; {five}) exit 5;; esac'
    proc = rcmd("-H", ",".join(farm.hosts[:3]), "-c", command)
    assert proc.returncode == 5
    assert sorted(lines(proc.stderr)) == sorted(
        [f"rcmd: {farm.hosts[0]}: exited with status 3", f"rcmd: {farm.hosts[1]}: exited with status 5"]
    )


def test_an_unreachable_host_makes_255_and_the_rest_still_run(farm):
    dead = f"127.0.0.1:{closed_port()}"
    proc = rcmd("-H", farm.hosts[0], "-H", dead, "-c", "echo up")
    assert proc.returncode == 255
    assert lines(proc.stdout) == [f"{farm.hosts[0]}: up"]
    assert lines(proc.stderr) == [f"rcmd: {dead}: unreachable (connection refused)"]


def test_a_slow_host_times_out_alone(farm):
    slow = farm.configs[2].cwd
    command = f'[ "$PWD" = {slow} ] && exec sleep 60; echo quick'
    proc = rcmd("-H", ",".join(farm.hosts[:3]), "--timeout", "1", "-c", command)
    assert proc.returncode == 124
    assert sorted(lines(proc.stdout)) == sorted(f"{h}: quick" for h in farm.hosts[:2])
    assert lines(proc.stderr) == [f"rcmd: {farm.hosts[2]}: timed out (killed by SIGTERM)"]


def test_stdin_goes_to_every_host(farm):
    proc = rcmd("-H", ",".join(farm.hosts[:3]), "-c", "cat", input=b"to all\n")
    assert proc.returncode == 0, proc.stderr
    assert sorted(lines(proc.stdout)) == sorted(f"{h}: to all" for h in farm.hosts[:3])


def test_a_piped_script_runs_whole_on_every_host(farm):
    proc = rcmd("-H", ",".join(farm.hosts[:2]), input=b"x=41\necho $((x + 1))\n")
    assert proc.returncode == 0, proc.stderr
    assert sorted(lines(proc.stdout)) == sorted(f"{h}: 42" for h in farm.hosts[:2])


def test_n_gives_every_host_an_empty_stdin(farm):
    proc = rcmd("-H", farm.hosts[0], "-n", "-c", "cat; echo end", input=b"not sent\n")
    assert lines(proc.stdout) == [f"{farm.hosts[0]}: end"]


def test_piped_lines_each_run_on_every_host_and_a_host_file(farm, tmp_path):
    hosts_file = tmp_path / "hosts"
    hosts_file.write_text("# two of them\n" + "\n".join(farm.hosts[:2]) + "\n")
    proc = rcmd("-H", f"@{hosts_file}", "--each-line", input=b"echo one\n\necho two\n")
    assert proc.returncode == 0, proc.stderr
    out = lines(proc.stdout)
    assert sorted(out[:2]) == sorted(f"{h}: one" for h in farm.hosts[:2])
    assert sorted(out[2:]) == sorted(f"{h}: two" for h in farm.hosts[:2])


def test_secret_file_is_used_for_every_host(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o600)
    with ServerFarm(2, encoding="utf-8", secret=SECRET.encode()) as farm:
        spec = ",".join(farm.hosts)
        ok = rcmd("-H", spec, "--secret-file", str(secret_file), "-c", "echo in")
        refused = rcmd("-H", spec, "-c", "echo in")
    assert ok.returncode == 0, ok.stderr
    assert sorted(lines(ok.stdout)) == sorted(f"{h}: in" for h in farm.hosts)
    assert refused.returncode == 255
    assert lines(refused.stderr) == [
        f"rcmd: {fold(farm.hosts)}: auth failed (requires authentication: give the shared secret "
        "(--secret-file FILE, or $RCMD_SECRET))"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["127.0.0.1", "-H", "a"], "give the hosts with -H only"),
        (["-H", "a", "--framing", "naive"], "prefixed framing only"),
        (["-H", "web[1-"], "unbalanced"),
        (["-H", "@/nonexistent/hosts"], "cannot read the host file"),
        (["-H", "a", "-t"], "one keyboard"),
        (["-H", "a", "--trace"], "one host at a time"),
    ],
)
def test_usage_errors(args, message):
    proc = rcmd(*args, "-c", "true")
    assert proc.returncode == 2
    assert message in proc.stderr.decode()


# ------------------------------------------------------------- the pieces, without I/O


def test_line_printer_never_cuts_or_mixes_lines_and_colours_each_host():
    out, err = io.StringIO(), io.StringIO()
    printer = LinePrinter(["a", "b"], out, err, color=True)
    printer.feed("a", b"hel", "utf-8", is_stdout=True)
    printer.feed("b", b"wor", "utf-8", is_stdout=True)
    printer.feed("a", b"lo\nne", "utf-8", is_stdout=True)
    printer.feed("b", "ld \u4e2d".encode()[:-1], "utf-8", is_stdout=True)  # a character cut in two
    printer.feed("b", "ld \u4e2d".encode()[-1:] + b"\n", "utf-8", is_stdout=True)
    printer.feed("a", b"oops\n", "utf-8", is_stdout=False)
    printer.finish("a")
    printer.finish("b")
    a, b = HOST_COLORS[0], HOST_COLORS[1]
    reset = "\x1b[0m"
    assert out.getvalue() == f"{a}a:{reset} hello\n{b}b:{reset} world \u4e2d\n{a}a:{reset} ne\n"
    assert err.getvalue() == f"{a}a:{reset} oops\n"


def test_fleet_status_and_failure_words():
    ok = CompletedCommand("x", 0)
    three = CompletedCommand("x", 3)
    timed_out = CompletedCommand("x", -15, signal=15, timed_out=True)
    assert fleet_status([]) == 0
    assert fleet_status([ok, three]) == 3
    assert fleet_status([ok, timed_out, three]) == 124
    assert fleet_status([ok, ConnectionRefusedError()]) == 255
    assert describe_failure(ok) is None
    assert describe_failure(three) == "exited with status 3"
    assert describe_failure(TimeoutError("no result within 3s")) == "timeout (no result within 3s)"


def test_the_prompt_runs_each_line_on_every_host(farm):
    """On a terminal (a real pty), -H without -c is clush's interactive mode."""
    import re

    import pexpect

    hosts = farm.hosts[:2]
    child = pexpect.spawn(
        CLIENT_ARGV[0],
        [*CLIENT_ARGV[1:], "-H", ",".join(hosts)],
        env={**os.environ, "TERM": "xterm", "PYTHONIOENCODING": "utf-8"},
        encoding="utf-8",
        timeout=30,
    )
    prompt = re.escape(f"rcmd[{fold(hosts)}]> ")
    child.expect(prompt)
    child.sendline("echo hi; exit 3")
    seen = set()
    for _ in hosts:
        child.expect(r"(127\.0\.0\.1:\d+):(?:\x1b\[0m)? hi\r\n")
        seen.add(child.match.group(1))
    assert seen == set(hosts)
    child.expect(prompt)
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 3  # the last line's status


def test_user_and_password_file_log_in_to_every_host(tmp_path):
    from rcmd import scram
    from rcmd.server.accounts import add_user, load_users

    users = tmp_path / "users.toml"
    add_user(users, "ann", "ann's password", home=str(tmp_path / "ann"), iterations=scram.MIN_ITERATIONS)
    password_file = tmp_path / "password"
    password_file.write_text("ann's password\n")
    password_file.chmod(0o600)
    with ServerFarm(2, encoding="utf-8", users=load_users(users)) as farm:
        spec = ",".join(farm.hosts)
        proc = rcmd("-H", spec, "--user", "ann", "--password-file", str(password_file), "-c", "pwd")
    assert proc.returncode == 0, proc.stderr
    assert sorted(lines(proc.stdout)) == sorted(f"{h}: {tmp_path / 'ann'}" for h in farm.hosts)
