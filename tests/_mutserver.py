"""A server in this process, spoken to over raw 127.0.0.1 sockets (tests/test_mut_*.py, and
the conftest fixtures ``start``, ``peers``, ``server_log`` and ``certs``): mutation testing
sees the code a thread of the test process runs, not what a subprocess runs.

``Peer`` is a raw client for any rcmd server, in a thread or a subprocess: it sends what it
is given, even what the rcmd client never would.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
from collections.abc import Iterator

from rcmd.framing import CLOSED, NEED_DATA, LengthPrefixFramer, encode_frame
from rcmd.messages import Exit, Hello, Message, Run, Stderr, Stdout, decode_message, encode_message
from rcmd.server import BackgroundServer

#: Bound on every wait for a reply: the server's own waits are a few seconds at most.
WAIT = 10.0


class ServerLog(logging.Handler):
    """The rcmd.server log lines, as the server thread writes them, to wait for and read."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.lines.append(record.getMessage())
            self.changed.notify_all()

    def wait_for(self, pattern: str) -> re.Match[str]:
        """The first line matching *pattern*, once the server has logged it."""
        with self.changed:
            for _ in range(10_000):
                for line in self.lines:
                    if match := re.search(pattern, line):
                        return match
                if not self.changed.wait(WAIT):
                    break
        raise AssertionError(f"the server never logged {pattern!r}: {self.lines[-20:]}")

    def has(self, pattern: str) -> bool:
        with self.changed:
            return any(re.search(pattern, line) for line in self.lines)

    def wait_for_text(self, text: str, timeout: float = WAIT) -> str:
        """The first line that contains *text*, once the server has logged it."""
        with self.changed:
            found = self.changed.wait_for(lambda: [line for line in self.lines if text in line], timeout)
        assert found, f"{text!r} not in {self.lines}"
        return found[0]


@contextlib.contextmanager
def capture(level: int) -> Iterator[ServerLog]:
    """The rcmd.server log lines at *level* and above while in the block (the server thread's
    included)."""
    handler, logger = ServerLog(), logging.getLogger("rcmd.server")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


class Peer:
    """A raw client: sends what it is given (even what the rcmd client never would).

    ``hello`` is the first message the server sent (its HELLO, or the ERROR of a full
    server); with *hello* (the default) a HELLO of the client's goes back at once.
    """

    def __init__(self, address: tuple[str, int], *, hello: bool = True, timeout: float = WAIT) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.framer = LengthPrefixFramer(16 * 1024 * 1024)
        self.hello = self.receive()
        if hello:
            self.send(Hello())

    def send(self, message: Message) -> None:
        self.send_payload(encode_message(message))

    def send_payload(self, payload: bytes) -> None:
        self.sock.sendall(encode_frame(payload))

    def receive(self) -> Message | None:
        """The next message; None once the server has closed the connection."""
        while True:
            frame = self.framer.next_frame()
            if frame is CLOSED:
                return None
            if frame is not NEED_DATA:
                assert isinstance(frame, bytes)
                return decode_message(frame)
            try:
                data = self.sock.recv(256 * 1024)
            except ConnectionResetError:
                data = b""
            self.framer.receive_data(data)

    def reply(self) -> list[Message]:
        """Messages up to and including EXIT, or up to the close."""
        messages: list[Message] = []
        while (message := self.receive()) is not None:
            messages.append(message)
            if isinstance(message, Exit):
                break
        return messages

    def rest(self) -> list[Message]:
        """Every message up to the close."""
        messages: list[Message] = []
        while (message := self.receive()) is not None:
            messages.append(message)
        return messages

    def run(self, run: Run) -> tuple[bytes, bytes, Exit]:
        """Send *run*; its stdout, its stderr and its EXIT."""
        self.send(run)
        return split(self.reply())

    def close(self) -> None:
        self.sock.close()


def split(messages: list[Message]) -> tuple[bytes, bytes, Exit]:
    out = b"".join(m.data for m in messages if isinstance(m, Stdout))
    err = b"".join(m.data for m in messages if isinstance(m, Stderr))
    assert isinstance(messages[-1], Exit), messages
    return out, err, messages[-1]


def stop(server: BackgroundServer) -> None:
    """Close *server*, failing (not hanging) if its thread does not end."""
    closer = threading.Thread(target=server.close, daemon=True)
    closer.start()
    closer.join(WAIT)
    assert not closer.is_alive(), "the server's thread did not stop"
