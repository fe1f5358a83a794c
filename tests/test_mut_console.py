"""rcmd.console in-process: exit codes, notes, colour, the output writer, and running commands
against a BackgroundServer (a real server in a thread of this process, real shell commands).

test_cli.py runs the same paths through the rcmd executable; these run in the test process,
so mutation testing (make mutate-rest) sees which tests reach which function.
"""

from __future__ import annotations

import errno
import io
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from rcmd import connect, console
from rcmd.client import Client
from rcmd.console import (
    DIM_RED,
    RED,
    RESET,
    ExitStatus,
    OutputWriter,
    connection_failure,
    ctrl_c_cancels,
    describe_exit,
    exit_status,
    format_size,
    run_command,
    run_lines,
    run_naive,
    run_one,
    wants_color,
)
from rcmd.errors import (
    AuthenticationError,
    ConnectionClosed,
    FrameTooLarge,
    LocalWriteError,
    ProtocolMismatch,
    RemoteProtocolError,
    ServerError,
    TlsError,
)
from rcmd.framing import CLOSED, NEED_DATA, LengthPrefixFramer, encode_frame
from rcmd.messages import (
    Cancel,
    Error,
    Exit,
    Hello,
    Message,
    Ping,
    Pong,
    Run,
    Stderr,
    Stdout,
    decode_message,
    encode_message,
)
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


