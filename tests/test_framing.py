"""LengthPrefixFramer and NaiveFramer, driven with bytes alone (no sockets)."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rcmd.errors import FrameTooLarge, RemoteProtocolError
from rcmd.framing import (
    CLOSED,
    KEPT_BUFFER_SIZE,
    NEED_DATA,
    LengthPrefixFramer,
    NaiveFramer,
    encode_frame,
    frame_header,
)


def drain(framer):
    """Every frame the framer can give now, and the status it stopped on. Bounded: a framer
    that gives frames forever fails the test rather than hanging it."""
    frames = []
    for _ in range(10_000):
        frame = framer.next_frame()
        if frame in (NEED_DATA, CLOSED):
            return frames, frame
        frames.append(frame)
    raise AssertionError(f"no end to the frames: {frames[:3]}...")


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return [p for p in pieces if p]


def test_prefix_is_big_endian_unsigned():
    assert frame_header(1) == b"\x00\x00\x00\x01"
    assert frame_header(0xFFFFFFFF) == b"\xff\xff\xff\xff"
    assert encode_frame(b"abc") == struct.pack("!I", 3) + b"abc"


@pytest.mark.parametrize("feed", ["whole", "byte by byte", "with trailing data"])
def test_frames_whole_bytewise_and_with_trailing_data(feed):
    payloads = [b"", b"a", b"hello world", bytes(range(256)) * 10]
    stream = b"".join(encode_frame(p) for p in payloads)
    framer = LengthPrefixFramer()
    frames = []
    if feed == "whole":
        framer.receive_data(stream)
        frames, status = drain(framer)
    elif feed == "byte by byte":
        for i in range(len(stream)):
            framer.receive_data(stream[i : i + 1])
            frames += drain(framer)[0]
        status = framer.next_frame()
    else:
        framer.receive_data(stream + b"\x00\x00")
        frames, status = drain(framer)
        assert framer.buffered == 2  # half a prefix waits for the rest
    assert frames == payloads
    assert status is NEED_DATA


@settings(max_examples=300)
@given(
    payloads=st.lists(st.binary(max_size=300), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=7000), max_size=40),
    into_one_buffer=st.booleans(),
)
def test_any_split_into_recv_chunks_gives_the_same_frames(payloads, cuts, into_one_buffer):
    """recv() chunks, or recv_into() one reused buffer (overwritten after each read, as the
    next read would): the framer must keep copies, never views of the caller's buffer."""
    stream = b"".join(encode_frame(p) for p in payloads)
    framer = LengthPrefixFramer()
    frames = []
    buffer = bytearray(len(stream))
    for chunk in split_at(stream, cuts):
        if into_one_buffer:
            buffer[: len(chunk)] = chunk
            framer.receive_data(memoryview(buffer)[: len(chunk)])
            buffer[:] = b"\xee" * len(buffer)
        else:
            framer.receive_data(chunk)
        frames += drain(framer)[0]
    framer.receive_data(b"")
    rest, status = drain(framer)
    assert frames + rest == payloads
    assert status is CLOSED


@settings(max_examples=300)
@given(
    payloads=st.lists(st.binary(max_size=3000), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=70000), max_size=40),
    room=st.integers(min_value=1, max_value=5000),
    mixed=st.booleans(),
)
def test_reading_into_the_framers_buffer_gives_the_same_frames(payloads, cuts, room, mixed):
    """get_buffer() and buffer_updated(), as recv_into() uses them: a read may fill less
    than the room asked for, and may be mixed with receive_data(); frames taken before
    the buffer moves or grows keep their bytes."""
    stream = b"".join(encode_frame(p) for p in payloads)
    framer = LengthPrefixFramer()
    frames = []
    for number, chunk in enumerate(split_at(stream, cuts)):
        while chunk:
            if mixed and number % 2:
                framer.receive_data(chunk)
                chunk = b""
            else:
                with framer.get_buffer(room) as view:
                    count = min(room, len(chunk))
                    view[:count] = chunk[:count]
                framer.buffer_updated(count)
                chunk = chunk[count:]
            frames += drain(framer)[0]
    framer.buffer_updated(0)
    rest, status = drain(framer)
    assert frames + rest == payloads
    assert status is CLOSED


def test_a_framer_read_into_keeps_its_buffer_and_one_fed_lets_go_of_it():
    into, fed = LengthPrefixFramer(), LengthPrefixFramer()
    frame = encode_frame(b"x" * 1000)
    with into.get_buffer(64 * 1024) as view:
        view[: len(frame)] = frame
    into.buffer_updated(len(frame))
    fed.receive_data(frame)
    assert into.next_frame() == fed.next_frame() == b"x" * 1000
    assert len(into._buffer) == 64 * 1024  # the next read reuses it
    assert len(fed._buffer) == 0  # an idle connection holds nothing
    assert into.buffered == fed.buffered == 0


