"""File transfers against a real server: put/get, verification, resume, and bad input.

Transfers are cut by a progress callback that raises KeyboardInterrupt at a chosen byte:
the client then closes the connection, as Ctrl-C does. Before resuming, each test waits for
the server's log line saying it kept the partial file (an event, not a sleep).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import conftest
import pytest
from conftest import CLIENT_ARGV, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rcmd
from rcmd.errors import RemoteFileError
from rcmd.files import MIN_BLOCK_SIZE, fs, partial_name
from rcmd.messages import FileEnd, FileError, Put, PutFrom, PutReady, encode_message

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def area(tmp_path_factory):
    return tmp_path_factory.mktemp("files")


@pytest.fixture(scope="module")
def file_server(server_factory, area):
    return server_factory("--encoding", "utf-8", "--cwd", str(area))


@pytest.fixture
def folder(area, request):
    """A fresh directory for one test, on the server's disk (the server runs here too)."""
    path = area / (re.sub(r"\W", "_", request.node.name)[:50] + "-" + os.urandom(3).hex())
    path.mkdir()
    return path


def connect(server):
    return rcmd.connect(*server.address)


def data(size: int, seed: int = 0) -> bytes:
    return hashlib.shake_256(f"rcmd-{seed}".encode()).digest(size)


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def interrupted_lines(server, name: str) -> int:
    return len(re.findall(rf"put \S*{re.escape(name)} interrupted", server.log()))


class Cut(KeyboardInterrupt):
    pass


def cut_at(limit: int):
    """A progress callback that interrupts the transfer once *limit* bytes have moved."""

    def progress(done: int, total: int | None) -> None:
        if done >= limit:
            raise Cut

    return progress


def cut_put(server, local: Path, remote: str, limit: int) -> None:
    """Start a put of *local*, interrupt it at *limit* bytes; return once the server kept it."""
    before = interrupted_lines(server, remote)
    with connect(server) as client, pytest.raises(Cut):
        client.put(local, remote, progress=cut_at(limit))
    wait_until(lambda: interrupted_lines(server, remote) > before, "the server never noted the cut")


# ---------------------------------------------------------------------------- basics


def test_put_then_get_round_trip_verified(file_server, folder):
    content = data(3 * MiB + 17)
    (folder / "src").write_bytes(content)
    seen: list[tuple[int, int | None]] = []
    with connect(file_server) as client:
        put = client.put(folder / "src", str(folder / "up"), progress=lambda d, t: seen.append((d, t)))
        got = client.get(str(folder / "up"), folder / "down")
        assert client.run("echo still here").stdout == b"still here\n"
    assert (put.size, put.sha256, put.resumed_from) == (len(content), sha(content), 0)
    assert (got.size, got.sha256, got.resumed_from) == (len(content), sha(content), 0)
    assert (folder / "up").read_bytes() == content
    assert (folder / "down").read_bytes() == content
    assert seen[0] == (0, len(content))
    assert seen[-1] == (len(content), len(content))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert not list(folder.glob(".*rcmd-part"))


def test_get_flushes_to_disk_only_when_asked(file_server, folder, monkeypatch):
    """fsync=True flushes the file before its rename and the directory after it; by default,
    as scp and rsync, neither (the rename alone keeps readers from half a file)."""
    (folder / "src").write_bytes(data(MiB))
    flushed: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        flushed.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with connect(file_server) as client:
        client.get(str(folder / "src"), folder / "plain")
        assert flushed == []
        got = client.get(str(folder / "src"), folder / "flushed", fsync=True)
    assert flushed == ["file", "dir"]
    assert got.sha256 == sha(data(MiB))
    assert (folder / "flushed").read_bytes() == data(MiB)


