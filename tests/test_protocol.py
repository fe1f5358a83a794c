"""The conversation state machine, client and server ends wired together with bytes."""

import pytest

from rcmd.errors import LocalProtocolError, RemoteProtocolError
from rcmd.framing import CLOSED, NEED_DATA, encode_frame
from rcmd.messages import Cancel, Error, Exit, Hello, Run, Stderr, Stdin, StdinEnd, Stdout, encode_message
from rcmd.protocol import Connection, Phase, Role


def events(conn):
    out = []
    while (event := conn.next_event()) not in (NEED_DATA, CLOSED):
        out.append(event)
    return out


def handshake():
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    client.receive_data(server.send(Hello(encoding="utf-8", cwd="/")))
    assert events(client) == [Hello(encoding="utf-8", cwd="/")]
    server.receive_data(client.send(Hello()))
    assert events(server) == [Hello()]
    return client, server


def test_a_whole_command_cycle():
    client, server = handshake()
    server.receive_data(
        client.send(Run("cat", stdin=True)) + client.send(Stdin(b"x")) + client.send(StdinEnd())
    )
    assert events(server) == [Run("cat", stdin=True), Stdin(b"x"), StdinEnd()]
    assert server.phase is Phase.RUNNING
    client.receive_data(server.send(Stdout(b"x")) + server.send(Stderr(b"!")) + server.send(Exit(0)))
    assert events(client) == [Stdout(b"x"), Stderr(b"!"), Exit(0)]
    assert client.phase is server.phase is Phase.IDLE


def test_sent_bytes_are_the_framed_message():
    client, server = handshake()
    run = client.send(Run("cat"))
    assert run == encode_frame(encode_message(Run("cat")))
    server.receive_data(run)
    assert events(server) == [Run("cat")]
    for message in (Stdout(bytes(300_000)), Stderr(b""), Exit(0)):
        assert server.send(message) == encode_frame(encode_message(message))


def test_client_may_send_run_before_the_server_hello_arrives():
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    to_server = client.send(Hello()) + client.send(Run("true"))
    client.receive_data(server.send(Hello()))
    assert events(client) == [Hello()]
    assert client.phase is Phase.RUNNING  # the HELLO did not reset it
    server.receive_data(to_server)
    assert events(server) == [Hello(), Run("true")]


def test_first_message_must_be_hello():
    server = Connection(Role.SERVER)
    server.receive_data(encode_frame(b'\x02{"command":"ls"}'))
    with pytest.raises(RemoteProtocolError, match="expected HELLO first, got RUN"):
        server.next_event()
    assert server.phase is Phase.CLOSED
    with pytest.raises(RemoteProtocolError, match="already failed"):
        server.next_event()
    server.send(Error("expected HELLO"))  # the reason can still go out


def test_protocol_version_mismatch_is_refused():
    client = Connection(Role.CLIENT)
    client.receive_data(encode_frame(b'\x01{"protocol":2}'))
    with pytest.raises(RemoteProtocolError, match="version 2, we speak 1"):
        client.next_event()


@pytest.mark.parametrize(
    ("sender", "message", "reason"),
    [
        (Role.CLIENT, Stdout(b"x"), "a client may not send STDOUT"),
        (Role.SERVER, Run("ls"), "a server may not send RUN"),
        (Role.SERVER, Exit(0), "EXIT is not allowed while idle"),
        (Role.SERVER, Hello(), "a second HELLO"),
    ],
)
def test_out_of_order_messages_are_remote_errors(sender, message, reason):
    client, server = handshake()
    _sending, receiving = (client, server) if sender is Role.CLIENT else (server, client)
    # craft the bytes directly: the sender's own checks would refuse to send them
    from rcmd.messages import encode_message

    receiving.receive_data(encode_frame(encode_message(message)))
    with pytest.raises(RemoteProtocolError, match=reason):
        receiving.next_event()


def test_run_while_running_is_refused_locally_and_remotely():
    client, server = handshake()
    server.receive_data(client.send(Run("sleep 1")))
    events(server)
    with pytest.raises(LocalProtocolError, match="cannot send RUN while running"):
        client.send(Run("ls"))
    from rcmd.messages import encode_message

    server.receive_data(encode_frame(encode_message(Run("ls"))))
    with pytest.raises(RemoteProtocolError, match="RUN is not allowed while running"):
        server.next_event()


