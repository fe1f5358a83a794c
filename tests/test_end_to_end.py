"""The real server (a subprocess on 127.0.0.1, port 0) and the real client, over real sockets."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import math
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import children_of, frames_until_closed, run_until_timed_out, wait_gone, wait_until

import rcmd
from rcmd import CommandError, NaiveClient, ServerError, Stdout, connect
from rcmd.framing import encode_frame
from rcmd.messages import Error, Hello, Run, Stdin, StdinEnd, encode_message

MiB = 1 << 20


def read_pids(stream) -> list[int]:
    """Read stdout chunks until a whole line of pids has come (the command printed it first)."""
    data = b""
    while not data.endswith(b"\n"):
        event = next(stream)
        if isinstance(event, Stdout):
            data += event.data
    return [int(p) for p in data.split()]


def test_exit_status_and_streams_apart(server):
    with connect(*server.address) as client:
        result = client.run("echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    assert result.describe_status() == "exited with status 3"


def test_check_raises_with_the_output(server):
    with connect(*server.address) as client:
        with pytest.raises(CommandError) as info:
            client.run("echo partial; exit 2", check=True)
        assert client.run("true", check=True).returncode == 0  # the connection goes on
    assert info.value.returncode == 2
    assert info.value.stdout == b"partial\n"


def test_commands_on_one_connection_run_in_order(server):
    with connect(*server.address) as client:
        assert [client.run(f"echo {i}").stdout for i in range(20)] == [b"%d\n" % i for i in range(20)]


def pipe_is_full_or_gone(pid: int) -> bool:
    """True once process *pid* has filled its stdout pipe (it is blocked on it: nobody is
    reading) or has exited. Looks at the pipe through /proc, without reading from it."""
    try:
        fd = os.open(f"/proc/{pid}/fd/1", os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return True  # exited: it wrote everything
    try:
        queued = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
        return queued >= fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
    finally:
        os.close(fd)


def test_200_mib_arrives_intact_while_server_memory_stays_bounded(server_factory, tmp_path):
    server = server_factory()  # its own: the peak memory of a shared server says nothing
    # Random bytes (every value, no text structure), made the same way on both ends.
    pid_file = tmp_path / "pid"
    command = (
        f'{sys.executable} -c \'import os,random,sys; open("{pid_file}", "w").write(str(os.getpid())); '
        "r=random.Random(7); w=sys.stdout.buffer.write; [w(r.randbytes(1<<20)) for _ in range(200)]'"
    )
    expected = hashlib.sha256()
    generator = random.Random(7)
    for _ in range(200):
        expected.update(generator.randbytes(MiB))

    baseline = server.memory_kib("VmRSS")
    received = hashlib.sha256()
    size = 0
    with connect(*server.address) as client:
        with client.stream(command) as events:
            for event in events:
                if isinstance(event, Stdout):
                    if size == 0:
                        # Stop reading until the command is blocked on its full pipe: every
                        # buffer between it and us is full. Without backpressure the server
                        # would instead read on, holding the whole output, and the command
                        # would finish.
                        pid = int(pid_file.read_text())
                        wait_until(
                            functools.partial(pipe_is_full_or_gone, pid),
                            "the command neither blocked nor ended",
                        )
                    received.update(event.data)
                    size += len(event.data)
        assert events.exit.returncode == 0
    peak = server.memory_kib("VmHWM")
    assert size == 200 * MiB
    assert received.hexdigest() == expected.hexdigest()
    assert peak - baseline < 40 * 1024, f"server grew from {baseline} KiB to a peak of {peak} KiB"


def test_large_input_and_large_output_together_do_not_deadlock(server):
    data = os.urandom(16 * MiB)  # far more than the socket and pipe buffers hold
    with connect(*server.address) as client:
        result = client.run("cat", input=data)
    assert result.returncode == 0
    assert result.stdout == data


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="F_GETPIPE_SZ is Linux's")
def test_a_commands_pipes_hold_a_mib_stdin_included(server):
    """Large pipes: fewer wakeups a MiB for output, and large writes of stdin (an upload into
    `cat` ran at 0.47x a download with a 64 KiB stdin pipe, 0.75x with 1 MiB)."""
    probe = "import fcntl; print(*(fcntl.fcntl(fd, 1032) for fd in (0, 1, 2)))"  # F_GETPIPE_SZ
    with connect(*server.address) as client:
        result = client.run([sys.executable, "-c", probe], input=b"")
    assert result.stdout.split() == [str(MiB).encode()] * 3


def test_stdout_and_stderr_are_read_concurrently(server):
    # 1 MiB on stderr first: a server reading stdout to the end first would deadlock.
    with connect(*server.address) as client:
        result = client.run("head -c 1048576 /dev/zero >&2; echo done", timeout=60)
    assert result.stderr == bytes(MiB)
    assert result.stdout == b"done\n"


def test_command_without_stdin_reads_eof(server):
    with connect(*server.address) as client:
        assert client.run("cat; echo after", timeout=30).stdout == b"after\n"


def test_a_command_without_input_never_reads_the_servers_own_stdin(server_factory):
    # The other servers start with stdin=/dev/null, which would hide a command inheriting
    # the server's stdin: this one has a pipe that stays open, as a terminal would.
    server = server_factory(stdin=subprocess.PIPE)
    with connect(*server.address) as client:
        result = client.run("cat", timeout=60)  # would block on the open pipe until killed
        assert (result.returncode, result.timed_out, result.stdout) == (0, False, b"")
        assert client.run("wc -c").stdout.strip() == b"0"
        assert client.run("cat", input=b"given").stdout == b"given"  # input still arrives
    naive = server_factory("--framing", "naive", stdin=subprocess.PIPE)
    with NaiveClient.connect(*naive.address) as client:
        client.send_command("cat; echo after-cat")
        assert client.wait_buffered(len(b"after-cat\n")) == len(b"after-cat\n")
        assert client.recv_reply() == b"after-cat\n"


@pytest.mark.parametrize(
    ("printf", "text"),
    [(r"printf '\344'; read go; printf '\270\255\346\226\207\n'", "中文\n")],  # UTF-8
)
def test_utf8_character_split_across_chunks(server, printf, text):
    with connect(*server.address) as client:
        assert client.encoding == "utf-8"
        with client.stream(printf, stdin=True) as events:
            first = next(events)
            assert first == Stdout(b"\xe4")  # one byte of a three-byte character
            events.write_stdin(b"go\n")
            rest = [e for e in events if isinstance(e, Stdout)]
    decoder = client.decoder()
    decoded = decoder.stdout.decode(first.data) + "".join(decoder.stdout.decode(e.data) for e in rest)
    assert decoded + decoder.stdout.flush() == text
    assert "\ufffd" in first.data.decode("utf-8", "replace")  # what per-chunk decoding shows


def test_gbk_server_output_decodes_with_a_character_split_across_chunks(gbk_server):
    with connect(*gbk_server.address) as client:
        assert client.encoding == "gbk"  # announced in the HELLO, no flag needed
        with client.stream(r"printf '\326'; read go; printf '\320\316\304\n'", stdin=True) as events:
            first = next(events)
            assert first == Stdout(b"\xd6")  # half of 中
            events.write_stdin(b"go\n")
            rest = [e for e in events if isinstance(e, Stdout)]
        decoder = client.decoder()
        decoded = decoder.stdout.decode(first.data) + "".join(decoder.stdout.decode(e.data) for e in rest)
        assert decoded == "中文\n"
        assert client.run(r"printf '\326\320\316\304'").stdout_text == "中文"


def test_cd_sticks_per_connection(server, tmp_path):
    target = os.path.realpath(tmp_path)
    (tmp_path / "sub").mkdir()
    with connect(*server.address) as client:
        start = client.cwd
        assert client.run(f"cd {target}").returncode == 0
        assert client.cwd == target
        assert client.run("pwd").stdout.decode().strip() == target
        assert client.run("cd sub").returncode == 0
        assert client.run("pwd").stdout.decode().strip() == os.path.join(target, "sub")
        missing = client.run("cd /no/such/dir")
        assert missing.returncode == 1
        assert missing.stderr == b"cd: /no/such/dir: No such file or directory\n"
        assert client.cwd == os.path.join(target, "sub")  # unchanged by the failure
        assert client.run("cd -").stdout.decode().strip() == target
        assert client.run("cd x && pwd").returncode != 0  # compound: the shell's own cd
    with connect(*server.address) as other:
        assert other.cwd == start  # each connection has its own directory


def test_timeout_kills_the_whole_process_group(server):
    with connect(*server.address) as client:
        pids, exit = run_until_timed_out(client, "sleep 1000 & echo $! $$; wait")
        assert exit.timed_out
        assert exit.signal == signal.SIGTERM
        assert exit.returncode == -signal.SIGTERM
        assert client.run("echo still here").stdout == b"still here\n"
    for pid in pids:
        assert wait_gone(pid), f"process {pid} outlived its timed-out command"


def test_a_command_ignoring_sigterm_is_killed(server):
    with connect(*server.address) as client:
        pids, exit = run_until_timed_out(client, "trap '' TERM; sleep 1000 & echo $! $$; wait; wait")
    assert exit.timed_out
    assert exit.signal == signal.SIGKILL
    for pid in pids:
        assert wait_gone(pid)


def test_cancel_kills_the_command_and_the_connection_goes_on(server):
    with connect(*server.address) as client:
        with client.stream("sleep 1000 & echo $! $$; wait") as events:
            pids = read_pids(events)
            events.cancel()
            exit = events.wait()
        assert exit.cancelled
        assert not exit.timed_out
        assert exit.signal == signal.SIGTERM
        assert client.run("echo next").stdout == b"next\n"
    for pid in pids:
        assert wait_gone(pid)


def test_client_disconnect_mid_command_leaves_no_process(server):
    client = connect(*server.address)
    events = client.stream("sleep 1000 & echo $! $$; wait")
    pids = read_pids(events)
    client.close()
    for pid in pids:
        assert wait_gone(pid), f"process {pid} outlived its client"


def test_background_children_holding_the_pipes_are_killed_after_the_shell_exits(server):
    with connect(*server.address) as client:
        started = time.monotonic()
        result = client.run("sleep 1000 & echo $!", timeout=60)
        took = time.monotonic() - started
    assert result.returncode == 0
    assert not result.timed_out
    assert took < 30, f"the reply waited {took:.0f}s for a background child"
    assert wait_gone(int(result.stdout))


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def closed_on_the_server(server, client) -> None:
    """Close *client* and wait until the server has finished with its connection."""
    port = client._sock.getsockname()[1]
    client.close()
    server.wait_for_log(rf":{port} disconnected")


def test_every_pipe_and_process_of_every_command_is_released(server, tmp_path):
    """Pipes, pidfds and children: whatever way a command ends, the server keeps none."""
    closed_on_the_server(server, connect(*server.address))  # anything made once is made now
    pid = server.proc.pid
    baseline = open_descriptors(pid)
    client = connect(*server.address)
    assert client.run("echo out; echo err >&2").stdout == b"out\n"
    assert client.run("cat", input=b"x" * 200_000).stdout == b"x" * 200_000
    assert client.run("head -c 3000000 /dev/zero").stdout == bytes(3_000_000)
    with pytest.raises(rcmd.TimeoutExpired) as timed_out:
        client.run("sleep 1000", timeout=0.2)
    assert timed_out.value.result.timed_out
    with client.stream("echo go; sleep 1000") as events:
        next(events)
        events.cancel()
        assert events.wait().cancelled
    assert client.run("sleep 1000 & echo $!").returncode == 0  # left a child behind
    cannot_start = client.run("true", cwd=str(tmp_path / "missing"))
    assert cannot_start.returncode == 127
    assert b"cannot run command" in cannot_start.stderr
    closed_on_the_server(server, client)
    gone_mid_command = connect(*server.address)
    read_pids(gone_mid_command.stream("echo $$; sleep 1000"))
    closed_on_the_server(server, gone_mid_command)
    assert open_descriptors(pid) == baseline
    watchdog = int(server.wait_for_log(r"watchdog pid (\d+)").group(1))  # lives as long as the server
    assert children_of(pid) == {watchdog}


def test_fifty_clients_at_once_each_get_exactly_their_own_output(server):
    count = 50
    barrier = threading.Barrier(count)

    def one(i: int) -> tuple[int, rcmd.CompletedCommand]:
        with connect(*server.address) as client:
            barrier.wait(timeout=30)
            return i, client.run(f"seq 1 3000 | sed 's/^/{i}:/'; echo end-{i} >&2")

    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(one, range(count)))
    for i, result in results:
        assert result.stdout == b"".join(b"%d:%d\n" % (i, n) for n in range(1, 3001))
        assert result.stderr == b"end-%d\n" % i


def test_env_and_cwd_apply_to_one_command(server, tmp_path):
    with connect(*server.address) as client:
        result = client.run('echo "$GREETING"; pwd', env={"GREETING": "你好"}, cwd=str(tmp_path))
        assert result.stdout_text == f"你好\n{os.path.realpath(tmp_path)}\n"
        assert client.run('echo "[$GREETING]"').stdout == b"[]\n"


# ------------------------------------------------------------------- hostile peers


def raw_conversation(address, data: bytes) -> list:
    """Send *data* and close our side; return every message until the server closes."""
    with socket.create_connection(address, timeout=15) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return frames_until_closed(sock)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xff\xff\xff", "exceeds the maximum"),
        (encode_frame(b"\x42"), "unknown message type"),
        (encode_frame(b'\x02{"command":"ls"}'), "expected HELLO first"),
        (b"ls -l\n", "exceeds the maximum"),  # a naive client's command
        (encode_frame(encode_message(Hello())) + encode_frame(b"\x10oops"), "may not send STDOUT"),
    ],
)
def test_bad_input_gets_a_reason_and_others_are_still_served(server, data, reason):
    messages = raw_conversation(server.address, data)
    assert isinstance(messages[0], Hello)
    assert messages[0].encoding == "utf-8"
    assert isinstance(messages[-1], Error)
    assert reason in messages[-1].reason
    with connect(*server.address) as client:
        assert client.run("echo fine").stdout == b"fine\n"


@pytest.mark.parametrize("timeout", [0, -1.0, math.inf, math.nan], ids=["0", "negative", "inf", "nan"])
def test_a_run_timeout_that_is_not_positive_and_finite_is_refused_with_a_reason(server, timeout):
    # The client checks what the server would refuse and sends nothing (the server's own ERROR
    # for such a RUN, sent raw, is in test_validation.py); the connection stays usable.
    with connect(*server.address) as client:
        with pytest.raises(ValueError, match="'timeout'"):
            client.run("echo never", timeout=timeout)
        assert client.run("echo fine", timeout=30).stdout == b"fine\n"


def test_stdin_after_stdin_end_is_a_protocol_error(server):
    # PROTOCOL.md section 4: STDIN "not after STDIN_END". Sent while the command runs (it
    # sleeps), so it is not the late input of section 4.4, which is dropped silently.
    data = b"".join(
        encode_frame(encode_message(m))
        for m in (Hello(), Run("echo $$; exec sleep 1000", stdin=True), StdinEnd(), Stdin(b"late"))
    )
    messages = raw_conversation(server.address, data)
    assert isinstance(messages[0], Hello)
    assert messages[-1] == Error("STDIN without an open stdin (RUN had stdin=false, or it ended)")
    pids = [int(m.data) for m in messages if isinstance(m, Stdout)]
    assert all(wait_gone(pid) for pid in pids)  # the command does not outlive its connection
    with connect(*server.address) as client:
        with client.stream("cat", stdin=True) as events:
            events.close_stdin()
            with pytest.raises(ValueError, match="stdin is not open"):
                events.write_stdin(b"late")  # the client refuses to send it at all
            assert events.wait().returncode == 0


def test_truncated_frame_then_close_is_logged_and_harmless(server):
    messages = raw_conversation(server.address, encode_frame(encode_message(Hello()))[:-3])
    assert isinstance(messages[0], Hello)
    with connect(*server.address) as client:
        assert client.run("echo fine").stdout == b"fine\n"


# -------------------------------------------------------------- server lifecycle


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_kills_commands_tells_clients_and_exits_zero(server_factory, stop_signal):
    server = server_factory()
    client = connect(*server.address)
    events = client.stream("sleep 1000 & echo $! $$; wait")
    pids = read_pids(events)
    server.proc.send_signal(stop_signal)
    exit = events.wait()
    assert exit.cancelled
    with pytest.raises(ServerError, match="shutting down"):
        client.run("true")
    client.close()
    assert server.proc.wait(15) == 0
    for pid in pids:
        assert wait_gone(pid)


def test_restart_on_the_same_port_right_away(server_factory):
    first = server_factory()
    client = connect(*first.address)
    assert first.stop() == 0  # the server closes first: its port is left in TIME_WAIT
    client.close()
    second = server_factory(port=first.port)
    with connect(*second.address) as again:
        assert again.run("echo back").stdout == b"back\n"


def test_server_refuses_to_listen_beyond_loopback_without_auth(tmp_path):
    import subprocess

    from conftest import SERVER_ARGV

    proc = subprocess.run([*SERVER_ARGV, "--host", "0.0.0.0", "--port", "0"], capture_output=True, timeout=60)
    assert proc.returncode == 2
    assert b"refusing to listen on 0.0.0.0" in proc.stderr
    assert b"--insecure-no-auth" in proc.stderr