def test_buffer_updated_is_checked():
    framer = LengthPrefixFramer()
    with framer.get_buffer(10):
        pass
    with pytest.raises(ValueError, match="beyond the buffer"):
        framer.buffer_updated(11)
    with pytest.raises(ValueError, match=r"^size must be positive$"):  # word for word
        framer.get_buffer(0)
    framer.buffer_updated(0)
    with pytest.raises(RuntimeError, match=r"^get_buffer\(\) after EOF$"):
        framer.get_buffer(10)
    assert framer.next_frame() is CLOSED


def read_into(framer: LengthPrefixFramer, data: bytes, room: int) -> None:
    with framer.get_buffer(room) as view:
        view[: len(data)] = data
    framer.buffer_updated(len(data))


def test_a_fed_framer_holds_only_the_bytes_not_yet_taken():
    """receive_data() lets the frames already taken go when more bytes come."""
    framer = LengthPrefixFramer()
    stream = encode_frame(b"a" * 100) + encode_frame(b"b" * 100)
    framer.receive_data(stream[:150])
    assert framer.next_frame() == b"a" * 100
    framer.receive_data(stream[150:])
    assert len(framer._buffer) == framer.buffered == 104
    assert framer.next_frame() == b"b" * 100


def test_bytes_fed_into_the_room_get_buffer_left_stay_in_that_buffer():
    """receive_data() writes into the room a get_buffer() made, in place: the buffer
    neither grows nor moves, whether the bytes fill the room or not."""
    for fill in (4, 3):
        framer = LengthPrefixFramer()
        read_into(framer, encode_frame(b"ab") + b"\x00\x00", room=12)
        assert framer.next_frame() == b"ab"
        framer.receive_data(b"\x00\x01c\x00"[:fill])  # the rest of a 1-byte frame, and more
        assert len(framer._buffer) == 12
        assert framer.next_frame() == b"c"
        assert framer.buffered == fill - 3


def test_the_unread_bytes_move_to_the_front_when_that_makes_room_enough():
    framer = LengthPrefixFramer()
    read_into(framer, encode_frame(b"ab") + frame_header(3), room=10)
    assert framer.next_frame() == b"ab"
    read_into(framer, b"xyz", room=6)  # 4 unread bytes and 6 of room: exactly the 10 there are
    assert len(framer._buffer) == 10
    assert framer.next_frame() == b"xyz"


def test_a_frame_read_in_small_reads_takes_at_most_twice_its_size():
    """The buffer doubles as a large frame comes in: few copies, and never more than twice
    the room the bytes and the next read need."""
    framer = LengthPrefixFramer()
    stream = encode_frame(bytes(100_000))
    for start in range(0, len(stream), 1000):
        read_into(framer, stream[start : start + 1000], room=1000)
        assert len(framer._buffer) <= 2 * (framer.buffered + 1000)
    assert framer.next_frame() == bytes(100_000)


def test_a_buffer_read_into_is_kept_up_to_kept_buffer_size():
    """Once its frames are taken, a buffer of KEPT_BUFFER_SIZE is kept for the next read; a
    larger one is let go."""
    for room, kept in ((KEPT_BUFFER_SIZE, KEPT_BUFFER_SIZE), (KEPT_BUFFER_SIZE + 1, 0)):
        framer = LengthPrefixFramer()
        read_into(framer, encode_frame(b"x"), room=room)
        assert framer.next_frame() == b"x"
        assert len(framer._buffer) == kept


@given(
    payloads=st.lists(st.binary(max_size=300), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=7000), max_size=40),
)
def test_split_frames_are_the_first_byte_and_the_rest(payloads, cuts):
    framer = LengthPrefixFramer()
    frames = []
    for chunk in split_at(b"".join(encode_frame(p) for p in payloads), cuts):
        framer.receive_data(chunk)
        while (frame := framer.next_frame_split()) is not NEED_DATA:
            frames.append(frame)
    assert frames == [(p[0], p[1:]) if p else (None, b"") for p in payloads]


def test_oversized_prefix_is_refused_before_any_payload_is_buffered():
    framer = LengthPrefixFramer(max_frame_size=1024)
    framer.receive_data(frame_header(1025))  # the prefix alone: no payload sent yet
    with pytest.raises(FrameTooLarge) as info:
        framer.next_frame()
    assert info.value.size == 1025
    assert info.value.max_frame_size == 1024
    assert "exceeds the maximum of 1024 bytes" in str(info.value)


def test_largest_allowed_frame_passes():
    framer = LengthPrefixFramer(max_frame_size=1024)
    framer.receive_data(encode_frame(b"x" * 1024))
    assert framer.next_frame() == b"x" * 1024


@pytest.mark.parametrize(
    ("stream", "missing"),
    [
        (b"\x00\x00", "2 of 4 length-prefix bytes"),
        (frame_header(10) + b"abc", "3 of 10 payload bytes"),
        (encode_frame(b"ok") + frame_header(5), "0 of 5 payload bytes"),
    ],
)
def test_eof_inside_a_frame_says_what_was_missing(stream, missing):
    framer = LengthPrefixFramer()
    framer.receive_data(stream)
    framer.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match=missing):
        drain(framer)


