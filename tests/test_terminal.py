"""rcmd in a real terminal (pexpect): Ctrl-C, stdin from a tty, and remote PTYs driving real programs."""

from __future__ import annotations

import os
import re
import shutil
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


# ----------------------------------------------------------- real programs on a remote PTY


def test_python_repl_on_a_remote_pty(server, terminal_env):
    child = spawn(server, terminal_env, "-t", "-c", "python3 -q")
    child.expect(">>> ")
    child.send("1+1\r")
    child.expect("2\r\n")
    child.expect(">>> ")
    child.sendcontrol("d")  # a byte to the remote terminal: EOF for the REPL there
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_ctrl_c_interrupts_the_remote_program_which_lives_on(server, terminal_env):
    child = spawn(server, terminal_env, "-t", "-c", "python3 -q")
    child.expect(">>> ")
    child.send("import time; time.sleep(1000)\r")
    child.expect(r"time\.sleep\(1000\)\r\n")  # echoed by the remote terminal: it is reading
    child.sendcontrol("c")  # raw here: the byte goes to the remote pty, which sends SIGINT there
    child.expect("KeyboardInterrupt")
    child.expect(">>> ")
    child.send("6*7\r")
    child.expect("42\r\n")
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    # python3 ends by SIGINT after a KeyboardInterrupt at its prompt, remotely as locally.
    assert child.exitstatus == 128 + 2


