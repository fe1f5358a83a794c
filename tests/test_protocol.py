"""The conversation state machine, client and server ends wired together with bytes."""

import pytest

from rcmd.errors import LocalProtocolError, RemoteProtocolError
from rcmd.framing import CLOSED, NEED_DATA, encode_frame, frame_header
from rcmd.messages import Cancel, Error, Exit, Hello, Run, Stderr, Stdin, StdinEnd, Stdout, encode_message
from rcmd.protocol import Connection, Phase, Role


def events(conn):
    """Every message the connection can give now (bounded: an endless stream fails, not hangs)."""
    out = []
    while (event := conn.next_event()) not in (NEED_DATA, CLOSED):
        out.append(event)
        assert len(out) < 1000, f"no end to the events: {out[:3]}..."
    return out


SERVER_HELLO = Hello(
    encoding="utf-8", cwd="/", extensions=("pty", "ping", "files", "complete")
)  # as rcmd-server's


def handshake(server_hello: Hello = SERVER_HELLO):
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    client.receive_data(server.send(server_hello))
    assert events(client) == [server_hello]
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


def test_bytes_read_into_the_connections_buffer_are_its_messages():
    """get_buffer() and buffer_updated(), as a recv_into() loop uses them: any split of the
    stream gives the same messages, and a read of 0 bytes is the peer closing."""
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    stream = server.send(SERVER_HELLO) + server.send(Error("bye"))
    received = []
    for start in range(0, len(stream), 7):
        chunk = stream[start : start + 7]
        with client.get_buffer(16) as view:
            view[: len(chunk)] = chunk
        client.buffer_updated(len(chunk))
        received += events(client)
    assert received == [SERVER_HELLO, Error("bye")]
    with client.get_buffer(16):
        pass
    client.buffer_updated(0)
    assert client.next_event() is CLOSED


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
    client.receive_data(
        server.send(
            Hello(auth="hmac-sha256", nonce="11" * 32, extensions=("pty", "ping", "files", "complete"))
        )
    )
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


# ------------------------------------------------------- every transition, both directions

from rcmd.errors import ProtocolError  # noqa: E402
from rcmd.messages import (  # noqa: E402  # noqa: E402
    AuthChallenge,
    AuthProof,
    Complete,
    Completions,
    FileData,
    FileDone,
    FileEnd,
    FileError,
    Fs,
    FsResult,
    Get,
    GetReady,
    Message,
    MessageType,
    Ping,
    Pong,
    PtyRequest,
    Put,
    PutFrom,
    PutReady,
    WindowChange,
)
from rcmd.protocol import TRANSITIONS  # noqa: E402

C, S = Role.CLIENT, Role.SERVER

#: The order of docs/PROTOCOL.md, written out here rather than read from the code under test.
EXPECTED_TRANSITIONS = {
    (C, MessageType.RUN): (Phase.IDLE, Phase.RUNNING),
    (C, MessageType.STDIN): (Phase.RUNNING, Phase.RUNNING),
    (C, MessageType.STDIN_END): (Phase.RUNNING, Phase.RUNNING),
    (C, MessageType.CANCEL): (Phase.RUNNING, Phase.RUNNING),
    (C, MessageType.WINDOW_CHANGE): (Phase.RUNNING, Phase.RUNNING),
    (S, MessageType.STDOUT): (Phase.RUNNING, Phase.RUNNING),
    (S, MessageType.STDERR): (Phase.RUNNING, Phase.RUNNING),
    (S, MessageType.EXIT): (Phase.RUNNING, Phase.IDLE),
    (S, MessageType.AUTH_OK): (Phase.AUTHENTICATING, Phase.IDLE),
    # SCRAM (PROTOCOL.md 4c)
    (S, MessageType.AUTH_CHALLENGE): (Phase.AUTHENTICATING, Phase.AUTHENTICATING),
    (C, MessageType.AUTH_PROOF): (Phase.AUTHENTICATING, Phase.AUTHENTICATING),
    # files (PROTOCOL.md 5b)
    (C, MessageType.PUT): (Phase.IDLE, Phase.FILES),
    (C, MessageType.GET): (Phase.IDLE, Phase.FILES),
    (C, MessageType.FS): (Phase.IDLE, Phase.FILES),
    (S, MessageType.PUT_READY): (Phase.FILES, Phase.FILES),
    (C, MessageType.PUT_FROM): (Phase.FILES, Phase.FILES),
    (S, MessageType.GET_READY): (Phase.FILES, Phase.FILES),
    (C, MessageType.FILE_DATA): (Phase.FILES, Phase.FILES),
    (S, MessageType.FILE_DATA): (Phase.FILES, Phase.FILES),
    (C, MessageType.FILE_END): (Phase.FILES, Phase.FILES),
    (S, MessageType.FILE_END): (Phase.FILES, Phase.IDLE),
    (S, MessageType.FILE_DONE): (Phase.FILES, Phase.IDLE),
    (S, MessageType.FILE_ERROR): (Phase.FILES, Phase.IDLE),
    (S, MessageType.FS_RESULT): (Phase.FILES, Phase.IDLE),
    # completion (PROTOCOL.md 5d)
    (C, MessageType.COMPLETE): (Phase.IDLE, Phase.COMPLETING),
    (S, MessageType.COMPLETIONS): (Phase.COMPLETING, Phase.IDLE),
}