def test_get_survives_short_writes(file_server, folder, monkeypatch):
    """os.pwrite may write less than it was given (a signal, a filesystem's limit): the rest
    is written too. Once, the rest was dropped and the hole left zeros under a SHA-256 that
    matched (the hash is of the bytes received, not of the bytes on disk)."""
    content = data(MiB + 5)
    (folder / "src").write_bytes(content)
    real_pwrite = os.pwrite
    calls: list[int] = []

    def short_pwrite(fd: int, chunk, offset: int) -> int:
        calls.append(len(chunk))
        return real_pwrite(fd, memoryview(chunk)[:1000], offset)

    monkeypatch.setattr(os, "pwrite", short_pwrite)
    with connect(file_server) as client:
        got = client.get(str(folder / "src"), folder / "down")
    assert got.sha256 == sha(content)
    assert (folder / "down").read_bytes() == content
    assert len(calls) > len(content) // 1000


def test_a_get_that_cannot_write_raises_the_os_error_and_resumes_later(file_server, folder, monkeypatch):
    """A write that fails (a full disk) raises its OSError, the partial file keeps what was
    written before it, and the same get resumes from there."""
    content = data(3 * MiB + 7, seed=5)
    (folder / "src").write_bytes(content)
    real_pwrite = os.pwrite

    def full_disk_after_a_mib(fd: int, chunk, offset: int) -> int:
        if offset >= MiB:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, chunk, offset)

    monkeypatch.setattr(os, "pwrite", full_disk_after_a_mib)
    with connect(file_server) as client, pytest.raises(OSError, match="No space left") as failure:
        client.get(str(folder / "src"), folder / "down")
    assert failure.value.errno == errno.ENOSPC
    assert (folder / partial_name("down")).read_bytes() == content[:MiB]
    monkeypatch.undo()
    with connect(file_server) as client:
        assert client.get(str(folder / "src"), folder / "down").resumed_from == MiB
    assert (folder / "down").read_bytes() == content


def test_a_client_gone_mid_get_leaves_the_server_no_open_file(server_factory, folder):
    """A download the client abandons half way closes the server's file (and socket)."""
    server = server_factory("--cwd", str(folder))
    (folder / "big").write_bytes(data(16 * MiB))  # more than the socket buffers hold

    def open_files() -> int:
        return len(os.listdir(f"/proc/{server.proc.pid}/fd"))

    with connect(server) as idle:  # the server is up and serving: what it has open now, it keeps
        assert idle.run("true").returncode == 0
        before = open_files()
        for _ in range(3):
            with connect(server) as client, pytest.raises(Cut):
                client.get("big", folder / "down", progress=cut_at(MiB))
        wait_until(lambda: open_files() <= before, "the server keeps files of abandoned downloads open")


def test_empty_file(file_server, folder):
    (folder / "empty").write_bytes(b"")
    with connect(file_server) as client:
        assert client.put(folder / "empty", str(folder / "up")).sha256 == sha(b"")
        assert client.get(str(folder / "up"), folder / "down").size == 0
    assert (folder / "down").read_bytes() == b""


def test_put_into_a_directory_and_get_into_one(file_server, folder):
    (folder / "a.txt").write_bytes(b"aaa")
    (folder / "in").mkdir()
    (folder / "out").mkdir()
    with connect(file_server) as client:
        client.put(folder / "a.txt", f"{folder}/in/")
        client.get(f"{folder}/in/a.txt", folder / "out")
    assert (folder / "out" / "a.txt").read_bytes() == b"aaa"


def test_preserve_keeps_mode_and_mtime(file_server, folder):
    source = folder / "script"
    source.write_bytes(b"#!/bin/sh\n")
    source.chmod(0o751)
    os.utime(source, (1_000_000_000, 1_000_000_000))
    with connect(file_server) as client:
        client.put(source, str(folder / "up"), preserve=True)
        client.get(str(folder / "up"), folder / "down", preserve=True)
    for path in (folder / "up", folder / "down"):
        info = path.stat()
        assert (info.st_mode & 0o7777, info.st_mtime) == (0o751, 1_000_000_000)


def test_relative_paths_follow_the_sticky_cd(file_server, folder):
    (folder / "x").write_bytes(b"x")
    with connect(file_server) as client:
        client.run(f"cd {folder}")
        client.put(folder / "x", "y")
        assert client.getcwd() == str(folder)
        assert [e.name for e in client.listdir(".")] == ["x", "y"]
    assert (folder / "y").read_bytes() == b"x"


# -------------------------------------------------------------------------- resume


