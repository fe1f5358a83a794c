"""The server's session, command and listener, in-process: a BackgroundServer (a thread of
this process) spoken to over a raw 127.0.0.1 socket, so every word of its replies is checked,
and so mutation testing (make mutate-rest) sees the server's code run.

The end-to-end tests check the same through rcmd-server subprocesses; these say each reason
word for word, each limit at its edge, each way a command ends (exit, signal, cancel,
timeout, a lost client, a shutdown), and what the server logs for each. Every wait is for an
event (a message, a log line, the close) with a generous bound, never a sleep.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from _mutserver import WAIT, Peer, split, stop

from rcmd import __version__
from rcmd.framing import NEED_DATA, LengthPrefixFramer, frame_header
from rcmd.messages import (
    REFUSED,
    Cancel,
    Error,
    Exit,
    Hello,
    Message,
    MessageType,
    Ping,
    Pong,
    PtyRequest,
    Run,
    Stderr,
    Stdin,
    StdinEnd,
    Stdout,
    WindowChange,
    decode_message,
    encode_message,
)
from rcmd.process import PIPE_SIZE
from rcmd.server import BackgroundServer
from rcmd.server.command import OUTPUT_CUT_NOTE, STDIN_BACKLOG

# ------------------------------------------------------------------------ the handshake


def test_the_servers_hello(start, peers, tmp_path):
    server = start(idle_timeout=600, max_frame_size=65536)
    hello = peers(server, hello=False).hello
    assert hello == Hello(
        software=f"rcmd {__version__}",
        encoding="utf-8",
        cwd=str(tmp_path),
        extensions=("pty", "ping", "files", "complete"),
        idle_timeout=600,
        max_frame_size=65536,
    )


def test_a_servers_hello_asks_for_the_scheme_it_uses(start, peers, tmp_path):
    hello = peers(start(secret=b"s" * 32), hello=False).hello
    assert isinstance(hello, Hello)
    assert hello.auth == "hmac-sha256"
    assert re.fullmatch("[0-9a-f]{64}", hello.nonce or "")
    other = peers(start(secret=b"s" * 32), hello=False).hello
    assert isinstance(other, Hello)
    assert other.nonce != hello.nonce
    from rcmd.server.accounts import load_users

    users = tmp_path / "users.toml"
    users.write_text("")
    users.chmod(0o600)
    scram = peers(start(users=load_users(users)), hello=False).hello
    assert isinstance(scram, Hello)
    assert (scram.auth, len(scram.nonce or "")) == ("scram-sha-256", 64)


def test_no_handshake_in_time_is_told_and_closed(start, peers, server_log):
    peer = peers(start(handshake_timeout=0.2), hello=False)
    assert peer.rest() == [Error("no handshake within 0.2s")]
    server_log.wait_for(r"127\.0\.0\.1:\d+: no handshake within 0\.2s, closing")


def test_an_idle_connection_is_told_and_closed_after_a_command_too(start, peers, server_log):
    server = start(idle_timeout=0.25)
    peer = peers(server)
    out, _, exit = peer.run(Run("echo x"))
    assert (out, exit.returncode) == (b"x\n", 0)
    assert peer.rest() == [Error("idle for 0.25s")]
    server_log.wait_for(r": idle for 0\.25s, closing$")


def test_an_idle_connection_is_told_and_closed_after_its_handshake_and_a_ping(start, peers, server_log):
    server = start(idle_timeout=0.25)
    peer = peers(server)
    peer.send(Ping())
    assert peer.receive() == Pong()  # each message starts the idle time again
    assert peer.rest() == [Error("idle for 0.25s")]
    server_log.wait_for(rf"^127\.0\.0\.1:{peer.sock.getsockname()[1]}: ping$")


def test_pings_keep_a_connection_past_its_idle_timeout_which_counts_from_the_last(start, peers):
    """The timer set at the first message fires before the deadline the later ones moved:
    it is set again for what is left, and the connection is closed only once idle for that
    long after the last message."""
    peer = peers(start(idle_timeout=0.5))
    first = time.monotonic()
    for _ in range(5):  # 1 s of PINGs, 0.2 s apart: twice the idle timeout in all
        peer.send(Ping())
        assert peer.receive() == Pong()
        last = time.monotonic()
        time.sleep(0.2)  # the pattern under test, not a wait for an event
    assert peer.rest() == [Error("idle for 0.5s")]
    assert time.monotonic() - last >= 0.5
    assert last - first >= 0.8


def test_a_client_between_its_hello_and_its_proof_is_still_in_its_handshake(start, peers, tmp_path):
    """Not idle yet (SCRAM takes two steps): the handshake's deadline goes on, the idle one
    (600 s) is not armed in its place."""
    from rcmd.auth import NONCE_SIZE
    from rcmd.messages import AuthChallenge
    from rcmd.server.accounts import load_users

    users = tmp_path / "users.toml"
    users.write_text("")
    users.chmod(0o600)
    server = start(users=load_users(users), handshake_timeout=0.3, idle_timeout=600)
    peer = peers(server, hello=False)
    peer.send(Hello(auth="scram-sha-256", nonce="00" * NONCE_SIZE, user="nobody"))
    assert isinstance(peer.receive(), AuthChallenge)  # a decoy's: no such user
    assert peer.rest() == [Error("no handshake within 0.3s")]


def test_no_deadline_with_no_idle_timeout(start, peers):
    server = start(idle_timeout=None, handshake_timeout=None)
    peer = peers(server)
    peer.send(Ping())
    assert peer.receive() == Pong()


def test_a_frame_too_large_from_a_client_says_what_to_do(start, peers, server_log):
    peer = peers(start(max_frame_size=1000))
    peer.sock.sendall(frame_header(1001))
    reason = (
        "frame of 1001 bytes exceeds the maximum of 1000 bytes "
        "(the max_frame_size of this server's HELLO: a command line this long is refused; "
        "send large data as stdin, in frames within it)"
    )
    assert peer.rest() == [Error(reason)]
    server_log.wait_for(r": protocol error: frame of 1001 bytes")
    at_the_edge = peers(start(max_frame_size=1000))
    command = "echo " + "y" * (1000 - 1 - len(b'{"command":"echo ","env":{},"stdin":false}'))
    assert len(encode_message(Run(command))) == 1000
    out, _, exit = at_the_edge.run(Run(command))
    assert (len(out), exit.returncode) == (len(command) - 5 + 1, 0)


def test_a_tls_client_of_a_plaintext_server_is_told(start, peers):
    peer = peers(start(), hello=False)
    peer.sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    assert peer.rest() == [
        Error("this server does not use TLS (it got a TLS handshake): connect without --tls")
    ]


def test_protocol_errors_are_told_word_for_word(start, peers, server_log):
    server = start()
    first = peers(server, hello=False)
    first.send(Ping())
    assert first.rest() == [Error("expected HELLO first, got PING (is the peer an rcmd client?)")]
    second = peers(server)
    second.send(Stdout(b"x"))
    assert second.rest() == [Error("a client may not send STDOUT")]
    server_log.wait_for(r"127\.0\.0\.1:\d+: protocol error: a client may not send STDOUT$")


def test_a_client_error_ends_the_connection_without_a_reply(start, peers, server_log):
    peer = peers(start())
    peer.send(Error("bye"))
    assert peer.rest() == []
    server_log.wait_for(r"127\.0\.0\.1:\d+ reported an error: bye$")


def test_a_hang_up_between_messages_is_a_plain_end(start, peers, server_log):
    peer = peers(start())
    peer.sock.shutdown(socket.SHUT_WR)
    assert peer.rest() == []
    server_log.wait_for(r"127\.0\.0\.1:\d+ disconnected")
    assert not server_log.has("protocol error")


def test_ping_is_answered(start, peers, server_log):
    peer = peers(start())
    peer.send(Ping())
    assert peer.receive() == Pong()
    server_log.wait_for(r": ping$")


# ------------------------------------------------------------------- authentication


def test_the_right_secret_gets_in_and_a_wrong_one_is_refused(start, server_log):
    from rcmd import AuthenticationError, connect

    server = start(secret=b"k" * 32)
    with connect(*server.address, secret=b"k" * 32) as client:
        assert client.run("echo in").stdout == b"in\n"
    server_log.wait_for(r"^127\.0\.0\.1:\d+: authenticated$")
    with pytest.raises(AuthenticationError, match=r"refused us: authentication failed \(wrong secret\?\)$"):
        connect(*server.address, secret=b"x" * 32)
    server_log.wait_for(r"^127\.0\.0\.1:\d+: authentication failed \(answering in \d+\.\d\ds\)$")


def test_a_hello_without_a_proof_fails_authentication(start, peers):
    peer = peers(start(secret=b"k" * 32))
    assert peer.rest() == [Error("authentication failed")]


def test_a_scram_proof_to_a_server_without_accounts_is_a_protocol_error(start, peers):
    from rcmd.messages import AuthProof

    peer = peers(start())
    peer.send(AuthProof("00" * 32))
    assert peer.rest() == [Error("AUTH_PROOF is not allowed while idle")]


# ------------------------------------------------------------------------------ commands


def test_output_error_output_and_status(start, peers, tmp_path, server_log):
    peer = peers(start())
    out, err, exit = peer.run(Run("echo out; echo err >&2; exit 3"))
    assert (out, err, exit) == (b"out\n", b"err\n", Exit(3, cwd=str(tmp_path)))
    server_log.wait_for(r": run 'echo out; echo err >&2; exit 3'$")
    server_log.wait_for(r": exit 3: 'echo out; echo err >&2; exit 3'$")


def test_a_command_killed_by_a_signal(start, peers, tmp_path):
    peer = peers(start())
    assert peer.run(Run("kill -9 $$"))[2] == Exit(-9, signal=9, cwd=str(tmp_path))


def test_cwd_and_env_of_one_command(start, peers, tmp_path):
    (tmp_path / "sub").mkdir()
    peer = peers(start())
    out, _, _ = peer.run(Run('pwd; echo "$RCMD_T"', cwd="sub", env={"RCMD_T": "v"}))
    assert out == f"{tmp_path / 'sub'}\n\n".encode().replace(b"\n\n", b"\nv\n")
    out, _, _ = peer.run(Run('echo "${HOME:+home}"'))  # no env: the server's own, whole
    assert out == b"home\n"


def test_a_long_command_line_is_logged_cut_short(start, peers, server_log):
    peer = peers(start())
    command = "true " + "x" * 600
    peer.run(Run(command))
    match = server_log.wait_for(r": run '(true x+)\.\.\. \((\d+) characters\)'$")
    assert (len(match.group(1)), match.group(2)) == (500, "605")
    exact = "true " + "y" * 495
    peer.run(Run(exact))
    server_log.wait_for(rf": run '{exact}'$")


def test_a_command_that_cannot_start_gets_127(start, peers, tmp_path, server_log):
    peer = peers(start())
    out, err, exit = peer.run(Run("true", cwd="missing"))
    assert (out, exit) == (b"", Exit(127, cwd=str(tmp_path)))
    assert err == f"rcmd: cannot run command in {tmp_path / 'missing'}: No such file or directory\n".encode()
    assert peer.run(Run("echo again"))[0] == b"again\n"  # the slot was given back
    bad_shell = peers(start(shell=str(tmp_path / "no-shell"), max_commands=1))
    _, err, exit = bad_shell.run(Run("true"))
    assert err == f"rcmd: cannot run the shell {tmp_path / 'no-shell'}: No such file or directory\n".encode()
    assert exit == Exit(127, cwd=str(tmp_path))
    _, err, _ = bad_shell.run(Run("true"))  # one slot, given back each time
    assert err.startswith(b"rcmd: cannot run the shell")


def test_refused_runs_say_why_and_the_connection_goes_on(start, peers, tmp_path, server_log):
    peer = peers(start())
    peer.send_payload(bytes((MessageType.RUN,)) + b'{"command":"echo a\\u0000b"}')
    out, err, exit = split(peer.reply())
    assert (out, err, exit) == (
        b"",
        b"rcmd: refused: NUL character in 'command'\n",
        Exit(REFUSED, cwd=str(tmp_path)),
    )
    server_log.wait_for(r"^127\.0\.0\.1:\d+: refused: NUL character in 'command'$")
    assert peer.run(Run("echo ok"))[0] == b"ok\n"


def test_the_refusal_is_in_the_servers_encoding(start, peers):
    peer = peers(start(encoding="gbk"))
    peer.send_payload(bytes((MessageType.RUN,)) + '{"command":"\\u0000","env":{"中":"\\ud800"}}'.encode())
    _, err, exit = split(peer.reply())
    assert (err, exit.returncode) == ("rcmd: refused: NUL character in 'command'\n".encode("gbk"), REFUSED)
    peer.send_payload(bytes((MessageType.RUN,)) + '{"command":"x","env":{"中=":"1"}}'.encode())
    _, err, _ = split(peer.reply())
    assert err == "rcmd: refused: '=' in env name '中='\n".encode("gbk")
    peer.send_payload(bytes((MessageType.RUN,)) + '{"command":"x","env":{"\u263a=":"1"}}'.encode())
    _, err, _ = split(peer.reply())  # what gbk has no character for comes as "?"
    assert err == b"rcmd: refused: '=' in env name '?='\n"
    assert peer.run(Run("cd \u263a"))[1] == b"cd: ?: No such file or directory\n"


# ------------------------------------------------------------------------------------ cd


def test_cd_changes_the_connections_directory_and_back(start, peers, tmp_path, server_log):
    (tmp_path / "sub").mkdir()
    peer = peers(start())
    assert peer.run(Run("cd sub")) == (b"", b"", Exit(0, cwd=str(tmp_path / "sub")))
    server_log.wait_for(rf"^127\.0\.0\.1:\d+: cd {re.escape(str(tmp_path / 'sub'))}$")
    assert peer.run(Run("pwd"))[0] == f"{tmp_path / 'sub'}\n".encode()
    assert peer.run(Run("cd -")) == (f"{tmp_path}\n".encode(), b"", Exit(0, cwd=str(tmp_path)))
    assert peer.run(Run("cd -"))[2] == Exit(0, cwd=str(tmp_path / "sub"))


def test_a_cd_that_fails_says_why_as_the_shell_does(start, peers, tmp_path, monkeypatch):
    peer = peers(start(encoding="gbk"))
    assert peer.run(Run("cd nope")) == (
        b"",
        b"cd: nope: No such file or directory\n",
        Exit(1, cwd=str(tmp_path)),
    )
    assert peer.run(Run("cd -")) == (b"", b"cd: -: OLDPWD not set\n", Exit(1, cwd=str(tmp_path)))
    monkeypatch.setenv("HOME", str(tmp_path / "gone"))
    assert peer.run(Run("cd")) == (b"", b"cd: ~: No such file or directory\n", Exit(1, cwd=str(tmp_path)))
    assert peer.run(Run("cd 中"))[1] == "cd: 中: No such file or directory\n".encode("gbk")


# ------------------------------------------------------- stdin, cancel, timeout, signals


def test_stdin_goes_to_the_command_in_order(start, peers):
    peer = peers(start())
    peer.send(Run("cat", stdin=True))
    for part in (b"one ", b"two ", b"three"):
        peer.send(Stdin(part))
    peer.send(StdinEnd())
    assert split(peer.reply())[0] == b"one two three"


def test_large_stdin_and_output_together(start, peers, caplog):
    peer = peers(start())
    data = os.urandom(3 * 1024 * 1024 + 17)
    peer.send(Run("cat", stdin=True))
    for offset in range(0, len(data), 200_000):
        peer.send(Stdin(data[offset : offset + 200_000]))
    peer.send(StdinEnd())
    out, err, exit = split(peer.reply())
    assert (out == data, err, exit.returncode) == (True, b"", 0)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []  # none in its loop


def test_input_to_a_command_that_stopped_reading_goes_nowhere(start, peers):
    peer = peers(start())
    peer.send(Run("head -c 3; echo; exec 0<&-; sleep 0.2; echo done", stdin=True))
    peer.send(Stdin(b"abc"))
    for _ in range(20):
        peer.send(Stdin(bytes(128 * 1024)))
    peer.send(StdinEnd())
    out, _, exit = split(peer.reply())
    assert (out, exit.returncode) == (b"abc\ndone\n", 0)
    assert peer.run(Run("echo next"))[0] == b"next\n"


#: Keeps the command's stdin open after its shell is killed, until the server ends the command:
#: its death alone breaks no pipe, so the server's read of the client resumes with the EXIT.
HOLD_STDIN = "exec 3<&0; sleep 60 <&3 >/dev/null 2>&1 &"


def go(fifo: Path) -> None:
    """Open *fifo* for writing and close it, once a reader has opened it (checked, not slept)."""
    for _ in range(int(WAIT * 1000)):
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            return
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        threading.Event().wait(0.001)
    raise AssertionError(f"nobody opened {fifo}")


def test_unread_stdin_is_read_ahead_to_the_byte_then_the_client_waits(start, peers, tmp_path):
    """Input the command does not read: the server takes STDIN_BACKLOG and one frame limit of
    it, to the byte, then reads that client no more (a PING waits) until the command ends."""
    frame_limit = 512 * 1024
    peer = peers(start(max_frame_size=frame_limit))
    peer.send(Run(f"{HOLD_STDIN} echo $$; exec sleep 60", stdin=True))
    message = peer.receive()
    assert isinstance(message, Stdout)
    pid = int(message.data)
    chunk = 256 * 1024  # more than the pipe holds: the first is never written whole, none leaves the queue
    for _ in range((STDIN_BACKLOG + frame_limit) // chunk):
        peer.send(Stdin(bytes(chunk)))
    peer.send(Stdin(b""))  # counts for nothing
    peer.send(Ping())
    assert peer.receive() == Pong()  # all of it taken: not past the limit
    peer.send(Stdin(b"x"))  # one byte past it
    peer.send(Ping())
    os.kill(pid, signal.SIGKILL)
    assert peer.receive() == Exit(-9, signal=9, cwd=str(tmp_path))
    assert peer.receive() == Pong()  # read only once the command had ended


def test_a_client_gone_while_its_stdin_waits_for_room_kills_the_command(start, peers, server_log):
    """Nobody reads a client whose input waits for the command to make room: its hang-up must
    still be seen, or the command runs on for nobody (and holds its slot) until it ends."""
    peer = peers(start(max_frame_size=512 * 1024))
    peer.send(Run("echo up; exec sleep 60", stdin=True))
    assert peer.receive() == Stdout(b"up\n")
    chunk = 256 * 1024
    for _ in range((STDIN_BACKLOG + 512 * 1024) // chunk + 1):  # past the read-ahead: the server waits
        peer.send(Stdin(bytes(chunk)))
    peer.close()
    server_log.wait_for(r": client gone, killing its command$")
    server_log.wait_for(r": exit -9: 'echo up; exec sleep 60'$")


def test_input_the_command_reads_makes_room_to_the_byte(start, peers, tmp_path):
    """The queue shrinks by what the command takes: back at STDIN_BACKLOG exactly, the client is
    read again; past the limit again, it waits again until the command ends."""
    chunk = 64 * 1024
    in_pipe = PIPE_SIZE // chunk  # what the stdin pipe holds: 16 chunks
    frame_limit = 2 * chunk + 64  # the server waits once 19 chunks are queued (16 + 2 + 64 bytes)
    os.mkfifo(tmp_path / "go")
    peer = peers(start(max_frame_size=frame_limit))
    command = f"cat go >/dev/null; head -c {3 * chunk} >/dev/null; {HOLD_STDIN} echo $$; exec sleep 60"
    peer.send(Run(command, stdin=True))
    for _ in range(in_pipe + 19):  # the pipe takes the first 16: 19 queued, and the server waits
        peer.send(Stdin(bytes(chunk)))
    peer.send(Ping())
    go(
        tmp_path / "go"
    )  # the command reads 3 chunks and stops, the pipe takes 3 more: 16 queued, STDIN_BACKLOG
    messages = []
    while Pong() not in messages:
        message = peer.receive()
        assert message is not None, messages
        messages.append(message)
    for _ in range(3):  # 19 queued again
        peer.send(Stdin(bytes(chunk)))
    peer.send(Ping())
    while not any(isinstance(m, Stdout) for m in messages):
        messages.append(peer.receive())  # type: ignore[arg-type]
    os.kill(int(b"".join(m.data for m in messages if isinstance(m, Stdout))), signal.SIGKILL)
    assert peer.receive() == Exit(-9, signal=9, cwd=str(tmp_path))
    assert peer.receive() == Pong()


def test_a_server_without_a_stdin_forwards_output_on_descriptor_0(start, peers):
    """A daemon may run with descriptor 0 closed: a command's first pipe then gets it."""
    peer = peers(start())
    saved = os.dup(0)
    os.close(0)
    try:
        out, err, exit = peer.run(Run("echo out; echo err >&2"))
    finally:
        os.dup2(saved, 0)
        os.close(saved)
    assert (out, err, exit.returncode) == (b"out\n", b"err\n", 0)


