"""The server's TLS transport (rcmd.server.tls) in this process: accept_tls() on one end of a
real 127.0.0.1 connection, a client of the test's own on the other, so mutation testing sees
the transport run and each test can send what a TLS library would not (a FIN with no
close_notify, two records in one segment, a forged record, half a ClientHello).

The client is an ssl.SSLObject over memory BIOs on a blocking socket, run in a worker thread
(asyncio.to_thread) while the server's loop runs in the test's. The application protocol
records its callbacks in a queue; every wait is for one of them, or for the client's socket.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import select
import socket
import ssl
import struct
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from _mutserver import WAIT, ServerLog

from rcmd.server import tls
from rcmd.server.tls import TlsTransport, accept_tls

LINGER_ZERO = struct.pack("ii", 1, 0)  # close() sends RST
CLOSE_NOTIFY, BARE_CLOSE = "close_notify", "a close without close_notify"


class Client:
    """A TLS client over a plain socket: the records it sends and receives are in reach."""

    def __init__(
        self,
        sock: socket.socket,
        ca: Path,
        *,
        cert: Path | None = None,
        maximum_version: ssl.TLSVersion | None = None,
    ) -> None:
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        context = ssl.create_default_context(cafile=str(ca))
        if cert is not None:
            context.load_cert_chain(str(cert))
        if maximum_version is not None:
            context.maximum_version = maximum_version
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="127.0.0.1")

    def flush(self) -> None:
        if self.outgoing.pending:
            self.sock.sendall(self.outgoing.read())

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if data:
            self.incoming.write(data)
        else:
            self.incoming.write_eof()

    def handshake(self, *, flush: bool = True) -> None:
        """The client's side of the handshake; its last flight is left unsent unless *flush*."""
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self._fill()
        if flush:
            self.flush()

    def send(self, *records: bytes) -> None:
        """Each of *records* in a TLS record of its own, all in one sendall."""
        for record in records:
            self.tls.write(record)
        self.flush()

    def read(self, size: int) -> bytes:
        """*size* bytes of plaintext; raises SSLZeroReturnError on the server's close_notify,
        SSLEOFError on a close without it."""
        data = b""
        while len(data) < size:
            try:
                data += self.tls.read(size - len(data))
            except ssl.SSLWantReadError:
                self._fill()
        return data

    def end(self) -> str:
        """Read to the end: CLOSE_NOTIFY, or BARE_CLOSE (the socket closed without it)."""
        while True:
            try:
                data = self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._fill()
            except ssl.SSLEOFError:
                return BARE_CLOSE
            except ssl.SSLZeroReturnError:  # after the client's own close_notify
                return CLOSE_NOTIFY
            else:
                assert data == b"", f"data before the end: {data!r}"
                return CLOSE_NOTIFY

    def close_notify(self) -> None:
        """Send the client's close_notify (not waiting for the server's)."""
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        self.flush()

    def fin(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)


class App(asyncio.Protocol):
    """An application protocol that records each callback as an event."""

    def __init__(self, *, keep_open: bool = True, pause_on_data: bool = False) -> None:
        self.events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.keep_open = keep_open
        self.pause_on_data = pause_on_data
        self.transport: TlsTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, TlsTransport)
        self.transport = transport
        self.events.put_nowait(("made",))

    def data_received(self, data: bytes) -> None:
        self.events.put_nowait(("data", data))
        if self.pause_on_data:
            assert self.transport is not None
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.events.put_nowait(("eof",))
        return self.keep_open

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.put_nowait(("lost", exc))

    def pause_writing(self) -> None:
        self.events.put_nowait(("pause_writing",))

    def resume_writing(self) -> None:
        self.events.put_nowait(("resume_writing",))

    async def next(self) -> tuple[Any, ...]:
        return await asyncio.wait_for(self.events.get(), WAIT)

    async def data(self, size: int) -> bytes:
        """Data events up to *size* bytes (records may come in one event or several)."""
        received = b""
        while len(received) < size:
            event = await self.next()
            assert event[0] == "data", event
            received += event[1]
        return received


def server_context(certs: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certs / "server.pem"))
    if client_ca is not None:  # asks for a client certificate signed by it
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(str(client_ca))
    return context