def test_an_interrupted_put_keeps_the_old_file_and_resumes(file_server, folder):
    content = data(5 * MiB + 5)
    (folder / "src").write_bytes(content)
    (folder / "up").write_bytes(b"the old version")
    cut_put(file_server, folder / "src", str(folder / "up"), 3 * MiB)
    assert (folder / "up").read_bytes() == b"the old version"  # never half a file
    kept = (folder / partial_name("up")).stat().st_size
    assert 0 < kept < len(content)
    with connect(file_server) as client:
        result = client.put(folder / "src", str(folder / "up"))
    assert result.resumed_from == kept  # every kept block checked out
    assert (result.size, result.sha256) == (len(content), sha(content))
    assert (folder / "up").read_bytes() == content
    assert not (folder / partial_name("up")).exists()


def test_a_changed_source_resumes_from_the_first_differing_block(file_server, folder):
    content = bytearray(data(5 * MiB))
    (folder / "src").write_bytes(content)
    cut_put(file_server, folder / "src", str(folder / "up"), 4 * MiB)
    assert (folder / partial_name("up")).stat().st_size > 2 * MiB
    content[MIN_BLOCK_SIZE + 10] ^= 0xFF  # in the second block of what the server kept
    (folder / "src").write_bytes(content)
    with connect(file_server) as client:
        result = client.put(folder / "src", str(folder / "up"))
    assert result.resumed_from == MIN_BLOCK_SIZE
    assert (folder / "up").read_bytes() == content


def test_no_resume_starts_over(file_server, folder):
    content = data(3 * MiB)
    (folder / "src").write_bytes(content)
    cut_put(file_server, folder / "src", str(folder / "up"), 2 * MiB)
    with connect(file_server) as client:
        result = client.put(folder / "src", str(folder / "up"), resume=False)
    assert result.resumed_from == 0
    assert (folder / "up").read_bytes() == content


def test_an_interrupted_get_resumes_and_checks_what_it_kept(file_server, folder):
    content = bytearray(data(5 * MiB, seed=2))
    (folder / "remote").write_bytes(content)
    (folder / "local").write_bytes(b"old local")
    with connect(file_server) as client, pytest.raises(Cut):
        client.get(str(folder / "remote"), folder / "local", progress=cut_at(3 * MiB))
    assert (folder / "local").read_bytes() == b"old local"
    kept = (folder / partial_name("local")).stat().st_size
    assert kept >= 3 * MiB
    content[10] ^= 1  # the server's file changed in the first block: nothing kept is good
    (folder / "remote").write_bytes(content)
    with connect(file_server) as client:
        result = client.get(str(folder / "remote"), folder / "local")
    assert result.resumed_from == 0
    assert (folder / "local").read_bytes() == content
    with connect(file_server) as client, pytest.raises(Cut):
        client.get(str(folder / "remote"), folder / "again", progress=cut_at(2 * MiB))
    kept = (folder / partial_name("again")).stat().st_size
    with connect(file_server) as client:
        assert client.get(str(folder / "remote"), folder / "again").resumed_from == kept
    assert (folder / "again").read_bytes() == content


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=3 * MiB), min_size=1, max_size=3), upload=st.booleans()
)
def test_cut_anywhere_and_resume_until_the_bytes_match(file_server, area, cuts, upload):
    folder = area / f"hyp-{os.urandom(4).hex()}"
    folder.mkdir()
    content = data(3 * MiB + 1234, seed=len(cuts))
    source, target = (folder / "src", folder / "dst")
    source.write_bytes(content)
    for limit in cuts:
        if upload:
            before = interrupted_lines(file_server, str(target))
            with connect(file_server) as client:
                try:
                    client.put(source, str(target), progress=cut_at(limit))
                except Cut:
                    wait_until(
                        lambda before=before: interrupted_lines(file_server, str(target)) > before,
                        "no cut logged",
                    )
        else:
            with connect(file_server) as client:
                try:
                    client.get(str(source), target, progress=cut_at(limit))
                except Cut:
                    pass
    with connect(file_server) as client:
        result = client.put(source, str(target)) if upload else client.get(str(source), target)
    assert result.sha256 == sha(content)
    assert target.read_bytes() == content
    assert not (folder / partial_name("dst")).exists()


