"""Running one command in its own process group, and killing the whole group.

The server's only contact with the operating system's processes. POSIX is the tested
path; the Windows branches (cmd.exe, a new process group, no killpg) are kept so the
design holds there, but nothing here runs them: they are untested.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from typing import Mapping

IS_WINDOWS = os.name == "nt"

#: How much of a pipe one read takes; also the asyncio stream limit, so at most about
#: twice this much output waits in the server per stream before the child is paused.
OUTPUT_CHUNK_SIZE = 256 * 1024
#: Output pipes are enlarged to this (Linux, F_SETPIPE_SZ): with the default 64 KiB, each
#: wakeup moves at most 64 KiB; 1 MiB lets a fast command fill whole chunks. It is kernel
#: memory, within /proc/sys/fs/pipe-max-size, and not the server's.
PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = 1031


def default_shell() -> str:
    """/bin/sh on POSIX; cmd.exe (COMSPEC) on Windows."""
    if IS_WINDOWS:  # pragma: no cover - untested here
        return os.environ.get("COMSPEC", "cmd.exe")
    return "/bin/sh"


def shell_argv(shell: str, command: str) -> list[str]:
    """The argv that runs *command* in *shell*: ``sh -c CMD`` or ``cmd.exe /c CMD``."""
    name = os.path.basename(shell).lower()
    if name in ("cmd", "cmd.exe"):  # pragma: no cover - untested here
        return [shell, "/c", command]
    return [shell, "-c", command]


async def spawn(
    command: str,
    *,
    shell: str,
    cwd: str,
    env: Mapping[str, str],
    stdin: bool,
) -> asyncio.subprocess.Process:
    """Start *command* in *shell*, as the leader of a new process group (session).

    stdout and stderr are pipes; stdin is a pipe when *stdin* is true, else empty
    (/dev/null), so a command that reads stdin ends instead of waiting forever.
    Raises OSError when the shell cannot be started (missing, or cwd unusable).
    """
    kwargs: dict = {}
    if IS_WINDOWS:  # pragma: no cover - untested here
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        kwargs["start_new_session"] = True  # setsid(): pgid == pid, no controlling tty
    process = await asyncio.create_subprocess_exec(
        *shell_argv(shell, command),
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=dict(env),
        limit=OUTPUT_CHUNK_SIZE,
        **kwargs,
    )
    _enlarge_output_pipes(process)
    return process


def _enlarge_output_pipes(process: asyncio.subprocess.Process) -> None:
    """Best effort: asyncio keeps the pipes in Process._transport, which is not public, so
    any failure here just leaves the default size."""
    try:
        import fcntl

        for fd in (1, 2):
            pipe = process._transport.get_pipe_transport(fd).get_extra_info("pipe")  # type: ignore[attr-defined]
            fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
    except (ImportError, AttributeError, OSError, ValueError):
        pass  # ValueError: a quick command's pipe is closed already; nothing to enlarge


async def wait_for_exit(process: asyncio.subprocess.Process) -> None:
    """Return once the process itself has exited, whether or not its pipes are closed.

    ``Process.wait()`` also waits for stdout and stderr to close, so a background child
    that keeps them open would hide the shell's exit. On Linux a pidfd says when the
    process exits; elsewhere this falls back to ``Process.wait()``.
    """
    if process.returncode is not None:
        return
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:  # pragma: no cover - not Linux
        await process.wait()
        return
    try:
        fd = pidfd_open(process.pid)
    except ProcessLookupError:
        return  # exited and reaped already
    loop = asyncio.get_running_loop()
    exited = loop.create_future()
    loop.add_reader(fd, lambda: exited.done() or exited.set_result(None))
    try:
        await exited
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def signal_group(process: asyncio.subprocess.Process, sig: int | None = None) -> None:
    """Send *sig* (default SIGKILL) to every process in *process*'s group; one gone is fine.

    Safe after the leader has been reaped: the group id stays reserved while any member
    lives, and once none does, killpg finds nothing.
    """
    if IS_WINDOWS:  # pragma: no cover - untested here
        try:
            process.kill()
        except ProcessLookupError:
            pass
        return
    try:
        os.killpg(process.pid, signal.SIGKILL if sig is None else sig)
    except (ProcessLookupError, PermissionError):
        pass
