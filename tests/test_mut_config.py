"""rcmd-server's options as ServerConfig checks them, in-process: each refusal word for word,
each limit at its edge. test_server_config.py shows the same through the real rcmd-server;
these run in milliseconds, so mutation testing (make mutate-rest) can afford them."""

from __future__ import annotations

import math
import ssl
import warnings

import pytest
import trustme

from rcmd.server import config
from rcmd.server.config import (
    MAX_FRAME_SIZE,
    MIN_FRAME_SIZE,
    Framing,
    InsecureBindError,
    ServerConfig,
    is_loopback,
    tls_handshake_cost,
)

SECRET = b"config-secret-0123456789abcdef"


def refusal(**options: object) -> ValueError:
    """The ValueError ServerConfig(**options) raises (the test fails if it raises none)."""
    try:
        ServerConfig(**options)  # type: ignore[arg-type]
    except ValueError as exc:
        return exc
    raise AssertionError(f"ServerConfig({options}) was accepted")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("128.0.0.1", False),
        ("::2", False),
        ("example.com", False),
        ("LOCALHOST", False),  # only the exact name: others may resolve anywhere
        ("", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"max_frame_size": MIN_FRAME_SIZE - 1},
            "max frame size must be between 256 and 4294967295 bytes, not 255",
        ),
        (
            {"max_frame_size": MAX_FRAME_SIZE + 1},
            "max frame size must be between 256 and 4294967295 bytes, not 4294967296",
        ),
        ({"port": -1}, "port must be between 0 and 65535, not -1"),
        ({"port": 65536}, "port must be between 0 and 65535, not 65536"),
        ({"handshake_timeout": -0.5}, "handshake timeout must be a finite number of seconds >= 0, not -0.5"),
        (
            {"handshake_timeout": math.nan},
            "handshake timeout must be a finite number of seconds >= 0, not nan",
        ),
        ({"idle_timeout": -1e-9}, "idle timeout must be a finite number of seconds >= 0, not -1e-09"),
        ({"idle_timeout": math.inf}, "idle timeout must be a finite number of seconds >= 0, not inf"),
        ({"command_timeout": -math.inf}, "command timeout must be a finite number of seconds >= 0, not -inf"),
        ({"command_timeout": -1}, "command timeout must be a finite number of seconds >= 0, not -1"),
        ({"max_connections": 0}, "max connections must be at least 1, not 0"),
        ({"max_commands": 0}, "max commands must be at least 1, not 0"),
        ({"max_startups": 0}, "max startups must be at least 1, not 0"),
        ({"max_startups": -5}, "max startups must be at least 1, not -5"),
        ({"startup_grace": -0.5}, "startup grace must be a finite number of seconds >= 0, not -0.5"),
        ({"startup_grace": math.nan}, "startup grace must be a finite number of seconds >= 0, not nan"),
    ],
    ids=repr,
)
def test_a_limit_no_connection_could_work_with_is_refused(options, message):
    error = refusal(**options)
    assert type(error) is ValueError
    assert str(error) == message


@pytest.mark.parametrize(
    "options",
    [
        {"max_frame_size": MIN_FRAME_SIZE},
        {"max_frame_size": MAX_FRAME_SIZE},
        {"port": 0},
        {"port": 65535},
        {"handshake_timeout": 0.0, "idle_timeout": 0.0, "command_timeout": 0.0},
        {"handshake_timeout": None, "idle_timeout": None, "command_timeout": None},
        {"handshake_timeout": 1e-9, "idle_timeout": 1e9, "command_timeout": 2.5},
        {"max_connections": 1, "max_commands": 1, "max_startups": 1},
    ],
    ids=repr,
)
def test_limits_at_their_edges_are_taken_as_given(options):
    config = ServerConfig(**options)
    for key, value in options.items():
        assert getattr(config, key) == value


def test_the_defaults_are_a_loopback_server_with_no_tls():
    config = ServerConfig()
    assert (config.host, config.port, config.framing, config.tls, config.cwd) == (
        "127.0.0.1",
        9000,
        Framing.PREFIXED,
        None,
        None,
    )
    assert "secret" not in repr(ServerConfig(secret=SECRET))


def test_framing_and_encoding_are_taken_by_name():
    config = ServerConfig(framing="naive", encoding="UTF8")  # type: ignore[arg-type]
    assert config.framing is Framing.NAIVE
    assert config.encoding == "utf-8"
    assert ServerConfig(encoding="GBK").encoding == "gbk"
    with pytest.raises(ValueError, match="'telnet' is not a valid Framing"):
        ServerConfig(framing="telnet")  # type: ignore[arg-type]
    with pytest.raises(LookupError):
        ServerConfig(encoding="no-such-codec")


def test_the_start_directory_must_be_a_directory_and_is_made_absolute(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "file").write_text("x")
    monkeypatch.chdir(tmp_path)
    assert ServerConfig(cwd="sub").cwd == str(tmp_path / "sub")
    assert ServerConfig(cwd=str(tmp_path)).cwd == str(tmp_path)
    for cwd in ("file", "missing"):
        assert str(refusal(cwd=cwd)) == f"the start directory {cwd!r} is not a directory"


def test_naive_framing_refuses_a_secret_and_a_certificate(tmp_path):
    assert str(refusal(framing=Framing.NAIVE, secret=SECRET)) == (
        "naive framing has no handshake, so a secret would protect nothing: drop the secret "
        "(--secret-file, $RCMD_SECRET) or use --framing prefixed"
    )
    assert (
        str(refusal(framing=Framing.NAIVE, tls_cert=str(tmp_path / "cert.pem")))
        == "naive framing has no TLS: it is the tutorial's plain socket"
    )


