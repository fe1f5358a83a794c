"""rcmd.cgroup in this process (mutation testing sees it run): finding our cgroup from the
mounts, creating the server's, moving a real process in and back, the gate a command goes
through, killing a command's cgroup and removing it, waiting for one to empty.

The tests that make cgroups are skipped where this process may not create one in its own
(as in test_cgroup). Processes are real (/bin/sh, sleep); each is killed and reaped.
"""

from __future__ import annotations

import builtins
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_gone, wait_until

from rcmd import cgroup
from rcmd.cgroup import CommandCgroups, Unavailable


def _own_directory() -> str:
    """This process's cgroup directory, read without rcmd.cgroup (a mutant of it must not
    decide which tests run, nor what is cleaned up): "" if there is none to be found."""
    try:
        with open("/proc/self/cgroup") as own:
            path = next(line[3:].rstrip("\n") for line in own if line.startswith("0::"))
        with open("/proc/self/mountinfo") as mounts:
            mount = next(line.split()[4] for line in mounts if " - cgroup2 " in line)
    except (OSError, StopIteration):
        return ""
    return os.path.join(mount, path.lstrip("/"))


OWN = _own_directory()
needs_cgroups = pytest.mark.skipif(
    not OWN or not os.access(OWN, os.W_OK), reason=f"cgroups: cannot create a cgroup in {OWN or 'no cgroup2'}"
)


class FakeProc:
    """/proc/self/cgroup and the mounts as rcmd.cgroup reads them, from files of the test's."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.cgroup = folder / "cgroup"
        self.mountinfo = folder / "mountinfo"
        monkeypatch.setattr(cgroup, "MOUNTINFO", str(self.mountinfo))
        real_open = builtins.open

        def fake_open(path: Any, *args: Any, **kwargs: Any) -> Any:
            if path == "/proc/self/cgroup":
                path = self.cgroup
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(cgroup, "open", fake_open, raising=False)

    def own(self, cgroup_lines: str, mounts: str) -> str:
        self.cgroup.write_text(cgroup_lines)
        self.mountinfo.write_text(mounts)
        return cgroup.own_cgroup()


@pytest.fixture(autouse=True)
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test in a directory of its own: a path that lost its directory (a relative
    cgroup.procs) is then no file, not one some earlier test left. After it, whatever is
    left of this process's rcmd-<pid> cgroup is killed and removed (by hand: a mutant of
    rcmd.cgroup may leave it)."""
    monkeypatch.chdir(tmp_path)
    yield
    if OWN:
        scrap(os.path.join(OWN, f"rcmd-{os.getpid()}"))


def scrap(parent: str) -> None:
    """SIGKILL everything in the cgroup *parent* and below, and remove them all."""
    if not os.path.isdir(parent):
        return
    below = [entry.path for entry in os.scandir(parent) if entry.is_dir(follow_symlinks=False)]
    for path in [*below, parent]:
        with open(os.path.join(path, "cgroup.kill"), "w") as kill:
            kill.write("1")
        wait_until(lambda path=path: not procs(path), f"processes left in {path}")
        os.rmdir(path)


PROC = "22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n"
V1 = "30 25 0:26 / /sys/fs/cgroup/memory rw shared:9 - cgroup cgroup rw,memory\n"


@pytest.fixture
def fake_proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeProc:
    return FakeProc(tmp_path, monkeypatch)


# ------------------------------------------------------------------ finding our cgroup


def test_our_cgroup_is_under_the_cgroup2_mount(fake_proc):
    lines = "12:memory:/elsewhere\n0::/user.slice/session-1.scope\n"
    mount = "35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw\n"
    assert fake_proc.own(lines, PROC + V1 + mount) == "/sys/fs/cgroup/user.slice/session-1.scope"


def test_a_mount_of_a_subtree_takes_what_is_below_its_root(fake_proc):
    lines = "0::/lxc/box/app\n"
    other = "36 24 0:30 /lxc/boxes /mnt/other rw - cgroup2 cgroup2 rw\n"  # /lxc/box is not under it
    mount = "37 24 0:30 /lxc/box /mnt/box\\040cgroups rw - cgroup2 cgroup2 rw\n"
    assert fake_proc.own(lines, other + mount) == "/mnt/box cgroups/app"
    assert fake_proc.own("0::/lxc/box\n", other + mount) == "/mnt/box cgroups/"
    mount_x = "38 24 0:30 /lxc/boX /mnt/x rw - cgroup2 cgroup2 rw\n"  # names may end or start in X
    assert fake_proc.own("0::/lxc/boX/Xapp\n", mount_x) == "/mnt/x/Xapp"


