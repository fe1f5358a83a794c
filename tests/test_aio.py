"""rcmd.aio: the asyncio client against real servers (in-process BackgroundServers), and the
sans-I/O handshake it shares (rcmd.handshake) driven with messages only."""

from __future__ import annotations

import asyncio
import socket

import pytest
import trustme

import rcmd
from rcmd import aio
from rcmd.auth import client_proof, new_nonce, server_proof
from rcmd.errors import AuthenticationError, ProtocolMismatch, ServerError, TlsError
from rcmd.handshake import ClientHandshake, hello_failure
from rcmd.messages import AuthOk, Exit, Hello, Stderr, Stdout

SECRET = b"aio-test-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def background():
    with rcmd.BackgroundServer(encoding="utf-8") as server:
        yield server


@pytest.fixture(scope="module")
def auth_background():
    with rcmd.BackgroundServer(encoding="utf-8", secret=SECRET) as server:
        yield server


def test_run_returns_a_completed_command(background):
    async def main() -> rcmd.CompletedCommand:
        async with aio.connect(*background.address) as client:
            return await client.run("printf 'out'; printf 'err' >&2; exit 3")

    result = asyncio.run(main())
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out", b"err")
    assert result.encoding == "utf-8"


def test_stream_yields_chunks_then_exit_and_cd_sticks(background):
    async def main() -> tuple[list[object], str | None]:
        async with aio.connect(*background.address) as client:
            await client.run("cd /")
            events = []
            async with client.stream("pwd; echo oops >&2") as stream:
                async for event in stream:
                    events.append(event)
            return events, client.cwd

    events, cwd = asyncio.run(main())
    assert isinstance(events[-1], Exit)
    assert events[-1].returncode == 0
    assert b"".join(e.data for e in events if isinstance(e, Stdout)) == b"/\n"
    assert b"".join(e.data for e in events if isinstance(e, Stderr)) == b"oops\n"
    assert cwd == "/"


def test_large_input_and_large_output_together_do_not_deadlock(background):
    data = bytes(range(256)) * 16 * 1024  # 4 MiB, far beyond both ends' socket buffers

    async def main() -> rcmd.CompletedCommand:
        async with aio.connect(*background.address) as client:
            return await client.run("cat", input=data, timeout=60)

    result = asyncio.run(main())
    assert result.returncode == 0
    assert result.stdout == data


def test_leaving_a_stream_early_cancels_and_the_connection_goes_on(background):
    async def main() -> tuple[Exit | None, bytes]:
        async with aio.connect(*background.address) as client:
            async with client.stream("echo first; exec sleep 60") as stream:
                async for event in stream:
                    assert isinstance(event, Stdout)
                    break  # first line seen: leave, which cancels
            after = await client.run("echo next")
            return stream.exit, after.stdout

    exit, after = asyncio.run(main())
    assert exit is not None
    assert exit.cancelled
    assert after == b"next\n"


def test_timeout_is_the_servers_kill(background):
    async def main() -> rcmd.CompletedCommand:
        async with aio.connect(*background.address) as client:
            return await client.run("exec sleep 30", timeout=0.5)

    result = asyncio.run(main())
    assert result.timed_out
    assert result.describe_status().startswith("timed out")


def test_check_raises_command_error(background):
    async def main() -> None:
        async with aio.connect(*background.address) as client:
            await client.run("exit 4", check=True)

    with pytest.raises(rcmd.CommandError):
        asyncio.run(main())


def test_many_connections_on_one_loop(background):
    async def one(index: int) -> bytes:
        async with aio.connect(*background.address) as client:
            return (await client.run(f"echo {index}")).stdout

    async def main() -> list[bytes]:
        return await asyncio.gather(*(one(i) for i in range(20)))

    assert asyncio.run(main()) == [f"{i}\n".encode() for i in range(20)]


def test_await_connect_without_with(background):
    async def main() -> bytes:
        client = await aio.connect(*background.address)
        try:
            return (await client.run("echo plain")).stdout
        finally:
            await client.close()

    assert asyncio.run(main()) == b"plain\n"


