"""A live server under hostile input: garbage, truncated frames, huge length prefixes, unknown
message types, messages in the wrong state, commands before authentication, thousands of
connections opened and dropped. It answers with a protocol error or closes; it never crashes,
never keeps growing in memory or processes, and an honest client alongside gets every output
exactly. Every input is a real TCP connection to the real server.
"""

from __future__ import annotations

import itertools
import re
import socket
import threading
from pathlib import Path

import pytest
from conftest import wait_gone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rcmd import connect
from rcmd.framing import CLOSED, NEED_DATA, LengthPrefixFramer, encode_frame
from rcmd.messages import (
    AuthOk,
    Cancel,
    Error,
    Exit,
    Hello,
    MessageType,
    Run,
    Stderr,
    Stdin,
    StdinEnd,
    Stdout,
    decode_message,
    encode_message,
)

EXAMPLES = 500  # per strategy (five of them; the authentication one has its own count)
HOSTILE = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SECRET = "hostile-suite-secret-0123456789"
HELLO = encode_frame(encode_message(Hello()))


@pytest.fixture(scope="module")
def target(server_factory, tmp_path_factory):
    secret = tmp_path_factory.mktemp("hostile") / "secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    # The authenticating server runs every command through a shell that first leaves a mark,
    # and logs at info, which records every command before it starts: either shows any
    # command that ran, whatever it was.
    marker = secret.parent / "a-command-ran"
    shell = secret.parent / "witness-shell"
    shell.write_text(f'#!/bin/sh\necho "$@" >> {marker}\nexec /bin/sh "$@"\n')
    shell.chmod(0o755)
    server = server_factory("--handshake-timeout", "2", "--log-level", "warning")
    auth = server_factory(
        "--handshake-timeout", "2", "--log-level", "info", "--secret-file", str(secret), "--shell", str(shell)
    )
    auth.marker = marker
    baseline = {s: s.memory_kib() for s in (server, auth)}
    yield server, auth
    for s in (server, auth):
        assert s.proc.poll() is None, f"the server died:\n{s.log()[-3000:]}"
        grew = s.memory_kib() - baseline[s]
        assert grew < 20 * 1024, f"server memory grew by {grew} KiB under hostile input"
        assert "Traceback" not in s.log(), s.log()[-3000:]


_sources = itertools.count(1)


def attack(address, data: bytes, *, new_source: bool = False) -> bytes:
    """Send *data*, close our side, and read until the server closes. Returns what it sent.

    *new_source* connects from a fresh 127.x.y.z address (all of 127/8 is loopback), as
    attacks from many machines would come: the server slows failures down per address.
    """
    received = b""
    source = None
    if new_source:
        n = next(_sources)
        source = (f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255 or 1}", 0)
    with socket.create_connection(address, timeout=15, source_address=source) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server already hung up on us: fine
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return received


def server_messages(reply: bytes) -> list:
    """*reply* as rcmd messages: it must be whole frames of valid messages, HELLO first, only
    what a server may send, and nothing after an ERROR (the sender's last message)."""
    framer = LengthPrefixFramer()
    framer.receive_data(reply)
    framer.receive_data(b"")
    messages = []
    while (frame := framer.next_frame()) is not CLOSED:
        assert frame is not NEED_DATA
        messages.append(decode_message(frame))
    assert messages, "the server did not even send its HELLO"
    assert isinstance(messages[0], Hello)
    assert not any(isinstance(m, Hello) for m in messages[1:])
    assert all(isinstance(m, (Stdout, Stderr, Exit, Error, AuthOk)) for m in messages[1:]), messages
    assert not any(isinstance(m, Error) for m in messages[:-1]), messages
    return messages


def refused_before_any_command(reply: bytes) -> None:
    """The server sent its HELLO and then, at most, one ERROR: nothing ran."""
    messages = server_messages(reply)
    assert len(messages) <= 2, messages
    assert all(isinstance(m, Error) for m in messages[1:]), messages


HARMLESS_COMMANDS = st.sampled_from(["true", "echo hostile", "sleep 5", "cat", "exit 3"])
VALID_MESSAGES = st.one_of(
    st.builds(Hello, protocol=st.integers(0, 3)),
    st.builds(Run, HARMLESS_COMMANDS, stdin=st.booleans(), timeout=st.none() | st.floats(0.01, 5)),
    st.builds(Stdin, st.binary(max_size=64)),
    st.just(StdinEnd()),
    st.just(Cancel()),
    st.builds(Stdout, st.binary(max_size=64)),
    st.builds(Stderr, st.binary(max_size=64)),
    st.builds(Exit, st.integers(-9, 255)),
)


