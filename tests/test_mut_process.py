"""rcmd.process in-process: spawning, the cookie, the kill, the sweep, the subreaper and the
watchdog, each checked with real processes and what /proc says of them, so mutation testing
(make mutate-rest) sees this code run. Every process a test starts is killed by the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rcmd import process
from rcmd.process import (
    COOKIE_VARIABLE,
    PIPE_SIZE,
    Child,
    ProcessTracker,
    kill_marked,
    kill_tree,
    marked_processes,
    signal_group,
    spawn,
    spawn_in_thread,
    tracker,
)

SH = "/bin/sh"
F_GETPIPE_SZ = 1032
WAIT = 15.0


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coroutine, WAIT))


def gone(pid: int, timeout: float = WAIT) -> bool:
    """Wait (on a pidfd) until *pid* has exited; True if it has."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def started(child: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """*child* once it has exec'd (its /proc environment is its own, "A=1" first or last)."""
    environ = Path(f"/proc/{child.pid}/environ")
    for _ in range(100_000):  # a condition, checked: fork and exec take a moment
        with contextlib.suppress(OSError):
            if b"A=1\0" in environ.read_bytes():
                return child
        select.select([], [], [], 0.001)
    raise AssertionError(f"pid {child.pid} never exec'd")


@contextlib.contextmanager
def marked(cookie: str, *, first: bool = False) -> Iterator[subprocess.Popen[bytes]]:
    """A `sleep 60` carrying *cookie* (first in its environment, or after another variable)."""
    env = {COOKIE_VARIABLE: cookie, "A": "1"} if first else {"A": "1", COOKIE_VARIABLE: cookie}
    child = started(subprocess.Popen(["sleep", "60"], env=env))
    try:
        yield child
    finally:
        child.kill()
        child.wait()


# ---------------------------------------------------------------------------- spawning


def test_spawn_output_status_and_pipes():
    async def main() -> None:
        child = spawn("echo out; echo err >&2; exit 7", shell=SH, cwd="/", env=None, stdin=False)
        assert isinstance(child, Child)
        assert child.stdin is None
        assert os.getpgid(child.pid) == child.pid  # its own group (and session)
        assert not os.get_blocking(child.stdout)
        assert not os.get_blocking(child.stderr)
        assert fcntl.fcntl(child.stdout, F_GETPIPE_SZ) == PIPE_SIZE
        assert child.number in tracker.live
        assert await child.communicate() == (b"out\n", b"err\n")
        assert child.returncode == 7
        assert await child.wait() == 7
        assert await child.read(child.stdout) == b""
        child.close()
        assert (child.stdin, child.stdout, child.stderr) == (None, -1, -1)
        assert child.number not in tracker.live
        child.close()  # twice is fine

    run(main())


def test_spawn_stdin_cwd_env_and_the_cookie(tmp_path):
    async def main() -> None:
        child = spawn(
            'cat; pwd; echo "$X $RCMD_COMMAND_ID"', shell=SH, cwd=str(tmp_path), env={"X": "x"}, stdin=True
        )
        assert child.stdin is not None
        assert not os.get_blocking(child.stdin)
        data = bytes(range(256)) * 4096  # 1 MiB: more than the pipe holds at once
        writing = asyncio.ensure_future(child.write_stdin(data))
        out = asyncio.ensure_future(child.communicate())
        await writing
        child.close_stdin()
        assert child.stdin is None
        child.close_stdin()  # twice is fine
        stdout, stderr = await out
        assert stdout == data + f"{tmp_path}\nx {tracker.cookie(child.number)}\n".encode()
        assert stderr == b""
        child.close()

    run(main())


def test_the_cookie_and_the_servers_environment():
    number = tracker.started()
    try:
        env = tracker.environment(number, None)
        assert env[COOKIE_VARIABLE] == f"{tracker.server_id}-{number}"
        assert set(env) == {*os.environ, COOKIE_VARIABLE}
        assert env["PATH"] == os.environ["PATH"]
        base = tracker._base_env
        assert base is not None
        assert COOKIE_VARIABLE not in base  # the copy is the server's own, without a cookie
        assert tracker.environment(number, None) == env
        assert tracker._base_env is base  # copied once
        assert tracker.environment(number, {"A": "1"}) == {"A": "1", COOKIE_VARIABLE: tracker.cookie(number)}
        assert tracker.prefix == f"{tracker.server_id}-".encode()
        assert tracker.server_id.startswith(f"{os.getpid()}.")
        assert len(tracker.server_id.split(".")[1]) == 8
    finally:
        tracker.ended(number)
    assert number not in tracker.live
    assert tracker.started() == number + 1
    tracker.ended(number + 1)


def test_write_to_a_closed_stdin_is_a_broken_pipe():
    async def main() -> None:
        child = spawn("true", shell=SH, cwd="/", env=None, stdin=False)
        with pytest.raises(BrokenPipeError, match=r"^stdin is closed$"):
            await child.write_stdin(b"x")
        await child.communicate()
        child.close()

    run(main())


def test_a_spawn_that_fails_leaves_no_live_number(tmp_path):
    before = set(tracker.live)
    with pytest.raises(FileNotFoundError):
        spawn("true", shell=SH, cwd=str(tmp_path / "missing"), env=None, stdin=True)
    with pytest.raises(FileNotFoundError):
        spawn("true", shell=str(tmp_path / "no-sh"), cwd="/", env=None, stdin=False)

    async def in_thread() -> None:
        with pytest.raises(FileNotFoundError):
            await spawn_in_thread("true", shell=SH, cwd=str(tmp_path / "missing"), env=None, stdin=False)
        assert tracker.spawning == 0

    run(in_thread())
    assert set(tracker.live) == before


def test_spawn_in_thread_runs_and_counts_its_spawn():
    async def main() -> None:
        starting = asyncio.ensure_future(spawn_in_thread("echo $$", shell=SH, cwd="/", env=None, stdin=False))
        await asyncio.sleep(0)
        assert tracker.spawning == 1
        child = await starting
        assert tracker.spawning == 0
        assert (await child.communicate())[0] == f"{child.pid}\n".encode()
        child.close()

    run(main())


def test_a_spawn_in_thread_cancelled_midway_is_killed_and_reaped():
    async def main() -> None:
        loop = asyncio.get_running_loop()
        started: asyncio.Future[Child] = loop.create_future()
        real = process._start

        def start(*args, **kwargs):  # type: ignore[no-untyped-def]
            child = real(*args, **kwargs)
            loop.call_soon_threadsafe(started.set_result, child)
            return child

        process._start = start  # type: ignore[assignment]
        try:
            task = asyncio.ensure_future(
                spawn_in_thread("exec sleep 60", shell=SH, cwd="/", env=None, stdin=False)
            )
            await asyncio.sleep(0)
            task.cancel()
            child = await started
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            process._start = real  # type: ignore[assignment]
        while child.number in tracker.live:  # until _abandon() has run on this loop
            await asyncio.sleep(0.01)
        assert gone(child.pid)
        assert await child.wait() == -signal.SIGKILL
        assert child.stdout == -1
        assert child.number not in tracker.live

    run(main())


# ------------------------------------------------------------------------------- killing


def test_signal_group_default_is_sigkill_and_a_gone_group_is_fine():
    async def main() -> None:
        child = spawn("exec sleep 60", shell=SH, cwd="/", env=None, stdin=False)
        signal_group(child, signal.SIGTERM)
        assert await child.wait() == -signal.SIGTERM
        signal_group(child)  # gone: nothing to do, no error
        other = spawn("exec sleep 60", shell=SH, cwd="/", env=None, stdin=False)
        signal_group(other)
        assert await other.wait() == -signal.SIGKILL
        child.close()
        other.close()

    run(main())


def test_kill_tree_finds_what_left_the_group_by_its_cookie():
    async def main() -> None:
        child = spawn(
            "setsid sh -c 'echo $$; exec sleep 60' & wait", shell=SH, cwd="/", env=None, stdin=False
        )
        line = await child.read(child.stdout)
        escaped = int(line)
        assert os.getpgid(escaped) != child.pid
        # The escaped one, and the shell too if the scan saw it before the group's SIGKILL took it.
        assert await kill_tree(child) in (1, 2)
        assert gone(escaped)
        await child.wait()
        child.close()

    run(main())


def test_marked_processes_and_kill_marked_by_cookie():
    prefix = f"test-{os.getpid()}-"
    with marked(prefix + "1", first=True) as one, marked(prefix + "2") as two, marked("other-1") as other:
        found = dict(marked_processes(prefix.encode()))
        assert found == {one.pid: (prefix + "1").encode(), two.pid: (prefix + "2").encode()}
        assert kill_marked(prefix.encode(), lambda cookie: cookie.endswith(b"-2")) == 1
        assert two.wait(WAIT) == -signal.SIGKILL
        assert alive(one.pid)
        assert kill_marked(prefix.encode(), settle=0.01) == 1
        assert one.wait(WAIT) == -signal.SIGKILL
        assert alive(other.pid)
        assert kill_marked(prefix.encode()) == 0