# ------------------------------------------------------------------------ authentication


def test_the_right_secret_gets_in(auth_background):
    async def main() -> bytes:
        async with aio.connect(*auth_background.address, secret=SECRET) as client:
            return (await client.run("echo in")).stdout

    assert asyncio.run(main()) == b"in\n"


def test_no_secret_for_a_server_that_requires_one(auth_background, monkeypatch):
    monkeypatch.delenv("RCMD_SECRET", raising=False)

    async def main() -> None:
        async with aio.connect(*auth_background.address):
            pass

    with pytest.raises(AuthenticationError, match="requires authentication"):
        asyncio.run(main())


def test_a_wrong_secret_is_refused():
    with rcmd.BackgroundServer(encoding="utf-8", secret=SECRET) as server:  # its own throttle

        async def main() -> None:
            async with aio.connect(*server.address, secret=b"x" * 32):
                pass

        with pytest.raises(AuthenticationError, match="refused us"):
            asyncio.run(main())


def test_a_secret_for_a_server_without_auth_is_not_sent(background):
    async def main() -> None:
        async with aio.connect(*background.address, secret=SECRET):
            pass

    with pytest.raises(AuthenticationError, match="does not ask for authentication"):
        asyncio.run(main())


# --------------------------------------------------------------------------- failures


def test_refused_port_raises_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: refused

        with pytest.raises(ConnectionRefusedError):
            asyncio.run(aio.connect("127.0.0.1", port).__aenter__())


def test_a_listener_that_never_says_hello_is_a_protocol_mismatch():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel accepts; nobody ever speaks

        async def main() -> None:
            async with aio.connect(*silent.getsockname(), connect_timeout=0.5):
                pass

        with pytest.raises(ProtocolMismatch, match=r"sent no HELLO within 0\.5s"):
            asyncio.run(main())


@pytest.fixture(scope="module")
def tls_background(tmp_path_factory):
    folder = tmp_path_factory.mktemp("aio-tls")
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    with rcmd.BackgroundServer(encoding="utf-8", tls_cert=str(folder / "server.pem")) as server:
        yield server, str(folder / "ca.pem")


def test_tls_round_trip_and_an_untrusted_certificate(tls_background):
    server, ca = tls_background

    async def main(**options: object) -> bytes:
        async with aio.connect(*server.address, **options) as client:  # type: ignore[arg-type]
            return (await client.run("echo secure")).stdout

    assert asyncio.run(main(tls_ca=ca)) == b"secure\n"
    with pytest.raises(TlsError, match="not trusted"):
        asyncio.run(main(tls=True))
    with pytest.raises(TlsError, match="requires TLS"):
        asyncio.run(main())


# -------------------------------------------------------- rcmd.handshake, messages only


def test_handshake_without_auth():
    handshake = ClientHandshake("h:1", None)
    answer = handshake.answer(Hello(encoding="utf-8"))
    assert answer.mac is None
    assert not handshake.expects_auth_ok


def test_handshake_proves_and_checks_the_servers_proof():
    server_nonce = new_nonce()
    handshake = ClientHandshake("h:1", SECRET)
    answer = handshake.answer(Hello(auth="hmac-sha256", nonce=server_nonce.hex()))
    assert answer.nonce is not None
    assert answer.mac is not None
    client_nonce = bytes.fromhex(answer.nonce)
    assert bytes.fromhex(answer.mac) == client_proof(SECRET, server_nonce, client_nonce)
    assert handshake.expects_auth_ok
    with pytest.raises(AuthenticationError, match="impostor"):
        handshake.check_auth_ok(AuthOk(mac=client_proof(SECRET, server_nonce, client_nonce).hex()))
    handshake.check_auth_ok(AuthOk(mac=server_proof(SECRET, server_nonce, client_nonce).hex()))
    assert not handshake.expects_auth_ok


