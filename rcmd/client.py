"""The client library: ``connect()``, then ``run()`` or ``stream()``, shaped like subprocess.

A thin blocking transport around :class:`rcmd.protocol.Connection`. One selector loop does
all the I/O, sending and receiving together, so a command fed a large ``input`` while it
prints a large output cannot deadlock the two ends against each other.
"""

from __future__ import annotations

import codecs
import os
import selectors
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from .auth import load_secret
from .client_core import (
    STDIN_CHUNK_SIZE,
    CommandState,
    completed,
    host_port,
    next_message,
    tls_failure,
)
from .decoding import OutputDecoder, resolve_encoding
from .errors import ConnectionClosed, RcmdError, RemoteFileError, RemoteProtocolError, ServerError
from .framing import DEFAULT_MAX_FRAME_SIZE, NEED_DATA
from .handshake import ClientHandshake, hello_failure
from .messages import (
    MAX_DATA_CHUNK,
    AuthChallenge,
    AuthOk,
    Exit,
    Hello,
    Message,
    Ping,
    Pong,
    PtyRequest,
    Run,
    Stderr,
    Stdin,
    Stdout,
    WindowChange,
    data_chunk_size,
)
from .protocol import Connection, Phase, Role

__all__ = ["Client", "CommandStream", "CompletedCommand", "TimeoutExpired", "connect"]

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (2 ms of `rcmd -c`)
if TYPE_CHECKING:  # for annotations only: ssl is imported when TLS is used (4 ms of every start)
    import ssl
    from types import TracebackType
    from typing import IO, Any, Literal, TypeAlias, overload

    from .files import RemoteEntry, TransferResult
    from .naive import NaiveClient
    from .result import CompletedCommand, TimeoutExpired
    from .trace import FrameCounter, Tracer

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
#: Connecting and receiving the server's HELLO must both happen within this.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: How much one recv() takes.
READ_SIZE = 256 * 1024
#: Kept for callers that pass it: framing="auto" no longer guesses (see connect()).
AUTO_DETECT_WAIT = 1.0
#: In PTY mode, the keys a terminal turns into signals (with ISIG): Ctrl-C, Ctrl-\\, Ctrl-Z.
INTERRUPT_KEYS = frozenset(b"\x03\x1c\x1a")

#: Leaving a ``with client.stream()`` block on an error cancels the command and waits this
#: long for its Exit: the server's kill takes SIGTERM, 2 s, SIGKILL, then up to 1 s for the
#: pipes. A server silent for longer is disconnected rather than waited on for ever.
CANCEL_WAIT = 10.0
#: stdin_source: no more is read from the local file while this much waits to be sent, so
#: a 1 GiB input streams through a few chunks of memory, at the pace the command reads it.
STDIN_BACKLOG = 4 * MAX_DATA_CHUNK


#: Where run() may send a stream as it arrives: a file object (binary, or text with
#: ``text=True``) or a file descriptor.
Sink: TypeAlias = "IO[bytes] | IO[str] | int"


def command_line(command: str | Sequence[str]) -> str:
    """A command line for the server's shell: *command* itself, or an argv list quoted
    as ``shlex.join`` does. Raises TypeError for anything else (before it is sent)."""
    if isinstance(command, str):
        return command
    if isinstance(command, (list, tuple)) and command and all(isinstance(arg, str) for arg in command):
        import shlex  # an argv list only: `rcmd -c` sends a string

        return shlex.join(command)
    raise TypeError(f"command must be a string or a non-empty list of strings, not {command!r}")


