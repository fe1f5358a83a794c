"""The blocking client (rcmd.client) and the asyncio one (rcmd.aio) share one core
(rcmd.client_core, rcmd.handshake): the same failures reach both with the same words."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

import rcmd
from rcmd import aio
from rcmd.client_core import STDIN_CHUNK_SIZE, CommandState, next_message
from rcmd.errors import AuthenticationError, ConnectionClosed, ServerError
from rcmd.framing import NEED_DATA
from rcmd.handshake import ClientHandshake
from rcmd.messages import Cancel, Error, Exit, Hello, Message, Stdin, StdinEnd, encode_message
from rcmd.protocol import Connection, Role

SECRET = b"client-core-secret-0123456789abc"


def open_blocking(address: tuple[str, int], **options: object) -> None:
    with rcmd.connect(*address, **options):  # type: ignore[call-overload]
        pass


def open_aio(address: tuple[str, int], **options: object) -> None:
    async def main() -> None:
        async with aio.connect(*address, **options):  # type: ignore[arg-type]
            pass

    asyncio.run(main())


TRANSPORTS: dict[str, Callable[..., None]] = {"blocking": open_blocking, "aio": open_aio}


@pytest.fixture(scope="module")
def secret_server():
    with rcmd.BackgroundServer(encoding="utf-8", secret=SECRET) as server:
        yield server


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_wrong_secret_is_refused_in_the_same_words(secret_server, transport):
    address = secret_server.address
    with pytest.raises(AuthenticationError) as refused:
        TRANSPORTS[transport](address, secret=b"not the secret, but long enough")
    assert str(refused.value) == (
        f"the server at {address[0]}:{address[1]} refused us: authentication failed (wrong secret?)"
    )


def silent_after_hello(hello: Hello) -> Callable[[socket.socket], None]:
    """A server that sends *hello*, then reads and never answers, until the client goes."""

    def script(conn: socket.socket) -> None:
        payload = encode_message(hello)
        conn.sendall(len(payload).to_bytes(4, "big") + payload)
        while conn.recv(65536):
            pass

    return script


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("hello", "options", "waited_for"),
    [
        (Hello(auth="hmac-sha256", nonce=bytes(32).hex()), {"secret": SECRET}, "our proof"),
        (Hello(auth="scram-sha-256", nonce=bytes(32).hex()), {"user": "ann", "password": "pw"}, "our HELLO"),
    ],
    ids=["secret", "user"],
)
def test_a_server_silent_after_its_hello_is_reported_alike(
    fake_server, transport, hello, options, waited_for
):
    server = fake_server(silent_after_hello(hello))
    with pytest.raises(AuthenticationError) as silent:
        TRANSPORTS[transport](server.address, connect_timeout=0.5, **options)
    host, port = server.address
    assert str(silent.value) == f"the server at {host}:{port} did not answer {waited_for} in time"


class Recorder:
    """A client as a CommandState sees it: it keeps what is sent."""

    def __init__(self) -> None:
        self.encoding = "utf-8"
        self.cwd: str | None = "/"
        self.stdin_chunk_size = STDIN_CHUNK_SIZE
        self.sent: list[Message] = []

    def _send(self, message: Message) -> None:
        self.sent.append(message)


def test_command_state_sends_stdin_in_chunks_and_each_end_once():
    client = Recorder()
    state = CommandState(client, "cat", stdin_open=True)
    state.write_stdin(b"x" * (STDIN_CHUNK_SIZE + 1))
    state.write_stdin("é")
    state.close_stdin()
    state.close_stdin()
    state.cancel()
    state.cancel()
    assert client.sent == [
        Stdin(b"x" * STDIN_CHUNK_SIZE),
        Stdin(b"x"),
        Stdin("é".encode()),
        StdinEnd(),
        Cancel(),
    ]
    assert state.cancel_requested
    with pytest.raises(ValueError, match="stdin is not open"):
        state.write_stdin(b"late")


def test_command_state_after_its_exit_sends_nothing_and_follows_cd():
    client = Recorder()
    state = CommandState(client, "cd /tmp", stdin_open=True)
    state._ended(Exit(0, cwd="/tmp"))
    state.write_stdin(b"dropped")
    state.close_stdin()
    state.cancel()
    assert client.sent == []
    assert client.cwd == "/tmp"
    assert not state.cancel_requested


def test_next_message_turns_the_servers_end_and_error_into_exceptions():
    server = Connection(Role.SERVER)
    client = Connection(Role.CLIENT)
    assert next_message(client) is NEED_DATA
    client.receive_data(server.send(Hello()))
    assert isinstance(next_message(client), Hello)
    client.receive_data(server.send(Error("going away")))
    with pytest.raises(ServerError, match="going away"):
        next_message(client)
    ended = Connection(Role.CLIENT)
    ended.receive_data(Connection(Role.SERVER).send(Hello()))
    next_message(ended)
    ended.receive_data(b"")
    with pytest.raises(ConnectionClosed, match="the server closed the connection"):
        next_message(ended)


def test_a_refused_login_hints_at_what_was_given():
    refusal = ServerError("authentication failed")
    as_user = ClientHandshake("h:1", None, user="ann", password="pw").failed(refusal)
    with_secret = ClientHandshake("h:1", SECRET).failed(refusal)
    assert (
        str(as_user) == "the server at h:1 refused us: authentication failed (wrong user name or password?)"
    )
    assert str(with_secret) == "the server at h:1 refused us: authentication failed (wrong secret?)"
    other = ConnectionClosed("gone")
    assert ClientHandshake("h:1", SECRET).failed(other) is other
