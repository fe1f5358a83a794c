"""The command-line programs, run as a user runs them: subprocesses against a real server."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest
from conftest import CLIENT_ARGV, SERVER_ARGV
from typer.testing import CliRunner

from rcmd.cli import client_app, parse_target
from rcmd.console import ExitStatus


def rcmd(*args: str, input: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLIENT_ARGV, *args],
        input=input,
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})},
    )


def target(server) -> str:
    return f"{server.address[0]}:{server.port}"


def test_one_shot_streams_apart_and_exits_with_the_remote_status(server):
    proc = rcmd(target(server), "-c", "echo out; echo err >&2; exit 7")
    assert (proc.returncode, proc.stdout, proc.stderr) == (7, b"out\n", b"err\n")


def test_binary_output_passes_through_untouched(server):
    proc = rcmd(target(server), "-c", r"printf '\377\000\376\n'")
    assert proc.returncode == 0
    assert proc.stdout == b"\xff\x00\xfe\n"


def test_gbk_server_output_is_shown_in_the_local_encoding(gbk_server):
    proc = rcmd(target(gbk_server), "-c", r"printf '\326\320\316\304\n'")
    assert proc.returncode == 0
    assert proc.stdout == "中文\n".encode()


def test_gbk_character_split_between_two_messages_is_decoded_whole(gbk_server, tmp_path):
    from conftest import SplitOutput

    split = SplitOutput(tmp_path, r"\326", r"\320\316\304\n")  # half of 中, then its other half and 文
    proc = subprocess.Popen(
        [*CLIENT_ARGV, target(gbk_server), "-c", split.command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    try:
        split.release()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert stdout.decode("utf-8") == "中文\n"  # not "\ufffd\ufffd文": decoded incrementally


def test_timeout_exits_124(server):
    proc = rcmd(target(server), "-c", "sleep 100", "--timeout", "0.3")
    assert proc.returncode == ExitStatus.TIMED_OUT == 124


def test_killed_by_a_signal_exits_128_plus_n(server):
    proc = rcmd(target(server), "-c", "kill -9 $$")
    assert proc.returncode == 128 + 9


def test_each_line_replays_lines_in_turn_and_the_last_status_wins(server):
    proc = rcmd(target(server), "--each-line", input=b"cd /\npwd\n\necho two\nexit 3\n")
    assert proc.stdout == b"/\ntwo\n"
    assert proc.returncode == 3


SCRIPT = b"""for i in 1 2; do
  echo loop $i
done
greet() { echo "hello $1"; }
greet fn
cat <<EOF
heredoc line
EOF
set -e
false
echo never
"""


def test_a_piped_script_runs_whole_in_one_remote_shell(server):
    """As ``ssh host < script.sh``: not one command per line (which broke loops and heredocs);
    its exit status is rcmd's."""
    proc = rcmd(target(server), input=SCRIPT)
    assert proc.stdout == b"loop 1\nloop 2\nhello fn\nheredoc line\n"
    assert proc.returncode == 1  # set -e; false
    proc = rcmd(target(server), input=b"cd /tmp\npwd\nexit 7\n")
    assert (proc.stdout, proc.returncode) == (b"/tmp\n", 7)


def test_stdin_is_the_one_shot_commands_stdin(server):
    proc = rcmd(target(server), "-c", "wc -c", input=b"hello\n")
    assert proc.stdout.strip() == b"6"


def test_dash_n_gives_the_command_an_empty_stdin(server):
    proc = rcmd(target(server), "-n", "-c", "wc -c", input=b"hello\n")
    assert proc.stdout.strip() == b"0"
    assert rcmd(target(server), "-n").returncode == ExitStatus.USAGE


