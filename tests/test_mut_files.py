"""File transfers and file operations, the server's side (rcmd/server/files.py), against a
BackgroundServer: a real server in a thread of this process, over real 127.0.0.1 sockets, so
that mutmut's per-test stats see what the server runs (the listing and the hashing run on
asyncio.to_thread) and each mutant runs only the tests that reach it. Single protocol steps
(PUT, PUT_FROM, FILE_DATA, FILE_END) are sent one by one with the client's _send(), as
test_files.py does against a server subprocess; the limits are module constants lowered
with monkeypatch. A few call helpers directly: Usage, _disk_usage, _fitting, and a guard
(a PUT's message without a PUT) that the protocol never lets reach the server."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _mutserver import ServerLog, capture

import rcmd
from rcmd import scram
from rcmd.client import Client
from rcmd.errors import ServerError
from rcmd.files import CHUNK_SIZE, MIN_BLOCK_SIZE, fs, partial_name
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


@pytest.fixture
def server_log() -> Iterator[ServerLog]:
    """The server's log lines at INFO and above (conftest's is at DEBUG)."""
    with capture(logging.INFO) as handler:
        yield handler


def peer(client: Client) -> str:
    """The client's address as the server's log names it."""
    host, port = client._sock.getsockname()[:2]
    return f"{host}:{port}"


def closed(client: Client, server_log: ServerLog) -> None:
    """Close *client* and return once the server is done with the connection."""
    name = peer(client)
    client.close()
    server_log.wait_for_text(f"{name} disconnected", 30)
    assert not [line for line in server_log.lines if "session failed" in line]


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
    assert stat.S_IMODE((tmp_path / partial_name("a")).stat().st_mode) == 0o600  # its owner's only
    client._send(Put("a", size=10))
    assert client._next_event() == PutReady(8, MIN_BLOCK_SIZE, [sha(b"12345678")])
    client._send(PutFrom(8))
    client._send(FileData(b"90"))
    client._send(FileEnd(9, sha(b"1234567890")))
    assert client._next_event() == FileError(
        f"{tmp_path}/a: 10 bytes arrived, the client says 9 (announced 10)", kept=10
    )


def test_a_client_that_gives_up_midway_keeps_what_it_sent(client, tmp_path):
    client._send(Put("a", size=10))
    client._next_event()
    client._send(PutFrom(0))
    client._send(FileData(b"123"))
    client._send(FileEnd(3, sha(b"123"), error="the file changed"))
    assert client._next_event() == FileError("the client gave up: the file changed", kept=3)
    assert (tmp_path / partial_name("a")).read_bytes() == b"123"


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
    with pytest.raises(ServerError) as error:
        client._next_event()
    assert error.value.reason == "PUT_FROM offset 3 is not one PUT_READY offered"


def test_a_second_put_from_is_a_protocol_error(client):
    client._send(Put("a", size=10))
    client._next_event()
    client._send(PutFrom(0))
    client._send(PutFrom(0))
    with pytest.raises(ServerError) as error:
        client._next_event()
    assert error.value.reason == "a second PUT_FROM"


@pytest.mark.parametrize(
    ("message", "name"), [(FileData(b"x"), "FILE_DATA"), (FileEnd(0, sha(b"")), "FILE_END")]
)
def test_data_before_put_from_is_a_protocol_error(client, message, name):
    client._send(Put("a", size=10))
    client._next_event()
    client._send(message)
    with pytest.raises(ServerError) as error:
        client._next_event()
    assert error.value.reason == f"{name} before PUT_FROM"


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


@pytest.mark.parametrize(("first", "announced"), [(b"1234", 10), (b"12", None)])
def test_an_interrupted_upload_keeps_its_partial_file_for_the_next(
    background, tmp_path, server_log, first, announced
):
    client = rcmd.connect(*background.address)
    client.chdir(str(tmp_path))
    client._send(Put("a", size=announced))
    client._next_event()
    client._send(PutFrom(0))
    client._send(FileData(first))
    name = peer(client)
    closed(client, server_log)
    assert (
        server_log.wait_for_text(" interrupted: ", 30)
        == f"{name}: put {tmp_path}/a interrupted: {len(first)} bytes kept"
    )
    assert (tmp_path / partial_name("a")).read_bytes() == first


def test_an_upload_cut_before_put_from_keeps_what_it_found(background, tmp_path, server_log):
    kept(tmp_path, "a", b"123")
    client = rcmd.connect(*background.address)
    client.chdir(str(tmp_path))
    client._send(Put("a", size=10))
    assert client._next_event() == PutReady(3, MIN_BLOCK_SIZE, [sha(b"123")])
    closed(client, server_log)
    assert server_log.wait_for_text(" interrupted: ", 30).endswith("interrupted: 3 bytes kept")
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
    users = (("ann", None, False), ("una", None, True), ("tom", 1000, True), ("max", 1000, False))
    for name, quota, transfer_only in users:
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


def test_the_servers_log_of_file_requests(client, tmp_path, server_log):
    name = peer(client)
    assert upload(client, "f", b"123") == FileDone(3, sha(b"123"))
    client._send(Get("f"))
    assert [client._next_event() for _ in range(3)][1:] == [FileData(b"123"), FileEnd(3, sha(b"123"))]
    assert fs(client, "mkdir", "d").cwd == str(tmp_path)
    assert refused(client, Get("missing")).reason == f"{tmp_path}/missing: No such file or directory"
    closed(client, server_log)
    assert [line for line in server_log.lines if line.startswith(f"{name}:")] == [
        f"{name}: put {tmp_path}/f (3 bytes, 0 kept)",
        f"{name}: put {tmp_path}/f done: 3 bytes, sha256 {sha(b'123')}",
        f"{name}: get {tmp_path}/f (3 bytes, from 0)",
        f"{name}: mkdir {tmp_path}/d",
        f"{name}: file request refused: {tmp_path}/missing: No such file or directory",
    ]


def test_a_message_of_a_put_without_one_is_a_protocol_error():
    """The protocol lets none through (it is checked before them): a guard."""

    class Nobody:  # no session: none of these gets as far as using it
        pass

    service = server_files.FileService(Nobody())  # type: ignore[arg-type]
    with pytest.raises(server_files.RemoteProtocolError, match=r"^PUT_FROM without a PUT$"):
        service._put_from(PutFrom(0))
    with pytest.raises(server_files.RemoteProtocolError, match=r"^FILE_DATA without a PUT$"):
        service._data(FileData(b"x"))
    with pytest.raises(server_files.RemoteProtocolError, match=r"^FILE_END without a PUT$"):
        asyncio.run(service._end(FileEnd(0, sha(b""))))


def test_a_file_that_cannot_be_put_in_place(client, tmp_path):
    client._send(Put("target", size=3))
    client._next_event()
    client._send(PutFrom(0))
    client._send(FileData(b"new"))
    (tmp_path / "target" / "inner").mkdir(parents=True)  # meanwhile, a directory took the name
    client._send(FileEnd(3, sha(b"new")))
    assert client._next_event() == FileError(f"cannot put {tmp_path}/target in place: Is a directory", kept=3)
    assert (tmp_path / partial_name("target")).read_bytes() == b"new"


def test_names_too_long(client, tmp_path):
    too_long = "x" * 256
    assert refused(client, Put(too_long, size=1)) == FileError(f"{tmp_path}/{too_long}: File name too long")
    long = "y" * 250  # itself fine, its partial file's name is not
    assert refused(client, Put(long, size=1)) == FileError(f"{tmp_path}/{long}: File name too long")


def test_a_partial_file_that_is_a_link_is_not_followed(client, tmp_path):
    (tmp_path / "elsewhere").write_bytes(b"keep")
    (tmp_path / partial_name("a")).symlink_to(tmp_path / "elsewhere")
    assert refused(client, Put("a", size=1)) == FileError(
        f"{tmp_path}/a: symbolic links are not followed here"
    )
    assert (tmp_path / "elsewhere").read_bytes() == b"keep"


def test_a_put_without_resume_empties_the_partial_file_at_once(client, tmp_path):
    kept(tmp_path, "a", b"kept bytes")
    client._send(Put("a", size=20, resume=False))
    assert client._next_event() == PutReady()
    assert (tmp_path / partial_name("a")).stat().st_size == 0


def test_a_failed_write_keeps_what_was_written_before(client, tmp_path, monkeypatch):
    writes = []

    def full_after_one(fd: int, data: bytes) -> None:
        if writes:
            os.write(fd, data[:2])  # part of it went
            raise OSError(errno.ENOSPC, "No space left on device")
        writes.append(data)
        os.write(fd, data)

    monkeypatch.setattr(server_files, "write_all", full_after_one)
    client._send(Put("a", size=10))
    client._next_event()
    client._send(PutFrom(0))
    client._send(FileData(b"12345"))
    client._send(FileData(b"67890"))
    assert client._next_event() == FileError(f"cannot write {tmp_path}/a: No space left on device", kept=5)
    assert (tmp_path / partial_name("a")).read_bytes() == b"12345"


def test_get_from_a_partial_without_blocks_starts_over(client, tmp_path):
    write(tmp_path / "f", b"12345")
    client._send(Get("f", partial=1, blocks=[sha(b"1")]))  # no block size: nothing described
    assert client._next_event().offset == 0
    assert client._next_event() == FileData(b"12345")
    assert client._next_event() == FileEnd(5, sha(b"12345"))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("shrink", "shrank while it was being sent"),
        ("touch", "changed while it was being sent"),
        ("grow", "changed while it was being sent"),
    ],
)
def test_a_file_that_changes_while_sent(client, tmp_path, monkeypatch, change, reason):
    content = data(CHUNK_SIZE + 10)  # two FILE_DATA: the second of 10 bytes
    path = write(tmp_path / "f", content)
    original = server_files.first_difference

    def then_change(fd, *args):
        answer = original(fd, *args)
        if change == "shrink":
            os.truncate(path, 0)
        elif change == "grow":
            with path.open("ab") as file:
                file.write(b"more")
        else:  # the same size, another time
            os.utime(path, ns=(0, os.stat(path).st_mtime_ns + 1_000_000_000))
        return answer

    monkeypatch.setattr(server_files, "first_difference", then_change)
    client._send(Get("f"))
    assert isinstance(client._next_event(), GetReady)
    answer = client._next_event()
    if change != "shrink":  # sent as it was when the GET began, not one byte more
        assert answer == FileData(content[:CHUNK_SIZE])
        assert client._next_event() == FileData(content[CHUNK_SIZE:])
        answer = client._next_event()
    assert answer == FileError(f"{tmp_path}/f {reason}; try again")


def test_stat_answers_with_the_directory(client, tmp_path):
    write(tmp_path / "f", b"123")
    result = fs(client, "stat", "f")
    assert result.cwd == str(tmp_path)
    assert [entry["name"] for entry in result.entries] == ["f"]


def test_a_listing_passes_over_a_name_gone_meanwhile(client, tmp_path, monkeypatch):
    for name in ("a", "b", "c"):
        (tmp_path / name).touch()
    display = server_files._display

    def and_remove_b(name: str) -> str:
        if name == "b":
            (tmp_path / "b").unlink()
        return display(name)

    monkeypatch.setattr(server_files, "_display", and_remove_b)
    assert [entry["name"] for entry in fs(client, "ls").entries] == ["a", "c"]


def test_a_listing_that_fails_midway(client, tmp_path, monkeypatch):
    (tmp_path / "a").touch()

    def failing(name: str) -> str:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(server_files, "_display", failing)
    assert refused(client, Fs("ls", ".")) == FileError(f"{tmp_path}: Input/output error")


@pytest.mark.parametrize(("count", "kept"), [(40, 35), (5, 4)])
def test_a_listing_one_byte_too_large_loses_a_tenth(client, tmp_path, monkeypatch, count, kept):
    for n in range(count):
        (tmp_path / f"{n:02}{'x' * 100}").touch()
    whole = fs(client, "ls")
    monkeypatch.setattr(server_files, "MAX_LISTING_BYTES", len(server_files.encode_message(whole)) - 1)
    cut = fs(client, "ls")
    assert (len(cut.entries), cut.truncated) == (kept, True)


# ----------------------------------------------------------------- idle transfers


@pytest.fixture(scope="module")
def impatient() -> Iterator[BackgroundServer]:
    with BackgroundServer(idle_timeout=0.5) as server:
        yield server


def test_an_upload_that_stops_sending_is_closed(impatient, tmp_path):
    with rcmd.connect(*impatient.address) as client:
        client.chdir(str(tmp_path))
        client._send(Put("a", size=10))
        client._next_event()
        client._send(PutFrom(0))
        with pytest.raises(ServerError) as error:
            client._next_event(time.monotonic() + 10)
    assert error.value.reason == "no transfer data for 0.5s"


def test_a_download_whose_client_stops_reading_is_closed(impatient, tmp_path, server_log):
    write(tmp_path / "big", data(16 * MiB))
    with rcmd.connect(*impatient.address) as client:
        client._send(Get(str(tmp_path / "big")))
        server_log.wait_for_text(f"{peer(client)}: no transfer data for 0.5s, closing", timeout=10)
        with pytest.raises(ServerError) as error:
            read_to_the_end(client)
    assert error.value.reason == "no transfer data for 0.5s"


def read_to_the_end(client: Client) -> None:
    while True:
        client._next_event(time.monotonic() + 10)


# ------------------------------------------------------------------------ the quota


def test_uploads_under_way_share_the_quota(users_background, homes):
    """Each reserves its size at PUT: together they cannot pass the quota."""
    with login(users_background, "tom") as a, login(users_background, "tom") as b:
        room = 1000 - fs(a, "df").used
        a._send(Put("a", size=room // 2))
        assert a._next_event() == PutReady()
        b._send(Put("b", size=room - room // 2))  # exactly the rest
        assert b._next_event() == PutReady()
        with login(users_background, "tom") as c:
            assert refused(c, Put("c", size=1)).reason.startswith("/c: 1 bytes would exceed the quota")
        a._send(PutFrom(0))
        a._send(FileEnd(0, sha(b"")))
        assert isinstance(a._next_event(), FileError)  # 0 of room // 2 bytes: its room is freed
        with login(users_background, "tom") as c:
            assert upload(c, "c", b"c" * (room // 2)) == FileDone(room // 2, sha(b"c" * (room // 2)))
            assert fs(c, "rm", "c") == FsResult(cwd="/")
        b._send(PutFrom(0))
        b._send(FileEnd(0, sha(b"")))
        assert isinstance(b._next_event(), FileError)
    for name in ("a", "b"):
        (homes / "tom" / partial_name(name)).unlink()


def test_a_finished_upload_gives_back_only_its_own_room(users_background, homes):
    with login(users_background, "tom") as holder, login(users_background, "tom") as client:
        room = 1000 - fs(client, "df").used
        holder._send(Put("held", size=room - 10))
        assert holder._next_event() == PutReady()
        assert upload(client, "ten", b"t" * 10) == FileDone(10, sha(b"t" * 10))  # the quota is full
        assert refused(client, Put("one", size=1)).reason.startswith("/one: 1 bytes would exceed")
        assert fs(client, "rm", "ten") == FsResult(cwd="/")
    (homes / "tom" / partial_name("held")).unlink()


def test_a_resumed_upload_reserves_what_is_still_to_come(users_background, homes):
    with login(users_background, "tom") as client:
        used = fs(client, "df").used
        room = 1000 - used
        client._send(Put("r", size=room))
        client._next_event()
        client._send(PutFrom(0))
        client._send(FileData(b"r" * 100))
        client._send(FileEnd(100, sha(b"r" * 100)))
        assert client._next_event().kept == 100
        assert fs(client, "df").used == used + 100  # the partial file counts
        client._send(Put("r", size=room))  # 100 kept, room - 100 to come: it fits, exactly
        assert client._next_event() == PutReady(100, MIN_BLOCK_SIZE, [sha(b"r" * 100)])
        client._send(PutFrom(0))  # starts over after all: the kept bytes are dropped
        client._send(FileData(b"s" * room))
        client._send(FileEnd(room, sha(b"s" * room)))
        assert client._next_event() == FileDone(room, sha(b"s" * room))
        assert fs(client, "df") == FsResult(cwd="/", used=1000, quota=1000)
        assert fs(client, "rm", "r") == FsResult(cwd="/")


def test_a_refused_resume_says_what_is_kept(users_background, homes):
    with login(users_background, "tom") as client:
        used = fs(client, "df").used
        kept(homes / "tom", "k", b"k" * 10)  # behind the server's back: not counted
        answer = refused(client, Put("k", size=1000 - used + 11))
        assert answer == FileError(
            f"/k: {1000 - used + 11} bytes would exceed the quota ({used} of 1000 bytes used)", kept=10
        )
    (homes / "tom" / partial_name("k")).unlink()


def test_a_checksum_mismatch_frees_its_bytes(users_background):
    with login(users_background, "tom") as client:
        used = fs(client, "df").used
        client._send(Put("m", size=3))
        client._next_event()
        client._send(PutFrom(0))
        client._send(FileData(b"abc"))
        client._send(FileEnd(3, sha(b"other")))
        assert "SHA-256 mismatch" in client._next_event().reason
        assert fs(client, "df").used == used


def test_replacing_what_is_not_a_file_frees_nothing(users_background, homes):
    with login(users_background, "max") as client:
        used = fs(client, "df").used
        (homes / "max" / "link").symlink_to("/" + "x" * 50)  # 51 bytes, made behind the server's back
        assert upload(client, "link", b"abc") == FileDone(3, sha(b"abc"))
        assert fs(client, "df").used == used + 3
        assert fs(client, "rm", "link").cwd == str(homes / "max")
        assert fs(client, "df").used == used


def test_usage_counts_reserves_and_releases(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "a", b"12345")
    write(tmp_path / "sub" / "b", b"123")
    (tmp_path / "sub" / "link").symlink_to("/" + "x" * 9)  # the link's own 10 bytes
    assert server_files._disk_usage(str(tmp_path)) == 18
    usage = server_files.Usage(str(tmp_path), 30)
    assert (usage.used, usage.reserved) == (18, 0)
    assert usage.reserve(5)
    assert usage.reserve(7)  # 18 + 12 = 30: exactly full
    assert not usage.reserve(1)
    assert usage.reserved == 12
    usage.release(5)
    assert usage.reserved == 7
    usage.release(100)
    assert usage.reserved == 0
    usage.grew(-100)
    assert usage.used == 0
    assert server_files.Usage(str(tmp_path), None).reserve(10**12)


def test_usage_is_one_per_home(tmp_path):
    first = server_files.Usage.of(str(tmp_path / "one"), 10)
    assert server_files.Usage.of(str(tmp_path / "one"), 20) is first
    assert first.quota == 20  # the latest users file says
    assert server_files.Usage.of(str(tmp_path / "two"), 10) is not first


# ---------------------------------------------------------------------- the jail, more


def test_a_jail_refuses_a_file_as_a_directory(una):
    client, home = una
    write(home / "plain", b"p")
    (home / "Xdir").mkdir()
    assert refused(client, Fs("cd", "plain")) == FileError("plain: Not a directory")
    assert refused(client, Fs("cd", "/plain/")) == FileError("/plain/: Not a directory")
    assert fs(client, "cd", "//Xdir") == FsResult(cwd="/Xdir")


def test_stat_of_the_root_of_a_jail(una):
    client, home = una
    (home / "sub").mkdir(mode=0o700)
    os.chmod(home, 0o751)
    root = fs(client, "stat", "").entries[0]  # in the root: the root itself
    assert (root["name"], root["type"], root["mode"]) == (".", "dir", 0o751)
    assert fs(client, "cd", "sub").cwd == "/sub"
    root = fs(client, "stat", "/").entries[0]
    assert (root["name"], root["type"], root["mode"]) == (".", "dir", 0o751)


def test_an_upload_of_unknown_size_holds_no_room_when_done(users_background, homes):
    with login(users_background, "tom") as holder, login(users_background, "tom") as client:
        holder._send(Put("held", size=1000 - fs(holder, "df").used))  # the quota, all of it
        assert holder._next_event() == PutReady()
        client._send(Put("empty"))
        client._next_event()
        client._send(PutFrom(0))
        client._send(FileEnd(0, sha(b"")))
        assert client._next_event() == FileDone(0, sha(b""))
        assert refused(client, Put("one", size=1)).reason.startswith("/one: 1 bytes would exceed")
        assert fs(client, "rm", "empty") == FsResult(cwd="/")
    (homes / "tom" / partial_name("held")).unlink()


def test_a_put_that_fails_to_hash_its_partial_file_is_refused_and_frees_its_room(
    users_background, homes, monkeypatch
):
    def failing(*args: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(server_files, "hash_blocks", failing)
    with login(users_background, "tom") as client:
        room = 1000 - fs(client, "df").used
        # Before, the OSError ended the connection ("connection lost").
        assert refused(client, Put("a", size=room)) == FileError(
            "/a: cannot read its partial file: Input/output error"
        )
        monkeypatch.undo()
        client._send(Put("a", size=room))  # the same connection goes on, and the room is there again
        assert client._next_event() == PutReady()
    (homes / "tom" / partial_name("a")).unlink(missing_ok=True)


def test_a_partial_file_that_shrinks_while_it_is_hashed_is_refused(client, tmp_path, server_log, monkeypatch):
    write(tmp_path / partial_name("b"), data(3 * MIN_BLOCK_SIZE))
    hash_blocks = server_files.hash_blocks

    def shrinking(fd: int, length: int, block_size: int) -> object:
        os.ftruncate(fd, MIN_BLOCK_SIZE)  # another writer cuts it short meanwhile
        return hash_blocks(fd, length, block_size)

    monkeypatch.setattr(server_files, "hash_blocks", shrinking)
    # Before, the TransferError was logged as "session failed" and ended the connection.
    reply = refused(client, Put("b", size=4 * MIN_BLOCK_SIZE, resume=True))
    assert reply == FileError(f"{tmp_path / 'b'}: its partial file shrank while it was being read; try again")
    monkeypatch.undo()
    assert upload(client, "b", b"new", resume=True) == FileDone(3, sha(b"new"))
    assert (tmp_path / "b").read_bytes() == b"new"
    closed(client, server_log)
