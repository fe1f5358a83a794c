"""The server's ``cd`` builtin as functions: which lines are a sticky cd, and where they lead.

The end-to-end tests drive cd through a real server (one subprocess per mutant, about 30 s
each under mutmut); these check the same rules in-process, in milliseconds. The strerror of
each OSError is what the user reads ("cd: x: Not a directory"), so it is checked word for word.
"""

import errno
import os

import pytest

from rcmd.server.cd import parse_cd, resolve_cd


@pytest.mark.parametrize(
    ("command", "target"),
    [
        ("cd", ""),
        ("cd /tmp", "/tmp"),
        ("cd  sub ", "sub"),
        ("cd 'my dir'", "my dir"),
        ("cd -", "-"),
        ("cd ~/x", os.path.expanduser("~/x")),  # the grammar expands a leading ~ itself
        ("cd XX", "XX"),
        # Anything else goes to the shell as written: its cd lasts for the one command.
        ("cd a b", None),
        ("cd a b c", None),
        ("cdx", None),
        ("ls", None),
        ("", None),
        ("cd 'unclosed", None),
        *[(f"cd a{ch}b", None) for ch in "`$(){};&|<>*?[\n"],
    ],
)
def test_parse_cd(command, target):
    assert parse_cd(command) == target


def test_resolve_cd_relative_absolute_and_back(tmp_path):
    (tmp_path / "sub").mkdir()
    assert resolve_cd("sub", str(tmp_path), None) == str(tmp_path / "sub")
    assert resolve_cd("sub/..", str(tmp_path), None) == str(tmp_path)
    assert resolve_cd(str(tmp_path / "sub"), "/", None) == str(tmp_path / "sub")
    assert resolve_cd("-", "/", str(tmp_path)) == str(tmp_path)


def test_resolve_cd_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "x").mkdir()
    assert resolve_cd("", "/", None) == str(tmp_path)
    assert resolve_cd(str(tmp_path / "x"), "/", None) == str(tmp_path / "x")


def refused(target: str, cwd: str, previous: str | None = None) -> OSError:
    try:
        resolve_cd(target, cwd, previous)
    except OSError as exc:
        return exc
    raise AssertionError(f"cd {target} from {cwd} was not refused")


def test_resolve_cd_refusals_say_why_as_the_shell_does(tmp_path):
    (tmp_path / "file").write_text("x")
    missing = refused("nope", str(tmp_path))
    assert type(missing) is FileNotFoundError
    assert (missing.errno, missing.strerror) == (errno.ENOENT, "No such file or directory")
    not_dir = refused("file", str(tmp_path))
    assert type(not_dir) is NotADirectoryError
    assert (not_dir.errno, not_dir.strerror) == (errno.ENOTDIR, "Not a directory")
    no_oldpwd = refused("-", str(tmp_path), previous=None)
    assert (no_oldpwd.errno, no_oldpwd.strerror) == (0, "OLDPWD not set")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may enter any directory")
def test_resolve_cd_into_a_directory_we_may_not_enter(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o600)
    error = refused("locked", str(tmp_path))
    assert type(error) is PermissionError
    assert (error.errno, error.strerror) == (errno.EACCES, "Permission denied")
