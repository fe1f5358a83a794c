"""Leaving a command early: an error or Ctrl-C inside ``with client.stream()`` never blocks for
ever on a server that does not answer, and the second Ctrl-C in ``rcmd -c`` exits at once.

The unresponsive server is a fake that takes the RUN, prints one line, and then never sends
the EXIT: a CANCEL changes nothing. Every wait below is for an event, with a generous bound.
"""

from __future__ import annotations

import signal
import subprocess
import threading

import pytest
from conftest import CLIENT_ARGV

import rcmd.client
from rcmd import connect
from rcmd.console import ExitStatus
from rcmd.framing import CLOSED, NEED_DATA, LengthPrefixFramer, encode_frame
from rcmd.messages import Cancel, Hello, Run, Stdout, decode_message, encode_message

BOUND = 30.0  # seconds: only a hang comes near it


class Deaf:
    """What the fake server saw: the RUN, the CANCEL, and the client closing."""

    def __init__(self) -> None:
        self.run = threading.Event()
        self.cancel = threading.Event()
        self.closed = threading.Event()

    def script(self, conn) -> None:
        conn.sendall(encode_frame(encode_message(Hello(encoding="utf-8", cwd="/"))))
        framer = LengthPrefixFramer()
        while True:
            chunk = conn.recv(65536)
            framer.receive_data(chunk)
            while (frame := framer.next_frame()) not in (NEED_DATA, CLOSED):
                message = decode_message(frame)
                if isinstance(message, Run):
                    conn.sendall(encode_frame(encode_message(Stdout(b"started\n"))))
                    self.run.set()
                elif isinstance(message, Cancel):
                    self.cancel.set()  # and never answer it
            if not chunk:
                self.closed.set()
                return


@pytest.fixture
def deaf(fake_server):
    deaf = Deaf()
    server = fake_server(deaf.script)
    return deaf, server.address


def in_a_thread(body) -> tuple[threading.Thread, dict]:
    """Run *body* in a thread (so a hang fails the test instead of blocking it); what it
    raised ends up in the returned dict."""
    outcome: dict = {}

    def target() -> None:
        try:
            body()
        except BaseException as exc:  # KeyboardInterrupt included: that is the point
            outcome["raised"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def test_keyboard_interrupt_inside_a_stream_does_not_wait_for_the_server(deaf):
    seen, address = deaf
    client = connect(*address)

    def body() -> None:
        with client.stream("sleep 100") as events:
            assert next(events) == Stdout(b"started\n")
            raise KeyboardInterrupt

    thread, outcome = in_a_thread(body)
    thread.join(BOUND)
    try:
        assert not thread.is_alive(), "__exit__ blocked waiting for an EXIT that never comes"
        assert isinstance(outcome.get("raised"), KeyboardInterrupt)
        assert seen.closed.wait(BOUND)  # the connection is closed: the server kills the command
    finally:
        client.close()


def test_an_error_inside_a_stream_waits_a_bounded_time_then_disconnects(deaf, monkeypatch):
    seen, address = deaf
    # The fake never answers, so the wait always runs out: a short one keeps the test short.
    monkeypatch.setattr(rcmd.client, "CANCEL_WAIT", 0.5)
    client = connect(*address)

    def body() -> None:
        with client.stream("sleep 100") as events:
            assert next(events) == Stdout(b"started\n")
            raise ValueError("a bug in the caller")

    thread, outcome = in_a_thread(body)
    thread.join(BOUND)
    try:
        assert not thread.is_alive(), "__exit__ blocked waiting for an EXIT that never comes"
        assert isinstance(outcome.get("raised"), ValueError)  # the caller's error, not ours
        assert seen.cancel.is_set()  # it did ask the server to stop the command first
        assert seen.closed.wait(BOUND)
    finally:
        client.close()


def test_an_error_inside_a_stream_cancels_and_the_connection_goes_on(server):
    def fail_inside(stream) -> None:
        with stream as events:
            next(events)
            raise ValueError("a bug in the caller")

    with connect(*server.address) as client:
        events = client.stream("echo $$; sleep 1000")
        with pytest.raises(ValueError, match="caller"):
            fail_inside(events)
        assert events.exit is not None
        assert events.exit.cancelled
        assert client.run("echo next").stdout == b"next\n"


def test_two_ctrl_c_in_one_shot_exit_at_once_when_the_server_does_not_answer(deaf):
    seen, address = deaf
    proc = subprocess.Popen(
        [*CLIENT_ARGV, f"127.0.0.1:{address[1]}", "-c", "sleep 100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout.readline() == b"started\n"  # the command runs; Ctrl-C now cancels
        proc.send_signal(signal.SIGINT)
        assert seen.cancel.wait(BOUND), "the first Ctrl-C sent no CANCEL"
        assert proc.poll() is None  # the server has not answered: the client still waits
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail("the second Ctrl-C did not end rcmd")
        assert code == ExitStatus.CANCELLED == 130
        assert seen.closed.wait(BOUND)
        assert b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
