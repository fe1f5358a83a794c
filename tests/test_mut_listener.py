"""The listener in-process (make mutate-rest): who is closed to make room, and who is refused,
in naive framing too; a session that fails is one connection lost, not the server. A
BackgroundServer over raw 127.0.0.1 sockets, as in test_mut_server; every wait is for an event.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterator

import pytest
from _mutserver import WAIT, Peer, ServerLog, stop

from rcmd.framing import encode_frame
from rcmd.messages import Error, Hello, Ping, Pong, encode_message
from rcmd.server import BackgroundServer, Server


@pytest.fixture
def sockets() -> Iterator:
    opened: list[socket.socket] = []

    def connect(server: BackgroundServer) -> socket.socket:
        opened.append(socket.create_connection(server.address, timeout=WAIT))
        return opened[-1]

    yield connect
    for sock in opened:
        sock.close()


def naive_run(sock: socket.socket, command: bytes) -> bytes:
    """What the naive server answers to *command*, up to its first send (enough here)."""
    sock.sendall(command)
    return sock.recv(1024)


def test_a_full_naive_server_closes_the_connection_accepted_first(start, sockets, server_log):
    """Naive framing has no handshake: its connections are idle from accept, and the oldest
    goes first (it has no ERROR to say why: the close is all)."""
    server = start(framing="naive", max_connections=2)
    first, second = sockets(server), sockets(server)
    assert naive_run(second, b"echo second") == b"second\n"  # both are served
    assert naive_run(first, b"echo first") == b"first\n"  # first is now heard from last: still the oldest
    third = sockets(server)
    assert first.recv(1024) == b""
    port = first.getsockname()[1]
    server_log.wait_for(rf"^127\.0\.0\.1:{port} closed to make room: server full: closing idle connection$")
    assert naive_run(second, b"echo still") == b"still\n"
    assert naive_run(third, b"echo third") == b"third\n"


def test_a_naive_server_running_a_command_on_every_connection_refuses_without_a_word(
    start, sockets, server_log
):
    server = start(framing="naive", max_connections=1)
    busy = sockets(server)
    busy.sendall(b"exec sleep 60")
    port = busy.getsockname()[1]
    server_log.wait_for(
        rf"^127\.0\.0\.1:{port}: run \(naive\) 'exec sleep 60'$"
    )  # its process is set before this returns
    refused = sockets(server)
    port = refused.getsockname()[1]
    assert refused.recv(1024) == b""  # no reason: a naive client would take it for output
    server_log.wait_for(
        rf"^127\.0\.0\.1:{port} refused: 1 connections, each running a command \(--max-connections\)$"
    )


def test_a_session_that_fails_is_logged_and_the_server_goes_on(start, server_log, monkeypatch):
    from rcmd.server import session

    real = session.PrefixedSession.run
    failed: list[str] = []

    async def run_once_broken(self: session.PrefixedSession) -> None:
        if not failed:
            failed.append(self.peer)
            raise RuntimeError("a bug")
        await real(self)

    monkeypatch.setattr(session.PrefixedSession, "run", run_once_broken)
    server = start()
    broken = socket.create_connection(server.address, timeout=WAIT)
    try:
        assert broken.recv(1024) == b""  # closed
    finally:
        broken.close()
    server_log.wait_for(rf"^{failed[0]}: session failed$")
    server_log.wait_for(rf"^{failed[0]} disconnected$")
    peer = Peer(server.address)
    try:
        peer.send(Ping())
        assert peer.receive() == Pong()
    finally:
        peer.close()


def test_a_tls_connection_still_silent_is_closed_to_make_room(start, sockets, certs, server_log, monkeypatch):
    """A TLS connection whose client has not spoken yet has no session: making room cancels
    its start, which closes it at once (it is not left to be told, later, to use TLS)."""
    from rcmd.server import listener

    monkeypatch.setattr(listener, "TLS_DETECT_WAIT", WAIT)  # only making room ends its wait
    server = start(tls_cert=str(certs / "server.pem"), max_startups=1)
    first = sockets(server)
    port = first.getsockname()[1]
    server_log.wait_for(rf"^127\.0\.0\.1:{port} accepted \(1 connections\)$")
    sockets(server)
    assert first.recv(1024) == b""
    server_log.wait_for(
        rf"^127\.0\.0\.1:{port} closed to make room: server full: closing a connection that has not"
        " finished its handshake$"
    )
    server_log.wait_for(rf"^127\.0\.0\.1:{port}: closed during the TLS handshake$")


def test_what_the_server_does_not_handle_goes_to_the_loops_handler_from_before():
    """An exception asyncio reports that is not a network error goes to the handler the loop
    had before the server started, with that loop."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen: list[tuple[object, dict]] = []
        loop.set_exception_handler(lambda at, context: seen.append((at, context)))
        server = Server(host="127.0.0.1", port=0)
        await server.start()
        try:
            context = {"message": "a bug", "exception": ValueError("v")}
            loop.call_exception_handler(context)
            assert seen == [(loop, context)]
        finally:
            await server.close()
        accepting = asyncio.all_tasks() - {asyncio.current_task()}
        assert accepting  # the accept loop, cancelled; its done callbacks run before wait() returns
        await asyncio.wait(accepting)
        assert seen == [(loop, context)]

    asyncio.run(main())  # not in wait_for(): the only other tasks are the accept loops


