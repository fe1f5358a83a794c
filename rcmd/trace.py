"""``--trace``: watch the framer at work. Sans-I/O: bytes in, lines of text out.

A client given ``trace=callback`` calls it with one line per ``recv()`` and, for prefixed
framing, one line per frame that recv() completed::

    recv 1448 bytes
    frame STDOUT 4+1+1024       <- 4 length bytes, 1 type byte, 1024 bytes of body
    frame EXIT 4+1+53
    partial: 410 of 1029 bytes of the next frame

so a learner sees one recv() carry several frames (sticky packets) and one frame take
several recv()s, and the framer sort them out. :class:`FrameCounter` follows the stream
by counting: it reads the 4-byte length and the type byte of each frame and skips the
body without copying it, so tracing a large output costs little.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from .framing import PREFIX
from .messages import MessageType

#: What a client calls with each trace line.
Tracer = Callable[[str], None]

_HEADER = PREFIX.size + 1  # the length prefix and the type byte


def frame_type_name(type_byte: int) -> str:
    try:
        return MessageType(type_byte).name
    except ValueError:
        return f"type 0x{type_byte:02x}"


class FrameCounter:
    """Follows a length-prefixed stream and describes each frame as it completes.

    ``receive(data)`` returns the lines for the frames *data* completed, in order, then a
    ``partial:`` line when it ends inside a frame. The lengths are the ones on the wire.
    """

    def __init__(self) -> None:
        self._header = bytearray()  # the current frame's prefix and type byte, as they come
        self._remaining = 0  # body bytes of the current frame still to come, once its header is in
        self._length = 0  # the current frame's payload length (type byte + body)

    def receive(self, data: bytes | memoryview) -> list[str]:
        lines = []
        position, end = 0, len(data)
        while position < end:
            if len(self._header) < _HEADER:
                take = min(_HEADER - len(self._header), end - position)
                self._header += data[position : position + take]
                position += take
                if len(self._header) >= PREFIX.size:
                    (self._length,) = PREFIX.unpack_from(self._header)
                    if self._length == 0:  # no type byte at all: rcmd never sends one
                        lines.append("frame (empty) 4+0")
                        self._header.clear()
                        continue
                if len(self._header) < _HEADER:
                    continue
                self._remaining = self._length - 1
            take = min(self._remaining, end - position)
            self._remaining -= take
            position += take
            if self._remaining == 0:
                lines.append(f"frame {frame_type_name(self._header[-1])} 4+1+{self._length - 1}")
                self._header.clear()
        if self._header:
            if len(self._header) < PREFIX.size:
                lines.append(f"partial: {len(self._header)} of 4 bytes of the next length prefix")
            else:
                got = len(self._header)
                if got == _HEADER:
                    got += self._length - 1 - self._remaining
                lines.append(f"partial: {got} of {PREFIX.size + self._length} bytes of the next frame")
        return lines


def naive_reply_line(size: int, recv_size: int) -> str:
    """The trace line for one naive ``recv()``, which the naive client takes as a whole reply."""
    if not size:
        return "recv 0 bytes: the server closed the connection"
    line = f"recv {size} bytes = the whole reply (naive: no length, no end marker)"
    if size == recv_size:
        line += "; the buffer is full: any rest becomes the next reply"
    return line


def printer(stream: TextIO, *, dim: bool = False) -> Tracer:
    """A tracer that writes each line to *stream* (``rcmd --trace``: stderr), dim if asked."""
    start, end = ("\x1b[2m", "\x1b[0m") if dim else ("", "")

    def trace(line: str) -> None:
        stream.write(f"{start}rcmd trace: {line}{end}\n")
        stream.flush()

    return trace