@pytest.mark.parametrize(
    ("hello", "secret", "match"),
    [
        (Hello(), SECRET, "does not ask for authentication"),
        (Hello(auth="hmac-sha256", nonce="00" * 32), None, "requires authentication"),
        (Hello(auth="rot13", nonce="00" * 32), SECRET, "does not know: 'rot13'"),
        (Hello(auth="hmac-sha256", nonce="zz"), SECRET, "does not know"),
    ],
)
def test_handshake_refusals(hello, secret, match):
    with pytest.raises(AuthenticationError, match=match):
        ClientHandshake("h:1", secret).answer(hello)


def test_hello_failures_say_whose_fault():
    assert isinstance(hello_failure("h:1", TimeoutError(), 2.0), ProtocolMismatch)
    tls = hello_failure("h:1", ServerError("this server requires TLS: connect with --tls"), 2.0)
    assert isinstance(tls, TlsError)
    other = ServerError("busy")
    assert hello_failure("h:1", other, 2.0) is other


# ------------------------------------------------------------------- user accounts (SCRAM)


@pytest.fixture(scope="module")
def users_background(tmp_path_factory):
    from rcmd import scram
    from rcmd.server.accounts import add_user, load_users

    base = tmp_path_factory.mktemp("aio-users")
    users = base / "users.toml"
    add_user(users, "ann", "ann's password", home=str(base / "ann"), iterations=scram.MIN_ITERATIONS)
    with rcmd.BackgroundServer(encoding="utf-8", users=load_users(users)) as server:
        yield server, base


def test_a_user_logs_in_and_starts_in_their_home(users_background):
    server, base = users_background

    async def main() -> tuple[bytes, str | None]:
        async with aio.connect(*server.address, user="ann", password="ann's password") as client:
            return (await client.run("pwd")).stdout, client.cwd

    out, cwd = asyncio.run(main())
    assert out == f"{base / 'ann'}\n".encode()
    assert cwd == str(base / "ann")


def test_a_wrong_password_and_a_missing_user_are_refused(users_background, monkeypatch):
    server, _ = users_background
    monkeypatch.delenv("RCMD_SECRET", raising=False)

    async def main(**options: str) -> None:
        async with aio.connect(*server.address, **options):  # type: ignore[arg-type]
            pass

    with pytest.raises(AuthenticationError, match="refused us"):
        asyncio.run(main(user="ann", password="wrong"))
    with pytest.raises(AuthenticationError, match="requires a user name and password"):
        asyncio.run(main())


def test_scram_handshake_with_messages_only():
    from rcmd import scram
    from rcmd.messages import AuthChallenge

    salt = bytes(range(16))
    verifier = scram.make_verifier("pencil", iterations=scram.MIN_ITERATIONS, salt=salt)
    server_nonce = new_nonce()
    handshake = ClientHandshake("h:1", None, user="zoe", password="pencil")
    answer = handshake.answer(Hello(auth=scram.SCHEME, nonce=server_nonce.hex()))
    assert answer.user == "zoe"
    assert handshake.expects_challenge
    assert answer.nonce is not None
    proof = handshake.prove(AuthChallenge(salt=salt.hex(), iterations=scram.MIN_ITERATIONS))
    message = scram.auth_message("zoe", server_nonce, bytes.fromhex(answer.nonce), salt, scram.MIN_ITERATIONS)
    assert scram.verify_client_proof(verifier, message, bytes.fromhex(proof.proof))
    with pytest.raises(AuthenticationError, match="impostor"):
        handshake.check_auth_ok(AuthOk(mac="00" * 32))
    handshake.check_auth_ok(AuthOk(mac=scram.server_signature(verifier.server_key, message).hex()))
    weak = ClientHandshake("h:1", None, user="zoe", password="pencil")
    weak.answer(Hello(auth=scram.SCHEME, nonce=server_nonce.hex()))
    with pytest.raises(AuthenticationError, match="fewer than"):
        weak.prove(AuthChallenge(salt=salt.hex(), iterations=10))
    with pytest.raises(AuthenticationError, match="no user accounts"):
        ClientHandshake("h:1", None, user="zoe", password="pencil").answer(Hello())