def test_a_server_not_started_says_so():
    server = Server(host="127.0.0.1", port=0)
    with pytest.raises(AssertionError, match=r"^start\(\) first$"):
        server.address  # noqa: B018 - the property raises
    with pytest.raises(AssertionError, match=r"^start\(\) first$"):
        asyncio.run(server.serve_forever())


def test_a_tls_client_stalled_in_its_handshake_is_cut_off_at_the_handshake_timeout(
    start, sockets, certs, server_log
):
    server = start(tls_cert=str(certs / "server.pem"), handshake_timeout=0.3)
    stalled = sockets(server)
    stalled.sendall(b"\x16\x03\x01")  # a TLS record begins, and no more comes
    assert stalled.recv(1024) == b""
    port = stalled.getsockname()[1]
    server_log.wait_for(
        rf"^127\.0\.0\.1:{port}: TLS handshake failed: SSL handshake is taking longer than 0\.3 seconds:"
        " aborting the connection$"
    )


def test_a_naive_client_that_half_closes_after_its_command_gets_the_output(start, sockets):
    """`printf 'echo half' | nc -N host port`: the client's FIN ends its input, not the
    connection, and the output of its command still comes back before the close."""
    server = start(framing="naive")
    client = sockets(server)
    client.sendall(b"echo half")
    client.shutdown(socket.SHUT_WR)
    received = b""
    while chunk := client.recv(1024):
        received += chunk
    assert received == b"half\n"


def test_a_tls_connection_that_ended_is_no_longer_counted(start, certs, server_log):
    from rcmd import connect

    server = start(tls_cert=str(certs / "server.pem"), max_connections=1)
    for _ in range(2):
        with connect(*server.address, tls_ca=str(certs / "ca.pem")) as client:
            assert client.run("echo secure").stdout == b"secure\n"
        server_log.wait_for(r"^127\.0\.0\.1:\d+ disconnected$")
    with server_log.changed:
        counts = [line for line in server_log.lines if re.search(r" accepted \(\d+ connections\)$", line)]
    assert [line.rsplit(" ", 3)[1:] for line in counts] == [["accepted", "(1", "connections)"]] * 2
    assert not server_log.has("closed to make room")


