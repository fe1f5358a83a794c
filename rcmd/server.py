"""The asyncio server: accepts connections and runs each one's commands.

A thin transport around :class:`rcmd.protocol.Connection` (prefixed framing) or the
deliberately broken tutorial loop (naive framing, see :mod:`rcmd.naive`). It owns the
processes it starts: every command runs in its own process group, and the group is killed
when the command times out, is cancelled, or its client goes away.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import locale
import logging
import os
import shlex
import signal
import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import Callable

from . import __version__
from .auth import (
    NONCE_SIZE,
    PROOF_SIZE,
    SCHEME,
    FailureThrottle,
    client_proof,
    decode_hex,
    new_nonce,
    proofs_match,
    server_proof,
)
from .decoding import normalize_encoding
from .errors import LocalProtocolError, RemoteProtocolError
from .framing import CLOSED, DEFAULT_MAX_FRAME_SIZE, NEED_DATA, encode_frame
from .messages import (
    AuthOk,
    Cancel,
    Error,
    Exit,
    Hello,
    Message,
    Run,
    Stderr,
    Stdin,
    StdinEnd,
    Stdout,
    encode_message,
)
from .process import DEFAULT_SHELL, OUTPUT_CHUNK_SIZE, Child, signal_group, spawn
from .protocol import Connection, Phase, Role

log = logging.getLogger("rcmd.server")

#: How much one read from a client takes.
READ_SIZE = 256 * 1024
#: After SIGTERM (cancel, timeout, shutdown), how long a command's group has before SIGKILL.
TERM_GRACE = 2.0
#: After a command's shell exits, how long processes it left behind may keep its output
#: pipes open before the group is killed (``cmd &`` would otherwise hold the reply open).
LINGER = 1.0
#: At most this many chunks are forwarded per wake-up, while the client's socket takes
#: each whole: fewer trips through the event loop, and other connections still get a turn.
BURST = 4
#: Exit status for a command that could not be started, as a shell reports "not found".
CANNOT_RUN = 127


class Framing(str, enum.Enum):
    PREFIXED = "prefixed"
    NAIVE = "naive"


def is_loopback(host: str) -> bool:
    """True when *host* names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class InsecureBindError(ValueError):
    """Refusing to listen beyond loopback with no authentication."""


#: Defaults for the limits, each an option of rcmd-server.
DEFAULT_MAX_CONNECTIONS = 128  # each costs a little memory and a file descriptor
DEFAULT_MAX_COMMANDS = 64  # processes at once, server-wide; more wait for a slot
DEFAULT_HANDSHAKE_TIMEOUT = 10.0  # a client that connects and says nothing is dropped
DEFAULT_IDLE_TIMEOUT = 3600.0  # a connection with no command and no traffic for an hour


@dataclass
class ServerConfig:
    """Everything a server needs to know; ``rcmd-server --help`` describes each option.

    *secret* turns on authentication (rcmd.auth). *command_timeout* applies to commands
    that give no timeout of their own; None means they may run for ever. A timeout of
    None or 0 turns that limit off.
    """

    host: str = "127.0.0.1"
    port: int = 9000
    framing: Framing = Framing.PREFIXED
    shell: str = DEFAULT_SHELL
    encoding: str = field(default_factory=lambda: locale.getpreferredencoding(False))
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    secret: bytes | None = field(default=None, repr=False)
    insecure_no_auth: bool = False
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_commands: int = DEFAULT_MAX_COMMANDS
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    command_timeout: float | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    def __post_init__(self) -> None:
        self.framing = Framing(self.framing)
        self.tls = None
        if self.tls_cert:
            if self.framing is Framing.NAIVE:
                raise ValueError("naive framing has no TLS: it is the tutorial's plain socket")
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                self.tls.load_cert_chain(self.tls_cert, self.tls_key)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"cannot load the TLS certificate and key: {exc}") from None
        self.encoding = normalize_encoding(self.encoding)
        if self.max_connections < 1 or self.max_commands < 1:
            raise ValueError("max_connections and max_commands must be at least 1")
        if is_loopback(self.host) or self.insecure_no_auth:
            return
        if self.framing is Framing.NAIVE:
            raise InsecureBindError(
                f"refusing to listen on {self.host}: naive framing is a teaching mode with no "
                "protection at all, so it listens on loopback only. Use --host 127.0.0.1, or "
                "--insecure-no-auth if every machine that can reach this address is trusted."
            )
        if self.secret is None:
            raise InsecureBindError(
                f"refusing to listen on {self.host} without authentication: rcmd runs any command "
                "it is sent. Give a shared secret (--secret-file FILE or $RCMD_SECRET) to clients "
                "and server, or use --host 127.0.0.1. (--insecure-no-auth overrides; don't.)"
            )


