"""rcmd in a real terminal (pexpect): Ctrl-C, stdin from a tty, and remote PTYs driving real programs."""

from __future__ import annotations

import os
import termios

import pexpect
import pytest
from conftest import CLIENT_ARGV

from rcmd.console import ExitStatus


@pytest.fixture
def terminal_env(tmp_path):
    return {
        **os.environ,
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "TERM": "xterm",
        "PROMPT_TOOLKIT_NO_CPR": "1",
        "PYTHONIOENCODING": "utf-8",
    }


def spawn(server, env, *args: str, rows: int = 24, cols: int = 80) -> pexpect.spawn:
    return pexpect.spawn(
        CLIENT_ARGV[0],
        [*CLIENT_ARGV[1:], f"127.0.0.1:{server.port}", *args],
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(rows, cols),
    )


def no_flush_on_signal(child: pexpect.spawn) -> None:
    """stty noflsh: else the terminal discards its output queue when it turns Ctrl-C into
    SIGINT, in a kernel worker racing with our handler, and may discard what we print next."""
    attrs = termios.tcgetattr(child.child_fd)
    attrs[3] |= termios.NOFLSH
    termios.tcsetattr(child.child_fd, termios.TCSANOW, attrs)


def test_ctrl_c_under_yes_drops_the_output_in_flight_and_says_how_much(server, terminal_env):
    child = spawn(server, terminal_env, "-c", "yes")
    no_flush_on_signal(child)
    child.expect("y\r\n")
    child.sendintr()  # Ctrl-C: the terminal sends SIGINT to rcmd
    child.expect(r"\[cancelled: [\d.]+ (bytes|KiB|MiB|GiB) of output dropped\]")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == ExitStatus.CANCELLED
