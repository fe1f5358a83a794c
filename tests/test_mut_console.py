"""rcmd.console in-process: exit codes, notes, colour, the output writer, and running commands
against a BackgroundServer (a real server in a thread of this process, real shell commands).

test_cli.py runs the same paths through the rcmd executable; these run in the test process,
so mutation testing (make mutate-rest) sees which tests reach which function.
"""

from __future__ import annotations

import errno
import io
import signal
import threading
from collections.abc import Iterator

import pytest

from rcmd import connect
from rcmd.client import Client
from rcmd.console import (
    DIM_RED,
    RED,
    RESET,
    ExitStatus,
    OutputWriter,
    ctrl_c_cancels,
    describe_exit,
    exit_status,
    format_size,
    run_command,
    run_lines,
    run_one,
    wants_color,
)
from rcmd.errors import LocalWriteError
from rcmd.messages import Exit, Stderr, Stdout
from rcmd.server import BackgroundServer


@pytest.mark.parametrize(
    ("exit", "status", "note"),
    [
        (Exit(0), 0, None),
        (Exit(3), 3, "exit 3"),
        (Exit(255), 255, "exit 255"),
        (Exit(257), 1, "exit 257"),  # a status is a byte, as in a shell
        (Exit(-1), 255, "exit -1"),
        (Exit(-9, signal=9), 137, "killed by SIGKILL"),
        (Exit(-15, signal=15), 143, "killed by SIGTERM"),
        (Exit(-99, signal=99), 227, "killed by signal 99"),  # no name for it here
        (Exit(-9, signal=9, timed_out=True), 124, "timed out"),
        (Exit(-15, signal=15, cancelled=True), 130, "cancelled"),
        (Exit(0, timed_out=True, cancelled=True), 124, "timed out"),  # the timeout came first
        (Exit(0, cancelled=True), 130, "cancelled"),
    ],
    ids=repr,
)
def test_exit_status_and_note(exit, status, note):
    assert exit_status(exit) == status
    assert describe_exit(exit) == note


def test_exit_codes_are_those_documented():
    assert (ExitStatus.TIMED_OUT, ExitStatus.CANCELLED, ExitStatus.SIGNAL_BASE, ExitStatus.USAGE) == (
        124,
        130,
        128,
        2,
    )


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_for_a_terminal_without_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert wants_color(Tty()) is True
    assert wants_color(io.StringIO()) is False
    assert wants_color(object()) is False  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "")  # set, even empty: no colour (no-color.org)
    assert wants_color(Tty()) is False


def binary_stream(encoding: str = "utf-8") -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding=encoding, write_through=True)


def written(stream: io.TextIOWrapper) -> bytes:
    stream.flush()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue()


def test_bytes_pass_through_untouched_when_the_encodings_match():
    out, err = binary_stream(), binary_stream()
    writer = OutputWriter("UTF8", out, err)
    assert writer.decoder is None
    out.write("before ")  # text already written is flushed first, so it stays in order
    writer.write(Stdout(b"\xff\xfe\n"))  # not UTF-8 at all: passed on as it is
    writer.write(Stderr(b"oops"))
    writer.finish()
    assert written(out) == b"before \xff\xfe\n"
    assert written(err) == b"oops"


def test_passthrough_stderr_in_red_stdout_never():
    out, err = binary_stream(), binary_stream()
    writer = OutputWriter("utf-8", out, err, color=True)
    writer.write(Stdout(b"out"))
    writer.write(Stderr(b"err"))
    assert written(out) == b"out"
    assert written(err) == b"\x1b[31merr\x1b[0m"
    assert (RED, RESET, DIM_RED) == ("\x1b[31m", "\x1b[0m", "\x1b[2;31m")


def test_ends_with_newline_follows_the_last_data_of_either_stream():
    writer = OutputWriter("utf-8", binary_stream(), binary_stream())
    assert writer.ends_with_newline is True  # nothing written yet
    writer.write(Stdout(b"a"))
    assert writer.ends_with_newline is False
    writer.write(Stderr(b"b\n"))
    assert writer.ends_with_newline is True
    writer.write(Stdout(b""))  # nothing: changes nothing
    assert writer.ends_with_newline is True
    writer.write(Stderr(b"c"))
    assert writer.ends_with_newline is False


