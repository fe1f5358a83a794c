"""The listener's limits against real servers: every socket counts from accept, a full server
makes room (handshaking first, then idle), accept() out of descriptors pauses and resumes, and
the authentication throttle, with numbers.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import struct
import sys
import time
import weakref

import conftest
import pytest
import trustme
from conftest import frames_until_closed

from rcmd import ServerError, connect
from rcmd.auth import FailureThrottle, throttle_key
from rcmd.framing import NEED_DATA, LengthPrefixFramer, encode_frame
from rcmd.messages import Error, Exit, Hello, Run, Stdout, decode_message, encode_message
from rcmd.server import Server, ServerConfig

HANDSHAKE_EVICTED = Error("server full: closing a connection that has not finished its handshake")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    return folder


def silent_connection(address) -> socket.socket:
    """A connection that says nothing, once the server has it (its HELLO proves it)."""
    sock = socket.create_connection(address, timeout=60)
    framer = LengthPrefixFramer()
    while (frame := framer.next_frame()) is NEED_DATA:
        framer.receive_data(sock.recv(4096))
    assert isinstance(decode_message(frame), Hello)
    return sock


# ------------------------------------------------------------------ making room


def test_a_full_server_closes_a_silent_connection_to_let_an_honest_client_in(server_factory):
    server = server_factory("--max-connections", "4")
    silent = [silent_connection(server.address) for _ in range(4)]
    with connect(*server.address) as client:
        assert client.run("echo ok").stdout == b"ok\n"
    assert frames_until_closed(silent[0]) == [HANDSHAKE_EVICTED]  # the oldest, told why
    server.wait_for_log(r"closed to make room: server full: closing a connection that has not")
    for sock in silent:
        sock.close()


def test_the_idle_connection_quiet_the_longest_goes_before_any_other(server_factory):
    server = server_factory("--max-connections", "2")
    first, second = connect(*server.address), connect(*server.address)
    assert first.run("true").returncode == 0  # now the second is the quieter
    with connect(*server.address) as third:
        assert third.run("echo in").stdout == b"in\n"
        with pytest.raises(ServerError, match="server full: closing idle connection"):
            second._next_event()
        assert first.run("echo still").stdout == b"still\n"
    first.close()
    second.close()


def test_past_max_startups_the_oldest_handshake_is_closed(server_factory):
    server = server_factory("--max-startups", "2")
    first, second, third = (silent_connection(server.address) for _ in range(3))
    assert frames_until_closed(first) == [HANDSHAKE_EVICTED]
    with connect(*server.address) as client:  # its own handshake closes the second
        assert client.run("echo ok").stdout == b"ok\n"
    assert frames_until_closed(second) == [HANDSHAKE_EVICTED]
    third.close()


def test_a_connection_in_its_handshake_is_not_closed_for_room_before_its_grace(server_factory):
    """A flood of connects waits in the kernel's queue until the oldest connection in its
    handshake is --startup-grace old: before, each new one closed the oldest at once."""
    server = server_factory("--max-startups", "1", "--startup-grace", "1.5")
    started = time.monotonic()  # before the server's accept, so its grace ends after this + 1.5
    first = silent_connection(server.address)
    flood = socket.create_connection(server.address, timeout=60)
    assert frames_until_closed(first) == [HANDSHAKE_EVICTED]
    assert time.monotonic() - started >= 1.5
    flood.close()


def test_a_slow_honest_client_finishes_its_handshake_during_a_flood_of_connects(server_factory):
    """An honest client a few round trips away is not pushed out by connections that came
    after it: while it is within its grace, they are not even accepted."""
    server = server_factory("--max-startups", "2", "--startup-grace", "600")
    slow = silent_connection(server.address)  # its HELLO read, its own not sent yet
    other = silent_connection(server.address)  # max-startups reached
    flood = [socket.create_connection(server.address, timeout=60) for _ in range(20)]
    try:
        framer = LengthPrefixFramer()
        slow.sendall(encode_frame(encode_message(Hello())) + encode_frame(encode_message(Run("echo ok"))))
        replies = []
        while not (replies and isinstance(replies[-1], (Exit, Error))):
            if (frame := framer.next_frame()) is NEED_DATA:
                data = slow.recv(4096)
                assert data, f"closed, after {replies}"
                framer.receive_data(data)
            else:
                replies.append(decode_message(frame))
        assert replies[0] == Stdout(b"ok\n")
        assert [type(m) for m in replies] == [Stdout, Exit]
        assert replies[1].returncode == 0
    finally:
        for sock in [slow, other, *flood]:
            sock.close()


def test_hundreds_of_silent_sockets_do_not_lock_an_honest_client_out(server_factory):
    server = server_factory("--handshake-timeout", "600", "--log-level", "info")
    silent = [socket.create_connection(server.address, timeout=60) for _ in range(300)]
    try:
        with connect(*server.address, connect_timeout=60) as client:  # refused at once before
            assert client.run("echo ok").stdout == b"ok\n"
    finally:
        for sock in silent:
            sock.close()


def test_stalled_tls_handshakes_count_from_accept(server_factory, certs):
    server = server_factory(
        "--tls-cert", str(certs / "server.pem"), "--max-connections", "3", "--handshake-timeout", "600"
    )
    stalled = []
    for n in range(1, 4):
        sock = socket.create_connection(server.address, timeout=60)
        sock.sendall(b"\x16\x03\x01")  # the start of a ClientHello, and no more
        stalled.append(sock)
        server.wait_for_log(rf"accepted \({n} connections\)")
    with connect(*server.address, tls_ca=str(certs / "ca.pem")) as client:
        assert client.run("echo ok").stdout == b"ok\n"
    try:
        assert stalled[0].recv(100) == b""  # closed to make room (no plaintext reason mid-TLS)
    except ConnectionResetError:
        pass
    server.wait_for_log(r"closed during the TLS handshake")
    for sock in stalled:
        sock.close()


# ------------------------------------------------------------------ accept() out of descriptors

#: The server's own descriptors are about 10: this leaves a few for connections.
FD_LIMIT = 24


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_accept_out_of_descriptors_pauses_then_serves_again(server_factory, certs, monkeypatch, tls):
    limited = f"import resource; resource.setrlimit(resource.RLIMIT_NOFILE, ({FD_LIMIT}, {FD_LIMIT}))"
    entry = "from rcmd.cli import server_entry; server_entry()"
    monkeypatch.setattr(conftest, "SERVER_ARGV", [sys.executable, "-c", f"{limited}; {entry}"])
    args = ["--handshake-timeout", "600", "--log-level", "info"]
    server = server_factory(*args, *(["--tls-cert", str(certs / "server.pem")] if tls else []))
    holders = []
    try:
        for _ in range(FD_LIMIT + 6):
            sock = socket.create_connection(server.address, timeout=60)
            sock.sendall(b"\x16" if tls else b"")  # TLS: held in the handshake, not told off
            holders.append(sock)
        server.wait_for_log(r"Too many open files")
    finally:
        for sock in holders:
            sock.close()
    options = {"tls_ca": str(certs / "ca.pem")} if tls else {}
    with connect(*server.address, connect_timeout=30, **options) as client:
        assert client.run("echo back").stdout == b"back\n"
    assert server.proc.poll() is None
    assert "Traceback" not in server.log()


def test_tls_clients_that_reset_leave_no_unhandled_exception(server_factory, certs):
    server = server_factory("--tls-cert", str(certs / "server.pem"))
    linger_zero = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # close() sends RST
    for n in range(40):
        sock = socket.create_connection(server.address, timeout=60)
        if n % 2:
            sock.sendall(b"\x16\x03\x01\x00")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_zero)
        sock.close()
    with connect(*server.address, tls_ca=str(certs / "ca.pem")) as client:
        assert client.run("echo ok").stdout == b"ok\n"
    server.stop()
    log = server.log()
    assert "never retrieved" not in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_accepted_connections_send_without_waiting_for_acks(certs, tls):
    """TCP_NODELAY on every accepted socket: with Nagle on, a frame right behind another (an
    EXIT behind a command's output, FILE_DATA behind GET_READY) waited for the client's
    delayed ACK, and `echo hi` took 44 ms on an open connection instead of 1. asyncio sets
    it only on sockets whose proto is IPPROTO_TCP, which socket.create_server's are not."""

    async def scenario() -> int:
        server = Server(ServerConfig(port=0, tls_cert=str(certs / "server.pem") if tls else None))
        await server.start()
        try:
            options = {"tls_ca": str(certs / "ca.pem")} if tls else {}
            client = await asyncio.to_thread(connect, *server.address, **options)
            try:
                (session,) = server._sessions
                sock = session.writer.get_extra_info("socket")
                return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            finally:
                await asyncio.to_thread(client.close)
        finally:
            await server.close()

    assert asyncio.run(scenario()) != 0


def test_a_naive_server_keeps_nagle_on_as_the_tutorial_does():
    """Naive framing shows sticky packets faithfully: Nagle's coalescing is one of their causes."""

    async def scenario() -> int:
        server = Server(ServerConfig(port=0, framing="naive"))
        await server.start()
        try:
            with socket.create_connection(server.address, timeout=30):
                while not server._sessions:
                    await asyncio.sleep(0.01)  # a condition, checked: the server has it
                (session,) = server._sessions
                sock = session.writer.get_extra_info("socket")
                return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            await server.close()

    assert asyncio.run(scenario()) == 0


# ------------------------------------------------------------------ memory held


def test_a_client_gone_mid_command_leaves_no_session_alive():
    """The idle timer was re-armed as the killed command ended, and kept the session (and its
    buffers) alive for the whole --idle-timeout after its client had gone."""

    async def scenario() -> object | None:
        server = Server(ServerConfig(port=0, idle_timeout=3600.0))
        await server.start()
        try:
            client = await asyncio.to_thread(connect, *server.address)
            await asyncio.to_thread(client.stream, "sleep 60")
            while not any(getattr(s, "command", None) for s in server._sessions):
                await asyncio.sleep(0.01)  # a condition, checked: the command runs
            session = weakref.ref(next(iter(server._sessions)))
            await asyncio.to_thread(client.close)
            while server._sessions or server._tasks:
                await asyncio.sleep(0.01)  # a condition: the session has ended
            gc.collect()
            return session()  # checked while the loop runs: closing it drops its timers
        finally:
            await server.close()

    assert asyncio.run(scenario()) is None


@pytest.mark.parametrize("client", ["silent", "reset", "command"])
def test_a_finished_connection_is_freed_without_the_cyclic_gc(client):
    """Each connection was a reference cycle (a session and its FileService; the listener's
    handshake callback; a reset's exception, kept by the transport with our frames in its
    traceback), freed only by the cyclic GC: collections of several ms during a flood."""

    async def scenario() -> list[str]:
        server = Server(ServerConfig(port=0))
        await server.start()
        held: list[weakref.ref[object]] = []

        class Recording(set):
            def add(self, session):
                held.extend(weakref.ref(part) for part in (session, session.reader, session.writer))
                super().add(session)

        server._sessions = Recording()

        def act() -> None:
            if client == "command":
                with connect(*server.address) as connection:
                    connection.run("true")
                return
            sock = socket.create_connection(server.address, timeout=30)
            sock.recv(4)  # the start of the server's HELLO: its session exists
            if client == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()

        gc.collect()
        gc.disable()
        try:
            await asyncio.to_thread(act)
            deadline = time.monotonic() + 10
            while any(ref() is not None for ref in held) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)  # a condition, checked: what the connection held is gone
            return [type(ref()).__name__ for ref in held if ref() is not None] + [str(len(held))]
        finally:
            gc.enable()
            await server.close()

    assert asyncio.run(scenario()) == ["3"]


