"""Tab completion against real servers over real sockets (PROTOCOL.md 5d): what matches, the
limits, no shell, no completion before authentication, and a server that never waits on it."""

from __future__ import annotations

import asyncio
import os
import socket
import threading

import pytest
from conftest import frames_until_closed

from rcmd import connect
from rcmd.auth import new_nonce
from rcmd.completion import RemoteCompleter, request
from rcmd.framing import NEED_DATA, LengthPrefixFramer, encode_frame
from rcmd.keepalive import KeepAlive
from rcmd.messages import (
    MAX_COMPLETION_BYTES,
    MAX_COMPLETIONS,
    Complete,
    Completions,
    Error,
    Hello,
    decode_message,
    encode_message,
)
from rcmd.server import complete as server_complete

SECRET = "correct horse battery staple 1234"


@pytest.fixture
def tree(tmp_path):
    """A directory as people have them: spaces, a quote, hidden files, a program."""
    root = tmp_path / "tree"
    (root / "my dir" / "inner").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "my file.txt").write_text("x")
    (root / "it's").write_text("x")
    (root / "notes.txt").write_text("x")
    (root / ".hidden").write_text("x")
    (root / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (root / "run.sh").chmod(0o755)
    (root / "link-to-src").symlink_to("src")
    return root


@pytest.fixture
def client(server, tree):
    with connect(*server.address) as client:
        assert client.run(f"cd '{tree}'").returncode == 0
        yield client


def items(client, text: str, kind: str = "path") -> tuple[str, ...]:
    return request(client, text, kind).items


def test_the_server_offers_completion(client):
    assert "complete" in client.server_hello.extensions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("it's", "link-to-src/", "my dir/", "my file.txt", "notes.txt", "run.sh", "src/")),
        ("my", ("my dir/", "my file.txt")),
        ("my ", ("my dir/", "my file.txt")),  # a space is just a character of the name
        ("my d", ("my dir/",)),
        ("my dir/", ("my dir/inner/",)),
        ("it'", ("it's",)),
        (".", (".hidden",)),  # hidden names for a hidden prefix only; never . and ..
        ("./no", ("./notes.txt",)),
        ("src/../no", ("src/../notes.txt",)),  # the directory part comes back as it was sent
        ("nothing-here", ()),
        ("no-such-dir/x", ()),
        ("notes.txt/", ()),  # not a directory
        ("a\0b", ()),
    ],
)
def test_paths_complete_relative_to_the_connections_directory(client, text, expected):
    assert items(client, text) == expected


def test_absolute_paths_and_the_home(client, tree):
    assert items(client, f"{tree}/no") == (f"{tree}/notes.txt",)
    assert items(client, "~") == ("~/",)
    home = os.path.expanduser("~")
    names = sorted(n for n in os.listdir(home) if n.startswith(".") and os.path.isdir(os.path.join(home, n)))
    assert names, "the test needs a hidden directory in the home"
    assert f"~/{names[0]}/" in items(client, "~/.")
    assert items(client, "~no-such-user-here") == ()


def test_the_connections_directory_is_the_one_cd_set(client, tree):
    assert client.run("cd src").returncode == 0
    assert items(client, "") == ()
    (tree / "src" / "main.py").write_text("")
    assert items(client, "ma") == ("main.py",)
    assert items(client, "../no") == ("../notes.txt",)


