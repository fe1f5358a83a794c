"""The searches of /proc for a command's processes do not hold the event loop.

Killing a command (cancel, timeout, a lost client) and the sweep after a command ends each
scan /proc, a few hundred files, milliseconds of work: the server does it on a thread of
its own while the loop goes on serving every other connection. Here the scan is made to
wait for the test (rcmd.process.kill_marked replaced by one that blocks on an event), in
an in-process BackgroundServer: another connection must be served meanwhile, and a killed
command's EXIT must still wait for the search for its processes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import rcmd.process
from rcmd import connect
from rcmd.client import TimeoutExpired
from rcmd.messages import Exit, Stdout
from rcmd.server import BackgroundServer

#: The bound on any wait here: only a failing test waits this long.
REPLY_WAIT = 30.0


class HeldScans:
    """kill_marked() made to wait, on whatever thread calls it, until release()."""

    def __init__(self, real: Callable[..., int]) -> None:
        self.real = real
        self.entered = threading.Event()
        self.finished = threading.Event()  # the first scan is over: what it found is killed
        self._released = threading.Event()
        self.callers: list[str] = []

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        self.callers.append(threading.current_thread().name)
        self.entered.set()
        self._released.wait(2 * REPLY_WAIT)  # bounded (a failing test does not hang), past the pings
        try:
            return self.real(*args, **kwargs)
        finally:
            self.finished.set()

    def release(self) -> None:
        self._released.set()


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldScans]:
    scans = HeldScans(rcmd.process.kill_marked)
    monkeypatch.setattr(rcmd.process, "kill_marked", scans)
    try:
        yield scans
    finally:
        scans.release()


def test_another_client_is_served_while_a_killed_commands_processes_are_searched(held):
    with (
        BackgroundServer() as server,
        connect(*server.address) as killed,
        connect(*server.address) as other,
    ):
        outcome: list[BaseException | None] = []

        def run_until_killed() -> None:
            try:
                killed.run("sleep 600", timeout=0.1)
            except BaseException as exc:  # TimeoutExpired is expected; anything else fails below
                outcome.append(exc)
            else:
                outcome.append(None)

        thread = threading.Thread(target=run_until_killed)
        thread.start()
        try:
            assert held.entered.wait(REPLY_WAIT), "the timed-out command's processes were not searched for"
            other.ping(timeout=REPLY_WAIT)  # TimeoutError: the loop is held by the scan
            assert other.run("echo served").stdout == b"served\n"
            assert not outcome, "EXIT came before the command's processes were searched for and killed"
        finally:
            held.release()
            thread.join(REPLY_WAIT)
        serving = list(held.callers)  # the server's last sweep, as it closes, is on its thread
    assert len(outcome) == 1, outcome
    assert isinstance(outcome[0], TimeoutExpired), outcome
    assert "rcmd-server" not in serving  # no scan ran on the event loop's thread


def test_another_client_is_served_while_the_sweep_after_a_command_searches(held):
    """A BackgroundServer is no subreaper: every command's end is followed by a sweep."""
    with (
        BackgroundServer() as server,
        connect(*server.address) as ended,
        connect(*server.address) as other,
    ):
        assert ended.run("true").returncode == 0
        assert held.entered.wait(REPLY_WAIT), "no sweep followed the command"
        other.ping(timeout=REPLY_WAIT)  # TimeoutError: the loop is held by the sweep
        assert other.run("echo served").stdout == b"served\n"
        held.release()
        serving = list(held.callers)  # the server's last sweep, as it closes, is on its thread
    assert "rcmd-server" not in serving  # no scan ran on the event loop's thread


def test_a_command_started_while_a_sweep_waits_to_scan_is_not_taken_for_ended(held):
    """The sweep notes which commands have ended on the loop, and scans later: a command
    started in between carries a cookie the sweep has never seen, and must be spared."""
    with (
        BackgroundServer() as server,
        connect(*server.address) as ended,
        connect(*server.address) as other,
    ):
        assert ended.run("true").returncode == 0
        assert held.entered.wait(REPLY_WAIT), "no sweep followed the command"  # its snapshot is taken
        with other.stream("echo started; read line; echo $line", stdin=True) as stream:
            events = iter(stream)
            assert next(events) == Stdout(b"started\n")  # running, its cookie in its environment
            held.release()
            assert held.finished.wait(REPLY_WAIT)  # the sweep's scan is over
            stream.write_stdin(b"alive\n")
            stream.close_stdin()
            rest = list(events)
    assert rest[:-1] == [Stdout(b"alive\n")], rest
    assert isinstance(rest[-1], Exit), rest
    assert rest[-1].returncode == 0, rest
