"""rcmd.server.accounts in this process (mutation testing sees it run): the users file, read
and written, each wrong entry with its reason word for word; and the server's side of a SCRAM
login against a BackgroundServer, spoken to over a raw 127.0.0.1 socket (a Peer), so every
message of the exchange is checked. The tests of test_accounts run the same through
rcmd-server subprocesses.
"""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

import pytest
from _mutserver import Peer

from rcmd import scram
from rcmd.auth import FailureThrottle, throttle_key
from rcmd.messages import AuthChallenge, AuthOk, AuthProof, Error, Hello, Ping, Pong
from rcmd.server import BackgroundServer
from rcmd.server.accounts import (
    Account,
    AccountsError,
    add_user,
    load_users,
    save_users,
    set_password,
)

ROUNDS = scram.MIN_ITERATIONS
SALT = bytes(range(16))


def verifier(password: str = "pw", iterations: int = ROUNDS) -> scram.Verifier:
    return scram.make_verifier(password, iterations=iterations, salt=SALT)


def entry(**fields: object) -> str:
    """A [users.ann] table with a good verifier, *fields* replacing or adding lines."""
    good = verifier()
    lines = {
        "home": '"/srv/ann"',
        "salt": f'"{good.salt.hex()}"',
        "iterations": str(good.iterations),
        "stored_key": f'"{good.stored_key.hex()}"',
        "server_key": f'"{good.server_key.hex()}"',
    }
    for key, value in fields.items():
        if value is None:
            del lines[key]
        else:
            lines[key] = str(value)
    return "[users.ann]\n" + "".join(f"{key} = {value}\n" for key, value in lines.items())


def refused(path: Path, text: str) -> str:
    path.write_text(text)
    with pytest.raises(AccountsError) as raised:
        load_users(path)
    return str(raised.value)


# ------------------------------------------------------------------ reading the file


def test_a_missing_users_file_has_no_users(tmp_path):
    assert load_users(tmp_path / "absent.toml") == {}


def test_an_entry_read_back(tmp_path):
    users = tmp_path / "users.toml"
    users.write_text(entry(quota=0, transfer_only="true"))
    assert load_users(users) == {
        "ann": Account("ann", "/srv/ann", quota=0, transfer_only=True, verifier=verifier())
    }
    users.write_text(entry())
    assert load_users(users) == {"ann": Account("ann", "/srv/ann", verifier=verifier())}
    users.write_text(entry(iterations=1))
    assert load_users(users)["ann"].verifier == scram.Verifier(
        SALT, 1, verifier().stored_key, verifier().server_key
    )
    users.write_text("")
    assert load_users(users) == {}


def test_a_file_that_cannot_be_read_says_why(tmp_path):
    with pytest.raises(AccountsError) as raised:
        load_users(tmp_path)
    assert (
        str(raised.value) == f"cannot read the users file {tmp_path}: [Errno 21] Is a directory: '{tmp_path}'"
    )
    users = tmp_path / "users.toml"
    users.write_bytes(b"[users.\xff]\n")
    with pytest.raises(
        AccountsError, match=rf"^cannot read the users file {re.escape(str(users))}: 'utf-8' codec"
    ):
        load_users(users)


def test_a_file_that_is_not_toml_says_where(tmp_path):
    users = tmp_path / "users.toml"
    assert refused(users, "[users\n") == (
        f"the users file {users} is not valid TOML: Expected ']' at the end of a table declaration"
        " (at line 1, column 7)"
    )


