"""Accepting connections: the plain and TLS listeners, the connection limits, the server object."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import socket
from typing import Any

from ..auth import (
    FailureThrottle,
)
from ..framing import encode_frame
from ..messages import (
    Error,
    encode_message,
)
from .config import Framing, ServerConfig, tls_handshake_cost
from .session import READ_SIZE, PrefixedSession, Session, Stage
from .tls import accept_tls, handshake_threads, run_off_loop

log = logging.getLogger("rcmd.server")

#: Why a connection is closed to make room for a new one (sent as its ERROR).
EVICT_REASONS = {
    Stage.HANDSHAKE: "server full: closing a connection that has not finished its handshake",
    Stage.IDLE: "server full: closing idle connection",
}
#: How long a closed connection may take to flush its last bytes to a peer that does not
#: read them, before it is aborted: until then it holds a file descriptor and its buffer.
CLOSE_TIMEOUT = 5.0
#: accept() failing for want of descriptors or memory: pause accepting this long, doubling
#: while it goes on (as asyncio's own listener pauses 1 s), so the loop serves the others.
ACCEPT_RETRY_MIN, ACCEPT_RETRY_MAX = 0.1, 2.0
#: The kernel's queue of connections not yet accepted (capped by net.core.somaxconn). While
#: the startups are full of connections within their grace, new ones wait there, in order; a
#: queue that is full drops the next SYN, and the client's kernel tries again 1, 3, 7, 15 s
#: later: with 128, a new client took 7-19 s to get in past 200 slowloris sockets.
LISTEN_BACKLOG = 1024
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Accepted:
    """One accepted socket, counted against the limits from accept until it is closed.

    Before its session starts (TLS detection and handshake) it is in the HANDSHAKE stage
    and closing it means cancelling *task*; after, its session says what it is doing.
    """

    __slots__ = ("accepted_at", "evicted", "peer", "session", "task")

    def __init__(self, peer: str, now: float, task: asyncio.Task[None] | None = None) -> None:
        self.peer = peer
        self.accepted_at = now
        self.task = task
        self.session: Session | None = None
        self.evicted = False

    @property
    def stage(self) -> Stage:
        session = self.session
        if session is None:
            return Stage.HANDSHAKE
        if isinstance(session, PrefixedSession):
            return session.stage
        # Naive framing has no handshake: idle, unless a command runs.
        return Stage.BUSY if getattr(session, "process", None) is not None else Stage.IDLE

    @property
    def last_active(self) -> float:
        if isinstance(self.session, PrefixedSession):
            return self.session.last_active
        return self.accepted_at

    def evict(self, reason: str) -> None:
        """Close it to make room: its session tells the client *reason* first."""
        self.evicted = True
        log.info("%s closed to make room: %s", self.peer, reason)
        if self.session is not None:
            self.session.shutdown(reason)
        elif self.task is not None:
            self.task.cancel()  # not started yet (in TLS, nothing can be said in plaintext)


class ReaderProtocol(asyncio.StreamReaderProtocol):
    """asyncio's StreamReaderProtocol, which also says when the client's input has ended
    (its FIN, or the connection lost) in ``hung_up``, read or not: a session waiting on
    something else than input (a command slot) learns that its client is gone."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        super().__init__(reader)
        self.hung_up = asyncio.Event()

    def eof_received(self) -> bool:
        self.hung_up.set()
        return bool(super().eof_received())

    def connection_lost(self, exc: Exception | None) -> None:
        self.hung_up.set()
        super().connection_lost(exc)