def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Client:
    """A connection to an rcmd server (prefixed framing). Use :func:`connect` to make one.

    Commands run one after another. The remote working directory (``cwd``) follows
    ``cd`` commands. Not thread-safe: use one client per thread.
    """

    framing = "prefixed"

    def __init__(
        self,
        sock: socket.socket,
        *,
        address: tuple[str, int],
        encoding: str = "auto",
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        hello_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        secret: bytes | None = None,
        trace: Tracer | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        self.address = address
        self.user = user
        #: Logged in as a user who may only transfer files (no commands; paths inside the home).
        self.transfer_only = False
        #: The largest STDIN chunk sent: under the frame limit the server's HELLO announces.
        self.stdin_chunk_size = STDIN_CHUNK_SIZE
        # --trace: each recv() and each frame it completed, as lines for *trace* (rcmd.trace).
        self._trace = trace
        self._frame_counter: FrameCounter | None = None
        if trace is not None:
            from .trace import FrameCounter

            self._frame_counter = FrameCounter()
        self._sock = sock
        sock.setblocking(False)
        # What the non-blocking socket raises when it must wait; a TLS socket has two more.
        ssl = sys.modules.get("ssl")  # only a TLS connection has imported it
        self._tls_sock = sock if ssl is not None and isinstance(sock, ssl.SSLSocket) else None
        self._would_block: tuple[type[OSError], ...] = (BlockingIOError,)
        if ssl is not None and self._tls_sock is not None:
            self._would_block += (ssl.SSLWantReadError, ssl.SSLWantWriteError)
        self._conn = Connection(Role.CLIENT, max_frame_size=max_frame_size)
        self._outbox = bytearray()
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, selectors.EVENT_READ)
        # interrupt() writes here to wake the selector: safe from a signal handler.
        self._wakeup_recv, self._wakeup_send = socket.socketpair()
        self._wakeup_recv.setblocking(False)
        self._wakeup_send.setblocking(False)
        self._selector.register(self._wakeup_recv, selectors.EVENT_READ)
        self._interrupted = False
        self._window_size: tuple[int, int] | None = None  # a resize to pass on, from SIGWINCH
        self._want_write = False
        self._active: CommandStream | None = None
        self._source: int | None = None  # stdin_source: a file descriptor to forward
        self._source_watched = False  # registered with the selector (a pipe, a tty, a socket)
        self._source_pollable = True  # False for a regular file: epoll refuses those
        self._closed = False
        deadline = None if hello_timeout is None else time.monotonic() + hello_timeout
        try:
            self._log_in(
                ClientHandshake(self._where, secret, user=user, password=password),
                encoding,
                deadline,
                hello_timeout,
            )
        except BaseException:
            self.close()
            raise

    @property
    def _where(self) -> str:
        return host_port(*self.address)

    def _log_in(
        self, handshake: ClientHandshake, encoding: str, deadline: float | None, timeout: float | None
    ) -> None:
        """The handshake (rcmd.handshake): the server's HELLO, ours, and the proofs it asks for."""
        try:
            hello = self._next_event(deadline)
        except (TimeoutError, RcmdError) as exc:
            raise hello_failure(self._where, exc, timeout) from None
        assert isinstance(hello, Hello)  # Connection lets nothing else come first
        self.server_hello = hello
        self.stdin_chunk_size = data_chunk_size(hello, STDIN_CHUNK_SIZE)
        self.encoding = resolve_encoding(encoding, hello.encoding)
        self.cwd = hello.cwd
        self._send(handshake.answer(hello))
        try:
            if handshake.expects_challenge:
                challenge = self._next_event(deadline)
                assert isinstance(challenge, AuthChallenge)  # Connection lets nothing else come now
                self._send(handshake.prove(challenge))
            if handshake.expects_auth_ok:
                reply = self._next_event(deadline)
                assert isinstance(reply, AuthOk)  # Connection lets nothing else come now
                handshake.check_auth_ok(reply)
                if reply.cwd is not None:
                    self.cwd = reply.cwd  # a user's home
                self.transfer_only = bool(reply.transfer_only)
        except (ServerError, TimeoutError) as exc:
            raise handshake.failed(exc) from None

    # ------------------------------------------------------------------------ public API

    def run(
        self,
        command: str | Sequence[str],
        *,
        timeout: float | None = None,
        check: bool = False,
        input: bytes | str | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        capture_output: bool = True,
        stdout: Sink | None = None,
        stderr: Sink | None = None,
        text: bool = False,
        encoding: str | None = None,
        errors: str | None = None,
    ) -> CompletedCommand:
        """Run *command* and wait for it; return its :class:`CompletedCommand`, as
        ``subprocess.run`` does.

        *command* is a command line for the server's shell, or an argv list, quoted for
        the shell as ``shlex.join`` does (``["echo", "a b"]`` prints ``a b``).
        *timeout* (seconds) has the server kill the command's process group, and then
        raises :class:`TimeoutExpired` (a ``subprocess.TimeoutExpired``) with the output so
        far. *input* is sent as its stdin (str is encoded in *encoding*, else the server's).
        *cwd* and *env* apply to this command only.

        Output is captured in the result (bytes) unless *capture_output* is false. A
        *stdout* or *stderr* sink (a file object, or a file descriptor) gets that stream as
        it arrives instead. With *text* (or *encoding* / *errors*), output is decoded
        incrementally, in *encoding* (default: the server's) with *errors* (default
        ``"strict"``), for the result and for file-object sinks; a descriptor sink always
        gets bytes. Raises :class:`CommandError` when *check* is true and the status is not 0.
        """
        command = command_line(command)
        text_mode = text or encoding is not None or errors is not None
        codec = encoding or self.encoding
        if isinstance(input, str):
            input = input.encode(codec)
        parts: dict[type, list[Any]] = {Stdout: [], Stderr: []}
        sinks: dict[type, Sink | None] = {Stdout: stdout, Stderr: stderr}
        decoders: dict[type, codecs.IncrementalDecoder] = (
            {kind: codecs.getincrementaldecoder(codec)(errors or "strict") for kind in (Stdout, Stderr)}
            if text_mode
            else {}  # bytes pass as they are
        )

        def take(kind: type, data: bytes, final: bool = False) -> None:
            sink = sinks[kind]
            if isinstance(sink, int):
                _write_fd(sink, data)
                return
            chunk: bytes | str = decoders[kind].decode(data, final) if text_mode else data
            if sink is not None:
                if chunk:
                    sink.write(chunk)  # type: ignore[arg-type]
            elif capture_output:
                parts[kind].append(chunk)

        with self.stream(command, timeout=timeout, input=input, cwd=cwd, env=env) as events:
            for event in events:
                if isinstance(event, (Stdout, Stderr)):
                    take(type(event), event.data)
        for kind in (Stdout, Stderr):
            take(kind, b"", final=True)
        exit = events.exit
        assert exit is not None
        empty = "" if text_mode else b""

        def captured(kind: type) -> Any:
            return empty.join(parts[kind]) if capture_output and sinks[kind] is None else None

        result = completed(command, exit, captured(Stdout), captured(Stderr), codec)
        if exit.timed_out and timeout is not None:
            from .result import TimeoutExpired

            raise TimeoutExpired(result, timeout)
        if check:
            result.check_returncode()
        return result

    def stream(
        self,
        command: str | Sequence[str],
        *,
        timeout: float | None = None,
        input: bytes | str | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bool = False,
        stdin_source: int | None = None,
        pty: PtyRequest | None = None,
    ) -> CommandStream:
        """Start *command* and return a :class:`CommandStream` of its output as it arrives.

        Iterating yields :class:`Stdout` and :class:`Stderr` chunks, then one :class:`Exit`.
        Use it as a context manager: leaving early cancels the command. *input* is sent
        as the whole of stdin; or, with ``stdin=True``, stdin stays open for
        :meth:`CommandStream.write_stdin` until :meth:`CommandStream.close_stdin`.
        Without either, the command's stdin is empty. *stdin_source*, a readable file
        descriptor (0 for our own stdin), is forwarded as the command's stdin while its
        output is read, as the server takes it (memory stays bounded whatever the size),
        and its end of file is passed on: ``rcmd -c 'sha256sum' < big.iso``.

        *pty* runs the command on a pseudo-terminal of that type and size (see
        :attr:`supports_pty`): its output, stderr included, then all comes as Stdout, and
        :meth:`window_changed` passes resizes on.
        """
        command = command_line(command)
        if self._closed:
            raise ConnectionClosed("the client is closed")
        if self._active is not None and self._active.exit is None:
            raise RuntimeError("a command is still running on this connection; finish it first")
        if self._conn.phase is Phase.CLOSED:
            self.close()
            raise ConnectionClosed("the connection failed earlier; the client is closed")
        if isinstance(input, str):
            input = input.encode(self.encoding)
        if sum((input is not None, stdin, stdin_source is not None)) > 1:
            raise ValueError("give one of input=, stdin=True and stdin_source=")
        stdin = stdin or input is not None or stdin_source is not None
        self._send(Run(command, cwd=cwd, env=dict(env or {}), timeout=timeout, stdin=stdin, pty=pty))
        stream = self._active = CommandStream(self, command, stdin_open=stdin)
        stream.pty = pty is not None
        if stdin_source is not None:
            self._attach_source(stdin_source)
        if input is not None:
            stream.write_stdin(input)
            stream.close_stdin()
        return stream

    @property
    def supports_pty(self) -> bool:
        """The server runs commands on a PTY when asked (its HELLO lists the extension)."""
        return "pty" in (self.server_hello.extensions or ())

    @property
    def supports_ping(self) -> bool:
        return "ping" in (self.server_hello.extensions or ())

    def ping(self, timeout: float | None = DEFAULT_CONNECT_TIMEOUT) -> None:
        """Send PING and wait for its PONG, between commands: proves the connection alive
        and resets the server's idle timer. Raises ConnectionClosed, ServerError (the
        server said why it closed, e.g. its idle timeout), or TimeoutError."""
        if self._closed:
            raise ConnectionClosed("the client is closed")
        if self._active is not None and self._active.exit is None:
            raise RuntimeError("a command is running on this connection")
        self._send(Ping())
        deadline = None if timeout is None else time.monotonic() + timeout
        while not isinstance(self._next_event(deadline), Pong):
            pass

    def check_alive(self) -> None:
        """Between commands, without waiting: raise ConnectionClosed or ServerError (with
        the server's reason, e.g. its idle timeout) if the server has hung up. An idle
        server sends nothing unasked but that ERROR and its close, so anything readable now
        is the end."""
        if self._closed:
            raise ConnectionClosed("the client is closed")
        if self._active is not None and self._active.exit is None:
            raise RuntimeError("a command is running on this connection")
        try:
            while isinstance(self._next_event(time.monotonic()), Pong):
                pass  # the answer to a ping given up on
        except TimeoutError:
            return

    def window_changed(self, rows: int, cols: int) -> None:
        """The local terminal is now *rows* x *cols*: tell the running PTY command.

        Safe from a SIGWINCH handler: it only notes the size and wakes the I/O loop,
        which sends WINDOW_CHANGE before any input read after it.
        """
        self._window_size = (rows, cols)
        try:
            self._wakeup_send.send(b"\0")
        except OSError:
            pass

    def interrupt(self) -> None:
        """Cancel the running command, from a signal handler or another thread.

        Only sets a flag and wakes the I/O loop, which sends CANCEL at a safe point;
        the command's remaining output and its Exit still arrive. Without a running
        command it does nothing.
        """
        self._interrupted = True
        try:
            self._wakeup_send.send(b"\0")
        except OSError:
            pass  # full (a wakeup is pending anyway) or closed

    def decoder(self) -> OutputDecoder:
        """Incremental decoders for one command's stdout and stderr, in the server's encoding."""
        return OutputDecoder(self.encoding)

    # ------------------------------------------------------------- files (rcmd/files.py)

    def put(
        self,
        local: str | os.PathLike[str],
        remote: str,
        *,
        progress: Callable[[int, int | None], None] | None = None,
        resume: bool = True,
        preserve: bool = False,
    ) -> TransferResult:
        """Upload the file *local* to *remote* (relative to ``cwd``; ending in ``/``: into that
        directory, under the same name). Returns a TransferResult (``size``, ``sha256``,
        ``resumed_from``).

        The server writes a partial file beside the target and renames it into place only
        once the SHA-256 of the whole matches: the old file stays until then. An upload that
        is cut off leaves its partial file; with *resume* the next put of the same name
        checks it block by block and sends only from the first block that differs.
        *progress(done, total)* is called as bytes go. *preserve* keeps mode and mtime.
        Raises RemoteFileError (the server refused or failed: the connection goes on),
        TransferError (the local file changed meanwhile), OSError for the local file.
        On KeyboardInterrupt the connection is closed (the partial file stays).
        """
        from .files import put

        return put(self, local, remote, progress=progress, resume=resume, preserve=preserve)

    def get(
        self,
        remote: str,
        local: str | os.PathLike[str],
        *,
        progress: Callable[[int, int | None], None] | None = None,
        resume: bool = True,
        preserve: bool = False,
        fsync: bool = False,
    ) -> TransferResult:
        """Download *remote* to *local* (an existing directory: into it, under the same name),
        through a partial file renamed into place once the SHA-256 matches; see :meth:`put`.
        A failed local write (a full disk) closes the connection, the partial file kept.

        With *fsync* the file (and then its directory) is flushed to disk before the rename
        and after it, so the new file survives a crash of this machine; without it, as with
        scp and rsync, the kernel writes it back when it will. A put is always flushed by the
        server before FILE_DONE."""
        from .files import get

        return get(self, remote, local, progress=progress, resume=resume, preserve=preserve, fsync=fsync)

    def listdir(self, path: str = ".") -> list[RemoteEntry]:
        """The entries of the remote directory *path*, sorted by name. A server lists a large
        directory in pages (at most 5,000 entries, or 256 KiB, each): this asks for them all."""
        from .files import RemoteEntry, fs

        entries: list[RemoteEntry] = []
        after: str | None = None
        while True:
            result = fs(self, "ls", path, after)
            page = [RemoteEntry.from_json(item) for item in result.entries or ()]
            if after is not None and page and page[0].name <= after:
                raise RemoteFileError(f"{path}: the server sent a page of its listing again")
            entries += page
            if not result.truncated:
                return entries
            if not page:
                raise RemoteFileError(f"{path}: the server's listing stopped short (an empty page)")
            after = page[-1].name

    def stat(self, path: str) -> RemoteEntry:
        """What *path* is on the server (a symbolic link is followed, except in a jail)."""
        from .files import RemoteEntry, fs

        entries = fs(self, "stat", path).entries or [{"name": path}]
        return RemoteEntry.from_json(entries[0])

    def chdir(self, path: str) -> str:
        """Change the connection's directory (as a sticky ``cd``); returns the new one."""
        from .files import fs

        return fs(self, "cd", path).cwd or ""

    def getcwd(self) -> str:
        """The connection's directory (for a transfer-only user, ``/`` is the home)."""
        from .files import fs

        return fs(self, "pwd").cwd or ""

    def mkdir(self, path: str) -> None:
        from .files import fs

        fs(self, "mkdir", path)

    def remove(self, path: str) -> None:
        """Remove a file (not a directory)."""
        from .files import fs

        fs(self, "rm", path)

    def rmdir(self, path: str) -> None:
        """Remove an empty directory."""
        from .files import fs

        fs(self, "rmdir", path)

    def disk_usage(self) -> tuple[int, int | None]:
        """(bytes used, quota or None) of this user's home; RemoteFileError without accounts."""
        from .files import fs

        result = fs(self, "df")
        return result.used or 0, result.quota

    def close(self) -> None:
        """Close the connection (a running command is killed by the server)."""
        if not self._closed:
            self._closed = True
            self._selector.close()
            self._sock.close()
            self._wakeup_recv.close()
            self._wakeup_send.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------- I/O

    def _send(self, message: Message) -> None:
        self._flush(self._conn.send(message))

    def _flush(self, data: bytes = b"") -> None:
        """Send the outbox, then *data*, as far as the socket takes them now without blocking;
        the rest waits in the outbox. With the outbox empty, as it mostly is, *data* goes
        straight from the message: STDIN is not copied into the outbox first."""
        pending: bytes | memoryview = data
        try:
            if pending and not self._outbox:
                pending = memoryview(data)[self._sock.send(data) :]
            if pending:
                self._outbox += pending
                pending = b""
            while self._outbox:
                sent = self._sock.send(self._outbox)
                del self._outbox[:sent]
        except self._would_block:
            if pending:
                self._outbox += pending
        except (BrokenPipeError, ConnectionResetError):
            # The server hung up. What it said last (an ERROR, or just the close) is still
            # to be read, and says more than EPIPE: the reads report it.
            self._outbox.clear()
        except OSError as exc:
            raise ConnectionClosed(f"connection to the server lost: {exc}") from None
        want_write = bool(self._outbox)
        if want_write != self._want_write:
            self._want_write = want_write
            mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
            self._selector.modify(self._sock, mask)

    def _next_event(self, deadline: float | None = None) -> Message:
        """The next message from the server, doing I/O until one is whole.

        Raises ServerError (the server sent ERROR), ConnectionClosed, RemoteProtocolError,
        or TimeoutError when *deadline* (a time.monotonic() value) passes.
        """
        while (event := next_message(self._conn)) is NEED_DATA:
            self._wait_for_io(deadline)
        return event  # type: ignore[return-value]

    def _wait_for_io(self, deadline: float | None) -> None:
        if self._tls_sock is not None and self._tls_sock.pending():
            self._receive()  # decrypted bytes wait inside the TLS layer, where select() cannot see
            return
        # A regular file is always readable (and epoll refuses it): read it while there is room.
        pumped = self._source is not None and not self._source_pollable and self._source_has_room()
        if pumped:
            self._pump_source()
        else:
            self._watch_source()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = self._selector.select(0 if pumped else timeout)
        if not ready and not pumped:
            raise TimeoutError("timed out waiting for the server")
        if len(ready) > 1:
            # The wakeup first: a resize noted before some input must reach the server before it.
            ready.sort(key=lambda item: item[0].fileobj is not self._wakeup_recv)
        for key, mask in ready:
            if key.fileobj is self._wakeup_recv:
                self._take_interrupt()
                continue
            if key.fileobj is self._source:
                self._pump_source()
                continue
            if mask & selectors.EVENT_WRITE:
                self._flush()
            if mask & selectors.EVENT_READ:
                self._receive()

    def _receive(self) -> None:
        """One recv_into() straight into the framer's buffer: the kernel's copy is the only
        one until a message takes its bytes (the framer reuses that buffer)."""
        try:
            with self._conn.get_buffer(READ_SIZE) as room:
                count = self._sock.recv_into(room)
                received = bytes(room[:count]) if self._trace is not None else b""
        except self._would_block:
            return
        except OSError as exc:
            raise ConnectionClosed(f"connection to the server lost: {exc}") from None
        self._conn.buffer_updated(count)
        if self._trace is not None:
            self._trace_received(received)

    def _trace_received(self, received: bytes) -> None:
        assert self._trace is not None
        assert self._frame_counter is not None
        count = len(received)
        self._trace(f"recv {count} bytes" if count else "recv 0 bytes: the server closed the connection")
        for line in self._frame_counter.receive(received):
            self._trace(line)

    # -------------------------------------------------------------- stdin from a file

    def _attach_source(self, fd: int) -> None:
        self._detach_source()  # a command that ended in an error may have left one
        self._source = fd
        self._source_pollable = True
        try:
            self._selector.register(fd, selectors.EVENT_READ)
            self._source_watched = True
        except PermissionError:  # a regular file (or /dev/null): always readable
            self._source_pollable = False

    def _detach_source(self) -> None:
        if self._source is not None:
            if self._source_watched:
                self._selector.unregister(self._source)
            self._source = None
            self._source_watched = False

    def _source_has_room(self) -> bool:
        return len(self._outbox) < STDIN_BACKLOG

    def _watch_source(self) -> None:
        """Watch the source only while the outbox has room: that is the flow control."""
        if self._source is None or not self._source_pollable:
            return
        want = self._source_has_room()
        if want != self._source_watched:
            if want:
                self._selector.register(self._source, selectors.EVENT_READ)
            else:
                self._selector.unregister(self._source)
            self._source_watched = want

    def _pump_source(self) -> None:
        """Forward one chunk of the source; at its end (or a read error), end stdin."""
        assert self._source is not None
        stream = self._active
        try:
            data = os.read(self._source, self.stdin_chunk_size)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # EIO from a terminal that went away: as end of file
        if stream is None or stream.exit is not None:
            self._detach_source()
            return
        if data and stream.pty and self.supports_ping and not INTERRUPT_KEYS.isdisjoint(data):
            # As a terminal flushes its output queue when a key becomes a signal: what the
            # server sent before it got the key is dropped, up to the PONG answering a PING
            # sent just before the key. Before, not after: the program's answer to the key
            # (a KeyboardInterrupt) always comes after that PONG, and is never dropped.
            self._outbox += self._conn.send(Ping())
            self._outbox += self._conn.send(Stdin(data))
            stream._pongs_awaited += 1
            self._flush()
        elif data:
            stream.write_stdin(data)
        else:
            self._detach_source()
            stream.close_stdin()

    def _take_interrupt(self) -> None:
        try:
            while self._wakeup_recv.recv(4096):
                pass
        except BlockingIOError:
            pass
        running = self._active is not None and self._active.exit is None
        if self._window_size is not None:
            rows, cols = self._window_size
            self._window_size = None
            if running and self.supports_pty:
                self._send(WindowChange(rows, cols))
        if self._interrupted:
            self._interrupted = False
            if self._active is not None and self._active.exit is None:
                self._active.cancel()


