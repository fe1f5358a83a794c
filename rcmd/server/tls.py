"""The server's TLS, with the handshake's CPU work off the event loop.

asyncio's own TLS (``ssl=`` on a transport) runs ``do_handshake()`` on the event loop, and
the server's side of a handshake is a signature with the certificate's key: ~1.5 ms for
RSA 2048, 6-11 ms for RSA 4096, during which no other client is served. Anyone who can
connect can start handshakes, so that was a way to stall every client.

Here each handshake step runs on a small pool of worker threads (OpenSSL releases the GIL
while it works), on an :class:`ssl.SSLObject` between two :class:`ssl.MemoryBIO` s over a
plain socket transport: bytes received go into the incoming BIO, ``do_handshake()`` runs on
a worker, and what it wrote to the outgoing BIO is sent, until it is done. Only one thread
touches the SSLObject at a time: the socket is not read while a step runs. After the
handshake, records are decrypted and encrypted on the loop (AES-GCM and ChaCha20 are cheap
per byte), and :class:`TlsTransport` gives the application protocol what asyncio's SSL
transport gives it: the same methods, flow control both ways, ``get_extra_info``, a close
that sends close_notify, and the peer's close_notify or a bare FIN as ``eof_received``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import logging
import os
import ssl
from collections.abc import Callable
from typing import Any

log = logging.getLogger("rcmd.server")

#: Plaintext taken from the SSLObject per read() call (asyncio's SSL transport reads 256 KiB).
READ_SIZE = 256 * 1024


def handshake_threads() -> int:
    """Worker threads for handshakes: one core fewer than this process may use, at least one.

    Handshakes are the work anyone who can connect can ask for: they may have every core
    but one, which stays for the event loop and so for the clients already in.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_pid = 0  # the process whose threads serve _pool (none after a fork)


def _handshake_pool() -> concurrent.futures.ThreadPoolExecutor:
    """One pool for the process, made on first use: its threads start as handshakes need them.

    A fork of the process gets a pool of its own: the parent's threads are not copied, and
    the copied pool, counting them as idle, would start none for the work queued to it."""
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():
        _pool = concurrent.futures.ThreadPoolExecutor(handshake_threads(), thread_name_prefix="rcmd-tls")
        _pool_pid = os.getpid()
    return _pool