class Server:
    """An rcmd server. ``await start()``, then ``address``; ``await close()`` to stop.

    Usable as ``async with Server(config) as server: await server.serve_forever()``.
    """

    def __init__(self, config: ServerConfig | None = None, **options) -> None:
        self.config = config if config is not None else ServerConfig(**options)
        self._server: asyncio.base_events.Server | None = None
        self._sessions: set[_Session] = set()
        self._tasks: set[asyncio.Task] = set()
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
        log.info("listening on %s:%d (framing %s)", host, port, self.config.framing.value)

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

    async def __aenter__(self) -> "Server":
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = _peer_name(writer)
        if self._closing or len(self._sessions) >= self.config.max_connections:
            if not self._closing:
                log.warning("%s refused: %d connections already (--max-connections)", peer, len(self._sessions))
                if self.config.framing is Framing.PREFIXED:
                    reason = f"too many connections: the server takes {self.config.max_connections} at once"
                    writer.write(encode_frame(encode_message(Error(reason))))
            writer.close()
            self._tasks.discard(task)
            return
        if self.config.framing is Framing.NAIVE:
            from .naive import NaiveSession

            session: _Session = NaiveSession(self.config, reader, writer, peer)
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
    async def start(cls, server: Server) -> "_TlsListener":
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
        peer = "%s:%s" % conn.getpeername()[:2]
        first = await _peek_first_byte(conn, TLS_DETECT_WAIT)
        if first != TLS_HANDSHAKE_RECORD:
            log.warning("%s: not a TLS client, told to use --tls", peer)
            try:
                conn.send(encode_frame(encode_message(Error(
                    "this server requires TLS: connect with --tls (and --tls-ca FILE for a private CA)"
                ))))
            except OSError:
                pass
            conn.close()
            return
        reader = asyncio.StreamReader(limit=READ_SIZE)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, conn, ssl=self.server.config.tls,
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
    readable = loop.create_future()
    loop.add_reader(conn.fileno(), lambda: readable.done() or readable.set_result(None))
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


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple):
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


class _Session:
    """What the server needs of a connection, whatever its framing."""

    async def run(self) -> None:
        raise NotImplementedError

    def shutdown(self, reason: str) -> None:
        raise NotImplementedError


class RunningCommand:
    """One started process group and why it was killed, if it was."""

    def __init__(self, process: Child) -> None:
        self.process = process
        self.timed_out = False
        self.cancelled = False
        self._escalation: asyncio.TimerHandle | None = None

    def terminate(self) -> None:
        """SIGTERM the group now, SIGKILL it after TERM_GRACE if the shell has not exited."""
        if self.process.returncode is not None:
            signal_group(self.process)  # the shell is gone; clear anything it left
            return
        signal_group(self.process, signal.SIGTERM)
        if self._escalation is None:
            loop = asyncio.get_running_loop()
            self._escalation = loop.call_later(TERM_GRACE, signal_group, self.process)

    def kill(self) -> None:
        signal_group(self.process)

    def finished(self) -> None:
        if self._escalation is not None:
            self._escalation.cancel()
        signal_group(self.process)  # nothing of the command outlives it
        self.process.close()


