"""Real servers for the end-to-end tests: ``rcmd-server --port 0`` in a subprocess.

Every server a test starts is stopped at teardown (SIGTERM, then SIGKILL if it hangs),
and its log is printed when a test fails, so a failure says what the server saw.

And servers in this process (``start``, ``peers``, ``server_log``; tests/_mutserver.py), for
the tests mutation testing credits: it sees only the code the test process runs.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _mutserver import Peer, ServerLog, capture, stop
from hypothesis import HealthCheck, settings

# No hypothesis test may fail for being slow: on a loaded machine (or under mutmut, which
# counts any failure as a kill) an example can take seconds, and a timing failure is noise.
settings.register_profile("rcmd", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("rcmd")

SERVER_ARGV = [sys.executable, "-c", "from rcmd.cli import server_entry; server_entry()"]
CLIENT_ARGV = [sys.executable, "-m", "rcmd"]
START_TIMEOUT = 30.0


class ServerProcess:
    """One ``rcmd-server`` subprocess; ``address`` once it prints its listening line."""

    def __init__(
        self,
        log_dir: Path,
        *args: str,
        port: int = 0,
        env: dict | None = None,
        stdin: int = subprocess.DEVNULL,
    ) -> None:
        self.log_path = log_dir / f"server-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - open for the server's whole life
        self.proc = subprocess.Popen(
            [*SERVER_ARGV, "--port", str(port), "--log-level", "debug", *args],
            stdin=stdin,  # subprocess.PIPE: a stdin that stays open, as a terminal's would
            stdout=subprocess.PIPE,
            stderr=self._log,  # a file, so a chatty server never blocks on a full pipe
            env={**os.environ, **(env or {})},
        )
        self.banner = self._read_banner()
        match = re.search(r"listening on (?:\[([^\]]+)\]|([^\s:]+)):(\d+)", self.banner)
        assert match, f"no listening line: {self.banner!r}"
        self.address = (match.group(1) or match.group(2), int(match.group(3)))

    @property
    def port(self) -> int:
        return self.address[1]

    def _read_banner(self) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line:
            self.stop()
            raise RuntimeError(f"server did not start: {self.log()}")
        return line

    def memory_kib(self, field: str = "VmRSS") -> int:
        """VmRSS (now) or VmHWM (peak) of the server process, in KiB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 15.0) -> re.Match:
        """Wait until the server has logged a line matching *pattern* (a condition, checked
        every 10 ms: the log is the only window into what the server is doing)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log())
            if match:
                return match
            time.sleep(0.01)
        raise AssertionError(f"the server never logged {pattern!r}:\n{self.log()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe:
                pipe.close()
        return self.proc.returncode


def uncovered() -> dict[str, str]:
    """This environment less coverage's hook for subprocesses (make test runs under coverage,
    which measures every Python started): for a probe of what a process imports, as coverage
    imports dataclasses and inspect itself."""
    return {
        k: v for k, v in os.environ.items() if k not in ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")
    }


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory):
    """Start servers with ``server_factory(*args)``; all are stopped at the end."""
    started: list[ServerProcess] = []
    log_dir = tmp_path_factory.mktemp("server-logs")

    def start(
        *args: str, port: int = 0, env: dict | None = None, stdin: int = subprocess.DEVNULL
    ) -> ServerProcess:
        server = ServerProcess(log_dir, *args, port=port, env=env, stdin=stdin)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def server(server_factory):
    """The shared prefixed server (utf-8)."""
    return server_factory("--encoding", "utf-8")


@pytest.fixture
def cookie_only(server_factory, monkeypatch):
    """A server asked for cgroups that finds no cgroup2 among its mounts (a test hook, not an
    option): the process group, the cookie and the subreaper alone, as on a machine without
    cgroups."""
    hook = "import rcmd.cgroup; rcmd.cgroup.MOUNTINFO = '/dev/null'\n"
    monkeypatch.setattr(sys.modules[__name__], "SERVER_ARGV", [sys.executable, "-c", hook + SERVER_ARGV[-1]])
    return server_factory("--encoding", "utf-8", "--cgroups")


@pytest.fixture(scope="session")
def gbk_server(server_factory):
    """A server that announces gbk, as Windows cmd.exe prints."""
    return server_factory("--encoding", "gbk")


@pytest.fixture(scope="session")
def naive_server(server_factory):
    return server_factory("--framing", "naive", "--encoding", "utf-8")


def wait_until(condition, message: str, timeout: float = 30.0) -> None:
    """Wait until *condition()* is true (checked every 10 ms), else fail with *message*."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.01)


