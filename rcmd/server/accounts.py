"""User accounts: the users file, its SCRAM verifiers, and the server's side of a login.

The users file is TOML (``rcmd-server --users FILE``), written by ``rcmd-server adduser`` and
``passwd``, one table per user::

    [users.ann]
    home = "/srv/rcmd/ann"
    quota = 1073741824          # bytes; absent: no quota
    transfer_only = true        # may not run commands; confined to home (a jail)
    salt = "9f2c..."            # hex
    iterations = 600000
    stored_key = "4d1a..."      # hex: SHA-256(ClientKey)
    server_key = "b3e0..."      # hex: HMAC(SaltedPassword, "Server Key")

It holds no password and nothing that lets its reader log in (rcmd.scram); it is still kept
mode 600, since its verifiers allow an offline guess at weak passwords.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import scram
from ..auth import NONCE_SIZE, decode_hex, throttle_key
from ..messages import AuthChallenge, AuthOk, AuthProof, Hello

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

if TYPE_CHECKING:
    from .session import PrefixedSession

log = logging.getLogger("rcmd.server")

#: User names: letters, digits, ``.``, ``_`` and ``-`` (a bare TOML key, a safe log word).
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class AccountsError(ValueError):
    """The users file cannot be read or written, or an entry in it is wrong."""


@dataclass(frozen=True)
class Account:
    """One user: where they start (and, if *transfer_only*, the jail they cannot leave),
    their quota in bytes (None: none), and their SCRAM verifier."""

    name: str
    home: str
    quota: int | None = None
    transfer_only: bool = False
    verifier: scram.Verifier | None = None


def load_users(path: str | os.PathLike[str]) -> dict[str, Account]:
    """The accounts in the users file *path*. Raises AccountsError saying what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise AccountsError(f"cannot read the users file {path}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AccountsError(f"the users file {path} is not valid TOML: {exc}") from None
    users = data.get("users", {})
    if not isinstance(users, dict):
        raise AccountsError(f"{path}: 'users' must be a table")
    return {name: _account(path, name, entry) for name, entry in users.items()}


def _account(path: str | os.PathLike[str], name: str, entry: Any) -> Account:
    where = f"{path}: user {name!r}"
    if not USER_NAME.fullmatch(name):
        raise AccountsError(f"{where}: a name is letters, digits, '.', '_' and '-'")
    if not isinstance(entry, dict):
        raise AccountsError(f"{where} must be a table")
    try:
        home = entry["home"]
        verifier = scram.Verifier(
            salt=bytes.fromhex(entry["salt"]),
            iterations=int(entry["iterations"]),
            stored_key=bytes.fromhex(entry["stored_key"]),
            server_key=bytes.fromhex(entry["server_key"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AccountsError(f"{where}: missing or bad field {exc}") from None
    quota = entry.get("quota")
    if not isinstance(home, str) or not os.path.isabs(home):
        raise AccountsError(f"{where}: home must be an absolute path")
    if quota is not None and (not isinstance(quota, int) or isinstance(quota, bool) or quota < 0):
        raise AccountsError(f"{where}: quota must be a number of bytes")
    if len(verifier.stored_key) != 32 or len(verifier.server_key) != 32 or verifier.iterations < 1:
        raise AccountsError(f"{where}: a broken verifier")
    return Account(name, home, quota, bool(entry.get("transfer_only", False)), verifier)


def save_users(path: str | os.PathLike[str], accounts: dict[str, Account]) -> None:
    """Write *accounts* to *path*: a temporary file beside it, mode 600, renamed into place."""
    lines = [
        "# rcmd users file, written by rcmd-server adduser/passwd. It holds no passwords,",
        "# only SCRAM-SHA-256 verifiers (docs/PROTOCOL.md 4c); keep it mode 600 all the same.",
    ]
    for account in sorted(accounts.values(), key=lambda a: a.name):
        verifier = account.verifier
        assert verifier is not None
        lines += ["", f"[users.{account.name}]", f"home = {json.dumps(account.home, ensure_ascii=False)}"]
        if account.quota is not None:
            lines.append(f"quota = {account.quota}")
        lines += [
            f"transfer_only = {'true' if account.transfer_only else 'false'}",
            f'salt = "{verifier.salt.hex()}"',
            f"iterations = {verifier.iterations}",
            f'stored_key = "{verifier.stored_key.hex()}"',
            f'server_key = "{verifier.server_key.hex()}"',
        ]
    target = Path(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write("\n".join(lines) + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)  # mkstemp made it 600
    except BaseException:
        os.unlink(temporary)
        raise


def add_user(
    path: str | os.PathLike[str],
    name: str,
    password: str,
    *,
    home: str,
    quota: int | None = None,
    transfer_only: bool = False,
    iterations: int = scram.DEFAULT_ITERATIONS,
) -> Account:
    """Add the user *name* to the users file (creating the file and the home directory)."""
    if not USER_NAME.fullmatch(name):
        raise AccountsError(f"{name!r}: a user name is letters, digits, '.', '_' and '-' (at most 64)")
    _check_password(password)
    accounts = load_users(path)
    if name in accounts:
        raise AccountsError(f"user {name!r} exists already (rcmd-server passwd changes a password)")
    if iterations < scram.MIN_ITERATIONS:
        raise AccountsError(f"at least {scram.MIN_ITERATIONS} iterations (RFC 7677)")
    home = os.path.abspath(home)
    os.makedirs(home, mode=0o700, exist_ok=True)
    account = Account(name, home, quota, transfer_only, scram.make_verifier(password, iterations=iterations))
    accounts[name] = account
    save_users(path, accounts)
    return account


def set_password(
    path: str | os.PathLike[str], name: str, password: str, *, iterations: int | None = None
) -> None:
    """Give *name* a new password (a new salt and verifier)."""
    _check_password(password)
    accounts = load_users(path)
    if name not in accounts:
        raise AccountsError(f"no user {name!r} in {path}")
    old = accounts[name]
    rounds = iterations or (old.verifier.iterations if old.verifier else scram.DEFAULT_ITERATIONS)
    accounts[name] = replace(old, verifier=scram.make_verifier(password, iterations=rounds))
    save_users(path, accounts)


def _check_password(password: str) -> None:
    if not password:
        raise AccountsError("an empty password")
    if "\n" in password or "\r" in password:
        raise AccountsError("a password cannot hold a line break")


class ScramLogin:
    """The server's side of one SCRAM login (docs/PROTOCOL.md 4c), on one session."""

    #: An unknown user gets a challenge as a known one would (salt from this key and the
    #: name), and fails only at the proof: the server does not tell who has an account.
    _decoy_key = os.urandom(32)

    def __init__(self, session: PrefixedSession, accounts: dict[str, Account], server_nonce: bytes) -> None:
        self.session = session
        self.accounts = accounts
        self.server_nonce = server_nonce
        self._user: str | None = None
        self._client_nonce: bytes | None = None
        self._salt = b""
        self._iterations = 0

    async def hello(self, hello: Hello) -> None:
        """The client named its user: send that user's salt and iteration count."""
        client_nonce = decode_hex(hello.nonce, NONCE_SIZE)
        if client_nonce is None or not hello.user:
            await self._failed("authentication failed (this server takes a user name and password)")
            return
        self._user, self._client_nonce = hello.user, client_nonce
        account = self.accounts.get(hello.user)
        if account is not None and account.verifier is not None:
            self._salt, self._iterations = account.verifier.salt, account.verifier.iterations
        else:
            self._salt = hmac.new(self._decoy_key, hello.user.encode(), hashlib.sha256).digest()[
                : scram.SALT_SIZE
            ]
            self._iterations = scram.DEFAULT_ITERATIONS
        await self.session.send(AuthChallenge(self._salt.hex(), self._iterations))

    async def proof(self, proof: AuthProof) -> Account | None:
        """Check the client's proof; AUTH_OK with ours and the account, or fail slowly.

        As for the shared secret, no proof is checked while the client's address is locked
        by an earlier failure (rcmd.auth.FailureThrottle): guesses take turns per address.
        """
        assert self._user is not None
        assert self._client_nonce is not None
        session = self.session
        throttle, loop = session.server.throttle, asyncio.get_running_loop()
        address = throttle_key(session.peer.rsplit(":", 1)[0])
        while (wait := throttle.wait(address, loop.time())) > 0:
            if not await session._sleep_unless_ended(wait):
                return None
        # From here to failed() nothing awaits: the check and its record are one step.
        account = self.accounts.get(self._user)
        message = scram.auth_message(
            self._user, self.server_nonce, self._client_nonce, self._salt, self._iterations
        )
        received = decode_hex(proof.proof, 32)
        if (
            account is None
            or account.verifier is None
            or received is None
            or not scram.verify_client_proof(account.verifier, message, received)
        ):
            log.warning("%s: login as %r failed", self.session.peer, self._user[:64])
            await self._failed("authentication failed")
            return None
        log.info("%s: logged in as %s", session.peer, account.name)
        signature = scram.server_signature(account.verifier.server_key, message)
        shown_cwd = "/" if account.transfer_only else account.home
        await session.send(
            AuthOk(signature.hex(), cwd=shown_cwd, transfer_only=account.transfer_only or None)
        )
        return account

    async def _failed(self, reason: str) -> None:
        session = self.session
        address = throttle_key(session.peer.rsplit(":", 1)[0])
        delay = session.server.throttle.failed(address, asyncio.get_running_loop().time())
        session._arm_timer(None, "")
        await session._sleep_unless_ended(delay)  # repeated failures from one address get slower
        await session._fail(reason)