def connected_sockets() -> tuple[socket.socket, socket.socket]:
    """(the server's accepted socket, the client's), over 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname()[:2], timeout=WAIT)
        accepted, _ = listener.accept()
    accepted.setblocking(False)
    return accepted, client


async def opened(
    certs: Path,
    app: App,
    *,
    flush: bool = True,
    timeout: float | None = WAIT,
    context: ssl.SSLContext | None = None,
    **client_options: Any,
) -> tuple[TlsTransport, Client]:
    """A connection through accept_tls(): its transport, connected to *app*, and the client."""
    accepted, sock = connected_sockets()
    client = Client(sock, certs / "ca.pem", **client_options)
    transport, _ = await asyncio.gather(
        accept_tls(accepted, context or server_context(certs), app, timeout),
        asyncio.to_thread(client.handshake, flush=flush),
    )
    assert await app.next() == ("made",)
    return transport, client


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run *scenario* on a new loop; nothing may reach the loop's exception handler (an
    exception in a protocol callback, which asyncio reports there and goes on)."""

    async def checked() -> None:
        reported: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context))
        await asyncio.wait_for(scenario(), 6 * WAIT)
        assert reported == []

    asyncio.run(checked())


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait until *condition()* (checked every 10 ms on the loop), else fail saying *what*."""
    for _ in range(int(WAIT * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


# ------------------------------------------------------------------ the handshake pool


def test_handshake_threads_leave_one_core_to_the_loop(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert tls.handshake_threads() == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5})
    assert tls.handshake_threads() == 1


def test_handshake_threads_without_affinity_count_the_cores(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert tls.handshake_threads() == 3
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert tls.handshake_threads() == 1


def test_one_pool_per_process_of_named_threads(monkeypatch):
    monkeypatch.setattr(tls, "handshake_threads", lambda: 3)
    monkeypatch.setattr(tls, "_pool", None)
    pool = tls._handshake_pool()
    assert tls._handshake_pool() is pool
    assert pool._max_workers == 3
    name = asyncio.run(tls.run_off_loop(lambda: threading.current_thread().name))
    assert name.startswith("rcmd-tls")
    assert asyncio.run(tls.run_off_loop(divmod, 7, 2)) == (3, 1)
    forked = os.getpid() + 1  # as a fork's child sees it
    monkeypatch.setattr(os, "getpid", lambda: forked)
    child_pool = tls._handshake_pool()
    assert child_pool is not pool
    assert tls._handshake_pool() is child_pool
    pool.shutdown()
    child_pool.shutdown()


# ------------------------------------------------------------------ handshakes


def test_data_both_ways_and_what_the_transport_tells(certs):
    async def scenario() -> None:
        app = App()
        transport, client = await opened(certs, app)
        await asyncio.to_thread(client.send, b"ping")
        assert await app.data(4) == b"ping"
        transport.write(b"")
        transport.write(b"pong")
        assert await asyncio.to_thread(client.read, 4) == b"pong"
        ssl_object = transport.get_extra_info("ssl_object")
        assert isinstance(ssl_object, ssl.SSLObject)
        assert ssl_object.server_side
        assert transport.get_extra_info("sslcontext").protocol is ssl.PROTOCOL_TLS_SERVER
        assert transport.get_extra_info("peercert", "default") is None  # no client certificate
        assert transport.get_extra_info("cipher") == ssl_object.cipher()
        assert transport.get_extra_info("cipher")[1] in ("TLSv1.2", "TLSv1.3")
        assert transport.get_extra_info("compression", "default") is None  # OpenSSL's, not the socket's
        assert transport.get_extra_info("peername") == client.sock.getsockname()
        assert transport.get_extra_info("no such thing", "default") == "default"
        assert transport.get_protocol() is app
        other = App()
        transport.set_protocol(other)
        assert transport.get_protocol() is other
        transport.set_protocol(app)
        assert not transport.can_write_eof()
        with pytest.raises(
            NotImplementedError, match=r"^TLS has no half-close: close\(\) sends close_notify$"
        ):
            transport.write_eof()
        assert not transport.is_closing()
        assert transport.is_reading()
        transport.close()
        assert transport.is_closing()
        assert not transport.is_reading()
        transport.write(b"late")  # after the close: goes nowhere, raises nothing
        transport.close()
        assert await asyncio.to_thread(client.end) == CLOSE_NOTIFY
        assert await app.next() == ("lost", None)

    run(scenario)


def test_what_the_client_sent_behind_its_last_flight_arrives_with_it(certs):
    """The client's Finished, a record of data and the FIN in one segment, before the
    handshake's last step: the application protocol gets the data and the EOF at once."""

    async def scenario() -> None:
        app = App()
        accepted, sock = connected_sockets()
        client = Client(sock, certs / "ca.pem")

        def finish() -> None:
            client.handshake(flush=False)
            client.send(b"early")
            client.fin()

        transport, _ = await asyncio.gather(
            accept_tls(accepted, server_context(certs), app, WAIT), asyncio.to_thread(finish)
        )
        assert [await app.next() for _ in range(3)] == [("made",), ("data", b"early"), ("eof",)]
        transport.close()
        assert await asyncio.to_thread(client.end) == BARE_CLOSE  # no close_notify after a FIN
        assert await app.next() == ("lost", None)

    run(scenario)