def run_until_timed_out(client, command: str, *, timeout: float = 0.5, tries: int = 6):
    """Run *command* with a short *timeout*; return (the numbers on its first line, its Exit).

    *command* prints one line once it is ready (its pids, after any trap or child it sets
    up). The server's timer starts when it spawns the shell, so on a loaded machine it can run
    out before the shell has printed anything: such a run shows neither success nor failure
    (no trap set, no child started yet), so it is repeated with twice the timeout. The
    result never depends on timing; only how long the test takes does.
    """
    from rcmd import Stdout

    for _ in range(tries):
        line = b""
        with client.stream(command, timeout=timeout) as events:
            for event in events:
                if isinstance(event, Stdout):
                    line += event.data
                    if b"\n" in line:
                        break
            exit = events.wait()
        if b"\n" in line:
            return [int(p) for p in line.split(b"\n")[0].split()], exit
        timeout *= 2
    raise AssertionError(f"{command!r} never printed its first line before its timeout ({timeout:g}s)")


def pipe_queued(pid: int, fd: int = 1) -> int:
    """Bytes waiting in the pipe that is process *pid*'s descriptor *fd* (its stdout: what the
    server has not read yet), seen through /proc without reading any. 0 once *pid* is gone."""
    import fcntl
    import struct
    import termios

    try:
        pipe = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return 0
    try:
        return struct.unpack("i", fcntl.ioctl(pipe, termios.FIONREAD, b"\0" * 4))[0]
    finally:
        os.close(pipe)


class SplitOutput:
    """A command that prints *first*, waits until the server has read that from its pipe, then
    prints *rest*: the two parts surely travel in separate STDOUT messages.

    ``command`` is the shell command (*first* and *rest* are printf formats); call
    ``release()`` once it has been sent. No timing: the command blocks on a FIFO until the
    test has seen its pipe emptied by the server.
    """

    def __init__(self, folder: Path, first: str, rest: str) -> None:
        self.gate = folder / "split-gate"
        self.pid_file = folder / "split-pid"
        os.mkfifo(self.gate)
        self.command = f"echo $$ > {self.pid_file}; printf '{first}'; cat {self.gate}; printf '{rest}'"

    def release(self) -> None:
        gate = os.open(self.gate, os.O_WRONLY)  # returns once cat runs: *first* is in the pipe
        try:
            pid = int(self.pid_file.read_text())
            wait_until(lambda: pipe_queued(pid) == 0, "the server never read the first part")
        finally:
            os.close(gate)  # cat reads end-of-file; the shell prints the rest


def children_of(pid: int) -> set[int]:
    """Processes whose parent is *pid*, zombies included (they are what a missed reap leaves)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # gone meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def wait_gone(pid: int, timeout: float = 15.0) -> bool:
    """Wait for process *pid* to exit (a pidfd becomes readable): True if it did."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the logs of the servers the test used."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for name in ("server", "gbk_server", "naive_server"):
            server = item.funcargs.get(name)
            if isinstance(server, ServerProcess):
                report.sections.append((f"{name} log (tail)", server.log()[-4000:]))


class FakeServer:
    """A scripted peer on 127.0.0.1:0 for the failures a real server does not produce.

    *script(conn)* runs in a thread for the one connection it accepts.
    """

    def __init__(self, script) -> None:
        import socket
        import threading

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()[:2]
        self.thread = threading.Thread(target=self._serve, args=(script,), daemon=True)
        self.thread.start()

    def _serve(self, script) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            script(conn)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(15)


@pytest.fixture
def fake_server():
    servers = []

    def start(script) -> FakeServer:
        server = FakeServer(script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def frames_until_closed(sock) -> list:
    """Every rcmd message the peer sends on *sock* until it closes the connection."""
    from rcmd.framing import CLOSED, NEED_DATA, LengthPrefixFramer
    from rcmd.messages import decode_message

    framer, messages = LengthPrefixFramer(), []
    while True:
        chunk = sock.recv(65536)
        framer.receive_data(chunk)
        while (frame := framer.next_frame()) not in (NEED_DATA, CLOSED):
            messages.append(decode_message(frame))
        if not chunk:
            return messages


@pytest.fixture
def start(tmp_path: Path) -> Iterator:
    """start(**options): a BackgroundServer (port 0, utf-8, cwd tmp_path) closed at the end."""
    from rcmd.server import BackgroundServer

    servers: list[BackgroundServer] = []

    def started(**options: object) -> BackgroundServer:
        server = BackgroundServer(**{"encoding": "utf-8", "cwd": str(tmp_path), **options})
        servers.append(server.start())
        return server

    yield started
    for server in servers:
        stop(server)


@pytest.fixture
def peers() -> Iterator:
    """peers(server, hello=True): a Peer of *server* (in-process or not), closed at the end."""
    opened: list[Peer] = []

    def peer(server: Any, **options: bool) -> Peer:
        opened.append(Peer(server.address, **options))
        return opened[-1]

    yield peer
    for each in opened:
        each.close()


@pytest.fixture
def server_log() -> Iterator[ServerLog]:
    """The rcmd.server log lines of this test, at debug level."""
    import logging

    with capture(logging.DEBUG) as handler:
        yield handler


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """server.pem (a certificate for 127.0.0.1 and its key) and ca.pem, the CA that signed it."""
    import trustme

    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    return folder