def test_a_command_that_ends_without_reading_stdin_ends_rcmd(server):
    """stdin that never ends (a pipe held open) must not keep rcmd waiting after the EXIT."""
    proc = subprocess.Popen(
        [*CLIENT_ARGV, target(server), "-c", "echo done"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout.read() == b"done\n"
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.stdin.close()
        proc.stdout.close()
        proc.wait()


def test_large_binary_stdin_is_streamed_byte_exact_in_bounded_memory(server, tmp_path):
    import hashlib

    size = 64 << 20
    source = tmp_path / "in.bin"
    with open(source, "wb") as out:
        for _ in range(size >> 20):
            out.write(os.urandom(1 << 20))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    # A wrapper reports the client's peak memory: it must not hold the input.
    wrapper = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)"
    )
    copy = tmp_path / "copy.bin"
    for stdin_kind in ("file", "pipe"):
        if stdin_kind == "file":
            with open(source, "rb") as stdin, open(copy, "wb") as stdout:
                proc = subprocess.run(
                    [sys.executable, "-c", wrapper, *CLIENT_ARGV, target(server), "-c", "cat"],
                    stdin=stdin,
                    stdout=stdout,
                    stderr=subprocess.PIPE,
                    timeout=300,
                )
        else:
            with open(copy, "wb") as stdout:
                proc = subprocess.run(
                    f"cat {source} | {sys.executable} -c '{wrapper}' {' '.join(CLIENT_ARGV)} "
                    f"{target(server)} -c 'cat'",
                    shell=True,
                    stdout=stdout,
                    stderr=subprocess.PIPE,
                    timeout=300,
                )
        assert proc.returncode == 0, proc.stderr
        peak_kib = int(proc.stderr.split()[-1])
        assert peak_kib < 60 * 1024, f"{stdin_kind}: the client peaked at {peak_kib} KiB for 64 MiB of input"
        assert copy.stat().st_size == size
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest
    with open(source, "rb") as stdin:
        remote = subprocess.run(
            [*CLIENT_ARGV, target(server), "-c", "sha256sum"], stdin=stdin, capture_output=True, timeout=300
        )
    assert remote.stdout.split()[0].decode() == digest


def test_connection_refused(server_factory):
    stopped = server_factory()
    port = stopped.port
    stopped.stop()
    proc = rcmd(f"127.0.0.1:{port}", "-c", "true")
    assert proc.returncode == ExitStatus.CONNECTION_FAILED == 255
    assert b"connection refused" in proc.stderr
    assert b"Traceback" not in proc.stderr


# The CLI with a resolver that answers every name "no such host" and says it was asked: the
# test never sends a DNS query, even if .invalid were not refused locally (RFC 6761).
STUB_RESOLVER = """
import socket, sys
def getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host  # an ASCII name comes as bytes
    sys.stderr.write(f"stub resolver asked for {name}\\n")
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
socket.getaddrinfo = getaddrinfo
from rcmd.cli import client_entry
client_entry()
"""


def test_unknown_host():
    proc = subprocess.run(
        [CLIENT_ARGV[0], "-c", STUB_RESOLVER, "no-such-host.invalid", "-c", "true"],
        capture_output=True,
        timeout=60,
    )
    assert b"stub resolver asked for no-such-host.invalid\n" in proc.stderr  # no real lookup
    assert proc.returncode == ExitStatus.HOST_NOT_FOUND == 254
    assert b"rcmd: cannot resolve host 'no-such-host.invalid': Name or service not known" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_prefixed_client_to_naive_server_says_use_naive(naive_server):
    proc = rcmd(target(naive_server), "--framing", "prefixed", "-c", "true", "--connect-timeout", "1")
    assert proc.returncode == ExitStatus.PROTOCOL_MISMATCH
    assert b"--framing naive" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_a_silent_peer_is_never_taken_for_a_naive_server(naive_server):
    """It used to fall back to naive, send the command into the void and exit 0."""
    for framing in ([], ["--framing", "auto"]):
        proc = rcmd(target(naive_server), *framing, "-c", "echo hi", "--connect-timeout", "1")
        assert proc.returncode == ExitStatus.PROTOCOL_MISMATCH
        assert proc.stdout == b""
        assert b"--framing naive" in proc.stderr


def test_a_silent_port_is_an_error_not_a_success():
    import socket

    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts, then says nothing
        proc = rcmd(f"127.0.0.1:{listener.getsockname()[1]}", "-c", "true", "--connect-timeout", "1")
    assert proc.returncode == ExitStatus.PROTOCOL_MISMATCH != 0


def test_auto_framing_takes_a_prefixed_server_at_once(server):
    proc = rcmd(target(server), "--framing", "auto", "-c", "exit 9")
    assert proc.returncode == 9
    assert proc.stderr == b""