def test_stdin_with_no_command_or_after_it_ended_goes_nowhere(start, peers):
    peer = peers(start())
    assert peer.run(Run("true", stdin=True))[2].returncode == 0
    out, _, exit = peer.run(Run("cat"))  # stdin=false: the command reads /dev/null
    assert (out, exit.returncode) == (b"", 0)


def test_cancel_ends_the_command(start, peers, tmp_path, server_log):
    peer = peers(start())
    peer.send(Run("echo started; exec sleep 60"))
    assert peer.receive() == Stdout(b"started\n")
    peer.send(Cancel())
    assert peer.reply() == [Exit(-15, signal=15, cancelled=True, cwd=str(tmp_path))]
    server_log.wait_for(r": cancel$")


def test_a_command_that_ignores_sigterm_is_killed_after_the_grace(start, peers, tmp_path, server_log):
    peer = peers(start())
    peer.send(Run("trap '' TERM; echo trapped; sleep 60 & wait; wait"))
    assert peer.receive() == Stdout(b"trapped\n")
    peer.send(Cancel())
    assert peer.reply() == [Exit(-9, signal=9, cancelled=True, cwd=str(tmp_path))]
    # Killed by the escalation after TERM_GRACE, not by the last resort after KILL_WAIT more.
    assert not server_log.has("outlived SIGKILL")