def test_users_must_be_a_table(tmp_path):
    users = tmp_path / "users.toml"
    assert refused(users, "users = 5\n") == f"{users}: 'users' must be a table"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[users."a b"]\nhome = "/x"\n', "user 'a b': a name is letters, digits, '.', '_' and '-'"),
        ("[users]\nann = 3\n", "user 'ann' must be a table"),
        (entry(salt=None), "user 'ann': missing or bad field 'salt'"),
        (entry(home=None), "user 'ann': missing or bad field 'home'"),
        (entry(iterations=None), "user 'ann': missing or bad field 'iterations'"),
        (entry(stored_key=None), "user 'ann': missing or bad field 'stored_key'"),
        (entry(server_key=None), "user 'ann': missing or bad field 'server_key'"),
        (
            entry(salt='"xy"'),
            "user 'ann': missing or bad field non-hexadecimal number found in fromhex() arg at position 0",
        ),
        (
            entry(iterations='"many"'),
            "user 'ann': missing or bad field invalid literal for int() with base 10: 'many'",
        ),
        (entry(salt=5), "user 'ann': missing or bad field fromhex() argument must be str, not int"),
        (entry(home='"relative"'), "user 'ann': home must be an absolute path"),
        (entry(home=5), "user 'ann': home must be an absolute path"),
        (entry(quota=-1), "user 'ann': quota must be a number of bytes"),
        (entry(quota="true"), "user 'ann': quota must be a number of bytes"),
        (entry(quota='"5"'), "user 'ann': quota must be a number of bytes"),
        (entry(quota=1.5), "user 'ann': quota must be a number of bytes"),
        (entry(stored_key='"00"'), "user 'ann': a broken verifier"),
        (entry(server_key='"' + "00" * 33 + '"'), "user 'ann': a broken verifier"),
        (entry(iterations=0), "user 'ann': a broken verifier"),
    ],
)
def test_a_wrong_entry_says_what_is_wrong(tmp_path, text, reason):
    users = tmp_path / "users.toml"
    assert refused(users, text) == f"{users}: {reason}"


# ------------------------------------------------------------------ writing it


def test_the_file_written(tmp_path):
    users = tmp_path / "users.toml"
    save_users(
        users,
        {
            "zed": Account("zed", '/srv/"zed" é', None, False, verifier("z")),
            "ann": Account("ann", "/srv/ann", 1000, True, verifier("a", ROUNDS + 1)),
        },
    )
    a, z = verifier("a", ROUNDS + 1), verifier("z")
    assert users.read_text(encoding="utf-8") == (
        "# rcmd users file, written by rcmd-server adduser/passwd. It holds no passwords,\n"
        "# only SCRAM-SHA-256 verifiers (docs/PROTOCOL.md 4c); keep it mode 600 all the same.\n"
        "\n"
        "[users.ann]\n"
        'home = "/srv/ann"\n'
        "quota = 1000\n"
        "transfer_only = true\n"
        f'salt = "{SALT.hex()}"\n'
        f"iterations = {ROUNDS + 1}\n"
        f'stored_key = "{a.stored_key.hex()}"\n'
        f'server_key = "{a.server_key.hex()}"\n'
        "\n"
        "[users.zed]\n"
        'home = "/srv/\\"zed\\" é"\n'
        "transfer_only = false\n"
        f'salt = "{SALT.hex()}"\n'
        f"iterations = {ROUNDS}\n"
        f'stored_key = "{z.stored_key.hex()}"\n'
        f'server_key = "{z.server_key.hex()}"\n'
    )
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert load_users(users)["zed"].home == '/srv/"zed" é'
    assert sorted(os.listdir(tmp_path)) == ["users.toml"]