class PrefixedSession(_Session):
    """One connection in prefixed framing: the full protocol, streaming, one command at a time."""

    def __init__(self, server: Server, reader, writer, peer: str) -> None:
        self.server = server
        self.config = config = server.config
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.conn = Connection(Role.SERVER, max_frame_size=config.max_frame_size)
        self._nonce = new_nonce() if config.secret is not None else None
        self._timer: asyncio.TimerHandle | None = None  # handshake, then idle, deadline
        self._first_bytes = b""  # to recognise a TLS client on a plaintext server
        self.cwd = os.getcwd()
        self.previous_cwd: str | None = None
        self.command: RunningCommand | None = None
        self.command_task: asyncio.Task | None = None
        self._drain_lock = asyncio.Lock()
        self._peer_gone = False
        self._shutdown_reason: str | None = None
        self._ended = asyncio.Event()  # set by shutdown() and by losing the peer

    # ---------------------------------------------------------------------------- output

    def _write(self, message: Message) -> None:
        """Frame and queue *message*; protocol order is the order of these calls."""
        if self._peer_gone:
            return
        if self.conn.phase is Phase.CLOSED and not isinstance(message, Error):
            return  # the conversation failed: only its ERROR still goes out
        # One write() of the whole frame. Not writelines(): on Python 3.12.1 it never pauses
        # the protocol, so drain() would not wait for a slow client and memory would grow.
        self.writer.write(self.conn.send(message))

    async def send(self, message: Message) -> None:
        """Queue *message* and wait while the client is behind (backpressure)."""
        self._write(message)
        if not self._peer_gone:
            await self.drain()

    def _lost_peer(self) -> None:
        if not self._peer_gone:
            self._peer_gone = True
            self._ended.set()
            if self.command is not None:
                log.info("%s: client gone, killing its command", self.peer)
                self.command.kill()

    # ----------------------------------------------------------------------------- input

    async def run(self) -> None:
        await self.send(
            Hello(
                software=f"rcmd {__version__}",
                encoding=self.config.encoding,
                cwd=self.cwd,
                auth=SCHEME if self._nonce is not None else None,
                nonce=self._nonce.hex() if self._nonce is not None else None,
            )
        )
        self._arm_timer(self.config.handshake_timeout, "no handshake within {:g}s")
        try:
            await self._read_loop()
        except RemoteProtocolError as exc:
            reason = str(exc)
            if self._first_bytes.startswith(b"\x16\x03"):
                reason = "this server does not use TLS (it got a TLS handshake): connect without --tls"
            log.warning("%s: protocol error: %s", self.peer, reason)
            await self._fail(reason)
        except (ConnectionError, OSError) as exc:
            log.info("%s: connection lost: %s", self.peer, exc)
        finally:
            self._arm_timer(None, "")
            if self.command_task is not None:
                if self._shutdown_reason is None:
                    self._lost_peer()  # we stopped reading: nobody will see its output
                await asyncio.gather(self.command_task, return_exceptions=True)
            if self._shutdown_reason is not None:
                await self._fail(self._shutdown_reason)

    async def _read_loop(self) -> None:
        while self._shutdown_reason is None and not self._peer_gone:
            data = await self.reader.read(READ_SIZE)
            if not self._first_bytes:
                self._first_bytes = data[:2]
            self.conn.receive_data(data)
            while True:
                event = self.conn.next_event()
                if event is NEED_DATA:
                    break
                if event is CLOSED:
                    return
                if isinstance(event, Error):
                    log.warning("%s reported an error: %s", self.peer, event.reason)
                    return
                if self._shutdown_reason is not None or self._peer_gone:
                    return
                await self._handle(event)
                if self.conn.phase is Phase.IDLE and self.command is None:
                    self._arm_timer(self.config.idle_timeout, "idle for {:g}s")

    async def _handle(self, event: Message) -> None:
        if isinstance(event, Hello):
            if self.conn.auth_required:
                await self._authenticate(event)
            return
        if isinstance(event, Run):
            target = parse_cd(event.command)
            if target is not None:
                await self._change_directory(target)
                return
            # Spawned here, not in the task, so STDIN right behind the RUN finds the process.
            self._arm_timer(None, "")
            command = await self._spawn(event)
            if command is not None:
                self.command = command
                self.command_task = asyncio.create_task(self._supervise(event, command))
        elif isinstance(event, (Stdin, StdinEnd)):
            await self._write_stdin(event)
        elif isinstance(event, Cancel):
            if self.command is not None:
                log.info("%s: cancel", self.peer)
                self.command.cancelled = True
                self.command.terminate()

    async def _authenticate(self, hello: Hello) -> None:
        """Check the client's proof; prove ourselves in AUTH_OK, or fail slowly."""
        assert self._nonce is not None and self.config.secret is not None
        client_nonce = decode_hex(hello.nonce, NONCE_SIZE)
        mac = decode_hex(hello.mac, PROOF_SIZE)
        address = self.peer.rsplit(":", 1)[0]
        if client_nonce is None or mac is None or not proofs_match(
            client_proof(self.config.secret, self._nonce, client_nonce), mac
        ):
            delay = self.server.throttle.failed(address, asyncio.get_running_loop().time())
            log.warning("%s: authentication failed (answering in %.2fs)", self.peer, delay)
            self._arm_timer(None, "")
            await asyncio.sleep(delay)  # repeated failures from one address get slower
            await self._fail("authentication failed")
            return
        self.server.throttle.succeeded(address)
        log.info("%s: authenticated", self.peer)
        await self.send(AuthOk(server_proof(self.config.secret, self._nonce, client_nonce).hex()))

    def _arm_timer(self, seconds: float | None, reason: str) -> None:
        """(Re)start the one deadline a session has: handshake, or idle. None or 0: none."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if seconds:
            self._timer = asyncio.get_running_loop().call_later(
                seconds, self._expire, reason.format(seconds)
            )

    def _expire(self, reason: str) -> None:
        log.info("%s: %s, closing", self.peer, reason)
        self.shutdown(reason)

    async def _write_stdin(self, event: Stdin | StdinEnd) -> None:
        """Pass stdin on; while the command does not read it, we stop reading the client."""
        command, task = self.command, self.command_task
        if command is None or task is None or command.process.stdin is None:
            return  # the command ended, or closed its stdin: late input goes nowhere
        process = command.process
        if isinstance(event, StdinEnd):
            process.close_stdin()
            return
        write = asyncio.ensure_future(process.write_stdin(event.data))
        await asyncio.wait({write, task}, return_when=asyncio.FIRST_COMPLETED)
        if not write.done():
            write.cancel()  # the command ended without reading it all
            await asyncio.wait({write})
        elif not write.cancelled() and isinstance(write.exception(), OSError):
            process.close_stdin()  # EPIPE: the command wants no more input

    async def _fail(self, reason: str) -> None:
        """Tell the client why; after this nothing more is sent and run() closes."""
        try:
            await self.send(Error(reason))
        except LocalProtocolError:
            pass  # an ERROR was sent already
        self._lost_peer()

    def shutdown(self, reason: str) -> None:
        self._shutdown_reason = reason
        self._ended.set()
        if self.command is not None:
            self.command.cancelled = True
            self.command.terminate()
        # Stop reading and let the read loop see EOF: it then waits for the command's
        # EXIT, sends the reason, and closes, as for any other end of a conversation.
        self.writer.transport.pause_reading()
        self.reader.feed_eof()

    # -------------------------------------------------------------------------- commands

    async def _change_directory(self, target: str) -> None:
        """The ``cd`` builtin: each command is its own process, so the session keeps cwd."""
        try:
            new_cwd = resolve_cd(target, self.cwd, self.previous_cwd)
        except OSError as exc:
            name = target or "~"
            await self.send(Stderr(f"cd: {name}: {exc.strerror}\n".encode(self.config.encoding, "replace")))
            await self.send(Exit(1, cwd=self.cwd))
            return
        if target == "-":
            await self.send(Stdout((new_cwd + "\n").encode(self.config.encoding, "replace")))
        self.previous_cwd, self.cwd = self.cwd, new_cwd
        log.info("%s: cd %s", self.peer, new_cwd)
        await self.send(Exit(0, cwd=self.cwd))

    async def _spawn(self, run: Run) -> RunningCommand | None:
        cwd = os.path.join(self.cwd, os.path.expanduser(run.cwd)) if run.cwd else self.cwd
        env = {**os.environ, **run.env} if run.env else None  # None: ours, as it is
        log.info("%s: run %r", self.peer, run.command)
        slots = self.server.command_slots
        if not await self._acquire_slot(slots):  # at most --max-commands at once, server-wide
            return None
        try:
            process = spawn(run.command, shell=self.config.shell, cwd=cwd, env=env, stdin=run.stdin)
        except OSError as exc:
            slots.release()
            reason = f"rcmd: cannot run command in {cwd}: {exc.strerror or exc}\n"
            await self.send(Stderr(reason.encode(self.config.encoding, "replace")))
            await self.send(Exit(CANNOT_RUN, cwd=self.cwd))
            return None
        except BaseException:
            slots.release()  # a slot must never leak: a leaked one is gone for good
            raise
        return RunningCommand(process)

    async def _acquire_slot(self, slots: asyncio.Semaphore) -> bool:
        """Wait for a command slot, unless the session ends first (shutdown, idle, lost peer)."""
        if not slots.locked():
            await slots.acquire()  # one is free: taken at once, without a task or a wait
        else:
            acquire = asyncio.ensure_future(slots.acquire())
            ended = asyncio.ensure_future(self._ended.wait())
            await asyncio.wait({acquire, ended}, return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
            if not acquire.done():
                acquire.cancel()
                return False
        if self._shutdown_reason is not None or self._peer_gone:
            slots.release()
            return False
        return True

    async def _supervise(self, run: Run, command: RunningCommand) -> None:
        """Stream the command's output, enforce its timeout, reap its group, send EXIT."""
        process = command.process
        timeout = run.timeout if run.timeout is not None else (self.config.command_timeout or None)
        output = _OutputForwarder(self, process)
        try:
            exited = process.wait()
            if not await _within(exited, timeout):
                log.info("%s: timed out after %ss: %r", self.peer, timeout, run.command)
                command.timed_out = True
                command.terminate()
                await exited
            # The shell is gone. Whatever it left running may hold the pipes open:
            # give it LINGER to finish, then kill the group so the reply can end.
            if not await _within(output.done, LINGER):
                log.info("%s: killing what %r left running", self.peer, run.command)
                command.kill()
                await output.done
        finally:
            output.close()
            command.finished()
            self.server.command_slots.release()
            self.command = None
        code = process.returncode
        assert code is not None
        log.info("%s: exit %s: %r", self.peer, code, run.command)
        if self._shutdown_reason is None:
            self._arm_timer(self.config.idle_timeout, "idle for {:g}s")
        await self.send(
            Exit(
                code,
                signal=-code if code < 0 else None,
                timed_out=command.timed_out,
                cancelled=command.cancelled,
                cwd=self.cwd,
            )
        )

    async def drain(self) -> None:
        """Wait while the client is behind; a lost client is noted, not raised."""
        try:
            async with self._drain_lock:
                await self.writer.drain()
        except (ConnectionError, OSError):
            self._lost_peer()


