"""A cgroup (v2) per command, where the server may create one, as systemd has one per unit.

A process cannot leave its cgroup by forking, ``setsid`` or a clean environment (``env
-i``): only a writer of ``cgroup.procs`` can move it, which takes the privileges of the
server itself. Writing ``1`` to a cgroup's ``cgroup.kill`` (Linux 5.14) SIGKILLs every
process in it and its descendants, at once and without a search.

Layout: ``<the server's own cgroup>/rcmd-<server pid>/cmd-<n>``. The server stays in its
own cgroup (no process may be in a cgroup that has children with controllers enabled,
and the server's must not be killed with its commands); its watchdog too.

How a command gets in: its shell is not started directly but through ``/bin/sh -c GATE``,
which writes ``0`` (itself) to ``cmd-<n>/cgroup.procs`` and then execs the shell, the same
pid: nothing the command runs is outside its cgroup, even for a moment. A move waits for
an RCU grace period (about 10 ms here) unless another move happened just before, so the
first command after a quiet spell starts about 8 ms later whatever way moves it. Measured
(Python 3.11, kernel 6.18, 2 busy cores; ``run('true')`` p50 on an open connection, cookie
only / gate / the other way: 1.11 / 2.44 / 1.15 ms back to back, 2.3 / 10.3 / 11.3 ms 0.2 s
apart), the ways that do not need a second exec leave a window or cost more:
- the server writes the shell's pid once Popen returns: cheap back to back, but after a
  quiet spell the shell runs for those 10 ms before it is moved, and all 30 of 30 such
  ``sh -c 'cat /proc/self/cgroup'`` were not in their cgroup yet: an ``env -i setsid job &``
  on a command's first line would escape (1 in 100 even back to back);
- a ``preexec_fn`` writing to a descriptor opened beforehand: race-free, but Popen then
  forks instead of vforking and runs Python in the child (documented as unsafe with
  threads, and the server spawns on threads): 2.4 ms a spawn (p50) against 0.14.
The gate costs the server nothing (a spawn thread is busy 0.17 ms, against 0.14 without
cgroups), the command one more exec of /bin/sh: about 1.3 ms, on the machine's CPU.

Nothing here is fatal: where create() raises Unavailable, or a command's cgroup cannot be
made, the process group and the environment cookie (rcmd.process) do the work alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import time

#: Where this process's mounts are listed (a test points it elsewhere to see the fallback).
MOUNTINFO = "/proc/self/mountinfo"
#: The shell that runs the gate: POSIX, whatever shell runs the commands.
GATE_SHELL = "/bin/sh"
#: Moves the gate's own process into the cgroup whose cgroup.procs is $1, then execs the
#: rest of its arguments (the command's shell). If the move fails, the command does not
#: run: the server counts on every process of it being in its cgroup.
GATE = (
    '{ echo 0 >"$1"; } 2>/dev/null || { echo "rcmd: cannot put the command in its cgroup" >&2; exit 126; }\n'
    'shift; exec "$@"'
)
#: How long removing a killed cgroup may wait for its processes to be gone (one stuck in the
#: kernel, state D, goes only when the kernel lets it; the directory is then left).
EMPTY_WAIT = 5.0


class Unavailable(Exception):
    """No cgroup per command here; the message says why, for the server's log."""


def own_cgroup() -> str:
    """The directory of this process's cgroup in the cgroup2 hierarchy (from the mounts,
    and the "0::" line of /proc/self/cgroup). Unavailable when there is none to be found."""
    try:
        with open("/proc/self/cgroup") as own:
            path = next((line[3:].rstrip("\n") for line in own if line.startswith("0::")), None)
        with open(MOUNTINFO) as mounts:
            mountinfo = mounts.read().splitlines()
    except OSError as exc:
        raise Unavailable(f"cannot read {exc.filename}: {exc.strerror}") from None
    if path is None or path.endswith(" (deleted)"):
        raise Unavailable("this process is in no cgroup2 cgroup")
    for line in mountinfo:
        fields, _, rest = line.partition(" - ")
        if rest.split(" ", 1)[0] != "cgroup2":
            continue
        root, mount_point = (_unescape(field) for field in fields.split()[3:5])
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return os.path.join(mount_point, path[len(root) :].lstrip("/"))
    raise Unavailable("no cgroup2 file system mounted")


def _unescape(field: str) -> str:
    """A mountinfo field, its octal escapes (\\040 for a space) undone."""
    return re.sub(r"\\([0-7]{3})", lambda octal: chr(int(octal.group(1), 8)), field)


