"""File transfers and file operations, the server's side (rcmd/server/files.py), against a
BackgroundServer: a real server in a thread of this process, over real 127.0.0.1 sockets, so
that mutmut's per-test stats see what the server runs (the listing and the hashing run on
asyncio.to_thread) and each mutant runs only the tests that reach it. Single protocol steps
(PUT, PUT_FROM, FILE_DATA, FILE_END) are sent one by one with the client's _send(), as
test_files.py does against a server subprocess; the limits are module constants lowered
with monkeypatch."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import rcmd
from rcmd import scram
from rcmd.client import Client
from rcmd.errors import ServerError
from rcmd.files import MIN_BLOCK_SIZE, fs, partial_name
from rcmd.messages import (
    FileData,
    FileDone,
    FileEnd,
    FileError,
    Fs,
    FsResult,
    Get,
    GetReady,
    Put,
    PutFrom,
    PutReady,
)
from rcmd.server import BackgroundServer
from rcmd.server import files as server_files
from rcmd.server.accounts import add_user, load_users

MiB = 1024 * 1024


def data(size: int, seed: int = 0) -> bytes:
    return hashlib.shake_256(f"rcmd-{seed}".encode()).digest(size)


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@pytest.fixture(scope="module")
def background() -> Iterator[BackgroundServer]:
    with BackgroundServer(encoding="utf-8") as server:
        yield server


@pytest.fixture
def client(background: BackgroundServer, tmp_path: Path) -> Iterator[Client]:
    with rcmd.connect(*background.address) as client:
        assert client.chdir(str(tmp_path)) == str(tmp_path)
        yield client


def upload(client: Client, path: str, content: bytes, **put: object) -> FileDone | FileError:
    """PUT *content* in one FILE_DATA from offset 0; FILE_DONE or FILE_ERROR."""
    client._send(Put(path, size=len(content), **put))  # type: ignore[arg-type]
    ready = client._next_event()
    if isinstance(ready, FileError):
        return ready
    assert isinstance(ready, PutReady)
    client._send(PutFrom(0))
    client._send(FileData(content))
    client._send(FileEnd(len(content), sha(content)))
    answer = client._next_event()
    assert isinstance(answer, (FileDone, FileError))
    return answer


def refused(client: Client, message: Fs | Put | Get) -> FileError:
    client._send(message)
    answer = client._next_event()
    assert isinstance(answer, FileError), answer
    assert client.getcwd()  # the connection goes on
    return answer


# ------------------------------------------------------------------------- put and get


def test_put_then_get_round_trip(client, tmp_path):
    content = data(2 * 256 * 1024 + 17)  # three FILE_DATA chunks back
    (tmp_path / "src").write_bytes(content)
    put = client.put(tmp_path / "src", "up")
    assert (put.size, put.sha256, put.resumed_from) == (len(content), sha(content), 0)
    assert (tmp_path / "up").read_bytes() == content
    assert stat.S_IMODE((tmp_path / "up").stat().st_mode) == 0o666 & ~umask()
    got = client.get("up", tmp_path / "down")
    assert (got.size, got.sha256, got.resumed_from) == (len(content), sha(content), 0)
    assert (tmp_path / "down").read_bytes() == content
    assert not list(tmp_path.glob(".*rcmd-part"))
    assert client.run("echo still here").stdout == b"still here\n"


def umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_an_empty_file(client, tmp_path):
    assert upload(client, "empty", b"") == FileDone(0, sha(b""))
    assert (tmp_path / "empty").read_bytes() == b""
    client._send(Get("empty"))
    assert client._next_event() == GetReady(
        0, 0, mode=0o666 & ~umask(), mtime=(tmp_path / "empty").stat().st_mtime
    )
    assert client._next_event() == FileEnd(0, sha(b""))


def test_get_ready_says_size_offset_mode_and_mtime(client, tmp_path):
    (tmp_path / "f").write_bytes(b"12345")
    os.chmod(tmp_path / "f", 0o640)
    os.utime(tmp_path / "f", (1_000_000_000, 1_000_000_000.5))
    client._send(Get("f"))
    assert client._next_event() == GetReady(5, 0, mode=0o640, mtime=1_000_000_000.5)
    assert client._next_event() == FileData(b"12345")
    assert client._next_event() == FileEnd(5, sha(b"12345"))


def test_put_with_mode_and_mtime(client, tmp_path):
    assert isinstance(upload(client, "p", b"x", mode=0o604, mtime=1_234_567_890.25), FileDone)
    info = (tmp_path / "p").stat()
    assert stat.S_IMODE(info.st_mode) == 0o604
    assert info.st_mtime_ns == int(1_234_567_890.25 * 1e9)


def test_a_replaced_file_keeps_its_mode(client, tmp_path):
    (tmp_path / "old").write_bytes(b"old")
    os.chmod(tmp_path / "old", 0o700)
    assert upload(client, "old", b"new") == FileDone(3, sha(b"new"))
    assert (tmp_path / "old").read_bytes() == b"new"
    assert stat.S_IMODE((tmp_path / "old").stat().st_mode) == 0o700


def test_put_into_a_subdirectory_and_by_absolute_path(client, tmp_path):
    (tmp_path / "sub").mkdir()
    assert isinstance(upload(client, "sub/a", b"a"), FileDone)
    assert isinstance(upload(client, str(tmp_path / "sub" / "b"), b"b"), FileDone)
    assert isinstance(upload(client, "sub/../c", b"c"), FileDone)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["a", "b"]
    assert (tmp_path / "c").read_bytes() == b"c"


def test_put_and_get_refusals(client, tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_bytes(b"f")
    assert upload(client, "dir", b"x") == FileError(f"{tmp_path}/dir: is a directory")
    assert refused(client, Get("dir")) == FileError(f"{tmp_path}/dir: is a directory")
    assert refused(client, Get("/dev/null")) == FileError("/dev/null: not a regular file")
    assert refused(client, Get("missing")) == FileError(f"{tmp_path}/missing: No such file or directory")
    assert refused(client, Put("missing-dir/x", size=1)) == FileError(
        f"{tmp_path}/missing-dir: No such file or directory"
    )
    assert refused(client, Put("file/x", size=1)) == FileError(f"{tmp_path}/file: Not a directory")
    assert refused(client, Put("", size=1)) == FileError("an empty path")
    assert refused(client, Put("/", size=1)) == FileError("/: not a file name")
    assert refused(client, Put("..", size=1)) == FileError(f"{tmp_path.parent}: is a directory")
    assert refused(client, Put("a\nb", size=1)).reason.startswith("'a\\nb': control characters")
    assert refused(client, Get("a\x7fb")).reason.startswith("'a\\x7fb': control characters")
    assert refused(client, Get("a\x1fb")).reason.startswith("'a\\x1fb': control characters")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file"]


def test_a_link_is_followed_outside_a_jail(client, tmp_path):
    (tmp_path / "real").write_bytes(b"real")
    (tmp_path / "link").symlink_to("real")
    client._send(Get("link"))
    assert isinstance(client._next_event(), GetReady)
    assert client._next_event() == FileData(b"real")
    assert isinstance(client._next_event(), FileEnd)
    assert upload(client, "link", b"new") == FileDone(3, sha(b"new"))  # replaces the link itself
    assert not (tmp_path / "link").is_symlink()
    assert (tmp_path / "real").read_bytes() == b"real"


def test_a_loop_of_links_is_named_as_such(client, tmp_path):
    (tmp_path / "loop").symlink_to("loop")
    assert refused(client, Get("loop")) == FileError(f"{tmp_path}/loop: symbolic links are not followed here")
    assert refused(client, Fs("ls", "loop")) == FileError("loop: symbolic links are not followed here")


# ------------------------------------------------------------------------------ resume


def kept(tmp_path: Path, name: str, content: bytes) -> Path:
    part = tmp_path / partial_name(name)
    part.write_bytes(content)
    return part


def test_a_put_resumes_from_the_kept_bytes(client, tmp_path):
    content = data(MIN_BLOCK_SIZE + MIN_BLOCK_SIZE // 2)
    kept(tmp_path, "big", content[: MIN_BLOCK_SIZE + 100])
    client._send(Put("big", size=len(content)))
    ready = client._next_event()
    first, second = content[:MIN_BLOCK_SIZE], content[MIN_BLOCK_SIZE : MIN_BLOCK_SIZE + 100]
    assert ready == PutReady(MIN_BLOCK_SIZE + 100, MIN_BLOCK_SIZE, [sha(first), sha(second)])
    client._send(PutFrom(MIN_BLOCK_SIZE + 100))
    client._send(FileData(content[MIN_BLOCK_SIZE + 100 :]))
    client._send(FileEnd(len(content), sha(content)))
    assert client._next_event() == FileDone(len(content), sha(content), resumed_from=MIN_BLOCK_SIZE + 100)
    assert (tmp_path / "big").read_bytes() == content
    assert not (tmp_path / partial_name("big")).exists()


def test_a_put_resumes_from_a_block_boundary(client, tmp_path):
    content = data(MIN_BLOCK_SIZE + 10)
    kept(tmp_path, "big", content[:MIN_BLOCK_SIZE] + b"changed")
    result = client.put(write(tmp_path / "src", content), "big")
    assert (result.size, result.resumed_from) == (len(content), MIN_BLOCK_SIZE)
    assert (tmp_path / "big").read_bytes() == content


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_a_put_without_resume_or_longer_than_its_file_starts_over(client, tmp_path):
    kept(tmp_path, "a", b"kept bytes")
    client._send(Put("a", size=20, resume=False))
    assert client._next_event() == PutReady(0, None, [])
    client._send(PutFrom(0))
    client._send(FileEnd(0, sha(b""), error="never mind"))
    assert client._next_event() == FileError("the client gave up: never mind", kept=0)
    assert (tmp_path / partial_name("a")).read_bytes() == b""
    kept(tmp_path, "b", b"kept bytes")
    client._send(Put("b", size=5))  # shorter than what was kept: that cannot be its start
    assert client._next_event() == PutReady(0, None, [])
    client._send(PutFrom(0))
    client._send(FileEnd(0, sha(b""), error="never mind"))
    assert client._next_event() == FileError("the client gave up: never mind", kept=0)
    kept(tmp_path, "c", b"12345")
    client._send(Put("c", size=5))  # exactly as long: it may be the whole file
    assert client._next_event() == PutReady(5, MIN_BLOCK_SIZE, [sha(b"12345")])
    client._send(PutFrom(5))
    client._send(FileEnd(5, sha(b"12345")))
    assert client._next_event() == FileDone(5, sha(b"12345"), resumed_from=5)


def test_a_put_that_fails_keeps_what_arrived(client, tmp_path):
    client._send(Put("a", size=10))
    assert client._next_event() == PutReady()
    client._send(PutFrom(0))
    client._send(FileData(b"1234"))
    client._send(FileData(b"5678"))
    client._send(FileEnd(8, sha(b"12345678")))
    assert client._next_event() == FileError(
        f"{tmp_path}/a: 8 bytes arrived, the client says 8 (announced 10)", kept=8
    )
    assert (tmp_path / partial_name("a")).read_bytes() == b"12345678"
    client._send(Put("a", size=10))
    assert client._next_event() == PutReady(8, MIN_BLOCK_SIZE, [sha(b"12345678")])
    client._send(PutFrom(8))
    client._send(FileData(b"90"))
    client._send(FileEnd(9, sha(b"1234567890")))
    assert client._next_event() == FileError(
        f"{tmp_path}/a: 10 bytes arrived, the client says 9 (announced 10)", kept=10
    )


def test_more_data_than_announced(client, tmp_path):
    client._send(Put("a", size=5))
    client._next_event()
    client._send(PutFrom(0))
    client._send(FileData(b"12345"))  # exactly as many: fine
    client._send(FileData(b"6"))
    assert client._next_event() == FileError(f"{tmp_path}/a: more data than the 5 bytes announced", kept=5)
    assert (tmp_path / partial_name("a")).read_bytes() == b"12345"


def test_a_put_of_unknown_size(client, tmp_path):
    client._send(Put("a"))
    assert client._next_event() == PutReady()
    client._send(PutFrom(0))
    client._send(FileData(b"123"))
    client._send(FileData(b"45"))
    client._send(FileEnd(5, sha(b"12345")))
    assert client._next_event() == FileDone(5, sha(b"12345"))
    assert (tmp_path / "a").read_bytes() == b"12345"


def test_a_checksum_mismatch_deletes_the_partial_file(client, tmp_path):
    (tmp_path / "target").write_bytes(b"old")
    client._send(Put("target", size=3))
    client._next_event()
    client._send(PutFrom(0))
    client._send(FileData(b"new"))
    client._send(FileEnd(3, sha(b"other")))
    answer = client._next_event()
    assert answer == FileError(
        f"{tmp_path}/target: SHA-256 mismatch (the client sent {sha(b'other')}, we wrote {sha(b'new')}); "
        "the partial file is deleted"
    )
    assert (tmp_path / "target").read_bytes() == b"old"
    assert not (tmp_path / partial_name("target")).exists()
    assert upload(client, "target", b"NEW".lower()) == FileDone(3, sha(b"new"))  # uppercase hex too


def test_the_sha256_may_come_in_capitals(client, tmp_path):
    client._send(Put("a", size=1))
    client._next_event()
    client._send(PutFrom(0))
    client._send(FileData(b"x"))
    client._send(FileEnd(1, sha(b"x").upper()))
    assert client._next_event() == FileDone(1, sha(b"x"))


def test_put_from_a_place_not_offered_is_a_protocol_error(client, tmp_path):
    kept(tmp_path, "a", b"12345")
    client._send(Put("a", size=10))
    client._next_event()
    client._send(PutFrom(3))
    with pytest.raises(ServerError, match="PUT_FROM offset 3 is not one PUT_READY offered"):
        client._next_event()


def test_a_second_put_from_is_a_protocol_error(client):
    client._send(Put("a", size=10))
    client._next_event()
    client._send(PutFrom(0))
    client._send(PutFrom(0))
    with pytest.raises(ServerError, match="a second PUT_FROM"):
        client._next_event()


@pytest.mark.parametrize(
    ("message", "name"), [(FileData(b"x"), "FILE_DATA"), (FileEnd(0, sha(b"")), "FILE_END")]
)
def test_data_before_put_from_is_a_protocol_error(client, message, name):
    client._send(Put("a", size=10))
    client._next_event()
    client._send(message)
    with pytest.raises(ServerError, match=f"{name} before PUT_FROM"):
        client._next_event()


def test_two_uploads_of_one_name(background, client, tmp_path):
    client._send(Put("same", size=1))
    assert isinstance(client._next_event(), PutReady)
    with rcmd.connect(*background.address) as second:
        second.chdir(str(tmp_path))
        assert refused(second, Put("same", size=1)) == FileError(
            f"{tmp_path}/same is being uploaded by another transfer; try again when it is done"
        )
    client._send(PutFrom(0))
    client._send(FileData(b"1"))
    client._send(FileEnd(1, sha(b"1")))
    assert client._next_event() == FileDone(1, sha(b"1"))


class ServerLog(logging.Handler):
    """The server's log lines as they come (from its thread), to wait for one."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.lines.append(record.getMessage())
            self.changed.notify_all()

    def wait_for(self, text: str) -> str:
        with self.changed:
            assert self.changed.wait_for(lambda: any(text in line for line in self.lines), timeout=30), text
        return next(line for line in self.lines if text in line)