# ------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("name", "reason"),
    [("new\nline", "control characters"), ("nul\0", "control characters"), ("", "an empty path")],
)
def test_bad_names_get_a_clear_error_and_the_connection_goes_on(file_server, folder, name, reason):
    (folder / "src").write_bytes(b"x")
    with connect(file_server) as client:
        with pytest.raises(RemoteFileError, match=reason):
            client.put(folder / "src", f"{folder}/{name}" if name else "")
        with pytest.raises(RemoteFileError, match=reason):
            client.get(f"{folder}/{name}" if name else "", folder / "out")
        assert client.run("echo ok").stdout == b"ok\n"
    assert sorted(p.name for p in folder.iterdir()) == ["src"]


def test_a_name_that_is_not_text_is_refused_before_sending(file_server, folder):
    (folder / "src").write_bytes(b"x")
    with connect(file_server) as client:
        with pytest.raises(ValueError, match="not Unicode text"):
            client.put(folder / "src", "bad\udcff")
        assert client.run("echo ok").stdout == b"ok\n"


def test_a_directory_target_is_refused(file_server, folder):
    (folder / "src").write_bytes(b"x")
    (folder / "dir").mkdir()
    (folder / "dir" / "src").mkdir()
    with connect(file_server) as client:
        with pytest.raises(RemoteFileError, match="is a directory"):
            client.put(folder / "src", str(folder / "dir" / "src"))
        with pytest.raises(RemoteFileError, match="is a directory"):
            client.get(str(folder / "dir"), folder / "out")
        with pytest.raises(IsADirectoryError):
            client.put(folder / "dir", str(folder / "x"))
        with pytest.raises(RemoteFileError, match="No such file"):
            client.get(str(folder / "missing"), folder / "out")
    assert not (folder / "out").exists()


def test_two_clients_writing_one_name(file_server, folder):
    (folder / "src").write_bytes(b"second")
    with connect(file_server) as first, connect(file_server) as second:
        first._send(Put(str(folder / "same"), size=5))
        assert isinstance(first._next_event(), PutReady)  # the first holds the partial file
        with pytest.raises(RemoteFileError, match="being uploaded by another transfer"):
            second.put(folder / "src", str(folder / "same"))
        first._send(PutFrom(0))
        first._send(rcmd.messages.FileData(b"first"))
        first._send(FileEnd(5, sha(b"first")))
        assert first._next_event().sha256 == sha(b"first")
        assert second.put(folder / "src", str(folder / "same")).size == 6
    assert (folder / "same").read_bytes() == b"second"


def test_a_checksum_mismatch_installs_nothing_and_keeps_nothing(file_server, folder):
    (folder / "target").write_bytes(b"old")
    with connect(file_server) as client:
        client._send(Put(str(folder / "target"), size=3))
        client._next_event()
        client._send(PutFrom(0))
        client._send(rcmd.messages.FileData(b"new"))
        client._send(FileEnd(3, sha(b"not what was sent")))
        reply = client._next_event()
        assert isinstance(reply, FileError)
        assert "SHA-256 mismatch" in reply.reason
        assert client.run("true").returncode == 0
    assert (folder / "target").read_bytes() == b"old"
    assert not (folder / partial_name("target")).exists()


@pytest.mark.parametrize("change", ["grow", "shrink"])
def test_a_local_file_that_changes_while_sent(file_server, folder, change):
    content = data(3 * MiB)
    source = folder / "src"
    source.write_bytes(content)

    def progress(done: int, total: int | None) -> None:
        if done >= MiB and source.stat().st_size == len(content):
            if change == "grow":
                with open(source, "ab") as f:
                    f.write(b"more")
            else:
                os.truncate(source, 2 * MiB)

    with connect(file_server) as client:
        with pytest.raises(RemoteFileError, match="changed while it was being sent"):
            client.put(source, str(folder / "up"), progress=progress)
        assert client.run("true").returncode == 0
    assert not (folder / "up").exists()