async def run_off_loop(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` on a handshake worker thread (e.g. the start-up cost measurement)."""
    return await asyncio.get_running_loop().run_in_executor(_handshake_pool(), function, *args)


class State(enum.Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"  # handshake done, the application protocol connected
    CLOSED = "closed"  # closing or closed: nothing more is read or written


class TlsProtocol(asyncio.Protocol):
    """The plain socket transport's protocol: TLS between it and an application protocol.

    Made by :func:`accept_tls`, which does the handshake; then :attr:`transport` is what
    the application protocol sees.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self.loop = asyncio.get_running_loop()
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.context = context
        self.state = State.HANDSHAKE
        self.raw: asyncio.Transport | None = None
        self.app: asyncio.Protocol | None = None
        self.transport = TlsTransport(self)
        self._arrived: asyncio.Future[None] | None = None  # the handshake waits for bytes
        self._fresh = False  # bytes came since the last handshake step
        self._peer_eof = False  # the peer's FIN
        self._eof_told = False  # the application protocol had its eof_received
        self._lost = False
        self._lost_exc: Exception | None = None
        self._fatal: Exception | None = None  # passed to the application's connection_lost
        self._app_paused = False
        self._write_paused = False

    # ------------------------------------------------------------------ the socket's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.raw = transport

    def data_received(self, data: bytes) -> None:
        self._incoming.write(data)
        if self.state is State.HANDSHAKE:
            self._fresh = True
            self._wake()
        elif self.state is State.OPEN:
            self._read_records()

    def eof_received(self) -> bool:
        self._peer_eof = True
        if self.state is State.HANDSHAKE:
            self._wake()
        elif self.state is State.OPEN and not self._app_paused:
            self._read_records()  # what came before the FIN, then the EOF (a ragged one if no close_notify)
        return True  # the raw transport stays open until we close it: we may still write

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost, self._lost_exc = True, exc
        self.state = State.CLOSED
        self._wake()
        app, self.app = self.app, None
        if app is not None:
            app.connection_lost(self._fatal or exc)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.app is not None:
            self.app.pause_writing()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.app is not None:
            self.app.resume_writing()

    def _wake(self) -> None:
        if self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)

    def _flush(self) -> None:
        """Send what the SSLObject wrote (handshake messages, records, tickets, alerts)."""
        if self._outgoing.pending and self.raw is not None and not self.raw.is_closing():
            self.raw.write(self._outgoing.read())

    # ------------------------------------------------------------------ the handshake

    async def handshake(self, timeout: float | None) -> None:
        """Run the handshake, its steps on a worker thread; raises OSError (ssl.SSLError
        included: a bad ClientHello, no shared version) or ConnectionAbortedError past
        *timeout* seconds, and aborts the connection on any failure or cancellation."""
        assert self.raw is not None
        raw = self.raw
        timed_out = False

        def time_up() -> None:
            nonlocal timed_out
            timed_out = True
            self._wake()

        timer = self.loop.call_later(timeout, time_up) if timeout else None
        try:
            pool = _handshake_pool()
            while True:
                if self._fresh:
                    self._fresh = False
                    raw.pause_reading()  # the worker owns the SSLObject and its BIOs for the step
                    try:
                        await self.loop.run_in_executor(pool, self.ssl_object.do_handshake)
                        break
                    except ssl.SSLWantReadError:
                        pass
                    finally:
                        if not self._lost:
                            raw.resume_reading()
                    self._flush()
                if timed_out:
                    raise ConnectionAbortedError(
                        f"SSL handshake is taking longer than {timeout} seconds: aborting the connection"
                    )
                if self._lost:
                    raise self._lost_exc or ConnectionResetError("the connection was lost")
                if self._peer_eof:
                    raise ConnectionResetError("the client closed the connection")
                if not self._fresh:
                    self._arrived = self.loop.create_future()
                    await self._arrived
                    self._arrived = None
        except BaseException:
            self.state = State.CLOSED
            raw.abort()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        self._flush()  # the last flight, and TLS 1.3's session tickets

    def start(self, app: asyncio.Protocol) -> None:
        """Connect *app*, once the handshake is done, and give it what came behind the handshake."""
        self.app = app
        self.state = State.OPEN
        app.connection_made(self.transport)
        if self._write_paused:
            app.pause_writing()
        if self._incoming.pending or self._peer_eof:
            self._read_records()

    # ------------------------------------------------------------------ records

    def _read_records(self) -> None:
        """Decrypt what has arrived and hand it to the application; the peer's close_notify
        or FIN becomes its eof_received, a bad record closes the connection."""
        chunks: list[bytes] = []
        ended = False
        try:
            while not self._app_paused:
                chunk = self.ssl_object.read(READ_SIZE)
                if not chunk:
                    ended = True  # close_notify
                    break
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            ended = self._peer_eof  # a FIN with no close_notify: asyncio calls it an EOF too
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            ended = True
        except ssl.SSLError as exc:  # a bad record: nothing more can be read
            log.debug("TLS error after the handshake: %s", exc)
            self._fatal = exc
            self.state = State.CLOSED
            assert self.raw is not None
            self.raw.abort()
            return
        self._flush()  # TLS 1.3 tickets, key updates, alerts that reading produced
        app = self.app
        if chunks and app is not None:
            app.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if ended and not self._eof_told and self.app is not None and self.state is State.OPEN:
            self._eof_told = True
            if not self.app.eof_received():
                self.transport.close()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.state is not State.OPEN or not data:
            return
        try:
            self.ssl_object.write(data)
        except ssl.SSLError as exc:
            log.debug("TLS error writing: %s", exc)
            self._fatal = exc
            self.state = State.CLOSED
            assert self.raw is not None
            self.raw.abort()
            return
        self._flush()

    def close(self) -> None:
        if self.state is State.CLOSED:
            return
        was_open = self.state is State.OPEN
        self.state = State.CLOSED
        assert self.raw is not None
        if was_open and not self._peer_eof:
            try:
                self.ssl_object.unwrap()  # queues our close_notify
            except ssl.SSLError:
                pass  # SSLWantReadError: the peer's has not come, and we do not wait for it
            self._flush()
        self.raw.close()  # after what it holds is sent

    def resume_app_reading(self) -> None:
        self._app_paused = False
        if self.state is State.OPEN:
            assert self.raw is not None
            self.raw.resume_reading()
            if self._incoming.pending or self.ssl_object.pending() or self._peer_eof:
                self.loop.call_soon(self._read_pending)

    def _read_pending(self) -> None:
        if self.state is State.OPEN and not self._app_paused:
            self._read_records()


class TlsTransport(asyncio.Transport):
    """What the application protocol writes to and reads from: plaintext over TLS.

    Write buffering and its limits are the socket transport's (it holds the records),
    so ``get_write_buffer_size()`` counts ciphertext; ``pause_reading()`` stops both
    decrypting and reading the socket. EOF cannot be written (TLS has no half-close).
    """

    def __init__(self, tls: TlsProtocol) -> None:
        super().__init__()
        self._tls = tls

    def _raw(self) -> asyncio.Transport:
        assert self._tls.raw is not None
        return self._tls.raw

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        ssl_object = self._tls.ssl_object
        if name == "ssl_object":
            return ssl_object
        if name == "sslcontext":
            return self._tls.context
        if name == "peercert":
            return ssl_object.getpeercert()
        if name == "cipher":
            return ssl_object.cipher()
        if name == "compression":
            return ssl_object.compression()
        return self._raw().get_extra_info(name, default)

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._tls.app is not None
        return self._tls.app

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._tls.app = protocol

    def is_closing(self) -> bool:
        return self._tls.state is State.CLOSED or self._raw().is_closing()

    def close(self) -> None:
        self._tls.close()

    def abort(self) -> None:
        self._tls.state = State.CLOSED
        self._raw().abort()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._tls.write(data)

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("TLS has no half-close: close() sends close_notify")

    def is_reading(self) -> bool:
        return not self._tls._app_paused and self._raw().is_reading()

    def pause_reading(self) -> None:
        self._tls._app_paused = True
        self._raw().pause_reading()

    def resume_reading(self) -> None:
        self._tls.resume_app_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._raw().set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._raw().get_write_buffer_limits()

    def get_write_buffer_size(self) -> int:
        return self._raw().get_write_buffer_size()


async def accept_tls(
    sock: Any, context: ssl.SSLContext, app: asyncio.Protocol, handshake_timeout: float | None
) -> TlsTransport:
    """Take over the accepted socket *sock*, do the server's TLS handshake (its CPU work on
    a worker thread), connect *app* and return its transport.

    Raises OSError (ssl.SSLError included) if the handshake fails, ConnectionAbortedError
    after *handshake_timeout* seconds; on any failure or cancellation the socket is closed.
    """
    loop = asyncio.get_running_loop()
    tls = TlsProtocol(context)
    await loop.connect_accepted_socket(lambda: tls, sock)
    await tls.handshake(handshake_timeout)
    tls.start(app)
    return tls.transport
