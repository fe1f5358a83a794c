"""rcmd.server.pty in this process (mutation testing sees it run): spawn_pty() starts a real
shell on a real pty, and the test reads the master as the server does. What the program sees
(a terminal of the size asked, $TERM, its own session with the pty as its controlling
terminal, the terminal's signals at their defaults), typing, resizing, Ctrl-D for the end of
input, and a shell that cannot start. Every wait is for output (select on the master).
"""

from __future__ import annotations

import os
import select
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _mutserver import WAIT

from rcmd import process
from rcmd.process import tracker
from rcmd.server import pty
from rcmd.server.pty import PtyChild, spawn_pty


def read_until(child: PtyChild, needle: bytes) -> bytes:
    """What the master reads until *needle* (or the end: EIO once the program is gone)."""
    received = b""
    while needle not in received:
        ready, _, _ = select.select([child.master], [], [], WAIT)
        assert ready, f"no {needle!r} after {received!r}"
        try:
            chunk = os.read(child.master, 65536)
        except OSError as exc:
            assert exc.errno in pty.EOF_ERRNOS, exc
            break
        received += chunk
    return received


def read_to_end(child: PtyChild) -> bytes:
    return read_until(child, b"\0never printed\0")


@pytest.fixture
def spawned(tmp_path: Path) -> Iterator:
    children: list[PtyChild] = []

    def spawn(command: str, **options: object) -> PtyChild:
        arguments: dict = {
            "shell": "/bin/sh",
            "cwd": str(tmp_path),
            "env": None,
            "term": "xterm-test",
            "rows": 24,
            "cols": 80,
            "stdin": True,
            **options,
        }
        children.append(spawn_pty(command, **arguments))
        return children[-1]

    yield spawn
    for child in children:
        if child.returncode is None:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child._popen.wait()
        child.close()


def test_the_program_sees_a_terminal_of_the_size_and_type_asked(spawned, tmp_path):
    child = spawned("tty; echo term=$TERM; stty size; pwd", rows=33, cols=101)
    output = read_to_end(child).replace(b"\r\n", b"\n")
    lines = output.decode().splitlines()
    assert lines[0].startswith("/dev/pts/")
    assert lines[1:] == ["term=xterm-test", "33 101", str(tmp_path)]
    assert child._popen.wait(WAIT) == 0
    assert child.stderr == -1
    assert child.stdout == child.master


def test_the_program_leads_a_session_whose_terminal_is_the_pty(spawned):
    # field 6 of /proc/PID/stat is the session, 7 the controlling tty, 8 its foreground group
    child = spawned("exec cat /proc/self/stat")
    stat = read_to_end(child).decode().rsplit(")", 1)[1].split()
    session, tty_nr, foreground = int(stat[3]), int(stat[4]), int(stat[5])
    assert session == child.pid
    assert tty_nr != 0
    assert foreground == child.pid
    assert child.pid in tracker.leaders


def test_the_terminals_signals_are_reset_for_the_program(spawned):
    """A server started in the background ignores SIGINT and SIGQUIT; its pty programs must not."""
    ignored = {signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}
    before = {signum: signal.signal(signum, signal.SIG_IGN) for signum in ignored}
    try:
        child = spawned("exec grep SigIgn /proc/self/status")
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    mask = int(read_to_end(child).split()[-1], 16)
    assert [signum for signum in ignored if mask & (1 << (signum - 1))] == []
    assert set(pty.TERMINAL_SIGNALS) == ignored


def test_ctrl_c_typed_interrupts_the_program(spawned):
    child = spawned(f"exec {sys.executable} -c 'print(\"ready\", flush=True); import time; time.sleep(60)'")
    read_until(child, b"ready")
    assert child.stdin is not None
    os.write(child.stdin, b"\x03")
    read_to_end(child)
    assert child._popen.wait(WAIT) == -signal.SIGINT


def test_the_environment_given_or_the_servers(spawned, monkeypatch):
    monkeypatch.setenv("RCMD_PTY_TEST", "from the server")
    child = spawned(
        'echo "[$RCMD_PTY_TEST] [$ONLY_GIVEN] [$TERM]"', env={"ONLY_GIVEN": "given", "TERM": "dumb"}
    )
    assert b"[] [given] [xterm-test]" in read_to_end(child)
    tracker._base_env = None  # the server's copy of its environment, made afresh
    child = spawned('echo "[$RCMD_PTY_TEST]"')
    assert b"[from the server]" in read_to_end(child)


