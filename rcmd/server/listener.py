"""Accepting connections: the plain and TLS listeners, the connection limit, the server object."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Any

from ..auth import (
    FailureThrottle,
)
from ..framing import encode_frame
from ..messages import (
    Error,
    encode_message,
)
from .config import Framing, ServerConfig
from .session import READ_SIZE, PrefixedSession, Session

log = logging.getLogger("rcmd.server")


class Server:
    """An rcmd server. ``await start()``, then ``address``; ``await close()`` to stop.

    Usable as ``async with Server(config) as server: await server.serve_forever()``.
    """

    def __init__(self, config: ServerConfig | None = None, **options: Any) -> None:
        self.config = config if config is not None else ServerConfig(**options)
        self._server: asyncio.Server | _TlsListener | None = None
        self._sessions: set[Session] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.throttle = FailureThrottle()
        self.command_slots = asyncio.Semaphore(self.config.max_commands)

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound: port 0 asks the OS for a free one."""
        assert self._server is not None, "start() first"
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def start(self) -> None:
        if self.config.tls is not None:
            self._server = await _TlsListener.start(self)
        else:
            self._server = await asyncio.start_server(
                self._accept, self.config.host, self.config.port, reuse_address=True, limit=READ_SIZE
            )
        host, port = self.address
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        log.info("listening on %s (framing %s)", where, self.config.framing.value)

    async def serve_forever(self) -> None:
        assert self._server is not None, "start() first"
        await self._server.serve_forever()

    async def close(self) -> None:
        """Stop accepting, kill every running command, tell its client, close everything."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.shutdown("the server is shutting down")
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = _peer_name(writer)
        if self._closing or len(self._sessions) >= self.config.max_connections:
            if not self._closing:
                log.warning(
                    "%s refused: %d connections already (--max-connections)", peer, len(self._sessions)
                )
                if self.config.framing is Framing.PREFIXED:
                    reason = f"too many connections: the server takes {self.config.max_connections} at once"
                    writer.write(encode_frame(encode_message(Error(reason))))
            writer.close()
            self._tasks.discard(task)
            return
        if self.config.framing is Framing.NAIVE:
            from ..naive import NaiveSession

            session: Session = NaiveSession(self.config, reader, writer, peer)
        else:
            session = PrefixedSession(self, reader, writer, peer)
        self._sessions.add(session)
        log.info("%s connected", peer)
        try:
            await session.run()
        except Exception:  # a bug must not take the server down with it
            log.exception("%s: session failed", peer)
        finally:
            self._sessions.discard(session)
            self._tasks.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
            log.info("%s disconnected", peer)


#: A TLS client speaks first (its ClientHello); an rcmd client in plaintext waits for our
#: HELLO. So a TLS server that hears nothing this long is talking to a plaintext client.
TLS_DETECT_WAIT = 0.5
TLS_HANDSHAKE_RECORD = 0x16


class _TlsListener:
    """Accepts TCP, checks that the client starts TLS, then hands the stream to Server._accept.

    Plain asyncio.start_server(ssl=...) would leave a plaintext client waiting in silence
    until the handshake timed out; this tells it, in rcmd's own plaintext framing, to use TLS.
    Offers what Server needs of an asyncio Server: sockets, close, wait_closed, serve_forever.
    """

    def __init__(self, server: Server, listener: socket.socket) -> None:
        self.server = server
        self.sockets = [listener]
        self._closed = asyncio.Event()
        self._task = asyncio.ensure_future(self._accept_loop())

    @classmethod
    async def start(cls, server: Server) -> _TlsListener:
        config = server.config
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        listener = socket.create_server((config.host, config.port), family=family, backlog=128)
        listener.setblocking(False)
        return cls(server, listener)

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _address = await loop.sock_accept(self.sockets[0])
            task = asyncio.ensure_future(self._start_tls(conn))
            self.server._tasks.add(task)
            task.add_done_callback(self.server._tasks.discard)

    async def _start_tls(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        peer = "{}:{}".format(*conn.getpeername()[:2])
        first = await _peek_first_byte(conn, TLS_DETECT_WAIT)
        if first != TLS_HANDSHAKE_RECORD:
            log.warning("%s: not a TLS client, told to use --tls", peer)
            try:
                conn.send(
                    encode_frame(
                        encode_message(
                            Error(
                                "this server requires TLS: connect with --tls (and --tls-ca FILE for a private CA)"
                            )
                        )
                    )
                )
            except OSError:
                pass
            conn.close()
            return
        reader = asyncio.StreamReader(limit=READ_SIZE)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol,
                conn,
                ssl=self.server.config.tls,
                ssl_handshake_timeout=self.server.config.handshake_timeout or None,
            )
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
            log.warning("%s: TLS handshake failed: %s", peer, exc)
            conn.close()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        await self.server._accept(reader, writer)

    def close(self) -> None:
        self._task.cancel()
        self.sockets[0].close()
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def serve_forever(self) -> None:
        await self._closed.wait()


async def _peek_first_byte(conn: socket.socket, timeout: float) -> int | None:
    """The first byte the peer sent, without consuming it; None if it sent nothing in time."""
    loop = asyncio.get_running_loop()
    conn.setblocking(False)
    readable: asyncio.Future[None] = loop.create_future()
    loop.add_reader(conn.fileno(), _set_once, readable)
    try:
        await asyncio.wait_for(readable, timeout)
    except asyncio.TimeoutError:
        return None
    finally:
        loop.remove_reader(conn.fileno())
    try:
        data = conn.recv(1, socket.MSG_PEEK)
    except OSError:
        return None
    return data[0] if data else None


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple):
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