@pytest.fixture
def server_log() -> Iterator[ServerLog]:
    handler, logger = ServerLog(), logging.getLogger("rcmd.server")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.mark.parametrize(("first", "announced"), [(b"1234", 10), (b"12", None)])
def test_an_interrupted_upload_keeps_its_partial_file_for_the_next(
    background, tmp_path, server_log, first, announced
):
    with rcmd.connect(*background.address) as client:
        client.chdir(str(tmp_path))
        client._send(Put("a", size=announced))
        client._next_event()
        client._send(PutFrom(0))
        client._send(FileData(first))
    line = server_log.wait_for(" interrupted: ")
    assert line.endswith(f"put {tmp_path}/a interrupted: {len(first)} bytes kept")
    assert (tmp_path / partial_name("a")).read_bytes() == first


def test_an_upload_cut_before_put_from_keeps_what_it_found(background, tmp_path, server_log):
    kept(tmp_path, "a", b"123")
    with rcmd.connect(*background.address) as client:
        client.chdir(str(tmp_path))
        client._send(Put("a", size=10))
        assert client._next_event() == PutReady(3, MIN_BLOCK_SIZE, [sha(b"123")])
    assert server_log.wait_for(" interrupted: ").endswith("interrupted: 3 bytes kept")
    assert (tmp_path / partial_name("a")).read_bytes() == b"123"


