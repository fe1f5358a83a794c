"""The naive server (rcmd.naive.NaiveSession) in-process: a BackgroundServer with naive
framing, over real 127.0.0.1 sockets, so that mutmut's per-test stats see the session run
and each mutant runs only the tests that reach it. The bug is the point: one read is one
command, the reply is stderr then stdout with no boundaries; these tests pin that down as it
is (tests/test_naive.py shows the same against a server subprocess), and what surrounds it:
the start directory, the encoding, a shell that cannot start, the log, a stop mid-command.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator

import pytest
from _mutserver import ServerLog, capture

from rcmd import NaiveClient
from rcmd.framing import NAIVE_RECV_SIZE
from rcmd.naive import NAIVE_REPLY_TIMEOUT
from rcmd.server import BackgroundServer


@pytest.fixture
def server_log() -> Iterator[ServerLog]:
    """The server's log lines at INFO and above (conftest's is at DEBUG)."""
    with capture(logging.INFO) as handler:
        yield handler


@pytest.fixture(scope="module")
def naive() -> Iterator[BackgroundServer]:
    with BackgroundServer(framing="naive", encoding="utf-8") as server:
        yield server


def peer_of(sock: socket.socket) -> str:
    """The client's address as the server's log names it."""
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def exchange(address: tuple[str, int], data: bytes) -> bytes:
    """Send *data* at once and end our side: all the server sent back, until it closed."""
    with socket.create_connection(address, timeout=15) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return read_until_closed(sock)


def test_one_read_of_up_to_1024_bytes_is_one_command(naive):
    head = b"echo " + b"A" * (NAIVE_RECV_SIZE - 5)
    tail = b"echo " + b"B" * 10
    reply = exchange(naive.address, head + tail)
    assert reply == b"A" * (NAIVE_RECV_SIZE - 5) + b"\n" + b"B" * 10 + b"\n"


def test_the_reply_is_stderr_then_stdout_unframed(naive):
    assert exchange(naive.address, b"echo out; echo err >&2") == b"err\nout\n"


def test_commands_run_one_after_another_on_one_connection(naive):
    with NaiveClient.connect(*naive.address) as client:
        assert client.run("echo one").stdout == b"one\n"
        assert client.run("echo two").stdout == b"two\n"


def test_a_command_runs_in_the_servers_directory_without_stdin(naive):
    # cat reads /dev/null: it ends at once, the command does not wait for input.
    assert exchange(naive.address, b"cat; pwd") == os.getcwd().encode() + b"\n"


def test_a_command_starts_in_the_configured_directory(tmp_path):
    with BackgroundServer(framing="naive", encoding="utf-8", cwd=str(tmp_path)) as server:
        assert exchange(server.address, b"pwd") == str(tmp_path).encode() + b"\n"


def test_the_command_is_decoded_in_the_servers_encoding_bad_bytes_replaced(tmp_path):
    with BackgroundServer(framing="naive", encoding="gbk", cwd=str(tmp_path)) as server:
        # GBK 中文 is decoded, then passed to the shell (in the environment's encoding);
        # \xff is no GBK and becomes U+FFFD.
        reply = exchange(server.address, b"printf '%s' '\xd6\xd0\xce\xc4' > out; printf '\xff' > bad")
    assert reply == b""
    assert (tmp_path / "out").read_bytes() == "中文".encode(errors="surrogateescape")
    assert (tmp_path / "bad").read_bytes() == "\ufffd".encode()


def test_a_shell_that_cannot_start_is_said_in_the_servers_encoding(tmp_path, server_log):
    gone = tmp_path / "gone-中"
    gone.mkdir()
    with BackgroundServer(framing="naive", encoding="latin-1", cwd=str(gone)) as server:
        gone.rmdir()  # spawn() fails: its start directory is no more
        with NaiveClient.connect(*server.address) as client:
            reply = client.run("echo é").stdout
            # What latin-1 cannot say (the directory's name) is replaced, not an error.
            assert reply == (
                f"rcmd: cannot run command: [Errno 2] No such file or directory: '{tmp_path}/gone-?'\n"
            ).encode("latin-1")
            assert client.run("echo again").stdout.startswith(b"rcmd: cannot run command: ")  # goes on
    assert not [line for line in server_log.lines if "exit" in line or "failed" in line]


def test_stopping_the_server_closes_an_idle_connection(server_log):
    server = BackgroundServer(framing="naive", encoding="utf-8").start()
    try:
        with socket.create_connection(server.address, timeout=15) as sock:
            server_log.wait_for_text(f"{peer_of(sock)} connected", 15.0)
            server.close()
            assert read_until_closed(sock) == b""
    finally:
        server.close()
    assert not [line for line in server_log.lines if "failed" in line]


def test_the_log_names_each_command_and_its_exit(naive, server_log):
    with NaiveClient.connect(*naive.address) as client:
        peer = peer_of(client.sock)
        assert client.run("echo x; exit 3").stdout == b"x\n"
    server_log.wait_for_text(f"{peer} disconnected", 15.0)
    ours = [line for line in server_log.lines if line.startswith(peer)]
    assert ours == [
        f"{peer} connected",
        f"{peer}: run (naive) 'echo x; exit 3'",
        f"{peer}: exit 3 (naive)",
        f"{peer} disconnected",
    ]


def test_a_client_that_leaves_during_a_command_ends_the_session_quietly(naive, server_log, tmp_path):
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    sock = socket.create_connection(naive.address, timeout=15)
    peer = peer_of(sock)
    sock.sendall(f"cat {gate}; yes | head -c 4000000".encode())
    writer = os.open(gate, os.O_WRONLY)  # the command runs
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    sock.close()  # a reset: the reply cannot be sent
    os.close(writer)
    server_log.wait_for_text(f"{peer} disconnected", 15.0)
    assert not [line for line in server_log.lines if "failed" in line]


def test_stopping_the_server_kills_the_running_command_and_closes(tmp_path, server_log):
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    server = BackgroundServer(framing="naive", encoding="utf-8").start()
    try:
        sock = socket.create_connection(server.address, timeout=15)
        # The shell, then its sleep, hold the fifo open for writing once the gate opens.
        sock.sendall(f"exec 3>{gate}; sleep 60".encode())
        with open(gate, "rb") as reader:  # returns once the command opened it
            server.close()
            assert reader.read() == b""  # every writer is gone: the command's group was killed
        assert read_until_closed(sock) == b""  # the killed command printed nothing
        sock.close()
    finally:
        server.close()
    assert not [line for line in server_log.lines if "failed" in line]


def test_a_stopped_session_reads_no_more_commands(tmp_path):
    """After shutdown() the session ends, though its client's next command is already there."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    marker = tmp_path / "ran"
    server = BackgroundServer(framing="naive", encoding="utf-8").start()
    try:
        with socket.create_connection(server.address, timeout=15) as sock:
            sock.sendall(f"exec 3>{gate}; sleep 60".encode())
            with open(gate, "rb") as reader:
                sock.sendall(f"touch {marker}".encode())
                server.close()
                assert reader.read() == b""
            assert read_until_closed(sock) == b""
    finally:
        server.close()
    assert not marker.exists()