#: One message of each type that the transition table governs (HELLO and ERROR are apart).
SAMPLES: dict[MessageType, Message] = {
    MessageType.RUN: Run("cat", stdin=True),
    MessageType.STDIN: Stdin(b"x"),
    MessageType.STDIN_END: StdinEnd(),
    MessageType.CANCEL: Cancel(),
    MessageType.WINDOW_CHANGE: WindowChange(24, 80),
    MessageType.STDOUT: Stdout(b"x"),
    MessageType.STDERR: Stderr(b"x"),
    MessageType.EXIT: Exit(0),
    MessageType.AUTH_OK: AuthOk("44" * 32),
    MessageType.AUTH_CHALLENGE: AuthChallenge("00" * 16, 4096),
    MessageType.AUTH_PROOF: AuthProof("55" * 32),
    MessageType.PUT: Put("f", size=1),
    MessageType.GET: Get("f"),
    MessageType.FS: Fs("pwd"),
    MessageType.PUT_READY: PutReady(),
    MessageType.PUT_FROM: PutFrom(0),
    MessageType.GET_READY: GetReady(1),
    MessageType.FILE_DATA: FileData(b"x"),
    MessageType.FILE_END: FileEnd(1, "66" * 32),
    MessageType.FILE_DONE: FileDone(1, "66" * 32),
    MessageType.FILE_ERROR: FileError("no"),
    MessageType.FS_RESULT: FsResult(cwd="/"),
    MessageType.COMPLETE: Complete("x"),
    MessageType.COMPLETIONS: Completions(("x",)),
}
#: Client messages a server drops while idle: they crossed the EXIT (or FILE_ERROR) on the wire.
LATE = {MessageType.STDIN, MessageType.STDIN_END, MessageType.CANCEL, MessageType.WINDOW_CHANGE}
LATE |= {MessageType.FILE_DATA, MessageType.FILE_END}  # an upload's, crossing a FILE_ERROR
PHASES_AFTER_HELLO = [Phase.AUTHENTICATING, Phase.IDLE, Phase.RUNNING, Phase.COMPLETING]


def pair_in(phase: Phase) -> dict[Role, Connection]:
    """A client and a server, both in *phase*, wired together with bytes."""
    if phase is Phase.AUTHENTICATING:
        client, server = auth_handshake()
    else:
        client, server = handshake()
    if phase is Phase.RUNNING:
        server.receive_data(client.send(Run("cat", stdin=True)))
        assert events(server) == [Run("cat", stdin=True)]
    elif phase is Phase.COMPLETING:
        server.receive_data(client.send(Complete("x")))
        assert events(server) == [Complete("x")]
    assert client.phase is server.phase is phase
    return {C: client, S: server}


def raised(exc_type: type[ProtocolError], call) -> str:
    with pytest.raises(exc_type) as info:
        call()
    return str(info.value)


def test_the_transition_table_is_the_documented_one():
    assert TRANSITIONS == EXPECTED_TRANSITIONS
    assert set(SAMPLES) == {kind for _, kind in EXPECTED_TRANSITIONS}