def test_read_from_the_remote_terminal(server, terminal_env):
    child = spawn(server, terminal_env, "-t", "-c", "read x; echo got $x; exit 4")
    child.send("hello\r")
    child.expect("got hello\r\n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 4


def test_the_command_has_a_pts_terminal_and_our_term(server, terminal_env):
    child = spawn(
        server, terminal_env, "-t", "-c", "tty; echo term=$TERM; test -t 0 && test -t 2 && echo all-tty"
    )
    child.expect(r"/dev/pts/\d+\r\n")
    child.expect("term=xterm\r\n")
    child.expect("all-tty\r\n")
    child.expect(pexpect.EOF)


def test_without_t_there_is_no_terminal(server, terminal_env):
    child = spawn(server, terminal_env, "-c", "tty; exit 0")
    child.expect("not a tty")
    child.expect(pexpect.EOF)


def test_a_resize_is_seen_by_stty_size(server, terminal_env):
    child = spawn(server, terminal_env, "-t", "-c", "stty size; read x; stty size", rows=24, cols=80)
    child.expect("24 80\r\n")
    child.setwinsize(30, 100)  # SIGWINCH here -> WINDOW_CHANGE -> TIOCSWINSZ there
    child.send("\r")  # sent after the resize, and passed on after it
    child.expect("30 100\r\n")
    child.expect(pexpect.EOF)


def test_less_opens_and_quits(server, terminal_env, tmp_path):
    if not shutil.which("less"):
        pytest.skip("no less here")
    child = spawn(server, terminal_env, "-t", "-c", "seq 1 500 | less")
    child.expect("\r\n1\r\n|^1\r\n|1\r\n")
    child.expect(":")  # less's prompt: it runs full screen on the remote pty
    child.send("q")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def local_terminal_state(child: pexpect.spawn) -> list:
    """The termios flags of the terminal rcmd runs on (the master shows the slave's)."""
    return termios.tcgetattr(child.child_fd)[:4]


def test_the_terminal_is_restored_after_each_way_out(server_factory, terminal_env):
    """Normal end, remote error (connection lost) and SIGTERM: cooked mode comes back."""
    import signal

    from conftest import children_of, wait_gone

    server = server_factory()
    # rcmd runs under a shell that keeps the terminal open after rcmd ends, and waits.
    script = f'{" ".join(CLIENT_ARGV)} 127.0.0.1:{server.port} -t -c "$1"; echo rc=$?; read done'

    def run(command: str) -> pexpect.spawn:
        child = pexpect.spawn(
            "/bin/sh", ["-c", script, "sh", command], env=terminal_env, encoding="utf-8", timeout=30
        )
        return child

    cooked = None
    for how in ("normal", "lost", "sigterm"):
        child = run("echo ready $$; exec sleep 1000" if how != "normal" else "echo ready $$")
        if cooked is None:
            cooked = local_terminal_state(child)
        child.expect(r"ready (\d+)")
        remote_pid = int(child.match.group(1))
        if how == "lost":
            server.stop(signal.SIGKILL)  # the connection is lost mid-command, with no goodbye
            os.kill(remote_pid, signal.SIGKILL)  # what the killed server leaves behind
        elif how == "sigterm":
            (rcmd_pid,) = children_of(child.pid)
            os.kill(rcmd_pid, signal.SIGTERM)
        child.expect(r"rc=(\d+)")
        code = int(child.match.group(1))
        assert local_terminal_state(child) == cooked, how
        assert code == {"normal": 0, "lost": ExitStatus.CONNECTION_LOST, "sigterm": 128 + signal.SIGTERM}[how]
        assert wait_gone(remote_pid)  # after SIGTERM too: the server killed the command of a client gone
        child.sendline("")
        child.expect(pexpect.EOF)
        if how == "lost":
            server = server_factory()
            script = f'{" ".join(CLIENT_ARGV)} 127.0.0.1:{server.port} -t -c "$1"; echo rc=$?; read done'


def test_the_prompt_runs_commands_on_a_pty_by_default(server, terminal_env):
    from test_prompt import expect_prompt, leave_with_ctrl_d, prompt_pattern

    child = spawn(server, terminal_env, rows=40, cols=200)
    expect_prompt(child)
    child.sendline("tty")
    child.expect(r"/dev/pts/\d+\r\n")
    expect_prompt(child)
    child.sendline("python3 -q")
    child.expect(">>> ")
    child.send("1+1\r")
    child.expect("2\r\n")
    child.expect(">>> ")
    child.sendcontrol("d")
    expect_prompt(child)
    child.sendline("stty size")
    child.expect("40 200\r\n")
    leave_with_ctrl_d(child, prompt_pattern())
    child.close()
    assert child.exitstatus == 0


def test_dash_capital_t_at_the_prompt_means_no_terminal(server, terminal_env):
    from test_prompt import expect_prompt, leave_with_ctrl_d, prompt_pattern

    child = spawn(server, terminal_env, "-T")
    expect_prompt(child)
    child.sendline("tty")
    child.expect("not a tty")
    leave_with_ctrl_d(child, prompt_pattern())


# ------------------------------------------------- a dead connection, noticed and revived


def test_the_prompt_reconnects_after_a_server_restart_and_restores_the_directory(
    server_factory, terminal_env, tmp_path
):
    from test_prompt import expect_prompt, leave_with_ctrl_d, prompt_pattern

    first = server_factory()
    port = first.port
    # Wide enough for the prompt to show pytest's temporary path on one line, however long.
    child = spawn(first, terminal_env, "-T", cols=400)
    expect_prompt(child)
    target = os.path.realpath(tmp_path)
    child.sendline(f"cd {target}")
    expect_prompt(child, target)
    first.stop()  # the server goes away while the prompt waits
    second = server_factory(port=port)
    child.sendline("echo after-restart; pwd")
    child.expect(r"reconnected, back in " + re.escape(target))
    child.expect("after-restart\r\n")  # the typed command was run, not lost
    child.expect(re.escape(target) + "\r\n")
    leave_with_ctrl_d(child, prompt_pattern(target))
    assert "cd " in second.log()


def test_the_prompt_says_so_when_it_cannot_reconnect(server_factory, terminal_env):
    from test_prompt import expect_prompt, leave_with_ctrl_d, prompt_pattern

    first = server_factory()
    child = spawn(first, terminal_env, "-T")
    expect_prompt(child)
    first.stop()
    child.sendline("echo lost-command")
    child.expect("reconnecting failed")
    child.expect("not run: echo lost-command")
    leave_with_ctrl_d(child, prompt_pattern())


def test_keepalives_hold_an_idle_prompt_open_past_the_servers_idle_timeout(server_factory, terminal_env):
    from test_prompt import expect_prompt, leave_with_ctrl_d, prompt_pattern

    server = server_factory("--idle-timeout", "4")
    child = spawn(server, terminal_env, "-T")
    expect_prompt(child)
    # Pings every third of the idle timeout (4 s; more than a second of margin on a loaded machine):
    # 5 of them span more than the timeout.
    server.wait_for_log(r"(?s)(: ping.*){5}")
    child.sendline("echo still-here")
    child.expect("still-here\r\n")
    leave_with_ctrl_d(child, prompt_pattern())
    assert "idle for" not in server.log()
    assert "reconnected" not in child.before


def test_ctrl_c_under_yes_on_a_pty_drops_what_was_in_flight(server, terminal_env):
    """The bytes before the PONG of a PING sent just before the Ctrl-C key were in flight."""
    from test_prompt import expect_prompt, leave_with_ctrl_d, prompt_pattern

    child = spawn(server, terminal_env)
    no_flush_on_signal(child)
    expect_prompt(child)
    child.sendline("yes")
    child.expect("y\r\n")
    child.sendintr()
    # How much was in flight depends on the machine's load: none is possible, and then no
    # note; how fast the prompt comes back is measured by hand (see the report).
    child.expect(r"\[killed by SIGINT(: [\d.]+ (bytes|KiB|MiB|GiB) of output dropped)?\]")
    leave_with_ctrl_d(child, prompt_pattern())


def test_cd_home_at_the_prompt_sticks(server, terminal_env):
    from test_prompt import expect_prompt, leave_with_ctrl_d, prompt_pattern

    child = spawn(server, terminal_env, "-T")
    expect_prompt(child)
    child.sendline("cd /")
    expect_prompt(child, "/")
    child.sendline("cd $HOME")
    home = os.path.realpath(os.path.expanduser("~"))
    leave_with_ctrl_d(child, prompt_pattern(home))  # the prompt shows the home directory
