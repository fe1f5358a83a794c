"""What the blocking client (rcmd.client) and the asyncio client (rcmd.aio) share, sans-I/O.

Each transport only waits for bytes its own way; the rest is here once: the next message
with the server's end and its ERROR turned into exceptions (:func:`next_message`), one
command's state on this side (:class:`CommandState`: stdin, cancel, its Exit), the result
of a finished command (:func:`completed`), and the words for a failed TLS handshake
(:func:`tls_failure`). The handshake is rcmd.handshake's.
"""

from __future__ import annotations

from .errors import ConnectionClosed, ServerError, TlsError
from .framing import CLOSED, Status
from .messages import UNANNOUNCED_STDIN_CHUNK, Cancel, Error, Exit, Message, Stdin, StdinEnd
from .protocol import Connection

TYPE_CHECKING = False  # typing's own, without importing typing: 2 ms of a one-shot `rcmd -c`
if TYPE_CHECKING:
    from typing import Any, Protocol

    from .messages import AnyMessage
    from .result import CompletedCommand

    class Sender(Protocol):
        """A client as a command sees it: where its messages go, its encoding, its directory,
        and the largest STDIN chunk its server takes."""

        encoding: str
        cwd: str | None
        stdin_chunk_size: int

        def _send(self, message: Message) -> None: ...


__all__ = ["STDIN_CHUNK_SIZE", "CommandState", "completed", "host_port", "next_message", "tls_failure"]

#: Input is sent in STDIN messages of at most this size to a server that does not announce
#: its frame limit; to one that does, in chunks that fit it (messages.data_chunk_size()).
STDIN_CHUNK_SIZE = UNANNOUNCED_STDIN_CHUNK
#: OpenSSL's verify codes for a certificate valid but issued for another host name (62)
#: or IP address (64): a different fault from an untrusted CA, with a different fix.
X509_V_ERR_HOSTNAME_MISMATCH = 62
X509_V_ERR_IP_ADDRESS_MISMATCH = 64


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets (``[::1]:9000``), as URLs write it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def next_message(conn: Connection) -> AnyMessage | Status:
    """The next message from the server, or ``NEED_DATA`` (read more, feed it, call again).

    Raises ConnectionClosed at the server's end of the connection, ServerError for its
    ERROR (with its reason), RemoteProtocolError for garbage.
    """
    event = conn.next_event()
    if event is CLOSED:
        raise ConnectionClosed("the server closed the connection")
    if isinstance(event, Error):
        raise ServerError(event.reason)
    return event


class CommandState:
    """One command on this side of the connection: its stdin, a cancel asked for, its Exit.

    The transports' command streams (rcmd.client.CommandStream, rcmd.aio.AsyncCommandStream)
    add the waiting, and say which client they have (``client: Client``). Sending never
    blocks: each client queues what the socket cannot take now and sends it while output is read.
    """

    def __init__(self, client: Sender, command: str, *, stdin_open: bool = False) -> None:
        self.client = client
        self.command = command
        self.exit: Exit | None = None
        self._cancel_sent = False
        self._stdin_open = stdin_open

    def write_stdin(self, data: bytes | str) -> None:
        """Send *data* to the command's stdin (the stream was started with ``stdin=True``).

        Does not block: what the socket cannot take now is sent while output is read.
        Input for a command that has already ended is dropped by the server.
        """
        if not self._stdin_open:
            raise ValueError("stdin is not open: start the command with stdin=True")
        if isinstance(data, str):
            data = data.encode(self.client.encoding)
        if self.exit is None:
            chunk = self.client.stdin_chunk_size
            for start in range(0, len(data), chunk):
                self.client._send(Stdin(data[start : start + chunk]))

    def close_stdin(self) -> None:
        """End the command's stdin: it reads EOF."""
        if self._stdin_open:
            self._stdin_open = False
            if self.exit is None:
                self.client._send(StdinEnd())

    def cancel(self) -> None:
        """Ask the server to kill the command's process group (SIGTERM, then SIGKILL); its
        remaining output and its Exit still arrive."""
        if self.exit is None and not self._cancel_sent:
            self._cancel_sent = True
            self.client._send(Cancel())

    @property
    def cancel_requested(self) -> bool:
        """True once this side asked for a cancel; an Exit with ``cancelled`` set without it
        means the server cancelled the command on its own (it is shutting down)."""
        return self._cancel_sent

    def _ended(self, exit: Exit) -> None:
        """The command's Exit came: keep it, and follow its ``cd``."""
        self.exit = exit
        if exit.cwd is not None:
            self.client.cwd = exit.cwd


def completed(command: str, exit: Exit, stdout: Any, stderr: Any, encoding: str) -> CompletedCommand:
    """The :class:`CompletedCommand` of *command*, which ended with *exit*."""
    from .result import CompletedCommand  # not before: a one-shot `rcmd -c` never needs one

    return CompletedCommand(
        command=command,
        returncode=exit.returncode,
        stdout=stdout,
        stderr=stderr,
        signal=exit.signal,
        timed_out=exit.timed_out,
        cancelled=exit.cancelled,
        encoding=encoding,
    )


def tls_failure(host: str, port: int, exc: OSError) -> Exception:
    """The error to raise when the TLS handshake with *host* failed with *exc*: a TlsError
    saying what to do (trust its CA, connect by another name, or without TLS); a refused
    connection comes back as it is (nothing listens there: not a TLS fault)."""
    import ssl

    where = host_port(host, port)
    if isinstance(exc, ssl.SSLCertVerificationError):
        if exc.verify_code in (X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH):
            return TlsError(
                f"the TLS certificate of {where} is not for {host!r}: {exc.verify_message}"
                " (connect by a name or address the certificate lists)"
            )
        return TlsError(
            f"the TLS certificate of {where} is not trusted: {exc.verify_message}"
            " (give its CA with --tls-ca FILE)"
        )
    if isinstance(exc, ssl.SSLError):
        return TlsError(
            f"TLS with {where} failed ({exc.reason or exc}): the server may not use TLS; connect without --tls"
        )
    if isinstance(exc, ConnectionRefusedError):
        return exc
    return TlsError(f"TLS with {where} failed: {exc}: the server may not use TLS")
