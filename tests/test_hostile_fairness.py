"""One connection's input never holds the event loop for good: its read loop hands the loop
over after EVENTS_PER_TURN messages. Counted with a ticker task that takes one turn of the
loop at a time: between two of its turns the flooding connection handles at most that many
messages. Before, it handled all it had buffered (here tens of thousands of PINGs) in one
turn, and a client sending without pause kept every other client waiting (60 s for 8 MiB).
"""

from __future__ import annotations

import asyncio
import socket

from rcmd.framing import encode_frame
from rcmd.messages import Hello, Ping, encode_message
from rcmd.server import Server, ServerConfig
from rcmd.server import session as session_module

PING = encode_frame(encode_message(Ping()))


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


def test_a_flooding_client_handles_at_most_events_per_turn_messages_a_turn(monkeypatch):
    handled = 0
    handle = session_module.PrefixedSession._handle

    async def counting(self: session_module.PrefixedSession, event: object) -> None:
        nonlocal handled
        handled += 1
        await handle(self, event)  # type: ignore[arg-type]

    monkeypatch.setattr(session_module.PrefixedSession, "_handle", counting)

    async def main() -> tuple[int, list[int]]:
        server = Server(ServerConfig(host="127.0.0.1", port=0))
        await server.start()
        sock, pings = flood(server.address)
        per_turn: list[int] = []
        try:
            before = handled
            while handled < pings + 1:  # its HELLO, then every PING
                await asyncio.sleep(0)  # one turn of the loop
                per_turn.append(handled - before)
                before = handled
                drain(sock)
        finally:
            sock.close()
            await server.close()
        return pings, per_turn

    pings, per_turn = asyncio.run(asyncio.wait_for(main(), 120))
    assert pings > 10 * session_module.EVENTS_PER_TURN  # enough to tell
    assert max(per_turn) <= session_module.EVENTS_PER_TURN
