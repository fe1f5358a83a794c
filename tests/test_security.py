"""Authentication, the bind policy and the limits, against real servers on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading

import pytest
from conftest import SERVER_ARGV, frames_until_closed, run_until_timed_out, wait_gone

from rcmd import AuthenticationError, ProtocolMismatch, ServerError, connect
from rcmd.auth import new_nonce
from rcmd.framing import NEED_DATA, LengthPrefixFramer, encode_frame
from rcmd.messages import AuthOk, Error, Exit, Hello, Run, Stdout, decode_message, encode_message
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
        ServerConfig(host="0.0.0.0", framing="naive")
    with pytest.raises(ValueError, match="naive framing has no handshake"):  # no secret overrides it
        ServerConfig(host="0.0.0.0", framing="naive", secret=SECRET.encode())
    # Each of these is accepted: constructing it raises nothing.
    ServerConfig(host="0.0.0.0", secret=SECRET.encode())  # with a secret: fine
    ServerConfig(host="0.0.0.0", insecure_no_auth=True)  # overridden, loudly (the CLI warns)
    ServerConfig(host="::1")
    ServerConfig(host="localhost", framing="naive")


def test_any_loopback_address_is_served_without_a_secret(server_factory):
    server = server_factory("--host", "127.0.0.2")  # all of 127/8 is this machine
    assert server.address[0] == "127.0.0.2"
    with connect(*server.address) as client:
        assert client.run("echo loopback").stdout == b"loopback\n"


def test_naive_framing_refuses_a_secret_it_could_not_use(tmp_path):
    # Naive framing has no handshake: a secret would be ignored while the banner claimed
    # "hmac-sha256 auth". Refused in the API, on loopback too, and in the CLI (file or env).
    with pytest.raises(ValueError, match="naive framing has no handshake"):
        ServerConfig(framing="naive", secret=SECRET.encode())
    with pytest.raises(ValueError, match="naive framing has no TLS"):
        ServerConfig(framing="naive", tls_cert="server.pem")
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    for args, env in (
        (["--secret-file", str(secret)], {}),
        ([], {"RCMD_SECRET": SECRET}),
    ):
        proc = subprocess.run(
            [*SERVER_ARGV, "--framing", "naive", "--port", "0", *args],
            capture_output=True,
            timeout=60,
            env={**os.environ, **env},
        )
        assert proc.returncode == 2, proc
        assert b"naive framing has no handshake" in proc.stderr
        assert b"listening" not in proc.stdout


def test_banner_says_what_protects_the_server(server_factory, auth_server, naive_server):
    assert "hmac-sha256 auth" in auth_server.banner
    assert "framing naive" in naive_server.banner
    assert "no auth" in naive_server.banner


def test_connect_reads_rcmd_secret_as_the_cli_does(auth_server, server, naive_server, monkeypatch):
    monkeypatch.setenv("RCMD_SECRET", SECRET)
    with connect(*auth_server.address) as client:  # no secret= given: $RCMD_SECRET is used
        assert client.run("echo via-env").stdout == b"via-env\n"
    with pytest.raises(AuthenticationError, match="does not ask for authentication"):
        connect(*server.address)  # a secret in hand refuses a server that does not ask for it
    with pytest.raises(ProtocolMismatch, match="sent no HELLO"):  # nor one that cannot: "auto"
        connect(*naive_server.address, framing="auto", connect_timeout=0.5)  # never guesses naive
    with connect(*naive_server.address, framing="naive") as naive:  # chosen explicitly: no handshake
        assert naive.run("echo x").stdout_text.strip() == "x"
    with pytest.raises(ValueError, match="naive framing has no handshake"):
        connect(*naive_server.address, framing="naive", secret=SECRET)
    monkeypatch.delenv("RCMD_SECRET")
    with pytest.raises(AuthenticationError, match="requires authentication"):
        connect(*auth_server.address)


# ------------------------------------------------------------------------- limits


def test_max_connections_refuses_with_a_reason(server_factory):
    server = server_factory("--max-connections", "2")
    first, second = connect(*server.address), connect(*server.address)
    for client in (first, second):  # busy: a connection running a command is never closed for room
        client.stream("sleep 60")
    server.wait_for_log(r"run 'sleep 60'[\s\S]*run 'sleep 60'")
    with pytest.raises(ServerError, match="too many connections: the server takes 2 at once"):
        connect(*server.address)
    port = first._sock.getsockname()[1]
    first.close()
    server.wait_for_log(rf":{port} disconnected")  # this one, once the server has let it go
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


def test_default_command_timeout(server_factory, tmp_path):
    server = server_factory("--command-timeout", "0.3")
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    with connect(*server.address) as own, connect(*server.address) as default:
        # A command with its own, longer timeout, running (blocked on the gate) first...
        long = own.stream(f"cat {gate}", timeout=60)
        writer = os.open(gate, os.O_WRONLY)  # returns once cat has the gate open: it runs
        # ...outlives a command that started after it and got the default 0.3 s.
        result = default.run("sleep 100")
        assert result.timed_out
        assert result.signal == signal.SIGTERM
        assert result.returncode == -signal.SIGTERM
        os.write(writer, b"done\n")
        os.close(writer)
        exit = long.wait()
        assert not exit.timed_out  # its own timeout wins over the default
        assert exit.returncode == 0


def test_idle_timeout_closes_a_quiet_connection(server_factory):
    server = server_factory("--idle-timeout", "0.3")
    hello, run = (encode_frame(encode_message(m)) for m in (Hello(), Run("echo busy")))
    with socket.create_connection(server.address, timeout=15) as sock:
        # HELLO and RUN in one send: the connection is never idle before the command.
        sock.sendall(hello + run)
        messages = frames_until_closed(sock)  # then we say nothing
    assert isinstance(messages[0], Hello)
    assert messages[1:] == [Stdout(b"busy\n"), messages[2], Error("idle for 0.3s")]
    assert isinstance(messages[2], Exit)
    assert messages[2].returncode == 0  # the idle timer started after the command, not before


def test_max_frame_size_from_a_client(server_factory):
    server = server_factory("--max-frame-size", "1000")
    base = len(encode_message(Run("echo ")))
    at_limit = "echo " + "x" * (1000 - base)
    assert len(encode_message(Run(at_limit))) == 1000
    with connect(*server.address) as client:
        assert client.run(at_limit).stdout == b"x" * (1000 - base) + b"\n"  # exactly the limit: fine
        with pytest.raises(
            ServerError, match=r"server error: frame of 1001 bytes exceeds the maximum of 1000 bytes "
        ):
            client.run(at_limit + "x")
    with connect(*server.address) as other:  # the server goes on
        assert other.run("echo fine").stdout == b"fine\n"


# ------------------------------------------------------------------------- faults


def test_a_command_that_closes_stdout_but_keeps_running(server):
    with connect(*server.address) as client:
        [pid], exit = run_until_timed_out(client, "echo $$; exec 1>&-; sleep 1000")
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
