"""Exceptions, each saying whose fault it is (h11's split).

Nothing here imports socket or asyncio: these are raised by the sans-I/O core
and by the transports alike.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (2 ms of `rcmd -c`)
if TYPE_CHECKING:
    from .result import CompletedCommand


class RcmdError(Exception):
    """Base class of every error rcmd raises on purpose."""


class ProtocolError(RcmdError):
    """The conversation broke the rcmd protocol."""


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol forbids (a bug in the caller)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that break the protocol: malformed, oversized or out of order."""


class FrameTooLarge(RemoteProtocolError):
    """A length prefix announced more bytes than the agreed maximum.

    Raised as soon as the 4-byte prefix is read, before any payload is buffered.
    """

    def __init__(self, size: int, max_frame_size: int) -> None:
        super().__init__(
            f"frame of {size} bytes exceeds the maximum of {max_frame_size} bytes "
            "(is the peer speaking another protocol, e.g. naive framing?)"
        )
        self.size = size
        self.max_frame_size = max_frame_size


class ProtocolMismatch(RemoteProtocolError):
    """The peer does not speak rcmd's prefixed protocol (no HELLO, or garbage instead)."""


class AuthenticationError(RcmdError):
    """The two ends could not prove to each other that they share the secret."""


class TlsError(RcmdError):
    """TLS could not be set up: an untrusted certificate, or one end not speaking TLS."""


class ConnectionClosed(RcmdError):
    """The peer closed the connection before the conversation was over."""


class ServerError(RcmdError):
    """The server reported an error (an ERROR message) and closed the connection."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"server error: {reason}")
        self.reason = reason


class CommandError(RcmdError):
    """A command run with ``check=True`` exited non-zero (like ``subprocess.CalledProcessError``).

    Carries the whole result: ``returncode``, ``stdout``, ``stderr`` and ``result``.
    """

    def __init__(self, result: CompletedCommand) -> None:
        self.result = result
        self.returncode = result.returncode
        self.command = result.command
        self.stdout = result.stdout
        self.stderr = result.stderr
        super().__init__(f"command {result.command!r} {result.describe_status()}")


class LocalWriteError(RcmdError):
    """Writing the command's output here failed: our stdout is a closed pipe (EPIPE) or a
    full disk (ENOSPC). The fault is local; the remote command was cancelled.

    ``errno`` and ``strerror`` are the OSError's.
    """

    def __init__(self, error: OSError) -> None:
        self.errno = error.errno
        self.strerror = error.strerror or str(error)
        super().__init__(f"write error: {self.strerror}")


class RemoteFileError(RcmdError):
    """The server refused or failed a file request (FILE_ERROR): a missing file, a path
    outside the user's home, a full quota, a checksum that did not match. The connection
    goes on. ``kept`` is how many bytes of a partial upload the server keeps for a resume."""

    def __init__(self, reason: str, kept: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kept = kept


class TransferError(RcmdError):
    """A transfer failed on this side: the local file changed while it was sent, or the
    downloaded bytes did not match the server's SHA-256. ``kept`` bytes stay for a resume."""

    def __init__(self, reason: str, kept: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kept = kept