def test_an_accept_loop_that_dies_of_a_bug_says_so(start, sockets, server_log, monkeypatch):
    """A bug that escapes the accept loop is logged with its traceback; a loop cancelled as
    the server closes is not an error (asyncio reports none)."""
    import logging

    from rcmd.server import listener

    def broken(self: object, conn: socket.socket, peer: str) -> None:
        conn.close()
        raise RuntimeError("a bug in the listener")

    records: list[logging.LogRecord] = []
    keep = logging.Handler()
    keep.emit = records.append  # type: ignore[method-assign]
    for name in ("rcmd.server", "asyncio"):
        logging.getLogger(name).addHandler(keep)
    try:
        server = start()
        monkeypatch.setattr(listener._Listener, "_start", broken)
        sockets(server)
        server_log.wait_for(r"^an accept loop stopped$")
        (stopped,) = [r for r in records if r.getMessage() == "an accept loop stopped"]
        assert stopped.levelname == "ERROR"
        assert stopped.exc_info is not None
        assert str(stopped.exc_info[1]) == "a bug in the listener"
        stop(server)
        assert [r.getMessage() for r in records if r.name == "asyncio"] == []
    finally:
        for name in ("rcmd.server", "asyncio"):
            logging.getLogger(name).removeHandler(keep)


def test_the_count_follows_accepts_early_closes_and_evictions(start, sockets, server_log):
    """Every accepted socket counts until it is closed, whatever its stage then: one closed
    before its handshake, one closed to make room, one through its handshake. The count each
    accept logs shows what is left counted; only those two are closed to make room."""

    def accepted(port: int) -> str:
        return server_log.wait_for(rf"^127\.0\.0\.1:{port} accepted \((\d+) connections\)$")[1]

    def closed(port: int) -> None:
        server_log.wait_for(rf"^127\.0\.0\.1:{port} disconnected$")

    server = start(max_connections=1, max_startups=1)
    early = sockets(server)
    early_port = early.getsockname()[1]
    assert accepted(early_port) == "1"
    server_log.wait_for(rf"^127\.0\.0\.1:{early_port} connected$")
    early.close()  # before its handshake
    closed(early_port)
    first = Peer(server.address)  # through the handshake: idle
    first_port = first.sock.getsockname()[1]
    first.send(Ping())
    assert first.receive() == Pong()
    assert accepted(first_port) == "1"
    second = Peer(server.address)  # makes room: first is closed
    second_port = second.sock.getsockname()[1]
    assert accepted(second_port) == "2"
    assert first.rest() == [Error("server full: closing idle connection")]
    first.close()
    closed(first_port)
    second.send(Ping())
    assert second.receive() == Pong()
    third = Peer(server.address)
    third_port = third.sock.getsockname()[1]
    assert accepted(third_port) == "2"  # second, and itself
    assert second.rest() == [Error("server full: closing idle connection")]
    second.close()
    third.send(Ping())
    assert third.receive() == Pong()
    third.close()  # through its handshake, and gone by itself
    closed(third_port)
    assert accepted(sockets(server).getsockname()[1]) == "1"
    with server_log.changed:
        made_room = [line for line in server_log.lines if "closed to make room" in line]
    assert [line.split()[0] for line in made_room] == [f"127.0.0.1:{first_port}", f"127.0.0.1:{second_port}"]


@pytest.mark.parametrize("tls", [False, True])
def test_a_connection_whose_set_up_fails_is_logged_and_the_server_goes_on(
    start, certs, server_log, monkeypatch, tls
):
    """A bug past the session's own guard (here, in making the session) costs that connection
    only: logged with its traceback, the socket closed, the next client served."""
    import ssl

    from rcmd import connect
    from rcmd.server import session

    real = session.PrefixedSession.__init__
    failed: list[str] = []

    def init_once_broken(self: session.PrefixedSession, *args: object) -> None:
        if not failed:
            failed.append(str(args[3]))  # its peer
            raise RuntimeError("a bug")
        real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(session.PrefixedSession, "__init__", init_once_broken)
    options = {"tls_cert": str(certs / "server.pem")} if tls else {}
    server = start(**options)
    with socket.create_connection(server.address, timeout=WAIT) as raw:
        if tls:
            context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as secure:
                assert secure.recv(1024) == b""
        else:
            assert raw.recv(1024) == b""
    kind = "TLS connection" if tls else "connection"
    server_log.wait_for(rf"^{failed[0]}: {kind} failed$")
    server_log.wait_for(rf"^{failed[0]} disconnected$")
    tls_options = {"tls_ca": str(certs / "ca.pem")} if tls else {}
    with connect(*server.address, **tls_options) as client:
        assert client.run("echo next").stdout == b"next\n"


