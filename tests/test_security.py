"""Authentication, the bind policy and the limits, against real servers on loopback."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from conftest import frames_until_closed, wait_gone

from rcmd import AuthenticationError, ServerError, connect
from rcmd.auth import new_nonce
from rcmd.framing import NEED_DATA, LengthPrefixFramer, encode_frame
from rcmd.messages import AuthOk, Error, Hello, Run, decode_message, encode_message
from rcmd.server import InsecureBindError, ServerConfig

SECRET = "correct horse battery staple 1234"


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("secret") / "secret"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def auth_server(server_factory, secret_file):
    return server_factory("--secret-file", str(secret_file))


def read_hello(sock: socket.socket) -> Hello:
    framer = LengthPrefixFramer()
    while (frame := framer.next_frame()) is NEED_DATA:
        framer.receive_data(sock.recv(4096))
    return decode_message(frame)


# ------------------------------------------------------------------ authentication


def test_the_right_secret_gets_in(auth_server):
    with connect(*auth_server.address, secret=SECRET) as client:
        assert client.server_hello.auth == "hmac-sha256"
        assert client.run("echo in").stdout == b"in\n"


def test_secret_from_the_environment(server_factory):
    server = server_factory(env={"RCMD_SECRET": SECRET})
    with connect(*server.address, secret=SECRET) as client:
        assert client.run("echo env").stdout == b"env\n"


def test_a_wrong_secret_is_refused_logged_and_slowed(server_factory, secret_file):
    auth_server = server_factory("--secret-file", str(secret_file))  # no failures from before
    for _ in range(3):
        with pytest.raises(AuthenticationError, match="refused us: authentication failed"):
            connect(*auth_server.address, secret="the wrong secret, long enough")
    # Each failure from one address waits longer before it is answered: 0.25 s, 0.5 s, 1 s.
    delays = [
        float(d)
        for d in __import__("re").findall(
            r"127\.0\.0\.1:\d+: authentication failed "
            r"\(answering in ([\d.]+)s\)",
            auth_server.log(),
        )
    ]
    assert delays[-3:] == [0.25, 0.5, 1.0]
    with connect(*auth_server.address, secret=SECRET) as client:  # once the last delay is over
        assert client.run("true").returncode == 0


def test_no_secret_for_a_server_that_requires_one(auth_server):
    with pytest.raises(AuthenticationError, match="requires authentication"):
        connect(*auth_server.address)


def test_a_client_with_a_secret_refuses_a_server_without_auth(server):
    with pytest.raises(AuthenticationError, match="does not ask for authentication"):
        connect(*server.address, secret=SECRET)


def test_commands_sent_before_authentication_never_run(auth_server, tmp_path):
    marker = tmp_path / "ran"
    with socket.create_connection(auth_server.address, timeout=15) as sock:
        hello = read_hello(sock)
        assert hello.auth == "hmac-sha256"
        assert len(hello.nonce) == 64
        bad = Hello(nonce=new_nonce().hex(), mac="00" * 32)
        run = Run(f"touch {marker}")
        sock.sendall(encode_frame(encode_message(bad)) + encode_frame(encode_message(run)))
        messages = frames_until_closed(sock)
    assert messages == [Error("authentication failed")]
    with socket.create_connection(auth_server.address, timeout=15) as sock:
        read_hello(sock)
        sock.sendall(encode_frame(encode_message(run)))  # no HELLO at all
        assert "expected HELLO first" in frames_until_closed(sock)[-1].reason
    assert not marker.exists()


def test_an_impostor_server_learns_no_command(fake_server):
    received = []

    def impostor(conn):
        conn.sendall(encode_frame(encode_message(Hello(auth="hmac-sha256", nonce=new_nonce().hex()))))
        conn.settimeout(10)
        framer = LengthPrefixFramer()
        framer.receive_data(conn.recv(4096))
        received.append(decode_message(framer.next_frame()))
        conn.sendall(encode_frame(encode_message(AuthOk("ab" * 32))))  # a proof it cannot make
        while chunk := conn.recv(4096):
            received.append(chunk)

    server = fake_server(impostor)
    with pytest.raises(AuthenticationError, match="could not prove it knows the secret"):
        with connect(*server.address, secret=SECRET) as client:
            client.run("cat /etc/secret-plans")
    server.close()
    assert isinstance(received[0], Hello)
    assert received[0].mac
    assert received[1:] == []  # and nothing after it: no RUN


def test_handshake_timeout_drops_a_silent_client(server_factory):
    server = server_factory("--handshake-timeout", "0.3")
    with socket.create_connection(server.address, timeout=15) as sock:
        messages = frames_until_closed(sock)  # we say nothing
    assert isinstance(messages[0], Hello)
    assert messages[-1] == Error("no handshake within 0.3s")


# ------------------------------------------------------------------------ binding


def test_bind_policy():
    with pytest.raises(InsecureBindError, match="without authentication"):
        ServerConfig(host="0.0.0.0")
    with pytest.raises(InsecureBindError, match="naive framing is a teaching mode"):
        ServerConfig(host="0.0.0.0", framing="naive", secret=SECRET.encode())
    assert ServerConfig(host="0.0.0.0", secret=SECRET.encode()).secret  # with a secret: fine
    assert ServerConfig(host="0.0.0.0", insecure_no_auth=True)  # overridden, loudly (the CLI warns)
    assert ServerConfig(host="::1")
    assert ServerConfig(host="127.0.0.2")


# ------------------------------------------------------------------------- limits


def test_max_connections_refuses_with_a_reason(server_factory):
    server = server_factory("--max-connections", "2")
    first, second = connect(*server.address), connect(*server.address)
    for client in (first, second):  # busy: a connection running a command is never closed for room
        client.stream("sleep 60")
    server.wait_for_log(r"run 'sleep 60'[\s\S]*run 'sleep 60'")
    with pytest.raises(ServerError, match="too many connections: the server takes 2 at once"):
        connect(*server.address)
    first.close()
    server.wait_for_log(r"disconnected")
    with connect(*server.address) as third:
        assert third.run("echo room").stdout == b"room\n"
    second.close()


def test_max_commands_makes_the_next_command_wait_for_a_slot(server_factory, tmp_path):
    server = server_factory("--max-commands", "1")
    gate, order = tmp_path / "gate", tmp_path / "order"
    os.mkfifo(gate)
    a, b = connect(*server.address), connect(*server.address)
    first = a.stream(f"cat {gate}; echo first >> {order}")
    writer = os.open(gate, os.O_WRONLY)  # the first command is running, holding the only slot
    results = {}
    waiting = threading.Thread(target=lambda: results.setdefault("b", b.run(f"echo second >> {order}")))
    waiting.start()
    server.wait_for_log(r"run 'echo second")  # the server has the second command...
    assert not order.exists()  # ...and has not run it
    os.close(writer)
    first.wait()
    waiting.join(30)
    assert results["b"].returncode == 0
    assert order.read_text() == "first\nsecond\n"
    a.close()
    b.close()


def test_default_command_timeout(server_factory):
    server = server_factory("--command-timeout", "0.3")
    with connect(*server.address) as client:
        result = client.run("sleep 100")
        assert result.timed_out
        assert result.returncode < 0
        assert not client.run("sleep 0", timeout=30).timed_out  # its own timeout wins


def test_idle_timeout_closes_a_quiet_connection(server_factory):
    server = server_factory("--idle-timeout", "0.3")
    with connect(*server.address) as client:
        assert client.run("true").returncode == 0
        with pytest.raises(ServerError, match=r"idle for 0\.3s"):
            client._next_event()  # wait: the next thing the server says is why it closes


def test_max_frame_size_from_a_client(server_factory):
    server = server_factory("--max-frame-size", "1000")
    with connect(*server.address) as client:
        with pytest.raises(ServerError, match="exceeds the maximum of 1000 bytes"):
            client.run("echo " + "x" * 2000)


# ------------------------------------------------------------------------- faults


def test_a_command_that_closes_stdout_but_keeps_running(server):
    with connect(*server.address) as client:
        with client.stream("echo $$; exec 1>&-; sleep 1000", timeout=0.5) as events:
            pid = int(next(events).data)
            exit = events.wait()
    assert exit.timed_out
    assert wait_gone(pid)


@pytest.mark.parametrize("cut", [2, 7, 30])
def test_disconnect_mid_frame_is_harmless(server, cut):
    data = encode_frame(encode_message(Hello())) + encode_frame(encode_message(Run("echo never")))
    with socket.create_connection(server.address, timeout=15) as sock:
        read_hello(sock)
        sock.sendall(data[: len(encode_frame(encode_message(Hello()))) + cut])
    with connect(*server.address) as client:
        assert client.run("echo fine").stdout == b"fine\n"


def test_disconnect_mid_handshake_with_auth(auth_server):
    with socket.create_connection(auth_server.address, timeout=15) as sock:
        read_hello(sock)
        sock.sendall(encode_frame(encode_message(Hello(nonce="ab" * 32)))[:10])
    with connect(*auth_server.address, secret=SECRET) as client:
        assert client.run("echo fine").stdout == b"fine\n"


def test_shutdown_while_a_command_waits_for_a_slot(server_factory, tmp_path):
    import signal

    server = server_factory("--max-commands", "1")
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    holder, waiter = connect(*server.address), connect(*server.address)
    holding = holder.stream(f"cat {gate}")
    writer = os.open(gate, os.O_WRONLY)  # the only slot is taken
    waiting = waiter.stream("echo never")
    server.wait_for_log(r"run 'echo never'")  # the second command waits for a slot
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(15) == 0  # shutdown does not wait for the slot
    assert holding.wait().cancelled
    with pytest.raises(ServerError, match="the server is shutting down"):
        waiting.wait()  # told why, though its command never started
    os.close(writer)
    holder.close()
    waiter.close()
