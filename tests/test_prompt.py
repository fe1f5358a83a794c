"""The interactive prompt, driven in a real pseudo-terminal (pexpect), against a real server."""

from __future__ import annotations

import os
import re

import pexpect
import pytest
from conftest import CLIENT_ARGV, SplitOutput, wait_gone

ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")
UP = "\x1b[A"


@pytest.fixture
def terminal_env(tmp_path):
    return {
        **os.environ,
        "XDG_DATA_HOME": str(tmp_path / "data"),  # the history file lands here
        "TERM": "xterm",
        "PROMPT_TOOLKIT_NO_CPR": "1",  # pexpect does not answer cursor-position queries
        "PYTHONIOENCODING": "utf-8",
    }


def spawn(server, env, *args: str, first: str = "connected to") -> pexpect.spawn:
    child = pexpect.spawn(
        CLIENT_ARGV[0],
        [*CLIENT_ARGV[1:], f"127.0.0.1:{server.port}", *args],
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 200),
    )
    child.expect(first)
    return child


ESC = r"(?:\x1b\[[0-9;?]*[a-zA-Z])*"  # colour and cursor sequences between the parts


def leave_with_ctrl_d(child, prompt: str) -> None:
    """Wait for *prompt*, then Ctrl-D. Sent before the prompt is back, Ctrl-D reaches the tty
    in cooked mode, which takes it as end-of-file for nobody: it is lost, as in bash."""
    child.expect(prompt)
    child.sendcontrol("d")
    child.expect(pexpect.EOF)


def prompt_pattern(cwd: str | None = None) -> str:
    """The prompt, ``HOST:PORT CWD>``, coloured or not."""
    cwd_pattern = re.escape(cwd) if cwd else r"[^\x1b\s]+"
    return r"127\.0\.0\.1:\d+" + ESC + " " + ESC + cwd_pattern + ESC + ">"


def expect_prompt(child, cwd: str | None = None) -> None:
    child.expect(prompt_pattern(cwd))


def test_output_cd_and_status_at_the_prompt(server, terminal_env, tmp_path):
    child = spawn(server, terminal_env)
    expect_prompt(child)
    child.sendline("echo hello-from-remote")
    child.expect("hello-from-remote\r\n")
    expect_prompt(child)
    target = os.path.realpath(tmp_path)
    child.sendline(f"cd {target}")
    expect_prompt(child, target)  # the prompt shows the new directory
    child.sendline("pwd")
    child.expect(re.escape(target) + "\r\n")
    child.sendline("echo oops >&2; exit 3")
    child.expect(r"oops")
    child.expect(r"\[exit 3\]")
    leave_with_ctrl_d(child, prompt_pattern(target))
    child.close()
    assert child.exitstatus == 3  # the last command's status


def test_history_up_arrow_within_and_across_sessions(server, terminal_env, tmp_path):
    # The screen shows a recalled line as cursor moves plus the changed part, so the proof
    # is behaviour: Up then Enter runs the recalled command again.
    child = spawn(server, terminal_env)
    expect_prompt(child)
    child.sendline("echo marker-$((6*7))")
    child.expect("marker-42\r\n")
    expect_prompt(child)
    child.send(UP)
    child.send("\r")
    child.expect("marker-42\r\n")  # ran again from history
    expect_prompt(child)
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()
    history = (tmp_path / "data" / "rcmd" / "history").read_text()
    assert "+echo marker-$((6*7))" in history
    assert "+exit" in history

    again = spawn(server, terminal_env)  # a new session reads the same history file
    expect_prompt(again)
    again.send(UP)  # "exit"
    again.send(UP)  # "echo marker-$((6*7))"
    again.send("\r")
    again.expect("marker-42\r\n")
    expect_prompt(again)
    again.sendline("quit")
    again.expect(pexpect.EOF)


@pytest.mark.parametrize(
    ("args", "note"),
    [
        ((), r"\[killed by SIGINT[^\]]*\]"),  # a PTY (the default): Ctrl-C is sent, as over ssh
        (("-T",), r"\[cancelled\]"),  # no PTY: Ctrl-C has the server kill the command
    ],
)
def test_ctrl_c_cancels_the_remote_command_and_the_prompt_answers(server, terminal_env, args, note):
    child = spawn(server, terminal_env, *args)
    expect_prompt(child)
    child.sendline("sleep 1000 & echo pids $! $$; wait")
    child.expect(r"pids (\d+) (\d+)\r\n")
    pids = [int(child.match.group(1)), int(child.match.group(2))]
    child.sendintr()  # Ctrl-C
    child.expect(note)
    expect_prompt(child)
    for pid in pids:
        assert wait_gone(pid), f"remote process {pid} survived Ctrl-C"
    child.sendline("echo still-answering")
    child.expect("still-answering\r\n")
    leave_with_ctrl_d(child, prompt_pattern())