def test_naive_framing_prints_the_one_recv_reply_and_says_the_status_is_unknown(naive_server):
    proc = rcmd(target(naive_server), "--framing", "naive", "-c", "echo hi; exit 0")
    assert proc.returncode == ExitStatus.STATUS_UNKNOWN == 246
    assert proc.stdout == b"hi\n"
    assert b"deliberately broken" in proc.stderr
    assert b"exit status is unknown" in proc.stderr


def test_a_reader_that_goes_away_ends_rcmd_quietly_and_cancels_the_command(server):
    """``rcmd -c 'seq ...' | head -1``: EPIPE is ours, not "cannot connect" with 255."""
    proc = subprocess.run(
        f"{' '.join(CLIENT_ARGV)} {target(server)} -c 'echo $$; exec seq 1 100000000' | head -1",
        shell=True,
        capture_output=True,
        timeout=60,
    )
    pid = int(proc.stdout)
    assert proc.stderr == b""
    from conftest import wait_gone

    assert wait_gone(pid)  # the remote command was cancelled, not left to print 100M lines


def test_pipe_closed_exit_status(server):
    read_fd, write_fd = os.pipe()
    os.close(read_fd)  # nobody will ever read: the first write fails with EPIPE
    try:
        done = subprocess.run(
            [*CLIENT_ARGV, target(server), "-c", "seq 1 1000000"],
            stdout=write_fd,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(write_fd)
    assert done.returncode == ExitStatus.PIPE_CLOSED == 141
    assert done.stderr == b""


def test_a_full_disk_is_a_local_write_error(server):
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(
            [*CLIENT_ARGV, target(server), "-c", "echo hello"],
            stdout=full,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    assert proc.returncode == ExitStatus.WRITE_FAILED == 245
    assert proc.stderr == b"rcmd: write error: No space left on device\n"


def test_python_dash_m_rcmd_and_version():
    proc = rcmd("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith(b"rcmd ")


def test_server_help_and_bad_encoding():
    proc = subprocess.run(
        [*SERVER_ARGV, "--encoding", "no-such-codec", "--port", "0"], capture_output=True, timeout=60
    )
    assert proc.returncode == 2
    assert b"unknown encoding" in proc.stderr


def test_cli_runner_in_process(server):
    result = CliRunner().invoke(client_app, [target(server), "-c", "echo hello; exit 5"])
    assert result.exit_code == 5
    assert "hello" in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, ("127.0.0.1", 9000)),
        ("example", ("example", 9000)),
        ("example:2222", ("example", 2222)),
        (":2222", ("127.0.0.1", 2222)),
        ("[::1]:2222", ("::1", 2222)),
        ("[::1]", ("::1", 9000)),
        ("::1", ("::1", 9000)),
    ],
)
def test_parse_target(text, expected):
    assert parse_target(text) == expected


