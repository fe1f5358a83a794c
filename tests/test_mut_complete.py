"""Tab completion, the server's side (rcmd/server/complete.py), against a BackgroundServer: a
real server in a thread of this process, so that mutmut's per-test stats see the listing (it
runs on asyncio.to_thread) and each mutant runs only the tests that reach it. The limits are
module constants, lowered here with monkeypatch: the server reads them from the same module.
test_complete_server.py covers the same ground against a server subprocess."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from rcmd import connect
from rcmd.client import Client
from rcmd.completion import request
from rcmd.messages import Complete, Completions
from rcmd.server import BackgroundServer
from rcmd.server import complete as server_complete


@pytest.fixture(scope="module")
def background() -> Iterator[BackgroundServer]:
    with BackgroundServer() as server:
        yield server


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Files and directories, a hidden one, a program, and a link that loops (stat: ELOOP)."""
    root = tmp_path / "tree"
    (root / "src" / "inner").mkdir(parents=True)
    (root / "notes.txt").write_text("x")
    (root / "nothing.txt").write_text("x")
    (root / ".hidden").write_text("x")
    (root / "a-data").write_text("x")  # sorts before the program
    (root / "b-run").write_text("#!/bin/sh\n")
    (root / "b-run").chmod(0o755)
    (root / "loop").symlink_to("loop")
    return root


@pytest.fixture
def client(background: BackgroundServer, tree: Path) -> Iterator[Client]:
    with connect(*background.address) as client:
        assert client.run(f"cd '{tree}'").returncode == 0
        yield client


def items(client: Client, text: str, kind: str = "path") -> tuple[str, ...]:
    answer = request(client, text, kind)
    assert answer.truncated is False
    return tuple(answer.items)


def test_paths_in_the_connections_directory(client):
    assert items(client, "no") == ("notes.txt", "nothing.txt")
    assert items(client, "") == ("a-data", "b-run", "loop", "notes.txt", "nothing.txt", "src/")
    assert items(client, ".") == (".hidden",)  # hidden names for a hidden prefix only
    assert items(client, "src/") == ("src/inner/",)
    assert items(client, "src/i") == ("src/inner/",)
    assert items(client, "src/../note") == ("src/../notes.txt",)
    assert items(client, "notes.txt/") == ()


def test_a_link_that_cannot_be_followed_is_a_name_not_a_directory_nor_a_program(client):
    assert items(client, "lo") == ("loop",)
    assert items(client, "./lo", "command") == ()


def test_a_name_that_is_not_text_is_left_out(client, tree):
    os.close(os.open(os.path.join(os.fsencode(tree), b"bad\xffname"), os.O_CREAT | os.O_WRONLY))
    (tree / "bad-but-fine").touch()
    assert items(client, "bad") == ("bad-but-fine",)


def test_paths_come_back_sorted(client, tree):
    names = [f"m{n:02}" for n in range(40)]
    for name in random.sample(names, len(names)):
        (tree / name).touch()
    assert items(client, "m") == tuple(names)


def test_a_command_word_with_a_slash_is_a_program_path(client):
    assert items(client, "./", "command") == ("./b-run", "./src/")
    assert items(client, "./a", "command") == ()
    assert items(client, "./a", "path") == ("./a-data",)


def test_a_nul_matches_nothing(client, tree):
    for text in ("a\0b", "~\0", "src\0/x"):
        for kind in ("path", "command"):
            assert items(client, text, kind) == ()
    assert client.run("echo alive").stdout == b"alive\n"


# ------------------------------------------------------------------------- the home


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / "sub").mkdir(parents=True)
    (home / "file").touch()
    monkeypatch.setenv("HOME", str(home))
    return home


def test_the_home_as_a_directory(client, home):
    assert items(client, "~") == ("~/",)
    assert items(client, "~/") == ("~/file", "~/sub/")
    assert items(client, "~/s") == ("~/sub/",)


