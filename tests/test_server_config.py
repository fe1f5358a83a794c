"""rcmd-server's options are checked at start: a bad value is a one-line error and exit 2,
never a server that starts and then fails every connection."""

from __future__ import annotations

import math
import select
import subprocess

import pytest
from conftest import SERVER_ARGV

from rcmd import connect
from rcmd.server import ServerConfig
from rcmd.server.config import MAX_FRAME_SIZE, MIN_FRAME_SIZE

SECRET = "server-config-secret-0123456789"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"max_frame_size": -1}, "max frame size must be between 256 and 4294967295 bytes, not -1"),
        ({"max_frame_size": MIN_FRAME_SIZE - 1}, "max frame size must be between"),
        ({"max_frame_size": MAX_FRAME_SIZE + 1}, "max frame size must be between"),
        ({"port": -1}, "port must be between 0 and 65535, not -1"),
        ({"port": 65536}, "port must be between 0 and 65535"),
        ({"handshake_timeout": -0.5}, "handshake timeout must be a finite number of seconds >= 0"),
        ({"idle_timeout": math.inf}, "idle timeout must be a finite number of seconds >= 0, not inf"),
        ({"command_timeout": math.nan}, "command timeout must be a finite number of seconds >= 0, not nan"),
        ({"max_connections": 0}, "max connections must be at least 1, not 0"),
        ({"max_commands": -3}, "max commands must be at least 1, not -3"),
    ],
)
def test_config_rejects_values_no_connection_could_work_with(option, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")) as info:
        ServerConfig(**option)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "option",
    [
        {"max_frame_size": MIN_FRAME_SIZE},
        {"max_frame_size": MAX_FRAME_SIZE},
        {"port": 0},
        {"port": 65535},
        {"handshake_timeout": None, "idle_timeout": 0.0, "command_timeout": 0.0},
        {"max_connections": 1, "max_commands": 1},
    ],
)
def test_config_accepts_the_edges(option):
    config = ServerConfig(**option)
    for key, value in option.items():
        assert getattr(config, key) == value


def start_or_exit(*args: str) -> subprocess.CompletedProcess:
    """Run rcmd-server with *args*: what it printed and its code if it exits; if it starts
    listening instead (the bug), stop it and fail."""
    proc = subprocess.Popen(
        [*SERVER_ARGV, "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)  # a banner, or EOF when it exits
        assert ready, "the server neither started nor exited"
        banner = proc.stdout.readline()
        assert not banner, f"the server started with {args}: {banner!r}"
        stderr = proc.stderr.read()
        return subprocess.CompletedProcess(proc.args, proc.wait(30), b"", stderr)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--max-frame-size", "-5"), b"rcmd-server: max frame size must be between 256 and 4294967295 bytes"),
        (("--max-frame-size", "100"), b"rcmd-server: max frame size must be between"),
        (("--idle-timeout", "inf"), b"rcmd-server: idle timeout must be a finite number of seconds >= 0"),
        (("--handshake-timeout", "-1"), b"rcmd-server: handshake timeout must be a finite number"),
        (("--command-timeout", "nan"), b"rcmd-server: command timeout must be a finite number"),
        (("--max-connections", "0"), b"rcmd-server: max connections must be at least 1"),
        (("--max-commands", "0"), b"rcmd-server: max commands must be at least 1"),
        (("--log-level", "bogus"), b"Invalid value for --log-level: 'bogus' is not one of debug, info"),
    ],
)
def test_the_cli_refuses_a_bad_value_at_start_with_one_line(args, message):
    proc = start_or_exit(*args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert b"Traceback" not in proc.stderr
    if proc.stderr.startswith(b"rcmd-server: "):
        assert proc.stderr.count(b"\n") == 1  # one line


def test_the_cli_refuses_a_port_out_of_range():
    proc = subprocess.run([*SERVER_ARGV, "--port", "70000"], capture_output=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == b"rcmd-server: port must be between 0 and 65535, not 70000\n"


@pytest.mark.parametrize("level", ["warning", "ERROR"])
def test_log_levels_are_taken_in_any_case(server_factory, level):
    server = server_factory("--log-level", level)  # after conftest's "--log-level debug": wins
    with connect(*server.address) as client:
        assert client.run("echo fine").stdout == b"fine\n"
    assert " INFO " not in server.log()
    assert " DEBUG " not in server.log()


def test_the_smallest_frame_size_still_lets_an_authenticated_client_in(server_factory, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    server = server_factory("--max-frame-size", str(MIN_FRAME_SIZE), "--secret-file", str(secret))
    with connect(*server.address, secret=SECRET) as client:
        assert client.run("echo in").stdout == b"in\n"