def test_a_remote_file_that_shrinks_while_sent(file_server, folder):
    # 64 MiB: far more than the socket and the server's buffers hold, so the server has not
    # read the end yet when the first bytes arrive here (flow control bounds what it reads).
    remote = folder / "big"
    with open(remote, "wb") as f:
        f.truncate(64 * MiB)

    def progress(done: int, total: int | None) -> None:
        if done > 0 and remote.stat().st_size == 64 * MiB:
            os.truncate(remote, 60 * MiB)

    with connect(file_server) as client:
        with pytest.raises(RemoteFileError, match=r"shrank|changed"):
            client.get(str(remote), folder / "local", progress=progress)
        assert client.run("true").returncode == 0
    assert not (folder / "local").exists()
    assert (folder / partial_name("local")).exists()  # kept for a resume, checked then


def test_a_full_disk_keeps_the_old_file(server_factory, monkeypatch, folder):
    """RLIMIT_FSIZE makes the server's writes past 1 MiB fail (EFBIG), as a full disk would."""
    limited = "import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20)); "
    monkeypatch.setattr(
        conftest,
        "SERVER_ARGV",
        [sys.executable, "-c", limited + "from rcmd.cli import server_entry; server_entry()"],
    )
    server = server_factory("--cwd", str(folder))
    (folder / "src").write_bytes(data(3 * MiB))
    (folder / "up").write_bytes(b"old")
    with connect(server) as client:
        with pytest.raises(RemoteFileError, match=r"cannot write .*File too large") as failure:
            client.put(folder / "src", "up")
        assert failure.value.kept == MiB
        assert client.run("true").returncode == 0
    assert (folder / "up").read_bytes() == b"old"


# ------------------------------------------------------------------------------ CLI


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLIENT_ARGV, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_cli_put_and_get_recursive(file_server, folder):
    host = "{}:{}".format(*file_server.address)
    (folder / "tree" / "sub").mkdir(parents=True)
    (folder / "tree" / "a").write_bytes(b"a")
    (folder / "tree" / "sub" / "b").write_bytes(b"bb")
    put = run_cli("put", "-H", host, "-r", "tree", str(folder / "up"), cwd=folder)
    assert put.returncode == 0, put.stderr
    assert f"{folder}/up/sub/b  2 bytes  sha256 {sha(b'bb')}" in put.stdout
    assert put.stderr == ""  # a pipe: no progress bar
    get = run_cli("get", "-H", host, "-r", "-q", "--fsync", str(folder / "up"), "down", cwd=folder)
    assert (get.returncode, get.stdout, get.stderr) == (0, "", "")
    assert (folder / "down" / "sub" / "b").read_bytes() == b"bb"
    refused = run_cli("put", "-H", host, "tree", "x", cwd=folder)
    assert refused.returncode == 1
    assert "is a directory (use -r)" in refused.stderr
    missing = run_cli("get", "-H", host, str(folder / "nope"), "x", cwd=folder)
    assert missing.returncode == 1
    assert "No such file or directory" in missing.stderr


def test_a_large_listing_comes_in_pages(file_server, folder):
    """ls sends at most 5,000 entries and at most the 262,145 bytes every client must accept,
    sorted; a page that left any out says truncated, and FS ls with *after* (the last name
    seen) gives the next. listdir() asks for every page."""
    many, long = folder / "many", folder / "long"
    many.mkdir()
    long.mkdir()
    short_names = [f"f{n:05}" for n in range(5003)]
    long_names = [f"{n:04}" + "x" * 240 for n in range(1200)]
    for name in short_names:
        (many / name).touch()
    for name in long_names:
        (long / name).touch()
    with connect(file_server) as client:
        small = fs(client, "ls", str(folder))
        assert small.truncated is None
        assert {e["name"] for e in small.entries} == {"long", "many"}
        wide = fs(client, "ls", str(long))
        assert wide.truncated is True
        assert 0 < len(wide.entries) < 1200
        assert len(encode_message(wide)) <= 262_145
        names = [e["name"] for e in wide.entries]
        assert names == long_names[: len(names)]
        after = fs(client, "ls", str(long), after=names[-1])
        assert after.entries[0]["name"] == long_names[len(names)]
        assert [entry.name for entry in client.listdir(str(many))] == short_names
        assert [entry.name for entry in client.listdir(str(long))] == long_names
        assert client.listdir(str(many))[0].type == "file"
        assert client.run("echo still here").stdout == b"still here\n"