def test_a_cancel_kills_what_left_the_group_at_once_and_says_how_many(start, peers, tmp_path, server_log):
    peer = peers(start())
    peer.send(Run("setsid sh -c 'echo $$; exec sleep 60' & exec sleep 60"))
    message = peer.receive()
    assert isinstance(message, Stdout)
    escaped = Path(f"/proc/{int(message.data)}/cmdline")
    for _ in range(100_000):  # until it has exec'd (mid-exec, its environment reads empty): checked
        if escaped.read_bytes().startswith(b"sleep\0"):
            break
        threading.Event().wait(0.001)
    peer.send(Cancel())
    assert peer.reply() == [Exit(-15, signal=15, cancelled=True, cwd=str(tmp_path))]
    server_log.wait_for(r"^command \d+: 1 process\(es\) found by its cookie, killed$")
    # A cancelled command's leftovers go as soon as its shell has: no LINGER for them.
    assert not server_log.has("left running")


def test_a_failed_search_for_a_commands_processes_is_logged_and_it_still_ends(
    start, peers, tmp_path, server_log, monkeypatch
):
    from rcmd import process

    real = process.kill_marked

    def no_proc(prefix: bytes, *args, **kwargs):  # type: ignore[no-untyped-def]
        if args and isinstance(getattr(args[0], "__self__", None), bytes):  # kill_tree's: one cookie
            raise OSError("no /proc here")
        return real(prefix, *args, **kwargs)

    peer = peers(start())
    peer.send(Run("echo up; exec sleep 60"))
    assert peer.receive() == Stdout(b"up\n")
    monkeypatch.setattr(process, "kill_marked", no_proc)
    peer.send(Cancel())
    assert peer.reply() == [Exit(-15, signal=15, cancelled=True, cwd=str(tmp_path))]
    server_log.wait_for(r"^command \d+: the search for its processes failed: OSError\('no /proc here'\)$")


