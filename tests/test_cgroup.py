"""A cgroup per command (rcmd.cgroup): what leaves the process group with a clean
environment, which no cookie finds, dies with its command however it ends; no cgroup is
left behind; where cgroups are unavailable the server says so and the cookie still works.

The servers are real (conftest), spoken to with test_process_tree's raw Conversation. The
tests that need cgroups are skipped where this process may not create a cgroup in its own
(no cgroup2, not root, mounted read-only): the server falls back to the cookie there.
"""

from __future__ import annotations

import os
import re
import signal
import sys

import pytest
from test_process_tree import (
    ESCAPES,
    REPLY_WAIT,
    UNREACHABLE,
    Conversation,
    Pids,
    daemon,
    double_fork,
    finish,
    until_exit,
    wait_until,
)

from rcmd.messages import Cancel, Error, Exit, PtyRequest, Run, Stdout

PYTHON = sys.executable
#: Processes that leave the command's group with an empty environment: no cookie, so before
#: cgroups only the server's shutdown (as their subreaper) killed them. The first is the
#: command's first line: nothing runs before the command is in its cgroup.
CLEAN_ESCAPES = {
    "env-i": "env -i setsid sh -c 'echo env-i $$; exec sleep 600' &",
    "clean-double-fork": f"env -i {PYTHON} -c '{double_fork('clean-double-fork')}'",
    "clean-daemon": f"env -i {PYTHON} -c '{daemon('clean-daemon')}'",
}
CLEAN_KINDS = {"shell", *CLEAN_ESCAPES}
CLEAN_ESCAPING = "\n".join(CLEAN_ESCAPES.values()) + "\necho shell $$\n"
#: Where the server logs its cgroups.
CGROUP_LINE = r"a cgroup per command under (\S+),"


@pytest.fixture(scope="module")
def server(server_factory):
    """Here, a server started with --cgroups (off by default: they cost each command)."""
    return server_factory("--encoding", "utf-8", "--cgroups")


def _own_cgroup_writable() -> str | None:
    """Why a cgroup cannot be made here (None if it can): read as the server would,
    without rcmd.cgroup, so these tests also run (and fail) against a server without it."""
    try:
        with open("/proc/self/cgroup") as own:
            path = next(line[3:].strip() for line in own if line.startswith("0::"))
        with open("/proc/self/mountinfo") as mounts:
            mount = next(line.split()[4] for line in mounts if " - cgroup2 " in line)
    except (OSError, StopIteration):
        return "no cgroup2 file system, or this process is in none of its cgroups"
    directory = os.path.join(mount, path.lstrip("/"))
    if not os.access(directory, os.W_OK):
        return f"cannot create a cgroup in {directory}"
    return None


needs_cgroups = pytest.mark.skipif(
    _own_cgroup_writable() is not None, reason=f"cgroups unavailable: {_own_cgroup_writable()}"
)


def start_clean(conversation: Conversation, command: str, **run: object) -> Pids:
    """Run *command* and read its output until each of CLEAN_KINDS has printed its pid."""
    conversation.send(Run(command, **run))  # type: ignore[arg-type]
    pids = Pids()
    while not set(pids.pidfds) >= CLEAN_KINDS:
        message = conversation.next()
        assert message is not None, f"the server closed: {pids.text!r}"
        assert not isinstance(message, (Exit, Error)), (message, pids.text)
        pids.feed(message)
    return pids


def cgroups_of(server) -> str:
    """The server's parent cgroup, from its log."""
    return server.wait_for_log(CGROUP_LINE).group(1)


def commands_left(server) -> list[str]:
    parent = cgroups_of(server)
    return sorted(name for name in os.listdir(parent) if name.startswith("cmd-"))


# ------------------------------------------------------ what no cookie finds, each way


@needs_cgroups
@pytest.mark.parametrize("ending", ["cancel", "timeout", "disconnect", "server stop"])
def test_processes_with_a_clean_environment_die_with_their_command(ending, server_factory):
    server = server_factory("--cgroups")
    conversation = Conversation(server.address)
    timeout = {"timeout": 5} if ending == "timeout" else {}
    pids = start_clean(conversation, CLEAN_ESCAPING + "sleep 600", **timeout)  # type: ignore[arg-type]
    if ending == "cancel":
        conversation.send(Cancel())
    elif ending == "disconnect":
        conversation.close()
    elif ending == "server stop":
        server.proc.send_signal(signal.SIGTERM)
    try:
        exit = None if ending == "disconnect" else until_exit(conversation, pids)
        if ending == "server stop":
            assert server.proc.wait(REPLY_WAIT) == 0
    finally:
        survivors = pids.survivors()
        conversation.close()
    assert survivors == [], f"{survivors} outlived their command ({ending})"
    if exit is not None:
        assert exit.timed_out if ending == "timeout" else exit.cancelled
    parent = cgroups_of(server)
    if ending == "server stop":
        assert not os.path.exists(parent), "the server left its cgroup behind"
    else:
        assert wait_until(lambda: commands_left(server) == []), commands_left(server)


@needs_cgroups
def test_server_killed_its_watchdog_empties_and_removes_its_cgroups(server_factory):
    server = server_factory("--cgroups")
    conversation = Conversation(server.address)
    pids = start_clean(conversation, CLEAN_ESCAPING + "sleep 600")
    server.proc.kill()
    server.proc.wait(REPLY_WAIT)
    try:
        assert pids.survivors() == [], "processes outlived their SIGKILLed server"
    finally:
        conversation.close()
    parent = cgroups_of(server)
    assert wait_until(lambda: not os.path.exists(parent)), os.listdir(parent)