# ------------------------------------------------------------------- --startup-grace


def accepted_port(server_log: ServerLog, port: int) -> None:
    server_log.wait_for(rf"^127\.0\.0\.1:{port} accepted ")


def turns(peer: Peer, count: int = 3) -> None:
    """Round trips on a connection through its handshake: the server's loop has taken turns
    (and seen the listener readable) meanwhile."""
    for _ in range(count):
        peer.send(Ping())
        assert peer.receive() == Pong()


@pytest.mark.parametrize("limit", [{"max_startups": 1}, {"max_connections": 2}])
def test_a_new_connection_waits_unaccepted_while_the_startup_is_young(start, sockets, server_log, limit):
    """Full (--max-startups, or --max-connections with a connection in its handshake): the
    next waits in the kernel's queue, the young startup is not closed for it; once the
    startup leaves, the next is accepted at once, long before the grace's end."""
    server = start(startup_grace=60.0, **limit)
    probe = Peer(server.address)  # through its handshake: not a startup
    turns(probe)
    young = sockets(server)
    accepted_port(server_log, young.getsockname()[1])
    waiting = sockets(server)  # connected: the kernel completed it, the server did not accept it
    turns(probe)
    assert not server_log.has(rf"^127\.0\.0\.1:{waiting.getsockname()[1]} accepted ")
    assert not server_log.has("closed to make room")
    young.close()
    accepted_port(server_log, waiting.getsockname()[1])
    assert not server_log.has("closed to make room")
    turns(probe)


def test_a_startup_that_finishes_its_handshake_lets_the_next_in_at_once(start, server_log):
    server = start(startup_grace=60.0, max_startups=1)
    young = Peer(server.address, hello=False)  # accepted: it has the server's HELLO
    waiting = socket.create_connection(server.address, timeout=WAIT)
    try:
        young.send(Hello())
        turns(young)
        accepted_port(server_log, waiting.getsockname()[1])  # before the grace ends (60 s)
        turns(young)  # not closed for it: through its handshake, it is no startup
        assert not server_log.has("closed to make room")
    finally:
        waiting.close()
        young.close()


def test_at_the_grace_end_the_oldest_startup_is_closed_for_the_next(start, sockets, server_log):
    import time

    grace = 0.3
    server = start(startup_grace=grace, max_startups=1)
    since = time.monotonic()  # before its accept: the grace ends no sooner than since + grace
    young = Peer(server.address, hello=False)
    waiting = sockets(server)
    assert young.rest() == [Error("server full: closing a connection that has not finished its handshake")]
    waited = time.monotonic() - since
    assert grace <= waited < grace + WAIT / 2
    accepted_port(server_log, waiting.getsockname()[1])
    server_log.wait_for(
        rf"^127\.0\.0\.1:{young.sock.getsockname()[1]} closed to make room: server full: closing a connection"
    )
    young.close()


def test_without_a_grace_the_oldest_startup_is_closed_at_once(start, sockets, server_log):
    server = start(startup_grace=0, max_startups=1)
    young = Peer(server.address, hello=False)
    waiting = sockets(server)
    assert young.rest() == [Error("server full: closing a connection that has not finished its handshake")]
    accepted_port(server_log, waiting.getsockname()[1])
    young.close()


def test_a_client_part_way_through_a_message_counts_as_active(start):
    """Full of idle connections, the one idle the longest is closed for a new one: one whose
    last read held only part of a frame was active then, though it finished no message."""
    server = start(max_connections=3)
    partial, idle, observer = Peer(server.address), Peer(server.address), Peer(server.address)
    turns(partial)
    turns(idle)  # idle finished a message last
    ping = encode_frame(encode_message(Ping()))
    partial.sock.sendall(ping[:2])  # but partial sent something since
    turns(observer)  # the server has read it meanwhile
    newcomer = Peer(server.address)
    assert idle.rest() == [Error("server full: closing idle connection")]
    partial.sock.sendall(ping[2:])
    assert partial.receive() == Pong()
    turns(newcomer)
    for peer in (idle, partial, observer, newcomer):
        peer.close()