class CommandStream(CommandState):
    """The output of one running command, as it arrives. Made by :meth:`Client.stream`.

    Iterate for :class:`Stdout` / :class:`Stderr` chunks and a last :class:`Exit`, which
    is also kept as ``exit``. ``cancel()`` asks the server to kill the command; its
    remaining output and its Exit still arrive. ``close()`` (or leaving a ``with`` block)
    cancels a command that is still running and waits for its Exit, so the connection
    can run the next command. Leaving the block on an exception waits at most
    :data:`CANCEL_WAIT` seconds, then closes the connection; on KeyboardInterrupt (or any
    other BaseException that is not an Exception) it closes the connection at once.
    """

    client: Client

    def __init__(self, client: Client, command: str, *, stdin_open: bool = False) -> None:
        super().__init__(client, command, stdin_open=stdin_open)
        self.pty = False
        self._pongs_awaited = 0  # PINGs sent after an interrupt key (PTY mode)

    def __iter__(self) -> Iterator[Stdout | Stderr | Exit]:
        return self

    def __next__(self) -> Stdout | Stderr | Exit:
        if self.exit is not None:
            raise StopIteration
        try:
            event = self.client._next_event()
            while isinstance(event, Pong):  # a keepalive's, or the mark after an interrupt key
                self._pongs_awaited = max(0, self._pongs_awaited - 1)
                event = self.client._next_event()
        except (ServerError, ConnectionClosed, RemoteProtocolError):
            # The conversation is over: close, so later calls say so at once, never hang
            # on a command that will not end ("still running").
            self.client.close()
            raise
        if isinstance(event, Exit):
            self._ended(event)
            self.client._detach_source()
        return event  # type: ignore[return-value]

    @property
    def flushing(self) -> bool:
        """PTY mode: an interrupt key was typed and its PONG has not come back: the output
        arriving now was in flight before the key took effect (a terminal would flush it)."""
        return self._pongs_awaited > 0

    @property
    def cancelling(self) -> bool:
        """A cancel was asked for (by :meth:`cancel` or :meth:`Client.interrupt`): what
        arrives from now on is the output that was in flight, up to the Exit."""
        return self._cancel_sent or self.client._interrupted

    def wait(self) -> Exit:
        """Discard the rest of the output and return the Exit."""
        for _event in self:
            pass
        assert self.exit is not None
        return self.exit

    def close(self) -> None:
        if self.exit is None and not self.client._closed:
            self.cancel()
            self.wait()

    def __enter__(self) -> CommandStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        elif issubclass(exc_type, (RcmdError, OSError)):
            pass  # a connection or protocol error: there is nothing left to wait for
        elif issubclass(exc_type, Exception):
            self._cancel_within(CANCEL_WAIT)
        else:
            # KeyboardInterrupt, SystemExit, a test runner's timeout: whoever raised it wants
            # out now, so never wait for the server. Closing kills the command there.
            self.client.close()

    def _cancel_within(self, seconds: float) -> None:
        """Cancel a running command and wait up to *seconds* for its Exit, so the connection
        can go on; a server that does not answer in time (or at all) is disconnected."""
        if self.exit is not None or self.client._closed:
            return
        deadline = time.monotonic() + seconds
        try:
            self.cancel()
            while self.exit is None:
                event = self.client._next_event(deadline)
                if isinstance(event, Exit):
                    self._ended(event)
        except (RcmdError, OSError):  # TimeoutError included
            self.client.close()