async def _within(future: asyncio.Future, seconds: float | None) -> bool:
    """Wait up to *seconds* (None: for ever) for *future*; True if it is done. On timeout
    it is left running."""
    if not future.done():
        if seconds is None:
            await future
        else:
            await asyncio.wait({future}, timeout=seconds)
    return future.done()


class _OutputForwarder:
    """Forwards a command's stdout and stderr to its client as the pipes fill.

    Producer and consumer, as in Twisted: the pipes are read from event-loop callbacks,
    each chunk framed and queued on the client's transport at once; while the transport
    holds more than its high-water mark the pipes are not read (so a fast command blocks
    on a full pipe), and reading resumes once it has drained. A short command thus costs
    no task, no buffer and no wake-up of its own. ``done`` is set when both pipes are at EOF.
    """

    def __init__(self, session: PrefixedSession, process: Child) -> None:
        self.session = session
        self.loop = asyncio.get_running_loop()
        self.transport = session.writer.transport
        # Up to 4 chunks may wait for the client before the pipes stop being read (the
        # default, 64 KiB, is under one chunk: reading would stop and start every chunk).
        self.transport.set_write_buffer_limits(high=4 * OUTPUT_CHUNK_SIZE, low=OUTPUT_CHUNK_SIZE)
        self.done: asyncio.Future[None] = self.loop.create_future()
        self._open = {process.stdout: Stdout, process.stderr: Stderr}
        self._resume: asyncio.Task | None = None
        self._start_reading()

    def _start_reading(self) -> None:
        for fd in self._open:
            self.loop.add_reader(fd, self._on_readable, fd)

    def _stop_reading(self) -> None:
        for fd in self._open:
            self.loop.remove_reader(fd)

    def _on_readable(self, fd: int) -> None:
        # A full chunk means the pipe may hold more: read on while the socket takes it all.
        for _ in range(BURST):
            try:
                data = os.read(fd, OUTPUT_CHUNK_SIZE)
            except BlockingIOError:
                return
            if not data:
                self.loop.remove_reader(fd)
                del self._open[fd]
                if not self._open and not self.done.done():
                    self.done.set_result(None)
                return
            session = self.session
            session._write(self._open[fd](data))
            if session._peer_gone or self._resume is not None:
                return
            buffered = self.transport.get_write_buffer_size()
            if buffered > self.transport.get_write_buffer_limits()[1]:
                self._stop_reading()  # the client is behind: let the pipes fill instead
                self._resume = self.loop.create_task(self._resume_when_drained())
                return
            if buffered or len(data) < OUTPUT_CHUNK_SIZE:
                return

    async def _resume_when_drained(self) -> None:
        await self.session.drain()
        self._resume = None
        self._start_reading()

    def close(self) -> None:
        """Stop reading (before the pipes are closed: the loop must forget them first)."""
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        else:
            self._stop_reading()
        self._open.clear()