@settings(max_examples=300)
@given(garbage=st.binary(min_size=1, max_size=2000), cuts=st.lists(st.integers(0, 2000), max_size=10))
def test_garbage_gives_frames_or_a_clear_error_never_a_hang(garbage, cuts):
    framer = LengthPrefixFramer(max_frame_size=4096)
    try:
        for chunk in split_at(garbage, cuts):
            framer.receive_data(chunk)
            drain(framer)
        framer.receive_data(b"")
        _, status = drain(framer)
    except RemoteProtocolError as exc:
        assert str(exc)  # a reason, always
    else:
        assert status is CLOSED  # garbage that happened to frame exactly


def test_data_after_eof_is_a_bug():
    framer = LengthPrefixFramer()
    framer.receive_data(b"")
    framer.receive_data(b"")  # a second EOF is harmless
    with pytest.raises(RuntimeError) as info:
        framer.receive_data(b"x")
    assert str(info.value) == "receive_data() after EOF"


@pytest.mark.parametrize("size", [1, 2, 1 << 20, 0xFFFFFFFF])
def test_max_frame_size_limits_that_are_allowed(size):
    framer = LengthPrefixFramer(max_frame_size=size)
    assert framer.max_frame_size == size
    framer.receive_data(encode_frame(b"x") + encode_frame(b""))
    assert drain(framer) == ([b"x", b""], NEED_DATA)


@pytest.mark.parametrize("size", [-1, 0, 0x1_0000_0000])
def test_max_frame_size_limits_that_are_refused(size):
    with pytest.raises(ValueError, match=r"^max_frame_size must be between 1 and 2\*\*32 - 1$"):
        LengthPrefixFramer(max_frame_size=size)


@pytest.mark.parametrize(("limit", "announced"), [(1, 2), (1024, 1025), (1 << 20, (1 << 20) + 1)])
def test_one_byte_over_the_limit_is_refused_with_the_exact_reason(limit, announced):
    framer = LengthPrefixFramer(max_frame_size=limit)
    framer.receive_data(frame_header(announced))
    with pytest.raises(FrameTooLarge) as info:
        framer.next_frame()
    assert str(info.value) == (
        f"frame of {announced} bytes exceeds the maximum of {limit} bytes "
        "(is the peer speaking another protocol, e.g. naive framing?)"
    )
    assert framer.buffered == 4  # nothing was taken from the stream


def test_split_frames_of_zero_and_one_byte():
    framer = LengthPrefixFramer()
    framer.receive_data(encode_frame(b"") + encode_frame(b"\x07") + encode_frame(b"\x10ab"))
    assert framer.next_frame_split() == (None, b"")
    assert framer.next_frame_split() == (7, b"")
    assert framer.next_frame_split() == (0x10, b"ab")
    assert framer.next_frame_split() is NEED_DATA
    assert framer.buffered == 0


# ------------------------------------------------------------------- the naive reader


def test_naive_two_quick_sends_come_out_as_one_message():
    framer = NaiveFramer()
    framer.receive_data(b"hi")  # send #1
    framer.receive_data(b"meinv")  # send #2, before the reader's recv()
    assert framer.next_frame() == b"himeinv"  # one recv takes both: 粘包
    assert framer.next_frame() is NEED_DATA


def test_naive_long_reply_tail_becomes_the_next_reply():
    framer = NaiveFramer(recv_size=1024)
    first_reply = b"".join(b"%d\n" % i for i in range(1, 1001))  # 3893 bytes
    framer.receive_data(first_reply)
    assert framer.next_frame() == first_reply[:1024]  # what the reader shows for command 1
    framer.receive_data(b"reply to command 2\n")
    second = framer.next_frame()
    assert second == first_reply[1024:2048]  # command 2 "answers" with command 1's middle
    assert b"reply to command 2" not in second


@pytest.mark.parametrize("size", [-1, 0])
def test_naive_recv_size_must_be_positive(size):
    with pytest.raises(ValueError, match=r"^recv_size must be positive$"):
        NaiveFramer(recv_size=size)


def test_naive_recv_size_of_one_byte():
    framer = NaiveFramer(recv_size=1)
    framer.receive_data(b"ab")
    assert [framer.next_frame(), framer.next_frame(), framer.next_frame()] == [b"a", b"b", NEED_DATA]


@given(payloads=st.lists(st.binary(min_size=1, max_size=3000), min_size=2, max_size=5))
def test_naive_reader_keeps_the_bytes_but_loses_the_boundaries(payloads):
    framer = NaiveFramer()
    for p in payloads:
        framer.receive_data(p)
    framer.receive_data(b"")
    chunks, status = drain(framer)
    assert b"".join(chunks) == b"".join(payloads)  # nothing lost...
    assert chunks != payloads  # ...but the messages are not the ones sent
    assert status is CLOSED