def test_ctrl_c_at_the_prompt_clears_the_line(server, terminal_env):
    child = spawn(server, terminal_env)
    expect_prompt(child)
    child.send("echo never-run")
    child.expect("never-run")
    child.sendintr()
    expect_prompt(child)
    # Printed "42-ran" is never typed, so the first match is the output. Had Ctrl-C left the
    # line in place, the command would be "echo never-runecho $((6*7))-ran", printing
    # "never-runecho 42-ran".
    child.sendline("echo $((6*7))-ran")
    child.expect(r"([^\r\n]*)42-ran\r\n")
    assert ANSI.sub("", child.match.group(1)) == ""
    child.sendline("exit")
    child.expect(pexpect.EOF)


def test_naive_prompt_warns_and_shows_the_bug(naive_server, terminal_env):
    child = spawn(naive_server, terminal_env, "--framing", "naive", first="deliberately broken")
    child.expect("naive " + ESC + r"127\.0\.0\.1:")
    child.sendline("seq 1 2000")  # 8893 bytes; the reader takes 1024 (numbers 1 to 283)
    child.expect(r"\r\n3\r\n")
    child.expect("naive " + ESC + r"127\.0\.0\.1:")
    child.sendline("echo hi")  # answered with the next 1024 bytes of seq: the lesson
    child.expect(r"\r\n(2[89]\d|[3-5]\d\d)\r\n")
    shown = child.before + child.after
    child.expect("naive " + ESC + r"127\.0\.0\.1:")  # the prompt after the reply
    shown += child.before  # all that was shown between the two prompts
    assert "\r\nhi\r\n" not in ANSI.sub("", shown)
    child.sendcontrol("d")
    child.expect(pexpect.EOF)


def test_piped_stdin_has_no_prompt_and_no_colour(server):
    import subprocess

    proc = subprocess.run(
        [*CLIENT_ARGV, f"127.0.0.1:{server.port}"],
        input=b"echo one\necho two >&2\n",
        capture_output=True,
        timeout=60,
    )
    assert proc.stdout == b"one\n"
    assert proc.stderr == b"two\n"
    assert proc.returncode == 0


def test_output_is_live_not_held_until_the_command_ends(server, terminal_env, tmp_path):
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    child = spawn(server, terminal_env)
    expect_prompt(child)
    child.sendline(f"echo first-line; cat {gate}; echo second-line")
    child.expect("first-line\r\n")  # shown while the command is still blocked on the gate
    with open(gate, "w") as writer:
        writer.write("gate-opened\n")
    child.expect("gate-opened\r\n")
    child.expect("second-line\r\n")
    leave_with_ctrl_d(child, prompt_pattern())


def test_one_shot_colours_stderr_red_on_a_terminal(server, terminal_env):
    child = spawn(server, terminal_env, "-c", "echo plain-out; echo red-err >&2", first="plain-out")
    child.expect(r"\x1b\[31mred-err")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    plain = spawn(server, {**terminal_env, "NO_COLOR": "1"}, "-c", "echo red-err >&2", first="red-err")
    plain.expect(pexpect.EOF)
    assert "\x1b[" not in (plain.before or "")


def test_a_line_of_spaces_is_not_kept_in_history(server, terminal_env, tmp_path):
    child = spawn(server, terminal_env)
    expect_prompt(child)
    child.sendline("echo kept-$((1+1))")
    child.expect("kept-2\r\n")
    expect_prompt(child)
    child.sendline("   ")  # not sent; must not cost an Up press either
    expect_prompt(child)
    child.send(UP)  # one Up reaches the last command, not the blank line
    child.send("\r")
    child.expect("kept-2\r\n")
    leave_with_ctrl_d(child, prompt_pattern())
    history = (tmp_path / "data" / "rcmd" / "history").read_text()
    assert [line for line in history.splitlines() if line.startswith("+")] == ["+echo kept-$((1+1))"]


def test_a_character_split_between_two_messages_shows_whole(gbk_server, terminal_env, tmp_path):
    split = SplitOutput(tmp_path, r"\326", r"\320\316\304\n")  # half of 中, then the rest of 中文
    child = spawn(gbk_server, terminal_env)
    expect_prompt(child)
    child.sendline(split.command)
    split.release()
    child.expect("\n" + ESC + "中文\r\n")  # the whole line, after the terminal's own sequences
    assert "\ufffd" not in child.before
    leave_with_ctrl_d(child, prompt_pattern())