def test_a_process_with_an_empty_environment_does_not_hold_up_a_settled_kill(monkeypatch):
    """A process whose environment reads empty may be mid-exec, so a settled kill looks again;
    one that reads empty twice running has none (every server's watchdog is such a one) and
    must not keep it scanning for KILL_ROUNDS rounds: that made each shutdown take 1 s."""
    # Popen returns once the child has exec'd: its environment is empty from here on. (Not
    # `sh -c '...; exec sleep 60'`: dash exports PWD to what it execs, so that one's environment
    # read empty only until the exec, and a scan that came after it looked no second time.)
    child = subprocess.Popen(["sleep", "60"], env={})
    try:
        assert Path(f"/proc/{child.pid}/environ").read_bytes() == b""
        rounds: list[float] = []
        monkeypatch.setattr(process.time, "sleep", rounds.append)
        assert kill_marked(f"nobody-{os.getpid()}-".encode(), settle=0.01) == 0
        # A second look, then done: more only while other processes of this (shared) machine
        # are caught mid-exec, never the KILL_ROUNDS that an empty environment alone once cost.
        assert rounds[:1] == [0.01]
        assert len(rounds) < process.KILL_ROUNDS // 2
        assert alive(child.pid)
    finally:
        child.kill()
        child.wait()


def test_the_cookie_read_from_proc():
    with marked("c-1", first=True) as first, marked("c-2") as middle:
        assert process._cookie_of(first.pid) == b"c-1"
        assert process._cookie_of(middle.pid) == b"c-2"
        assert process._execing(first.pid)
    plain = started(subprocess.Popen(["sleep", "60"], env={"A": "1", f"X{COOKIE_VARIABLE}": "no"}))
    try:
        assert process._cookie_of(plain.pid) is None
    finally:
        plain.kill()
        plain.wait()
    zombie = subprocess.Popen(["true"], env={COOKIE_VARIABLE: "z-1"})
    assert gone(zombie.pid)  # exited, not yet reaped: a zombie
    try:
        with pytest.raises(ProcessLookupError):
            process._cookie_of(zombie.pid)  # a zombie's environment cannot be read
        assert not process._execing(zombie.pid)
        unseen: list[int] = []
        assert list(marked_processes(b"z-", unseen)) == []
        assert zombie.pid not in unseen
    finally:
        zombie.wait()
    if Path("/proc/2/stat").exists() and b"(kthreadd)" in Path("/proc/2/stat").read_bytes():
        assert not process._execing(2)  # a kernel thread: not in an exec either


def test_kill_if_marked_checks_the_cookie_once_more():
    with marked("k-1") as child:
        process._kill_if_marked(child.pid, b"other-", lambda cookie: True)
        process._kill_if_marked(child.pid, b"k-", lambda cookie: False)
        assert alive(child.pid)
        process._kill_if_marked(child.pid, b"k-", lambda cookie: True)
        assert child.wait(WAIT) == -signal.SIGKILL
    process._kill_if_marked(child.pid, b"k-", lambda cookie: True)  # gone: no error


# ---------------------------------------------------------------- the tracker's sweep


def test_the_sweep_kills_what_ended_commands_left_and_spares_live_ones(caplog):
    own = ProcessTracker()
    ended, live = own.started(), own.started()
    assert own.live == {1, 2}
    with marked(own.cookie(ended)) as left, marked(own.cookie(live)) as running:
        own.live.discard(ended)
        caplog.set_level("INFO", "rcmd.server")
        own.sweep()  # no loop runs: it scans at once
        assert left.wait(WAIT) == -signal.SIGKILL
        assert alive(running.pid)
        assert caplog.messages == ["killed 1 process(es) left behind by ended commands"]
        own.sweep()
        assert len(caplog.messages) == 1  # nothing more found, nothing said


def test_ended_sweeps_at_once_without_a_loop_and_later_with_one():
    own = ProcessTracker()
    number = own.started()
    with marked(own.cookie(number)) as left:
        own.ended(number)  # no loop running: swept now
        assert left.wait(WAIT) == -signal.SIGKILL
    own.ended(number)  # not live: nothing

    async def main() -> None:
        later = own.started()
        with marked(own.cookie(later)) as child:
            own.ended(later)
            assert own._sweep is not None
            assert own._sweep.when() - asyncio.get_running_loop().time() == pytest.approx(
                process.SWEEP_DELAY, abs=0.1
            )
            handle = own._sweep
            again = own.started()
            own.ended(again)  # one sweep for both
            assert own._sweep is handle
            while alive(child.pid):
                await asyncio.sleep(0.05)
        own.close()
        assert own._sweep is None

    run(main())


# ------------------------------------------------------------- the subreaper and watchdog