@pytest.fixture(scope="module")
def server_pem(tmp_path_factory):
    path = tmp_path_factory.mktemp("tls") / "server.pem"
    trustme.CA().issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(path))
    return path


def test_a_certificate_makes_a_server_side_tls_context_of_at_least_1_2(server_pem):
    tls = ServerConfig(tls_cert=str(server_pem)).tls
    assert isinstance(tls, ssl.SSLContext)
    assert tls.minimum_version is ssl.TLSVersion.TLSv1_2
    assert (tls.check_hostname, tls.verify_mode) == (False, ssl.CERT_NONE)  # the server side
    assert ServerConfig(tls_cert=str(server_pem), tls_key=str(server_pem)).tls is not None
    assert ServerConfig(tls_cert="").tls is None


def test_a_certificate_that_cannot_be_loaded_is_a_value_error(tmp_path, server_pem):
    (tmp_path / "junk.pem").write_text("not a certificate")
    for cert, key in [
        (str(tmp_path / "missing.pem"), None),
        (str(tmp_path / "junk.pem"), None),
        (str(server_pem), str(tmp_path / "junk.pem")),
    ]:
        assert str(refusal(tls_cert=cert, tls_key=key)).startswith(
            "cannot load the TLS certificate and key: "
        )


def test_beyond_loopback_a_secret_is_required():
    with pytest.raises(InsecureBindError) as info:
        ServerConfig(host="0.0.0.0")
    assert str(info.value) == (
        "refusing to listen on 0.0.0.0 without authentication: rcmd runs any command "
        "it is sent. Give a shared secret (--secret-file FILE or $RCMD_SECRET) to clients "
        "and server, or use --host 127.0.0.1. (--insecure-no-auth overrides; don't.)"
    )
    assert ServerConfig(host="0.0.0.0", secret=SECRET).secret == SECRET
    assert ServerConfig(host="::", insecure_no_auth=True).host == "::"
    assert ServerConfig(host="localhost").host == "localhost"


def test_naive_framing_listens_on_loopback_only():
    with pytest.raises(InsecureBindError) as info:
        ServerConfig(host="10.1.2.3", framing=Framing.NAIVE)
    assert str(info.value) == (
        "refusing to listen on 10.1.2.3: naive framing is a teaching mode with no "
        "protection at all, so it listens on loopback only. Use --host 127.0.0.1, or "
        "--insecure-no-auth if every machine that can reach this address is trusted."
    )
    assert (
        ServerConfig(host="10.1.2.3", framing=Framing.NAIVE, insecure_no_auth=True).framing is Framing.NAIVE
    )
    assert ServerConfig(host="::1", framing=Framing.NAIVE).host == "::1"


def test_user_accounts_replace_the_secret_and_need_prefixed_framing():
    message = "user accounts (--users) replace the shared secret and need prefixed framing"
    assert str(refusal(users={}, secret=SECRET)) == message
    assert str(refusal(users={}, framing=Framing.NAIVE)) == message
    assert ServerConfig(users={}).users == {}
    assert ServerConfig(users={}, host="0.0.0.0").host == "0.0.0.0"  # a login, as a secret is


def test_the_tls_context_refuses_renegotiation_and_keeps_its_defaults(server_pem):
    tls = ServerConfig(tls_cert=str(server_pem)).tls
    assert tls is not None
    defaults = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).options
    assert tls.options == defaults | ssl.OP_NO_RENEGOTIATION
    assert defaults & ssl.OP_NO_COMPRESSION  # so a lost default shows


@pytest.mark.parametrize("grace", [0.0, 1e-9, 30.0])
def test_a_startup_grace_of_zero_or_more_is_taken(grace):
    assert ServerConfig(startup_grace=grace).startup_grace == grace


def test_an_infinite_startup_grace_is_refused():
    assert str(refusal(startup_grace=math.inf)) == (
        "startup grace must be a finite number of seconds >= 0, not inf"
    )


class CountingContext:
    """A server context that counts the handshakes it is asked for."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.handshakes = 0

    def wrap_bio(
        self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, *, server_side: bool
    ) -> ssl.SSLObject:
        self.handshakes += 1
        return self.context.wrap_bio(incoming, outgoing, server_side=server_side)


@pytest.fixture
def server_context(server_pem) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(server_pem))
    return context


def test_tls_handshake_cost_is_the_cpu_of_the_servers_side(server_context):
    """Measured on a real handshake: some CPU, well under a second (an RSA 2048 signature),
    with a client context made as ssl wants it now (no deprecated default protocol)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert 0 < tls_handshake_cost(server_context) < 0.5


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_handshake_cost_counts_only_the_servers_steps(server_context, monkeypatch, version):
    """A clock that ticks once at each reading: the cost is then the number of steps the
    server's side took to finish the handshake (its second do_handshake() completes it, in
    TLS 1.2 and 1.3 alike), the best of 3 tries by default."""
    ticks = iter(range(1000))
    monkeypatch.setattr(config.time, "thread_time", lambda: float(next(ticks)))
    server_context.minimum_version = server_context.maximum_version = version
    counting = CountingContext(server_context)
    assert tls_handshake_cost(counting) == 2.0  # type: ignore[arg-type]
    assert counting.handshakes == 3
    assert tls_handshake_cost(counting, tries=1) == 2.0  # type: ignore[arg-type]
    assert counting.handshakes == 4