@pytest.mark.parametrize("phase", PHASES_AFTER_HELLO, ids=lambda p: p.value)
@pytest.mark.parametrize("kind", list(SAMPLES), ids=lambda k: k.name)
@pytest.mark.parametrize("sender", [C, S], ids=lambda r: r.value)
def test_every_message_received_in_every_phase(sender, kind, phase):
    """Allowed exactly where the table says, and the phase moves as it says; refused with the
    reason otherwise, except client input crossing an EXIT, which a server drops."""
    receiver = pair_in(phase)[S if sender is C else C]
    message = SAMPLES[kind]
    receiver.receive_data(encode_frame(encode_message(message)))
    rule = EXPECTED_TRANSITIONS.get((sender, kind))
    if rule is None:
        reason = raised(RemoteProtocolError, receiver.next_event)
        assert reason == f"a {sender.value} may not send {kind.name}"
        assert receiver.phase is Phase.CLOSED
    elif rule[0] is phase:
        assert events(receiver) == [message]
        assert receiver.phase is rule[1]
    elif sender is C and phase is Phase.IDLE and kind in LATE:
        assert events(receiver) == []  # dropped: sent before the client saw the EXIT
        assert receiver.phase is Phase.IDLE
    else:
        reason = raised(RemoteProtocolError, receiver.next_event)
        assert reason == f"{kind.name} is not allowed while {phase.value}"
        assert receiver.phase is Phase.CLOSED


@pytest.mark.parametrize("phase", PHASES_AFTER_HELLO, ids=lambda p: p.value)
@pytest.mark.parametrize("kind", list(SAMPLES), ids=lambda k: k.name)
@pytest.mark.parametrize("sender", [C, S], ids=lambda r: r.value)
def test_every_message_sent_in_every_phase(sender, kind, phase):
    conn = pair_in(phase)[sender]
    message = SAMPLES[kind]
    rule = EXPECTED_TRANSITIONS.get((sender, kind))
    if rule is None:
        reason = raised(LocalProtocolError, lambda: conn.send(message))
        assert reason == f"a {sender.value} may not send {kind.name}"
        assert conn.phase is phase  # our own mistake does not close the connection
    elif rule[0] is phase:
        assert conn.send(message) == encode_frame(encode_message(message))
        assert conn.phase is rule[1]
    else:
        reason = raised(LocalProtocolError, lambda: conn.send(message))
        assert reason == f"cannot send {kind.name} while {phase.value}"
        assert conn.phase is phase


@pytest.mark.parametrize("kind", list(SAMPLES), ids=lambda k: k.name)
@pytest.mark.parametrize("receiver_role", [C, S], ids=lambda r: r.value)
def test_anything_before_the_peers_hello_is_refused(receiver_role, kind):
    receiver = Connection(receiver_role)
    receiver.receive_data(encode_frame(encode_message(SAMPLES[kind])))
    reason = raised(RemoteProtocolError, receiver.next_event)
    peer = "server" if receiver_role is C else "client"
    assert reason == f"expected HELLO first, got {kind.name} (is the peer an rcmd {peer}?)"
    assert raised(RemoteProtocolError, receiver.next_event) == f"connection already failed: {reason}"


@pytest.mark.parametrize("kind", list(SAMPLES), ids=lambda k: k.name)
@pytest.mark.parametrize("role", [C, S], ids=lambda r: r.value)
def test_nothing_but_hello_or_error_before_our_hello(role, kind):
    conn = Connection(role)
    assert raised(LocalProtocolError, lambda: conn.send(SAMPLES[kind])) == f"send HELLO before {kind.name}"
    conn.send(Error("bye"))  # ERROR may go out at any time
    assert conn.phase is Phase.CLOSED


@pytest.mark.parametrize("kind", list(SAMPLES), ids=lambda k: k.name)
@pytest.mark.parametrize("role", [C, S], ids=lambda r: r.value)
def test_between_the_two_hellos_only_a_client_run_may_go(role, kind):
    conn = Connection(role)
    conn.send(Hello())
    assert conn.phase is Phase.HANDSHAKE
    message = SAMPLES[kind]
    if (role, kind) == (C, MessageType.RUN):
        assert conn.send(message) == encode_frame(encode_message(message))
        assert conn.phase is Phase.RUNNING
    elif (role, kind) in EXPECTED_TRANSITIONS:
        assert (
            raised(LocalProtocolError, lambda: conn.send(message))
            == f"cannot send {kind.name} while handshake"
        )
    else:
        assert (
            raised(LocalProtocolError, lambda: conn.send(message))
            == f"a {role.value} may not send {kind.name}"
        )


