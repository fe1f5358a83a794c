"""A CANCEL behind stdin the command has not read: the server reads on past the input it
holds for the command (STDIN_BACKLOG) for a frame limit more, so the CANCEL is seen at once
and does not wait for a command that may never read."""

from __future__ import annotations

import socket
import threading

from rcmd.framing import CLOSED, DEFAULT_MAX_FRAME_SIZE, NEED_DATA, LengthPrefixFramer, encode_frame
from rcmd.messages import Cancel, Exit, Hello, Message, Run, Stdin, Stdout, decode_message, encode_message
from rcmd.server.command import STDIN_BACKLOG

CHUNK = 64 * 1024
REPLY_WAIT = 60.0  # a server that has not seen the CANCEL never answers: this ends the test


def frame(message: Message) -> bytes:
    return encode_frame(encode_message(message))


def test_a_cancel_behind_more_stdin_than_the_backlog_is_seen(server):
    """A command that never reads, STDIN_BACKLOG plus a frame limit (2 MiB) of input, then
    CANCEL: before, the server stopped reading after the backlog and the CANCEL waited in
    the socket buffers behind the rest for as long as the command ran (here 600 s)."""
    sock = socket.create_connection(server.address, timeout=REPLY_WAIT)
    framer = LengthPrefixFramer()

    def receive() -> Message | None:
        while (payload := framer.next_frame()) is NEED_DATA:
            framer.receive_data(sock.recv(65536))
        return None if payload is CLOSED else decode_message(payload)  # type: ignore[arg-type]

    def send_all(data: bytes) -> None:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the test ended (and closed the socket) before the server took it all

    try:
        assert isinstance(receive(), Hello)
        sock.sendall(frame(Hello()) + frame(Run("echo started; exec sleep 600", stdin=True)))
        assert receive() == Stdout(b"started\n")
        stdin = frame(Stdin(bytes(CHUNK))) * ((STDIN_BACKLOG + DEFAULT_MAX_FRAME_SIZE) // CHUNK)
        # In a thread: before the fix, the server leaves much of it to the socket buffers,
        # and sendall() may wait for them as long as the command runs.
        sender = threading.Thread(target=send_all, args=(stdin + frame(Cancel()),), daemon=True)
        sender.start()
        reply = receive()
        assert isinstance(reply, Exit), reply
        assert reply.cancelled
        sender.join(REPLY_WAIT)
    finally:
        sock.close()