def test_a_cancel_after_the_shell_exited_kills_what_it_left(start, peers, tmp_path):
    peer = peers(start())
    peer.send(Run("sleep 60 & echo $$"))
    message = peer.receive()
    assert isinstance(message, Stdout)
    shell = Path(f"/proc/{int(message.data)}")
    for _ in range(100_000):  # until the server has reaped the shell (checked, not slept)
        if not shell.exists():
            break
        threading.Event().wait(0.001)
    peer.send(Cancel())
    exit = peer.reply()[-1]
    assert exit == Exit(0, cancelled=True, cwd=str(tmp_path))


def test_timeout_of_a_run_and_of_the_server(start, peers, tmp_path, server_log):
    peer = peers(start(command_timeout=0.3))
    assert peer.run(Run("exec sleep 60"))[2] == Exit(-15, signal=15, timed_out=True, cwd=str(tmp_path))
    server_log.wait_for(r": timed out after 0\.3s: 'exec sleep 60'$")
    assert peer.run(Run("exec sleep 60", timeout=0.2))[2].timed_out
    server_log.wait_for(r": timed out after 0\.2s: 'exec sleep 60'$")
    assert peer.run(Run("echo quick", timeout=30)) == (b"quick\n", b"", Exit(0, cwd=str(tmp_path)))


