"""One running command: its processes, its timeout and kill, its input and its output."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
from collections import deque
from typing import TYPE_CHECKING

from ..messages import (
    Stderr,
    Stdout,
)
from ..process import OUTPUT_CHUNK_SIZE, Child, kill_tree, signal_group

log = logging.getLogger("rcmd.server")

if TYPE_CHECKING:
    from .session import PrefixedSession


#: After SIGTERM (cancel, timeout, shutdown), how long a command's group has before SIGKILL.
TERM_GRACE = 2.0
#: After SIGKILL, how long the shell may take to be gone before the reply goes without its
#: status (a process stuck in the kernel, in state D, dies only when the kernel lets it).
KILL_WAIT = 5.0
#: After a command's shell exits, how long processes it left behind may keep its output
#: pipes open before they are killed (``cmd &`` would otherwise hold the reply open).
LINGER = 1.0
#: After those are killed, how long the pipes may stay open (held by a process the kill
#: could not find) before the server closes its ends and sends EXIT anyway.
CUT_WAIT = 1.0
#: What the client is told when that happens.
OUTPUT_CUT_NOTE = b"rcmd: output cut: processes left by the command kept it open\n"
#: While a command does not read its stdin, up to this much more input is taken from the
#: client and held, so a CANCEL or a hang-up behind it is still seen: as much as a
#: connection may hold of output on its way out (4 chunks). Past it the session still takes
#: STDIN_READ_AHEAD frame limits more (session.py: 1 MiB by default), then reads the client
#: no more until the command reads (TCP's backpressure): a CANCEL behind more unread input
#: than those, the socket buffers and the pipe hold waits for the command to read or end.
STDIN_BACKLOG = 4 * OUTPUT_CHUNK_SIZE
#: At most this many chunks are forwarded per wake-up, while the client's socket takes
#: each whole: fewer trips through the event loop, and other connections still get a turn.
BURST = 4
#: Exit status for a command that could not be started, as a shell reports "not found".
CANNOT_RUN = 127


class RunningCommand:
    """One started command, why it was stopped if it was, and its stdin on the way in.

    ``stopping`` is set once it is to end early (cancel, timeout, lost client, shutdown):
    from then on every wait for it is bounded.
    """

    def __init__(self, process: Child) -> None:
        self.process = process
        self.timed_out = False
        self.cancelled = False
        self.stopping = asyncio.get_running_loop().create_future()
        self.stdin = StdinFeeder(process) if process.stdin is not None else None
        self._escalation: asyncio.TimerHandle | None = None
        #: The last kill()'s search for the command's processes, while it may be running.
        self.killing: asyncio.Future[int] | None = None

    def terminate(self) -> None:
        """SIGTERM the group now, kill every process of the command after TERM_GRACE if the
        shell has not exited (at once if it has: only what it left is still there)."""
        _set_once(self.stopping)
        if self.process.returncode is not None:
            self.kill()
            return
        signal_group(self.process, signal.SIGTERM)
        if self._escalation is None:
            loop = asyncio.get_running_loop()
            self._escalation = loop.call_later(TERM_GRACE, self.kill)

    def kill(self) -> None:
        """SIGKILL every process of the command: its group at once, then all that carry its
        cookie, found by a scan of /proc off the event loop (rcmd.process.kill_tree);
        ``killing`` is done once they have been sent SIGKILL."""
        _set_once(self.stopping)
        self.killing = kill_tree(self.process)  # scans run in order: the last is done last
        self.killing.add_done_callback(self._killed)

    def _killed(self, scan: asyncio.Future[int]) -> None:
        number = self.process.number
        if scan.cancelled():
            return
        if (error := scan.exception()) is not None:
            log.error("command %d: the search for its processes failed: %r", number, error)
        elif killed := scan.result():
            log.info("command %d: %d process(es) found by its cookie, killed", number, killed)

    def finished(self) -> None:
        if self._escalation is not None:
            self._escalation.cancel()
        if self.stdin is not None:
            self.stdin.close()
        signal_group(self.process)  # nothing of the command outlives it: the group now,
        self.process.close()  # what left the group in the next sweep


class StdinFeeder:
    """Writes the client's input to a command's stdin, in order, from a bounded queue.

    The connection's read loop hands input over with put() and goes on reading, so a CANCEL
    or a hang-up is seen whatever the command is doing; it waits (room()) only once more
    than STDIN_BACKLOG bytes and the session's read-ahead are queued. None in the queue
    stands for the end of input.
    """

    def __init__(self, process: Child) -> None:
        self.process = process
        self.queued = 0
        self._queue: deque[bytes | None] = deque()
        self._more = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task[None] | None = None  # started by the first input

    def put(self, data: bytes | None) -> None:
        """Queue *data* (None: end of input). Input after the end, or after the command
        closed its stdin, goes nowhere."""
        if self.process.stdin is None:
            return
        self._queue.append(data)
        self.queued += len(data) if data else 0
        if self.queued > STDIN_BACKLOG:
            self._room.clear()
        self._more.set()
        if self._task is None:
            self._task = asyncio.create_task(self._feed())

    async def room(self) -> None:
        """Wait until the queue is back under STDIN_BACKLOG."""
        await self._room.wait()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._drop()

    def _drop(self) -> None:
        self._queue.clear()
        self.queued = 0
        self._room.set()

    async def _feed(self) -> None:
        process = self.process
        while True:
            await self._more.wait()
            while self._queue:
                data = self._queue[0]
                if data is None:
                    process.close_stdin()
                    self._drop()
                    return
                try:
                    await process.write_stdin(data)
                except OSError:  # EPIPE: the command wants no more input
                    process.close_stdin()
                    self._drop()
                    return
                self._queue.popleft()
                self.queued -= len(data)
                if self.queued <= STDIN_BACKLOG:
                    self._room.set()
            self._more.clear()


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class OutputForwarder:
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
        # A command on a pty has one output, the terminal (stderr is -1).
        self._open = {
            fd: kind for fd, kind in ((process.stdout, Stdout), (process.stderr, Stderr)) if fd >= 0
        }
        self._resume: asyncio.Task[None] | None = None
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
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                data = b""  # a pty's master once the program's side is all closed: its EOF
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
