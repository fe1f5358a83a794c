"""Naive framing: the classic tutorial's remote shell, deliberately broken.

This is how the sticky-packet ("粘包") tutorials write a remote shell, and it is wrong on
purpose so the bug can be seen. TCP delivers a byte stream, not messages:

* the server takes whatever one ``recv(1024)`` returns as the command, so two commands
  sent close together arrive as one command line (``echo a`` + ``echo b`` -> ``echo aecho b``);
* it sends the command's stderr, then its stdout, with plain sends: no length, no end marker;
* the client takes one ``recv(1024)`` as the reply, so a longer reply is cut and its tail
  is read as the answer to the *next* command, and two small sends can be read as one.

Unlike the tutorials, it reads stdout and stderr concurrently (their sequential reads
deadlock once stderr fills its pipe), uses ``sendall``, and kills the command's process
group when the server stops; none of that changes what a reader sees. For the fix, use the
default prefixed framing.
"""

from __future__ import annotations

import logging
import os
import select
import socket
from typing import TYPE_CHECKING

from .decoding import guess_encoding
from .framing import NAIVE_RECV_SIZE
from .result import CompletedCommand

if TYPE_CHECKING:  # the server half needs asyncio; the client half (and `rcmd -c`) does not
    import asyncio

    from .process import Child
    from .server import ServerConfig
    from .trace import Tracer

log = logging.getLogger("rcmd.server")

#: How long the naive client waits for a reply. The naive protocol cannot say "no output"
#: (an empty send sends nothing), so a command that prints nothing gets no reply at all.
NAIVE_REPLY_TIMEOUT = 5.0


class NaiveSession:
    """Server side: one recv is one command; the reply is stderr then stdout, unframed."""

    def __init__(
        self, config: ServerConfig, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        self.config = config
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.process: Child | None = None
        self._stopping = False

    async def run(self) -> None:
        while not self._stopping:
            try:
                data = await self.reader.read(NAIVE_RECV_SIZE)  # the bug: one read == one command
            except (ConnectionError, OSError):
                return
            if not data:
                return
            command = data.decode(self.config.encoding, errors="replace")
            log.info("%s: run (naive) %r", self.peer, command)
            stdout, stderr = await self._run(command)
            try:
                self.writer.write(stderr)  # two plain sends, no boundaries
                self.writer.write(stdout)
                await self.writer.drain()
            except (ConnectionError, OSError):
                return

    async def _run(self, command: str) -> tuple[bytes, bytes]:
        from .process import signal_group, spawn

        try:
            process = spawn(
                command, shell=self.config.shell, cwd=self.config.cwd or os.getcwd(), env=None, stdin=False
            )
        except OSError as exc:
            return b"", f"rcmd: cannot run command: {exc}\n".encode(self.config.encoding, "replace")
        self.process = process
        try:
            stdout, stderr = await process.communicate()  # whole output in memory, as taught
        finally:
            signal_group(process)
            process.close()
            self.process = None
        log.info("%s: exit %s (naive)", self.peer, process.returncode)
        return stdout, stderr

    def shutdown(self, reason: str) -> None:
        from .process import signal_group

        self._stopping = True
        if self.process is not None:
            signal_group(self.process)
        self.writer.transport.pause_reading()  # type: ignore[attr-defined]  # a socket transport reads
        self.reader.feed_eof()


class NaiveClient:
    """Client side, as the tutorial reads: send the command, take one ``recv(1024)`` as the reply.

    ``send_command`` and ``recv_reply`` are separate so demos and tests can send two
    commands back to back, or read twice, and show what the stream does with them.
    *encoding* is how commands are encoded and replies decoded; ``"auto"`` means UTF-8 for
    commands and, for replies, UTF-8 unless the bytes are not, then GBK. *trace*, if given,
    is called with a line of text for each ``recv()`` (rcmd.trace).
    """

    framing = "naive"

    def __init__(
        self,
        sock: socket.socket,
        *,
        recv_size: int = NAIVE_RECV_SIZE,
        encoding: str = "auto",
        trace: Tracer | None = None,
    ) -> None:
        sock.settimeout(NAIVE_REPLY_TIMEOUT)
        self.sock = sock
        self.recv_size = recv_size
        self.encoding = encoding
        self.trace = trace

    @classmethod
    def connect(
        cls,
        host: str = "127.0.0.1",
        port: int = 9000,
        *,
        timeout: float | None = 10.0,
        recv_size: int = NAIVE_RECV_SIZE,
        encoding: str = "auto",
        trace: Tracer | None = None,
    ) -> NaiveClient:
        sock = socket.create_connection((host, port), timeout=timeout)
        return cls(sock, recv_size=recv_size, encoding=encoding, trace=trace)

    def send_command(self, command: str | bytes) -> None:
        """Send the command's bytes, nothing else: no length, no terminator."""
        encoding = "utf-8" if self.encoding == "auto" else self.encoding
        data = command.encode(encoding) if isinstance(command, str) else command
        if not data:
            raise ValueError("an empty send would look like nothing at all to the server")
        self.sock.sendall(data)

    def recv_reply(self) -> bytes:
        """One ``recv(recv_size)``: whatever the stream holds now, up to recv_size bytes.

        Raises ``TimeoutError`` when nothing comes (the command printed nothing) and
        ``ConnectionError`` when the server closed the connection.
        """
        data = self.sock.recv(self.recv_size)
        if self.trace is not None:
            from .trace import naive_reply_line

            self.trace(naive_reply_line(len(data), self.recv_size))
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

    def wait_buffered(self, nbytes: int, timeout: float = NAIVE_REPLY_TIMEOUT) -> int:
        """Wait until *nbytes* are buffered, consuming nothing; return how many are.

        Lets demos and tests force "both sends are already here when the reader reads"
        instead of hoping for that timing. SO_RCVLOWAT makes select() report the socket
        readable only once *nbytes* are queued (or at EOF). Returns fewer than *nbytes*
        on timeout or EOF.
        """
        previous = self.sock.gettimeout()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, max(1, nbytes))
        try:
            select.select([self.sock], [], [], timeout)
            self.sock.settimeout(0)  # a timeout socket would wait out an EAGAIN: peek only
            return len(self.sock.recv(nbytes, socket.MSG_PEEK))
        except BlockingIOError:
            return 0
        finally:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
            self.sock.settimeout(previous)

    def run(self, command: str) -> CompletedCommand:
        """The tutorial's round trip: send, then one recv, taken as the whole reply.

        Wrong whenever the reply is not exactly one recv: that is the lesson. The result's
        ``stdout`` holds the reply (stderr and stdout glued, as the server sent them) and
        its ``returncode`` is None, since the naive protocol has no way to say it.
        """
        self.send_command(command)
        reply = self.recv_reply()
        encoding = guess_encoding(reply) if self.encoding == "auto" else self.encoding
        return CompletedCommand(command=command, returncode=None, stdout=reply, encoding=encoding)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> NaiveClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