def test_stdin_the_command_does_not_read_waits_for_it_to_end(start, peers, tmp_path):
    """More stdin than the pipe and STDIN_BACKLOG hold: the server stops reading the client
    until the command ends (here its timeout)."""
    peer = peers(start())
    peer.send(Run("exec sleep 60", stdin=True, timeout=0.5))
    chunk = bytes(256 * 1024)
    for _ in range((STDIN_BACKLOG + 4 * 1024 * 1024) // len(chunk)):
        peer.send(Stdin(chunk))
    assert peer.reply()[-1] == Exit(-15, signal=15, timed_out=True, cwd=str(tmp_path))
    assert peer.run(Run("echo after"))[0] == b"after\n"


def test_a_client_gone_mid_command_kills_it(start, peers, server_log):
    peer = peers(start())
    peer.send(Run("echo up; exec sleep 60"))
    assert peer.receive() == Stdout(b"up\n")
    peer.close()
    server_log.wait_for(r": client gone, killing its command$")
    server_log.wait_for(r": exit -9: 'echo up; exec sleep 60'$")


def test_output_held_open_on_one_pipe_is_waited_for_as_on_both(start, peers, tmp_path, server_log):
    """The output is over when both pipes are: stdout closed first, stderr still held."""
    peer = peers(start())
    out, err, exit = peer.run(Run("exec 1>&-; echo err >&2; sleep 60 &"))
    assert (out, err, exit) == (b"", b"err\n", Exit(0, cwd=str(tmp_path)))
    server_log.wait_for(r": killing what 'exec 1>&-; echo err >&2; sleep 60 &' left running$")


def test_leftover_output_holders_are_killed_after_the_linger(start, peers, tmp_path, server_log):
    peer = peers(start())
    out, _, exit = peer.run(Run("echo a; sleep 60 &"))
    assert (out, exit) == (b"a\n", Exit(0, cwd=str(tmp_path)))
    server_log.wait_for(r": killing what 'echo a; sleep 60 &' left running$")


def test_output_held_out_of_reach_is_cut(start, peers, tmp_path, server_log):
    peer = peers(start())
    peer.send(Run("setsid env -i sh -c 'echo unreachable $$; exec sleep 60' &"))
    messages = peer.reply()
    pid = int(split(messages)[0].split()[1])
    try:
        assert messages[-2:] == [Stderr(OUTPUT_CUT_NOTE), Exit(0, cwd=str(tmp_path))]
        server_log.wait_for(r"output of .* cut: held open by processes not found$")
    finally:
        os.kill(pid, signal.SIGKILL)


def test_the_shutdown_of_the_server_tells_every_client(tmp_path, server_log):
    server = BackgroundServer(encoding="utf-8", cwd=str(tmp_path)).start()
    try:
        busy = Peer(server.address)
        idle = Peer(server.address)
        busy.send(Run("echo on; exec sleep 60"))
        assert busy.receive() == Stdout(b"on\n")
    finally:
        stop(server)
    assert busy.rest() == [
        Exit(-15, signal=15, cancelled=True, cwd=str(tmp_path)),
        Error("the server is shutting down"),
    ]
    assert idle.rest() == [Error("the server is shutting down")]
    busy.close()
    idle.close()


# ------------------------------------------------------------------------- a terminal


def test_a_pty_command_is_resized_and_has_one_stream(start, peers):
    peer = peers(start())
    peer.send(Run("stty size; read line; stty size", stdin=True, pty=PtyRequest("xterm", 24, 80)))
    seen = b""
    while b"24 80" not in seen:
        message = peer.receive()
        assert isinstance(message, Stdout), message
        seen += message.data
    peer.send(WindowChange(50, 132))
    peer.send(Stdin(b"x\n"))
    out, err, exit = split(peer.reply())
    assert b"50 132" in out
    assert (err, exit.returncode) == (b"", 0)


def test_window_change_without_a_terminal_is_ignored(start, peers):
    peer = peers(start())
    peer.send(Run("cat", stdin=True))
    peer.send(WindowChange(10, 10))
    peer.send(Stdin(b"still\n"))
    peer.send(StdinEnd())
    assert split(peer.reply())[:2] == (b"still\n", b"")


# ------------------------------------------------------------------------ many clients


def test_a_shutdown_ends_the_wait_for_a_command_slot(tmp_path, server_log):
    server = BackgroundServer(encoding="utf-8", cwd=str(tmp_path), max_commands=1).start()
    try:
        first, second = Peer(server.address), Peer(server.address)
        first.send(Run("cat", stdin=True))
        first.send(Stdin(b"1"))
        assert first.receive() == Stdout(b"1")
        second.send(Run("echo waited"))
        server_log.wait_for(r": run 'echo waited'$")
    finally:
        stop(server)
    assert second.rest() == [Error("the server is shutting down")]  # its command never ran
    cancelled = Exit(-15, signal=15, cancelled=True, cwd=str(tmp_path))
    assert first.rest() == [cancelled, Error("the server is shutting down")]
    first.close()
    second.close()


def test_max_commands_the_next_command_runs_once_a_slot_is_free(start, peers):
    server = start(max_commands=1)
    first, second = peers(server), peers(server)
    first.send(Run("cat", stdin=True))
    first.send(Stdin(b"a"))
    assert first.receive() == Stdout(b"a")
    second.send(Run("echo b"))
    first.send(StdinEnd())
    assert first.reply() == [Exit(0, cwd=first.hello.cwd)]
    assert split(second.reply())[0] == b"b\n"


def test_a_client_gone_while_its_command_waits_for_a_slot_never_runs_it(start, peers, tmp_path, server_log):
    """Nobody reads a client whose RUN waits for a --max-commands slot: its hang-up must still
    be seen, or the command runs for nobody once a slot frees (and holds it meanwhile)."""
    server = start(max_commands=1)
    first, second, third = peers(server), peers(server), peers(server)
    first.send(Run("cat", stdin=True))
    first.send(Stdin(b"a"))
    assert first.receive() == Stdout(b"a")
    second.send(Run("touch ran-for-nobody"))
    server_log.wait_for(r": run 'touch ran-for-nobody'$")
    second.close()
    server_log.wait_for(r"client gone while its command waited for a slot: not run$")
    first.send(StdinEnd())
    assert first.reply() == [Exit(0, cwd=first.hello.cwd)]
    # The slot is free again: the semaphore serves waiters in order, so the gone client's
    # command would have run, and ended, before this one.
    assert third.run(Run("echo next"))[0] == b"next\n"
    assert not (tmp_path / "ran-for-nobody").exists()


def test_a_full_server_refuses_when_every_connection_runs_a_command(start, peers, server_log):
    server = start(max_connections=2)
    busy = [peers(server), peers(server)]
    for peer in busy:
        peer.send(Run("echo go; exec sleep 60"))
        assert peer.receive() == Stdout(b"go\n")
    refused = socket.create_connection(server.address, timeout=WAIT)
    try:
        framer = LengthPrefixFramer()
        while (data := refused.recv(65536)) or True:
            framer.receive_data(data)
            if not data:
                break
        frames = []
        while isinstance(frame := framer.next_frame(), bytes):
            frames.append(decode_message(frame))
        assert frames == [Error("too many connections: the server takes 2 at once")]
    finally:
        refused.close()
    server_log.wait_for(r"refused: 2 connections, each running a command \(--max-connections\)$")
    for peer in busy:
        peer.send(Cancel())
        assert peer.reply()[-1].cancelled


def test_a_full_server_closes_the_oldest_handshake_then_the_longest_idle(start, peers, server_log):
    server = start(max_connections=3, max_startups=3)
    idle_old, idle_new = peers(server), peers(server)
    idle_old.send(Ping())
    assert idle_old.receive() == Pong()
    idle_new.send(Ping())
    assert idle_new.receive() == Pong()
    silent = peers(server, hello=False)
    peers(server, hello=False)  # the fourth: the silent one in its handshake goes
    assert silent.rest() == [Error("server full: closing a connection that has not finished its handshake")]
    server_log.wait_for(r"closed to make room: server full: closing a connection that has not finished")
    newest = peers(server)  # the server is full of handshaking and idle ones again
    newest.send(Ping())
    assert newest.receive() == Pong()


def test_a_full_server_of_idle_connections_closes_the_quietest(start, peers, server_log):
    server = start(max_connections=2)
    old, new = peers(server), peers(server)
    for peer in (old, new):
        peer.send(Ping())
        assert peer.receive() == Pong()
    old.send(Ping())  # old is now the one heard from last
    assert old.receive() == Pong()
    third = peers(server)
    assert new.rest() == [Error("server full: closing idle connection")]
    port = new.sock.getsockname()[1]
    server_log.wait_for(rf"^127\.0\.0\.1:{port} closed to make room: server full: closing idle connection$")
    server_log.wait_for(rf"^127\.0\.0\.1:{port} disconnected$")
    third.send(Ping())  # now old is the quietest, and the server is full again
    assert third.receive() == Pong()
    fourth = peers(server)
    assert old.rest() == [Error("server full: closing idle connection")]
    fourth.send(Ping())
    assert fourth.receive() == Pong()


def test_past_max_startups_the_oldest_handshake_goes_first(start, peers):
    server = start(max_startups=2)
    first = peers(server, hello=False)
    second = peers(server, hello=False)
    peers(server, hello=False)
    assert first.rest() == [Error("server full: closing a connection that has not finished its handshake")]
    second.send(Hello())
    second.send(Ping())
    assert second.receive() == Pong()


def test_the_server_logs_where_it_listens(start, server_log):
    server = start()
    host, port = server.address
    server_log.wait_for(rf"^listening on 127\.0\.0\.1:{port} \(framing prefixed\)$")
    assert host == "127.0.0.1"


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_an_ipv6_address_is_logged_in_brackets(start, server_log):
    try:
        server = start(host="::1")
    except OSError:
        pytest.skip("::1 cannot be bound here")
    server_log.wait_for(rf"^listening on \[::1\]:{server.address[1]} \(framing prefixed\)$")


# ------------------------------------------------------------------------------------ TLS


def until_closed(sock: socket.socket) -> list[Message]:
    """Every message *sock* gets until the server closes it."""
    framer, messages = LengthPrefixFramer(), []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        framer.receive_data(chunk)
        while isinstance(frame := framer.next_frame(), bytes):
            messages.append(decode_message(frame))
        if not chunk:
            return messages


def test_tls_round_trip(start, certs, server_log):
    from rcmd import connect

    server = start(tls_cert=str(certs / "server.pem"))
    with connect(*server.address, tls_ca=str(certs / "ca.pem")) as client:
        assert client.run("echo secure").stdout == b"secure\n"
    server_log.wait_for(r"^127\.0\.0\.1:\d+ disconnected$")


def test_a_plaintext_client_of_a_tls_server_is_told_to_use_tls(start, certs, server_log):
    from rcmd.server.listener import PLAINTEXT_TO_TLS

    server = start(tls_cert=str(certs / "server.pem"))
    with socket.create_connection(server.address, timeout=WAIT) as sock:
        assert until_closed(sock) == [Error(PLAINTEXT_TO_TLS)]
    server_log.wait_for(r"^127\.0\.0\.1:\d+: not a TLS client, told to use --tls$")
    assert (
        PLAINTEXT_TO_TLS
        == "this server requires TLS: connect with --tls (and --tls-ca FILE for a private CA)"
    )


def test_a_failed_tls_handshake_is_one_line(start, certs, server_log):
    server = start(tls_cert=str(certs / "server.pem"))
    with socket.create_connection(server.address, timeout=WAIT) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x05hello")
        assert until_closed(sock) == []
    server_log.wait_for(r"^127\.0\.0\.1:\d+: TLS handshake failed: ")
    assert not server_log.has("TLS connection failed")


def test_a_full_tls_server_refuses_without_a_plaintext_reason(start, certs):
    # (Closing a connection in its TLS handshake to make room is not tested here: on Python
    # 3.11, asyncio.wait_for() can swallow the cancel when the first byte arrives at that
    # moment, and the connection then stays; a known CPython bug, fixed in 3.12.)
    busy = start(tls_cert=str(certs / "server.pem"), max_connections=1)
    from rcmd import connect

    with connect(*busy.address, tls_ca=str(certs / "ca.pem")) as client:
        with client.stream("echo go; exec sleep 60") as stream:
            next(iter(stream))
            with socket.create_connection(busy.address, timeout=WAIT) as refused:
                assert refused.recv(100) == b""  # a TLS client would not read a plaintext reason


# ------------------------------------------------------------- the listener on its own loop


def test_loop_exceptions_an_oserror_outside_a_task_is_one_line(caplog):
    import asyncio

    from rcmd.server import Server

    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen: list[dict] = []
        loop.set_exception_handler(lambda loop, context: seen.append(context))
        server = Server(port=0)
        await server.start()
        try:
            error = OSError(24, "Too many open files")
            server._loop_exception(loop, {"message": "accept failed", "exception": error})
            assert seen == []
            in_a_task = {"message": "m", "exception": error, "task": None}
            server._loop_exception(loop, in_a_task)
            in_a_future = {"message": "m", "exception": error, "future": None}
            server._loop_exception(loop, in_a_future)
            not_oserror = {"message": "m", "exception": ValueError("v")}
            server._loop_exception(loop, not_oserror)
            server._loop_exception(loop, {"exception": ConnectionResetError(104, "reset")})
            assert seen == [in_a_task, in_a_future, not_oserror]
        finally:
            await server.close()
        assert loop.get_exception_handler() is not None  # the one before, given back
        loop.set_exception_handler(None)
        bare = Server(port=0)
        await bare.start()
        try:
            with caplog.at_level("ERROR", "asyncio"):
                bare._loop_exception(loop, {"message": "to the default", "exception": ValueError("v")})
            assert "to the default" in caplog.text
        finally:
            await bare.close()
        assert loop.get_exception_handler() is None

    caplog.set_level("WARNING", "rcmd.server")
    asyncio.run(main())
    assert caplog.messages[0] == "accept failed: [Errno 24] Too many open files"
    assert "network error: [Errno 104] reset" in caplog.messages


def test_peek_first_byte_leaves_it_to_be_read():
    import asyncio

    from rcmd.server.listener import _peek_first_byte

    async def main() -> None:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            assert await _peek_first_byte(ours, 0.05) is None  # nothing in time
            theirs.sendall(b"\x16rest")
            assert await _peek_first_byte(ours, WAIT) == 0x16
            assert await _peek_first_byte(ours, WAIT) == 0x16  # still there
            assert ours.recv(10) == b"\x16rest"
            theirs.close()
            assert await _peek_first_byte(ours, WAIT) is None  # EOF

    asyncio.run(main())


def test_a_server_address_before_start_and_serve_forever_until_close():
    import asyncio

    from rcmd.server import Server

    with pytest.raises(AssertionError, match=r"^start\(\) first$"):
        _ = Server(port=0).address

    async def main() -> None:
        async with Server(port=0) as server:
            serving = asyncio.ensure_future(server.serve_forever())
            await asyncio.sleep(0)
            assert not serving.done()
            await server.close()
            await asyncio.wait_for(serving, WAIT)

    asyncio.run(main())


def test_localhost_is_every_loopback_address_on_one_port():
    import asyncio

    from rcmd.server import Server

    async def main() -> None:
        async with Server(host="localhost", port=0) as server:
            listening = server._server
            assert listening is not None
            names = [s.getsockname()[:2] for s in listening.sockets]
            infos = socket.getaddrinfo("localhost", 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            assert len(names) == len({(info[0], info[4][0]) for info in infos})
            assert len({port for _, port in names}) == 1

    asyncio.run(main())


def test_a_port_in_use_is_an_error_and_leaves_nothing_open(tmp_path):
    taken = socket.create_server(("127.0.0.1", 0))
    with taken:
        server = BackgroundServer(encoding="utf-8", port=taken.getsockname()[1])
        with pytest.raises(OSError, match=r"^\[Errno 98\] ") as info:
            server.start()
        assert info.value.errno == errno.EADDRINUSE


def test_accept_out_of_descriptors_pauses_then_goes_on(caplog):
    import asyncio

    from rcmd.server import Server

    async def main() -> None:
        loop = asyncio.get_running_loop()
        real = loop.sock_accept
        failures = [OSError(errno.EMFILE, "Too many open files")] * 2 + [OSError(errno.ECONNABORTED, "gone")]

        async def sock_accept(sock: socket.socket):  # type: ignore[no-untyped-def]
            if failures:
                raise failures.pop(0)
            return await real(sock)

        loop.sock_accept = sock_accept  # type: ignore[method-assign]
        async with Server(port=0) as server:
            reader, writer = await asyncio.open_connection(*server.address)
            framer = LengthPrefixFramer()
            while isinstance(frame := framer.next_frame(), type(NEED_DATA)):
                framer.receive_data(await reader.read(65536))
            assert isinstance(decode_message(frame), Hello)  # type: ignore[arg-type]
            writer.close()

    caplog.set_level("INFO", "rcmd.server")
    asyncio.run(asyncio.wait_for(main(), WAIT))
    assert [m for m in caplog.messages if "accept" in m] == [
        "cannot accept: Too many open files; pausing new connections until it can",
        "accept failed: [Errno 103] gone",
        "accepting connections again",
    ]


# ------------------------------------------------------------------------- user accounts


@pytest.fixture
def users(tmp_path: Path) -> dict:
    from rcmd import scram
    from rcmd.server.accounts import add_user, load_users

    path = tmp_path / "users.toml"
    add_user(path, "ann", "ann's password", home=str(tmp_path / "ann"), iterations=scram.MIN_ITERATIONS)
    add_user(
        path,
        "bob",
        "bob's password",
        home=str(tmp_path / "bob"),
        iterations=scram.MIN_ITERATIONS,
        transfer_only=True,
    )
    return load_users(path)


def test_a_user_runs_commands_in_their_home(start, users, tmp_path):
    from rcmd import connect

    server = start(users=users)
    with connect(*server.address, user="ann", password="ann's password") as client:
        result = client.run("pwd")
        assert result.stdout == f"{tmp_path / 'ann'}\n".encode()


def test_a_transfer_only_user_may_not_run_commands(start, users):
    from rcmd import connect

    server = start(users=users)
    with connect(*server.address, user="bob", password="bob's password") as client:
        result = client.run("pwd")
        assert (result.returncode, result.stdout) == (REFUSED, b"")
        assert result.stderr == b"rcmd: refused: user bob may only transfer files\n"
        assert client.cwd == "/"  # the jail's root, as the user sees it


# ------------------------------------------------------------------ a client that is behind


def test_output_to_a_slow_client_comes_whole_and_in_order(start):
    """The server stops reading the pipes while the client is behind, and starts again."""
    server = start()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(WAIT)
    sock.connect(server.address)
    peer = Peer.__new__(Peer)
    peer.sock, peer.framer = sock, LengthPrefixFramer(16 * 1024 * 1024)
    try:
        assert isinstance(peer.receive(), Hello)
        peer.send(Hello())
        size = 12 * 1024 * 1024
        peer.send(Run(f"head -c {size} /dev/zero | tr '\\0' a; echo end >&2"))
        out, err, exit = split(peer.reply())
        assert (len(out), out.count(b"a"), err, exit.returncode) == (size, size, b"end\n", 0)
    finally:
        sock.close()