# -------------------------------------------------------------------------------- cd


def parse_cd(command: str) -> str | None:
    """The target of a plain ``cd [DIR]`` command line, or None if it is anything else.

    ``cd`` alone gives ``""`` (home). Only a lone cd with a literal argument is the
    builtin: ``cd x && make`` or ``cd $DIR`` go to the shell as written, and that cd lasts
    for the one command, as over ssh.
    """
    if any(ch in command for ch in "`$(){};&|<>*?[\n"):
        return None  # the shell must expand or sequence it
    try:
        tokens = shlex.split(command)
    except ValueError:
        return None
    if not tokens or tokens[0] != "cd" or len(tokens) > 2:
        return None
    return tokens[1] if len(tokens) == 2 else ""


def resolve_cd(target: str, cwd: str, previous: str | None) -> str:
    """Where ``cd target`` from *cwd* leads; OSError (ENOENT, ENOTDIR, EACCES) if it cannot."""
    if not target:
        target = os.path.expanduser("~")
    elif target == "-":
        if previous is None:
            raise OSError(0, "OLDPWD not set")
        target = previous
    path = os.path.normpath(os.path.join(cwd, os.path.expanduser(target)))
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory")
    if not os.path.isdir(path):
        raise NotADirectoryError(20, "Not a directory")
    if not os.access(path, os.X_OK):
        raise PermissionError(13, "Permission denied")
    return path


