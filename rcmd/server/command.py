"""One running command: its process group, its timeout and kill, and its output on the way out."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import TYPE_CHECKING

from ..messages import (
    Stderr,
    Stdout,
)
from ..process import OUTPUT_CHUNK_SIZE, Child, signal_group

log = logging.getLogger("rcmd.server")

if TYPE_CHECKING:
    from .session import PrefixedSession


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
        self._open = {process.stdout: Stdout, process.stderr: Stderr}
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