def test_the_file_is_written_beside_and_renamed_into_place(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    replaced: list[tuple[str, Path]] = []
    real = os.replace

    def noted(source: str, target: Path) -> None:
        replaced.append((source, target))
        real(source, target)

    monkeypatch.setattr(os, "replace", noted)
    save_users("users.toml", {"ann": Account("ann", "/a", verifier=verifier())})
    ((temporary, target),) = replaced
    assert os.path.dirname(temporary) == str(tmp_path)
    assert os.path.basename(temporary).startswith(".users.toml.")
    assert target == Path("users.toml")
    assert load_users(tmp_path / "users.toml")["ann"].home == "/a"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    users = tmp_path / "users.toml"
    save_users(users, {"ann": Account("ann", "/a", verifier=verifier())})
    before = users.read_text()

    def failing(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError, match="No space left"):
        save_users(users, {"bob": Account("bob", "/b", verifier=verifier())})
    assert users.read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["users.toml"]


# ------------------------------------------------------------------ adduser and passwd


def test_add_user_makes_the_home_and_a_verifier_of_the_password(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    users = tmp_path / "users.toml"
    account = add_user(
        users, "a" * 64, "pass word", home="homes/a", quota=7, transfer_only=True, iterations=ROUNDS
    )
    assert account.home == str(tmp_path / "homes" / "a")
    assert stat.S_IMODE(os.stat(account.home).st_mode) == 0o700
    assert (account.name, account.quota, account.transfer_only) == ("a" * 64, 7, True)
    assert account.verifier is not None
    assert account.verifier.iterations == ROUNDS
    salted = scram.salted_password("pass word", account.verifier.salt, ROUNDS)
    assert scram.server_key(salted) == account.verifier.server_key
    assert load_users(users) == {"a" * 64: account}
    other = add_user(users, "b", "x", home="homes/a")  # an existing home is fine
    assert other.verifier is not None
    assert other.verifier.iterations == scram.DEFAULT_ITERATIONS
    assert (other.quota, other.transfer_only) == (None, False)


@pytest.mark.parametrize(
    ("name", "password", "iterations", "reason"),
    [
        (
            "a" * 65,
            "x",
            ROUNDS,
            f"{'a' * 65!r}: a user name is letters, digits, '.', '_' and '-' (at most 64)",
        ),
        ("-a", "x", ROUNDS, "'-a': a user name is letters, digits, '.', '_' and '-' (at most 64)"),
        ("ann", "", ROUNDS, "an empty password"),
        ("ann", "a\nb", ROUNDS, "a password cannot hold a line break"),
        ("ann", "a\rb", ROUNDS, "a password cannot hold a line break"),
        ("ann", "x", ROUNDS - 1, f"at least {ROUNDS} iterations (RFC 7677)"),
        ("old", "x", ROUNDS, "user 'old' exists already (rcmd-server passwd changes a password)"),
    ],
)
def test_add_user_refuses(tmp_path, name, password, iterations, reason):
    users = tmp_path / "users.toml"
    add_user(users, "old", "x", home=str(tmp_path / "old"), iterations=ROUNDS)
    before = users.read_text()
    with pytest.raises(AccountsError) as raised:
        add_user(users, name, password, home=str(tmp_path / "new"), iterations=iterations)
    assert str(raised.value) == reason
    assert users.read_text() == before
    assert not (tmp_path / "new").exists()


def test_set_password_keeps_the_rounds_and_the_rest(tmp_path):
    users = tmp_path / "users.toml"
    add_user(users, "ann", "old", home=str(tmp_path / "ann"), quota=3, iterations=ROUNDS + 1)
    add_user(users, "bob", "bob's", home=str(tmp_path / "bob"), iterations=ROUNDS)
    bob = load_users(users)["bob"]
    set_password(users, "ann", "new")
    ann = load_users(users)["ann"]
    assert ann.verifier is not None
    assert ann.verifier.iterations == ROUNDS + 1
    salted = scram.salted_password("new", ann.verifier.salt, ROUNDS + 1)
    assert scram.server_key(salted) == ann.verifier.server_key
    assert (ann.home, ann.quota) == (str(tmp_path / "ann"), 3)
    assert load_users(users)["bob"] == bob
    set_password(users, "ann", "newer", iterations=ROUNDS + 2)
    ann = load_users(users)["ann"]
    assert ann.verifier is not None
    assert ann.verifier.iterations == ROUNDS + 2


def test_set_password_refuses(tmp_path):
    users = tmp_path / "users.toml"
    add_user(users, "ann", "old", home=str(tmp_path / "ann"), iterations=ROUNDS)
    with pytest.raises(AccountsError, match=rf"^no user 'bob' in {re.escape(str(users))}$"):
        set_password(users, "bob", "x")
    with pytest.raises(AccountsError, match=r"^an empty password$"):
        set_password(users, "ann", "")
    with pytest.raises(AccountsError, match=r"^a password cannot hold a line break$"):
        set_password(users, "ann", "a\nb")


# ------------------------------------------------------------------ logging in


@pytest.fixture
def users(tmp_path: Path) -> dict[str, Account]:
    path = tmp_path / "users.toml"
    add_user(path, "ann", "ann's password", home=str(tmp_path / "ann"), iterations=ROUNDS)
    add_user(path, "bob", "bob's password", home=str(tmp_path / "bob"), iterations=ROUNDS, transfer_only=True)
    return load_users(path)


def quick_throttle(server: BackgroundServer, base: float = 0.01) -> FailureThrottle:
    """The server's throttle, with failures locking for *base* seconds (0.25 s by default)."""
    throttle = FailureThrottle(base=base)
    server._servers[0].throttle = throttle
    return throttle


class Login:
    """A SCRAM login over a Peer, step by step."""

    def __init__(
        self, server: BackgroundServer, user: str | None, nonce: bytes | None = bytes(range(32))
    ) -> None:
        self.peer = Peer(server.address, hello=False)
        assert isinstance(self.peer.hello, Hello)
        assert self.peer.hello.auth == "scram-sha-256"
        assert self.peer.hello.nonce is not None
        self.server_nonce = bytes.fromhex(self.peer.hello.nonce)
        self.user, self.client_nonce = user, nonce
        self.peer.send(Hello(user=user, nonce=nonce.hex() if nonce is not None else None))

    def challenge(self) -> AuthChallenge:
        challenge = self.peer.receive()
        assert isinstance(challenge, AuthChallenge), challenge
        self.salt, self.iterations = bytes.fromhex(challenge.salt), challenge.iterations
        return challenge

    def prove(self, password: str) -> bytes:
        """Send the proof of *password*; the auth message it signed."""
        assert self.user is not None
        assert self.client_nonce is not None
        message = scram.auth_message(
            self.user, self.server_nonce, self.client_nonce, self.salt, self.iterations
        )
        salted = scram.salted_password(password, self.salt, self.iterations)
        self.peer.send(AuthProof(scram.client_proof(salted, message).hex()))
        return message

    def close(self) -> None:
        self.peer.close()


@pytest.fixture
def logins():
    opened: list[Login] = []

    def login(server: BackgroundServer, user: str | None, **options: object) -> Login:
        opened.append(Login(server, user, **options))  # type: ignore[arg-type]
        return opened[-1]

    yield login
    for each in opened:
        each.close()


def test_a_login_proves_both_sides_and_starts_in_the_home(start, users, logins, server_log):
    server = start(users=users)
    login = logins(server, "ann")
    ann = users["ann"]
    assert ann.verifier is not None
    assert login.challenge() == AuthChallenge(ann.verifier.salt.hex(), ROUNDS)
    message = login.prove("ann's password")
    assert login.peer.receive() == AuthOk(
        scram.server_signature(ann.verifier.server_key, message).hex(), cwd=ann.home, transfer_only=None
    )
    port = login.peer.sock.getsockname()[1]
    server_log.wait_for(rf"^127\.0\.0\.1:{port}: logged in as ann$")
    login.peer.send(Ping())
    assert login.peer.receive() == Pong()


def test_a_transfer_only_user_is_shown_the_jails_root(start, users, logins):
    server = start(users=users)
    login = logins(server, "bob")
    login.challenge()
    message = login.prove("bob's password")
    bob = users["bob"]
    assert bob.verifier is not None
    assert login.peer.receive() == AuthOk(
        scram.server_signature(bob.verifier.server_key, message).hex(), cwd="/", transfer_only=True
    )


def test_a_wrong_password_fails_after_the_delay(start, users, logins, server_log):
    server = start(users=users)
    throttle = quick_throttle(server)
    login = logins(server, "ann")
    login.challenge()
    login.prove("not ann's password")
    assert login.peer.rest() == [Error("authentication failed")]
    port = login.peer.sock.getsockname()[1]
    server_log.wait_for(rf"^127\.0\.0\.1:{port}: login as 'ann' failed$")
    assert throttle._failures["127.0.0.1"][0] == 1


def test_an_unknown_user_is_challenged_as_a_known_one_and_fails_at_the_proof(
    start, users, logins, server_log
):
    server = start(users=users)
    quick_throttle(server)
    first = logins(server, "nobody").challenge()
    again = logins(server, "nobody").challenge()
    other = logins(server, "someone").challenge()
    assert (len(bytes.fromhex(first.salt)), first.iterations) == (scram.SALT_SIZE, scram.DEFAULT_ITERATIONS)
    assert again == first  # the same decoy each time: no way to tell it from a real salt
    assert other.salt != first.salt
    login = logins(server, "x" * 100)
    login.challenge()
    login.prove("anything")
    assert login.peer.rest() == [Error("authentication failed")]
    server_log.wait_for(rf"^127\.0\.0\.1:\d+: login as '{'x' * 64}' failed$")


@pytest.mark.parametrize(
    ("user", "nonce"), [(None, bytes(32)), ("", bytes(32)), ("ann", None), ("ann", bytes(31))], ids=repr
)
def test_a_hello_without_a_user_or_a_nonce_fails(start, users, logins, user, nonce):
    server = start(users=users)
    quick_throttle(server)
    login = logins(server, user, nonce=nonce)
    assert login.peer.rest() == [Error("authentication failed (this server takes a user name and password)")]


def test_the_slow_answer_to_a_failure_is_not_cut_by_the_handshake_timeout(start, users, logins):
    """The failure's delay outlasts the handshake's deadline: the client still hears why."""
    server = start(users=users, handshake_timeout=0.2)
    quick_throttle(server, base=0.6)
    login = logins(server, "ann")
    login.challenge()
    login.prove("wrong")
    assert login.peer.rest() == [Error("authentication failed")]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_a_proof_waits_while_its_address_is_locked_then_is_checked(start, users, logins, server_log, host):
    """A proof from an address locked by a failure on another connection is checked once
    the lock is over: guesses from one address take turns, however many connections (from
    one IPv6 /64 too)."""
    try:
        server = start(users=users, host=host)
    except OSError as exc:
        pytest.skip(f"cannot listen on {host}: {exc}")
    throttle = quick_throttle(server, base=0.5)
    failing, waiting = logins(server, "ann"), logins(server, "ann")
    failing.challenge()
    waiting.challenge()
    failing.prove("wrong")
    port = failing.peer.sock.getsockname()[1]
    server_log.wait_for(rf"^{re.escape(host)}:{port}: login as 'ann' failed$")
    deadline = time.monotonic() + 10
    while not throttle._failures and time.monotonic() < deadline:
        time.sleep(0.001)  # a condition, checked: the server's thread sets the lock right after that line
    (key,) = throttle._failures
    assert key == throttle_key(host)
    locked_until = throttle._failures[key][2]
    waiting.prove("ann's password")
    reply = waiting.peer.receive()
    assert isinstance(reply, AuthOk)
    assert server._loop.time() >= locked_until
    assert failing.peer.rest() == [Error("authentication failed")]


def test_a_proof_still_waiting_for_the_lock_at_the_handshake_deadline_is_not_checked(
    start, users, logins, server_log
):
    """The handshake deadline runs while a proof waits for its address's lock: when it
    expires, the client is told so, and the proof is never checked (no failure is counted)."""
    server = start(users=users, handshake_timeout=0.5)
    throttle = quick_throttle(server)
    throttle._failures["127.0.0.1"] = (1, 0.0, server._loop.time() + 60)  # locked for a minute
    login = logins(server, "ann")
    login.challenge()
    login.prove("ann's password")
    assert login.peer.rest() == [Error("no handshake within 0.5s")]
    port = login.peer.sock.getsockname()[1]
    server_log.wait_for(rf"^127\.0\.0\.1:{port} disconnected$")
    assert not server_log.has(rf"^127\.0\.0\.1:{port}: (logged in|login as)")
    assert throttle._failures["127.0.0.1"][0] == 1
