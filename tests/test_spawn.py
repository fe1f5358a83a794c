"""Starting commands off the event loop (rcmd.process.spawn_in_thread), with real processes.

Two hazards of forking on a thread: a cancelled start still starts the command (it must be
killed and reaped, not left running), and the subreaper's reaping may see the new shell
exit before its pid is known as a command's (it must leave it to its Child, which reports
its exit status).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import children_of

from rcmd.process import spawn_in_thread, tracker

ROOT = str(Path(__file__).resolve().parent.parent)


def test_commands_started_on_threads_run_and_report_their_status():
    async def main() -> list[tuple[int | None, bytes]]:
        async def one(n: int) -> tuple[int | None, bytes]:
            child = await spawn_in_thread(
                f"echo {n}; exit {n}", shell="/bin/sh", cwd="/", env=None, stdin=False
            )
            try:
                stdout, _ = await child.communicate()
            finally:
                child.close()
            return child.returncode, stdout

        return await asyncio.gather(*(one(n) for n in range(8)))

    assert asyncio.run(main()) == [(n, f"{n}\n".encode()) for n in range(8)]


def test_a_start_cancelled_midway_kills_and_reaps_the_command():
    before = children_of(os.getpid())

    async def main() -> set[int]:
        task = asyncio.create_task(
            spawn_in_thread("exec sleep 60", shell="/bin/sh", cwd="/", env=None, stdin=False)
        )
        await asyncio.sleep(0)  # it has handed the start to a thread, and awaits it
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        else:
            task.result().close()
            raise AssertionError("the start was not cancelled")
        # The thread starts the command anyway: it must then be killed, and reaped.
        deadline = time.monotonic() + 30
        while (left := children_of(os.getpid()) - before) or tracker.spawning:
            if time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.01)
        return set()

    assert asyncio.run(main()) == set()


def test_a_start_cancelled_midway_that_fails_leaves_no_command_live():
    async def main() -> set[int]:
        live = set(tracker.live)
        task = asyncio.create_task(
            spawn_in_thread("true", shell="/bin/sh", cwd="/no/such/directory", env=None, stdin=False)
        )
        await asyncio.sleep(0)  # it has handed the start to a thread, and awaits it
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, FileNotFoundError):
            await task
        deadline = time.monotonic() + 30
        while tracker.spawning and time.monotonic() < deadline:  # the thread's failure comes back
            await asyncio.sleep(0.01)
        return tracker.live - live  # a number left live would keep its cookie from every sweep

    assert asyncio.run(main()) == set()


# In a process of its own: as a subreaper's, reap_orphans() reaps any exited child.
REAP_RACE = r"""
import asyncio, os, subprocess, sys
sys.path.insert(0, sys.argv[1])
from rcmd.process import tracker

async def main():
    tracker.subreaper = True
    # A shell just forked by a spawn thread, that has exited before its pid was added to
    # the tracker's leaders (as it may, while the thread waits for the GIL).
    shell = subprocess.Popen(["/bin/sh", "-c", "exit 3"])
    os.waitid(os.P_PID, shell.pid, os.WEXITED | os.WNOWAIT)
    tracker.spawning = 1
    tracker.reap_orphans()  # the SIGCHLD handler, meanwhile
    tracker.leaders.add(shell.pid)
    tracker.spawned()
    print(shell.wait())  # the Child's reaping: its real status, not ECHILD's 0

asyncio.run(main())
"""


def test_a_shell_started_on_a_thread_is_not_reaped_before_it_is_known():
    result = subprocess.run(
        [sys.executable, "-c", REAP_RACE, ROOT], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "3"


# In a process of its own, a subreaper: the orphan comes back to it.
ORPHAN_SWEPT = r"""
import asyncio, os, sys
sys.path.insert(0, sys.argv[1])
from rcmd.process import _become_subreaper, spawn_in_thread, tracker

async def main():
    tracker.subreaper = _become_subreaper()
    assert tracker.subreaper
    # Started on a spawn thread, its shell leaves a process that holds none of its pipes.
    child = await spawn_in_thread(
        "sleep 60 >/dev/null 2>&1 & echo $!", shell="/bin/sh", cwd="/", env=None, stdin=False
    )
    stdout, _ = await child.communicate()
    orphan = os.pidfd_open(int(stdout))
    child.close()  # the command has ended: what it left must be seen, and swept
    loop = asyncio.get_running_loop()
    dead = loop.create_future()
    loop.add_reader(orphan, dead.set_result, "swept")
    print(await asyncio.wait_for(dead, 30))

asyncio.run(main())
"""


def test_what_a_command_started_on_a_thread_leaves_is_swept_when_it_ends():
    result = subprocess.run(
        [sys.executable, "-c", ORPHAN_SWEPT, ROOT], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "swept", result.stderr