def test_two_records_in_one_segment_come_in_one_call(certs):
    async def scenario() -> None:
        app = App()
        transport, client = await opened(certs, app)
        await asyncio.to_thread(client.send, b"one", b"two")
        assert await app.next() == ("data", b"onetwo")
        transport.close()

    run(scenario)


def test_the_clients_close_notify_is_an_eof_and_answered_by_the_close(certs):
    """eof_received() returning false closes the transport, which sends close_notify."""

    async def scenario() -> None:
        app = App(keep_open=False)
        transport, client = await opened(certs, app)
        await asyncio.to_thread(client.close_notify)
        assert await app.next() == ("eof",)
        assert transport.is_closing()
        assert await asyncio.to_thread(client.end) == CLOSE_NOTIFY
        assert await app.next() == ("lost", None)

    run(scenario)


def test_after_the_clients_close_notify_the_server_may_still_write(certs):
    async def scenario() -> None:
        app = App(keep_open=True)
        transport, client = await opened(certs, app)
        await asyncio.to_thread(client.send, b"last words")
        assert await app.data(10) == b"last words"
        await asyncio.to_thread(client.close_notify)
        assert await app.next() == ("eof",)
        assert not transport.is_closing()
        transport.write(b"answer")
        assert await asyncio.to_thread(client.read, 6) == b"answer"
        transport.close()
        assert await asyncio.to_thread(client.end) == CLOSE_NOTIFY
        assert await app.next() == ("lost", None)

    run(scenario)


def test_a_fin_without_close_notify_is_an_eof_and_the_socket_stays_open_for_writing(certs):
    async def scenario() -> None:
        app = App(keep_open=True)
        transport, client = await opened(certs, app)
        await asyncio.to_thread(client.send, b"data")
        assert await app.data(4) == b"data"
        await asyncio.to_thread(client.fin)
        assert await app.next() == ("eof",)
        transport.write(b"still")
        assert await asyncio.to_thread(client.read, 5) == b"still"
        transport.close()  # the client sent no close_notify: none is sent back
        assert await asyncio.to_thread(client.end) == BARE_CLOSE
        assert await app.next() == ("lost", None)

    run(scenario)


def test_a_forged_record_closes_the_connection_with_the_error(certs):
    async def scenario() -> None:
        log = ServerLog()
        logger = tls.log
        level = logger.level
        logger.addHandler(log)
        logger.setLevel("DEBUG")
        try:
            app = App()
            transport, client = await opened(certs, app)
            forged = bytes((23, 3, 3, 0, 40)) + os.urandom(40)  # application data, bad tag
            await asyncio.to_thread(client.sock.sendall, forged)
            event, exc = await app.next()
            assert event == "lost"
            assert isinstance(exc, ssl.SSLError)
            assert transport.is_closing()
            log.wait_for(f"^{re.escape(f'TLS error after the handshake: {exc}')}$")
            transport.write(b"nothing")  # closed: no error
            assert await asyncio.to_thread(client.end) == BARE_CLOSE
        finally:
            logger.removeHandler(log)
            logger.setLevel(level)

    run(scenario)


