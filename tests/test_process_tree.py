"""Every process a command starts is the command's: none outlives it, however it left.

Each command below starts four processes that leave its process group in the ways people
(and daemons) do: ``setsid``, a double fork into a new group, ``nohup ... &`` with its
output elsewhere, and a daemon (fork, setsid, fork, stdio on /dev/null). Each prints its
pid; the test holds a pidfd on it and waits, with a bound, for it to be gone after the
command ends normally, is cancelled, times out, loses its client, or its server is stopped
or killed. The server is the real one, in a subprocess, spoken to over a raw socket with a
timeout on every read, so a reply that never comes fails the test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable

import pytest
from conftest import children_of

from rcmd.framing import CLOSED, NEED_DATA, LengthPrefixFramer, encode_frame
from rcmd.messages import (
    Cancel,
    Error,
    Exit,
    Hello,
    Message,
    Run,
    Stderr,
    Stdin,
    Stdout,
    decode_message,
    encode_message,
)

#: How long a reply may take before the test calls it missing (the server's own waits are
#: a few seconds at most: LINGER, CUT_WAIT, TERM_GRACE).
REPLY_WAIT = 30.0
#: How long a killed process may take to be gone.
DEATH_WAIT = 15.0

PYTHON = sys.executable


def double_fork(kind: str) -> str:
    """Python that double-forks out of the command's process group, prints "<kind> <pid>"
    and becomes `sleep 600` (by its full path: it may run with an empty environment)."""
    return f"""
import os, sys
if os.fork(): sys.exit()
if os.fork(): os._exit(0)
os.setpgid(0, 0)
os.write(1, b"{kind} %d\\n" % os.getpid())  # one write: a line no other process cuts
os.execv("/bin/sleep", ["sleep", "600"])
"""


def daemon(kind: str) -> str:
    """Python that daemonizes as daemon(3) does (its output on /dev/null after one line)."""
    return f"""
import os, sys
if os.fork(): sys.exit()
os.setsid()
if os.fork(): os._exit(0)
os.write(1, b"{kind} %d\\n" % os.getpid())  # one write: a line no other process cuts
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2): os.dup2(null, fd)
os.execv("/bin/sleep", ["sleep", "600"])
"""


#: Each line starts one process that leaves the command's process group and prints
#: "<kind> <pid>". setsid and the double fork keep the output pipe open; nohup and the
#: daemon do not (so only a search for them, not the pipe, can find them).
ESCAPES = {
    "setsid": "setsid sh -c 'echo setsid $$; exec sleep 600' &",
    "double-fork": f"{PYTHON} -c '{double_fork('double-fork')}'",
    "nohup": "nohup sh -c 'echo nohup $$ >&3; exec sleep 600 3>&-' 3>&1 >/dev/null 2>&1 &",
    "daemon": f"{PYTHON} -c '{daemon('daemon')}'",
}
#: A process the cookie cannot find (a clean environment, out of the group) holding stdout.
UNREACHABLE = "echo shell $$; setsid env -i sh -c 'echo unreachable $$; exec sleep 600' &"
ESCAPING = "echo shell $$\n" + "\n".join(ESCAPES.values()) + "\n"
KINDS = {"shell", *ESCAPES}


class Conversation:
    """One raw connection: HELLO exchanged, then messages sent and read with a timeout."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=REPLY_WAIT)
        self.framer = LengthPrefixFramer()
        self.closed = False
        assert isinstance(self.next(), Hello)
        self.send(Hello())

    def send(self, message: Message) -> None:
        self.sock.sendall(encode_frame(encode_message(message)))

    def next(self) -> Message | None:
        """The next message; None once the server has closed. AssertionError if none comes."""
        while True:
            frame = self.framer.next_frame()
            if frame is CLOSED:
                return None
            if frame is not NEED_DATA:
                return decode_message(frame)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise AssertionError(f"no message from the server within {REPLY_WAIT:g}s") from None
            except ConnectionError:
                data = b""
            self.framer.receive_data(data)

    def close(self) -> None:
        self.sock.close()


