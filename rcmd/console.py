"""Running commands for a person at a terminal: live output, exit codes, Ctrl-C.

Shared by the one-shot mode, piped lines and the interactive prompt.
"""

from __future__ import annotations

import codecs
import enum
import os
import signal
import socket
from collections.abc import Iterable
from types import FrameType

from .decoding import OutputDecoder
from .errors import (
    AuthenticationError,
    ConnectionClosed,
    FrameTooLarge,
    LocalWriteError,
    ProtocolMismatch,
    RemoteProtocolError,
    ServerError,
    TlsError,
)
from .messages import Exit, Stderr, Stdout

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (2 ms of `rcmd -c`)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn, TextIO, TypeAlias

    from .client import Client, CommandStream
    from .naive import NaiveClient

    #: What signal.signal() takes and gives back: a function, SIG_DFL or SIG_IGN, or None.
    Handler: TypeAlias = Callable[[int, FrameType | None], Any] | int | None

RED = "\x1b[31m"
DIM_RED = "\x1b[2;31m"
RESET = "\x1b[0m"


class ExitStatus(enum.IntEnum):
    """rcmd's own exit codes. Otherwise rcmd exits with the remote command's status.

    Codes from 250 up can also be a remote command's own status, as ssh's 255 can.
    """

    OK = 0
    USAGE = 2  #: bad arguments (typer's code)
    PIPE_CLOSED = 141  #: our stdout was a pipe its reader closed: quiet, as ``cat`` (128 + SIGPIPE)
    WRITE_FAILED = 245  #: writing the output here failed (e.g. the disk is full); said on stderr
    STATUS_UNKNOWN = 246  #: naive framing: the command may have run, its status never comes back
    TIMED_OUT = 124  #: the remote command ran past --timeout and was killed (as timeout(1))
    CANCELLED = 130  #: Ctrl-C cancelled the remote command (128 + SIGINT)
    SIGNAL_BASE = 128  #: a command killed by signal N exits 128 + N, as in a shell
    TLS_FAILED = 247  #: TLS could not be set up (untrusted certificate, or no TLS on the other end)
    AUTH_FAILED = 248  #: the secret was missing or wrong, or the server could not prove it has it
    CONNECT_TIMEOUT = 249  #: no connection (or no handshake) within --connect-timeout
    FRAME_TOO_LARGE = 250  #: the server sent a frame over the size limit
    PROTOCOL_MISMATCH = 251  #: the server does not speak rcmd's prefixed protocol
    PROTOCOL_ERROR = 252  #: the server broke the protocol
    CONNECTION_LOST = 253  #: the server closed the connection, or reported an error
    HOST_NOT_FOUND = 254  #: the host name did not resolve
    CONNECTION_FAILED = 255  #: connection refused or unreachable (as ssh)


def connection_failure(
    exc: BaseException, where: str, host: str, connect_timeout: float
) -> tuple[ExitStatus, str] | None:
    """rcmd's exit status and message for a connection that could not be made or was lost
    (*where* is ``host:port``, *host* the name as given); None for any other exception,
    including an OSError that is not one of connecting's (the caller knows what it was doing)."""
    if isinstance(exc, AuthenticationError):
        return ExitStatus.AUTH_FAILED, str(exc)
    if isinstance(exc, TlsError):
        return ExitStatus.TLS_FAILED, str(exc)
    if isinstance(exc, ProtocolMismatch):
        return ExitStatus.PROTOCOL_MISMATCH, str(exc)
    if isinstance(exc, FrameTooLarge):
        return ExitStatus.FRAME_TOO_LARGE, f"{where}: {exc}"
    if isinstance(exc, RemoteProtocolError):
        return ExitStatus.PROTOCOL_ERROR, f"{where}: protocol error: {exc}"
    if isinstance(exc, (ServerError, ConnectionClosed)):
        return ExitStatus.CONNECTION_LOST, f"{where}: {exc}"
    if isinstance(exc, ConnectionRefusedError):
        return (
            ExitStatus.CONNECTION_FAILED,
            f"cannot connect to {where}: connection refused (is rcmd-server running?)",
        )
    if isinstance(exc, socket.gaierror):
        return ExitStatus.HOST_NOT_FOUND, f"cannot resolve host {host!r}: {exc.strerror}"
    if isinstance(exc, TimeoutError):
        return ExitStatus.CONNECT_TIMEOUT, f"cannot connect to {where}: no answer within {connect_timeout:g}s"
    return None


def exit_status(exit: Exit) -> int:
    """The local exit code for a remote command's end, as ssh or a shell would give it."""
    if exit.timed_out:
        return ExitStatus.TIMED_OUT
    if exit.cancelled:
        return ExitStatus.CANCELLED
    if exit.signal is not None:
        return ExitStatus.SIGNAL_BASE + exit.signal
    return exit.returncode & 0xFF