def test_the_session_names_its_peer_and_forgets_its_command_once_done(tmp_path):
    gate, done = tmp_path / "gate", tmp_path / "done"
    os.mkfifo(gate)
    os.mkfifo(done)
    with BackgroundServer(framing="naive", encoding="utf-8") as server:
        with NaiveClient.connect(*server.address) as client:
            client.send_command(f"exec 3>{gate}; cat {done}; echo done")
            with open(gate, "rb"):  # the command runs
                (session,) = server._servers[0]._sessions
                assert session.peer == peer_of(client.sock)
                with open(done, "wb"):
                    pass
            assert client.recv_reply() == b"done\n"
            assert session.process is None


# ------------------------------------------------------------- the client, as taught


def test_the_client_takes_one_recv_of_its_size_and_traces_it(naive):
    from rcmd.trace import naive_reply_line

    lines: list[str] = []
    with NaiveClient.connect(*naive.address, recv_size=8, trace=lines.append) as client:
        assert client.sock.gettimeout() == NAIVE_REPLY_TIMEOUT  # the connect timeout is not kept
        client.send_command("echo hello world")
        assert client.wait_buffered(12) == 12
        assert client.recv_reply() == b"hello wo"  # one recv of 8 bytes
        assert lines == [naive_reply_line(8, 8)]


def test_a_client_made_from_a_socket_speaks_utf_8_and_guesses_replies(naive):
    client = NaiveClient(socket.create_connection(naive.address, timeout=60))
    with client:
        assert client.sock.gettimeout() == NAIVE_REPLY_TIMEOUT
        assert client.recv_size == NAIVE_RECV_SIZE
        result = client.run("printf 'é'")
        assert (result.stdout, result.encoding) == ("é".encode(), "utf-8")


def test_a_client_in_another_encoding_sends_and_reads_in_it(tmp_path):
    with BackgroundServer(framing="naive", encoding="gbk", cwd=str(tmp_path)) as server:
        with NaiveClient.connect(*server.address, encoding="gbk") as client:
            result = client.run("printf '%s' 中文 > out; printf '\\326\\320'")
            assert (result.stdout, result.encoding) == (b"\xd6\xd0", "gbk")
            assert result.stdout_text == "中"
    assert (tmp_path / "out").read_bytes() == "中文".encode()  # the server decoded GBK


def test_a_reply_cut_by_a_closed_connection_says_so(naive):
    with NaiveClient.connect(*naive.address) as client:
        client.sock.shutdown(socket.SHUT_WR)  # the server sees EOF and closes
        with pytest.raises(ConnectionError, match=r"^the server closed the connection$"):
            client.recv_reply()


def test_wait_buffered_consumes_nothing_and_restores_the_socket(naive):
    with NaiveClient.connect(*naive.address) as client:
        client.sock.settimeout(7.0)
        assert client.wait_buffered(4, timeout=0.01) == 0  # nothing sent, nothing there
        assert client.sock.gettimeout() == 7.0
        assert client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 1
        client.send_command("echo abc")
        assert client.wait_buffered(4) == 4
        assert client.sock.gettimeout() == 7.0
        assert client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 1
        assert client.recv_reply() == b"abc\n"


def test_a_client_sends_bytes_as_they_are_and_keeps_its_encoding_for_replies(tmp_path):
    with BackgroundServer(framing="naive", encoding="gbk", cwd=str(tmp_path)) as server:
        with NaiveClient.connect(*server.address, encoding="gbk") as client:
            client.send_command(b"echo bytes")
            assert client.recv_reply() == b"bytes\n"
            result = client.run("echo ascii")  # would guess utf-8: the given encoding holds
            assert (result.command, result.stdout, result.encoding) == ("echo ascii", b"ascii\n", "gbk")