def test_cli_get_r_copies_every_file_of_a_large_directory(file_server, folder):
    """Once, get -r copied the first 5,000 files of a larger directory and said nothing."""
    host = "{}:{}".format(*file_server.address)
    (folder / "big").mkdir()
    for n in range(5001):
        (folder / "big" / f"f{n:05}").write_bytes(b"%d" % n)
    get = run_cli("get", "-H", host, "-r", "-q", str(folder / "big"), "down", cwd=folder)
    assert get.returncode == 0, get.stderr
    assert len(list((folder / "down").iterdir())) == 5001
    assert (folder / "down" / "f05000").read_bytes() == b"5000"


def test_cli_resumes_and_says_so(file_server, folder):
    host = "{}:{}".format(*file_server.address)
    content = data(3 * MiB)
    (folder / "src").write_bytes(content)
    cut_put(file_server, folder / "src", str(folder / "up"), 2 * MiB)
    kept = (folder / partial_name("up")).stat().st_size
    put = run_cli("put", "-H", host, "src", str(folder / "up"), cwd=folder)
    assert put.returncode == 0, put.stderr
    assert f"(resumed at byte {kept})" in put.stdout
    again = run_cli("put", "-H", host, "--no-resume", "src", str(folder / "up"), cwd=folder)
    assert "resumed" not in again.stdout
    assert (folder / "up").read_bytes() == content


def test_cut_at_every_stage_of_an_upload_then_resumed(file_server, folder):
    """Cut after PUT (before PUT_READY is read), after PUT_READY, after PUT_FROM, and after
    FILE_END; each time the next put finishes the job with the right bytes."""
    content = data(2 * MiB + 3, seed=7)
    (folder / "src").write_bytes(content)
    target = str(folder / "dst")
    digest = sha(content)
    for stage in ("put", "ready", "from", "end"):
        before = interrupted_lines(file_server, target)
        client = connect(file_server)
        client._send(Put(target, size=len(content)))
        if stage != "put":
            ready = client._next_event()
            assert isinstance(ready, PutReady)
        if stage in ("from", "end"):
            client._send(PutFrom(0))
            client._send(rcmd.messages.FileData(content[: 256 * 1024]))
        if stage == "end":
            client._send(FileEnd(256 * 1024, sha(content[: 256 * 1024])))
            assert isinstance(client._next_event(), FileError)  # short of the size PUT announced
        client.close()
        if stage != "end":
            wait_until(lambda before=before: interrupted_lines(file_server, target) > before, "no cut logged")
        with connect(file_server) as again:
            result = again.put(folder / "src", target)
        assert result.sha256 == digest
        assert (folder / "dst").read_bytes() == content


def test_a_server_killed_mid_upload_leaves_a_partial_file_the_next_server_resumes(server_factory, folder):
    server = server_factory("--cwd", str(folder))
    content = data(6 * MiB, seed=9)
    (folder / "src").write_bytes(content)

    def kill_the_server(done: int, total: int | None) -> None:
        if done >= 4 * MiB and server.proc.poll() is None:
            # What was sent may still sit in socket buffers (several MiB on loopback): kill
            # once the server has written some of it, or there is nothing to resume.
            part = folder / partial_name("dst")
            wait_until(lambda: part.exists() and part.stat().st_size >= MiB, "the server wrote nothing")
            server.proc.kill()
            server.proc.wait()

    with connect(server) as client, pytest.raises((rcmd.ConnectionClosed, rcmd.ServerError, OSError)):
        client.put(folder / "src", "dst", progress=kill_the_server)
    kept = (folder / partial_name("dst")).stat().st_size
    assert not (folder / "dst").exists()
    assert kept > 0
    with connect(server_factory("--cwd", str(folder))) as client:
        result = client.put(folder / "src", "dst")
    assert result.resumed_from == kept - kept % MIN_BLOCK_SIZE or result.resumed_from == kept
    assert (folder / "dst").read_bytes() == content