class Server:
    """An rcmd server. ``await start()``, then ``address``; ``await close()`` to stop.

    Usable as ``async with Server(config) as server: await server.serve_forever()``.

    Every accepted socket counts against ``max_connections`` from accept on, and, until it is
    through the handshake, against ``max_startups``. When a new one would pass either, the
    server makes room: it closes the oldest connection still in its handshake, else the one
    idle the longest, telling it why; one running a command is never closed for room, and
    if every connection runs one, the new one is refused with a reason. A connection in its
    handshake is not closed for room before it is ``startup_grace`` old: until then, new
    connections wait in the kernel's queue, unaccepted (admission_delay).
    """

    def __init__(self, config: ServerConfig | None = None, **options: Any) -> None:
        self.config = config if config is not None else ServerConfig(**options)
        self._server: _Listener | None = None
        self._sessions: set[Session] = set()
        self._accepted: dict[Accepted, None] = {}  # in order of accept
        self._evicted = 0  # of those, how many are closing to make room
        self._handshaking: dict[Accepted, None] = {}  # of those, not through the handshake yet
        self._room = asyncio.Event()  # set when a connection leaves _handshaking or _accepted
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._previous_handler: Any = None
        self.throttle = FailureThrottle()
        self.command_slots = asyncio.Semaphore(self.config.max_commands)

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound: port 0 asks the OS for a free one."""
        assert self._server is not None, "start() first"
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        self._server = await _Listener.start(self)
        host, port = self.address
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        log.info("listening on %s (framing %s)", where, self.config.framing.value)
        if self.config.tls is not None:
            cost = await run_off_loop(tls_handshake_cost, self.config.tls)
            threads = handshake_threads()
            log.info(
                "a TLS handshake costs %.1f ms of CPU, off the event loop on %d thread%s"
                " (at most ~%d handshakes a second)",
                cost * 1e3,
                threads,
                "" if threads == 1 else "s",
                threads / cost,
            )

    async def serve_forever(self) -> None:
        assert self._server is not None, "start() first"
        await self._server.serve_forever()

    async def close(self) -> None:
        """Stop accepting, kill every running command, tell its client, close everything."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for accepted in list(self._accepted):
            if accepted.session is None and accepted.task is not None:
                accepted.task.cancel()
        for session in list(self._sessions):
            session.shutdown("the server is shutting down")
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        asyncio.get_running_loop().set_exception_handler(self._previous_handler)

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """What asyncio reports on its own: an OSError outside any task (accept() out of
        descriptors, a peer that reset mid-TLS) is one log line, not a traceback."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and "future" not in context and "task" not in context:
            log.warning("%s: %s", context.get("message", "network error"), exc)
            return
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    # ------------------------------------------------------------------------ limits

    def _admit(self, peer: str, task: asyncio.Task[None] | None) -> Accepted | None:
        """Count a socket just accepted, making room for it if the server is full; None if
        there is none to make (every connection runs a command) and it must be refused.

        O(1) unless the server is full of authenticated connections: then it looks for the
        one idle the longest among them.
        """
        config = self.config
        live = len(self._accepted) - self._evicted
        victim: Accepted | None = None
        if self._handshaking and (
            len(self._handshaking) >= config.max_startups or live >= config.max_connections
        ):
            victim = next(iter(self._handshaking))  # in order of accept: the oldest
        elif live >= config.max_connections:
            idle = [a for a in self._accepted if not a.evicted and a.stage is Stage.IDLE]
            victim = min(idle, key=lambda a: a.last_active, default=None)
            if victim is None:
                log.warning(
                    "%s refused: %d connections, each running a command (--max-connections)", peer, live
                )
                return None
        if victim is not None:
            self._evicted += 1
            self._handshaking.pop(victim, None)
            victim.evict(EVICT_REASONS[Stage.HANDSHAKE if victim.session is None else victim.stage])
        accepted = Accepted(peer, asyncio.get_running_loop().time(), task)
        self._accepted[accepted] = None
        self._handshaking[accepted] = None
        log.debug("%s accepted (%d connections)", peer, live + 1)
        return accepted

    def admission_delay(self) -> float:
        """Seconds until a new connection may be accepted: 0 unless the server is full, the
        room would be made by closing a connection in its handshake, and the oldest of those
        is younger than ``startup_grace``. O(1).

        Closing it sooner would let a flood of connects push out every connection before it
        could finish its handshake (an honest client a few round trips away included), and
        keep the event loop busy with nothing but accepting and closing, while the clients
        already logged in wait behind that work. The flood waits in the kernel's queue.
        """
        config = self.config
        if not self._handshaking or (
            len(self._handshaking) < config.max_startups
            and len(self._accepted) - self._evicted < config.max_connections
        ):
            return 0.0
        oldest = next(iter(self._handshaking))
        return max(0.0, oldest.accepted_at + config.startup_grace - asyncio.get_running_loop().time())

    async def wait_for_room(self) -> None:
        """Return when admission_delay() is 0: at the grace's end, or sooner if a connection
        finishes its handshake or closes."""
        loop = asyncio.get_running_loop()
        while (delay := self.admission_delay()) > 0:
            self._room.clear()
            # Not wait_for(): before Python 3.12 it can swallow a cancel that comes as the
            # event is set, and close() would then wait on an accept loop that never ends.
            timer = loop.call_later(delay, self._room.set)
            try:
                await self._room.wait()
            finally:
                timer.cancel()

    def _handshake_done(self, accepted: Accepted) -> None:
        self._handshaking.pop(accepted, None)
        self._room.set()

    def _release(self, accepted: Accepted) -> None:
        self._room.set()
        self._handshaking.pop(accepted, None)
        if accepted in self._accepted:
            del self._accepted[accepted]
            if accepted.evicted:
                self._evicted -= 1

    # ------------------------------------------------------------------------ serving

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, accepted: Accepted
    ) -> None:
        """Run the session of an admitted connection, then close it, whatever happens."""
        peer = accepted.peer
        try:
            if self.config.framing is Framing.NAIVE:
                from ..naive import NaiveSession

                session: Session = NaiveSession(self.config, reader, writer, peer)
                self._handshake_done(accepted)  # it has no handshake
            else:
                session = PrefixedSession(self, reader, writer, peer)
                session.on_handshake_done = functools.partial(self._handshake_done, accepted)
            accepted.session = session
            self._sessions.add(session)
            log.info("%s connected", peer)
            try:
                await session.run()
            except Exception:  # a bug must not take the server down with it
                log.exception("%s: session failed", peer)
            finally:
                self._sessions.discard(session)
        finally:
            await _close(writer)
            log.info("%s disconnected", peer)


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close, flushing what is queued; abort a peer that will not take it (CLOSE_TIMEOUT)."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
    except asyncio.TimeoutError:
        writer.transport.abort()
    except (ConnectionError, OSError) as exc:
        # The transport's futures keep this exception; its traceback holds our frames, which
        # hold the writer: a reference cycle of the whole connection, left for the cyclic GC.
        exc.__traceback__ = None


#: A TLS client speaks first (its ClientHello); an rcmd client in plaintext waits for our
#: HELLO. So a TLS server that hears nothing this long is talking to a plaintext client.
TLS_DETECT_WAIT = 0.5
TLS_HANDSHAKE_RECORD = 0x16
PLAINTEXT_TO_TLS = "this server requires TLS: connect with --tls (and --tls-ca FILE for a private CA)"


class _Listener:
    """Accepts TCP itself, one connection per turn of the event loop, for plain and TLS alike.

    Not asyncio.start_server: it accepts up to 100 connections in one go, each one's setup
    queued ahead of the clients already being served, and it cannot tell a plaintext client
    of a TLS server to use TLS (that client would wait in silence for the handshake timeout).
    Offers what Server needs of an asyncio Server: sockets, close, wait_closed, serve_forever.
    """

    def __init__(self, server: Server, sockets: list[socket.socket]) -> None:
        self.server = server
        self.sockets = sockets
        self._closed = asyncio.Event()
        self._tasks = [asyncio.ensure_future(self._accept_loop(listener)) for listener in sockets]
        for task in self._tasks:
            task.add_done_callback(_log_death)

    @classmethod
    async def start(cls, server: Server) -> _Listener:
        """Listen on every address *host* names (as start_server does); port 0 picks one
        free port for the first, and the others share it."""
        config = server.config
        # Resolved off the loop: getaddrinfo can wait on DNS.
        infos = await asyncio.get_running_loop().getaddrinfo(
            config.host, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        sockets: list[socket.socket] = []
        port = config.port
        try:
            for family, address in dict.fromkeys((info[0], info[4][0]) for info in infos):
                listener = socket.create_server((address, port), family=family, backlog=LISTEN_BACKLOG)
                listener.setblocking(False)
                sockets.append(listener)
                port = listener.getsockname()[1]
        except OSError:
            for listener in sockets:
                listener.close()
            raise
        return cls(server, sockets)

    async def _accept_loop(self, listener: socket.socket) -> None:
        """Accept for ever. Out of descriptors (EMFILE) or memory, pause with backoff and go
        on: the connections being served free theirs, and then accepting resumes."""
        loop = asyncio.get_running_loop()
        retry = ACCEPT_RETRY_MIN
        while True:
            await self.server.wait_for_room()
            if listener.fileno() < 0:
                return  # closed
            try:
                conn, address = await loop.sock_accept(listener)
            except OSError as exc:
                if exc.errno not in OUT_OF_RESOURCES:
                    log.info("accept failed: %s", exc)  # e.g. ECONNABORTED: that one is gone
                    await asyncio.sleep(0)  # a failure returned at once must not starve the loop
                    continue
                if retry == ACCEPT_RETRY_MIN:
                    log.error("cannot accept: %s; pausing new connections until it can", exc.strerror)
                await asyncio.sleep(retry)
                retry = min(2 * retry, ACCEPT_RETRY_MAX)
                continue
            if retry != ACCEPT_RETRY_MIN:
                log.warning("accepting connections again")
                retry = ACCEPT_RETRY_MIN
            self._start(conn, "{}:{}".format(*address[:2]))
            # One accept per turn: a flood of connects waits behind the clients being served.
            await asyncio.sleep(0)

    def _start(self, conn: socket.socket, peer: str) -> None:
        # Nagle off, as every interactive protocol wants (ssh, asyncssh): with it on, a frame
        # sent right behind another (an EXIT behind a command's output, FILE_DATA behind
        # GET_READY) waited for the client's delayed ACK, 40 ms. asyncio sets TCP_NODELAY
        # only on sockets whose proto is IPPROTO_TCP, and socket.create_server's are proto 0.
        # Naive framing keeps it on, as the tutorial's server does: Nagle's coalescing of
        # small sends is one of the causes of sticky packets that it is there to show.
        if self.server.config.framing is Framing.PREFIXED and conn.family in (
            socket.AF_INET,
            socket.AF_INET6,
        ):
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server = self.server
        accepted = None if server._closing else server._admit(peer, None)
        if accepted is None:
            if (
                not server._closing
                and server.config.tls is None
                and server.config.framing is Framing.PREFIXED
            ):
                reason = f"too many connections: the server takes {server.config.max_connections} at once"
                try:
                    conn.send(encode_frame(encode_message(Error(reason))))  # non-blocking, and small
                except OSError:
                    pass
            conn.close()  # a TLS client would not read a plaintext reason
            return
        opening = self._start_tls(conn, accepted) if server.config.tls else self._start_plain(conn, accepted)
        task = asyncio.ensure_future(opening)
        accepted.task = task
        server._tasks.add(task)
        task.add_done_callback(server._tasks.discard)

    async def _start_plain(self, conn: socket.socket, accepted: Accepted) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_SIZE)
        protocol = ReaderProtocol(reader)
        try:
            try:
                transport, _ = await loop.connect_accepted_socket(lambda: protocol, conn)
            except OSError as exc:
                log.info("%s: connection lost at once: %s", accepted.peer, exc)
                conn.close()
                return
            writer = asyncio.StreamWriter(transport, protocol, reader, loop)
            await self.server._serve(reader, writer, accepted)
        except Exception:  # a bug: logged, and the listener goes on
            log.exception("%s: connection failed", accepted.peer)
        finally:
            self.server._release(accepted)

    async def _start_tls(self, conn: socket.socket, accepted: Accepted) -> None:
        """Check the client starts TLS, do the handshake (its CPU work off the loop: see
        rcmd.server.tls), serve it. Every way out is logged in one line; the socket is
        closed on each, and the connection uncounted."""
        loop = asyncio.get_running_loop()
        peer = accepted.peer
        handed_over = False
        try:
            first = await _peek_first_byte(conn, TLS_DETECT_WAIT)
            if first != TLS_HANDSHAKE_RECORD:
                log.warning("%s: not a TLS client, told to use --tls", peer)
                try:
                    conn.send(encode_frame(encode_message(Error(PLAINTEXT_TO_TLS))))
                except OSError:
                    pass
                return
            reader = asyncio.StreamReader(limit=READ_SIZE)
            protocol = ReaderProtocol(reader)
            context = self.server.config.tls
            assert context is not None
            try:
                transport = await accept_tls(
                    conn, context, protocol, self.server.config.handshake_timeout or None
                )
            except OSError as exc:  # ssl.SSLError included; ConnectionAbortedError on time-out
                log.warning("%s: TLS handshake failed: %s", peer, exc or type(exc).__name__)
                return
            handed_over = True
            writer = asyncio.StreamWriter(transport, protocol, reader, loop)
            await self.server._serve(reader, writer, accepted)
        except asyncio.CancelledError:
            if not handed_over:
                log.info("%s: closed during the TLS handshake", peer)
            raise
        except Exception:  # a bug: logged, and the listener goes on
            log.exception("%s: TLS connection failed", peer)
        finally:
            if not handed_over:
                conn.close()
            self.server._release(accepted)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for listener in self.sockets:
            listener.close()
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


def _log_death(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("an accept loop stopped", exc_info=task.exception())


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
