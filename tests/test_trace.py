"""``--trace``: each recv() and each frame, exactly as they crossed the wire, for both framings."""

from __future__ import annotations

import io
import itertools
import os
import re
import subprocess

from conftest import CLIENT_ARGV
from hypothesis import given
from hypothesis import strategies as st

import rcmd
from rcmd.console import ExitStatus
from rcmd.messages import Exit, Hello, Stderr, Stdout, encode_message
from rcmd.trace import FrameCounter, printer

RECV = re.compile(r"recv (\d+) bytes")
FRAME = re.compile(r"frame (\w+) 4\+1\+(\d+)")


def frames_in(lines: list[str]) -> list[tuple[str, int]]:
    return [(m[1], int(m[2])) for line in lines if (m := FRAME.fullmatch(line))]


def received(lines: list[str]) -> int:
    return sum(int(m[1]) for line in lines if (m := RECV.match(line)))


MESSAGES = [
    Hello(software="test", encoding="utf-8", cwd="/"),
    Stdout(b"x" * 1024),
    Stderr(b"err\n"),
    Stdout(b""),
    Exit(0),
]
STREAM = b"".join(rcmd.encode_frame(encode_message(m)) for m in MESSAGES)
EXPECTED = [(m.TYPE.name, len(encode_message(m)) - 1) for m in MESSAGES]


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_frame_counter_reports_each_frame_once_however_the_stream_is_cut(cuts):
    counter, lines = FrameCounter(), []
    edges = [0, *sorted(cuts), len(STREAM)]
    for start, end in itertools.pairwise(edges):
        lines += counter.receive(memoryview(STREAM)[start:end])
    assert frames_in(lines) == EXPECTED
    assert not lines[-1].startswith("partial")  # the stream ends on a frame's edge


def test_frame_counter_one_byte_at_a_time_says_how_far_the_next_frame_is():
    counter = FrameCounter()
    lines = [line for i in range(len(STREAM)) for line in counter.receive(STREAM[i : i + 1])]
    assert frames_in(lines) == EXPECTED
    assert lines[:2] == [
        "partial: 1 of 4 bytes of the next length prefix",
        "partial: 2 of 4 bytes of the next length prefix",
    ]
    hello = len(encode_message(MESSAGES[0]))
    assert f"partial: 5 of {4 + hello} bytes of the next frame" in lines  # prefix and type byte in


def test_frame_counter_names_a_type_byte_it_does_not_know():
    assert FrameCounter().receive(rcmd.encode_frame(b"\x42abc")) == ["frame type 0x42 4+1+3"]


def test_prefixed_trace_matches_the_bytes_and_the_messages(server):
    lines: list[str] = []
    events = []
    command = "head -c 300000 /dev/zero; echo err >&2; printf done"
    with rcmd.connect(*server.address, trace=lines.append) as client:
        with client.stream(command) as stream:
            events = list(stream)
        handshake = len(rcmd.encode_frame(encode_message(client.server_hello)))
    # One line per frame, in the order the messages came, with their real sizes.
    assert frames_in(lines) == [("HELLO", handshake - 5)] + [
        (type(event).__name__.upper(), len(encode_message(event)) - 1) for event in events
    ]
    assert sum(len(e.data) for e in events if isinstance(e, Stdout)) == 300000 + len("done")
    # The recv() lines add up to every byte received, and those are exactly the frames.
    assert received(lines) == sum(4 + 1 + size for _, size in frames_in(lines))
    # A frame is reported only once its last byte was received, and a recv() that ends inside
    # a frame ends with a partial: line (whether one does depends on timing: a fast client
    # can take each frame whole; a recv() of 256 KiB cannot take 300,000 bytes whole).
    total_received = total_framed = 0
    for line, after in zip(lines, [*lines[1:], "recv"], strict=True):
        if m := RECV.match(line):
            total_received += int(m[1])
        elif m := FRAME.fullmatch(line):
            total_framed += 5 + int(m[2])
            assert total_framed <= total_received
        if after.startswith("recv"):  # the last line of this recv()'s group
            inside = total_framed < total_received
            assert line.startswith("partial: ") == inside, (line, total_framed, total_received)
    assert len([line for line in lines if RECV.match(line)]) > 1  # more than one recv()


def test_no_trace_no_lines(server):
    proc = run_rcmd(f":{server.port}", "-c", "echo hi")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"hi\n", b"")


def test_rcmd_trace_prints_beside_the_output_prefixed(server):
    proc = run_rcmd(f":{server.port}", "--trace", "-c", "echo out; echo err >&2; exit 3")
    assert proc.returncode == 3
    assert proc.stdout == b"out\n"
    stderr = proc.stderr.decode().splitlines()
    trace = [line.removeprefix("rcmd trace: ") for line in stderr if line.startswith("rcmd trace: ")]
    assert [line for line in stderr if not line.startswith("rcmd trace: ")] == ["err"]
    frames = frames_in(trace)
    assert [name for name, _ in frames] == ["HELLO", "STDOUT", "STDERR", "EXIT"]
    assert frames[1:3] == [("STDOUT", 4), ("STDERR", 4)]
    assert received(trace) == sum(5 + size for _, size in frames)
    assert trace[0].startswith("recv ")  # a recv() comes before any frame


def test_rcmd_trace_naive_shows_the_cut_at_1024(naive_server):
    full = b"".join(b"%d\n" % i for i in range(1, 401))  # seq 1 400: 1492 bytes
    proc = run_rcmd(f":{naive_server.port}", "--framing", "naive", "--trace", "-c", "seq 1 400")
    assert proc.returncode == ExitStatus.STATUS_UNKNOWN  # naive framing: no exit status
    assert proc.stdout == full[:1024]  # the reply was cut...
    trace = [line for line in proc.stderr.decode().splitlines() if line.startswith("rcmd trace: ")]
    assert trace == [
        "rcmd trace: recv 1024 bytes = the whole reply (naive: no length, no end marker); "
        "the buffer is full: any rest becomes the next reply"  # ...and the trace says where
    ]
    assert received(t.removeprefix("rcmd trace: ") for t in trace) == len(proc.stdout)


def test_naive_trace_each_recv_is_a_reply_and_the_tail_turns_up_next(naive_server):
    lines: list[str] = []
    with rcmd.connect(*naive_server.address, framing="naive", trace=lines.append) as client:
        client.send_command("seq 1 400")
        assert client.wait_buffered(1492) == 1492  # the whole reply is here before we read
        first = client.recv_reply()
        client.send_command("echo hello")
        assert client.wait_buffered(1492 - 1024 + 6) == 474  # the tail, and hello
        second = client.recv_reply()
    assert (len(first), second[-6:]) == (1024, b"hello\n")
    assert [RECV.match(line)[1] for line in lines] == ["1024", "474"]
    assert "buffer is full" in lines[0]
    assert "buffer is full" not in lines[1]
    assert received(lines) == len(first) + len(second)


def test_printer_is_dim_when_asked():
    out = io.StringIO()
    printer(out, dim=True)("recv 5 bytes")
    printer(out)("frame EXIT 4+1+53")
    assert out.getvalue() == "\x1b[2mrcmd trace: recv 5 bytes\x1b[0m\nrcmd trace: frame EXIT 4+1+53\n"


def run_rcmd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLIENT_ARGV, *args],
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
