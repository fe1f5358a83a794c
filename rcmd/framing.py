"""Framers: bytes in, frames out. Sans-I/O: no sockets, no event loop.

Two framers with one interface, so the bug and the fix can be compared on equal terms:

* :class:`LengthPrefixFramer` -- rcmd's wire format. Every frame is a 4-byte unsigned
  big-endian length (struct ``!I``) followed by exactly that many payload bytes.
* :class:`NaiveFramer` -- the classic tutorial reader, which takes whatever one
  ``recv(1024)`` returns as "the message". It is deliberately wrong: that is the point.

Both are driven the same way (h11 style)::

    framer.receive_data(data)      # b"" means the peer closed (EOF), as recv() says it
    while (frame := framer.next_frame()) not in (NEED_DATA, CLOSED):
        handle(frame)
"""

from __future__ import annotations

import enum
import struct

from .errors import FrameTooLarge, RemoteProtocolError

#: The length prefix: unsigned 32-bit, network (big-endian) byte order. Not the tutorials'
#: native-order ``"i"``, which differs between machines and is signed.
PREFIX = struct.Struct("!I")

#: 1 MiB. Large enough for any control message or output chunk rcmd sends (chunks are at
#: most 256 KiB), small enough that a hostile or confused peer cannot make us buffer much:
#: the limit is checked on the prefix, before a single payload byte is kept.
DEFAULT_MAX_FRAME_SIZE = 1 << 20

#: What one ``recv()`` of the tutorials asks for.
NAIVE_RECV_SIZE = 1024


class Status(enum.Enum):
    """What ``next_frame()`` returns when it has no frame to give."""

    NEED_DATA = "need data"  #: call receive_data() with more bytes first
    CLOSED = "closed"  #: the peer closed cleanly, between frames


NEED_DATA = Status.NEED_DATA
CLOSED = Status.CLOSED


def frame_header(length: int) -> bytes:
    """The 4-byte prefix for a payload of *length* bytes (for writing header and payload apart)."""
    return PREFIX.pack(length)


def encode_frame(payload: bytes) -> bytes:
    """One whole frame: prefix plus *payload*."""
    return PREFIX.pack(len(payload)) + payload


class LengthPrefixFramer:
    """Splits a byte stream into length-prefixed frames.

    Any split of the stream into ``receive_data`` calls yields the same frames. The length
    is checked against *max_frame_size* the moment its 4 bytes are in, so an oversized
    frame raises :class:`FrameTooLarge` before its payload is buffered. EOF inside a frame
    raises :class:`RemoteProtocolError` saying how much was missing.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if not 0 < max_frame_size <= 0xFFFFFFFF:
            raise ValueError("max_frame_size must be between 1 and 2**32 - 1")
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        self._eof = False
        self._expected: int | None = None  # payload length of the frame being read

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buffer)

    def receive_data(self, data: bytes | memoryview) -> None:
        """Feed bytes from the peer (any bytes-like object: they are copied in, so a
        reused read buffer is fine); empty means the peer closed its side."""
        if self._eof:
            if data:
                raise RuntimeError("receive_data() after EOF")
            return
        if data:
            self._buffer += data
        else:
            self._eof = True

    def next_frame(self) -> bytes | Status:
        """Return the next whole payload, ``NEED_DATA`` or ``CLOSED``.

        Raises :class:`FrameTooLarge` or :class:`RemoteProtocolError` (truncated stream).
        """
        length = self._whole_frame()
        if isinstance(length, Status):
            return length
        return self._take(0, length)

    def next_frame_split(self) -> tuple[int | None, bytes] | Status:
        """Like next_frame(), for payloads that begin with a type byte: ``(that byte, the
        rest)``, the rest copied once (``next_frame()[1:]`` would copy it twice). An empty
        payload gives ``(None, b"")``."""
        length = self._whole_frame()
        if isinstance(length, Status):
            return length
        if not length:
            return None, self._take(0, 0)
        return self._buffer[0], self._take(1, length)

    def _whole_frame(self) -> int | Status:
        """The payload length of the whole frame at the front of the buffer, or the status."""
        buffer = self._buffer
        if self._expected is None:
            if len(buffer) < PREFIX.size:
                return self._short(f"{len(buffer)} of {PREFIX.size} length-prefix bytes")
            (length,) = PREFIX.unpack_from(buffer)
            if length > self.max_frame_size:
                raise FrameTooLarge(length, self.max_frame_size)
            del buffer[: PREFIX.size]
            self._expected = length
        length = self._expected
        if len(buffer) < length:
            return self._short(f"{len(buffer)} of {length} payload bytes")
        return length

    def _take(self, start: int, length: int) -> bytes:
        """Bytes *start* to *length* of the payload, as one copy; the frame leaves the buffer."""
        with memoryview(self._buffer) as view:
            payload = bytes(view[start:length])  # one copy (a slice of the bytearray would be two)
        del self._buffer[:length]  # CPython moves the start of a bytearray, no memmove
        self._expected = None
        return payload

    def _short(self, progress: str) -> Status:
        if not self._eof:
            return NEED_DATA
        if not self._buffer and self._expected is None:
            return CLOSED
        raise RemoteProtocolError(f"connection closed in the middle of a frame: got {progress}")


class NaiveFramer:
    """The tutorial reader: a "message" is whatever one ``recv(recv_size)`` returns.

    Deliberately broken. A TCP stream keeps no message boundaries, so this framer returns
    two replies glued together when both were buffered, and only the head of a reply longer
    than *recv_size* (the tail turns up as the "next" message). Each ``receive_data`` call
    stands for bytes arriving in the kernel's buffer; each ``next_frame`` call stands for
    one ``recv()``. Sans-I/O, so "two sends come out as one" is a deterministic unit test.
    """

    def __init__(self, recv_size: int = NAIVE_RECV_SIZE) -> None:
        if recv_size <= 0:
            raise ValueError("recv_size must be positive")
        self.recv_size = recv_size
        self._buffer = bytearray()
        self._eof = False

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        if data:
            self._buffer += data
        else:
            self._eof = True

    def next_frame(self) -> bytes | Status:
        """What one ``recv(recv_size)`` would return now: up to *recv_size* buffered bytes."""
        if not self._buffer:
            return CLOSED if self._eof else NEED_DATA
        chunk = bytes(self._buffer[: self.recv_size])
        del self._buffer[: self.recv_size]
        return chunk