# --------------------------------------------------------------------------------- get


def test_a_get_resumes_where_the_blocks_agree(client, tmp_path):
    content = data(MIN_BLOCK_SIZE + 10)
    write(tmp_path / "remote", content)
    client._send(
        Get(
            "remote",
            partial=MIN_BLOCK_SIZE + 5,
            block_size=MIN_BLOCK_SIZE,
            blocks=[sha(content[:MIN_BLOCK_SIZE]), sha(content[MIN_BLOCK_SIZE : MIN_BLOCK_SIZE + 5])],
        )
    )
    ready = client._next_event()
    assert (ready.size, ready.offset) == (len(content), MIN_BLOCK_SIZE + 5)
    assert client._next_event() == FileData(content[MIN_BLOCK_SIZE + 5 :])
    assert client._next_event() == FileEnd(len(content), sha(content))
    client._send(
        Get(
            "remote",
            partial=MIN_BLOCK_SIZE + 5,
            block_size=MIN_BLOCK_SIZE,
            blocks=[sha(content[:MIN_BLOCK_SIZE]), sha(b"other")],
        )
    )
    ready = client._next_event()
    assert (ready.size, ready.offset) == (len(content), MIN_BLOCK_SIZE)
    assert client._next_event() == FileData(content[MIN_BLOCK_SIZE:])
    assert client._next_event() == FileEnd(len(content), sha(content))