def test_an_unknown_user_is_no_home_even_where_a_directory_has_that_name(client, home, tmp_path, monkeypatch):
    """ "~nobody-here" stays as typed; a directory of that name where the server runs is not it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "~nobody-here").mkdir()
    assert items(client, "~nobody-here") == ()


def test_a_home_that_is_not_a_directory_completes_nothing(client, home, monkeypatch):
    monkeypatch.setenv("HOME", str(home / "file"))
    assert items(client, "~") == ()
    monkeypatch.setenv("HOME", str(home / "missing"))
    assert items(client, "~") == ()


# ------------------------------------------------------------------------- commands


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH of one directory: two programs, a data file, a directory, a looping link."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, mode in (("rcmdtest-tool", 0o755), ("rcmdtest-tool2", 0o755), ("rcmdtest-data", 0o644)):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(mode)
    (bin_dir / "rcmdtest-dir").mkdir()
    (bin_dir / "rcmdtest-loop").symlink_to("rcmdtest-loop")
    (bin_dir / "export").write_text("#!/bin/sh\n")  # a builtin's name, offered once
    (bin_dir / "export").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def test_commands_come_from_path_and_the_shells_words(client, bin_dir):
    assert items(client, "rcmdtest-", "command") == ("rcmdtest-tool", "rcmdtest-tool2")
    assert items(client, "expor", "command") == ("export",)
    assert items(client, "whil", "command") == ("while",)
    assert items(client, "e", "command") == (
        "echo",
        "elif",
        "else",
        "enable",
        "esac",
        "eval",
        "exec",
        "exit",
        "export",
    )


def test_an_empty_path_entry_is_the_connections_directory(client, bin_dir, tree, monkeypatch):
    monkeypatch.setenv("PATH", f"{bin_dir}:")
    assert items(client, "b-", "command") == ("b-run",)
    assert items(client, "rcmdtest-t", "command") == ("rcmdtest-tool", "rcmdtest-tool2")
    monkeypatch.setenv("PATH", f"src:{bin_dir}")  # relative: to the connection's directory
    (tree / "src" / "rcmdtest-here").write_text("#!/bin/sh\n")
    (tree / "src" / "rcmdtest-here").chmod(0o755)
    assert items(client, "rcmdtest-", "command") == ("rcmdtest-here", "rcmdtest-tool", "rcmdtest-tool2")


def test_without_a_path_the_default_one(client, monkeypatch):
    monkeypatch.delenv("PATH")
    assert "sh" in items(client, "sh", "command")  # /bin/sh, from os.defpath


def test_the_commands_limits(client, bin_dir, monkeypatch):
    monkeypatch.setattr(server_complete, "MAX_COMPLETIONS", 2)
    answer = request(client, "rcmdtest-", "command")
    assert answer == Completions(("rcmdtest-tool", "rcmdtest-tool2"), truncated=False)
    monkeypatch.setattr(server_complete, "MAX_COMPLETIONS", 1)
    assert request(client, "rcmdtest-", "command") == Completions(("rcmdtest-tool",), truncated=True)
    monkeypatch.setattr(server_complete, "MAX_COMPLETIONS", 10)
    monkeypatch.setattr(server_complete, "MAX_COMPLETION_BYTES", len("rcmdtest-tool") + len("rcmdtest-tool2"))
    answer = request(client, "rcmdtest-", "command")
    assert answer == Completions(("rcmdtest-tool", "rcmdtest-tool2"), truncated=False)  # exactly
    monkeypatch.setattr(server_complete, "MAX_COMPLETION_BYTES", 2 * len("rcmdtest-tool") - 1)
    assert request(client, "rcmdtest-", "command") == Completions(("rcmdtest-tool",), truncated=True)


def test_the_commands_scan_stops_at_its_budget(client, bin_dir, tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    (other / "rcmdtest-other").write_text("#!/bin/sh\n")
    (other / "rcmdtest-other").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{other}")
    monkeypatch.setattr(server_complete, "MAX_SCANNED", 7)  # bin_dir has 6: other's is the 7th
    assert items(client, "rcmdtest-", "command") == ("rcmdtest-other", "rcmdtest-tool", "rcmdtest-tool2")
    monkeypatch.setattr(server_complete, "MAX_SCANNED", 6)  # bin_dir, then other's one is over
    answer = request(client, "rcmdtest-", "command")
    assert answer == Completions(("rcmdtest-tool", "rcmdtest-tool2"), truncated=True)


# --------------------------------------------------------------------------- limits


@pytest.fixture
def five(tree: Path) -> Path:
    folder = tree / "five"
    folder.mkdir()
    for name in ("f1", "f2", "f3", "f4", "f5"):
        (folder / name).touch()
    return folder


def test_at_most_max_completions_items(client, five, monkeypatch):
    monkeypatch.setattr(server_complete, "MAX_COMPLETIONS", 5)
    assert request(client, "five/f", "path") == Completions(
        ("five/f1", "five/f2", "five/f3", "five/f4", "five/f5"), truncated=False
    )
    monkeypatch.setattr(server_complete, "MAX_COMPLETIONS", 3)
    assert request(client, "five/f", "path") == Completions(("five/f1", "five/f2", "five/f3"), truncated=True)


def test_at_most_max_completion_bytes(client, five, monkeypatch):
    monkeypatch.setattr(server_complete, "MAX_COMPLETION_BYTES", 5 * len("five/f1"))  # all, exactly
    answer = request(client, "five/f", "path")
    assert answer == Completions(("five/f1", "five/f2", "five/f3", "five/f4", "five/f5"), truncated=False)
    monkeypatch.setattr(server_complete, "MAX_COMPLETION_BYTES", 3 * len("five/f1") + 1)
    assert request(client, "five/f", "path") == Completions(("five/f1", "five/f2", "five/f3"), truncated=True)


def test_at_most_max_scanned_entries(client, five, monkeypatch):
    monkeypatch.setattr(server_complete, "MAX_SCANNED", 5)  # every one, exactly
    assert len(items(client, "five/f")) == 5
    monkeypatch.setattr(server_complete, "MAX_SCANNED", 4)
    answer = request(client, "five/f", "path")
    assert len(answer.items) == 4
    assert answer.truncated


def test_the_clock_is_read_every_scan_check_entries(client, five, monkeypatch):
    monkeypatch.setattr(server_complete, "SCAN_SECONDS", -1.0)  # the deadline has passed at once
    monkeypatch.setattr(server_complete, "SCAN_CHECK", 3)  # noticed at the third entry
    answer = request(client, "five/f", "path")
    assert len(answer.items) == 2
    assert answer.truncated


def test_the_clock_alone_stops_nothing_before_its_deadline(client, tree):
    many = tree / "many"
    many.mkdir()
    for n in range(300):  # more than SCAN_CHECK (256): the clock is read, and time is left
        (many / f"g{n:03}").touch()
    assert len(items(client, "many/g")) == 300


# ------------------------------------------------------------------- answer() itself


def test_answer_completes_for_a_user_who_may_run_commands_only(tree):
    async def scenario() -> tuple[Completions, Completions, Completions]:
        return (
            await server_complete.answer(Complete("no"), str(tree)),
            await server_complete.answer(Complete("no"), str(tree), allowed=True),
            await server_complete.answer(Complete("no"), str(tree), allowed=False),
        )

    everyone, allowed, refused = asyncio.run(scenario())
    assert everyone == allowed == Completions(("notes.txt", "nothing.txt"))
    assert refused == Completions()


def test_a_name_the_file_system_cannot_take_matches_nothing(tree):
    """A lone surrogate names no file (os.scandir raises a ValueError for it)."""
    assert server_complete.complete("\ud800/x", "path", str(tree), "") == Completions()
    assert server_complete.complete("x", "command", str(tree), "\ud800") == Completions()
