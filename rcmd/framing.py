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


#: A framer fed through get_buffer() keeps a buffer this large or less, empty, for the next
#: reads (a client's of 256 KiB reuse it); a larger one, grown for a large frame, is let go
#: once that frame is taken. One fed by receive_data() lets go of it as soon as it is empty,
#: so an idle connection holds nothing.
KEPT_BUFFER_SIZE = 512 * 1024


class LengthPrefixFramer:
    """Splits a byte stream into length-prefixed frames.

    Any split of the stream into ``receive_data`` calls yields the same frames. The length
    is checked against *max_frame_size* the moment its 4 bytes are in, so an oversized
    frame raises :class:`FrameTooLarge` before its payload is buffered. EOF inside a frame
    raises :class:`RemoteProtocolError` saying how much was missing.

    Bytes can also be received straight into the framer's buffer, with one copy fewer
    (asyncio's BufferedProtocol has the same pair)::

        with framer.get_buffer(256 * 1024) as room:
            count = sock.recv_into(room)
        framer.buffer_updated(count)   # 0 means EOF, as recv_into() says it
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if not 0 < max_frame_size <= 0xFFFFFFFF:
            raise ValueError("max_frame_size must be between 1 and 2**32 - 1")
        self.max_frame_size = max_frame_size
        # Received bytes not yet taken are _buffer[_start:_end]; frames are cut from _start,
        # and new bytes go at _end, so neither moves the rest.
        self._buffer = bytearray()
        self._start = 0
        self._end = 0
        self._eof = False
        self._expected: int | None = None  # payload length of the frame being read
        self._reading_into = False  # get_buffer() was used: keep the buffer for the next read

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return self._end - self._start

    def receive_data(self, data: bytes | memoryview) -> None:
        """Feed bytes from the peer (any bytes-like object: they are copied in, so a
        reused read buffer is fine); empty means the peer closed its side."""
        if self._eof:
            if data:
                raise RuntimeError("receive_data() after EOF")
            return
        if not data:
            self._eof = True
            return
        size = memoryview(data).nbytes
        if self._end + size <= len(self._buffer):  # room left by get_buffer()
            self._buffer[self._end : self._end + size] = data
        else:  # what was taken and any room leave the buffer (no copy), then data is appended
            del self._buffer[self._end :]
            del self._buffer[: self._start]
            self._buffer += data
            self._start, self._end = 0, len(self._buffer) - size
        self._end += size

    def get_buffer(self, size: int) -> memoryview:
        """A writable view of *size* free bytes at the end of the buffer, to receive into;
        then call :meth:`buffer_updated` with how many were written. Release the view (a
        ``with`` block) before calling anything else on the framer."""
        if self._eof:
            raise RuntimeError("get_buffer() after EOF")
        if size <= 0:
            raise ValueError("size must be positive")
        self._reading_into = True
        self._make_room(size)
        return memoryview(self._buffer)[self._end : self._end + size]

    def buffer_updated(self, count: int) -> None:
        """*count* bytes were written to the view get_buffer() gave; 0 means EOF."""
        if count < 0 or self._end + count > len(self._buffer):
            raise ValueError(f"buffer_updated({count}) beyond the buffer get_buffer() gave")
        if count == 0:
            self._eof = True
        self._end += count

    def _make_room(self, size: int) -> None:
        """At least *size* bytes free after _end: the unread bytes moved to the front, or
        into a larger buffer."""
        if self._end + size <= len(self._buffer):
            return
        unread = self._end - self._start
        if unread + size <= len(self._buffer):
            buffer = self._buffer  # room enough once the unread bytes move to the front
        else:
            buffer = bytearray(max(unread + size, 2 * len(self._buffer)))
        with memoryview(buffer) as target, memoryview(self._buffer) as source:
            target[:unread] = source[self._start : self._end]  # a memmove
        self._buffer, self._start, self._end = buffer, 0, unread

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
        return self._buffer[self._start], self._take(1, length)

    def _whole_frame(self) -> int | Status:
        """The payload length of the whole frame at the front of the buffer, or the status."""
        if self._expected is None:
            if self.buffered < PREFIX.size:
                return self._short(f"{self.buffered} of {PREFIX.size} length-prefix bytes")
            (length,) = PREFIX.unpack_from(self._buffer, self._start)
            if length > self.max_frame_size:
                raise FrameTooLarge(length, self.max_frame_size)
            self._start += PREFIX.size
            self._expected = length
        length = self._expected
        if self.buffered < length:
            return self._short(f"{self.buffered} of {length} payload bytes")
        return length

    def _take(self, start: int, length: int) -> bytes:
        """Bytes *start* to *length* of the payload, as one copy; the frame leaves the buffer."""
        first = self._start
        with memoryview(self._buffer) as view:
            payload = bytes(view[first + start : first + length])  # one copy
        self._start += length
        self._expected = None
        if self._start == self._end:  # all taken: new bytes go to the front again
            self._start = self._end = 0
            if not self._reading_into or len(self._buffer) > KEPT_BUFFER_SIZE:
                self._buffer = bytearray()
        return payload

    def _short(self, progress: str) -> Status:
        if not self._eof:
            return NEED_DATA
        if not self.buffered and self._expected is None:
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