def test_commands_come_from_path_and_the_shells_builtins(server_factory, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, mode in (("rcmdtest-tool", 0o755), ("rcmdtest-tool2", 0o755), ("rcmdtest-data", 0o644)):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(mode)
    (bin_dir / "rcmdtest-dir").mkdir()
    server = server_factory(env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    with connect(*server.address) as client:
        # Not the data file, not the directory: only what the shell could run.
        assert items(client, "rcmdtest-", "command") == ("rcmdtest-tool", "rcmdtest-tool2")
        assert items(client, "expor", "command") == ("export",)  # a builtin
        assert items(client, "ech", "command")[0] == "echo"  # a builtin and /bin/echo, once
        assert items(client, "ech", "command").count("echo") == 1


def test_a_command_word_with_a_slash_is_a_program_path(client):
    assert items(client, "./", "command") == ("./link-to-src/", "./my dir/", "./run.sh", "./src/")


def test_limits_on_items_and_bytes_with_truncated(client, tree):
    many = tree / "many"
    many.mkdir()
    for n in range(MAX_COMPLETIONS + 5):
        (many / f"f{n:05}").touch()
    answer = request(client, "many/f", "path")
    assert len(answer.items) == MAX_COMPLETIONS
    assert answer.items[0] == "many/f00000"  # the first ones in order, not any thousand
    assert answer.truncated
    long_names = tree / "long"
    long_names.mkdir()
    for n in range(300):
        (long_names / f"{n:03}{'x' * 240}").touch()
    answer = request(client, "long/", "path")
    assert sum(len(item.encode()) for item in answer.items) <= MAX_COMPLETION_BYTES
    assert answer.truncated
    assert len(answer.items) == MAX_COMPLETION_BYTES // len(answer.items[0].encode())
    assert not request(client, "many/f0000", "path").truncated


def test_a_name_that_is_not_text_is_left_out(client, tree):
    os.close(os.open(os.path.join(os.fsencode(tree), b"bad\xffname"), os.O_CREAT | os.O_WRONLY))
    (tree / "bad-but-fine").touch()
    assert items(client, "bad") == ("bad-but-fine",)


def test_the_word_never_reaches_a_shell(client, tree):
    marker = tree / "pwned"
    for text in (f"$(touch {marker})", f"`touch {marker}`", f"x; touch {marker}", f"'; touch {marker}; '"):
        for kind in ("path", "command"):
            assert items(client, text, kind) == ()
    assert not marker.exists()
    assert client.run("echo alive").stdout == b"alive\n"  # the connection is idle again


def test_a_transfer_only_user_gets_no_completion_but_a_user_who_runs_commands_does(server_factory, tmp_path):
    from rcmd.server.accounts import add_user

    users = tmp_path / "users.toml"
    for name, transfer_only in (("ann", False), ("una", True)):
        (tmp_path / name / "sub").mkdir(parents=True)
        add_user(
            users, name, "pw-" + name, home=str(tmp_path / name), transfer_only=transfer_only, iterations=4096
        )
    server = server_factory("--users", str(users))
    with connect(*server.address, user="ann", password="pw-ann") as ann:
        assert items(ann, "su") == ("sub/",)  # in her home, where she starts
    with connect(*server.address, user="una", password="pw-una") as una:
        assert una.transfer_only
        assert items(una, "su") == ()  # her paths are jailed: a plain listing is not for her
        assert items(una, "/", "command") == ()
        assert items(una, "ec", "command") == ()


# ------------------------------------------------------------------ before authentication


@pytest.fixture(scope="module")
def auth_server(server_factory, tmp_path_factory):
    path = tmp_path_factory.mktemp("secret") / "secret"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return server_factory("--secret-file", str(path))


def test_no_completion_before_authentication(auth_server):
    with socket.create_connection(auth_server.address, timeout=30) as sock:
        framer = LengthPrefixFramer()
        while (frame := framer.next_frame()) is NEED_DATA:
            framer.receive_data(sock.recv(4096))
        assert "complete" in decode_message(frame).extensions
        hello = Hello(nonce=new_nonce().hex(), mac="00" * 32)  # a proof the server has not checked yet
        sock.sendall(encode_frame(encode_message(hello)) + encode_frame(encode_message(Complete("/"))))
        messages = frames_until_closed(sock)
    assert not any(isinstance(m, Completions) for m in messages)
    assert isinstance(messages[-1], Error)
    assert messages[-1].reason in ("authentication failed", "COMPLETE is not allowed while authenticating")


def test_after_authentication_it_completes(auth_server):
    with connect(*auth_server.address, secret=SECRET) as client:
        assert items(client, "/" + "us") == ("/usr/",)


# ---------------------------------------------------------------------- an older server


def test_an_older_server_is_not_asked(fake_server):
    received: list[bytes] = []

    def old_server(conn):
        conn.sendall(encode_frame(encode_message(Hello(extensions=("pty", "ping")))))
        while chunk := conn.recv(4096):
            received.append(chunk)

    server = fake_server(old_server)
    with connect(*server.address) as client:
        assert request(client, "a", "path") == Completions()
        assert list(RemoteCompleter(client, None, ["exit"]).completions("ex")) == [("it ", "exit")]
    server.close()
    assert b"".join(received) == encode_frame(encode_message(Hello(software=client_software())))


def client_software() -> str:
    from rcmd import __version__

    return f"rcmd {__version__}"


# ------------------------------------------------------------------- the prompt's side


def test_a_dead_connection_completes_nothing_and_is_noted_for_reconnecting(server_factory):
    server = server_factory()
    client = connect(*server.address)
    keepalive = KeepAlive()
    try:
        completer = RemoteCompleter(client, keepalive)
        assert next(iter(completer.completions("ech"))) == ("o ", "echo")
        server.stop()
        assert list(completer.completions("ech")) == []
        assert keepalive.failure is not None  # the next command reconnects, and says so
        assert list(completer.completions("ech")) == []  # and asks nothing meanwhile
    finally:
        keepalive.stop()
        client.close()


# --------------------------------------------------------------- the server's event loop


def test_a_listing_runs_off_the_event_loop(monkeypatch):
    """While one completion lists (here: held until released), the server's loop goes on."""
    started, release = threading.Event(), threading.Event()

    def slow_complete(*args):
        started.set()
        release.wait(30)
        return Completions(("done",))

    monkeypatch.setattr(server_complete, "complete", slow_complete)

    async def scenario() -> Completions:
        answer = asyncio.ensure_future(server_complete.answer(Complete("x"), "/"))
        while not started.is_set():
            await asyncio.sleep(0)  # the loop turns while the listing runs
        ticks = 0
        while ticks < 100:  # other work on the loop is served meanwhile
            await asyncio.sleep(0)
            ticks += 1
        assert not answer.done()
        release.set()
        return await answer

    assert asyncio.run(scenario()) == Completions(("done",))


def test_the_scan_is_bounded(monkeypatch, tmp_path):
    for n in range(50):
        (tmp_path / f"a{n:02}").touch()
    monkeypatch.setattr(server_complete, "MAX_SCANNED", 10)
    answer = server_complete.complete("a", "path", str(tmp_path), "")
    assert answer.truncated
    assert len(answer.items) <= 10
    monkeypatch.setattr(server_complete, "MAX_SCANNED", 100)
    monkeypatch.setattr(server_complete, "SCAN_CHECK", 1)
    monkeypatch.setattr(server_complete, "SCAN_SECONDS", -1.0)  # the deadline has passed at once
    assert server_complete.complete("a", "path", str(tmp_path), "").truncated
    monkeypatch.setattr(server_complete, "SCAN_SECONDS", 60.0)
    assert server_complete.complete("a", "path", str(tmp_path), "") == Completions(
        tuple(f"a{n:02}" for n in range(50))
    )


def test_put_completes_local_files_not_the_servers(client, tmp_path, monkeypatch):
    """The prompt's put takes local files (its words complete here, as scp's): a name that
    only this side's directory holds completes; one only the server's has does not."""
    here = tmp_path / "local"
    (here / "updir").mkdir(parents=True)
    (here / "upload-me.txt").write_text("x")
    (here / ".hidden-up").write_text("x")
    monkeypatch.chdir(here)
    completer = RemoteCompleter(client, None)
    assert list(completer.completions("put up")) == [("dir/", "updir/"), ("load-me.txt ", "upload-me.txt")]
    assert list(completer.completions("put no")) == []  # the server's notes.txt is not offered
    assert list(completer.completions("put updir/../upl")) == [("oad-me.txt ", "upload-me.txt")]
    assert list(completer.completions("get no")) == [("tes.txt ", "notes.txt")]  # get's are remote


def test_cd_offers_only_directories(client):
    completer = RemoteCompleter(client, None)
    assert list(completer.completions("cd my")) == [("\\ dir/", "my dir/")]
    assert ("\\ file.txt ", "my file.txt") in list(completer.completions("cat my"))