# ------------------------------------------------------ how a failed connection is reported


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        (AuthenticationError("the secret is wrong"), ExitStatus.AUTH_FAILED, "the secret is wrong"),
        (TlsError("certificate verify failed"), ExitStatus.TLS_FAILED, "certificate verify failed"),
        (ProtocolMismatch("no HELLO"), ExitStatus.PROTOCOL_MISMATCH, "no HELLO"),
        (
            FrameTooLarge(10, 5),
            ExitStatus.FRAME_TOO_LARGE,
            "h:1: frame of 10 bytes exceeds the maximum of 5 bytes "
            "(is the peer speaking another protocol, e.g. naive framing?)",
        ),
        (RemoteProtocolError("bad"), ExitStatus.PROTOCOL_ERROR, "h:1: protocol error: bad"),
        (ServerError("shutting down"), ExitStatus.CONNECTION_LOST, "h:1: server error: shutting down"),
        (ConnectionClosed("gone"), ExitStatus.CONNECTION_LOST, "h:1: gone"),
        (
            ConnectionRefusedError(),
            ExitStatus.CONNECTION_FAILED,
            "cannot connect to h:1: connection refused (is rcmd-server running?)",
        ),
        (
            socket.gaierror(-2, "Name or service not known"),
            ExitStatus.HOST_NOT_FOUND,
            "cannot resolve host 'h': Name or service not known",
        ),
        (TimeoutError(), ExitStatus.CONNECT_TIMEOUT, "cannot connect to h:1: no answer within 2.5s"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_connection_failures_have_their_own_status_and_message(exc, status, message):
    assert connection_failure(exc, "h:1", "h", 2.5) == (status, message)


def test_other_errors_are_no_connection_failure():
    assert connection_failure(OSError(errno.ENOSPC, "full"), "h:1", "h", 2.5) is None
    assert connection_failure(ValueError("x"), "h:1", "h", 2.5) is None


# ------------------------------------------------- run_command's options, run_one and run_lines


def stdin_pipe(data: bytes) -> int:
    """The read end of a pipe that holds *data* and then ends."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    os.close(write_fd)
    return read_fd


def test_run_command_forwards_stdin(client):
    fd = stdin_pipe(b"to the command\n")
    try:
        assert run(client, "cat", stdin_fd=fd) == (0, b"to the command\n", b"")
    finally:
        os.close(fd)


class FullForText(FullDisk):
    """A full disk that still takes an empty write (a decoder's flush with nothing left)."""

    def write(self, text: str) -> int:
        return super().write(text) if text else 0


def test_run_command_tolerates_a_failed_note(client):
    """The note is a courtesy: a stderr that fails then does not change the status."""
    assert run_command(client, "exit 3", None, io.StringIO(), FullForText("write"), show_status=True) == 3


def test_run_one_passes_every_option_on(client):
    out, err = binary_stream(), binary_stream()
    assert run_one(client, "sleep 5", 0.2, out, err, show_status=True) == ExitStatus.TIMED_OUT
    assert written(err) == b"[timed out]\n"
    fd = stdin_pipe(b"in\n")
    try:
        assert (
            run_one(client, "cat; printf e >&2; exit 3", None, out, err, stdin_fd=fd, show_status=True) == 3
        )
    finally:
        os.close(fd)
    assert written(out) == b"in\n"  # not coloured: colour is asked for
    assert written(err) == b"[timed out]\ne\n[exit 3]\n"
    out, err = binary_stream(), binary_stream()
    assert run_one(client, "printf 'a\\nb\\n'", None, out, err, pty=True) == 0
    assert written(out) == b"a\r\nb\r\n"  # a terminal's newlines


def test_run_lines_passes_the_timeout_and_colours_only_when_asked(client):
    out, err = binary_stream(), binary_stream()
    assert run_lines(client, ["printf e >&2", "sleep 5"], 0.2, out, err) == ExitStatus.TIMED_OUT
    assert written(err) == b"e"


# ------------------------------------------------------------- on a remote pseudo-terminal


def test_pty_output_and_status(client):
    assert run(client, "echo out; echo err >&2; exit 3", pty=True) == (3, b"out\r\nerr\r\n", b"")


def test_pty_notes_a_failure_after_the_output_on_a_line_of_its_own(client):
    assert run(client, "printf x; exit 3", pty=True, show_status=True) == (3, b"x", b"\n[exit 3]\n")
    assert run(client, "echo x; exit 4", pty=True, show_status=True) == (4, b"x\r\n", b"[exit 4]\n")
    assert run(client, "kill -9 $$", pty=True, show_status=True) == (137, b"", b"[killed by SIGKILL]\n")
    assert run(client, "echo fine", pty=True, show_status=True) == (0, b"fine\r\n", b"")
    status, _, err = run(client, "exit 5", pty=True, show_status=True, color=True)
    assert (status, err) == (5, f"{DIM_RED}[exit 5]{RESET}\n".encode())


def test_pty_timeout_stdin_and_a_failed_note(client):
    out, err = binary_stream(), binary_stream()
    assert run_command(client, "sleep 5", 0.2, out, err, pty=True, show_status=True) == 124
    assert written(err) == b"[timed out]\n"
    fd = stdin_pipe(b"7\n")
    try:
        status = run_command(
            client, "read code; exit $code", 10, binary_stream(), binary_stream(), pty=True, stdin_fd=fd
        )
    finally:
        os.close(fd)
    assert status == 7
    assert (
        run_command(client, "exit 3", None, binary_stream(), FullForText("write"), pty=True, show_status=True)
        == 3
    )


# ---------------------------------------------------------- Ctrl-C, and output dropped after it


class InterruptingStdout(io.StringIO):
    """A stdout at which Ctrl-C is pressed as the first output is shown."""

    def write(self, text: str) -> int:
        written = super().write(text)
        if text:
            signal.raise_signal(signal.SIGINT)  # once: a second press would end rcmd
            self.write = super().write  # type: ignore[method-assign]
        return written


def send(conn: socket.socket, *messages: Message) -> None:
    conn.sendall(b"".join(encode_frame(encode_message(message)) for message in messages))


def scripted(
    on_run: Callable[[socket.socket], None],
    on_cancel: Callable[[socket.socket], None],
    on_ping: Callable[[socket.socket], None] | None = None,
):
    """A server script: HELLO, then *on_run* at the RUN, *on_cancel* at a CANCEL and *on_ping*
    at a PING (if given: the HELLO then lists the pty and ping extensions), until the client
    hangs up."""

    def script(conn: socket.socket) -> None:
        extensions = ["pty", "ping"] if on_ping else None
        send(conn, Hello(encoding="utf-8", cwd="/", extensions=extensions))
        framer = LengthPrefixFramer()
        while chunk := conn.recv(65536):
            framer.receive_data(chunk)
            while (frame := framer.next_frame()) not in (NEED_DATA, CLOSED):
                message = decode_message(frame)
                if isinstance(message, Run):
                    on_run(conn)
                elif isinstance(message, Cancel):
                    on_cancel(conn)
                elif isinstance(message, Ping) and on_ping:
                    on_ping(conn)

    return script


@pytest.mark.parametrize(
    ("exit", "note"),
    [
        (Exit(0), "cancelled"),  # it ended on its own as the CANCEL went: still a cancel
        (Exit(-15, signal=15, cancelled=True), "cancelled"),
        (Exit(3), "exit 3"),
    ],
    ids=repr,
)
def test_output_in_flight_after_ctrl_c_is_dropped_and_counted(fake_server, exit, note):
    """After Ctrl-C, what was already on its way is not shown; the note says how much it was
    (1500 + 2000 bytes in two messages)."""

    def in_flight(conn: socket.socket) -> None:
        send(conn, Stdout(b"x" * 1500), Stderr(b"y" * 2000), exit)

    server = fake_server(scripted(lambda conn: send(conn, Stdout(b"first")), in_flight))
    out, err = InterruptingStdout(), binary_stream()
    with connect(*server.address) as client:
        status = run_command(client, "yes", None, out, err)  # type: ignore[arg-type]
    assert out.getvalue() == "first"
    assert written(err) == f"\n[{note}: 3.4 KiB of output dropped]\n".encode()
    assert status == exit_status(exit)


def test_pty_output_in_flight_after_an_interrupt_key_is_dropped_and_counted(fake_server):
    """On a PTY, Ctrl-C is a key (here from a pipe): what the server sent before it got the key,
    up to the PONG of the PING sent just before it, is dropped (1500 + 2000 bytes), and the note
    says how much."""

    def in_flight(conn: socket.socket) -> None:
        send(conn, Stdout(b"x" * 1500), Stdout(b"y" * 2000), Pong(), Exit(-2, signal=2))

    server = fake_server(scripted(lambda conn: None, lambda conn: None, in_flight))
    fd = stdin_pipe(b"\x03")
    try:
        with connect(*server.address) as client:
            status, out, err = run(client, "yes", pty=True, stdin_fd=fd, show_status=True)
    finally:
        os.close(fd)
    assert (status, out) == (130, b"")
    assert err == b"[killed by SIGINT: 3.4 KiB of output dropped]\n"


def test_a_cancel_by_the_server_reports_its_reason(fake_server):
    """The server cancelled the command (it is shutting down) and says why after the Exit: that
    is what rcmd reports, not a Ctrl-C. The reason comes a moment later, as over a slow link."""

    def shutting_down(conn: socket.socket) -> None:
        send(conn, Exit(-15, signal=15, cancelled=True))
        time.sleep(0.3)  # the server's reason arrives while the client waits for it
        send(conn, Error("the server is shutting down"))

    server = fake_server(scripted(shutting_down, lambda conn: None))
    with connect(*server.address) as client, pytest.raises(ServerError) as info:
        run_command(client, "sleep 60", None, binary_stream(), binary_stream())
    assert info.value.reason == "the server is shutting down"


def test_a_cancel_by_the_server_without_a_reason(fake_server, monkeypatch):
    """No reason within SERVER_REASON_WAIT: the connection is reported lost all the same."""
    monkeypatch.setattr(console, "SERVER_REASON_WAIT", 0.2)
    silent = threading.Event()

    def cancelled(conn: socket.socket) -> None:
        send(conn, Exit(-15, signal=15, cancelled=True))
        silent.wait(10)  # and nothing more, until the test is over
        conn.shutdown(socket.SHUT_RDWR)

    server = fake_server(scripted(cancelled, lambda conn: None))
    try:
        with connect(*server.address) as client, pytest.raises(ConnectionClosed) as info:
            run_command(client, "sleep 60", None, binary_stream(), binary_stream())
        assert str(info.value) == "the server cancelled the command and gave no reason"
    finally:
        silent.set()


def test_abandoning_a_lost_connection_still_reports_the_write_error(background):
    """Output that cannot be written on a connection already gone: the CANCEL cannot be sent,
    and what is reported is still the write error."""
    client = connect(*background.address)

    class LostAndFull(FullDisk):
        def write(self, text: str) -> int:
            client._sock.close()  # the connection is lost just as the disk fills up
            return super().write(text)

    try:
        with pytest.raises(LocalWriteError):
            run_command(client, "sleep 1; echo x", None, LostAndFull("write"), io.StringIO())
        assert client._closed
    finally:
        client.close()


# ------------------------------------------------------------------------ naive framing


def test_run_naive_says_when_no_reply_came(naive_background):
    out, err = io.StringIO(), io.StringIO()
    with connect(*naive_background.address, framing="naive") as client:
        client.sock.settimeout(0.2)  # "true" prints nothing: no reply will come
        assert run_one(client, "true", None, out, err) == ExitStatus.STATUS_UNKNOWN
    assert (out.getvalue(), err.getvalue()) == (
        "",
        "[no reply: a command that prints nothing sends nothing in naive framing]\n",
    )


def test_run_naive_ctrl_c_gives_up_on_the_reply():
    class Interrupted:
        def run(self, command: str) -> object:
            raise KeyboardInterrupt

    out, err = io.StringIO(), io.StringIO()
    assert run_naive(Interrupted(), "sleep 9", out, err) == ExitStatus.CANCELLED  # type: ignore[arg-type]
    assert (out.getvalue(), err.getvalue()) == ("", "^C\n")


def test_run_naive_reports_a_failed_write(naive_background):
    with connect(*naive_background.address, framing="naive") as client:
        with pytest.raises(LocalWriteError) as info:
            run_one(client, "echo hi", None, FullDisk("write"), io.StringIO())
    assert (info.value.errno, info.value.strerror) == (errno.ENOSPC, "No space left on device")


class NoEncodingAtAll:
    """A stdout with no encoding attribute at all (a minimal file-like object)."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def test_a_stream_without_an_encoding_attribute_counts_as_utf8():
    out = NoEncodingAtAll()
    writer = OutputWriter("utf-8", out, io.StringIO())  # type: ignore[arg-type]
    writer.write(Stdout("é".encode()))
    assert out.text == "é"