if TYPE_CHECKING:  # the overloads are for type checkers: typing is not imported at run time

    @overload
    def connect(
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        framing: Literal["prefixed"] = "prefixed",
        encoding: str = "auto",
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        auto_wait: float = AUTO_DETECT_WAIT,
        secret: bytes | str | None = None,
        tls: bool | ssl.SSLContext = False,
        tls_ca: str | None = None,
        trace: Tracer | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> Client: ...

    @overload
    def connect(
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        framing: Literal["naive"],
        encoding: str = "auto",
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        auto_wait: float = AUTO_DETECT_WAIT,
        secret: bytes | str | None = None,
        tls: bool | ssl.SSLContext = False,
        tls_ca: str | None = None,
        trace: Tracer | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> NaiveClient: ...

    @overload
    def connect(
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        framing: str,
        encoding: str = "auto",
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        auto_wait: float = AUTO_DETECT_WAIT,
        secret: bytes | str | None = None,
        tls: bool | ssl.SSLContext = False,
        tls_ca: str | None = None,
        trace: Tracer | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> Client | NaiveClient: ...


def connect(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    framing: str = "prefixed",
    encoding: str = "auto",
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    auto_wait: float = AUTO_DETECT_WAIT,
    secret: bytes | str | None = None,
    tls: bool | ssl.SSLContext = False,
    tls_ca: str | None = None,
    trace: Tracer | None = None,
    user: str | None = None,
    password: str | None = None,
) -> Client | NaiveClient:
    """Connect to an rcmd server and return a :class:`Client` (a context manager).

    *framing* is ``"prefixed"``, ``"naive"`` or ``"auto"``. With ``"naive"`` it returns a
    :class:`rcmd.naive.NaiveClient`: the tutorial's reader, deliberately broken. ``"auto"``
    is the same as ``"prefixed"``: it used to take a server silent for *auto_wait* seconds
    for a naive one, but so is a web server, a stuck port or a slow HELLO, and a command
    sent into those was reported as a success. Naive framing must be asked for.

    *secret* is the shared secret for a server that requires authentication; when none is
    given, $RCMD_SECRET is read, as the ``rcmd`` command does (rcmd.auth.load_secret reads
    a secret file). With a secret, the client refuses a server that does not prove it knows
    it, and so also a naive server (no handshake): an explicit secret with
    ``framing="naive"`` is a ValueError. ``framing="naive"`` ignores $RCMD_SECRET.

    *tls* (or *tls_ca*, a CA file to trust instead of the system's) wraps the connection
    in TLS, checking the server's certificate against *host*; *tls* may be an SSLContext.

    *user* and *password* log in to a server with user accounts (``rcmd-server --users``):
    SCRAM-SHA-256, where both ends prove themselves and the server keeps no password.

    *trace*, a function taking a line of text, is called for each ``recv()`` the client makes
    and each frame that recv() completed (``rcmd --trace`` prints them): see rcmd.trace.

    Raises OSError subclasses for connection failures (ConnectionRefusedError,
    socket.gaierror, TimeoutError), ProtocolMismatch when a prefixed connection gets no
    HELLO, or garbage, from the server, AuthenticationError, TlsError (including a
    plaintext connection to a TLS server), and rcmd.auth.SecretError (a ValueError) for a
    $RCMD_SECRET shorter than 16 bytes.
    """
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if framing not in ("prefixed", "naive", "auto"):
        raise ValueError(f"framing must be 'prefixed', 'naive' or 'auto', not {framing!r}")
    if framing == "naive" and secret is not None:
        raise ValueError("naive framing has no handshake: a secret cannot be used with it")
    if user is not None and (framing == "naive" or secret is not None):
        raise ValueError("give a user and password, or a secret, not both; naive framing has neither")
    if secret is None and framing != "naive" and user is None:
        secret = load_secret()  # $RCMD_SECRET, or None
    use_tls = bool(tls) or tls_ca is not None
    if use_tls and framing == "naive":
        raise ValueError("naive framing has no TLS")
    deadline = None if connect_timeout is None else time.monotonic() + connect_timeout
    # create_connection() hands the host to getaddrinfo(), which takes bytes (typeshed says str).
    sock = socket.create_connection((resolvable(host), port), timeout=connect_timeout)  # type: ignore[arg-type]
    try:
        if use_tls:
            sock = _start_tls(sock, host, port, tls, tls_ca)
            framing = "prefixed"  # TLS is only spoken by prefixed servers
        if framing == "naive":
            from .naive import NaiveClient

            return NaiveClient(sock, encoding=encoding, trace=trace)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        remaining = None if deadline is None else max(0.001, deadline - time.monotonic())
        return Client(
            sock,
            address=(host, port),
            encoding=encoding,
            max_frame_size=max_frame_size,
            hello_timeout=remaining,
            secret=secret,
            trace=trace,
            user=user,
            password=password,
        )
    except BaseException:
        sock.close()
        raise


def resolvable(host: str) -> str | bytes:
    """*host* as getaddrinfo() takes it without help: an ASCII name as bytes, since a str
    goes through the "idna" codec, whose import (stringprep, unicodedata) is ~5% of a
    one-shot ``rcmd -c``. A name with other letters stays a str, for IDNA to encode."""
    return host.encode("ascii") if host.isascii() else host


def _start_tls(
    sock: socket.socket, host: str, port: int, tls: bool | ssl.SSLContext, tls_ca: str | None
) -> ssl.SSLSocket:
    """The TLS handshake, blocking (the socket's timeout applies), with readable failures."""
    import ssl

    context = tls if isinstance(tls, ssl.SSLContext) else ssl.create_default_context(cafile=tls_ca)
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except OSError as exc:  # ssl.SSLError included
        raise tls_failure(host, port, exc) from None


def __getattr__(name: str) -> object:
    """CompletedCommand and TimeoutExpired, from rcmd.result on first use: a one-shot
    ``rcmd -c`` never makes one, and would pay for dataclasses and subprocess."""
    if name in ("CompletedCommand", "TimeoutExpired"):
        from . import result

        return getattr(result, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