def test_a_write_that_fails_closes_the_connection_with_the_error(certs):
    async def scenario() -> None:
        log = ServerLog()
        logger = tls.log
        level = logger.level
        logger.addHandler(log)
        logger.setLevel("DEBUG")
        try:
            app = App()
            transport, client = await opened(certs, app)
            failure = ssl.SSLError(1, "a write that failed")
            ssl_object = transport.get_extra_info("ssl_object")

            def fail(data: bytes) -> int:
                raise failure

            ssl_object.write = fail
            transport.write(b"lost")
            assert await app.next() == ("lost", failure)
            assert transport.is_closing()
            log.wait_for(r"^TLS error writing: a write that failed$")
            assert await asyncio.to_thread(client.end) == BARE_CLOSE
        finally:
            logger.removeHandler(log)
            logger.setLevel(level)

    run(scenario)


def test_abort_resets_the_connection(certs):
    async def scenario() -> None:
        app = App()
        transport, client = await opened(certs, app)
        transport.abort()
        assert transport.is_closing()
        assert await app.next() == ("lost", None)
        assert await asyncio.to_thread(client.end) == BARE_CLOSE

    run(scenario)


def test_reading_paused_holds_the_data_until_resumed(certs):
    async def scenario() -> None:
        app = App(pause_on_data=True)
        transport, client = await opened(certs, app)
        assert transport.is_reading()
        await asyncio.to_thread(client.send, b"first")
        assert await app.next() == ("data", b"first")
        assert not transport.is_reading()
        await asyncio.to_thread(client.send, b"second")
        await asyncio.to_thread(client.fin)
        app.pause_on_data = False
        transport.resume_reading()
        assert transport.is_reading()
        assert await app.data(6) == b"second"
        assert await app.next() == ("eof",)
        transport.close()

    run(scenario)


class PausedFromTheStart(App):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert isinstance(transport, TlsTransport)
        transport.pause_reading()


async def paused_with_early_data(certs: Path) -> tuple[PausedFromTheStart, TlsTransport]:
    """A TLS connection whose application paused reading as it connected, and whose client
    sent b"early" right behind its handshake; its ("made",) event already taken."""
    app = PausedFromTheStart()
    accepted, sock = connected_sockets()
    client = Client(sock, certs / "ca.pem")

    def finish() -> None:
        client.handshake(flush=False)
        client.send(b"early")

    transport, _ = await asyncio.gather(
        accept_tls(accepted, server_context(certs), app, WAIT), asyncio.to_thread(finish)
    )
    assert await app.next() == ("made",)
    return app, transport


def test_records_left_in_the_buffer_while_paused_are_read_on_resume(certs):
    """Data that came with the handshake's end, to an application that paused reading as it
    connected: resume_reading() hands it over without any more bytes from the socket."""

    async def scenario() -> None:
        app, transport = await paused_with_early_data(certs)
        assert app.events.empty()  # start() read nothing for it
        assert not transport.is_reading()
        transport.resume_reading()
        assert await app.next() == ("data", b"early")
        transport.close()

    run(scenario)


def test_writes_the_client_does_not_read_pause_the_application_then_resume_it(certs):
    async def scenario() -> None:
        app = App()
        transport, client = await opened(certs, app)
        transport.set_write_buffer_limits(high=48 * 1024, low=8 * 1024)  # not asyncio's 4:1
        assert transport.get_write_buffer_limits() == (8 * 1024, 48 * 1024)
        chunk = b"x" * 65536
        written = 0
        while app.events.empty():
            transport.write(chunk)
            written += len(chunk)
            assert written < 64 * 1024 * 1024, "never paused"
        assert await app.next() == ("pause_writing",)
        assert transport.get_write_buffer_size() > 48 * 1024
        assert await asyncio.to_thread(client.read, written) == b"x" * written
        assert await app.next() == ("resume_writing",)
        transport.close()

    run(scenario)


# ------------------------------------------------------------------ handshakes that fail