# ------------------------------------------------------------------------ entry point


async def serve(config: ServerConfig, *, on_ready: Callable[[str, int], None] | None = None) -> None:
    """Run a server until SIGINT or SIGTERM, then close it cleanly.

    *on_ready* is called with the bound (host, port) once it listens.
    """
    server = Server(config)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            pass
    if on_ready is not None:
        on_ready(*server.address)
    await stop.wait()
    log.info("signal received: stopping")
    await server.close()


class BackgroundServer:
    """A server on its own event loop in a background thread, for demos, tests and scripts.

    ``with BackgroundServer(framing="naive", port=0) as server:`` then ``server.address``.
    Leaving the block closes it: running commands are killed, the thread joined.
    """

    def __init__(self, config: ServerConfig | None = None, **options) -> None:
        self.config = config if config is not None else ServerConfig(**{"port": 0, **options})
        self._loop = asyncio.new_event_loop()
        self._server = Server(self.config)
        self._thread: threading.Thread | None = None
        self.address: tuple[str, int] = ("", 0)

    def start(self) -> "BackgroundServer":
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._server.start())
                self.address = self._server.address
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                return
            finally:
                ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._server.close())
            self._loop.close()

        self._thread = threading.Thread(target=main, name="rcmd-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            raise failure[0]
        return self

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()