def test_other_encodings_are_decoded_whole_characters_at_a_time():
    out, err = io.StringIO(), io.StringIO()  # no .buffer: always decoded
    writer = OutputWriter("gbk", out, err, color=True)
    assert writer.decoder is not None
    zhong = "中".encode("gbk")
    writer.write(Stdout(zhong[:1]))
    assert out.getvalue() == ""
    writer.write(Stdout(zhong[1:] + b"\n"))
    assert out.getvalue() == "中\n"
    writer.write(Stderr(zhong[:1]))  # half a character: no empty red pair
    assert err.getvalue() == ""
    writer.write(Stderr(zhong[1:]))
    assert err.getvalue() == f"{RED}中{RESET}"
    writer.write(Stdout(zhong[:1]))
    writer.write(Stderr(zhong[:1]))
    writer.finish()  # a character cut off at the end: U+FFFD, in each stream
    assert out.getvalue() == "中\n\ufffd"
    assert err.getvalue() == f"{RED}中{RESET}\ufffd"


def test_a_local_terminal_in_another_encoding_gets_text():
    out = binary_stream("latin-1")
    writer = OutputWriter("utf-8", out, binary_stream("latin-1"))
    assert writer.decoder is not None
    writer.write(Stdout("é".encode()))
    assert written(out) == "é".encode("latin-1")


class NoEncoding(io.StringIO):
    encoding = None  # type: ignore[assignment]


class BinaryNoEncoding(NoEncoding):
    buffer = io.BytesIO()


def test_a_stream_that_names_no_encoding_counts_as_utf8():
    assert OutputWriter("utf-8", BinaryNoEncoding(), NoEncoding()).decoder is None  # passed on
    assert OutputWriter("gbk", BinaryNoEncoding(), NoEncoding()).decoder is not None
    assert OutputWriter("utf-8", NoEncoding(), NoEncoding()).decoder is not None  # no .buffer


# ------------------------------------------------------------- against a real server, here


@pytest.fixture(scope="module")
def background() -> Iterator[BackgroundServer]:
    with BackgroundServer(encoding="utf-8") as server:
        yield server


@pytest.fixture
def client(background: BackgroundServer) -> Iterator[Client]:
    with connect(*background.address) as client:
        yield client


def run(client: Client, command: str, **options: object) -> tuple[int, bytes, bytes]:
    out, err = binary_stream(), binary_stream()
    status = run_command(client, command, None, out, err, **options)  # type: ignore[arg-type]
    return status, written(out), written(err)


def test_run_command_streams_and_returns_the_status(client):
    assert run(client, "printf out; printf err >&2; exit 3") == (3, b"out", b"err")
    assert run(client, "true") == (0, b"", b"")


def test_run_command_shows_a_note_for_a_failure_on_a_line_of_its_own(client):
    assert run(client, "printf err >&2; exit 3", show_status=True) == (3, b"", b"err\n[exit 3]\n")
    assert run(client, "echo out; exit 4", show_status=True) == (4, b"out\n", b"[exit 4]\n")
    assert run(client, "kill -9 $$", show_status=True) == (137, b"", b"[killed by SIGKILL]\n")
    assert run(client, "echo fine", show_status=True) == (0, b"fine\n", b"")


def test_run_command_note_in_dim_red_with_colour(client):
    status, out, err = run(client, "printf x >&2; exit 5", show_status=True, color=True)
    assert (status, out) == (5, b"")
    assert err == f"{RED}x{RESET}\n{DIM_RED}[exit 5]{RESET}\n".encode()


def test_run_command_timeout(client):
    out, err = binary_stream(), binary_stream()
    assert run_command(client, "sleep 60", 0.2, out, err, show_status=True) == 124
    assert written(err) == b"[timed out]\n"


def test_run_one_reports_a_command_refused_before_sending(client):
    out, err = io.StringIO(), io.StringIO()
    assert run_one(client, "echo a\0b", None, out, err) == ExitStatus.USAGE
    assert (
        err.getvalue() == "rcmd: cannot send this command: RUN would be refused: NUL character in 'command'\n"
    )
    assert run_one(client, "echo next", None, out, err) == 0  # the connection goes on
    assert out.getvalue() == "next\n"