def test_typed_input_resize_and_ctrl_d(spawned):
    child = spawned("read line; echo got=$line; stty size; cat; echo cat ended")
    assert child.stdin is not None
    assert child.stdin != child.master  # a descriptor of its own: closing it keeps the output
    with pytest.raises(BlockingIOError):
        os.read(child.master, 1)  # nothing yet, and the master does not block
    child.resize(50, 132)
    os.write(child.stdin, b"hello\n")
    assert b"50 132" in read_until(child, b"50 132")
    child.close_stdin()  # Ctrl-D: cat reads the end of its input
    assert child.stdin is None
    assert b"cat ended" in read_until(child, b"cat ended")
    assert child._popen.wait(WAIT) == 0
    child.close_stdin()  # again: nothing to do


def test_a_program_never_typed_to(spawned):
    child = spawned("stty size", stdin=False, rows=1, cols=2)
    assert child.stdin is None
    assert b"1 2" in read_to_end(child)
    child.close_stdin()


def test_a_resize_after_the_close_does_nothing(spawned):
    child = spawned("true")
    read_to_end(child)
    child._popen.wait(WAIT)
    child.close()
    assert child.stdout == -1
    child.resize(10, 10)


def test_ctrl_d_to_a_stdin_that_is_no_terminal_still_closes_it(spawned):
    """tcgetattr() fails with termios.error, which is no OSError: it was let through, and
    the descriptor was never closed."""
    child = spawned("true")
    read_to_end(child)
    child._popen.wait(WAIT)
    assert child.stdin is not None
    os.close(child.stdin)
    child.stdin = os.open(os.devnull, os.O_WRONLY)  # no terminal: tcgetattr fails
    child.close_stdin()
    assert child.stdin is None


def fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_shell_that_cannot_start_leaves_no_descriptor_and_no_live_command(spawned, tmp_path):
    live, before = set(tracker.live), fds()
    with pytest.raises(FileNotFoundError):
        spawned("true", shell=str(tmp_path / "no-shell"))
    assert fds() == before
    assert tracker.live == live


def test_the_program_carries_its_commands_cookie(spawned):
    child = spawned(f"echo ${process.COOKIE_VARIABLE}")
    assert child.number in tracker.live
    assert read_to_end(child).strip() == tracker.cookie(child.number).encode()


def test_its_error_output_is_on_the_terminal_too(spawned):
    child = spawned("echo out; echo err >&2")
    assert read_to_end(child).replace(b"\r\n", b"\n") == b"out\nerr\n"


WINSIZE = "import fcntl, struct, termios; print(struct.unpack('HHHH', fcntl.ioctl(0, termios.TIOCGWINSZ, bytes(8))))"


def test_the_whole_window_size_any_16_bit_size_and_no_pixels(spawned):
    child = spawned(
        f'{sys.executable} -c "{WINSIZE}"; read line; {sys.executable} -c "{WINSIZE}"', rows=7, cols=9
    )
    assert b"(7, 9, 0, 0)" in read_until(child, b")")
    child.resize(65535, 40000)
    assert child.stdin is not None
    os.write(child.stdin, b"\n")
    assert b"(65535, 40000, 0, 0)" in read_until(child, b"(65535")


def test_a_server_whose_stdin_is_closed_can_have_the_master_on_descriptor_0(spawned):
    """A server started with its stdin closed (a daemon): the lowest free descriptor the pty
    gets is 0, and it is a master like any other."""
    saved = os.dup(0)
    try:
        os.close(0)
        child = spawned("read line; stty size")
        try:
            assert child.master == 0
            child.resize(12, 34)
            assert child.stdin is not None
            os.write(child.stdin, b"\n")
            assert b"12 34" in read_until(child, b"12 34")
            child._popen.wait(WAIT)
        finally:
            child.close()
    finally:
        os.dup2(saved, 0)
        os.close(saved)


@pytest.fixture
def cgrouped(monkeypatch) -> Iterator[process.ProcessTracker]:
    """A tracker of its own with a cgroup per command (skipped where none can be made)."""
    own = process.ProcessTracker()
    monkeypatch.setattr(process, "tracker", own)
    monkeypatch.setattr(pty, "tracker", own)
    sentence = own.start(subreaper=False, cgroups=True)
    if own.cgroups is None:
        own.close()
        pytest.skip(sentence)
    yield own
    own.close()


def test_a_pty_command_runs_in_its_own_cgroup(cgrouped, spawned):
    child = spawned("exec cat /proc/self/cgroup")
    assert cgrouped.cgroups is not None
    expected = os.path.basename(cgrouped.cgroups.path(child.number))
    assert read_to_end(child).decode().splitlines()[-1].endswith(f"/{expected}")