def test_the_cgroups_name_is_kept_to_its_last_character(fake_proc):
    mount = "35 24 0:30 / /cg rw - cgroup2 cgroup2 rw\n"
    assert fake_proc.own("0::/a/odd name \n", mount) == "/cg/a/odd name "
    assert fake_proc.own("0::/a/endsX\n", mount) == "/cg/a/endsX"


def test_a_cgroup_line_without_its_newline(fake_proc):
    mount = "35 24 0:30 / /cg rw - cgroup2 cgroup2 rw\n"
    assert fake_proc.own("0::/a/b", mount) == "/cg/a/b"


def test_no_cgroup2_cgroup_or_mount_is_unavailable(fake_proc):
    mount = "35 24 0:30 / /cg rw - cgroup2 cgroup2 rw\n"
    with pytest.raises(Unavailable, match=r"^this process is in no cgroup2 cgroup$"):
        fake_proc.own("12:memory:/x\n", mount)
    with pytest.raises(Unavailable, match=r"^this process is in no cgroup2 cgroup$"):
        fake_proc.own("0::/gone (deleted)\n", mount)
    with pytest.raises(Unavailable, match=r"^no cgroup2 file system mounted$"):
        fake_proc.own("0::/a\n", PROC + V1)
    with pytest.raises(Unavailable, match=r"^no cgroup2 file system mounted$"):
        fake_proc.own("0::/a\n", "35 24 0:30 /b /cg rw - cgroup2 cgroup2 rw\n")


def test_unreadable_files_are_unavailable(fake_proc, tmp_path):
    fake_proc.mountinfo.write_text(PROC)
    with pytest.raises(Unavailable, match=rf"^cannot read {tmp_path / 'cgroup'}: No such file or directory$"):
        cgroup.own_cgroup()
    fake_proc.cgroup.write_text("0::/\n")
    fake_proc.mountinfo.unlink()
    with pytest.raises(
        Unavailable, match=rf"^cannot read {tmp_path / 'mountinfo'}: No such file or directory$"
    ):
        cgroup.own_cgroup()


@pytest.mark.parametrize(
    ("field", "path"),
    [
        ("/a\\040b", "/a b"),
        ("/tab\\011and\\134slash", "/tab\tand\\slash"),
        ("/not\\04", "/not\\04"),  # two digits: not an escape
        ("/not\\089", "/not\\089"),  # 8 is no octal digit
        ("/plain", "/plain"),
    ],
)
def test_escapes_in_the_mounts_are_undone(field, path):
    assert cgroup._unescape(field) == path


# ------------------------------------------------------------------ the server's cgroup


@pytest.fixture
def cgroups() -> Iterator[CommandCgroups]:
    made = CommandCgroups.create(None)
    yield made
    assert made.close()