@pytest.mark.parametrize("role", [C, S], ids=lambda r: r.value)
def test_hello_goes_once_each_way(role):
    conn = pair_in(Phase.IDLE)[role]
    assert raised(LocalProtocolError, lambda: conn.send(Hello())) == "HELLO was sent already"
    conn.receive_data(encode_frame(encode_message(Hello())))
    assert raised(RemoteProtocolError, conn.next_event) == "a second HELLO"


# ---------------------------------------------------------------------- after an ERROR


@pytest.mark.parametrize("phase", PHASES_AFTER_HELLO, ids=lambda p: p.value)
def test_after_sending_error_only_the_peers_error_means_anything(phase):
    conns = pair_in(phase)
    server, client = conns[S], conns[C]
    server.send(Error("shutting down"))
    assert server.phase is Phase.CLOSED
    assert raised(LocalProtocolError, lambda: server.send(Error("again"))) == "an ERROR was sent already"
    for message in (Stdout(b"x"), Exit(0), AuthOk("44" * 32), Hello()):
        reason = raised(LocalProtocolError, lambda m=message: server.send(m))
        assert reason == f"cannot send {message.TYPE.name}: the connection is closed"
    # What the client sent before it read our ERROR is dropped, in any order, without failing.
    server.receive_data(
        encode_frame(encode_message(Run("ls")))
        + encode_frame(encode_message(Stdin(b"x")))
        + encode_frame(encode_message(Hello()))
        + encode_frame(encode_message(Error("bye too")))
    )
    assert events(server) == [Error("bye too")]
    client.send(Error("client gives up too"))  # each end may send its own ERROR once


def test_after_receiving_error_further_messages_are_dropped():
    client, server = handshake()
    client.receive_data(
        server.send(Error("shutting down"))
        + encode_frame(encode_message(Stdout(b"x")))
        + encode_frame(encode_message(Exit(0)))
    )
    assert events(client) == [Error("shutting down")]
    client.send(Error("ok"))
    assert raised(LocalProtocolError, lambda: client.send(Error("twice"))) == "an ERROR was sent already"


# --------------------------------------------------------------------------------- stdin

STDIN_CLOSED = "without an open stdin (RUN had stdin=false, or it ended)"


def test_stdin_without_an_open_stdin_is_refused_from_the_peer():
    client, server = handshake()
    server.receive_data(client.send(Run("ls")))  # stdin=False
    server.receive_data(encode_frame(encode_message(Stdin(b"x"))))
    assert events_until_error(server) == ([Run("ls")], f"STDIN {STDIN_CLOSED}")


def events_until_error(conn):
    """The messages before the RemoteProtocolError, and its reason (fails if none is raised)."""
    got = []
    try:
        while (event := conn.next_event()) not in (NEED_DATA, CLOSED):
            got.append(event)
    except RemoteProtocolError as exc:
        return got, str(exc)
    raise AssertionError(f"no RemoteProtocolError after {got}")


@pytest.mark.parametrize("after_end", [Stdin(b"x"), StdinEnd()], ids=lambda m: m.TYPE.name)
def test_stdin_closes_at_stdin_end_on_both_ends(after_end):
    client, server = handshake()
    server.receive_data(
        client.send(Run("cat", stdin=True)) + client.send(Stdin(b"a")) + client.send(StdinEnd())
    )
    assert events(server) == [Run("cat", stdin=True), Stdin(b"a"), StdinEnd()]
    reason = f"{after_end.TYPE.name} {STDIN_CLOSED}"
    assert raised(LocalProtocolError, lambda: client.send(after_end)) == reason
    server.receive_data(encode_frame(encode_message(after_end)))
    assert raised(RemoteProtocolError, server.next_event) == reason