class Pids:
    """The "<kind> <pid>" lines a command prints, each pid held by a pidfd from the moment
    it is read (so a reused pid is never mistaken for it)."""

    def __init__(self) -> None:
        self.text = b""
        self.pidfds: dict[str, int] = {}
        self.stderr = b""

    def feed(self, message: Message | None) -> None:
        if isinstance(message, Stderr):
            self.stderr += message.data
        if not isinstance(message, Stdout):
            return
        self.text += message.data
        *lines, self.text = self.text.split(b"\n")
        for line in lines:
            kind, pid = line.decode().split()
            try:
                self.pidfds[kind] = os.pidfd_open(int(pid))
            except ProcessLookupError:
                self.pidfds[kind] = -1  # gone already

    def all_started(self) -> bool:
        return set(self.pidfds) >= KINDS

    def survivors(self) -> list[str]:
        """Wait up to DEATH_WAIT for every process to be gone; the kinds still alive, after
        which they are killed (the test cleans up what it started, even when it fails)."""
        alive = {kind: fd for kind, fd in self.pidfds.items() if fd >= 0}
        deadline = DEATH_WAIT
        while alive and deadline > 0:
            ready, _, _ = select.select(list(alive.values()), [], [], deadline)
            if not ready:
                break
            alive = {kind: fd for kind, fd in alive.items() if fd not in ready}
        for fd in alive.values():
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        for fd in self.pidfds.values():
            if fd >= 0:
                os.close(fd)
        self.pidfds.clear()
        return sorted(alive)


def start(conversation: Conversation, command: str, **run: object) -> Pids:
    """Run *command* and read its output until every kind has printed its pid."""
    conversation.send(Run(command, **run))  # type: ignore[arg-type]
    pids = Pids()
    while not pids.all_started():
        message = conversation.next()
        assert message is not None, f"the server closed: {pids.text!r}"
        assert not isinstance(message, (Exit, Error)), (message, pids.text)
        pids.feed(message)
    return pids


def until_exit(conversation: Conversation, pids: Pids) -> Exit | None:
    """Read until EXIT (returned), or until the connection ends (None)."""
    while True:
        message = conversation.next()
        if message is None or isinstance(message, Error):
            return None
        if isinstance(message, Exit):
            return message
        pids.feed(message)


def finish(conversation: Conversation, pids: Pids) -> tuple[Exit | None, list[str]]:
    """The command's EXIT (until_exit), then, whatever happened, the processes it started that
    still live (each killed now: Pids.survivors) and the connection closed."""
    try:
        exit = until_exit(conversation, pids)
    finally:
        survivors = pids.survivors()
        conversation.close()
    return exit, survivors


def wait_until(condition: Callable[[], bool]) -> bool:
    """Check *condition* every 10 ms until it holds (True) or DEATH_WAIT passes (False):
    the server's children are only seen through /proc, which gives no event to wait on."""
    deadline = time.monotonic() + DEATH_WAIT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# ---------------------------------------------------------------------------- each way


def test_normal_end_leaves_no_process(server):
    conversation = Conversation(server.address)
    conversation.send(Run(ESCAPING))
    pids = Pids()
    exit, survivors = finish(conversation, pids)
    assert exit is not None
    assert exit.returncode == 0
    assert survivors == [], f"{survivors} outlived their command"
    # They were re-parented to the server (a subreaper), and it reaped them: no zombies.
    watchdog = int(server.wait_for_log(r"watchdog pid (\d+)").group(1))
    assert wait_until(lambda: children_of(server.proc.pid) <= {watchdog}), children_of(server.proc.pid)


@pytest.mark.parametrize("ending", ["cancel", "timeout", "server stop"])
def test_every_process_dies_with_its_command(ending, server_factory):
    """However a command is ended, what it started dies with it, daemons included."""
    server = server_factory()
    conversation = Conversation(server.address)
    # A timeout counts from the start: 5 s for four processes to start, with room to spare.
    pids = start(conversation, ESCAPING + "sleep 600", **({"timeout": 5} if ending == "timeout" else {}))
    if ending == "cancel":
        conversation.send(Cancel())
    elif ending == "server stop":
        server.proc.send_signal(signal.SIGTERM)
    try:
        exit = until_exit(conversation, pids)
        if ending == "server stop":
            assert server.proc.wait(REPLY_WAIT) == 0
    finally:
        survivors = pids.survivors()
        conversation.close()
    assert exit is not None
    assert exit.timed_out if ending == "timeout" else exit.cancelled
    assert survivors == [], f"{survivors} outlived their command ({ending})"


def test_client_disconnect_kills_every_process(server):
    conversation = Conversation(server.address)
    pids = start(conversation, ESCAPING + "sleep 600")
    conversation.close()
    assert pids.survivors() == []