def test_get_refuses_a_directory(client, tmp_path):
    (tmp_path / "d").mkdir()
    assert refused(client, Get("d")) == FileError(f"{tmp_path}/d: is a directory")


def test_a_get_of_a_fifo_is_refused_at_once(client, tmp_path):
    """Opening a FIFO to read waits for a writer: on the event loop, that held every
    connection of the server until one came (here: until the test opens it, when it fails)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    client._send(Get("fifo"))
    try:
        answer = client._next_event(time.monotonic() + 10)
    finally:
        try:  # a reader still waiting for a writer: let it go on
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError as exc:
            assert exc.errno == errno.ENXIO  # none: the server did not wait
    assert answer == FileError(f"{tmp_path}/fifo: not a regular file")
    assert client.getcwd() == str(tmp_path)


def test_a_partial_file_that_is_a_fifo_is_refused(client, tmp_path):
    """Not taken as a partial file: it cannot be truncated (the PUT_FROM that tried dropped
    the connection, "connection lost: Invalid argument")."""
    os.mkfifo(tmp_path / partial_name("up"))
    assert refused(client, Put("up", size=10)) == FileError(
        f"{tmp_path}/up: its partial file is not a regular file"
    )


# ------------------------------------------------------------------ file operations


def test_pwd_and_cd(client, tmp_path):
    (tmp_path / "sub").mkdir()
    assert fs(client, "pwd") == FsResult(cwd=str(tmp_path))
    assert fs(client, "cd", "sub") == FsResult(cwd=str(tmp_path / "sub"))
    assert client.run("pwd").stdout == f"{tmp_path}/sub\n".encode()  # the commands' directory too
    assert isinstance(upload(client, "here", b"x"), FileDone)
    assert (tmp_path / "sub" / "here").exists()
    assert fs(client, "cd", "..") == FsResult(cwd=str(tmp_path))
    assert client.run("cd -").stdout == f"{tmp_path}/sub\n".encode()  # the previous directory
    assert fs(client, "cd", "") == FsResult(cwd=os.path.expanduser("~"))  # no path: the home
    assert (
        refused(client, Fs("cd", str(tmp_path / "missing"))).reason
        == f"{tmp_path}/missing: No such file or directory"
    )


def test_ls_lists_sorted_with_kinds_sizes_modes_and_times(client, tmp_path):
    (tmp_path / "b-dir").mkdir(mode=0o750)
    os.chmod(tmp_path / "b-dir", 0o750)
    write(tmp_path / "a-file", b"12345")
    os.chmod(tmp_path / "a-file", 0o640)
    os.utime(tmp_path / "a-file", (1_000_000_000, 1_000_000_000.5))
    (tmp_path / "c-link").symlink_to("a-file")
    os.mkfifo(tmp_path / "d-fifo")
    result = fs(client, "ls")
    assert result.cwd == str(tmp_path)
    assert result.truncated is None
    entries = {entry["name"]: entry for entry in result.entries}
    assert list(entries) == ["a-file", "b-dir", "c-link", "d-fifo"]
    assert entries["a-file"] == {
        "name": "a-file",
        "type": "file",
        "size": 5,
        "mode": 0o640,
        "mtime": 1_000_000_000.5,
    }
    assert (entries["b-dir"]["type"], entries["b-dir"]["mode"]) == ("dir", 0o750)
    assert (entries["c-link"]["type"], entries["c-link"]["size"]) == ("link", len("a-file"))  # not followed
    assert entries["d-fifo"]["type"] == "other"
    assert [e["name"] for e in fs(client, "ls", str(tmp_path / "b-dir")).entries] == []
    assert refused(client, Fs("ls", "a-file")) == FileError("a-file: Not a directory")


def test_ls_shows_a_name_that_is_not_text_with_a_replacement_character(client, tmp_path):
    os.close(os.open(os.path.join(os.fsencode(tmp_path), b"bad\xffname"), os.O_CREAT | os.O_WRONLY))
    assert [e["name"] for e in fs(client, "ls").entries] == ["bad\ufffdname"]


def test_ls_in_pages(client, tmp_path, monkeypatch):
    for name in ("a", "b", "c", "d", "e"):
        (tmp_path / name).touch()
    monkeypatch.setattr(server_files, "MAX_LISTING", 2)
    page = fs(client, "ls")
    assert ([e["name"] for e in page.entries], page.truncated) == (["a", "b"], True)
    page = fs(client, "ls", None, "b")
    assert ([e["name"] for e in page.entries], page.truncated) == (["c", "d"], True)
    page = fs(client, "ls", None, "d")
    assert ([e["name"] for e in page.entries], page.truncated) == (["e"], None)
    page = fs(client, "ls", None, "bb")  # a name that is not there: the ones after it
    assert [e["name"] for e in page.entries] == ["c", "d"]
    monkeypatch.setattr(server_files, "MAX_LISTING", 5)  # exactly all
    page = fs(client, "ls")
    assert ([e["name"] for e in page.entries], page.truncated) == (["a", "b", "c", "d", "e"], None)
    assert [e.name for e in client.listdir(".")] == ["a", "b", "c", "d", "e"]


def test_ls_cut_to_fit_in_a_frame(client, tmp_path, monkeypatch):
    for n in range(40):
        (tmp_path / f"{n:02}{'x' * 100}").touch()
    whole = fs(client, "ls")
    assert len(whole.entries) == 40
    size = len(server_files.encode_message(whole))
    monkeypatch.setattr(server_files, "MAX_LISTING_BYTES", size)  # exactly: all of it
    assert fs(client, "ls") == whole
    monkeypatch.setattr(server_files, "MAX_LISTING_BYTES", size - 1)
    cut = fs(client, "ls")
    assert cut.truncated is True
    assert 30 <= len(cut.entries) < 40
    assert cut.entries == whole.entries[: len(cut.entries)]
    assert len(server_files.encode_message(cut)) <= size - 1
    monkeypatch.setattr(server_files, "MAX_LISTING_BYTES", size // 2)
    half = fs(client, "ls")
    assert half.truncated is True
    assert 15 <= len(half.entries) < 20
    assert [e.name for e in client.listdir(".")] == [e["name"] for e in whole.entries]


def test_a_listing_that_fits_nothing_is_empty_and_truncated():
    result = server_files._fitting(FsResult(cwd="/", entries=[{"name": "x" * 100}]))
    assert result == FsResult(cwd="/", entries=[{"name": "x" * 100}])
    small = len(server_files.encode_message(FsResult(cwd="/", entries=[], truncated=True)))
    original = server_files.MAX_LISTING_BYTES
    try:
        server_files.MAX_LISTING_BYTES = small
        assert server_files._fitting(FsResult(cwd="/", entries=[{"name": "x" * 100}] * 3)) == FsResult(
            cwd="/", entries=[], truncated=True
        )
    finally:
        server_files.MAX_LISTING_BYTES = original


def test_stat(client, tmp_path):
    write(tmp_path / "f", b"123")
    (tmp_path / "link").symlink_to("f")
    assert fs(client, "stat", "f").entries[0]["type"] == "file"
    entry = fs(client, "stat", "link").entries[0]
    assert (entry["name"], entry["type"], entry["size"]) == ("link", "file", 3)  # followed
    assert refused(client, Fs("stat", "")) == FileError("an empty path")
    assert fs(client, "stat", ".").entries[0]["type"] == "dir"
    root = fs(client, "stat", "/").entries[0]
    assert (root["name"], root["type"]) == (".", "dir")
    assert refused(client, Fs("stat", "missing")) == FileError(
        f"{tmp_path}/missing: No such file or directory"
    )


def test_mkdir_rmdir_and_rm(client, tmp_path):
    assert fs(client, "mkdir", "d") == FsResult(cwd=str(tmp_path))
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o777 & ~umask()
    assert refused(client, Fs("mkdir", "d")) == FileError(f"{tmp_path}/d: File exists")
    assert refused(client, Fs("rm", "d")) == FileError(
        f"{tmp_path}/d: is a directory (rmdir removes an empty one)"
    )
    write(tmp_path / "d" / "f", b"x")
    assert refused(client, Fs("rmdir", "d")) == FileError(f"{tmp_path}/d: Directory not empty")
    assert fs(client, "rm", "d/f") == FsResult(cwd=str(tmp_path))
    assert fs(client, "rmdir", "d") == FsResult(cwd=str(tmp_path))
    assert not (tmp_path / "d").exists()
    (tmp_path / "link").symlink_to("missing")
    assert fs(client, "rm", "link") == FsResult(cwd=str(tmp_path))  # the link, not what it names
    assert refused(client, Fs("rm", "missing")) == FileError(f"{tmp_path}/missing: No such file or directory")


def test_df_without_accounts(client):
    assert refused(client, Fs("df")) == FileError("no quota: this server has no user accounts")


# ------------------------------------------------------------- accounts: jail, quota


@pytest.fixture(scope="module")
def homes(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("accounts")
    for name, quota, transfer_only in (("ann", None, False), ("una", None, True), ("tom", 1000, True)):
        add_user(
            base / "users.toml",
            name,
            f"{name}'s password",
            home=str(base / name),
            quota=quota,
            transfer_only=transfer_only,
            iterations=scram.MIN_ITERATIONS,
        )
    return base


@pytest.fixture(scope="module")
def users_background(homes: Path) -> Iterator[BackgroundServer]:
    with BackgroundServer(users=load_users(homes / "users.toml")) as server:
        yield server


def login(server: BackgroundServer, name: str) -> Client:
    return rcmd.connect(*server.address, user=name, password=f"{name}'s password")


@pytest.fixture
def una(users_background, homes) -> Iterator[tuple[Client, Path]]:
    """A transfer-only user (no quota) in a fresh directory of her jail."""
    home = homes / "una"
    for entry in home.iterdir():
        remove(entry)
    with login(users_background, "una") as client:
        yield client, home


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        for entry in path.iterdir():
            remove(entry)
        path.rmdir()
    else:
        path.unlink()


def test_a_jail_shows_its_home_as_the_root(una):
    client, home = una
    (home / "sub").mkdir()
    assert fs(client, "pwd") == FsResult(cwd="/")
    assert fs(client, "cd", "sub") == FsResult(cwd="/sub")
    assert isinstance(upload(client, "f", b"x"), FileDone)
    assert (home / "sub" / "f").read_bytes() == b"x"
    assert fs(client, "cd", "..") == FsResult(cwd="/")
    assert fs(client, "cd", "../../..") == FsResult(cwd="/")  # .. of the root is the root
    assert fs(client, "cd", "//sub") == FsResult(cwd="/sub")
    assert fs(client, "cd", "") == FsResult(cwd="/")  # no path: the home, the root
    assert fs(client, "cd", "/sub/") == FsResult(cwd="/sub")
    assert [e["name"] for e in fs(client, "ls", "/").entries] == ["sub"]
    assert [e["name"] for e in fs(client, "ls", "//").entries] == ["sub"]
    root = fs(client, "stat", "/").entries[0]
    assert (root["name"], root["type"]) == (".", "dir")
    assert fs(client, "stat", "/sub/f").entries[0]["size"] == 1
    assert isinstance(upload(client, "/top", b"t"), FileDone)
    assert (home / "top").read_bytes() == b"t"
    assert isinstance(upload(client, "../../escape", b"e"), FileDone)  # .. stops at the root
    assert (home / "escape").read_bytes() == b"e"


def test_a_jail_follows_no_link(una, tmp_path):
    client, home = una
    (tmp_path / "outside").mkdir()
    write(tmp_path / "outside" / "secret", b"secret")
    (home / "out").symlink_to(tmp_path / "outside")
    (home / "file-link").symlink_to(tmp_path / "outside" / "secret")
    (home / "dir").mkdir()
    (home / "dir" / "inner").symlink_to(tmp_path / "outside")
    links = "symbolic links are not followed here"
    assert refused(client, Fs("cd", "out")) == FileError(f"out: {links}")
    assert refused(client, Fs("ls", "out")) == FileError(f"out: {links}")
    assert refused(client, Fs("ls", "/dir/inner")) == FileError(f"/dir/inner: {links}")
    assert refused(client, Get("out/secret")) == FileError(f"/out: {links}")  # the link on the way
    assert refused(client, Get("file-link")) == FileError(f"/file-link: {links}")
    assert refused(client, Put("file-link", size=1)) == FileError(f"/file-link: {links}")
    assert refused(client, Put("out/new", size=1)) == FileError(f"/out: {links}")
    entry = fs(client, "stat", "file-link").entries[0]
    assert entry["type"] == "link"  # not followed
    assert refused(client, Fs("ls", "missing")) == FileError("missing: No such file or directory")
    write(home / "plain", b"p")
    assert refused(client, Fs("ls", "plain/x")) == FileError("plain/x: Not a directory")
    assert not (tmp_path / "outside" / "new").exists()


def test_df_and_the_quota(users_background, homes, tmp_path):
    home = homes / "tom"
    with login(users_background, "tom") as client:
        used = fs(client, "df").used
        assert fs(client, "df") == FsResult(cwd="/", used=used, quota=1000)
        assert client.disk_usage() == (used, 1000)
        room = 1000 - used
        assert upload(client, "big", b"x" * (room + 1)).reason == (
            f"/big: {room + 1} bytes would exceed the quota ({used} of 1000 bytes used)"
        )
        assert not (home / partial_name("big")).exists()  # refused before the first byte: no trace
        assert upload(client, "fits", b"x" * 100) == FileDone(100, sha(b"x" * 100))
        assert fs(client, "df").used == used + 100
        assert upload(client, "fits", b"y" * 40) == FileDone(40, sha(b"y" * 40))  # replaces: 60 freed
        assert fs(client, "df").used == used + 40
        assert fs(client, "rm", "fits") == FsResult(cwd="/")
        assert fs(client, "df").used == used
        assert upload(client, "exact", b"z" * room) == FileDone(room, sha(b"z" * room))  # exactly full
        assert fs(client, "df").used == 1000
        assert fs(client, "rm", "exact") == FsResult(cwd="/")
        client._send(Put("stream"))  # no size: counted as it comes
        client._next_event()
        client._send(PutFrom(0))
        client._send(FileData(b"s" * room))
        client._send(FileData(b"s"))
        assert client._next_event() == FileError("/stream: the quota of 1000 bytes is full", kept=room)
        assert fs(client, "df").used == 1000  # the kept partial file counts
        client._send(Put("stream", resume=False))  # starts over: the kept bytes are freed
        assert client._next_event() == PutReady()
        client._send(PutFrom(0))
        client._send(FileEnd(0, sha(b"")))
        assert client._next_event() == FileDone(0, sha(b""))
        assert fs(client, "df").used == used
        assert fs(client, "rm", "stream") == FsResult(cwd="/")