# ------------------------------------------------------------------ the throttle, with numbers


def test_throttle_survives_ten_thousand_failures_with_a_capped_delay():
    throttle = FailureThrottle(base=0.25, max_delay=8.0, forget_after=300.0)
    now = 0.0
    for _ in range(10_000):
        delay = throttle.failed("10.0.0.1", now)
        now += 1.0  # one a second: never quiet for 300 s, so never forgiven
    assert delay == 8.0


def test_throttle_locks_the_address_so_parallel_guesses_take_turns():
    throttle = FailureThrottle(base=0.25, max_delay=8.0)
    assert throttle.wait("10.0.0.1", now=0.0) == 0.0
    now, checked = 0.0, []
    for _ in range(10):  # each guess is checked only when wait() says 0
        now += throttle.wait("10.0.0.1", now)
        checked.append(now)
        throttle.failed("10.0.0.1", now)
    assert checked == [0.0, 0.25, 0.75, 1.75, 3.75, 7.75, 15.75, 23.75, 31.75, 39.75]
    guesses_in_the_last_minute = sum(1 for t in checked if t > checked[-1] - 60)
    assert guesses_in_the_last_minute == 10  # at most 0.25+0.5+1+2+4 s, then one per 8 s
    assert throttle.wait("10.0.0.2", now) == 0.0  # per address


def test_throttle_forgets_only_with_time():
    throttle = FailureThrottle(base=0.25, max_delay=8.0, forget_after=300.0)
    for t in range(6):
        throttle.failed("10.0.0.1", now=float(t * 10))
    assert not hasattr(throttle, "succeeded")  # nothing but time resets the count
    assert throttle.failed("10.0.0.1", now=50.0 + 299) == 8.0
    assert throttle.failed("10.0.0.1", now=349.0 + 301) == 0.25


def test_throttle_counts_an_ipv6_machine_by_its_slash_64():
    assert throttle_key("2001:db8:1:2:aaaa::1") == throttle_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert throttle_key("::ffff:10.0.0.1") == throttle_key("10.0.0.1") == "10.0.0.1"
    assert throttle_key("fe80::1%eth0") == "fe80::/64"
    assert throttle_key("not an address") == "not an address"