@pytest.fixture
def subreaper() -> Iterator[ProcessTracker]:
    """A tracker for this (test) process as a server's: subreaper, watchdog. Undone after."""
    own = ProcessTracker()
    yield own
    # Every child this process has now that a test did not kill (the session's servers) is
    # not an orphan to kill at close: as subreaper, close() kills all the rest.
    own.leaders |= set(own._children())
    own.close()
    import ctypes

    ctypes.CDLL(None).prctl(process.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def orphan() -> int:
    """A `sleep 60` whose parent has exited: as subreaper, this process is its parent now."""
    parent = subprocess.Popen(
        [SH, "-c", "sleep 60 & echo $!"], stdout=subprocess.PIPE, start_new_session=True
    )
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    parent.wait()
    parent.stdout.close()
    return pid


def as_subreaper(tracker: ProcessTracker) -> None:
    """Make *tracker* this process's subreaper, the children it has by now (other tests')
    its leaders: not orphans of its to reap."""
    assert process._become_subreaper()
    tracker.subreaper = True
    tracker.leaders |= set(tracker._children())


def dead_orphan() -> int:
    """An orphan() killed, and not reaped yet: a zombie of ours."""
    pid = orphan()
    os.kill(pid, signal.SIGKILL)
    assert gone(pid)
    return pid


def test_start_as_subreaper_with_a_watchdog(subreaper, caplog):
    async def main() -> str:
        return subreaper.start(subreaper=True)

    sentence = run(main())
    assert subreaper.subreaper
    assert subreaper._watchdog is not None
    assert sentence == (
        "killing a command's processes: process group, and environment cookie "
        f"{COOKIE_VARIABLE}={subreaper.server_id}-N found in /proc; child subreaper; "
        f"watchdog pid {subreaper._watchdog.pid}; no cgroup"
    )
    assert subreaper._watchdog.pid in set(subreaper._children())
    # Children this process had already (other tests' servers) count as live commands here:
    # they are neither orphans to report nor to kill.
    subreaper.leaders |= set(subreaper._children()) - {subreaper._watchdog.pid}
    assert not subreaper._has_orphans()
    pid = orphan()
    assert pid in set(subreaper._children())
    assert subreaper._has_orphans()
    subreaper.leaders.add(pid)
    assert not subreaper._has_orphans()
    subreaper.leaders.discard(pid)
    caplog.set_level("INFO", "rcmd.server")
    subreaper._kill_orphans()
    assert "killed 1 orphan(s) at shutdown" in caplog.messages
    assert gone(pid)
    subreaper.reap_orphans()  # reaps its zombie
    assert pid not in set(subreaper._children())
    watchdog = subreaper._watchdog
    subreaper.close()
    assert watchdog.returncode == 0
    assert subreaper._watchdog is None


def test_without_the_subreaper_nothing_is_reaped_or_started(subreaper):
    assert subreaper.start(subreaper=False).split("; ")[1:] == [
        "not a subreaper",
        f"watchdog pid {subreaper._watchdog.pid}",  # type: ignore[union-attr]
        "no cgroup",
    ]
    zombie = subprocess.Popen(["true"])
    assert gone(zombie.pid)
    subreaper.reap_orphans()  # not a subreaper: leaves it
    assert zombie.poll() == 0  # still there for its own Popen to reap


def test_reaping_waits_while_a_spawn_is_in_flight_and_for_leaders(subreaper):
    as_subreaper(subreaper)
    pid = dead_orphan()
    subreaper.leaders.add(pid)
    subreaper.reap_orphans()
    assert pid in set(subreaper._children())  # a leader: its Child reaps it
    subreaper.leaders.discard(pid)
    subreaper.spawning = 1
    subreaper.reap_orphans()
    assert pid in set(subreaper._children())  # it may be a shell just forked
    assert subreaper._reap_deferred
    subreaper.spawned()
    assert subreaper.spawning == 0
    assert not subreaper._reap_deferred
    assert pid not in set(subreaper._children())


def test_a_dead_watchdog_is_restarted(subreaper, caplog):
    async def main() -> None:
        subreaper.start(subreaper=True)

    run(main())
    first = subreaper._watchdog
    assert first is not None
    first.kill()
    assert gone(first.pid)
    caplog.set_level("WARNING", "rcmd.server")
    subreaper.reap_orphans()
    assert f"the watchdog (pid {first.pid}) died: restarting it" in caplog.messages
    assert subreaper._watchdog is not None
    assert subreaper._watchdog.pid != first.pid


def run_watchdog(monkeypatch: pytest.MonkeyPatch, server_id: str, *, stdin: int) -> dict[int, object]:
    """watchdog_main() run in this process as server *server_id*'s watchdog, with *stdin* as
    its descriptor 0 (the caller closes *stdin*). Descriptor 0 and the SIGINT and SIGHUP
    handlers are restored after: returns the handlers the watchdog left for those two."""
    watched = (signal.SIGINT, signal.SIGHUP)
    saved = os.dup(0)
    handlers = {sig: signal.getsignal(sig) for sig in watched}
    monkeypatch.setattr(sys, "argv", ["watchdog", server_id])
    os.dup2(stdin, 0)
    try:
        process.watchdog_main()
        return {sig: signal.getsignal(sig) for sig in watched}
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def test_the_watchdog_kills_every_cookie_of_its_server_at_eof(monkeypatch):
    """watchdog_main() run here, its stdin a pipe already closed: EOF at once."""
    read_end, write_end = os.pipe()
    os.close(write_end)
    with marked(f"w{os.getpid()}-3") as mine, marked(f"w{os.getpid()}x-3") as not_mine:
        try:
            handlers = run_watchdog(monkeypatch, f"w{os.getpid()}", stdin=read_end)
        finally:
            os.close(read_end)
        assert handlers == {signal.SIGINT: signal.SIG_IGN, signal.SIGHUP: signal.SIG_IGN}
        assert mine.wait(WAIT) == -signal.SIGKILL
        assert alive(not_mine.pid)


def test_wait_dead_returns_when_all_are_dead_or_the_time_is_up():
    sleeper = subprocess.Popen(["sleep", "60"])
    pidfd = os.pidfd_open(sleeper.pid)
    try:
        process._wait_dead([pidfd], 0.05)  # the time is up: it returns
        assert sleeper.poll() is None
        sleeper.kill()
        process._wait_dead([pidfd], WAIT)
        assert select.select([pidfd], [], [], 0)[0] == [pidfd]
    finally:
        os.close(pidfd)
        sleeper.wait()


FORK_THEN_SPAWN = """
import asyncio, os
from rcmd.process import spawn_in_thread

async def once():
    child = await asyncio.wait_for(spawn_in_thread("exit 3", shell="/bin/sh", cwd="/", env=None, stdin=False), 10)
    code = await child.wait()
    child.close()
    return code

assert asyncio.run(once()) == 3
pid = os.fork()
if pid == 0:
    try:
        os._exit(asyncio.run(once()))
    except BaseException:
        os._exit(99)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_forked_child_spawns_on_threads_of_its_own():
    """The spawn threads are not copied by fork(): a child of a process that has spawned
    (a BackgroundServer's, or mutmut's forked test runs) must start its own, not wait for ever
    on threads that exist only in its parent."""
    result = subprocess.run(
        [sys.executable, "-c", FORK_THEN_SPAWN], capture_output=True, timeout=60, check=False
    )
    assert (result.stdout, result.returncode) == (b"3\n", 0), result.stderr.decode()[-2000:]


def test_workers_serve_one_queue_on_a_daemon_thread_per_name_started_once():
    """_Workers (the spawn and scan threads): its threads start on first use, one per name,
    all taking from the one queue, which later calls return without starting more."""
    import queue
    import threading

    def serve(requests: queue.SimpleQueue[threading.Barrier | None]) -> None:
        while (barrier := requests.get()) is not None:
            barrier.wait(WAIT)  # each request holds its thread until the other one has one

    before = set(threading.enumerate())
    workers = process._Workers(serve, ["rcmd-test-a", "rcmd-test-b"])
    requests = workers.requests()
    assert workers.requests() is requests
    threads = set(threading.enumerate()) - before
    assert sorted((thread.name, thread.daemon) for thread in threads) == [
        ("rcmd-test-a", True),
        ("rcmd-test-b", True),
    ]
    both = threading.Barrier(3)  # the two threads and this one: both serve at once
    requests.put(both)
    requests.put(both)
    both.wait(WAIT)
    for _ in threads:
        requests.put(None)
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive()


def test_the_watchdog_waits_on_its_pipe_in_its_own_session_without_a_cookie(subreaper, monkeypatch):
    """A server run as another server's command carries that one's cookie: its watchdog must
    not (the outer server would kill it with that command). In a session of its own (a Ctrl-C
    to the server's terminal does not reach it) it blocks on its pipe while the server lives;
    at EOF (the server gone without cleaning up) it kills every process with the server's cookies."""
    monkeypatch.setenv(COOKIE_VARIABLE, "outer-1")

    async def main() -> None:
        subreaper.start(subreaper=False)

    run(main())
    watchdog = subreaper._watchdog
    assert watchdog is not None
    assert os.getsid(watchdog.pid) == watchdog.pid
    assert process._cookie_of(watchdog.pid) == b""  # an empty environment
    wchan = Path(f"/proc/{watchdog.pid}/wchan")
    for _ in range(int(WAIT * 1000)):  # until it reads its pipe (checked, not slept)
        if b"pipe_read" in wchan.read_bytes():
            break
        select.select([], [], [], 0.001)
    assert b"pipe_read" in wchan.read_bytes()
    with marked(subreaper.cookie(7)) as left:
        assert alive(left.pid)
        assert subreaper._watchdog_pipe is not None
        os.close(subreaper._watchdog_pipe)  # as when the server dies
        subreaper._watchdog_pipe = None
        assert watchdog.wait(WAIT) == 0
        assert left.wait(WAIT) == -signal.SIGKILL


def test_without_a_watchdog_the_server_says_so_and_goes_on(subreaper, monkeypatch, caplog):
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    caplog.set_level("WARNING", "rcmd.server")
    descriptors = len(os.listdir("/proc/self/fd"))

    async def main() -> str:
        return subreaper.start(subreaper=False)

    assert run(main()).split("; ")[2:] == ["no watchdog", "no cgroup"]
    assert caplog.messages == [
        "cannot start the watchdog: [Errno 2] No such file or directory: '/nonexistent/python'"
        " (a killed server would leave its commands)"
    ]
    assert (subreaper._watchdog, subreaper._watchdog_pipe) == (None, None)
    assert len(os.listdir("/proc/self/fd")) == descriptors  # both ends of its pipe closed


def test_a_process_whose_name_holds_a_parenthesis_is_read_right(tmp_path):
    """/proc/PID/stat puts the name in parentheses, and a name may hold ') Z ...' itself."""
    program = tmp_path / "a) Z 1 2 3 4 5"
    shutil.copy("/bin/sleep", program)
    child = subprocess.Popen([str(program), "60"], env={})  # returns once it has exec'd
    try:
        unseen: list[int] = []
        assert list(marked_processes(b"nobody-", unseen)) == []
        assert child.pid in unseen  # sleeping, not a zombie: it may be mid-exec, so looked at again
    finally:
        child.kill()
        child.wait()


def test_orphans_are_killed_round_by_round_at_shutdown(subreaper, caplog):
    """Killing an orphan hands its own children to the server: they go in the next round."""
    as_subreaper(subreaper)
    parent = subprocess.Popen(
        [SH, "-c", "sh -c 'sleep 60 & echo b $!; wait' & echo a $!"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert parent.stdout is not None
    pids = dict(parent.stdout.readline().split() for _ in range(2))
    parent.wait()
    parent.stdout.close()
    first, second = int(pids[b"a"]), int(pids[b"b"])
    assert first in set(subreaper._children())  # the orphan; its child is not ours yet
    assert second not in set(subreaper._children())
    caplog.set_level("INFO", "rcmd.server")
    subreaper._kill_orphans()
    assert caplog.messages == ["killed 2 orphan(s) at shutdown"]
    assert gone(first)
    assert gone(second)
    subreaper.reap_orphans()
    assert not {first, second} & set(subreaper._children())


def test_without_pidfd_kill_if_marked_checks_the_cookie_and_uses_kill(monkeypatch):
    """Where pidfd_open() fails (Linux < 5.3, or no pidfd at all), the same checks, then kill()."""

    def no_pidfd(pid: int) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    asked: list[bytes] = []

    def only_k1(cookie: bytes) -> bool:
        asked.append(cookie)
        return cookie == b"k-1"

    with marked("k-1") as child, marked("k-2") as other:
        process._kill_if_marked(child.pid, b"other-", lambda cookie: True)
        process._kill_if_marked(other.pid, b"k-", only_k1)
        assert asked == [b"k-2"]
        assert alive(child.pid)
        assert alive(other.pid)
        process._kill_if_marked(child.pid, b"k-", only_k1)
        assert child.wait(WAIT) == -signal.SIGKILL
        assert alive(other.pid)
    process._kill_if_marked(child.pid, b"k-", lambda cookie: True)  # gone: no error


def test_kill_if_marked_asks_about_the_cookie_it_read():
    asked: list[bytes] = []

    def only_k1(cookie: bytes) -> bool:
        asked.append(cookie)
        return cookie == b"k-1"

    with marked("k-1") as child:
        process._kill_if_marked(child.pid, b"k-", only_k1)
        assert child.wait(WAIT) == -signal.SIGKILL
    assert asked == [b"k-1"]


def test_a_tracker_that_never_ran_a_command_closes_cleanly():
    """lifecycle closes the tracker at shutdown whatever ran: with nothing started, no sweep,
    no watchdog, no cgroup, close() has nothing to do and does not fail."""
    own = ProcessTracker()
    own.close()
    assert own._sweep is None
    assert own._removal is None
    assert own._watchdog is None


def test_a_new_trackers_environment_is_the_servers_own_with_the_cookie(monkeypatch):
    monkeypatch.setenv("RCMD_TEST_MARK", "here")
    own = ProcessTracker()
    number = own.started()
    env = own.environment(number, None)
    assert env["RCMD_TEST_MARK"] == "here"
    assert env[COOKIE_VARIABLE] == f"{own.server_id}-{number}"
    assert own.environment(number, {"A": "1"}) == {"A": "1", COOKIE_VARIABLE: own.cookie(number)}


# ----------------------------------------------------------------- a cgroup per command


@pytest.fixture
def cgrouped(monkeypatch) -> Iterator[ProcessTracker]:
    """A tracker of its own, as spawn() and Child see it, started with a cgroup per command
    (skipped where this process may not create one); closed after."""
    own = ProcessTracker()
    monkeypatch.setattr(process, "tracker", own)
    sentence = own.start(subreaper=False, cgroups=True)
    if own.cgroups is None:
        own.close()
        pytest.skip(sentence)
    assert sentence.endswith(f"; a cgroup per command under {own.cgroups.parent}, killed by cgroup.kill")
    yield own
    own.close()


ESCAPE = "setsid env -i sleep 60 >/dev/null 2>&1 </dev/null & echo $!"  # no group, no cookie


async def until(condition: Callable[[], bool]) -> None:
    """Until *condition* holds (it changes on a timer of the tracker's, nothing to await)."""
    while not condition():
        await asyncio.sleep(0.005)


def test_a_commands_cgroup_holds_all_it_starts_and_goes_when_it_ends(cgrouped):
    own = cgrouped
    assert own.cgroups is not None
    parent = own.cgroups.parent

    async def main() -> None:
        child = await spawn_in_thread(
            f"cat /proc/self/cgroup; {ESCAPE}", shell=SH, cwd="/", env=None, stdin=False
        )  # as the server starts them
        assert own.spawning == 0
        out, _ = await child.communicate()
        *lines, pid = out.decode().split()
        assert own.cgroups is not None
        cgroup2 = next(line for line in lines if line.startswith("0::"))
        assert own.cgroups.path(child.number).endswith(cgroup2.removeprefix("0::"))
        assert alive(int(pid))  # out of its group, without its cookie
        child.close()  # its end kills its cgroup
        assert gone(int(pid))
        await until(lambda: not os.path.exists(os.path.join(parent, f"cmd-{child.number}")))
        assert not own._unremoved

    run(main())
    own.close()
    assert not os.path.exists(parent)


def test_kill_tree_kills_the_commands_cgroup(cgrouped):
    async def main() -> None:
        other = spawn(f"{ESCAPE}; exec sleep 60", shell=SH, cwd="/", env=None, stdin=False)
        child = spawn(f"{ESCAPE}; exec sleep 60", shell=SH, cwd="/", env=None, stdin=False)
        spared = int(await other.read(other.stdout))
        escaped = int(await child.read(child.stdout))
        await kill_tree(child)
        assert await child.wait() == -signal.SIGKILL
        assert gone(escaped)
        assert alive(spared)
        assert other.returncode is None
        kill_tree(other)
        assert await other.wait() == -signal.SIGKILL
        assert gone(spared)
        child.close()
        other.close()

    run(main())


def test_a_shell_that_is_missing_is_reported_as_without_cgroups(cgrouped, tmp_path):
    with pytest.raises(FileNotFoundError):
        spawn("true", shell=str(tmp_path / "no-shell"), cwd="/", env=None, stdin=False)


def test_a_command_whose_cgroup_cannot_be_made_runs_with_its_cookie_alone(cgrouped, caplog):
    own = cgrouped
    assert own.cgroups is not None
    number = own._next + 1
    os.mkdir(own.cgroups.path(number))  # taken: the command's own cannot be created
    caplog.set_level("WARNING", "rcmd.server")

    async def main() -> None:
        child = spawn("cat /proc/self/cgroup", shell=SH, cwd="/", env=None, stdin=False)
        assert child.number == number
        out, _ = await child.communicate()
        assert f"/cmd-{number}" not in out.decode()
        child.close()

    run(main())
    assert caplog.messages == [
        f"command {number}: no cgroup ([Errno 17] File exists: {own.cgroups.path(number)!r}):"
        " its cookie alone finds its processes"
    ]


def test_where_cgroups_are_unavailable_the_server_says_why(monkeypatch):
    from rcmd import cgroup

    monkeypatch.setattr(cgroup, "MOUNTINFO", "/nonexistent/mountinfo")
    own = ProcessTracker()
    try:
        sentence = own.start(subreaper=False, cgroups=True)
    finally:
        own.close()
    assert own.cgroups is None
    assert sentence.endswith("; no cgroup (cannot read /nonexistent/mountinfo: No such file or directory)")


def test_a_server_that_dies_leaves_its_watchdog_to_empty_its_cgroups(cgrouped):
    """The server's end of the watchdog's pipe closes as it dies (SIGKILL): the watchdog kills
    what is in the cgroups it was told of, even without a cookie, and removes them."""
    own = cgrouped
    assert own.cgroups is not None
    assert own._watchdog is not None
    assert own._watchdog_pipe is not None
    parent, watchdog = own.cgroups.parent, own._watchdog

    async def main() -> int:
        child = spawn(ESCAPE, shell=SH, cwd="/", env=None, stdin=False)
        out, _ = await child.communicate()
        return int(out)

    escaped = run(main())  # its command is over, its cgroup not yet killed: still running
    assert alive(escaped)
    os.close(own._watchdog_pipe)  # as the kernel does for a server that died
    own._watchdog_pipe = None
    assert watchdog.wait(WAIT) == 0
    assert gone(escaped)
    assert not os.path.exists(parent)


def test_children_of_another_thread_are_listed_with_every_threads_only():
    """A shell forked on a spawn thread is that thread's child while the thread lives: the
    main thread's list (where orphans go) leaves it out, every thread's has it."""
    import threading

    own = ProcessTracker()
    forked, done = threading.Event(), threading.Event()
    children: list[subprocess.Popen[bytes]] = []

    def fork_and_stay() -> None:
        children.append(subprocess.Popen(["sleep", "60"]))
        forked.set()
        done.wait(WAIT)

    mains = subprocess.Popen(["sleep", "60"])
    thread = threading.Thread(target=fork_and_stay)
    thread.start()
    try:
        assert forked.wait(WAIT)
        theirs = children[0].pid
        every = set(own._children())
        main_only = set(own._children(main_thread_only=True))
        assert {theirs, mains.pid} <= every
        assert mains.pid in main_only
        assert theirs not in main_only
        # As the server sees it (no watchdog here): the main thread's children all leaders,
        # the other thread's child is no orphan.
        own.leaders = main_only
        assert not own._has_orphans()
        own.leaders = main_only - {mains.pid}
        assert own._has_orphans()
    finally:
        done.set()
        thread.join()
        for child in [mains, *children]:
            child.kill()
            child.wait()


def test_the_watchdog_empties_the_cgroups_it_is_told_of_line_by_line(monkeypatch):
    """watchdog_main() as a server that died leaves it: told its cgroups' path first (then
    more lines, read in several chunks, one of them not UTF-8), then EOF. A process in
    that cgroup without any cookie is killed, the cgroup removed."""
    from rcmd.cgroup import CommandCgroups, Unavailable, kill_and_remove

    try:
        cgroups = CommandCgroups.create(None)
    except Unavailable as exc:
        pytest.skip(str(exc))
    sleeper = subprocess.Popen(cgroups.gated(1, ["sleep", "60"]), env={})
    try:
        procs = Path(cgroups.path(1), "cgroup.procs")
        for _ in range(100_000):  # a condition, checked: the gate moves itself, then execs
            if str(sleeper.pid) in procs.read_text().split():
                break
            select.select([], [], [], 0.001)
        told = cgroups.parent.encode() + b"\n/nonexistent/\xff\n" + b"\n" * 10_000
        read_end, write_end = os.pipe()
        assert os.write(write_end, told) == len(told)
        os.close(write_end)
        try:
            run_watchdog(monkeypatch, f"w{os.getpid()}", stdin=read_end)
        finally:
            os.close(read_end)
        assert sleeper.wait(WAIT) == -signal.SIGKILL
        assert not os.path.exists(cgroups.parent)
    finally:
        sleeper.kill()
        sleeper.wait()
        kill_and_remove(cgroups.parent)


def test_a_subreaper_started_without_a_running_loop_goes_on(subreaper):
    """Without a running loop there is no SIGCHLD handler to add: orphans are reaped as
    commands end instead."""
    assert "; child subreaper; " in subreaper.start(subreaper=True)
    assert subreaper.subreaper


def test_a_subreaper_started_on_a_loop_off_the_main_thread_goes_on(subreaper):
    """A server's loop in a thread of its own (as BackgroundServer runs one) cannot take a
    signal handler (only the main thread can): it is a subreaper all the same."""
    import threading

    said: list[str] = []

    async def main() -> None:
        said.append(subreaper.start(subreaper=True))

    thread = threading.Thread(target=asyncio.run, args=(main(),))
    thread.start()
    thread.join(WAIT)
    assert len(said) == 1
    assert "; child subreaper; " in said[0]
    assert subreaper.subreaper


def test_a_watchdog_whose_stdin_fails_still_kills_its_servers_cookies(monkeypatch):
    """Its pipe unreadable (EBADF here: a write-only descriptor) counts as the server gone."""
    read_end, write_end = os.pipe()
    with marked(f"v{os.getpid()}-1") as mine:
        try:
            run_watchdog(monkeypatch, f"v{os.getpid()}", stdin=write_end)
        finally:
            os.close(read_end)
            os.close(write_end)
        assert mine.wait(WAIT) == -signal.SIGKILL


# ------------------------------------------------ what the full mutation run found untested


def test_without_prctl_nothing_becomes_a_subreaper(monkeypatch):
    import ctypes

    def no_libc(*args: object, **kwargs: object) -> None:
        raise OSError("no libc here")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert process._become_subreaper() is False


@pytest.mark.parametrize(
    ("state", "flags", "execing"),
    [
        ("R", 0x00400100, True),
        ("S", 0x00000001, True),  # any flag but PF_KTHREAD
        ("D", 0x00000000, True),
        ("Z", 0x00400100, False),  # a zombie
        ("X", 0x00000000, False),  # dead, as it is being reaped
        ("S", 0x00200000, False),  # a kernel thread
        ("I", 0x04208040, False),  # an idle kernel thread
    ],
)
def test_execing_reads_the_state_and_the_kernel_thread_flag(monkeypatch, state, flags, execing):
    """The state and flags of /proc/PID/stat, after a name that holds ") " itself."""
    stat = f"12 (a) {state} b) {state} 1 12 12 0 -1 {flags} 0 0 0 0 0 0\n".encode()
    monkeypatch.setattr(process, "_read", lambda path: stat if path == "/proc/12/stat" else b"")
    assert process._execing(12) is execing


@contextlib.contextmanager
def two_sleepers() -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], list[int]]]:
    """Two `sleep 60`s and a pidfd of each; both killed after."""
    sleepers = (subprocess.Popen(["sleep", "60"]), subprocess.Popen(["sleep", "60"]))
    pidfds = [os.pidfd_open(sleeper.pid) for sleeper in sleepers]
    try:
        yield sleepers[0], sleepers[1], pidfds
    finally:
        for sleeper, pidfd in zip(sleepers, pidfds, strict=True):
            sleeper.kill()
            sleeper.wait()
            os.close(pidfd)


def test_wait_dead_waits_its_time_for_the_one_still_alive():
    import time

    with two_sleepers() as (first, second, pidfds):
        first.kill()
        assert gone(first.pid)
        began = time.monotonic()
        process._wait_dead(pidfds, 0.3)  # the first is dead at once, the second never
        assert time.monotonic() - began >= 0.3
        assert second.poll() is None


def test_wait_dead_returns_once_the_last_one_dies():
    import threading

    with two_sleepers() as (first, second, pidfds):
        first.kill()
        assert gone(first.pid)
        ended = threading.Event()

        def wait_dead() -> None:
            process._wait_dead(pidfds, 2 * WAIT)
            ended.set()

        waiting = threading.Thread(target=wait_dead)
        waiting.start()
        try:
            assert not ended.wait(0.1)  # the second lives: it waits
            second.kill()
            assert ended.wait(WAIT)  # long before its time is up
        finally:
            second.kill()
            waiting.join()


@pytest.fixture
def kill_marked_calls(monkeypatch) -> list[tuple[bytes, float]]:
    """kill_marked() as rcmd.process calls it, recording each call's prefix and settle."""
    calls: list[tuple[bytes, float]] = []
    real = process.kill_marked

    def recording(
        prefix: bytes, wanted: Callable[[bytes], bool] = lambda cookie: True, *, settle: float = 0.0
    ) -> int:
        calls.append((prefix, settle))
        return real(prefix, wanted, settle=settle)

    monkeypatch.setattr(process, "kill_marked", recording)
    return calls


def test_the_watchdog_lets_its_last_kill_settle(monkeypatch, kill_marked_calls):
    read_end, write_end = os.pipe()
    os.close(write_end)
    try:
        run_watchdog(monkeypatch, f"s{os.getpid()}", stdin=read_end)
    finally:
        os.close(read_end)
    assert kill_marked_calls == [(f"s{os.getpid()}-".encode(), process.SETTLE)]


def test_close_kills_what_carries_its_cookies_and_lets_it_settle(kill_marked_calls):
    own = ProcessTracker()
    number = own.started()
    with marked(own.cookie(number)) as left:
        own.close()
        assert left.wait(WAIT) == -signal.SIGKILL
    assert kill_marked_calls == [(own.prefix, process.SETTLE)]


def test_a_read_or_write_that_waited_leaves_nothing_watched():
    async def main() -> None:
        loop = asyncio.get_running_loop()
        child = spawn("read line; echo $line; exec sleep 60", shell=SH, cwd="/", env=None, stdin=True)
        try:
            reading = asyncio.ensure_future(child.read(child.stdout))
            await until(lambda: child.stdout in child._watched)
            assert child._watched == {child.stdout: False}  # waiting to read
            await child.write_stdin(b"x\n")
            assert await reading == b"x\n"
            assert child._watched == {}
            assert not loop.remove_reader(child.stdout)  # the loop watches it no more
            stdin = child.stdin
            assert stdin is not None
            writing = asyncio.ensure_future(child.write_stdin(b"y" * (4 << 20)))  # more than a pipe holds
            await until(lambda: stdin in child._watched)
            assert child._watched == {stdin: True}  # waiting to write
            child.close_stdin()
            assert child._watched == {}
            assert not loop.remove_writer(stdin)
            writing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await writing
        finally:
            signal_group(child)
            await child.wait()
            child.close()

    run(main())


def test_spawned_reaps_only_what_waited_for_it(subreaper):
    """A spawn's end reaps orphans only if reaping was put off for it (see reap_orphans)."""
    as_subreaper(subreaper)
    pid = dead_orphan()
    subreaper.spawning = 1
    subreaper.spawned()
    assert pid in set(subreaper._children())  # still a zombie: nothing had waited
    subreaper.reap_orphans()
    assert pid not in set(subreaper._children())


class _FullReads:
    """os for rcmd.process, but each read fills the buffer it is given: a list of children
    as long as can be read at once (more than 9,000 of them)."""

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    @staticmethod
    def read(fd: int, size: int) -> bytes:
        return b"1 " * (size // 2)


def test_too_many_children_to_list_is_an_error_and_counts_as_orphans(monkeypatch):
    own = ProcessTracker()
    monkeypatch.setattr(process, "os", _FullReads())
    try:
        list(own._children(main_thread_only=True))
    except OSError:  # its message is never shown: callers drop it
        pass
    else:
        pytest.fail("a list that fills the read was taken as whole")
    assert own._has_orphans()  # it cannot tell: it sweeps


class _NoPidfds:
    """os for rcmd.process, but every process is gone by the time its pidfd is opened."""

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    @staticmethod
    def pidfd_open(pid: int) -> int:
        raise ProcessLookupError(3, "No such process")


def test_an_orphan_gone_before_it_is_opened_is_no_error_at_shutdown(subreaper, monkeypatch):
    as_subreaper(subreaper)
    pid = orphan()
    try:
        monkeypatch.setattr(process, "os", _NoPidfds())
        subreaper._kill_orphans()  # found, then not there to open: as if it had died
        monkeypatch.undo()
        assert alive(pid)
    finally:
        os.kill(pid, signal.SIGKILL)
        assert gone(pid)
        os.waitpid(pid, 0)


class _StubbornCgroups:
    """Command cgroups (a stand-in for rcmd.cgroup's) whose removal fails *fails* times a
    command, as while its killed processes are dying; when each removal was tried (on the
    loop's clock) and the delay then set for the next, if any."""

    parent = "/nonexistent/rcmd-test"

    def __init__(self, tracker: ProcessTracker, fails: int, closes: bool = True) -> None:
        self.tracker = tracker
        self.fails = fails
        self.closes = closes
        self.removals: list[int] = []
        self.delays: list[float] = []
        self.closed = False

    def kill(self, number: int) -> int:
        return 0

    def remove(self, number: int) -> bool:
        self.removals.append(number)
        with contextlib.suppress(RuntimeError):  # no loop: nothing is scheduled
            loop = asyncio.get_running_loop()
            now = loop.time()
            loop.call_soon(self._scheduled, now)
        return len(self.removals) > self.fails

    def _scheduled(self, then: float) -> None:
        removal = self.tracker._removal
        if removal is not None:
            self.delays.append(removal.when() - then)

    def close(self) -> bool:
        self.closed = True
        return self.closes


def test_a_cgroup_not_yet_empty_is_removed_later_twice_as_late_each_time():
    own = ProcessTracker()
    number = own.started()
    cgroups = _StubbornCgroups(own, fails=8)
    own.cgroups = cgroups  # type: ignore[assignment]

    async def main() -> None:
        own.ended(number)
        assert own._unremoved == {number}
        await until(lambda: len(cgroups.removals) == 9)
        await asyncio.sleep(0)  # its _scheduled() runs
        assert own._removal is None
        assert own._unremoved == set()

    try:
        run(main())
    finally:
        own.close()
    assert cgroups.removals == [number] * 9
    assert cgroups.delays == pytest.approx(
        [process.CGROUP_RETRY * 2**n for n in range(6)] + [process.SWEEP_DELAY] * 2, abs=0.002
    )


def test_a_cgroup_not_yet_empty_without_a_loop_waits_for_close():
    own = ProcessTracker()
    number = own.started()
    cgroups = _StubbornCgroups(own, fails=1)
    own.cgroups = cgroups  # type: ignore[assignment]
    own.ended(number)  # no loop: nothing to schedule a removal on
    assert own._unremoved == {number}
    assert own._removal is None
    own.close()
    assert cgroups.closed
    assert own._unremoved == set()
    assert own.cgroups is None


def test_close_cancels_a_removal_due_and_says_what_it_could_not_remove(caplog):
    own = ProcessTracker()
    number = own.started()
    cgroups = _StubbornCgroups(own, fails=100, closes=False)
    own.cgroups = cgroups  # type: ignore[assignment]
    caplog.set_level("WARNING", "rcmd.server")

    async def main() -> None:
        own.ended(number)
        removal = own._removal
        assert removal is not None
        own.close()
        assert removal.cancelled()
        assert own._removal is None
        await asyncio.sleep(process.CGROUP_RETRY * 2)
        assert cgroups.removals == [number]  # not tried again

    run(main())
    assert cgroups.closed
    assert own.cgroups is None
    assert caplog.messages == ["/nonexistent/rcmd-test: processes still there after SIGKILL: not removed"]


def test_the_subreaper_reaps_orphans_when_sigchld_comes(subreaper):
    async def main() -> None:
        subreaper.start(subreaper=True)
        assert subreaper.subreaper
        subreaper.leaders |= set(subreaper._children())  # other tests' children, and the watchdog
        pid = orphan()
        os.kill(pid, signal.SIGKILL)
        await until(lambda: pid not in set(subreaper._children()))  # reaped on SIGCHLD alone

    run(main())


def test_a_loop_that_refuses_signal_handlers_with_valueerror_is_a_subreaper_all_the_same(subreaper):
    """As uvloop does off the main thread: ValueError rather than asyncio's RuntimeError."""

    class NoSignals(asyncio.SelectorEventLoop):
        def add_signal_handler(self, sig: int, callback: Callable[..., object], *args: object) -> None:
            raise ValueError("add_signal_handler() can only be called from the main thread")

    async def main() -> str:
        return subreaper.start(subreaper=True)

    loop = NoSignals()
    try:
        assert "; child subreaper; " in loop.run_until_complete(main())
    finally:
        loop.close()
    assert subreaper.subreaper


def test_without_proc_the_server_says_it_kills_the_group_only(subreaper, monkeypatch):
    isdir = os.path.isdir
    monkeypatch.setattr(os.path, "isdir", lambda path: path != "/proc/self" and isdir(path))
    assert subreaper.start(subreaper=False).split("; ")[:2] == [
        "killing a command's processes: process group only (no /proc: processes that leave the group"
        " are not found)",
        "not a subreaper",
    ]


def test_the_cgroups_are_proved_on_the_watchdog_or_on_nothing(subreaper, monkeypatch):
    """CommandCgroups.create() moves the watchdog in and out to prove it can; without a
    watchdog there is nothing to move, and the cgroups are made all the same."""
    from rcmd.cgroup import CommandCgroups

    create = CommandCgroups.create
    probes: list[int | None] = []

    def recording(probe_pid: int | None) -> CommandCgroups:
        probes.append(probe_pid)
        return create(probe_pid)

    monkeypatch.setattr(process.CommandCgroups, "create", recording)
    sentence = subreaper.start(subreaper=False, cgroups=True)
    if subreaper.cgroups is None:
        pytest.skip(sentence)
    assert subreaper._watchdog is not None
    assert probes == [subreaper._watchdog.pid]
    subreaper.close()

    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    blind = ProcessTracker()
    try:
        assert blind.start(subreaper=False, cgroups=True).split("; ")[2] == "no watchdog"
        assert probes[1:] == [None]
        assert blind.cgroups is not None
    finally:
        blind.close()


def test_the_watchdog_runs_this_package_isolated_with_stdout_discarded(subreaper):
    subreaper.start(subreaper=False)
    watchdog = subreaper._watchdog
    assert watchdog is not None
    cmdline = Path(f"/proc/{watchdog.pid}/cmdline")
    for _ in range(100_000):  # a condition, checked: it reads empty until the exec is done
        if argv := cmdline.read_bytes().split(b"\0")[:-1]:
            break
        select.select([], [], [], 0.001)
    root = os.path.dirname(os.path.dirname(os.path.abspath(process.__file__)))
    assert argv[:3] == [sys.executable.encode(), b"-I", b"-c"]
    assert argv[3].decode().startswith(f"import sys; sys.path.insert(0, {root!r}); ")
    assert argv[4:] == [subreaper.server_id.encode()]
    assert os.readlink(f"/proc/{watchdog.pid}/fd/1") == "/dev/null"


def test_a_watchdog_that_does_not_exit_is_killed(subreaper, monkeypatch, tmp_path):
    """A watchdog that does not exit at EOF (here a stand-in that sleeps 20 s, then exits of
    itself: one that waited for ever would outlive a close() that never killed it)."""
    stuck = tmp_path / "python"
    stuck.write_text("#!/bin/sh\nexec sleep 20\n")
    stuck.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(stuck))
    monkeypatch.setattr(process, "WATCHDOG_EXIT_WAIT", 0.2)
    subreaper.start(subreaper=False)
    watchdog = subreaper._watchdog
    assert watchdog is not None
    subreaper.close()
    assert watchdog.returncode == -signal.SIGKILL
    assert subreaper._watchdog is None


AS_PID_1 = """
import asyncio, os
from rcmd.process import kill_tree, spawn_in_thread, tracker

async def once():
    child = await asyncio.wait_for(spawn_in_thread("exit 3", shell="/bin/sh", cwd="/", env=None, stdin=False), 10)
    code = await child.wait()
    await asyncio.wait_for(kill_tree(child), 10)  # a scan on the scan thread
    child.close()
    return code

print(os.getpid(), asyncio.run(once()), tracker.server_id.split(".")[0])
"""


def test_a_server_that_is_pid_1_spawns_scans_and_has_its_own_id():
    """As a container's init: pid 1 is no process's "nobody yet" (0 is)."""
    # mutmut runs a test for a function's mutants only if the test calls it in this process:
    # these two run here what the child below runs as pid 1.
    ProcessTracker()
    process._Workers(lambda requests: None, [])
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare")
    argv = [unshare, "--user", "--map-root-user", "--pid", "--fork", "--mount-proc", sys.executable]
    probe = subprocess.run([*argv, "-c", "pass"], capture_output=True, timeout=60, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot be pid 1 here: {probe.stderr.decode().strip()}")
    result = subprocess.run([*argv, "-c", AS_PID_1], capture_output=True, timeout=60, check=False)
    assert (result.stdout, result.returncode) == (b"1 3 1\n", 0), result.stderr.decode()[-2000:]


def test_kill_tree_reaps_exited_orphans_once_its_scan_is_over(subreaper, monkeypatch):
    monkeypatch.setattr(process, "tracker", subreaper)  # as spawn() and kill_tree() see it
    as_subreaper(subreaper)

    async def main() -> None:
        child = spawn("exec sleep 60", shell=SH, cwd="/", env=None, stdin=False)
        signal_group(child)
        await child.wait()  # reaped, and orphans with it: none yet
        pid = orphan()
        os.kill(pid, signal.SIGKILL)
        assert gone(pid)
        assert pid in set(subreaper._children())  # a zombie, for us to reap
        assert await kill_tree(child) == 0
        assert pid not in set(subreaper._children())
        child.close()

    run(main())


def test_a_command_started_for_a_loop_closed_meanwhile_is_killed(monkeypatch):
    """Nobody is left to hand it to: the spawn thread kills what it started."""
    import threading

    monkeypatch.setattr(process, "tracker", ProcessTracker())  # this one's counts are left as they are
    go, started = threading.Event(), threading.Event()
    children: list[Child] = []
    real = process._start

    def start(*args, **kwargs):  # type: ignore[no-untyped-def]
        assert go.wait(WAIT)
        children.append(real(*args, **kwargs))
        started.set()
        return children[-1]

    monkeypatch.setattr(process, "_start", start)
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(spawn_in_thread("exec sleep 60", shell=SH, cwd="/", env=None, stdin=False))
        loop.run_until_complete(asyncio.sleep(0))  # asked for: the thread waits for `go`
        task.cancel()
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
    finally:
        loop.close()
        go.set()
    assert started.wait(WAIT)
    (child,) = children
    try:
        assert gone(child.pid)
        assert child._popen.wait(WAIT) == -signal.SIGKILL
    finally:
        signal_group(child)
        child._popen.wait()
        for fd in (child.stdout, child.stderr):
            os.close(fd)


def test_a_spawn_leaves_no_descriptor_open_with_stdin_or_without():
    async def main() -> None:
        for stdin in (False, True):
            before = sorted(os.listdir("/proc/self/fd"))
            child = spawn("exit 0", shell=SH, cwd="/", env=None, stdin=stdin)
            assert child.pid in tracker.leaders  # its Child reaps it, not reap_orphans()
            await child.communicate()
            assert child.pid not in tracker.leaders
            child.close()
            assert sorted(os.listdir("/proc/self/fd")) == before

    run(main())


def test_spawns_in_flight_are_counted_each():
    async def main() -> None:
        spawning = [
            asyncio.ensure_future(spawn_in_thread("exit 0", shell=SH, cwd="/", env=None, stdin=False))
            for _ in range(2)
        ]
        await asyncio.sleep(0)
        assert tracker.spawning == 2
        for child in await asyncio.gather(*spawning):
            await child.communicate()
            child.close()
        assert tracker.spawning == 0

    run(main())


def test_a_server_without_stdin_closes_a_pipe_that_is_descriptor_0():
    """A server started with its stdin closed (`<&-`): a command's pipe may be descriptor 0."""

    async def main() -> None:
        saved = os.dup(0)
        os.close(0)
        try:
            child = spawn("echo out", shell=SH, cwd="/", env=None, stdin=False)
            assert child.stdout == 0
            assert (await child.communicate())[0] == b"out\n"
            child.close()
            assert child.stdout == -1
            with pytest.raises(OSError, match="Bad file descriptor"):
                os.fstat(0)  # closed
        finally:
            os.dup2(saved, 0)
            os.close(saved)

    run(main())


def test_close_while_a_read_waits_makes_the_loop_forget_every_pipe():
    async def main() -> None:
        loop = asyncio.get_running_loop()
        child = spawn("exec sleep 60", shell=SH, cwd="/", env=None, stdin=True)
        stdout = child.stdout
        reading = asyncio.ensure_future(child.read(stdout))
        await until(lambda: stdout in child._watched)
        child.close()
        assert (child.stdin, child.stdout, child.stderr) == (None, -1, -1)
        assert child._watched == {}
        assert not loop.remove_reader(stdout)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        signal_group(child)
        assert await child.wait() == -signal.SIGKILL

    run(main())


def test_wait_for_a_process_reaped_already_gives_its_status():
    async def main() -> None:
        child = spawn("exit 5", shell=SH, cwd="/", env=None, stdin=False)
        assert child._popen.wait(WAIT) == 5  # reaped before anyone asked
        assert await child.wait() == 5
        child.close()

    run(main())


class _WithoutPidfd:
    """os for rcmd.process as on Linux < 5.3 or elsewhere: no os.pidfd_open (*missing*), or
    one that fails with ENOSYS."""

    def __init__(self, missing: bool) -> None:
        self.missing = missing

    def __getattr__(self, name: str) -> object:
        if name == "pidfd_open" and self.missing:
            raise AttributeError(name)
        return getattr(os, name)

    @property
    def pidfd_open(self) -> Callable[[int], int]:
        if self.missing:
            raise AttributeError("pidfd_open")

        def enosys(pid: int) -> int:
            raise OSError(38, "Function not implemented")

        return enosys


def test_with_pidfd_no_thread_waits_for_the_exit():
    import threading

    async def main() -> None:
        child = spawn("read line; exit 4", shell=SH, cwd="/", env=None, stdin=True)
        exited = child.wait()
        assert [thread for thread in threading.enumerate() if thread.name == f"rcmd-wait-{child.pid}"] == []
        await child.write_stdin(b"\n")
        assert await exited == 4
        child.close()

    run(main())


@pytest.mark.parametrize("missing", [True, False], ids=["no pidfd_open", "ENOSYS"])
def test_without_pidfd_a_daemon_thread_waits_for_the_exit(monkeypatch, missing):
    import threading

    async def main() -> None:
        child = spawn("read line; exit 4", shell=SH, cwd="/", env=None, stdin=True)
        monkeypatch.setattr(process, "os", _WithoutPidfd(missing))
        exited = child.wait()
        monkeypatch.undo()
        (waiter,) = [thread for thread in threading.enumerate() if thread.name == f"rcmd-wait-{child.pid}"]
        assert waiter.daemon
        assert not exited.done()
        await child.write_stdin(b"\n")
        assert await exited == 4
        assert child.pid not in tracker.leaders
        waiter.join(WAIT)
        child.close()

    run(main())


def test_a_command_that_ends_is_swept_for_even_without_orphans_when_not_a_subreaper():
    """Without the subreaper, what a command left is not our child: no orphan tells of it,
    and a sweep is the only way to find it."""
    own = ProcessTracker()
    number = own.started()
    left = subprocess.Popen(
        [SH, "-c", "sleep 60 & echo $!"],
        stdout=subprocess.PIPE,
        env={COOKIE_VARIABLE: own.cookie(number), "A": "1"},
        start_new_session=True,
    )
    assert left.stdout is not None
    pid = int(left.stdout.readline())
    left.wait()
    left.stdout.close()
    try:
        environ = Path(f"/proc/{pid}/environ")
        for _ in range(100_000):  # a condition, checked: until it has exec'd
            if own.cookie(number).encode() in environ.read_bytes():
                break
            select.select([], [], [], 0.001)
        own.leaders = set(own._children(main_thread_only=True))  # no orphan of ours
        assert not own._has_orphans()
        own.ended(number)  # no loop: swept at once
        assert gone(pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("environ", "cookie"),
    [
        (b"", b""),  # a zombie, a kernel thread, mid-exec
        (b"RCMD_COMMAND_ID=a-1\0B=2\0", b"a-1"),
        (b"A=1\0RCMD_COMMAND_ID=a-1\0B=2\0", b"a-1"),
        (b"A=1\0RCMD_COMMAND_ID=a-1", b"a-1"),  # no NUL after the last
        (b"A=1\0RCMD_COMMAND_ID=a-1\0RCMD_COMMAND_ID=b-2\0", b"a-1"),  # the first, as getenv()
        (b"\0RCMD_COMMAND_ID=a-1\0", b"a-1"),  # after an empty string
        (b"A=1\0XRCMD_COMMAND_ID=a-1\0", None),
        (b"A=1\0", None),
    ],
)
def test_the_cookie_found_in_an_environment(monkeypatch, environ, cookie):
    monkeypatch.setattr(process, "_read", lambda path: environ if path == "/proc/12/environ" else b"")
    assert process._cookie_of(12) == cookie


def test_a_cookie_after_an_environment_larger_than_one_read_is_found():
    """/proc/PID/environ read in 64 KiB chunks, to the end (one chunk of 300 kB would not do)."""
    big = {f"BIG{n}": str(n) * 100_000 for n in range(3)}  # each within exec's 128 KiB a string
    child = started(subprocess.Popen(["sleep", "60"], env={**big, "A": "1", COOKIE_VARIABLE: "big-1"}))
    try:
        whole = "".join(f"{name}={value}\0" for name, value in big.items())
        whole += f"A=1\0{COOKIE_VARIABLE}=big-1\0"
        assert process._read(f"/proc/{child.pid}/environ") == whole.encode()
        assert process._cookie_of(child.pid) == b"big-1"
    finally:
        child.kill()
        child.wait()


def test_a_kill_without_settle_never_waits(monkeypatch):
    rounds: list[float] = []
    with marked(f"n{os.getpid()}-1") as child:
        monkeypatch.setattr(process.time, "sleep", rounds.append)
        assert kill_marked(f"n{os.getpid()}-".encode()) == 1
        monkeypatch.undo()
        assert child.wait(WAIT) == -signal.SIGKILL
    assert rounds == []


def test_kill_marked_counts_every_process_it_killed_over_its_rounds(monkeypatch):
    """Scans as kill_marked() sees them, scripted: what a round finds that it killed before
    is dying, and ends the rounds; one found anew (forked meanwhile) makes one more."""
    scans = iter([[1], [2], [2], [9]])  # 9: never reached
    killed: list[int] = []

    def marked_processes(prefix: bytes, unseen: list[int] | None = None) -> Iterator[tuple[int, bytes]]:
        return iter([(pid, b"s-1") for pid in next(scans)])

    monkeypatch.setattr(process, "marked_processes", marked_processes)
    monkeypatch.setattr(process, "_kill_if_marked", lambda pid, prefix, wanted: killed.append(pid))
    assert kill_marked(b"s-") == 2
    assert killed == [1, 2, 2]


def test_marked_processes_leaves_out_itself():
    code = "from rcmd.process import marked_processes, kill_marked; print(list(marked_processes(b'me-')), kill_marked(b'me-'))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, COOKIE_VARIABLE: "me-1"},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (result.stdout, result.returncode) == (b"[] 0\n", 0), result.stderr.decode()[-2000:]


@pytest.mark.skipif(os.getuid() != 0, reason="starts a process as another user")
def test_marked_processes_scans_past_another_users_process():
    other = subprocess.Popen(["sleep", "60"], user=65534, group=65534, env={COOKIE_VARIABLE: "u-1"})
    try:
        with marked("u-1") as mine:
            assert other.pid < mine.pid or pytest.skip("pids wrapped around")
            assert list(marked_processes(b"u-")) == [(mine.pid, b"u-1")]  # nobody's is not ours
    finally:
        other.kill()
        other.wait()


def test_a_sweep_that_killed_looks_again_later_on_the_loop(caplog):
    """A command ends, its sweep is due SWEEP_DELAY later on the loop, kills what it left
    (logged, on the loop) and, having found some, sets one more sweep on that loop."""
    own = ProcessTracker()
    caplog.set_level("INFO", "rcmd.server")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        number = own.started()
        with marked(own.cookie(number)) as left:
            own.ended(number)
            first = own._sweep
            assert first is not None
            assert own._sweep_loop is loop
            await until(lambda: bool(caplog.messages))
            assert left.wait(WAIT) == -signal.SIGKILL
        assert caplog.messages == ["killed 1 process(es) left behind by ended commands"]
        again = own._sweep
        assert again is not None
        assert again is not first
        assert again.when() - loop.time() == pytest.approx(process.SWEEP_DELAY, abs=0.1)
        assert own._sweep_loop is loop
        own.close()

    run(main())


def test_a_sweep_due_when_one_ends_is_not_set_twice(caplog):
    own = ProcessTracker()
    caplog.set_level("INFO", "rcmd.server")

    async def main() -> None:
        ended, later = own.started(), own.started()
        with marked(own.cookie(ended)) as left:
            own.live.discard(ended)
            own.sweep()  # scanning on the scan thread
            own.ended(later)  # meanwhile: a sweep is due
            due = own._sweep
            assert due is not None
            await until(lambda: bool(caplog.messages))
            assert left.wait(WAIT) == -signal.SIGKILL
            assert own._sweep is due
        own.close()

    run(main())


def test_a_sweep_is_set_again_after_one_that_found_nothing_and_on_a_new_loop():
    own = ProcessTracker()

    async def first_loop() -> None:
        number = own.started()
        own.ended(number)  # nothing left: its sweep finds nothing, and sets no other
        sweep = own._sweep
        assert sweep is not None
        await until(lambda: own._sweep is None)

    async def same_loop_again() -> None:
        await first_loop()
        number = own.started()
        with marked(own.cookie(number)) as left:
            own.ended(number)
            assert own._sweep is not None
            await until(lambda: left.poll() is not None)  # swept on this loop
            assert left.returncode == -signal.SIGKILL
        if own._sweep is not None:  # a sweep that found the last of them sets no other
            own._sweep.cancel()

    async def a_loop_that_ends_with_a_sweep_due() -> None:
        own._sweep = None
        own.ended(own.started())
        assert own._sweep is not None  # due on this loop, which ends first

    async def a_new_loop() -> None:
        number = own.started()
        with marked(own.cookie(number)) as left:
            own.ended(number)
            assert own._sweep_loop is asyncio.get_running_loop()
            await until(lambda: left.poll() is not None)  # swept on this loop
            assert left.returncode == -signal.SIGKILL

    run(same_loop_again())
    run(a_loop_that_ends_with_a_sweep_due())
    run(a_new_loop())
    own.close()


def test_as_subreaper_a_command_that_left_no_orphan_is_not_swept(subreaper):
    as_subreaper(subreaper)

    async def main() -> None:
        quiet = subreaper.started()
        # Every child this process has by now, as the test's start did: in the whole suite,
        # what other tests left can come back to this subreaper meanwhile (failed once so).
        subreaper.leaders |= set(subreaper._children())
        subreaper.ended(quiet)
        assert subreaper._sweep is None  # nothing outlived it
        pid = orphan()
        try:
            noisy = subreaper.started()
            subreaper.ended(noisy)
            assert subreaper._sweep is not None
        finally:
            os.kill(pid, signal.SIGKILL)
            assert gone(pid)
            os.waitpid(pid, 0)

    run(main())


def test_a_cookie_under_the_prefix_but_not_a_number_is_swept():
    own = ProcessTracker()
    own.started()
    with marked(own.prefix.decode() + "x") as foreign:
        own.sweep()  # no loop: at once
        assert foreign.wait(WAIT) == -signal.SIGKILL


def test_a_dead_watchdog_that_cannot_be_restarted_is_none(subreaper, monkeypatch, caplog):
    subreaper.start(subreaper=True)
    watchdog = subreaper._watchdog
    assert watchdog is not None
    subreaper.leaders |= set(subreaper._children()) - {watchdog.pid}
    pid = orphan()  # a zombie after the watchdog's: reaped in the same call
    os.kill(pid, signal.SIGKILL)
    watchdog.kill()
    assert gone(watchdog.pid)
    assert gone(pid)
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    caplog.set_level("WARNING", "rcmd.server")
    subreaper.reap_orphans()
    assert caplog.messages[0] == f"the watchdog (pid {watchdog.pid}) died: restarting it"
    assert caplog.messages[1].startswith("cannot start the watchdog: ")
    assert subreaper._watchdog is None
    assert pid not in set(subreaper._children())


class _ReapedMeanwhile:
    """os for rcmd.process, but each zombie is reaped by someone else just before waitpid()."""

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    @staticmethod
    def waitpid(pid: int, options: int) -> tuple[int, int]:
        os.waitpid(pid, options)
        raise ChildProcessError(10, "No child processes")


def test_an_orphan_reaped_by_another_between_look_and_reap_is_no_error(subreaper, monkeypatch):
    as_subreaper(subreaper)
    pid = dead_orphan()
    monkeypatch.setattr(process, "os", _ReapedMeanwhile())
    subreaper.reap_orphans()
    monkeypatch.undo()
    assert pid not in set(subreaper._children())