def test_run_lines_skips_blanks_stops_at_exit_and_returns_the_last_status(client):
    out, err = io.StringIO(), io.StringIO()
    assert run_lines(client, ["", "  echo a  ", "   ", "false"], None, out, err) == 1
    assert out.getvalue() == "a\n"
    assert run_lines(client, ["echo b", "exit", "echo never"], None, out, err) == 0
    assert run_lines(client, ["false", "quit", "echo never"], None, out, err) == 1
    assert run_lines(client, [], None, out, err) == 0
    assert out.getvalue() == "a\nb\n"
    assert err.getvalue() == ""


def test_run_lines_colours_stderr(client):
    out, err = binary_stream(), binary_stream()
    assert run_lines(client, ["printf e >&2"], None, out, err, color=True) == 0
    assert written(err) == f"{RED}e{RESET}".encode()


class CountingClient:
    def __init__(self) -> None:
        self.interrupts = 0

    def interrupt(self) -> None:
        self.interrupts += 1


def test_ctrl_c_cancels_once_then_interrupts_and_is_put_back():
    before = signal.getsignal(signal.SIGINT)
    fake = CountingClient()
    with ctrl_c_cancels(fake):  # type: ignore[arg-type]
        assert signal.getsignal(signal.SIGINT) is not before
        signal.raise_signal(signal.SIGINT)
        assert fake.interrupts == 1
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert fake.interrupts == 1
    assert signal.getsignal(signal.SIGINT) is before


def test_ctrl_c_is_left_alone_outside_the_main_thread():
    fake = CountingClient()
    seen: list[object] = []

    def body() -> None:
        with ctrl_c_cancels(fake):  # type: ignore[arg-type]
            seen.append(signal.getsignal(signal.SIGINT))

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [before]


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024 * 1024 - 1, "1024.0 KiB"),
        (1024 * 1024, "1.0 MiB"),
        (int(25.3 * 1024 * 1024), "25.3 MiB"),
        (1024**3, "1.0 GiB"),
        (5000 * 1024**3, "5000.0 GiB"),  # no unit past GiB
    ],
)
def test_format_size(count, text):
    assert format_size(count) == text


class FullDisk(io.StringIO):
    encoding = "utf-8"

    def __init__(self, fail_on: str) -> None:
        super().__init__()
        self.fail_on = fail_on

    def write(self, text: str) -> int:
        if self.fail_on == "write":
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(text)

    def flush(self) -> None:
        if self.fail_on == "flush":
            raise OSError(errno.EPIPE, "Broken pipe")


def test_a_failed_local_write_is_a_local_write_error():
    writer = OutputWriter("gbk", FullDisk("write"), io.StringIO())
    with pytest.raises(LocalWriteError) as info:
        writer.write(Stdout(b"x"))
    assert (info.value.errno, info.value.strerror, str(info.value)) == (
        errno.ENOSPC,
        "No space left on device",
        "write error: No space left on device",
    )
    writer = OutputWriter("gbk", FullDisk("flush"), io.StringIO())
    with pytest.raises(LocalWriteError) as info:
        writer.finish()
    assert info.value.errno == errno.EPIPE


def test_run_command_abandons_the_command_when_output_cannot_be_written(background):
    client = connect(*background.address)
    try:
        with pytest.raises(LocalWriteError):
            run_command(client, "echo x", None, FullDisk("write"), io.StringIO())
        assert client._closed  # closed, not left waiting for the rest
    finally:
        client.close()


@pytest.fixture(scope="module")
def naive_background() -> Iterator[BackgroundServer]:
    with BackgroundServer(framing="naive", encoding="utf-8") as server:
        yield server


def test_run_naive_shows_the_reply_and_knows_no_status(naive_background):
    out, err = io.StringIO(), io.StringIO()
    with connect(*naive_background.address, framing="naive") as client:
        assert run_one(client, "echo hi", None, out, err) == ExitStatus.STATUS_UNKNOWN == 246
    assert (out.getvalue(), err.getvalue()) == ("hi\n", "")