class CommandCgroups:
    """The server's ``rcmd-<pid>`` cgroup and one ``cmd-<n>`` under it per command."""

    def __init__(self, parent: str) -> None:
        self.parent = parent

    @classmethod
    def create(cls, probe_pid: int | None) -> CommandCgroups:
        """Create ``rcmd-<our pid>`` in our own cgroup, and prove that a process can be moved
        in and back out by moving *probe_pid* (a process of ours in our cgroup, which must
        not stay: the watchdog), if given. Unavailable (with what failed) otherwise."""
        own = own_cgroup()
        if not os.access(GATE_SHELL, os.X_OK):
            raise Unavailable(f"no {GATE_SHELL} to start commands in their cgroups")
        parent = os.path.join(own, f"rcmd-{os.getpid()}")
        try:
            os.mkdir(parent)
        except OSError as exc:
            raise Unavailable(f"cannot create {parent}: {exc.strerror}") from None
        cgroups = cls(parent)
        try:
            if not os.path.exists(os.path.join(parent, "cgroup.kill")):
                raise Unavailable("no cgroup.kill (Linux < 5.14)")
            if probe_pid is not None:
                probe = os.path.join(parent, "probe")
                os.mkdir(probe)
                try:
                    _write(os.path.join(probe, "cgroup.procs"), str(probe_pid))
                    _write(os.path.join(own, "cgroup.procs"), str(probe_pid))
                finally:
                    os.rmdir(probe)  # EBUSY if the probe could not be moved back: given up
        except OSError as exc:
            cgroups.close(wait=0)
            raise Unavailable(f"cannot move a process into {parent}: {exc.strerror}") from None
        except Unavailable:
            cgroups.close(wait=0)
            raise
        return cgroups

    def path(self, number: int) -> str:
        return os.path.join(self.parent, f"cmd-{number}")

    def gated(self, number: int, argv: list[str]) -> list[str]:
        """Create command *number*'s cgroup; *argv* started through the gate that puts it
        there before anything of it runs. OSError if the cgroup cannot be created."""
        os.mkdir(self.path(number))
        return [GATE_SHELL, "-c", GATE, "rcmd-gate", os.path.join(self.path(number), "cgroup.procs"), *argv]

    def kill(self, number: int) -> int:
        """SIGKILL every process in command *number*'s cgroup (the kernel sends them all
        before the write returns); how many there were. 0 if it has no cgroup (any more)."""
        return _kill(self.path(number))

    def remove(self, number: int) -> bool:
        """Remove command *number*'s cgroup if it is empty: True once it is gone."""
        try:
            os.rmdir(self.path(number))
        except FileNotFoundError:
            return True
        except OSError:  # EBUSY: killed processes not yet gone
            return False
        return True

    def close(self, wait: float = EMPTY_WAIT) -> bool:
        """Kill every process in every command's cgroup, and remove them all once empty
        (waiting up to *wait* seconds): True once nothing is left."""
        return kill_and_remove(self.parent, wait)


def kill_and_remove(parent: str, wait: float = EMPTY_WAIT) -> bool:
    """SIGKILL everything in the cgroup *parent* (and under it), wait up to *wait* seconds
    for it to be empty, and remove its child cgroups and itself. True if it is gone (or
    was never there). The watchdog calls this when the server died without doing it."""
    if not os.path.isdir(parent):
        return True
    _kill(parent)
    _wait_empty(parent, wait)
    with contextlib.suppress(OSError):
        for entry in os.scandir(parent):
            if entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.rmdir(entry.path)
    try:
        os.rmdir(parent)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _kill(path: str) -> int:
    try:
        with open(os.path.join(path, "cgroup.procs"), "rb") as procs:
            count = len(procs.read().split())
        _write(os.path.join(path, "cgroup.kill"), "1")
    except OSError:
        return 0
    return count


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _wait_empty(path: str, seconds: float) -> bool:
    """Wait until no process is left in the cgroup *path* or under it ("populated 0" in
    cgroup.events, which the kernel signals with POLLPRI when it changes)."""
    try:
        events = os.open(os.path.join(path, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return True
    try:
        poller = select.poll()
        poller.register(events, select.POLLPRI)
        deadline = time.monotonic() + seconds
        while b"populated 1" in os.pread(events, 4096, 0):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            poller.poll(left * 1000)
        return True
    finally:
        os.close(events)