def test_stdin_needs_an_open_stdin():
    client, _server = handshake()
    client.send(Run("ls"))  # stdin=False
    with pytest.raises(LocalProtocolError, match="without an open stdin"):
        client.send(Stdin(b"x"))


def test_late_client_messages_crossing_exit_are_dropped():
    client, server = handshake()
    server.receive_data(client.send(Run("sleep 1", stdin=True)))
    events(server)
    exit_bytes = server.send(Exit(-15, signal=15, cancelled=True))
    late = client.send(Cancel()) + client.send(Stdin(b"late")) + client.send(StdinEnd())
    server.receive_data(late)
    assert events(server) == []  # the command they were for has ended
    client.receive_data(exit_bytes)
    assert events(client) == [Exit(-15, signal=15, cancelled=True)]
    server.receive_data(client.send(Run("true")))
    assert events(server) == [Run("true")]


def test_error_ends_the_conversation_both_ways():
    client, server = handshake()
    client.receive_data(server.send(Error("shutting down")))
    assert events(client) == [Error("shutting down")]
    assert client.phase is Phase.CLOSED
    assert server.phase is Phase.CLOSED
    with pytest.raises(LocalProtocolError):
        server.send(Stdout(b"x"))
    with pytest.raises(LocalProtocolError):
        client.send(Run("ls"))


def test_must_send_hello_first():
    with pytest.raises(LocalProtocolError, match="send HELLO before RUN"):
        Connection(Role.CLIENT).send(Run("ls"))


def test_clean_eof_between_messages_is_closed():
    _client, server = handshake()
    server.receive_data(b"")
    assert server.next_event() is CLOSED


# ---------------------------------------------------------------- authentication phase

from rcmd.messages import AuthOk  # noqa: E402
from rcmd.protocol import HANDSHAKE_MAX_FRAME_SIZE  # noqa: E402


def auth_handshake():
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    client.receive_data(server.send(Hello(auth="hmac-sha256", nonce="11" * 32)))
    assert events(client)[0].auth == "hmac-sha256"
    assert client.phase is Phase.HANDSHAKE  # its own HELLO (with the proof) is still to go
    server.receive_data(client.send(Hello(nonce="22" * 32, mac="33" * 32)))
    assert events(server) == [Hello(nonce="22" * 32, mac="33" * 32)]
    assert client.phase is server.phase is Phase.AUTHENTICATING
    return client, server


def test_authentication_phase_ends_with_auth_ok():
    client, server = auth_handshake()
    client.receive_data(server.send(AuthOk("44" * 32)))
    assert events(client) == [AuthOk("44" * 32)]
    assert client.phase is server.phase is Phase.IDLE
    server.receive_data(client.send(Run("true")))
    assert events(server) == [Run("true")]


def test_nothing_but_the_handshake_before_auth_ok():
    client, server = auth_handshake()
    with pytest.raises(LocalProtocolError, match="cannot send RUN while authenticating"):
        client.send(Run("ls"))
    from rcmd.messages import encode_message

    server.receive_data(encode_frame(encode_message(Run("ls"))))
    with pytest.raises(RemoteProtocolError, match="RUN is not allowed while authenticating"):
        server.next_event()


def test_frames_are_small_until_the_handshake_is_done():
    server = Connection(Role.SERVER, max_frame_size=1 << 20)
    server.send(Hello(auth="hmac-sha256", nonce="11" * 32))
    assert server.max_frame_size == HANDSHAKE_MAX_FRAME_SIZE
    server.receive_data((HANDSHAKE_MAX_FRAME_SIZE + 1).to_bytes(4, "big"))
    with pytest.raises(RemoteProtocolError, match="exceeds the maximum of 8192"):
        server.next_event()
    _client, server = auth_handshake()
    server.send(AuthOk("44" * 32))
    assert server.max_frame_size == 1 << 20  # the configured limit, once authenticated


def test_auth_ok_only_from_a_server_that_asked():
    client, _server = handshake()  # no auth asked
    from rcmd.messages import encode_message

    client.receive_data(encode_frame(encode_message(AuthOk("44" * 32))))
    with pytest.raises(RemoteProtocolError, match="AUTH_OK is not allowed while idle"):
        client.next_event()
