"""Running one command in its own process group, and killing every process it starts.

The server's only contact with the operating system's processes. A command is started
with plain pipes whose read ends the event loop watches directly, and its exit is seen
through a pidfd: no pipe transports, no stream buffers, no child-watcher thread. Here that
costs about 0.12 ms of the server's CPU per command, against 0.20 ms for asyncio's
subprocess with a pidfd watcher and 0.33 ms with the default thread-per-child one
(Python 3.11, 2 cores). The cookie below costs 20 to 100 us more (Popen encodes the whole
environment when it is given one: two calls per variable), the subreaper's look for
leftovers about 20 us: a spawn and reap went from 0.60 to 0.74 ms median on a busy machine.
The server forks and execs on threads (spawn_in_thread): the event loop goes on serving
while a child is started, which is most of a short command's cost. The searches of /proc
described below run on a thread too (scan_in_thread), one at a time.

Every process a command starts is the command's, wherever it goes. Its process group is
not enough (``setsid``, a double fork into a new group, a daemon leave it), so each
command's environment carries a cookie, ``RCMD_COMMAND_ID=<server id>-<n>``, that fork
and exec pass on. Killing a command kills its group, then every process of our user whose
/proc/PID/environ holds its cookie, in rounds until none is left (as Jenkins'
ProcessTreeKiller does). The rcmd-server process is a child subreaper (Linux): orphans
come back to it, it reaps them, and a command that ends with one still alive is followed by
a sweep that kills whatever carries the cookie of an ended command; at shutdown it kills
its orphans even without a cookie. Its watchdog process outlives it only to kill every
process carrying its cookies if it dies without cleaning up (SIGKILL, a crash).
What this cannot catch: a process that left the group with an environment lacking the
cookie (``env -i``, a daemon that execs with a clean environment), until shutdown; one
running as another user; anything at all, without /proc (then only the group is killed).
Where the server may create cgroups (rcmd.cgroup), each command also runs in a cgroup of
its own, entered before anything of it runs, and every kill above starts with its
cgroup.kill, which reaches those too (the watchdog's as well); the rest stays, as a net for
a process that root moved out of its cgroup.

POSIX only (setsid, killpg); on systems without pidfd (not Linux, or Linux < 5.3) a thread
per command waits for its exit instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import queue
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from .cgroup import CommandCgroups, Unavailable, kill_and_remove

log = logging.getLogger("rcmd.server")

#: How much of a pipe one read takes.
OUTPUT_CHUNK_SIZE = 256 * 1024
#: Pipes are enlarged to this (Linux, F_SETPIPE_SZ): with the default 64 KiB, each wakeup
#: moves at most 64 KiB; 1 MiB lets a fast command fill whole chunks, and lets the server
#: hand a command's stdin over in large writes (uploads into `cat`: 471 -> 809 MiB/s). It is
#: kernel memory, taken as it is filled, within /proc/sys/fs/pipe-max-size, not the server's.
PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = 1031


DEFAULT_SHELL = "/bin/sh"

#: The environment variable that marks every process a command starts (fork and exec keep it).
COOKIE_VARIABLE = "RCMD_COMMAND_ID"
#: Scan-and-kill rounds before giving up on a tree that keeps forking: a process that has
#: been sent SIGKILL forks no more, so each round can only find children forked before it.
KILL_ROUNDS = 20
#: After a command ends leaving processes, what it left outside its group is swept this
#: much later, at most one scan of /proc (about 1 ms per 100 processes) per this interval
#: however many end.
SWEEP_DELAY = 0.5
#: Where killing may block (the watchdog, shutdown), scans are this far apart, until one
#: finds nothing: a process caught mid-exec, whose environment reads empty, is seen next.
SETTLE = 0.02
#: On shutdown, how long the watchdog has to do its last sweep and exit.
WATCHDOG_EXIT_WAIT = 5.0
#: At shutdown, how long each round of killed orphans may take to die (their own orphans
#: come to the server only then, for the next round).
ORPHAN_DEATH_WAIT = 1.0
PR_SET_CHILD_SUBREAPER = 36
#: A killed command's cgroup that still holds dying processes is removed this long after,
#: then twice as long each time.
CGROUP_RETRY = 0.01


class Child:
    """A started command: its pid (also its process group), and our ends of its pipes.

    *stdout* and *stderr* are non-blocking file descriptors to read; *stdin* is one to
    write, or None when the command's stdin is /dev/null. ``returncode`` follows
    subprocess: None while it runs, -N when signal N killed it.
    """

    def __init__(
        self, popen: subprocess.Popen[bytes], stdout: int, stderr: int, stdin: int | None, number: int
    ) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.number = number  # its cookie is tracker.cookie(number)
        self.stdout = stdout
        self.stderr = stderr
        self.stdin = stdin
        self._exited: asyncio.Future[int] | None = None
        self._watched: dict[int, bool] = {}  # fd -> watched for writing (else reading)

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    async def read(self, fd: int) -> bytes:
        """The next chunk from *fd* (stdout or stderr) as soon as there is one; b"" at EOF."""
        while True:
            try:
                return os.read(fd, OUTPUT_CHUNK_SIZE)
            except BlockingIOError:
                await self._ready(fd, writable=False)

    async def write_stdin(self, data: bytes) -> None:
        """Write all of *data*, waiting while the pipe is full. BrokenPipeError: stdin closed."""
        if self.stdin is None:
            raise BrokenPipeError("stdin is closed")
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.stdin, view) :]
            except BlockingIOError:
                await self._ready(self.stdin, writable=True)

    def close_stdin(self) -> None:
        if self.stdin is not None:
            self._unwatch(self.stdin)
            os.close(self.stdin)
            self.stdin = None

    def wait(self) -> asyncio.Future[int]:
        """A future for the exit status, set once the process itself has exited (and been
        reaped), whether or not something it left behind still holds its pipes open."""
        if self._exited is None:
            loop = asyncio.get_running_loop()
            self._exited = loop.create_future()
            if self._popen.returncode is not None:  # reaped already (an exited one's pidfd is ready)
                self._exited.set_result(self._popen.returncode)
            else:
                _watch_exit(loop, self._popen, self._exited)
        return self._exited

    async def communicate(self) -> tuple[bytes, bytes]:
        """All of stdout and stderr, once both are closed and the process has exited."""

        async def read_all(fd: int) -> bytes:
            chunks = []
            while chunk := await self.read(fd):
                chunks.append(chunk)
            return b"".join(chunks)

        stdout, stderr = await asyncio.gather(read_all(self.stdout), read_all(self.stderr))
        await self.wait()
        return stdout, stderr

    def close(self) -> None:
        """Close our pipe ends (idempotent), first making the event loop forget them: a
        closed descriptor's number is soon reused, and the loop must not confuse the two.
        A read() or write_stdin() still waiting then waits until it is cancelled.
        The command counts as ended: what it left outside its group is swept soon after."""
        tracker.ended(self.number)
        for name in ("stdin", "stdout", "stderr"):
            fd = getattr(self, name)
            if fd is not None and fd >= 0:
                self._unwatch(fd)
                os.close(fd)
                setattr(self, name, None if name == "stdin" else -1)

    async def _ready(self, fd: int, *, writable: bool) -> None:
        """Wait until *fd* can be read (or written) without blocking."""
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        (loop.add_writer if writable else loop.add_reader)(fd, _set_once, ready)
        self._watched[fd] = writable
        try:
            await ready
        finally:
            self._unwatch(fd)

    def _unwatch(self, fd: int) -> None:
        writable = self._watched.pop(fd, None)
        if writable is not None:
            loop = asyncio.get_running_loop()
            (loop.remove_writer if writable else loop.remove_reader)(fd)


def spawn(command: str, *, shell: str, cwd: str, env: Mapping[str, str] | None, stdin: bool) -> Child:
    """Start *command* in *shell* as the leader of a new session (setsid: pgid == pid).

    stdout and stderr are pipes; stdin is a pipe when *stdin* is true, else /dev/null, so
    a command that reads stdin ends instead of waiting forever. *env* None means the
    server's own environment. Either way the command's cookie is added (see the module
    docstring): the server's environment is copied once, not per command.
    Raises OSError when the shell cannot be started (missing, or cwd unusable).
    The caller waits while the shell is forked and execs: spawn_in_thread() does not.
    """
    number = tracker.started()
    try:
        return _start(number, command, shell=shell, cwd=cwd, env=env, stdin=stdin)
    except BaseException:
        tracker.ended(number)
        raise


async def spawn_in_thread(
    command: str, *, shell: str, cwd: str, env: Mapping[str, str] | None, stdin: bool
) -> Child:
    """spawn(), the fork and exec on one of SPAWN_THREADS threads: meanwhile the event loop
    serves other connections. Cancelled while the shell is being started, the command is
    killed and reaped once it has started."""
    loop = asyncio.get_running_loop()
    requests = _spawners.requests()
    number = tracker.started()
    starting: asyncio.Future[Child] = loop.create_future()
    start = functools.partial(_start, number, command, shell=shell, cwd=cwd, env=env, stdin=stdin)
    requests.put((loop, starting, number, start))
    tracker.spawning += 1  # before anything else runs on the loop, such as reap_orphans()
    return await starting  # cancelled, it is cancelled too: _started() then kills the command


#: Threads that fork and exec commands (spawn_in_thread). The event loop would otherwise wait
#: 0.15 to 0.3 ms a command, serving nobody, while the child is forked and execs (the GIL is
#: released meanwhile). With 50 clients on 2 busy cores, in one run: 238 commands/s spawning
#: on the loop, 350 with one thread, 445 with two (two commands can start at once); see
#: benchmarks/spawners.py for these and the other ways measured (posix_spawn, a helper process).
SPAWN_THREADS = 2

_SpawnRequest = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Child]", int, Callable[[], Child]]


def _serve_spawns(requests: queue.SimpleQueue[_SpawnRequest]) -> None:
    """A spawn thread: start each command asked for, and hand it to the loop that asked."""
    while True:
        loop, starting, number, start = requests.get()
        child: Child | None = None
        error: BaseException | None = None
        try:
            child = start()
        except BaseException as exc:  # to the caller, whatever it is
            error = exc
        try:
            loop.call_soon_threadsafe(_started, starting, number, child, error)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            if child is not None:
                signal_group(child)


def _started(
    starting: asyncio.Future[Child], number: int, child: Child | None, error: BaseException | None
) -> None:
    """On the loop: a spawn thread is done with a spawn_in_thread() request. A command whose
    caller was cancelled meanwhile is killed, its pipes closed, and reaped when it has died."""
    tracker.spawned()
    if child is None:
        tracker.ended(number)
        if not starting.cancelled():
            assert error is not None
            starting.set_exception(error)
    elif starting.cancelled():
        kill_tree(child)
        child.close()
        child.wait()
    else:
        starting.set_result(child)


def _start(
    number: int, command: str, *, shell: str, cwd: str, env: Mapping[str, str] | None, stdin: bool
) -> Child:
    """spawn() for command *number*; thread-safe: it touches the tracker only to add the
    shell's pid to its leaders."""
    pipes = [os.pipe2(os.O_CLOEXEC) for _ in range(3 if stdin else 2)]
    ours = [pipes[0][0], pipes[1][0]] + ([pipes[2][1]] if stdin else [])
    theirs = [pipes[0][1], pipes[1][1]] + ([pipes[2][0]] if stdin else [])
    try:
        for fd in ours:  # output, and stdin if any
            _enlarge(fd)
        popen = subprocess.Popen(
            tracker.command_argv(number, [shell, "-c", command]),
            stdin=theirs[2] if stdin else subprocess.DEVNULL,
            stdout=theirs[0],
            stderr=theirs[1],
            cwd=cwd,
            env=tracker.environment(number, env),
            start_new_session=True,
        )
        tracker.leaders.add(popen.pid)
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    for fd in ours:
        os.set_blocking(fd, False)
    return Child(popen, ours[0], ours[1], ours[2] if stdin else None, number)


