"""User accounts: the users file, SCRAM logins, homes, the jail of transfer-only users, quotas."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLIENT_ARGV, SERVER_ARGV

import rcmd
from rcmd import scram
from rcmd.errors import AuthenticationError, RemoteFileError
from rcmd.files import partial_name
from rcmd.framing import LengthPrefixFramer
from rcmd.messages import (
    AuthChallenge,
    AuthOk,
    FileError,
    Hello,
    Put,
    PutReady,
    decode_message,
    encode_message,
)
from rcmd.server.accounts import AccountsError, add_user, load_users, set_password

ROUNDS = scram.MIN_ITERATIONS  # the tests log in often; real users get DEFAULT_ITERATIONS


@pytest.fixture(scope="module")
def homes(tmp_path_factory):
    base = tmp_path_factory.mktemp("accounts")
    users = base / "users.toml"
    add_user(users, "ann", "ann's password", home=str(base / "ann"), iterations=ROUNDS)
    add_user(
        users,
        "tom",
        "tom's password",
        home=str(base / "tom"),
        quota=1000,
        transfer_only=True,
        iterations=ROUNDS,
    )
    add_user(users, "una", "una's password", home=str(base / "una"), transfer_only=True, iterations=ROUNDS)
    return base


@pytest.fixture(scope="module")
def users_server(server_factory, homes):
    return server_factory("--users", str(homes / "users.toml"))


def login(server, user: str, password: str | None = None):
    return rcmd.connect(*server.address, user=user, password=password or f"{user}'s password")


# ------------------------------------------------------------------------ SCRAM math


def test_the_verifier_holds_nothing_that_logs_in():
    verifier = scram.make_verifier("pencil", iterations=ROUNDS, salt=bytes(range(16)))
    message = scram.auth_message("ann", bytes(32), bytes(range(32)), verifier.salt, ROUNDS)
    salted = scram.salted_password("pencil", verifier.salt, ROUNDS)
    assert scram.verify_client_proof(verifier, message, scram.client_proof(salted, message))
    # Someone who read the file has StoredKey and ServerKey, and no ClientKey:
    for key in (verifier.stored_key, verifier.server_key):
        forged = bytes(
            a ^ b for a, b in zip(key, scram.server_signature(verifier.stored_key, message), strict=True)
        )
        assert not scram.verify_client_proof(verifier, message, forged)
        assert not scram.verify_client_proof(verifier, message, scram.client_proof(key, message))
    assert not scram.verify_client_proof(
        verifier, message, scram.client_proof(scram.salted_password("Pencil", verifier.salt, ROUNDS), message)
    )


def test_the_users_file(tmp_path):
    users = tmp_path / "users.toml"
    add_user(users, "ann", "correct horse", home=str(tmp_path / "ann"), quota=5, iterations=ROUNDS)
    text = users.read_text()
    assert "correct horse" not in text
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ann").stat().st_mode) == 0o700
    before = load_users(users)["ann"]
    assert (before.quota, before.transfer_only, before.home) == (5, False, str(tmp_path / "ann"))
    set_password(users, "ann", "battery staple")
    after = load_users(users)["ann"]
    assert after.verifier != before.verifier
    assert after.verifier.salt != before.verifier.salt
    with pytest.raises(AccountsError, match="exists already"):
        add_user(users, "ann", "x", home=str(tmp_path / "x"), iterations=ROUNDS)
    for bad in ("", "a b", "../x", "é", "x" * 65):
        with pytest.raises(AccountsError, match="user name"):
            add_user(users, bad, "x", home=str(tmp_path / "x"), iterations=ROUNDS)
    users.write_text("[users.ann]\nhome = 'relative'\n")
    with pytest.raises(AccountsError, match=r"missing or bad field|absolute"):
        load_users(users)


def test_adduser_and_passwd_read_the_password_from_a_pipe(tmp_path):
    users = tmp_path / "u.toml"
    argv = [*SERVER_ARGV, "adduser", "zoe", "--users", str(users), "--quota", "10", "--transfer-only"]
    added = subprocess.run(
        [*argv, "--iterations", str(ROUNDS)], input="zoe pw\n", capture_output=True, text=True
    )
    assert added.returncode == 0, added.stderr
    account = load_users(users)["zoe"]
    assert (account.home, account.quota, account.transfer_only) == (str(tmp_path / "zoe"), 10, True)
    salted = scram.salted_password("zoe pw", account.verifier.salt, ROUNDS)
    assert hashlib.sha256(scram.client_key(salted)).digest() == account.verifier.stored_key
    changed = subprocess.run(
        [*SERVER_ARGV, "passwd", "zoe", "--users", str(users)], input="new\n", capture_output=True, text=True
    )
    assert changed.returncode == 0, changed.stderr
    salted = scram.salted_password("new", load_users(users)["zoe"].verifier.salt, ROUNDS)
    assert scram.server_key(salted) == load_users(users)["zoe"].verifier.server_key
    again = subprocess.run([*argv], input="x\n", capture_output=True, text=True)
    assert again.returncode == 1
    assert "exists already" in again.stderr


def test_a_users_file_others_can_read_is_refused(tmp_path):
    users = tmp_path / "u.toml"
    add_user(users, "ann", "pw", home=str(tmp_path / "ann"), iterations=ROUNDS)
    users.chmod(0o644)
    started = subprocess.run(
        [*SERVER_ARGV, "--port", "0", "--users", str(users)], capture_output=True, text=True
    )
    assert started.returncode == 2
    assert "readable by others" in started.stderr


# -------------------------------------------------------------------------- logging in


def test_users_log_in_each_in_their_home(users_server, homes):
    with login(users_server, "ann") as ann, login(users_server, "una") as una:
        assert ann.cwd == str(homes / "ann")
        assert ann.run("pwd").stdout_text == f"{homes / 'ann'}\n"
        assert una.cwd == "/"
        (homes / "src").write_bytes(b"hello")
        ann.put(homes / "src", "same")
        una.put(homes / "src", "same")
    assert (homes / "ann" / "same").read_bytes() == b"hello"
    assert (homes / "una" / "same").read_bytes() == b"hello"


@pytest.mark.parametrize(("user", "password"), [("ann", "wrong"), ("nobody", "x"), ("ann", "Ann's password")])
def test_a_wrong_password_or_user_is_refused_alike(users_server, user, password):
    with pytest.raises(AuthenticationError, match="refused us: authentication failed"):
        login(users_server, user, password)


def test_a_client_without_a_user_is_told_what_to_give(users_server):
    with pytest.raises(AuthenticationError, match="requires a user name and password"):
        rcmd.connect(*users_server.address)


def test_a_user_against_a_secret_server_is_refused(server_factory, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("0123456789abcdef0123456789abcdef\n")
    secret.chmod(0o600)
    server = server_factory("--secret-file", str(secret))
    with pytest.raises(AuthenticationError, match="has no user accounts"):
        rcmd.connect(*server.address, user="ann", password="x")
    with rcmd.connect(*server.address, secret=secret.read_bytes().strip()) as client:
        assert client.run("true").returncode == 0  # the single-secret mode still works


def test_the_server_must_prove_it_holds_the_verifier(fake_server):
    """A server that knows the salt but not the verifier cannot fake AUTH_OK."""

    def impostor(conn: socket.socket) -> None:
        framer = LengthPrefixFramer()

        def send(message):
            payload = encode_message(message)
            conn.sendall(len(payload).to_bytes(4, "big") + payload)

        def receive():
            while (frame := framer.next_frame()) is rcmd.NEED_DATA:
                framer.receive_data(conn.recv(65536))
            return decode_message(frame)

        send(Hello(auth="scram-sha-256", nonce=bytes(32).hex()))
        assert receive().user == "ann"
        send(AuthChallenge(bytes(16).hex(), ROUNDS))
        receive()
        send(AuthOk(bytes(32).hex()))
        conn.recv(1)

    server = fake_server(impostor)
    with pytest.raises(AuthenticationError, match="could not prove it holds your verifier"):
        rcmd.connect(*server.address, user="ann", password="pw")


def test_too_few_rounds_are_refused(fake_server):
    def cheap(conn: socket.socket) -> None:
        payloads = [Hello(auth="scram-sha-256", nonce=bytes(32).hex()), AuthChallenge(bytes(16).hex(), 1)]
        for message in payloads:
            payload = encode_message(message)
            conn.sendall(len(payload).to_bytes(4, "big") + payload)
        conn.recv(65536)

    server = fake_server(cheap)
    with pytest.raises(AuthenticationError, match="fewer than 4096"):
        rcmd.connect(*server.address, user="ann", password="pw")


def test_cli_user_and_password_file(users_server, homes, tmp_path):
    password = tmp_path / "pw"
    password.write_text("ann's password\n")
    password.chmod(0o600)
    host = "{}:{}".format(*users_server.address)
    ran = subprocess.run(
        [*CLIENT_ARGV, host, "--user", "ann", "--password-file", str(password), "-c", "pwd"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (ran.returncode, ran.stdout) == (0, f"{homes / 'ann'}\n"), ran.stderr
    (tmp_path / "f").write_bytes(b"x")
    put = subprocess.run(
        [
            *CLIENT_ARGV,
            "put",
            "-H",
            host,
            "--user",
            "ann",
            "--password-file",
            str(password),
            str(tmp_path / "f"),
            "f2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert put.returncode == 0, put.stderr
    assert (homes / "ann" / "f2").read_bytes() == b"x"
    password.chmod(0o644)
    refused = subprocess.run(
        [*CLIENT_ARGV, host, "--user", "ann", "--password-file", str(password), "-c", "pwd"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "readable by others" in refused.stderr


# ----------------------------------------------------------------- transfer-only users


def test_transfer_only_users_cannot_run_commands(users_server):
    with login(users_server, "una") as una:
        result = una.run("touch /tmp/should-not-exist-rcmd; id")
        assert result.returncode == 126
        assert "una may only transfer files" in result.stderr_text
        assert result.stdout == b""


def test_paths_stay_inside_the_home(users_server, homes, tmp_path):
    home = homes / "una"
    (home / "sub").mkdir(exist_ok=True)
    (tmp_path / "secret").write_bytes(b"outside")
    link = home / "escape"
    if not link.is_symlink():
        link.symlink_to(tmp_path)
    file_link = home / "passwd"
    if not file_link.is_symlink():
        file_link.symlink_to(tmp_path / "secret")
    with login(users_server, "una") as una:
        assert una.chdir("..") == "/"  # the root's parent is the root
        assert una.chdir("/sub/../sub") == "/sub"
        assert una.getcwd() == "/sub"
        assert una.chdir("../../..") == "/"
        with pytest.raises(RemoteFileError, match="No such file"):
            una.get("/../../../../etc/hostname", tmp_path / "x")  # the home's /etc/hostname
        for path in ("escape/secret", "/escape/secret", "sub/../escape/secret", "passwd"):
            with pytest.raises(RemoteFileError, match="symbolic links are not followed"):
                una.get(path, tmp_path / "x")
            with pytest.raises(RemoteFileError, match="symbolic links are not followed"):
                una.put(tmp_path / "secret", path)
        with pytest.raises(RemoteFileError, match="symbolic links are not followed"):
            una.listdir("escape")
        with pytest.raises(RemoteFileError, match="symbolic links are not followed"):
            una.chdir("escape")
        with pytest.raises(RemoteFileError, match="symbolic links are not followed"):
            una.mkdir("escape/new")
        assert una.stat("passwd").type == "link"  # seen, not followed
        names = {entry.name: entry.type for entry in una.listdir("/")}
        assert names["escape"] == "link"
        assert names["sub"] == "dir"
    assert (tmp_path / "secret").read_bytes() == b"outside"
    assert not (tmp_path / "x").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret"]


def test_file_operations(users_server, homes, tmp_path):
    (tmp_path / "f").write_bytes(b"data")
    with login(users_server, "una") as una:
        una.mkdir("ops")
        una.chdir("ops")
        una.mkdir("d")
        una.put(tmp_path / "f", "d/f")
        assert [(e.name, e.type, e.size) for e in una.listdir("d")] == [("f", "file", 4)]
        with pytest.raises(RemoteFileError, match="Directory not empty"):
            una.rmdir("d")
        with pytest.raises(RemoteFileError, match="is a directory"):
            una.remove("d")
        una.remove("d/f")
        una.rmdir("d")
        assert una.listdir(".") == []
        with pytest.raises(RemoteFileError, match="File exists"):
            una.mkdir("/ops")
    assert (homes / "una" / "ops").is_dir()


# ---------------------------------------------------------------------------- quotas


def test_an_upload_over_the_quota_is_refused_before_its_first_byte(users_server, homes, tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 1001)
    (tmp_path / "small").write_bytes(b"x" * 300)
    with login(users_server, "tom") as tom:
        with pytest.raises(RemoteFileError, match="would exceed the quota"):
            tom.put(tmp_path / "big", "big")
        assert not (homes / "tom" / partial_name("big")).exists()
        assert tom.put(tmp_path / "small", "a").size == 300
        assert tom.disk_usage() == (300, 1000)
        assert tom.put(tmp_path / "small", "a").size == 300  # replacing it frees the old bytes
        assert tom.disk_usage() == (300, 1000)
        tom.remove("a")
        assert tom.disk_usage() == (0, 1000)


def test_concurrent_uploads_cannot_exceed_the_quota_together(users_server, homes, tmp_path):
    (tmp_path / "f").write_bytes(b"y" * 600)
    with login(users_server, "tom") as first, login(users_server, "tom") as second:
        first._send(Put("one", size=600))
        assert isinstance(first._next_event(), PutReady)  # 600 bytes promised to it
        second._send(Put("two", size=600))
        refused = second._next_event()
        assert isinstance(refused, FileError)
        assert "would exceed the quota" in refused.reason
    with login(users_server, "tom") as tom:  # the first upload's promise ended with it
        tom.put(tmp_path / "f", "one")
        assert tom.disk_usage() == (600, 1000)
        tom.remove("one")


def test_cli_df(users_server, tmp_path):
    password = tmp_path / "pw"
    password.write_text("tom's password")
    password.chmod(0o600)
    host = "{}:{}".format(*users_server.address)
    df = subprocess.run(
        [*CLIENT_ARGV, "df", "-H", host, "--user", "tom", "--password-file", str(password)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert df.returncode == 0, df.stderr
    assert "of 1000 bytes" in df.stdout


def test_python_version_gate_for_tomllib():
    import rcmd.server.accounts as accounts

    assert accounts.tomllib.__name__ == ("tomllib" if sys.version_info >= (3, 11) else "tomli")
    assert os.path.basename(Path(accounts.__file__).parent) == "server"


def test_the_worked_example_of_protocol_md():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md").read_text()
    salt, ns, nc = bytes(range(0x40, 0x50)), bytes(range(32)), bytes(range(32, 64))
    salted = scram.salted_password("pencil", salt, 4096)
    verifier = scram.make_verifier("pencil", iterations=4096, salt=salt)
    message = scram.auth_message("ann", ns, nc, salt, 4096)
    for label, value in [
        ("SaltedPassword", salted),
        ("StoredKey", verifier.stored_key),
        ("ServerKey", verifier.server_key),
        ("ClientProof", scram.client_proof(salted, message)),
        ("ServerSignature", scram.server_signature(verifier.server_key, message)),
    ]:
        assert f"{label:<17}{value.hex()}" in doc, label


def test_the_prompt_of_a_transfer_only_user(users_server, homes, tmp_path):
    import pexpect

    password = tmp_path / "pw"
    password.write_text("una's password")
    password.chmod(0o600)
    (tmp_path / "local.txt").write_bytes(b"from the prompt")
    env = {
        **os.environ,
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "TERM": "xterm",
        "PROMPT_TOOLKIT_NO_CPR": "1",
    }
    child = pexpect.spawn(
        CLIENT_ARGV[0],
        [
            *CLIENT_ARGV[1:],
            "{}:{}".format(*users_server.address),
            "--user",
            "una",
            "--password-file",
            str(password),
        ],
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 200),
        cwd=str(tmp_path),
    )
    child.expect("connected to")
    for line, answer in [
        ("mkdir pdir", r"/(\x1b\[[0-9;]*m)*>"),
        ("cd pdir", r"/pdir(\x1b\[[0-9;]*m)*>"),
        ("put local.txt", r"local.txt: 15 bytes, sha256 [0-9a-f]{64}"),
        ("ls", r"-rw.* 15 .* local\.txt"),
        ("pwd", r"/pdir\r\n"),
        ("get local.txt back.txt", r"back.txt: 15 bytes"),
        ("quota", r"used \d+ bytes of no limit"),
        ("rm local.txt", r"/pdir(\x1b\[[0-9;]*m)*>"),
        ("id", r"refused: user una may only transfer files"),
    ]:
        child.sendline(line)
        child.expect(answer)
    child.expect(r" (\x1b\[[0-9;]*m)*/pdir(\x1b\[[0-9;]*m)*>")  # the jail's path, never the real one
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    assert (tmp_path / "back.txt").read_bytes() == b"from the prompt"
    assert list((homes / "una" / "pdir").iterdir()) == []


def test_adduser_on_a_terminal_asks_twice_without_echo(tmp_path):
    """On a terminal the password is asked for twice, not shown; two that differ exit 2 and
    write nothing. passwd for a name the file lacks exits 1 with the reason."""
    import pexpect

    users = tmp_path / "u.toml"
    argv = [*SERVER_ARGV, "adduser", "tia", "--users", str(users), "--iterations", str(ROUNDS)]
    child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", timeout=30)
    child.expect("new password for tia: ")
    child.sendline("first")
    child.expect("again: ")
    child.sendline("second")
    child.expect("the passwords differ")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2
    assert not users.exists()
    child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", timeout=30)
    seen = io.StringIO()
    child.logfile_read = seen  # everything the terminal showed, not only after the last match
    child.expect("new password for tia: ")
    child.sendline("same secret")
    child.expect("again: ")
    child.sendline("same secret")
    child.expect("added tia")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "added tia" in seen.getvalue()
    assert "same secret" not in seen.getvalue()  # not echoed
    salted = scram.salted_password("same secret", load_users(users)["tia"].verifier.salt, ROUNDS)
    assert scram.server_key(salted) == load_users(users)["tia"].verifier.server_key
    unknown = subprocess.run(
        [*SERVER_ARGV, "passwd", "nobody", "--users", str(users)], input="x\n", capture_output=True, text=True
    )
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("rcmd-server: ")
    assert "nobody" in unknown.stderr