def frames(messages) -> bytes:
    return b"".join(encode_frame(encode_message(m)) for m in messages)


@HOSTILE
@given(st.binary(max_size=4096))
def test_garbage(target, data):
    refused_before_any_command(attack(target[0].address, data))


@HOSTILE
@given(st.binary(max_size=2048))
def test_garbage_after_a_valid_hello(target, data):
    # Random bytes never make a RUN's JSON body: nothing runs, whatever frames they form.
    refused_before_any_command(attack(target[0].address, HELLO + data))


@HOSTILE
@given(st.integers((1 << 20) + 1, (1 << 32) - 1), st.binary(max_size=256), st.booleans())
def test_huge_length_prefixes(target, length, tail, after_hello):
    reply = attack(target[0].address, (HELLO if after_hello else b"") + length.to_bytes(4, "big") + tail)
    refused_before_any_command(reply)
    assert "exceeds the maximum" in server_messages(reply)[-1].reason


@HOSTILE
@given(
    st.integers(0, 255).filter(lambda t: t not in {int(kind) for kind in MessageType}),
    st.binary(max_size=128),
)
def test_unknown_message_types(target, kind, body):
    reply = attack(target[0].address, HELLO + encode_frame(bytes([kind]) + body))
    refused_before_any_command(reply)
    assert server_messages(reply)[-1].reason.startswith(f"unknown message type 0x{kind:02x}")


@HOSTILE
@given(st.lists(VALID_MESSAGES, max_size=8), st.integers(0, 64))
def test_messages_in_any_order_and_truncated(target, messages, cut):
    data = frames(messages)
    reply = server_messages(attack(target[0].address, data[: max(0, len(data) - cut)]))
    runs = sum(isinstance(m, Run) for m in messages)
    assert sum(isinstance(m, Exit) for m in reply) <= runs  # no EXIT without a RUN
    if runs == 0:
        assert all(isinstance(m, Error) for m in reply[1:]), reply  # no RUN: no output either


AUTH_EXAMPLES = 40  # each failure is answered after a delay (0.25 s for a new address)


@settings(HOSTILE, max_examples=AUTH_EXAMPLES)
@given(st.lists(VALID_MESSAGES, min_size=1, max_size=6), st.binary(max_size=64))
def test_commands_before_authentication(target, messages, mac_garbage):
    hello = Hello(nonce="ab" * 32, mac=(mac_garbage.hex() + "00" * 32)[:64])
    auth = target[1]
    logged = len(auth.log())
    reply = attack(auth.address, frames([hello, *messages]), new_source=True)
    assert server_messages(reply)[1:] == [Error("authentication failed")]
    # Whatever command it was: it was not started (the log records each one before it
    # starts) and did not run (the shell marks each command it runs).
    assert not re.search(r": (run|cd) ", auth.log()[logged:]), auth.log()[logged:]
    assert not auth.marker.exists(), auth.marker.read_text()


def test_the_witnesses_see_a_command_that_does_run(target):
    """The two checks above can fail: an authenticated command leaves both marks."""
    auth = target[1]
    with connect(*auth.address, secret=SECRET) as client:
        assert client.run("true").returncode == 0
    assert re.search(r": run 'true'", auth.log())
    assert "-c true" in auth.marker.read_text()
    auth.marker.unlink()  # for the tests that run after this one


def test_thousands_of_connections_opened_and_dropped_while_an_honest_client_works(target):
    server, _ = target
    failures: list[str] = []
    stop = threading.Event()

    def honest() -> None:
        with connect(*server.address) as client:
            n = 0
            while not stop.is_set() or n < 20:
                result = client.run(f"seq 1 {200 + n} | sed 's/^/{n}:/'")
                expected = b"".join(b"%d:%d\n" % (n, i) for i in range(1, 201 + n))
                if (result.returncode, result.stdout) != (0, expected):
                    failures.append(f"command {n} got {len(result.stdout)} bytes, status {result.returncode}")
                n += 1

    worker = threading.Thread(target=honest)
    worker.start()
    try:
        for i in range(2000):
            with socket.create_connection(server.address, timeout=15) as sock:
                if i % 3 == 1:
                    sock.sendall(HELLO[: i % len(HELLO)])  # a partial handshake, then gone
                elif i % 3 == 2:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    # linger 0: close sends RST instead of FIN
    finally:
        stop.set()
        worker.join(120)
    assert not failures, failures


def test_no_process_is_left_behind(target):
    for server in target:
        children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
        for pid in map(int, children):
            if b"watchdog_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue  # lives as long as the server, to kill its commands if it is killed
            assert wait_gone(pid, timeout=30), f"the server's child {pid} is still running"