def test_ctrl_c_in_one_shot_cancels_the_remote_command_and_exits_130(server):
    import select
    import signal

    from conftest import wait_gone

    proc = subprocess.Popen(
        [*CLIENT_ARGV, target(server), "-c", "sleep 1000 & echo $! $$; wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "no output from the command"
        pids = [int(p) for p in proc.stdout.readline().split()]
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(30) == ExitStatus.CANCELLED == 130
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    for pid in pids:
        assert wait_gone(pid)


# ------------------------------------------------------- failures read like a tool

from rcmd.framing import encode_frame  # noqa: E402
from rcmd.messages import Error, Hello, encode_message  # noqa: E402

HELLO_FRAME = encode_frame(encode_message(Hello(encoding="utf-8", cwd="/")))


def read_until_closed_or(conn, nbytes: int) -> None:
    received = b""
    while len(received) < nbytes:
        chunk = conn.recv(65536)
        if not chunk:
            return
        received += chunk


def assert_tool_error(proc, code, phrase: bytes) -> None:
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith(b"rcmd: ")
    assert phrase in proc.stderr
    assert b"Traceback" not in proc.stderr


SECRET = "cli-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def auth_server(server_factory, tmp_path_factory):
    secret = tmp_path_factory.mktemp("cli-secret") / "secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    return server_factory("--secret-file", str(secret))


def secret_file(folder, text: str):
    path = folder / "secret"
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def test_secret_file_on_the_cli(auth_server, tmp_path):
    proc = rcmd(target(auth_server), "--secret-file", secret_file(tmp_path, SECRET), "-c", "echo in; exit 4")
    assert (proc.returncode, proc.stdout, proc.stderr) == (4, b"in\n", b"")


def test_wrong_or_missing_secret_exits_248(auth_server, tmp_path):
    wrong = rcmd(
        target(auth_server), "--secret-file", secret_file(tmp_path, "not the secret at all"), "-c", "true"
    )
    assert_tool_error(wrong, ExitStatus.AUTH_FAILED, b"refused us: authentication failed (wrong secret?)")
    assert ExitStatus.AUTH_FAILED == 248
    missing = rcmd(target(auth_server), "-c", "true", env={"RCMD_SECRET": ""})
    assert_tool_error(missing, 248, b"requires authentication: give the shared secret")


def test_garbage_after_a_valid_hello_exits_252(fake_server):
    def script(conn):
        conn.sendall(HELLO_FRAME)
        read_until_closed_or(conn, 1)
        conn.sendall(encode_frame(b"\x42garbage"))  # a frame of an unknown type
        read_until_closed_or(conn, 1 << 20)

    server = fake_server(script)
    proc = rcmd(f"127.0.0.1:{server.address[1]}", "-c", "true")
    assert_tool_error(proc, ExitStatus.PROTOCOL_ERROR, b"protocol error: unknown message type 0x42")
    assert ExitStatus.PROTOCOL_ERROR == 252


def test_an_error_from_the_server_exits_253(fake_server):
    def script(conn):
        conn.sendall(HELLO_FRAME)
        read_until_closed_or(conn, 1)
        conn.sendall(encode_frame(encode_message(Error("out of patience"))))

    server = fake_server(script)
    proc = rcmd(f"127.0.0.1:{server.address[1]}", "-c", "true")
    assert_tool_error(proc, ExitStatus.CONNECTION_LOST, b"out of patience")
    assert ExitStatus.CONNECTION_LOST == 253


@pytest.mark.parametrize("verb", ["put", "get"])
def test_put_and_get_map_a_lost_or_broken_connection_as_rcmd_c_does(fake_server, tmp_path, verb):
    """The same exit codes and words as ``rcmd -c`` (one mapping, console.connection_failure);
    a lost connection also says how to resume."""
    (tmp_path / "src").write_bytes(b"x")
    args = ["src", "dst"]
    hello = encode_frame(encode_message(Hello(encoding="utf-8", cwd="/", extensions=["files"])))

    def error(conn):
        conn.sendall(hello)
        read_until_closed_or(conn, 1)
        conn.sendall(encode_frame(encode_message(Error("out of patience"))))

    def garbage(conn):
        conn.sendall(hello)
        read_until_closed_or(conn, 1)
        conn.sendall(encode_frame(b"\x42garbage"))
        read_until_closed_or(conn, 1 << 20)

    def oversized(conn):
        conn.sendall(hello)
        read_until_closed_or(conn, 1)
        conn.sendall(b"\x7f\xff\xff\xff")  # a 2 GiB frame announced
        read_until_closed_or(conn, 1 << 20)

    def in_folder(server):
        return subprocess.run(
            [*CLIENT_ARGV, verb, "-H", f"127.0.0.1:{server.address[1]}", *args],
            capture_output=True,
            timeout=60,
            cwd=tmp_path,
        )

    lost = in_folder(fake_server(error))
    assert_tool_error(
        lost, ExitStatus.CONNECTION_LOST, b"out of patience; run the same command again to resume"
    )
    broken = in_folder(fake_server(garbage))
    assert_tool_error(broken, ExitStatus.PROTOCOL_ERROR, b"protocol error: unknown message type 0x42")
    too_large = in_folder(fake_server(oversized))
    assert_tool_error(
        too_large, ExitStatus.FRAME_TOO_LARGE, b"exceeds the maximum"
    )  # put/get said 252 here, -c 250


def test_server_closing_mid_conversation(fake_server):
    def script(conn):
        conn.sendall(HELLO_FRAME)
        read_until_closed_or(conn, 1)  # the client's HELLO and RUN: then hang up

    server = fake_server(script)
    proc = rcmd(f"127.0.0.1:{server.address[1]}", "-c", "true")
    assert_tool_error(proc, ExitStatus.CONNECTION_LOST, b"closed the connection")


def test_oversized_frame_from_the_server(fake_server):
    def script(conn):
        conn.sendall(HELLO_FRAME)
        read_until_closed_or(conn, 1)
        conn.sendall(b"\x7f\xff\xff\xff")  # a 2 GiB frame announced
        read_until_closed_or(conn, 1 << 20)

    server = fake_server(script)
    proc = rcmd(f"127.0.0.1:{server.address[1]}", "-c", "true")
    assert_tool_error(proc, ExitStatus.FRAME_TOO_LARGE, b"exceeds the maximum")


def test_garbage_instead_of_hello(fake_server):
    def script(conn):
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        read_until_closed_or(conn, 1 << 20)

    server = fake_server(script)
    proc = rcmd(f"127.0.0.1:{server.address[1]}", "-c", "true")
    assert_tool_error(proc, ExitStatus.PROTOCOL_MISMATCH, b"does not speak rcmd")


def accept_queue(listener) -> tuple[int, int]:
    """(connections waiting in *listener*'s accept queue, its backlog), from TCP_INFO: for a
    listening socket Linux reports them as tcpi_unacked and tcpi_sacked."""
    import socket
    import struct

    info = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    _, _, _, _, _, _, _, _, _rto, _ato, _snd_mss, _rcv_mss, waiting, backlog = struct.unpack_from(
        "=8B6I", info
    )
    return waiting, backlog


def test_connect_timeout():
    import socket

    from conftest import wait_until

    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    filler = socket.socket()
    try:
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())  # never accepted
        # Once the accept queue holds more than the backlog, Linux drops every new SYN unanswered
        # (it does not even count as a SYN flood): rcmd's connect can only time out.
        wait_until(
            lambda: accept_queue(listener)[0] > accept_queue(listener)[1], "the accept queue never filled"
        )
        proc = rcmd(f"127.0.0.1:{listener.getsockname()[1]}", "-c", "true", "--connect-timeout", "0.5")
    finally:
        filler.close()
        listener.close()
    assert_tool_error(proc, ExitStatus.CONNECT_TIMEOUT, b"no answer within 0.5s")


def test_server_shutdown_during_a_command_is_not_reported_as_ctrl_c(server_factory):
    # The server cancels the command itself (EXIT cancelled=true), then sends ERROR "the
    # server is shutting down": the client asked for no cancel, so that is not a Ctrl-C (130).
    stopping = server_factory()
    client = subprocess.Popen(
        [*CLIENT_ARGV, f"127.0.0.1:{stopping.port}", "-c", "echo started; sleep 60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert client.stdout.readline() == b"started\n"  # the command is running
    assert stopping.stop() == 0  # SIGTERM
    _stdout, stderr = client.communicate(timeout=60)
    assert client.returncode == ExitStatus.CONNECTION_LOST == 253
    assert b"the server is shutting down" in stderr
    assert b"Traceback" not in stderr


def test_an_ipv6_address_is_shown_in_brackets(server_factory):
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    v6 = server_factory("--host", "::1")
    assert re.search(r"listening on \[::1\]:\d+ ", v6.banner), v6.banner
    assert v6.address[0] == "::1"
    proc = rcmd(f"[::1]:{v6.port}", "-c", "echo over-v6")
    assert (proc.returncode, proc.stdout) == (0, b"over-v6\n")


def test_secret_file_problems_exit_2(tmp_path):
    short, shared = tmp_path / "short", tmp_path / "shared"
    short.write_text("too short")
    short.chmod(0o600)
    shared.write_text("long enough secret, 0123456789")
    shared.chmod(0o644)
    for path, message in ((short, b"use at least 16"), (shared, b"readable by others")):
        proc = rcmd("127.0.0.1:9", "--secret-file", str(path), "-c", "true")
        assert proc.returncode == ExitStatus.USAGE == 2
        assert message in proc.stderr


def test_naive_framing_with_a_secret_file_is_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("long enough secret, 0123456789")
    secret.chmod(0o600)
    proc = rcmd("127.0.0.1:9", "--framing", "naive", "--secret-file", str(secret), "-c", "true")
    assert proc.returncode == ExitStatus.USAGE
    assert b"naive framing has no handshake" in proc.stderr


def test_a_command_the_client_refuses_is_reported_not_a_traceback(server):
    # A NUL byte cannot be in a command line (PROTOCOL.md §7): the client refuses it before
    # sending, says why, exits 2, and the next line still runs on the same connection.
    proc = subprocess.run(
        [*CLIENT_ARGV, f"127.0.0.1:{server.port}", "--each-line"],  # lines as commands
        input=b"echo a\0b\necho next\n",
        capture_output=True,
        timeout=60,
    )
    assert b"Traceback" not in proc.stderr
    assert b"rcmd: cannot send this command" in proc.stderr
    assert proc.stdout == b"next\n"


def test_an_infinite_timeout_is_a_usage_error(server):
    proc = subprocess.run(
        [*CLIENT_ARGV, f"127.0.0.1:{server.port}", "--timeout", "inf", "-c", "true"],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert b"--timeout" in proc.stderr


# ------------------------------------------------------------ papercuts found on the way


def server_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SERVER_ARGV, *args], capture_output=True, timeout=60)


def test_rcmd_server_version_and_help_offer_only_what_it_accepts():
    assert server_cli("--version").stdout.startswith(b"rcmd-server ")
    help_text = server_cli("--help").stdout
    assert b"prefixed|naive" in help_text
    assert b"auto" not in help_text


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (("--port", "70000"), b"between 0 and 65535"),
        (("--log-level", "bogus"), b"debug, info"),
        (("--shell", "/no/such/shell"), b"not an executable file"),
    ],
)
def test_rcmd_server_refuses_bad_options(args, phrase):
    proc = server_cli(*args, "--port", "0") if args[0] != "--port" else server_cli(*args)
    assert proc.returncode == ExitStatus.USAGE
    assert phrase in proc.stderr


