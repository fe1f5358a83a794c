"""The asyncio client: the same conversation as :mod:`rcmd.client`, on an event loop.

    async with rcmd.aio.connect("127.0.0.1", 9000) as client:
        result = await client.run("uname -a")
        async with client.stream("make") as events:
            async for event in events:
                ...  # rcmd.Stdout / rcmd.Stderr chunks as they come, then rcmd.Exit

A thin transport around :class:`rcmd.protocol.Connection` (framing, parsing and the state
machine) and :class:`rcmd.handshake.ClientHandshake` (the proofs): this module only moves
bytes between them and an asyncio stream. Results are the blocking client's
:class:`~rcmd.client.CompletedCommand`. Many connections on one loop are how
:class:`rcmd.group.Group` runs a command on many hosts at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Generator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING

from .auth import load_secret
from .client import CANCEL_WAIT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HOST, DEFAULT_PORT, READ_SIZE
from .client_core import STDIN_CHUNK_SIZE, CommandState, completed, host_port, next_message, tls_failure
from .decoding import resolve_encoding
from .errors import ConnectionClosed, RcmdError, ServerError
from .framing import DEFAULT_MAX_FRAME_SIZE, NEED_DATA
from .handshake import ClientHandshake, hello_failure
from .messages import AuthChallenge, AuthOk, Exit, Hello, Message, Run, Stderr, Stdout, data_chunk_size
from .protocol import Connection, Role
from .result import CompletedCommand

if TYPE_CHECKING:
    import ssl

__all__ = ["AsyncClient", "AsyncCommandStream", "connect"]


class AsyncClient:
    """A connection to an rcmd server, on an asyncio loop. Made by :func:`connect`.

    Commands run one after another on one connection (open several for parallel work); the
    remote working directory (``cwd``) follows ``cd``. ``encoding`` is the server's.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        address: tuple[str, int],
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        self.address = address
        self._reader = reader
        self._writer = writer
        self._conn = Connection(Role.CLIENT, max_frame_size=max_frame_size)
        self._active: AsyncCommandStream | None = None
        self._closed = False
        self.encoding = "utf-8"
        self.cwd: str | None = None
        self.server_hello: Hello | None = None
        #: The largest STDIN chunk sent: under the frame limit the server's HELLO announces.
        self.stdin_chunk_size = STDIN_CHUNK_SIZE
        self._login: ClientHandshake | None = None  # the handshake, until connect() returns

    @property
    def where(self) -> str:
        return host_port(*self.address)

    async def _handshake(
        self,
        encoding: str,
        secret: bytes | None,
        timeout: float | None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        """Receive the server's HELLO, answer it, check its AUTH_OK if it asked for a proof."""
        try:
            hello = await self._next_event()
        except (TimeoutError, RcmdError) as exc:
            raise hello_failure(self.where, exc, timeout) from None
        assert isinstance(hello, Hello)  # Connection lets nothing else come first
        self.server_hello = hello
        self.stdin_chunk_size = data_chunk_size(hello, STDIN_CHUNK_SIZE)
        self.encoding = resolve_encoding(encoding, hello.encoding)
        self.cwd = hello.cwd
        handshake = self._login = ClientHandshake(self.where, secret, user=user, password=password)
        self._send(handshake.answer(hello))
        try:
            if handshake.expects_challenge:
                challenge = await self._next_event()
                assert isinstance(challenge, AuthChallenge)  # Connection lets nothing else come now
                # PBKDF2 takes a large fraction of a second: not on the loop other hosts share.
                self._send(await asyncio.to_thread(handshake.prove, challenge))
            if handshake.expects_auth_ok:
                reply = await self._next_event()
                assert isinstance(reply, AuthOk)  # Connection lets nothing else come now
                handshake.check_auth_ok(reply)
                if reply.cwd is not None:
                    self.cwd = reply.cwd  # a user's home
        except ServerError as exc:
            raise handshake.failed(exc) from None

    # ------------------------------------------------------------------------ public API

    async def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        check: bool = False,
        input: bytes | str | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CompletedCommand:
        """Run *command* and wait for it; as :meth:`rcmd.client.Client.run`.

        Cancelling the awaiting task closes the connection (the server kills the command).
        """
        stdout: list[bytes] = []
        stderr: list[bytes] = []
        async with self.stream(command, timeout=timeout, input=input, cwd=cwd, env=env) as events:
            async for event in events:
                if isinstance(event, Stdout):
                    stdout.append(event.data)
                elif isinstance(event, Stderr):
                    stderr.append(event.data)
        exit = events.exit
        assert exit is not None
        result = completed(command, exit, b"".join(stdout), b"".join(stderr), self.encoding)
        if check:
            result.check_returncode()
        return result

    def stream(
        self,
        command: str,
        *,
        timeout: float | None = None,
        input: bytes | str | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bool = False,
    ) -> AsyncCommandStream:
        """Start *command*; return an :class:`AsyncCommandStream` of its output.

        ``async for`` yields Stdout and Stderr chunks, then one Exit. Use it as an async
        context manager: leaving early cancels the command and waits for its Exit. *input*
        is the whole of stdin; with ``stdin=True`` stdin stays open for ``write_stdin``.
        """
        if self._closed:
            raise ConnectionClosed("the client is closed")
        if self._active is not None and self._active.exit is None:
            raise RuntimeError("a command is still running on this connection; finish it first")
        if isinstance(input, str):
            input = input.encode(self.encoding)
        if input is not None and stdin:
            raise ValueError("give input= or stdin=True, not both")
        stdin_open = stdin or input is not None
        self._send(Run(command, cwd=cwd, env=dict(env or {}), timeout=timeout, stdin=stdin_open))
        stream = self._active = AsyncCommandStream(self, command, stdin_open=stdin_open)
        if input is not None:
            # Buffered by the transport and sent while the output is read: never a deadlock
            # between a large input and a large output.
            stream.write_stdin(input)
            stream.close_stdin()
        return stream

    async def close(self) -> None:
        """Close the connection (a running command is killed by the server)."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (OSError, RcmdError):
            pass  # it is gone either way

    def abort(self) -> None:
        """Close at once, without waiting (for a task being cancelled)."""
        self._closed = True
        self._writer.transport.abort()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None or issubclass(exc_type, Exception):
            await self.close()
        else:
            self.abort()  # cancelled, KeyboardInterrupt: do not wait on the peer

    # ------------------------------------------------------------------------- transport

    def _send(self, message: Message) -> None:
        if self._closed:
            raise ConnectionClosed("the client is closed")
        self._writer.write(self._conn.send(message))

    async def _next_event(self) -> Message:
        """The next message from the server, reading until one is whole.

        Raises ServerError (the server sent ERROR), ConnectionClosed, RemoteProtocolError.
        """
        while (event := next_message(self._conn)) is NEED_DATA:
            try:
                data = await self._reader.read(READ_SIZE)
            except OSError as exc:
                raise ConnectionClosed(f"connection to the server lost: {exc}") from None
            self._conn.receive_data(data)
        return event  # type: ignore[return-value]


class AsyncCommandStream(CommandState):
    """The output of one running command. Made by :meth:`AsyncClient.stream`.

    ``async for`` yields Stdout / Stderr chunks and a last Exit (also kept as ``exit``).
    Leaving ``async with`` early cancels the command and waits up to :data:`CANCEL_WAIT`
    seconds for its Exit, else closes the connection; on cancellation of the task it closes
    the connection at once.
    """

    client: AsyncClient

    def __aiter__(self) -> AsyncIterator[Stdout | Stderr | Exit]:
        return self

    async def __anext__(self) -> Stdout | Stderr | Exit:
        if self.exit is not None:
            raise StopAsyncIteration
        event = await self.client._next_event()
        if isinstance(event, Exit):
            self._ended(event)
        return event  # type: ignore[return-value]

    async def wait(self) -> Exit:
        """Discard the rest of the output and return the Exit."""
        async for _event in self:
            pass
        assert self.exit is not None
        return self.exit

    async def __aenter__(self) -> AsyncCommandStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.exit is not None or self.client._closed:
            return
        if exc_type is not None and issubclass(exc_type, (RcmdError, OSError)):
            return  # the connection failed: nothing left to wait for
        if exc_type is not None and not issubclass(exc_type, Exception):
            self.client.abort()  # cancelled: the server kills the command when we go
            return
        try:
            self.cancel()
            await asyncio.wait_for(self.wait(), CANCEL_WAIT)
        except (RcmdError, OSError, asyncio.TimeoutError):
            self.client.abort()


class _Connecting:
    """What :func:`connect` returns: ``await`` it for an AsyncClient, or ``async with`` it."""

    def __init__(self, opening: Generator[object, None, AsyncClient]) -> None:
        self._opening = opening
        self._client: AsyncClient | None = None

    def __await__(self) -> Generator[object, None, AsyncClient]:
        return self._opening

    async def __aenter__(self) -> AsyncClient:
        self._client = await self
        return self._client

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._client is not None
        await self._client.__aexit__(exc_type, exc, tb)


def connect(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    encoding: str = "auto",
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    secret: bytes | str | None = None,
    tls: bool | ssl.SSLContext = False,
    tls_ca: str | None = None,
    user: str | None = None,
    password: str | None = None,
) -> _Connecting:
    """Connect to an rcmd server (prefixed framing): ``async with connect(...) as client``,
    or ``client = await connect(...)`` then ``await client.close()``.

    The options are :func:`rcmd.client.connect`'s (*user* and *password* log in to a
    server with user accounts, as ``rcmd --user``); *connect_timeout* covers the TCP
    connection, TLS and the whole handshake. Raises what that raises: OSError subclasses
    (ConnectionRefusedError, TimeoutError, socket.gaierror), ProtocolMismatch,
    AuthenticationError, TlsError, and rcmd.auth.SecretError for a bad $RCMD_SECRET.
    """
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if secret is None and user is None:
        secret = load_secret()
    return _Connecting(
        _open(
            host, port, encoding, connect_timeout, max_frame_size, secret, tls, tls_ca, user, password
        ).__await__()
    )


async def _open(
    host: str,
    port: int,
    encoding: str,
    connect_timeout: float | None,
    max_frame_size: int,
    secret: bytes | None,
    tls: bool | ssl.SSLContext,
    tls_ca: str | None,
    user: str | None,
    password: str | None,
) -> AsyncClient:
    resolve_encoding(encoding, None)  # LookupError now for an unknown codec, not after connecting
    started = time.monotonic()
    context: ssl.SSLContext | None = None
    if tls or tls_ca is not None:
        import ssl

        context = tls if isinstance(tls, ssl.SSLContext) else ssl.create_default_context(cafile=tls_ca)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=context, server_hostname=host if context is not None else None
            ),
            connect_timeout,
        )
    except asyncio.TimeoutError:
        raise TimeoutError(f"cannot connect to {host_port(host, port)} within {connect_timeout:g}s") from None
    except OSError as exc:
        if context is not None:
            raise tls_failure(host, port, exc) from None
        raise
    client = AsyncClient(reader, writer, address=(host, port), max_frame_size=max_frame_size)
    remaining = (
        None if connect_timeout is None else max(0.001, connect_timeout - (time.monotonic() - started))
    )
    try:
        await asyncio.wait_for(
            client._handshake(encoding, secret, connect_timeout, user, password), remaining
        )
    except asyncio.TimeoutError as exc:
        client.abort()
        if client._login is None:  # no HELLO came
            raise hello_failure(client.where, TimeoutError(), connect_timeout) from exc
        raise client._login.failed(TimeoutError()) from exc
    except BaseException:
        client.abort()
        raise
    return client
