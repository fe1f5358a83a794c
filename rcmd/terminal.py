"""The local terminal for a remote command run on a PTY: raw mode, window size, output.

As OpenSSH's sshtty.c (``enter_raw_mode``/``leave_raw_mode``) and clientloop.c: while the
command runs, the local terminal is raw, so every key (Ctrl-C, Ctrl-Z, Ctrl-\\ included)
goes to the remote program as a byte and the remote terminal does the echoing and the
signals; SIGWINCH becomes WINDOW_CHANGE. The terminal is put back however the command
ends: normally, on a remote error, a lost connection, an exception, SIGTERM or SIGHUP.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import termios
import tty
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from .messages import PtyRequest, Stderr, Stdout

if TYPE_CHECKING:
    from .client import Client, CommandStream

#: Signals that end rcmd while the terminal is raw: put it back first, then end as asked.
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def local_terminal_size(*fds: int) -> tuple[int, int]:
    """(rows, cols) of the first of *fds* that is a terminal; else $LINES/$COLUMNS or 24x80."""
    for fd in fds:
        try:
            size = os.get_terminal_size(fd)
        except OSError:
            continue
        return size.lines, size.columns
    return int(os.environ.get("LINES", 24)), int(os.environ.get("COLUMNS", 80))


def pty_request(*fds: int) -> PtyRequest:
    """What to ask the server for: $TERM (as ssh sends it), and the local size."""
    rows, cols = local_terminal_size(*fds)
    return PtyRequest(term=os.environ.get("TERM") or "dumb", rows=rows, cols=cols)


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """While inside, terminal *fd* is raw (tty.setraw); afterwards it is as before, on
    every way out. SIGTERM and SIGHUP restore it and then raise SystemExit(128 + N), so
    the caller's clean-up runs too. Not a terminal: nothing changes."""
    try:
        saved = termios.tcgetattr(fd)
    except termios.error:
        yield
        return

    def restore() -> None:
        with contextlib.suppress(termios.error, OSError):
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    def on_ending_signal(signum: int, frame: FrameType | None) -> None:
        restore()
        raise SystemExit(128 + signum)

    previous = {}
    try:
        for signum in ENDING_SIGNALS:
            previous[signum] = signal.signal(signum, on_ending_signal)
    except ValueError:  # not the main thread: no handlers, the finally still restores
        pass
    try:
        tty.setraw(fd, termios.TCSADRAIN)
        yield
    finally:
        restore()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def forward_window_changes(client: Client, fd: int) -> Iterator[None]:
    """While inside, SIGWINCH sends the terminal's new size to the running command."""

    def on_winch(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):
            size = os.get_terminal_size(fd)
            client.window_changed(size.lines, size.columns)

    try:
        previous = signal.signal(signal.SIGWINCH, on_winch)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)


def run_in_pty(
    client: Client,
    command: str,
    timeout: float | None,
    stdout: TextIO,
    stderr: TextIO,
    *,
    stdin_fd: int | None = 0,
) -> tuple[CommandStream, bool, int]:
    """Run *command* on a remote PTY with our terminal raw, our stdin as its keyboard;
    return the finished stream (its ``exit`` set) and whether the output ended with a
    newline, and how many bytes were dropped. Output is written as it comes; the
    remote terminal has already turned its newlines into CR LF. Output in flight when an
    interrupt key (Ctrl-C, Ctrl-\\, Ctrl-Z) was typed is dropped, as a terminal flushes its
    queue when a key becomes a signal: ``yes`` stops at once, not megabytes later."""
    from .console import OutputWriter, ctrl_c_cancels

    out_fd = _fileno(stdout)
    keyboard = stdin_fd if stdin_fd is not None and os.isatty(stdin_fd) else None
    request = pty_request(*(fd for fd in (out_fd, stdin_fd) if fd is not None))
    writer = OutputWriter(client.encoding, stdout, stderr)
    size_fd = out_fd if out_fd is not None and os.isatty(out_fd) else keyboard
    with contextlib.ExitStack() as stack:
        stack.enter_context(ctrl_c_cancels(client))  # only when stdin is no terminal: else a byte
        if size_fd is not None:
            stack.enter_context(forward_window_changes(client, size_fd))
        if keyboard is not None:
            stack.enter_context(raw_mode(keyboard))
        stream = stack.enter_context(
            client.stream(command, timeout=timeout, stdin_source=stdin_fd, pty=request)
        )
        dropped = 0
        for event in stream:
            if isinstance(event, (Stdout, Stderr)):
                if stream.flushing:
                    dropped += len(event.data)
                else:
                    writer.write(event)
        writer.finish()
    return stream, writer.ends_with_newline, dropped


def _fileno(stream: TextIO) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def stdio_are_terminals() -> bool:
    """Both our stdin and our stdout are terminals: a PTY makes sense."""
    return sys.stdin.isatty() and sys.stdout.isatty()