@needs_cgroups
def test_output_held_by_a_clean_environment_is_released_by_the_kill(server):
    """What the cookie cannot find keeps the output open until the cut (test_process_tree);
    in a cgroup it is found: killed after LINGER, the output ends without a cut."""
    conversation = Conversation(server.address)
    conversation.send(Run(UNREACHABLE))
    pids = Pids()
    exit, survivors = finish(conversation, pids)
    assert exit is not None
    assert exit.returncode == 0
    assert b"rcmd: output cut" not in pids.stderr
    assert survivors == []


# ------------------------------------------------------------- in it, and no more after


@needs_cgroups
@pytest.mark.parametrize("pty", [False, True])
def test_a_command_runs_in_a_cgroup_of_its_own_removed_after(server, pty):
    conversation = Conversation(server.address)
    try:
        request = PtyRequest() if pty else None
        conversation.send(Run("tail -n 1 /proc/self/cgroup; tail -n 1 /proc/$$/cgroup", pty=request))
        output = b""
        while not isinstance(message := conversation.next(), Exit):
            assert isinstance(message, Stdout), message
            output += message.data
    finally:
        conversation.close()
    parent = cgroups_of(server)
    lines = output.decode().split()
    assert len(lines) == 2, output
    command = lines[0].removeprefix("0::")
    assert re.fullmatch(r".*/rcmd-\d+/cmd-\d+", command), output
    assert lines[1] == lines[0]  # the shell too: it was moved before it ran
    assert parent.endswith(os.path.dirname(command))
    assert wait_until(lambda: not os.path.exists(os.path.join(parent, os.path.basename(command))))


@needs_cgroups
def test_a_cgroup_left_busy_is_removed_once_empty(server):
    """A command that leaves a process keeps its cgroup populated until the kill has
    taken effect: the removal is tried again until it succeeds."""
    conversation = Conversation(server.address)
    try:
        conversation.send(Run("sleep 600 >/dev/null 2>&1 & echo shell $$"))
        pids = Pids()
        assert until_exit(conversation, pids) is not None
    finally:
        pids.survivors()
        conversation.close()
    assert wait_until(lambda: commands_left(server) == []), commands_left(server)


# ----------------------------------------------------------------------- the fallback


def test_cgroups_are_off_unless_asked_for(server_factory):
    plain = server_factory("--encoding", "utf-8")
    line = plain.wait_for_log(r"killing a command's processes: .*")
    assert line.group(0).endswith("; no cgroup")


def test_without_cgroups_the_server_says_so_and_the_cookie_works(cookie_only):
    line = cookie_only.wait_for_log(r"killing a command's processes: .*")
    assert "no cgroup (no cgroup2 file system mounted)" in line.group(0)
    assert "a cgroup per command" not in line.group(0)
    conversation = Conversation(cookie_only.address)
    command = "echo shell $$\n" + "\n".join(ESCAPES.values()) + "\nsleep 600"
    conversation.send(Run(command))
    pids = Pids()
    while not set(pids.pidfds) >= {"shell", *ESCAPES}:
        pids.feed(conversation.next())
    conversation.send(Cancel())
    exit, survivors = finish(conversation, pids)
    assert exit is not None
    assert exit.cancelled
    assert survivors == []
    assert not any(
        os.path.exists(os.path.join(root, f"rcmd-{cookie_only.proc.pid}"))
        for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")
    )


# ------------------------------------------------------- finding the cgroup, from the mounts


def test_the_own_cgroup_is_found_from_the_mounts_with_their_escapes(tmp_path, monkeypatch):
    """/proc/self/mountinfo escapes a space in a mount point as \\040; the cgroup's path is the
    "0::" line's, below the mount's root. No cgroup2 mount: Unavailable, saying so."""
    import rcmd.cgroup as cgroup

    with open("/proc/self/cgroup") as own:
        path = next((line[3:].rstrip("\n") for line in own if line.startswith("0::")), None)
    if path is None:
        pytest.skip("this process is in no cgroup2 cgroup")
    mounts = tmp_path / "mountinfo"
    monkeypatch.setattr(cgroup, "MOUNTINFO", str(mounts))
    mounts.write_text(
        "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
        "35 24 0:30 / /sys/fs/cgroup/my\\040cgroups rw,nosuid - cgroup2 cgroup2 rw\n"
    )
    assert cgroup.own_cgroup() == os.path.join("/sys/fs/cgroup/my cgroups", path.lstrip("/"))
    mounts.write_text("22 1 0:21 / /proc rw,nosuid - proc proc rw\n")
    with pytest.raises(cgroup.Unavailable, match="no cgroup2 file system mounted"):
        cgroup.own_cgroup()
    monkeypatch.setattr(cgroup, "MOUNTINFO", str(tmp_path / "absent"))
    with pytest.raises(cgroup.Unavailable, match=r"cannot read .*absent"):
        cgroup.own_cgroup()


def test_removing_what_is_not_there_is_done():
    import rcmd.cgroup as cgroup

    assert cgroup.kill_and_remove("/sys/fs/cgroup/no-such-rcmd-cgroup")
    assert cgroup.CommandCgroups("/sys/fs/cgroup/no-such-rcmd-cgroup").remove(1)
    assert cgroup.CommandCgroups("/sys/fs/cgroup/no-such-rcmd-cgroup").kill(1) == 0
