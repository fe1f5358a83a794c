"""Tab at the interactive prompt, in a real pseudo-terminal (pexpect), against real servers.

The proof is behaviour, as in test_prompt.py: the line is completed by Tab alone, then Enter
runs it, and the command's output shows that the completed name was the right one.
"""

from __future__ import annotations

import os

import pexpect
import pytest
from test_prompt import ESC, expect_prompt, leave_with_ctrl_d, prompt_pattern, spawn

TAB = "\t"


@pytest.fixture
def terminal_env(tmp_path):
    return {
        **os.environ,
        "XDG_DATA_HOME": str(tmp_path / "data"),  # the history file lands here
        "TERM": "xterm",
        "PROMPT_TOOLKIT_NO_CPR": "1",  # pexpect does not answer cursor-position queries
        "PYTHONIOENCODING": "utf-8",
    }


def test_tab_completes_a_remote_path_with_spaces(server, terminal_env, tmp_path):
    tree = tmp_path / "remote"
    (tree / "my dir").mkdir(parents=True)
    (tree / "my dir" / "inner file.txt").write_text("found-it\n")
    (tree / "other").mkdir()
    child = spawn(server, terminal_env)  # commands on a PTY, the prompt's default
    expect_prompt(child)
    child.sendline(f"cd '{tree}'")
    expect_prompt(child, str(tree))
    child.send("cat my" + TAB)  # one match: "my\ dir/" is typed for us
    child.expect(r"my\\ dir/")
    child.send("in" + TAB)  # and inside it, "inner\ file.txt "
    child.expect(r"inner\\ file\.txt")
    child.send("\r")
    child.expect("found-it\r\n")
    leave_with_ctrl_d(child, prompt_pattern(str(tree)))


def test_tab_completes_a_command_name_from_the_servers_path(server_factory, terminal_env, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "rcmdtab-hello"
    tool.write_text("#!/bin/sh\necho hello-from-the-tool\n")
    tool.chmod(0o755)
    server = server_factory(env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    child = spawn(server, terminal_env, "-T")
    expect_prompt(child)
    child.send("rcmdtab-h" + TAB)
    child.expect("rcmdtab-hello")
    child.send("\r")
    child.expect("hello-from-the-tool\r\n")
    leave_with_ctrl_d(child, prompt_pattern())


def test_a_second_tab_lists_the_choices(server, terminal_env, tmp_path):
    tree = tmp_path / "choices"
    tree.mkdir()
    for name in ("alpha-one", "alpha-two"):
        (tree / name).write_text(name + "\n")
    child = spawn(server, terminal_env, "-T")
    expect_prompt(child)
    child.sendline(f"cd '{tree}'")
    expect_prompt(child, str(tree))
    child.send("cat al" + TAB)  # what both share: "alpha-"
    child.expect("alpha-")
    child.send(TAB)  # no more in common: both are listed, as bash lists them
    child.expect("alpha-one")
    child.expect("alpha-two")
    child.send("t" + TAB + "\r")  # "alpha-t" has one match
    child.expect("cat alpha-two")  # the line as completed
    child.expect("alpha-two\r\n")  # then cat's output
    leave_with_ctrl_d(child, prompt_pattern(str(tree)))


def test_naive_framing_completes_nothing_and_still_works(naive_server, terminal_env):
    child = spawn(naive_server, terminal_env, "--framing", "naive", first="naive")
    child.expect("naive " + ESC + r"127\.0\.0\.1:\d+" + ESC + ">")
    child.send("echo ab" + TAB + "c\r")  # Tab does nothing: no question, no error
    child.expect("abc\r\n")
    child.sendline("exit")
    child.expect(pexpect.EOF)