def sleeper(argv: list[str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv or ["sleep", "600"], stdin=subprocess.DEVNULL)


def cgroup_of(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as lines:
        return next(line[3:].rstrip("\n") for line in lines if line.startswith("0::"))


def _as_proc(path: str) -> str:
    own_dir = OWN
    with open("/proc/self/cgroup") as lines:
        own = next(line[3:].rstrip("\n") for line in lines if line.startswith("0::"))
    return os.path.join(own, os.path.relpath(path, own_dir))


@needs_cgroups
def test_create_moves_the_probe_in_and_back_and_close_removes_it_all():
    probe = sleeper()
    try:
        before = cgroup_of(probe.pid)
        made = CommandCgroups.create(probe.pid)
        try:
            assert made.parent == os.path.join(OWN, f"rcmd-{os.getpid()}")
            assert os.path.isdir(made.parent)
            assert not os.path.exists(os.path.join(made.parent, "probe"))
            assert cgroup_of(probe.pid) == before
            assert made.path(3) == os.path.join(made.parent, "cmd-3")
        finally:
            assert made.close()
        assert not os.path.exists(made.parent)
    finally:
        probe.kill()
        probe.wait()


@needs_cgroups
def test_create_twice_says_it_cannot(cgroups):
    with pytest.raises(Unavailable, match=rf"^cannot create {cgroups.parent}: File exists$"):
        CommandCgroups.create(None)
    assert os.path.isdir(cgroups.parent)  # the first is left alone


@needs_cgroups
def test_a_probe_that_cannot_be_moved_is_unavailable_and_nothing_is_left():
    gone = sleeper()
    gone.kill()
    gone.wait()  # its pid is free: no process to move
    parent = os.path.join(OWN, f"rcmd-{os.getpid()}")
    with pytest.raises(Unavailable, match=rf"^cannot move a process into {parent}: No such process$"):
        CommandCgroups.create(gone.pid)
    assert not os.path.exists(parent)


@needs_cgroups
def test_no_cgroup_kill_is_unavailable_and_nothing_is_left(monkeypatch):
    real = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda path: not path.endswith("/cgroup.kill") and real(path))
    parent = os.path.join(OWN, f"rcmd-{os.getpid()}")
    with pytest.raises(Unavailable, match=r"^no cgroup.kill \(Linux < 5\.14\)$"):
        CommandCgroups.create(None)
    assert not real(parent)


@needs_cgroups
def test_no_gate_shell_is_unavailable(monkeypatch, tmp_path):
    missing = str(tmp_path / "sh")
    monkeypatch.setattr(cgroup, "GATE_SHELL", missing)
    with pytest.raises(Unavailable, match=rf"^no {missing} to start commands in their cgroups$"):
        CommandCgroups.create(None)
    assert not os.path.exists(os.path.join(OWN, f"rcmd-{os.getpid()}"))


# ------------------------------------------------------------------ a command's cgroup


@needs_cgroups
def test_the_gate_puts_the_command_in_its_cgroup_before_it_runs(cgroups):
    argv = cgroups.gated(1, ["/bin/sh", "-c", 'cat /proc/self/cgroup; echo "$0 $1"', "zero", "one two"])
    assert argv[:5] == [
        "/bin/sh",
        "-c",
        cgroup.GATE,
        "rcmd-gate",
        os.path.join(cgroups.path(1), "cgroup.procs"),
    ]
    done = subprocess.run(argv, capture_output=True, check=False, timeout=30)
    assert (done.returncode, done.stderr) == (0, b"")
    lines = done.stdout.decode().splitlines()
    assert f"0::{_as_proc(cgroups.path(1))}" in lines
    assert lines[-1] == "zero one two"
    assert cgroups.remove(1)
    assert not os.path.exists(cgroups.path(1))


@needs_cgroups
def test_a_gate_that_cannot_move_the_command_does_not_run_it(cgroups, tmp_path):
    argv = cgroups.gated(2, ["/bin/sh", "-c", f"touch {tmp_path / 'ran'}"])
    os.rmdir(cgroups.path(2))
    done = subprocess.run(argv, capture_output=True, check=False, timeout=30)
    assert (done.returncode, done.stderr) == (126, b"rcmd: cannot put the command in its cgroup\n")
    assert not (tmp_path / "ran").exists()


@needs_cgroups
def test_a_gated_cgroup_that_exists_already_is_an_oserror(cgroups):
    cgroups.gated(4, ["true"])
    with pytest.raises(FileExistsError):
        cgroups.gated(4, ["true"])


def procs(path: str) -> list[int]:
    with open(os.path.join(path, "cgroup.procs")) as lines:
        return [int(line) for line in lines]


@needs_cgroups
def test_kill_kills_all_of_a_commands_cgroup_and_counts_them(cgroups):
    command = sleeper(cgroups.gated(5, ["/bin/sh", "-c", "sleep 600 & sleep 600 & wait"]))
    try:
        wait_until(lambda: len(procs(cgroups.path(5))) == 3, "the command never started its sleeps")
        held = procs(cgroups.path(5))
        assert not cgroups.remove(5)  # busy
        assert cgroups.kill(5) == 3
        command.wait(30)
        assert all(wait_gone(pid) for pid in held)
        assert cgroup._wait_empty(cgroups.path(5), 30)
        assert cgroups.remove(5)
        assert cgroups.remove(5)  # gone already: done
        assert cgroups.kill(5) == 0  # no cgroup any more
    finally:
        command.kill()
        command.wait()


@needs_cgroups
def test_close_kills_and_removes_every_commands_cgroup():
    made = CommandCgroups.create(None)
    commands = [sleeper(made.gated(number, ["sleep", "600"])) for number in (1, 2)]
    try:
        for number in (1, 2):
            wait_until(lambda number=number: len(procs(made.path(number))) == 1, "never moved")
        assert made.close()
        assert not os.path.exists(made.parent)
        assert [command.wait(30) for command in commands] == [-9, -9]
    finally:
        for command in commands:
            command.kill()
            command.wait()


@needs_cgroups
def test_waiting_for_a_cgroup_to_empty_gives_up_at_the_time(cgroups):
    command = sleeper(cgroups.gated(6, ["sleep", "600"]))
    try:
        wait_until(lambda: len(procs(cgroups.path(6))) == 1, "never moved")
        assert not cgroup._wait_empty(cgroups.path(6), 0.05)
        assert not cgroup._wait_empty(cgroups.path(6), 0)
        assert cgroup._wait_empty(os.path.join(cgroups.path(6), "no-such"), 0)  # nothing to wait for
    finally:
        command.kill()
        command.wait()
    assert cgroup._wait_empty(cgroups.path(6), 30)


# ------------------------------------------------------------------ kill_and_remove


def test_kill_and_remove_of_what_is_not_there_is_done(tmp_path):
    assert cgroup.kill_and_remove(str(tmp_path / "absent"))


def test_kill_and_remove_takes_the_empty_directories_and_says_if_any_is_left(tmp_path):
    """On a plain directory (no cgroup files to kill by or wait on): the empty directories
    below go, then it; a file left in one keeps it there, and says so."""
    parent = tmp_path / "rcmd-1"
    (parent / "cmd-1").mkdir(parents=True)
    (parent / "cmd-2").mkdir()
    (parent / "cmd-2" / "left").write_text("")
    (parent / "cgroup.procs-like").write_text("")
    assert not cgroup.kill_and_remove(str(parent), 0)
    assert sorted(os.listdir(parent)) == ["cgroup.procs-like", "cmd-2"]
    (parent / "cmd-2" / "left").unlink()
    (parent / "cgroup.procs-like").unlink()
    assert cgroup.kill_and_remove(str(parent), 0)
    assert not parent.exists()


def test_kill_and_remove_leaves_what_a_link_points_to(tmp_path):
    parent, elsewhere = tmp_path / "rcmd-1", tmp_path / "elsewhere"
    parent.mkdir()
    elsewhere.mkdir()
    (parent / "link").symlink_to(elsewhere)
    assert not cgroup.kill_and_remove(str(parent), 0)
    assert elsewhere.is_dir()


def test_kill_of_a_plain_directory_kills_nothing(tmp_path):
    (tmp_path / "cgroup.procs").write_text("1\n2\n")  # no cgroup.kill to write to
    assert cgroup._kill(str(tmp_path)) == 0


def test_write_writes_the_text(tmp_path):
    target = tmp_path / "file"
    target.write_text("")
    cgroup._write(str(target), "1")
    assert target.read_text() == "1"
    with pytest.raises(FileNotFoundError):
        cgroup._write(str(tmp_path / "absent"), "1")


@needs_cgroups
def test_waiting_for_a_cgroup_to_empty_sleeps_until_it_does(cgroups, monkeypatch):
    """The wait is the kernel's POLLPRI on cgroup.events, not a loop reading it: a wait that
    runs out, and one that ends when the cgroup empties, read the file a few times only."""
    reads: list[int] = []
    real = os.pread

    def counted(fd: int, size: int, offset: int) -> bytes:
        reads.append(fd)
        return real(fd, size, offset)

    command = sleeper(cgroups.gated(7, ["sleep", "600"]))
    try:
        wait_until(lambda: len(procs(cgroups.path(7))) == 1, "never moved")
        monkeypatch.setattr(os, "pread", counted)
        assert not cgroup._wait_empty(cgroups.path(7), 0.3)
        assert len(reads) <= 3
        reads.clear()
        killer = threading.Timer(0.1, command.kill)
        killer.start()
        assert cgroup._wait_empty(cgroups.path(7), 0.9)  # less than a second: all of it is waited
        assert len(reads) <= 3
        killer.join()
    finally:
        command.kill()
        command.wait()


def test_a_cgroup_removed_by_another_meanwhile_is_gone(tmp_path, monkeypatch):
    """The watchdog and the server may both empty and remove the same cgroup: whoever finds
    it gone while at it is done too."""
    parent = tmp_path / "rcmd-1"
    (parent / "cmd-1").mkdir(parents=True)

    def removed_meanwhile(path: str, seconds: float) -> bool:
        os.rmdir(parent / "cmd-1")
        os.rmdir(parent)
        return True

    monkeypatch.setattr(cgroup, "_wait_empty", removed_meanwhile)
    assert cgroup.kill_and_remove(str(parent), 0)


@needs_cgroups
def test_close_waits_as_long_as_it_is_told(monkeypatch):
    waits: list[float] = []
    real = cgroup._wait_empty

    def noted(path: str, seconds: float) -> bool:
        waits.append(seconds)
        return real(path, seconds)

    monkeypatch.setattr(cgroup, "_wait_empty", noted)
    made = CommandCgroups.create(None)
    assert made.close(0.25)
    assert made.close()  # gone: nothing to wait for
    assert waits == [0.25]


@needs_cgroups
def test_a_failed_create_does_not_wait_to_remove_what_it_made(monkeypatch):
    """Nothing can be in what create() made when it gives up: it waits for nothing."""
    waits: list[float] = []
    monkeypatch.setattr(cgroup, "_wait_empty", lambda path, seconds: waits.append(seconds) or True)
    gone = sleeper()
    gone.kill()
    gone.wait()
    with pytest.raises(Unavailable, match="No such process"):
        CommandCgroups.create(gone.pid)
    real = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda path: not path.endswith("/cgroup.kill") and real(path))
    with pytest.raises(Unavailable, match=r"no cgroup\.kill"):
        CommandCgroups.create(None)
    assert waits == [0, 0]