async def failed_handshake(
    certs: Path, client_does: Callable[[socket.socket], None], timeout: float | None = WAIT
) -> tuple[BaseException, bytes]:
    """What accept_tls() raised and what the client then read, after *client_does(sock)*."""
    accepted, sock = connected_sockets()
    app = App()
    handshake = asyncio.ensure_future(accept_tls(accepted, server_context(certs), app, timeout))
    await asyncio.to_thread(client_does, sock)
    try:
        await handshake
    except BaseException as exc:  # what it raised is the result
        raised = exc
    else:
        raise AssertionError("the handshake succeeded")
    if sock.fileno() == -1:
        left = b"closed by the client"
    else:
        try:
            left = await asyncio.to_thread(sock.recv, 1024)
        except ConnectionResetError:
            left = b"reset"
        sock.close()
    assert app.events.empty()  # never connected
    return raised, left


def until_closed(sock: socket.socket) -> bool:
    """Read *sock* until the server closes it (True), or resets it."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def client_hello() -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    hello = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        hello.do_handshake()
    return outgoing.read()


def test_a_silent_client_is_cut_off_at_the_timeout(certs):
    async def scenario() -> None:
        exc, left = await failed_handshake(certs, lambda sock: None, timeout=0.2)
        assert isinstance(exc, ConnectionAbortedError)
        assert str(exc) == "SSL handshake is taking longer than 0.2 seconds: aborting the connection"
        assert left in (b"", b"reset")

    run(scenario)


def test_half_a_client_hello_then_the_fin(certs):
    async def scenario() -> None:
        def half_then_fin(sock: socket.socket) -> None:
            sock.sendall(client_hello()[:20])
            sock.shutdown(socket.SHUT_WR)

        exc, left = await failed_handshake(certs, half_then_fin)
        assert type(exc) is ConnectionResetError
        assert str(exc) == "the client closed the connection"
        assert left in (b"", b"reset")

    run(scenario)


def test_a_client_that_resets_in_its_handshake(certs):
    async def scenario() -> None:
        def reset(sock: socket.socket) -> None:
            sock.sendall(client_hello()[:20])
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
            sock.close()  # RST

        exc, _ = await failed_handshake(certs, reset)
        assert type(exc) is ConnectionResetError
        assert str(exc) == "[Errno 104] Connection reset by peer"  # the socket's own error

    run(scenario)


def test_garbage_instead_of_a_client_hello_is_an_ssl_error_and_the_connection_is_aborted(certs):
    async def scenario() -> None:
        exc, left = await failed_handshake(certs, lambda sock: sock.sendall(b"\x16\x03\x01\x00\x05hello"))
        assert isinstance(exc, ssl.SSLError)
        assert left in (b"", b"reset")

    run(scenario)


def test_a_handshake_with_no_time_limit_waits_for_the_client(certs):
    async def scenario() -> None:
        app = App()
        transport, client = await opened(certs, app, timeout=None)
        await asyncio.to_thread(client.send, b"late")
        assert await app.data(4) == b"late"
        transport.close()

    run(scenario)


def test_a_handshake_cancelled_aborts_the_connection(certs):
    async def scenario() -> None:
        accepted, sock = connected_sockets()
        handshake = asyncio.ensure_future(accept_tls(accepted, server_context(certs), App(), WAIT))
        await asyncio.to_thread(sock.sendall, client_hello())
        server_hello = await asyncio.to_thread(sock.recv, 5)  # the server's first flight has begun
        assert server_hello[:1] == b"\x16"
        handshake.cancel()
        with pytest.raises(asyncio.CancelledError):
            await handshake
        assert await asyncio.to_thread(until_closed, sock)
        sock.close()

    run(scenario)


def test_the_handshake_steps_run_on_the_pool(certs, monkeypatch):
    """Each do_handshake() runs on a worker of the pool, never on the loop's thread."""
    real = tls._handshake_pool()
    threads: list[str] = []

    class Watched(concurrent.futures.Executor):
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def, override]
            def noted() -> Any:
                threads.append(threading.current_thread().name)
                return fn(*args, **kwargs)

            return real.submit(noted)

    monkeypatch.setattr(tls, "_handshake_pool", Watched)

    async def scenario() -> None:
        app = App()
        transport, _ = await opened(certs, app)
        transport.close()

    run(scenario)
    assert threads
    assert all(name.startswith("rcmd-tls") for name in threads)