def test_server_killed_its_watchdog_kills_every_process(server_factory):
    server = server_factory()
    conversation = Conversation(server.address)
    pids = start(conversation, ESCAPING + "sleep 600")
    server.proc.kill()
    server.proc.wait(REPLY_WAIT)
    try:
        assert pids.survivors() == [], "processes outlived their SIGKILLed server"
    finally:
        conversation.close()


def test_without_the_subreaper_what_a_command_left_is_swept():
    """A BackgroundServer (a thread in someone else's process) is no subreaper: a daemon a
    command left is found by its cookie alone, in the sweep after the command ends."""
    from rcmd import connect
    from rcmd.server import BackgroundServer

    with BackgroundServer() as background, connect(*background.address) as client:
        result = client.run(ESCAPES["daemon"])
        pids = Pids()
        pids.feed(Stdout(result.stdout))
        assert "daemon" in pids.pidfds
        assert pids.survivors() == [], "the daemon outlived its command"


# ------------------------------------------------------------ output held open, stdin


def test_output_held_by_a_process_out_of_reach_is_cut_and_exit_still_comes(cookie_only):
    """Without cgroups, a process with a clean environment that left the group cannot be
    found: the reply must not wait for it. (It is not killed: the test kills it, and the
    README says so. In a cgroup it is killed: test_cgroup.py.)"""
    conversation = Conversation(cookie_only.address)
    conversation.send(Run(UNREACHABLE))
    pids = Pids()
    try:
        exit = until_exit(conversation, pids)
    finally:
        pids.survivors()  # kills the unreachable one (it does survive: that is the point)
        conversation.close()
    assert exit is not None
    assert exit.returncode == 0
    assert b"rcmd: output cut" in pids.stderr


def test_a_process_out_of_reach_of_the_cookie_dies_at_shutdown(cookie_only):
    """Without the cookie (nor a cgroup) it cannot be told whose it is, but as an orphan it
    is the server's child (subreaper): when the server stops, every command is over, so it
    dies."""
    server = cookie_only
    conversation = Conversation(server.address)
    conversation.send(Run(UNREACHABLE))
    pids = Pids()
    try:
        exit = until_exit(conversation, pids)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(REPLY_WAIT) == 0
    finally:
        survivors = pids.survivors()
        conversation.close()
    assert exit is not None
    assert b"rcmd: output cut" in pids.stderr
    assert survivors == [], "a process outlived its server's shutdown"


def stdin_the_command_does_not_read(conversation: Conversation) -> Pids:
    """Start a command that never reads its stdin, and send it more than a pipe holds."""
    conversation.send(Run("echo shell $$; exec sleep 600", stdin=True))
    pids = Pids()
    while "shell" not in pids.pidfds:
        pids.feed(conversation.next())
    for _ in range(8):  # 512 KiB: the pipe takes 64, the rest waits in the server
        conversation.send(Stdin(bytes(64 * 1024)))
    return pids


def test_cancel_is_seen_while_the_command_does_not_read_its_stdin(server):
    conversation = Conversation(server.address)
    pids = stdin_the_command_does_not_read(conversation)
    conversation.send(Cancel())
    exit, survivors = finish(conversation, pids)
    assert exit is not None
    assert exit.cancelled
    assert survivors == []


def test_hang_up_is_seen_while_the_command_does_not_read_its_stdin(server):
    conversation = Conversation(server.address)
    pids = stdin_the_command_does_not_read(conversation)
    conversation.close()
    assert pids.survivors() == [], "the command outlived its client"


@pytest.mark.parametrize("kind", sorted(ESCAPES))
def test_each_escape_prints_its_pid_and_leaves_the_group(kind):
    """The fixtures above do what they claim: each process ends up outside the group."""
    import subprocess

    shell = subprocess.Popen(
        ["sh", "-c", f"{ESCAPES[kind]}\nwait"], stdout=subprocess.PIPE, start_new_session=True
    )
    assert shell.stdout is not None
    line = shell.stdout.readline().split()
    assert line[0].decode() == kind
    pid = int(line[1])
    try:
        if kind == "nohup":  # nohup stays in the group: it only shrugs off SIGHUP
            assert os.getpgid(pid) == shell.pid
        else:
            assert os.getpgid(pid) != shell.pid
    finally:
        os.kill(pid, signal.SIGKILL)
        shell.stdout.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()