def test_each_run_says_afresh_whether_stdin_is_open():
    client, server = handshake()
    server.receive_data(client.send(Run("cat", stdin=True)) + client.send(StdinEnd()))
    assert events(server) == [Run("cat", stdin=True), StdinEnd()]
    client.receive_data(server.send(Exit(0)))
    assert events(client) == [Exit(0)]
    server.receive_data(client.send(Run("cat", stdin=True)) + client.send(Stdin(b"b")))  # open again
    assert events(server) == [Run("cat", stdin=True), Stdin(b"b")]
    client.receive_data(server.send(Exit(0)))
    assert events(client) == [Exit(0)]
    server.receive_data(client.send(Run("true")))
    assert events(server) == [Run("true")]
    with pytest.raises(LocalProtocolError, match="STDIN_END without an open stdin"):
        client.send(StdinEnd())


# -------------------------------------------------------------------- the frame-size limit


def test_the_limit_stays_small_until_the_peer_is_authenticated():
    client, server = auth_handshake()
    assert client.max_frame_size == server.max_frame_size == HANDSHAKE_MAX_FRAME_SIZE
    assert client.auth_required
    assert server.auth_required
    client.receive_data(server.send(AuthOk("44" * 32)))
    assert events(client) == [AuthOk("44" * 32)]
    assert client.max_frame_size == server.max_frame_size == 1 << 20


def test_without_authentication_the_limit_rises_after_the_hellos():
    client, server = handshake()
    assert not client.auth_required
    assert not server.auth_required
    assert client.max_frame_size == server.max_frame_size == 1 << 20
    client.receive_data(encode_frame(encode_message(Stdout(b"x"))))  # not RUNNING: refused,
    with pytest.raises(RemoteProtocolError):  # but after the hellos, not as too large
        client.next_event()


def test_a_configured_limit_below_the_handshake_limit_holds_from_the_start():
    conn = Connection(Role.SERVER, max_frame_size=100)
    assert conn.max_frame_size == 100
    conn.receive_data(frame_header(101))
    assert "exceeds the maximum of 100 bytes" in raised(RemoteProtocolError, conn.next_event)


def test_handshake_limit_exactly():
    server = Connection(Role.SERVER)
    server.receive_data(frame_header(HANDSHAKE_MAX_FRAME_SIZE) + b"\x01")
    assert server.next_event() is NEED_DATA  # 8192 is allowed: the frame waits for its bytes
    server = Connection(Role.SERVER)
    server.receive_data(frame_header(HANDSHAKE_MAX_FRAME_SIZE + 1))
    assert raised(RemoteProtocolError, server.next_event).startswith("frame of 8193 bytes exceeds")


# ------------------------------------------------------ WINDOW_CHANGE, PING and PONG


def test_window_change_while_running_and_dropped_when_late():
    client, server = handshake()
    server.receive_data(
        client.send(Run("vi", stdin=True, pty=PtyRequest())) + client.send(WindowChange(30, 100))
    )
    assert events(server) == [Run("vi", stdin=True, pty=PtyRequest()), WindowChange(30, 100)]
    client.receive_data(server.send(Exit(0)))
    assert events(client) == [Exit(0)]
    server.receive_data(encode_frame(encode_message(WindowChange(1, 1))))
    assert events(server) == []  # crossed the EXIT on the wire: dropped
    with pytest.raises(LocalProtocolError, match="WINDOW_CHANGE while idle"):
        client.send(WindowChange(1, 1))


def test_ping_and_pong_idle_or_running_and_the_phase_is_unchanged():
    client, server = handshake()
    server.receive_data(client.send(Ping()))
    assert events(server) == [Ping()]
    client.receive_data(server.send(Pong()))
    assert events(client) == [Pong()]
    assert client.phase is server.phase is Phase.IDLE
    server.receive_data(client.send(Run("sleep 1")) + client.send(Ping()))
    assert events(server) == [Run("sleep 1"), Ping()]
    client.receive_data(server.send(Pong()) + server.send(Exit(0)))
    assert events(client) == [Pong(), Exit(0)]