# ------------------------------------------------------------------ more of the record layer


def test_data_that_came_with_the_last_flight_arrives_at_once(certs):
    """The client's Finished and a record of data in one segment, no FIN: the application
    protocol gets the data as it connects, not when more bytes come."""

    async def scenario() -> None:
        app = App()
        accepted, sock = connected_sockets()
        client = Client(sock, certs / "ca.pem")

        def finish() -> None:
            client.handshake(flush=False)
            client.send(b"early")

        transport, _ = await asyncio.gather(
            accept_tls(accepted, server_context(certs), app, WAIT), asyncio.to_thread(finish)
        )
        assert [await app.next() for _ in range(2)] == [("made",), ("data", b"early")]
        transport.close()

    run(scenario)


def test_a_client_hello_waiting_before_the_handshake_starts(certs):
    """The listener peeks at the first byte before accept_tls(): the ClientHello is there
    already when the socket is handed over."""

    async def scenario() -> None:
        app = App()
        accepted, sock = connected_sockets()
        client = Client(sock, certs / "ca.pem")
        with pytest.raises(ssl.SSLWantReadError):
            client.tls.do_handshake()
        client.flush()
        await asyncio.to_thread(select.select, [accepted], [], [], WAIT)  # it has arrived
        transport, _ = await asyncio.gather(
            accept_tls(accepted, server_context(certs), app, WAIT), asyncio.to_thread(client.handshake)
        )
        assert await app.next() == ("made",)
        transport.write(b"served")
        assert await asyncio.to_thread(client.read, 6) == b"served"
        transport.close()

    run(scenario)


def test_a_tls_1_2_client_gets_the_servers_finished_from_the_last_step(certs):
    """In TLS 1.2 the server's Finished comes out of its last handshake step: it is sent
    then, not with the application's first write (the client would wait for it)."""

    async def scenario() -> None:
        app = App()
        transport, client = await opened(certs, app, maximum_version=ssl.TLSVersion.TLSv1_2)
        assert transport.get_extra_info("ssl_object").version() == "TLSv1.2"
        await asyncio.to_thread(client.send, b"hi")
        assert await app.data(2) == b"hi"
        transport.close()

    run(scenario)


@pytest.fixture(scope="module")
def client_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """client.pem, a client certificate with its key, and client-ca.pem, its CA."""
    import trustme

    folder = tmp_path_factory.mktemp("client-tls")
    ca = trustme.CA()
    ca.issue_cert("client@example.com").private_key_and_cert_chain_pem.write_to_path(
        str(folder / "client.pem")
    )
    ca.cert_pem.write_to_path(str(folder / "client-ca.pem"))
    return folder


def test_the_peers_certificate_is_the_ssl_objects(certs, client_certs):
    async def scenario() -> None:
        app = App()
        context = server_context(certs, client_ca=client_certs / "client-ca.pem")
        transport, _ = await opened(certs, app, context=context, cert=client_certs / "client.pem")
        peercert = transport.get_extra_info("peercert")
        assert peercert == transport.get_extra_info("ssl_object").getpeercert()
        assert peercert["subjectAltName"] == (("email", "client@example.com"),)
        transport.close()

    run(scenario)


def test_the_eof_is_told_once(certs):
    """close_notify, then the FIN: the application protocol hears of the end once."""

    async def scenario() -> None:
        app = App(keep_open=True)
        transport, client = await opened(certs, app)
        await asyncio.to_thread(client.close_notify)
        assert await app.next() == ("eof",)
        await asyncio.to_thread(client.fin)
        await until(lambda: transport._tls._peer_eof, "the server saw the FIN")
        transport.close()
        assert await app.next() == ("lost", None)

    run(scenario)


def test_records_waiting_for_a_resume_are_not_handed_over_once_aborted(certs):
    """resume_reading() hands what waits over on the next turn of the loop; an abort() before
    that turn leaves it unread."""

    async def scenario() -> None:
        app, transport = await paused_with_early_data(certs)
        transport.resume_reading()
        transport.abort()
        assert await app.next() == ("lost", None)

    run(scenario)