def test_client_port_range_ssh_style_and_demo_in_help():
    proc = rcmd("127.0.0.1:70000", "-c", "true")
    assert (proc.returncode, b"from 1 to 65535" in proc.stderr) == (ExitStatus.USAGE, True)
    proc = rcmd("ann@127.0.0.1", "-c", "true")
    assert proc.returncode == ExitStatus.USAGE
    assert b"names a user" in proc.stderr
    proc = rcmd("127.0.0.1", "uptime")
    assert proc.returncode == ExitStatus.USAGE
    assert b"rcmd 127.0.0.1 -c uptime" in proc.stderr
    assert b"rcmd demo" in rcmd("--help").stdout


def test_demo_svg_into_a_missing_directory_says_so():
    proc = rcmd("demo", "--svg", "/no/such/dir/x.svg")
    assert proc.returncode == ExitStatus.USAGE
    assert b"cannot write /no/such/dir/x.svg" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_an_oversized_command_is_not_blamed_on_naive_framing(server):
    from rcmd import ServerError, connect

    with connect(*server.address) as client, pytest.raises(ServerError) as caught:
        client.run("echo " + "x" * 1_100_000)
    assert "naive" not in caught.value.reason
    assert "command line this long" in caught.value.reason


def test_cd_understands_tilde_dash_and_quotes(server, tmp_path):
    spaced = tmp_path / "a dir"
    spaced.mkdir()
    home = os.path.expanduser("~")
    script = f"cd '{spaced}'\npwd\ncd ~\npwd\ncd -\ncd '{spaced}'\ncd -\n"
    proc = rcmd(target(server), "--each-line", input=script.encode())
    assert proc.stdout.decode().splitlines() == [str(spaced), home, str(spaced), str(spaced)]


@pytest.mark.parametrize(
    ("typed", "sent"),
    [
        ("cd $HOME", "cd ~"),
        ('cd "${HOME}"', "cd ~"),
        ("cd $HOME/src", "cd ~/src"),
        ('cd "$HOME/a"', "cd ~/a"),
        ("cd $HOMEX", "cd $HOMEX"),
        ("cd $HOME; ls", "cd $HOME; ls"),
        ("echo $HOME", "echo $HOME"),
    ],
)
def test_the_prompt_writes_cd_home_as_tilde_so_it_sticks(typed, sent):
    from rcmd.prompt import cd_home

    assert cd_home(typed) == sent