def describe_exit(exit: Exit) -> str | None:
    """A short note for a command that did not succeed, e.g. ``exit 3``; None for success."""
    if exit.timed_out:
        return "timed out"
    if exit.cancelled:
        return "cancelled"
    if exit.signal is not None:
        try:
            return f"killed by {signal.Signals(exit.signal).name}"
        except ValueError:
            return f"killed by signal {exit.signal}"
    if exit.returncode != 0:
        return f"exit {exit.returncode}"
    return None


def wants_color(stream: TextIO) -> bool:
    """Colour only for a terminal, and never when NO_COLOR is set (no-color.org)."""
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


class OutputWriter:
    """Writes a command's output to local stdout/stderr as it arrives.

    Bytes pass through untouched when the server's encoding is the local one (so binary
    output survives ``rcmd -c 'cat file' > copy``); otherwise they are decoded
    incrementally and re-encoded, so GBK from a Windows server reads right here.
    With *color*, stderr is shown in red.
    """

    def __init__(self, remote_encoding: str, stdout: TextIO, stderr: TextIO, *, color: bool = False) -> None:
        self.stdout, self.stderr = stdout, stderr
        self.color = color
        self.ends_with_newline = True  # of what was last written, whichever stream
        local = getattr(stdout, "encoding", None) or "utf-8"
        passthrough = codecs.lookup(local).name == codecs.lookup(remote_encoding).name
        self.decoder = None if passthrough and hasattr(stdout, "buffer") else OutputDecoder(remote_encoding)

    def write(self, event: Stdout | Stderr) -> None:
        """Write one chunk. Raises :class:`LocalWriteError` when the local side fails."""
        try:
            self._write(event)
        except OSError as exc:
            raise LocalWriteError(exc) from None

    def _write(self, event: Stdout | Stderr) -> None:
        is_out = isinstance(event, Stdout)
        target = self.stdout if is_out else self.stderr
        if not event.data:
            return
        self.ends_with_newline = event.data.endswith(b"\n")
        red = self.color and not is_out
        if self.decoder is None:
            target.flush()
            buffer = target.buffer
            buffer.write(RED.encode() + event.data + RESET.encode() if red else event.data)
            buffer.flush()
            return
        text = (self.decoder.stdout if is_out else self.decoder.stderr).decode(event.data)
        target.write(f"{RED}{text}{RESET}" if red and text else text)
        target.flush()

    def finish(self) -> None:
        try:
            if self.decoder is not None:
                self.stdout.write(self.decoder.stdout.flush())
                self.stderr.write(self.decoder.stderr.flush())
            self.stdout.flush()
            self.stderr.flush()
        except OSError as exc:
            raise LocalWriteError(exc) from None


class ctrl_c_cancels:  # a class, as contextlib's own are: importing contextlib is 0.4 ms of `rcmd -c`
    """While inside, Ctrl-C (SIGINT) cancels the remote command instead of killing us.

    The first Ctrl-C asks the server to kill the command's process group; its output so
    far and its Exit still arrive. A second Ctrl-C, for a server that does not answer,
    raises KeyboardInterrupt as usual: the stream then closes the connection without
    waiting any more (the server kills the command), and ``rcmd`` exits 130.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self.presses = 0
        self.previous: Handler = None
        self.installed = False

    def on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self.presses += 1
        if self.presses > 1:
            raise KeyboardInterrupt
        self.client.interrupt()

    def __enter__(self) -> None:
        try:
            self.previous = signal.signal(signal.SIGINT, self.on_sigint)
        except ValueError:  # not the main thread: leave Ctrl-C alone
            return
        self.installed = True

    def __exit__(self, *exc_info: object) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self.previous)


def run_command(
    client: Client,
    command: str,
    timeout: float | None,
    stdout: TextIO,
    stderr: TextIO,
    *,
    color: bool = False,
    show_status: bool = False,
    stdin_fd: int | None = None,
    pty: bool = False,
) -> int:
    """Run *command*, streaming its output; return the local exit code for it.

    *pty* runs it on a remote pseudo-terminal with ours raw (rcmd.terminal): for
    programs that need a terminal (python3, vi, top); stderr is then merged into stdout.

    *stdin_fd*, if given, is forwarded as the command's stdin (else its stdin is empty).

    With *show_status*, a command that did not succeed gets a note after its output
    (``[exit 3]``, ``[cancelled]``), as the interactive prompt shows it. Once Ctrl-C has
    asked for a cancel, output still in flight is dropped, not shown (a terminal takes
    seconds to print the megabytes ``yes`` has queued), and the note says how much.
    Raises :class:`LocalWriteError` when the output cannot be written here; the remote
    command is then cancelled and the connection closed.
    """
    if pty:
        from .terminal import run_in_pty

        stream, ends_with_newline, dropped = run_in_pty(
            client, command, timeout, stdout, stderr, stdin_fd=stdin_fd
        )
        assert stream.exit is not None
        note = describe_exit(stream.exit)
        if note and dropped:
            note = f"{note}: {format_size(dropped)} of output dropped"
        if show_status and note:
            newline = "" if ends_with_newline else "\n"
            try:
                stderr.write(f"{newline}{DIM_RED}[{note}]{RESET}\n" if color else f"{newline}[{note}]\n")
                stderr.flush()
            except OSError:
                pass
        return exit_status(stream.exit)
    writer = OutputWriter(client.encoding, stdout, stderr, color=color)
    dropped = 0
    with ctrl_c_cancels(client), client.stream(command, timeout=timeout, stdin_source=stdin_fd) as stream:
        try:
            for event in stream:
                if isinstance(event, (Stdout, Stderr)):
                    if stream.cancelling:
                        dropped += len(event.data)
                    else:
                        writer.write(event)
            writer.finish()
        except LocalWriteError:
            abandon(stream)
            raise
    exit = stream.exit
    assert exit is not None
    if exit.cancelled and not stream.cancel_requested:
        _raise_server_reason(client)
    note = describe_exit(exit)
    if dropped:
        note = f"{note or 'cancelled'}: {format_size(dropped)} of output dropped"
    if note and (show_status or dropped):
        newline = "\n" if dropped or not writer.ends_with_newline else ""  # after the ^C echo
        try:
            stderr.write(f"{newline}{DIM_RED}[{note}]{RESET}\n" if color else f"{newline}[{note}]\n")
            stderr.flush()
        except OSError:
            pass
    return exit_status(exit)


#: How long to wait for the server's reason after it cancelled a command on its own.
SERVER_REASON_WAIT = 5.0


def _raise_server_reason(client: Client) -> NoReturn:
    """The server cancelled a command nobody cancelled: it is shutting down, and its ERROR,
    which follows the Exit, says so. Raise that ServerError (ConnectionClosed if none comes),
    so the caller reports the server's end, not a Ctrl-C."""
    import time

    try:
        client._next_event(time.monotonic() + SERVER_REASON_WAIT)
    except TimeoutError:
        pass
    raise ConnectionClosed("the server cancelled the command and gave no reason")


