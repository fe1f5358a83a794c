"""The server's ``cd`` builtin as functions: which lines are a sticky cd, and where they lead.

The end-to-end tests drive cd through a real server (one subprocess per mutant, about 30 s
each under mutmut); these check the same rules in-process, in milliseconds. The strerror of
each OSError is what the user reads ("cd: x: Not a directory"), so it is checked word for word.
"""

import errno
import os
import shutil
import tempfile

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


@pytest.mark.parametrize(
    ("command", "target"),
    [
        # Blanks are spaces and tabs, around the line and between cd and its word.
        ("cd\tsub", "sub"),
        ("\t cd \t sub \t", "sub"),
        ("cd\t", ""),
        # Only those: a newline or another space character is the shell's.
        ("cd x\n", None),
        ("\ncd x", None),
        ("cd \nx", None),
        ("cd\x0bx", None),
        # A quoted word: one or more characters, taken as they are (no ~ expansion).
        ("cd 'a'", "a"),
        ("cd '~'", "~"),
        ("cd 'a$b;c'", "a$b;c"),
        ("cd ''", None),
        ("cd '", None),
        ("cd 'a'b'", None),
        ("cd 'a''b'", None),
        ("cd 'a'b", None),
        ("cd a'b'", None),
        # A plain word: ~ alone is home, ~user another home; other characters as they are.
        ("cd ~", os.path.expanduser("~")),
        ("cd a~b", "a~b"),
        ("cd a-b.c_d/e:f,g=h+i%j@k", "a-b.c_d/e:f,g=h+i%j@k"),
        ("cd é", "é"),
        # An option is the shell's; - alone is the previous directory.
        ("cd -P", None),
        ("cd --", None),
        ("cd '-x'", None),
        ("cd '-'", "-"),
        # Every other character that makes a shell do more than take the word.
        *[(f"cd a{ch}b", None) for ch in "'\"\\#!^]}\x7f\x01\x1f\r\x0b"],
    ],
    ids=repr,
)
def test_parse_cd_edges(command, target):
    assert parse_cd(command) == target


NOBODY = 65534


def resolve_cd_as_nobody(target: str, cwd: str) -> str:
    """What resolve_cd() does for an unprivileged user (uid 65534), run in a forked child of
    this process: root may enter any directory, and access() checks the real uid."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, try, and say what happened
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            try:
                answer = resolve_cd(target, cwd, None)
            except OSError as exc:
                answer = f"{type(exc).__name__} {exc.errno} {exc.strerror}"
            os.write(write_fd, answer.encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(pid, 0)
    return answer


@pytest.mark.skipif(os.geteuid() != 0, reason="not root: the test above checks this as this user")
def test_resolve_cd_into_a_directory_nobody_may_enter():
    """test_resolve_cd_into_a_directory_we_may_not_enter, for a test run as root."""
    top = tempfile.mkdtemp(prefix="rcmd-cd-")  # pytest's tmp_path is in a folder only root may enter
    try:
        os.chmod(top, 0o755)
        os.mkdir(os.path.join(top, "open"), 0o755)
        os.mkdir(os.path.join(top, "locked"), 0o600)
        assert resolve_cd("locked", top, None) == os.path.join(top, "locked")  # root: any directory
        assert resolve_cd_as_nobody("open", top) == os.path.join(top, "open")
        assert resolve_cd_as_nobody("locked", top) == "PermissionError 13 Permission denied"
    finally:
        shutil.rmtree(top)
