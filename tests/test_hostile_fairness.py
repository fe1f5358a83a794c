"""One connection's input never holds the event loop for good: its read loop hands the loop
over after EVENTS_PER_TURN messages. Counted with a ticker task that takes one turn of the
loop at a time: between two of its turns the flooding connection handles at most that many
messages. Before, it handled all it had buffered (here tens of thousands of PINGs) in one
turn, and a client sending without pause kept every other client waiting (60 s for 8 MiB).
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from rcmd import protocol
from rcmd.framing import NEED_DATA, LengthPrefixFramer, encode_frame
from rcmd.messages import Error, Exit, Hello, Ping, Pong, Run, decode_message, encode_message
from rcmd.server import Server, ServerConfig
from rcmd.server import session as session_module

PING = encode_frame(encode_message(Ping()))


@pytest.fixture(autouse=True)
def unbounded_pings(monkeypatch):
    """These tests flood PINGs to see how a turn is shared: no PING_RATE, but where a test
    sets one itself."""
    monkeypatch.setattr(session_module, "PING_BURST", 10**9)


def flood(address: tuple[str, int]) -> tuple[socket.socket, int]:
    """A connection with HELLO and 2,000 PINGs (or as many as the kernel takes without the
    server reading: the event loop does not run meanwhile); how many PINGs went."""
    sock = socket.create_connection(address, timeout=30)
    sock.sendall(encode_frame(encode_message(Hello())))
    sock.setblocking(False)
    data = memoryview(PING * 2_000)  # 250 turns' worth: enough to tell, quick under coverage
    sent = 0
    try:
        while sent < len(data):
            sent += sock.send(data[sent:])
    except BlockingIOError:
        pass
    return sock, sent // len(PING)


def drain(sock: socket.socket) -> None:
    """Read the PONGs that have come, so the server never waits on a full socket."""
    try:
        while sock.recv(1 << 20):
            pass
    except BlockingIOError:
        pass


def serve_flood(until_done) -> int:
    """Flood an in-process server with PINGs; turn its loop until until_done(pings) says
    so, draining the PONGs; return how many PINGs went."""

    async def main() -> int:
        server = Server(ServerConfig(host="127.0.0.1", port=0))
        await server.start()
        sock, pings = flood(server.address)
        try:
            while not until_done(pings):
                await asyncio.sleep(0)  # one turn of the loop
                drain(sock)
        finally:
            sock.close()
            await server.close()
        return pings

    return asyncio.run(asyncio.wait_for(main(), 120))


def test_a_flooding_client_handles_at_most_events_per_turn_messages_a_turn(monkeypatch):
    handled = 0
    next_event = protocol.Connection.next_event

    def counting(self: protocol.Connection) -> object:
        nonlocal handled
        event = next_event(self)
        handled += event is not NEED_DATA
        return event

    monkeypatch.setattr(protocol.Connection, "next_event", counting)
    per_turn: list[int] = []
    before = 0

    def done(pings: int) -> bool:
        nonlocal before
        per_turn.append(handled - before)
        before = handled
        return handled >= pings + 1  # its HELLO, then every PING

    pings = serve_flood(done)
    assert pings > 10 * session_module.EVENTS_PER_TURN  # enough to tell
    assert max(per_turn) <= session_module.EVENTS_PER_TURN
    # And no fewer: most turns handle a whole batch (not the first alone).
    assert sorted(per_turn)[len(per_turn) // 2] == session_module.EVENTS_PER_TURN


def test_the_pongs_of_a_turn_go_in_one_write(monkeypatch):
    """A PONG a write() was a send() a PING: a fifth of the event loop's time in a flood."""
    writes: list[bytes] = []
    write = asyncio.StreamWriter.write

    def recording(self: asyncio.StreamWriter, data: bytes) -> None:
        writes.append(bytes(data))
        write(self, data)

    monkeypatch.setattr(asyncio.StreamWriter, "write", recording)
    pong = encode_frame(encode_message(Pong()))
    pongs = lambda: sum(len(data) for data in writes[1:]) // len(pong)  # noqa: E731 - after HELLO
    answered: list[bytes] = []

    def done(pings: int) -> bool:
        answered[:] = writes[1:]  # after the HELLO, and before the server's shutdown ERROR
        return pongs() >= pings

    pings = serve_flood(done)
    assert b"".join(answered) == pong * pings
    assert len(answered) <= 2 * pings // session_module.EVENTS_PER_TURN


def exchange(data: bytes) -> list[object]:
    """Send HELLO and *data* to an in-process server, end our side; every message it sends
    after its HELLO, until it closes."""

    async def main() -> list[object]:
        server = Server(ServerConfig(host="127.0.0.1", port=0))
        await server.start()
        try:
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write(encode_frame(encode_message(Hello())) + data)
            writer.write_eof()
            received = await reader.read()
            writer.close()
        finally:
            await server.close()
        framer = LengthPrefixFramer()
        framer.receive_data(received)
        messages = []
        while (frame := framer.next_frame()) is not NEED_DATA:
            messages.append(decode_message(frame))
        return messages[1:]

    return asyncio.run(asyncio.wait_for(main(), 60))


def test_pongs_answered_in_a_batch_keep_their_place_among_the_replies():
    run = encode_frame(encode_message(Run("cd /")))
    messages = exchange(PING + run + PING * 2)
    assert [type(m) for m in messages] == [Pong, Exit, Pong, Pong]


def test_pongs_before_garbage_still_go_out_before_the_error():
    messages = exchange(PING * 3 + b"\x00\x00\x00\x01\x7f")
    assert messages[:3] == [Pong()] * 3
    assert [type(m) for m in messages] == [Pong, Pong, Pong, Error]


def test_a_flood_of_pings_is_read_at_ping_rate_each_answered_in_order(monkeypatch):
    """Past PING_BURST the connection is read at PING_RATE: a client flooding PINGs no longer
    has the server work for it alone; every PING still gets its PONG."""
    monkeypatch.setattr(session_module, "PING_RATE", 200.0)
    monkeypatch.setattr(session_module, "PING_BURST", 10)
    started = time.monotonic()
    assert exchange(PING * 110) == [Pong()] * 110
    assert time.monotonic() - started >= (110 - 10) / 200  # 0.5 s; at once before
