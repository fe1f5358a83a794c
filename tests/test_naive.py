"""Naive framing over real sockets: the tutorial's bugs, shown deterministically.

Each test forces the condition it shows (the server busy while two commands arrive, both
sends buffered before the read) instead of hoping the timing falls that way.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import subprocess
import termios
import time

import pytest

from rcmd import NaiveClient, connect
from rcmd.framing import NAIVE_RECV_SIZE


def local_output(command: str) -> bytes:
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, check=True).stdout


def wait_delivered(sock: socket.socket, timeout: float = 15.0) -> None:
    """Wait until the server's kernel has acknowledged every byte we sent (SIOCOUTQ is 0):
    they are then in its receive buffer, whenever it reads them."""
    deadline = time.monotonic() + timeout
    while struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]:
        assert time.monotonic() < deadline, "the server never received what we sent"
        time.sleep(0.01)


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_the_server_cuts_a_long_command_at_1024_bytes_and_runs_the_rest_as_another(naive_server):
    head = b"echo " + b"A" * (NAIVE_RECV_SIZE - 5)  # exactly 1024 bytes
    tail = b"echo " + b"B" * 471  # 1500 bytes in all, sent at once
    assert len(head) == 1024
    with socket.create_connection(naive_server.address, timeout=15) as sock:
        sock.sendall(head + tail)
        sock.shutdown(socket.SHUT_WR)  # the server runs what it read, then sees EOF and closes
        reply = read_until_closed(sock)
    # Two commands ran: the first 1024 bytes, then the other 476. One command line would
    # have printed "AAA...echo BBB...".
    assert reply == b"A" * 1019 + b"\n" + b"B" * 471 + b"\n"
    assert b"echo" not in reply


def test_long_reply_tail_turns_up_as_the_next_reply(naive_server):
    full = local_output("seq 1 3000")
    with NaiveClient.connect(*naive_server.address) as client:
        first = client.run("seq 1 3000").stdout
        second = client.run("echo hi").stdout
    assert len(first) <= 1024 < len(full)
    assert full.startswith(first)  # reply 1 is cut short...
    assert second == full[len(first) : len(first) + len(second)]  # ...and its middle answers "echo hi"
    assert b"hi\n" not in second


def test_stderr_then_stdout_arrive_as_one_reply(naive_server):
    with NaiveClient.connect(*naive_server.address) as client:
        client.send_command("echo err >&2; echo out")
        assert client.wait_buffered(8) == 8  # both sends are in our buffer before we read
        assert client.recv_reply() == b"err\nout\n"  # two sends, one recv: no boundary left


def test_two_commands_sent_back_to_back_run_as_one_command_line(naive_server, tmp_path):
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    with NaiveClient.connect(*naive_server.address) as client:
        client.send_command(f"cat {gate}")
        writer = os.open(gate, os.O_WRONLY)  # returns once the server is running that cat
        client.send_command("echo a")  # both queue up while the server is busy...
        client.send_command("echo b")
        wait_delivered(client.sock)  # ...in its buffer before cat ends and it reads again
        os.write(writer, b"gate\n")
        os.close(writer)  # ...cat ends, the server reads again: "echo aecho b"
        expected = b"gate\naecho b\n"
        assert client.wait_buffered(len(expected)) == len(expected)
        assert client.recv_reply() == expected


def test_auto_decoding_guesses_gbk_from_the_bytes(naive_server):
    with NaiveClient.connect(*naive_server.address) as client:
        result = client.run(r"printf '\326\320\316\304'")
    assert result.encoding == "gbk"
    assert result.stdout_text == "中文"
    assert result.returncode is None  # the naive protocol has no exit status


def test_connect_with_naive_framing_gives_the_naive_client(naive_server):
    with connect(*naive_server.address, framing="naive") as client:
        assert isinstance(client, NaiveClient)
        assert client.run("echo hi").stdout == b"hi\n"


def test_empty_command_is_never_sent(naive_server):
    with NaiveClient.connect(*naive_server.address) as client, pytest.raises(ValueError, match="empty send"):
        client.send_command("")
