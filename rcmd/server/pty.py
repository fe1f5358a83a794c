"""Running a command on a pseudo-terminal: what ``ssh -t`` gives a remote program.

As ptyprocess and OpenSSH's session.c do it: a new pty pair; the command's shell becomes
the leader of a new session (setsid) whose controlling terminal is the pty's slave side
(TIOCSCTTY), with the slave as its stdin, stdout and stderr. The server keeps the master:
what the client types is written to it (the line discipline turns Ctrl-C into SIGINT for
the foreground process group), what the program prints is read from it, as one stream.
POSIX only.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import struct
import subprocess
import termios
from collections.abc import Mapping

from ..process import Child, tracker

#: What the master reads when every slave descriptor is closed (the program and its
#: children have exited): Linux says EIO rather than end of file.
EOF_ERRNOS = (errno.EIO,)


class PtyChild(Child):
    """A :class:`Child` on a pty: ``stdout`` is the master (output, merged), ``stderr`` is
    -1 (none), ``stdin`` a second descriptor of the master (input), or None."""

    def __init__(self, popen: subprocess.Popen[bytes], master: int, stdin: int | None, number: int) -> None:
        super().__init__(popen, master, -1, stdin, number)
        self.master = master

    def resize(self, rows: int, cols: int) -> None:
        """TIOCSWINSZ on the master: the kernel sends SIGWINCH to the foreground group."""
        if self.stdout >= 0:
            set_window_size(self.stdout, rows, cols)

    def close_stdin(self) -> None:
        """A terminal has no end of file to close: type the EOF character (VEOF, Ctrl-D)
        instead, as a user would, then stop writing."""
        if self.stdin is not None:
            try:
                os.write(self.stdin, bytes([termios.tcgetattr(self.stdin)[6][termios.VEOF][0]]))
            except (OSError, termios.error, IndexError, TypeError):  # termios.error is no OSError
                pass
        super().close_stdin()


def set_window_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


#: Keys the terminal turns into these signals must reach the program: a server started
#: in the background by a shell (``rcmd-server &``) ignores SIGINT and SIGQUIT, and its
#: children would inherit that (Ctrl-C and Ctrl-\\ would then do nothing), as sshd resets them.
TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)


def _take_controlling_terminal() -> None:  # pragma: no cover - runs in the child
    # After setsid() (start_new_session runs it before this): stdin is the slave side.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    for signum in TERMINAL_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)


def spawn_pty(
    command: str,
    *,
    shell: str,
    cwd: str,
    env: Mapping[str, str] | None,
    term: str,
    rows: int,
    cols: int,
    stdin: bool,
) -> PtyChild:
    """Start ``SHELL -c COMMAND`` on a new pty of *rows* x *cols*, $TERM set to *term*.

    *stdin* false: nothing is ever typed (the program waits for input that never comes,
    as on a terminal nobody uses). Raises OSError when the shell cannot be started.
    """
    number = tracker.started()  # its cookie, as for any command (rcmd.process)
    master, slave = os.openpty()
    try:
        set_window_size(slave, rows, cols)
        popen = subprocess.Popen(
            tracker.command_argv(number, [shell, "-c", command]),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=tracker.environment(number, {**(env if env is not None else os.environ), "TERM": term}),
            start_new_session=True,
            preexec_fn=_take_controlling_terminal,
        )
        tracker.leaders.add(popen.pid)
    except BaseException:
        tracker.ended(number)
        os.close(master)
        raise
    finally:
        os.close(slave)  # the child has its own: the master then reads EIO once it is gone
    os.set_blocking(master, False)
    typed = os.dup(master) if stdin else None
    return PtyChild(popen, master, typed, number)