def abandon(stream: CommandStream) -> None:
    """Give up on *stream* without waiting: cancel the command and close the connection
    (a server kills the command of a client that hangs up, in case the CANCEL is lost)."""
    try:
        stream.cancel()
    except Exception:
        pass
    stream.client.close()


def format_size(count: int) -> str:
    """``532 bytes``, ``1.5 KiB``, ``25.3 MiB``."""
    if count < 1024:
        return f"{count} bytes"
    size = float(count)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"


def run_naive(client: NaiveClient, command: str, stdout: TextIO, stderr: TextIO) -> int:
    """One tutorial round trip: the reply is whatever one recv() returned."""
    try:
        result = client.run(command)
    except TimeoutError:
        stderr.write("[no reply: a command that prints nothing sends nothing in naive framing]\n")
        stderr.flush()
        return ExitStatus.STATUS_UNKNOWN
    except KeyboardInterrupt:
        stderr.write("^C\n")  # the server goes on; its reply will turn up later
        stderr.flush()
        return ExitStatus.CANCELLED
    try:
        stdout.write(result.stdout_text)
        stdout.flush()
    except OSError as exc:
        raise LocalWriteError(exc) from None
    return ExitStatus.STATUS_UNKNOWN  # the naive protocol carries no exit status


def run_lines(
    client: Client | NaiveClient,
    lines: Iterable[str],
    timeout: float | None,
    stdout: TextIO,
    stderr: TextIO,
    *,
    color: bool = False,
) -> int:
    """Run each non-empty line as a command; return the last one's exit code.

    With *color*, stderr is shown in red (``rcmd -c`` on a terminal)."""
    status: int = ExitStatus.OK
    for line in lines:
        command = line.strip()
        if not command:
            continue  # never send an empty command: to a naive server it looks like nothing
        if command in ("exit", "quit"):
            break
        status = run_one(client, command, timeout, stdout, stderr, color=color)
    return status


def run_one(
    client: Client | NaiveClient,
    command: str,
    timeout: float | None,
    stdout: TextIO,
    stderr: TextIO,
    *,
    color: bool = False,
    show_status: bool = False,
    stdin_fd: int | None = None,
    pty: bool = False,
) -> int:
    from .client import Client

    if not isinstance(client, Client):
        return run_naive(client, command, stdout, stderr)  # naive framing has no stdin
    try:
        return run_command(
            client,
            command,
            timeout,
            stdout,
            stderr,
            color=color,
            show_status=show_status,
            stdin_fd=stdin_fd,
            pty=pty,
        )
    except ValueError as exc:  # refused before sending (a NUL byte, say): nothing reached the server
        stderr.write(f"rcmd: cannot send this command: {exc}\n")
        stderr.flush()
        return ExitStatus.USAGE


#: ``rcmd < script.sh``: the server's own shell ($0 of ``SHELL -c``) reads the whole script
#: from stdin, as ``ssh host < script.sh`` has the login shell do: loops, heredocs,
#: functions and ``set -e`` work, and the exit status is the script's.
SCRIPT_COMMAND = 'exec "$0" -s'