def signal_group(child: Child, sig: int | None = None) -> None:
    """Send *sig* (default SIGKILL) to every process in *child*'s group; one gone is fine.

    Safe after the leader has been reaped: the group id stays reserved while any member
    lives, and once none does, killpg finds nothing.
    """
    try:
        os.killpg(child.pid, signal.SIGKILL if sig is None else sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_tree(child: Child) -> asyncio.Future[int]:
    """SIGKILL *child*'s cgroup (if it has one) and group now, then every process carrying
    its cookie, found by a scan of /proc on the scan thread (scan_in_thread): a future for
    how many it found, set on the loop once they have been sent SIGKILL (and exited orphans
    reaped). The scan stays with a cgroup: a command running as root can move a process
    out of its cgroup, and one that keeps its cookie is still found."""
    tracker.kill_cgroup(child.number)
    signal_group(child)
    cookie = tracker.cookie(child.number).encode()
    found = scan_in_thread(tracker.prefix, cookie.__eq__)
    found.add_done_callback(_reap_after_scan)
    return found


def _reap_after_scan(found: asyncio.Future[int]) -> None:
    tracker.reap_orphans()


#: Scans of /proc (kill_tree(), the sweep) run on one thread of their own, one at a time, in
#: the order asked: each opens a few hundred files (every process of our user, which for
#: root is every process), 1 to 10 ms on a busy machine, which the event loop would spend
#: serving nobody. They touch no shared state: the loop hands each its cookie test, and
#: acts on the outcome (logging, reaping, the next sweep) itself.
_ScanRequest = tuple[asyncio.AbstractEventLoop, "asyncio.Future[int]", Callable[[], int]]


def scan_in_thread(prefix: bytes, wanted: Callable[[bytes], bool]) -> asyncio.Future[int]:
    """kill_marked(*prefix*, *wanted*) on the scan thread: a future for its result, set on
    the running loop. *wanted* is called on that thread: it must only read what no one
    changes meanwhile. Cancelling the future does not stop the scan."""
    loop = asyncio.get_running_loop()
    requests = _scanner.requests()
    found: asyncio.Future[int] = loop.create_future()
    requests.put((loop, found, functools.partial(kill_marked, prefix, wanted)))
    return found


def _serve_scans(requests: queue.SimpleQueue[_ScanRequest]) -> None:
    """The scan thread: run each scan asked for, and hand its outcome to the loop that asked."""
    while True:
        loop, found, scan = requests.get()
        killed, error = 0, None
        try:
            killed = scan()
        except BaseException as exc:  # to the caller, whatever it is
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(_scanned, found, killed, error)


def _scanned(found: asyncio.Future[int], killed: int, error: BaseException | None) -> None:
    if found.done():
        return
    if error is not None:
        found.set_exception(error)
    else:
        found.set_result(killed)


_Request = TypeVar("_Request")


class _Workers(Generic[_Request]):
    """A queue of requests served by daemon threads, each running *serve* on it for ever.

    The threads start on first use, and again in a fork of the process, which has only the
    thread that forked: the fork gets a queue of its own, as requests queued before it are
    its parent's to serve. A plain queue and call_soon_threadsafe() (in *serve*) rather than
    run_in_executor(): that chains a concurrent future to an asyncio one, and cost 40% more
    of the loop's CPU a spawned command.
    """

    def __init__(self, serve: Callable[[queue.SimpleQueue[_Request]], None], names: list[str]) -> None:
        self._serve = serve
        self._names = names  # one thread each
        self._queue: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._pid = 0  # the process whose threads serve _queue (none after a fork)

    def requests(self) -> queue.SimpleQueue[_Request]:
        """The queue, its threads started if this process has none yet."""
        if self._pid != os.getpid():  # first use, or a fork of the process: no threads yet
            self._queue, self._pid = queue.SimpleQueue(), os.getpid()
            for name in self._names:
                threading.Thread(target=self._serve, args=(self._queue,), name=name, daemon=True).start()
        return self._queue


_spawners = _Workers[_SpawnRequest](_serve_spawns, [f"rcmd-spawn-{n}" for n in range(SPAWN_THREADS)])
_scanner = _Workers[_ScanRequest](_serve_scans, ["rcmd-scan"])


def marked_processes(prefix: bytes, unseen: list[int] | None = None) -> Iterator[tuple[int, bytes]]:
    """(pid, cookie) of each process of our user whose cookie starts with *prefix*.

    A scan of /proc: O(processes). A zombie's or a kernel thread's environment reads empty,
    and so does, for a moment, that of a process in the middle of an exec: the pids of
    those last are added to *unseen*, if given, to be looked at again.
    """
    uid = os.getuid()
    me = os.getpid()
    try:
        entries = os.scandir("/proc")
    except OSError:
        return  # no /proc: nothing can be found
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if pid == me:
                continue
            try:
                if entry.stat().st_uid != uid:
                    continue
                cookie = _cookie_of(pid)
                if cookie == b"" and unseen is not None and _execing(pid):
                    unseen.append(pid)
            except OSError:
                continue  # gone meanwhile, or not ours to read
            if cookie and cookie.startswith(prefix):
                yield pid, cookie


def kill_marked(
    prefix: bytes, wanted: Callable[[bytes], bool] = lambda cookie: True, *, settle: float = 0.0
) -> int:
    """SIGKILL every process whose cookie starts with *prefix* and is *wanted*; how many.

    Scans again until a scan finds none that was not already killed (at most KILL_ROUNDS).
    With *settle*, rounds are that far apart and go on until a scan finds no process at
    all, nor any newly caught in the middle of an exec (whose environment reads empty for a
    moment; one that reads empty in two rounds running has an empty environment, as every
    server's watchdog does, and is not waited for): this may block for up to KILL_ROUNDS *
    settle, so it is for the watchdog and shutdown. The server's event loop relies instead
    on the sweep after a command ends.
    """
    killed: set[int] = set()
    empty: set[int] = set()  # read empty in the round before
    for _ in range(KILL_ROUNDS):
        unseen: list[int] = []
        found = {
            pid for pid, cookie in marked_processes(prefix, unseen if settle else None) if wanted(cookie)
        }
        for pid in found:
            _kill_if_marked(pid, prefix, wanted)
        if settle:
            if not found and empty.issuperset(unseen):
                break
            empty = set(unseen)
            time.sleep(settle)
        elif found <= killed:  # only the dying, whose memory is not yet released
            break
        killed |= found
    return len(killed)


def _execing(pid: int) -> bool:
    """Whether *pid*, whose environment reads empty, may be in the middle of an exec:
    neither a zombie nor a kernel thread (PF_KTHREAD in the flags of /proc/PID/stat)."""
    fields = _read(f"/proc/{pid}/stat").rsplit(b")", 1)[1].split()
    state, flags = fields[0], int(fields[6])
    return state not in (b"Z", b"X") and not flags & 0x00200000


def _read(path: str) -> bytes:
    """All of the file at *path*: plain os.open() and os.read(), a third of what open()
    costs (its buffered file object), for the few hundred small files of a scan."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, 1 << 16)]
        while len(chunks[-1]) == 1 << 16:  # procfs fills a read but at the end; most are 1 to 4 KiB
            chunks.append(os.read(fd, 1 << 16))
        return b"".join(chunks)
    finally:
        os.close(fd)


def _cookie_of(pid: int) -> bytes | None:
    """The value of COOKIE_VARIABLE in *pid*'s initial environment; None if it has none,
    b"" if its environment reads empty."""
    data = _read(f"/proc/{pid}/environ")
    if not data:
        return b""  # a zombie, a kernel thread, or a process in the middle of an exec
    key = COOKIE_VARIABLE.encode() + b"="
    if data.startswith(key):
        start = len(key)
    else:
        at = data.find(b"\0" + key)
        if at < 0:
            return None
        start = at + 1 + len(key)
    end = data.find(b"\0", start)
    return data[start:] if end < 0 else data[start:end]


def _kill_if_marked(pid: int, prefix: bytes, wanted: Callable[[bytes], bool]) -> None:
    """SIGKILL *pid* if it still carries a cookie under *prefix*: through a pidfd, checked
    after opening it, so a pid reused meanwhile by another process is never hit."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # gone, or no pidfd: then the small race of kill() is accepted
        with contextlib.suppress(OSError):
            cookie = _cookie_of(pid)
            if cookie is not None and cookie.startswith(prefix) and wanted(cookie):
                os.kill(pid, signal.SIGKILL)
        return
    try:
        cookie = _cookie_of(pid)
        if cookie is not None and cookie.startswith(prefix) and wanted(cookie):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(pidfd)


class ProcessTracker:
    """The commands of this process: their cookies, the sweep, the subreaper, the watchdog.

    One per process (``tracker``): cookies, the subreaper and the watchdog are process-wide.
    Command n's cookie is ``<server id>-n``; the server id is the pid and a random part, so
    cookies of two servers, or of one server restarted, never match.
    """

    def __init__(self) -> None:
        self.server_id = ""
        self._owner_pid = 0
        self._next = 0
        self.live: set[int] = set()
        self.leaders: set[int] = set()  # pids of live commands' shells, reaped by their Child
        self.subreaper = False
        self.spawning = 0  # spawn_in_thread() calls whose shell's pid may not be in leaders yet
        self._reap_deferred = False
        self._base_env: dict[str, str] | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._watchdog_pipe: int | None = None
        self.cgroups: CommandCgroups | None = None  # a cgroup per command (start(cgroups=True))
        self._unremoved: set[int] = set()  # commands whose killed cgroup was not empty yet
        self._removal: asyncio.TimerHandle | None = None

    def _ensure_id(self) -> None:
        if self._owner_pid != os.getpid():  # first use, or a fork of the server
            self._owner_pid = os.getpid()
            self.server_id = f"{os.getpid()}.{secrets.token_hex(4)}"
            self.live.clear()
            self.leaders.clear()
            self._watchdog = None
            self._watchdog_pipe = None
            self.cgroups = None  # the server's, not a fork's
            self._unremoved.clear()
            self._removal = None

    @property
    def prefix(self) -> bytes:
        """What every cookie of this process starts with."""
        self._ensure_id()
        return f"{self.server_id}-".encode()

    def cookie(self, number: int) -> str:
        return f"{self.server_id}-{number}"

    def started(self) -> int:
        """A new command's number, live until ended()."""
        self._ensure_id()
        self._next += 1
        self.live.add(self._next)
        return self._next

    def ended(self, number: int) -> None:
        """Command *number* is over: sweep what it left, soon (batched with other commands)."""
        if number not in self.live:
            return
        self.live.discard(number)
        if self.cgroups is not None:  # nothing of it outlives it: its cgroup now, then removed
            self.cgroups.kill(number)
            if not self.cgroups.remove(number):
                self._remove_later(number)
        if self.subreaper and not self._has_orphans():
            return  # nothing outlived its parent: nothing can have escaped (see _has_orphans)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.sweep()
            return
        if self._sweep is None or self._sweep_loop is not loop:  # none due, or on a loop gone
            self._sweep = loop.call_later(SWEEP_DELAY, self.sweep)
            self._sweep_loop = loop

    def command_argv(self, number: int, argv: list[str]) -> list[str]:
        """What to start for command *number*, whose shell's argv is *argv*: *argv* itself,
        or with cgroups, the gate that moves it into its new cgroup first (rcmd.cgroup).
        Thread-safe. A cgroup that cannot be created leaves only the cookie, and is logged."""
        cgroups = self.cgroups
        if cgroups is None or not os.access(argv[0], os.X_OK):  # a missing shell: Popen says so
            return argv
        try:
            return cgroups.gated(number, argv)
        except OSError as exc:
            log.warning("command %d: no cgroup (%s): its cookie alone finds its processes", number, exc)
            return argv

    def kill_cgroup(self, number: int) -> None:
        """SIGKILL every process in command *number*'s cgroup, if it has one."""
        if self.cgroups is not None:
            self.cgroups.kill(number)

    def _remove_later(self, number: int) -> None:
        """Remove command *number*'s killed cgroup once its processes are gone: tried again
        after CGROUP_RETRY, then twice as long each time up to SWEEP_DELAY (if no loop
        runs, at close())."""
        self._unremoved.add(number)
        self._schedule_removal(CGROUP_RETRY)

    def _schedule_removal(self, delay: float) -> None:
        if self._removal is None:
            with contextlib.suppress(RuntimeError):
                self._removal = asyncio.get_running_loop().call_later(delay, self._remove_pending, delay)

    def _remove_pending(self, delay: float) -> None:
        self._removal = None
        if self.cgroups is not None:
            self._unremoved = {number for number in self._unremoved if not self.cgroups.remove(number)}
            if self._unremoved:
                self._schedule_removal(min(2 * delay, SWEEP_DELAY))

    def environment(self, number: int, env: Mapping[str, str] | None) -> dict[str, str]:
        """*env* (None: the server's own) with the command's cookie. The server's own is
        copied once: building a mapping costs about 20 us a command, copying os.environ 60."""
        if env is None:
            if self._base_env is None:
                self._base_env = dict(os.environ)
            env = self._base_env
        return {**env, COOKIE_VARIABLE: self.cookie(number)}

    def sweep(self) -> None:
        """Kill every process carrying a cookie of a command that had ended when this was
        called. Which ones had is read here, on the loop; the scan runs later, on the scan
        thread (at once when no loop runs), and spares the commands started meanwhile."""
        self._sweep = None
        prefix = self.prefix
        live, last = set(self.live), self._next  # a set() copy: servers in threads

        def ended(cookie: bytes) -> bool:
            number = cookie[len(prefix) :]
            if not number.isdigit():
                return True  # not a cookie we gave: no command's
            return int(number) <= last and int(number) not in live

        try:
            asyncio.get_running_loop()
        except RuntimeError:  # none: at once (a server thread's loop has stopped)
            self._swept(kill_marked(prefix, ended))
            return
        scan_in_thread(prefix, ended).add_done_callback(lambda scan: self._swept(scan.result()))

    def _swept(self, killed: int) -> None:
        """A sweep's scan is over (on the loop, if one runs)."""
        if killed:
            log.info("killed %d process(es) left behind by ended commands", killed)
            # Once more, later: one caught mid-exec (its environment empty) is seen then.
            with contextlib.suppress(RuntimeError):
                loop = asyncio.get_running_loop()
                if self._sweep is None or self._sweep_loop is not loop:
                    self._sweep = loop.call_later(SWEEP_DELAY, self.sweep)
                    self._sweep_loop = loop
        self.reap_orphans()

    def start(self, *, subreaper: bool, cgroups: bool = False) -> str:
        """Set up for a server process (rcmd-server calls it): the watchdog, the subreaper
        if asked (it changes where orphans of anything the process starts go), and a cgroup
        per command if asked and possible (rcmd.cgroup: the process's own cgroup must
        take a child). Without it (BackgroundServer, spawn() alone) cookies and sweeps still
        work, but a killed process leaves its commands running. Returns a sentence for the
        log saying which mechanisms are active."""
        self._ensure_id()
        if self._watchdog is None:
            self._start_watchdog()
        no_cgroup = "no cgroup"
        if cgroups and self.cgroups is None:
            try:
                self.cgroups = CommandCgroups.create(self._watchdog.pid if self._watchdog else None)
            except Unavailable as exc:
                no_cgroup = f"no cgroup ({exc})"
            else:
                self._tell_watchdog()
        if subreaper and not self.subreaper:
            self.subreaper = _become_subreaper()
            if self.subreaper:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    asyncio.get_running_loop().add_signal_handler(signal.SIGCHLD, self.reap_orphans)
        cookies = os.path.isdir("/proc/self")
        parts = [
            f"process group, and environment cookie {COOKIE_VARIABLE}={self.server_id}-N found in /proc"
            if cookies
            else "process group only (no /proc: processes that leave the group are not found)",
            "child subreaper" if self.subreaper else "not a subreaper",
            f"watchdog pid {self._watchdog.pid}" if self._watchdog is not None else "no watchdog",
            f"a cgroup per command under {self.cgroups.parent}, killed by cgroup.kill"
            if self.cgroups is not None
            else no_cgroup,
        ]
        return "killing a command's processes: " + "; ".join(parts)

    def close(self) -> None:
        """The server is done: kill whatever any command left, orphans, then the watchdog."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        if self._removal is not None:
            self._removal.cancel()
            self._removal = None
        if self._owner_pid == os.getpid() and self.cgroups is not None:
            if not self.cgroups.close():
                log.warning("%s: processes still there after SIGKILL: not removed", self.cgroups.parent)
            self.cgroups = None
            self._unremoved.clear()
        if self._owner_pid == os.getpid():
            kill_marked(self.prefix, settle=SETTLE)
            if self.subreaper:
                self._kill_orphans()
            self.reap_orphans()
        self._stop_watchdog()

    def _kill_orphans(self) -> None:
        """SIGKILL every child of ours but the watchdog, in rounds (their orphans come to us
        in turn): at shutdown, when every command has ended, these are what they left,
        found even without a cookie (``env -i``) as long as they outlived their parent."""
        killed: set[int] = set()
        for _ in range(KILL_ROUNDS):
            try:
                found = set(self._children()) - self.leaders - killed
            except OSError:
                return
            if self._watchdog is not None:
                found.discard(self._watchdog.pid)
            if not found:
                break
            pidfds = []
            for pid in found:
                with contextlib.suppress(OSError):
                    pidfds.append(os.pidfd_open(pid))  # our child: its pid is not reused unreaped
                    signal.pidfd_send_signal(pidfds[-1], signal.SIGKILL)
            _wait_dead(pidfds, ORPHAN_DEATH_WAIT)  # their children come to us only then
            for pidfd in pidfds:
                os.close(pidfd)
            killed |= found
        if killed:
            log.info("killed %d orphan(s) at shutdown", len(killed))

    def _children(self, *, main_thread_only: bool = False) -> Iterator[int]:
        """Our children, from /proc/PID/task/TID/children (OSError where there is none):
        those of every thread, or of the main thread only."""
        me = os.getpid()
        for tid in [str(me)] if main_thread_only else os.listdir(f"/proc/{me}/task"):
            children = os.open(f"/proc/{me}/task/{tid}/children", os.O_RDONLY)
            try:
                listed = os.read(children, 1 << 16)  # plain reads: this is per command
            finally:
                os.close(children)
            if len(listed) == 1 << 16:
                raise OSError("too many children to list")
            yield from map(int, listed.split())

    def _has_orphans(self) -> bool:
        """Whether we have a child that is not a live command's shell (nor the watchdog).

        As subreaper, once a command's shell has exited every process it left is either
        such a child of ours or a descendant of one, so no such child means nothing to
        sweep: a normal command costs this (one small read), not a scan. Only the main
        thread's children are read: an orphan is handed to the subreaper's first live
        thread, its main thread (Linux's find_new_reaper), whichever thread forked its
        ancestor; reading every thread's list cost 4 times as much with 2 spawn threads.
        A shell started on a spawn thread is that thread's child, so one whose pid is not
        yet in leaders is not mistaken for an orphan. True when it cannot be told (no
        /proc/PID/task/TID/children).
        """
        watchdog = self._watchdog.pid if self._watchdog is not None else None
        try:
            children = self._children(main_thread_only=True)
            return any(pid not in self.leaders and pid != watchdog for pid in children)
        except OSError:
            return True

    def reap_orphans(self) -> None:
        """Reap exited orphans (we are their subreaper), never a live command's shell: its
        Child reaps it, and calls this again after. Does nothing when not a subreaper."""
        if not self.subreaper:
            return
        while True:
            try:
                exited = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if exited is None:
                return
            pid = exited.si_pid
            if pid in self.leaders:
                return  # its Child reaps it first (and calls us again)
            if self.spawning:
                self._reap_deferred = True  # it may be a shell just forked: see spawned()
                return
            if self._watchdog is not None and pid == self._watchdog.pid:
                log.warning("the watchdog (pid %d) died: restarting it", pid)
                self._watchdog.wait()
                self._watchdog = None
                self._start_watchdog()
                continue
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)  # a zombie already: returns at once

    def spawned(self) -> None:
        """A spawn_in_thread() is over: its shell, if started, is in leaders. An exited
        child whose reaping waited for this is reaped now."""
        self.spawning -= 1
        if self._reap_deferred and not self.spawning:
            self._reap_deferred = False
            self.reap_orphans()

    def _start_watchdog(self) -> None:
        """Start the process that kills our commands' processes if we die without doing so.

        It holds the read end of a pipe whose write end only we hold (close-on-exec, so no
        command inherits it): EOF means we are gone. Its own session, so a Ctrl-C or a
        SIGHUP meant for the server's terminal does not reach it.
        """
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        code = f"import sys; sys.path.insert(0, {package_root!r}); from rcmd.process import watchdog_main; watchdog_main()"
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-I", "-c", code, self.server_id],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                env={},  # no cookie, whatever ours holds
                start_new_session=True,
            )
        except OSError as exc:
            os.close(write_end)
            log.warning("cannot start the watchdog: %s (a killed server would leave its commands)", exc)
            return
        finally:
            os.close(read_end)
        self._watchdog_pipe = write_end
        self._tell_watchdog()

    def _tell_watchdog(self) -> None:
        """Give the watchdog the path of our cgroups, which it empties if we die."""
        if self._watchdog_pipe is not None and self.cgroups is not None:
            os.write(self._watchdog_pipe, self.cgroups.parent.encode() + b"\n")

    def _stop_watchdog(self) -> None:
        if self._watchdog_pipe is not None:
            os.close(self._watchdog_pipe)  # EOF: it sweeps (finding nothing) and exits
            self._watchdog_pipe = None
        if self._watchdog is not None:
            try:
                self._watchdog.wait(WATCHDOG_EXIT_WAIT)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()
            self._watchdog = None


tracker = ProcessTracker()


def watchdog_main() -> None:
    """The watchdog (see ProcessTracker._start_watchdog): wait for EOF on stdin, then kill
    everything in the cgroup whose path the server wrote there, if any, and remove it, then
    every process carrying a cookie of the server whose id is argv[1], and exit."""
    server_id = sys.argv[1]
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    told = b""
    while True:
        try:
            if not (data := os.read(0, 4096)):
                break
            told += data
        except InterruptedError:
            continue
        except OSError:
            break
    for line in told.decode(errors="replace").splitlines():
        kill_and_remove(line)
    kill_marked(f"{server_id}-".encode(), settle=SETTLE)


def _wait_dead(pidfds: list[int], seconds: float) -> None:
    """Wait until every process of *pidfds* has exited, or *seconds* have passed."""
    deadline = time.monotonic() + seconds
    waiting = list(pidfds)
    while waiting and (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select(waiting, [], [], left)
        waiting = [pidfd for pidfd in waiting if pidfd not in ready]


def _become_subreaper() -> bool:
    """prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants are re-parented to us (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _enlarge(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except (ImportError, OSError):
        pass  # not Linux, or over pipe-max-size: the default size works, more slowly


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _watch_exit(
    loop: asyncio.AbstractEventLoop, popen: subprocess.Popen[bytes], exited: asyncio.Future[int]
) -> None:
    """Set *exited* to the exit status once *popen* exits: a pidfd where there is one."""

    def reap() -> None:
        code = popen.wait()  # even when nobody waits any more: no zombies
        tracker.leaders.discard(popen.pid)
        tracker.reap_orphans()  # an orphan's zombie may have queued behind this one
        if not exited.done():
            exited.set_result(code)

    pidfd_open = getattr(os, "pidfd_open", None)
    try:
        pidfd = pidfd_open(popen.pid) if pidfd_open is not None else None
    except OSError:  # ENOSYS on an old kernel; ProcessLookupError cannot happen (not reaped)
        pidfd = None
    if pidfd is not None:

        def on_exit() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            reap()  # the pidfd is readable: it has exited, so wait() returns at once

        loop.add_reader(pidfd, on_exit)
        return

    def waiter() -> None:  # pragma: no cover - only without pidfd
        popen.wait()
        loop.call_soon_threadsafe(reap)

    threading.Thread(target=waiter, name=f"rcmd-wait-{popen.pid}", daemon=True).start()