@pytest.mark.parametrize(
    ("sender", "message", "reason"),
    [
        (Role.SERVER, Ping(), "a server may not send PING"),
        (Role.CLIENT, Pong(), "a client may not send PONG"),
    ],
)
def test_keepalives_go_one_way_each(sender, message, reason):
    client, server = handshake()
    ours, theirs = (server, client) if sender is Role.SERVER else (client, server)
    with pytest.raises(LocalProtocolError, match=reason):
        ours.send(message)
    theirs.receive_data(encode_frame(encode_message(message)))
    with pytest.raises(RemoteProtocolError, match=reason):
        events(theirs)


def test_no_ping_before_the_handshake_is_done():
    client = Connection(Role.CLIENT)
    client.send(Hello())
    with pytest.raises(LocalProtocolError, match="PING while handshake"):
        client.send(Ping())


@pytest.mark.parametrize(
    ("offered", "message", "needed"),
    [
        (None, WindowChange(24, 80), "pty"),
        (("ping",), WindowChange(24, 80), "pty"),
        (None, Ping(), "ping"),
        (("pty",), Ping(), "ping"),
        (("pty", "ping"), Put("f"), "files"),
        (None, Get("f"), "files"),
        (("ping",), Fs("pwd"), "files"),
    ],
)
def test_a_client_sends_no_extension_the_server_did_not_list(offered, message, needed):
    """PROTOCOL.md §3: a client MUST NOT send an extension's message, or ask for its field, to a
    server that does not list it; the mistake is ours, so the connection stays as it was."""
    client, _server = handshake(Hello(encoding="utf-8", cwd="/", extensions=offered))
    if isinstance(message, WindowChange):
        client.send(Run("cat"))
    phase = client.phase
    reason = raised(LocalProtocolError, lambda: client.send(message))
    assert (
        reason
        == f"cannot send {message.TYPE.name}: the server did not list the {needed!r} extension in its HELLO"
    )
    assert client.phase is phase


def test_a_client_asks_for_no_pty_from_a_server_without_the_extension():
    client, _server = handshake(Hello(encoding="utf-8", cwd="/"))
    run = Run("vi", pty=PtyRequest("xterm", 24, 80))
    reason = raised(LocalProtocolError, lambda: client.send(run))
    assert reason == "cannot send RUN: the server did not list the 'pty' extension in its HELLO"
    assert client.phase is Phase.IDLE
    assert client.send(Run("true"))  # the same command without a terminal goes


@pytest.mark.parametrize(
    ("request_", "sender", "message", "reason"),
    [
        (Get("f"), C, FileData(b"x"), "FILE_DATA is not part of a GET"),
        (Get("f"), C, PutFrom(0), "PUT_FROM is not part of a GET"),
        (Put("f"), S, FileData(b"x"), "FILE_DATA is not part of a PUT"),
        (Put("f"), S, GetReady(1), "GET_READY is not part of a PUT"),
        (Fs("ls"), S, FileDone(1, "66" * 32), "FILE_DONE is not part of a FS"),
        (Put("f"), S, FsResult(), "FS_RESULT is not part of a PUT"),
    ],
)
def test_file_messages_belong_to_their_request(request_, sender, message, reason):
    """In the files phase, data flows one way per request, and answers match the request."""
    client, server = handshake()
    server.receive_data(client.send(request_))
    assert events(server) == [request_]
    receiver = server if sender is C else client
    receiver.receive_data(encode_frame(encode_message(message)))
    assert raised(RemoteProtocolError, receiver.next_event) == reason
    own = client if sender is C else server
    assert raised(LocalProtocolError, lambda: own.send(message)) == reason
    assert own.phase is Phase.FILES  # our own mistake does not close the connection


def test_a_whole_upload_and_download_move_the_phases():
    client, server = handshake()
    for message, sender in [
        (Put("f", size=1), client),
        (PutReady(), server),
        (PutFrom(0), client),
        (FileData(b"x"), client),
        (FileEnd(1, "66" * 32), client),
        (FileDone(1, "66" * 32), server),
        (Get("f"), client),
        (GetReady(1), server),
        (FileData(b"x"), server),
        (FileEnd(1, "66" * 32), server),
    ]:
        receiver = server if sender is client else client
        receiver.receive_data(sender.send(message))
        assert events(receiver) == [message]
    assert client.phase is server.phase is Phase.IDLE
