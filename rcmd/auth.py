"""Mutual HMAC-SHA256 challenge-response over a shared secret. Sans-I/O: bytes in, bytes out.

The handshake, inside the HELLO messages (docs/PROTOCOL.md, "Authentication"):

1. The server's HELLO carries ``auth: "hmac-sha256"`` and a fresh random nonce Ns.
2. The client answers with its own fresh nonce Nc and proof
   ``HMAC(secret, CLIENT_LABEL + Ns + Nc)``. Only someone with the secret can make it,
   and Ns makes it good for this connection alone (a recorded one cannot be replayed).
3. The server checks it in constant time, then proves itself in AUTH_OK with
   ``HMAC(secret, SERVER_LABEL + Ns + Nc)``. The client's fresh Nc means a fake server
   cannot replay a proof it saw elsewhere, and the distinct labels mean it cannot reflect the
   client's own proof back. The client sends no command before this proof checks out.

This authenticates the two ends; it does not encrypt or protect what follows from someone
on the path. Use TLS for that (README, threat model). The multiprocessing.connection
handshake is the model; the tutorials' hmac.new(key, msg) without a digest was MD5.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from collections.abc import Mapping
from pathlib import Path

SCHEME = "hmac-sha256"
NONCE_SIZE = 32
PROOF_SIZE = 32  # an HMAC-SHA256 digest
#: Secrets shorter than this are refused: a captured handshake lets anyone try guesses
#: offline, so the secret must be random, not a word. 16 bytes = 128 bits if random.
MIN_SECRET_SIZE = 16
CLIENT_LABEL = b"rcmd-auth-v1 client proof\0"
SERVER_LABEL = b"rcmd-auth-v1 server proof\0"
SECRET_ENV = "RCMD_SECRET"


class SecretError(ValueError):
    """The secret could not be loaded, or is too weak to use."""


def new_nonce() -> bytes:
    return os.urandom(NONCE_SIZE)


def client_proof(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    return hmac.new(secret, CLIENT_LABEL + server_nonce + client_nonce, hashlib.sha256).digest()


def server_proof(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    return hmac.new(secret, SERVER_LABEL + server_nonce + client_nonce, hashlib.sha256).digest()


def proofs_match(expected: bytes, received: bytes) -> bool:
    """Constant-time comparison, so timing tells an attacker nothing."""
    return hmac.compare_digest(expected, received)


def decode_hex(value: str | None, size: int) -> bytes | None:
    """*value* as bytes if it is exactly *size* bytes of hex, else None."""
    if not isinstance(value, str) or len(value) != 2 * size:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def load_secret(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] = os.environ
) -> bytes | None:
    """The shared secret from *path* (one line; the trailing newline is dropped), else from
    $RCMD_SECRET, else None. Raises SecretError if it is unreadable or shorter than 16 bytes.
    """
    if path is not None:
        file = Path(path)
        try:
            data = file.read_bytes()
            mode = file.stat().st_mode
        except OSError as exc:
            raise SecretError(f"cannot read the secret file {path}: {exc.strerror}") from None
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            # Like ssh with a private key: others must not be able to read it.
            raise SecretError(f"the secret file {path} is readable by others: chmod 600 {path}")
        secret = data.rstrip(b"\r\n")
        where = str(path)
    elif environ.get(SECRET_ENV):
        secret = environ[SECRET_ENV].encode("utf-8")
        where = f"${SECRET_ENV}"
    else:
        return None
    if len(secret) < MIN_SECRET_SIZE:
        raise SecretError(
            f"the secret in {where} is {len(secret)} bytes; use at least {MIN_SECRET_SIZE} random ones, "
            "e.g. python3 -c 'import secrets; print(secrets.token_hex(32))'"
        )
    return secret


class FailureThrottle:
    """Slows down repeated authentication failures from one address.

    ``delay(address)`` after a failure: 0.25 s for the first, doubling each time, at most
    ``max_delay``; an address with no failure for ``forget_after`` seconds starts over.
    ``now`` is passed in, so this stays free of clocks and is testable with numbers.
    """

    def __init__(
        self,
        base: float = 0.25,
        max_delay: float = 8.0,
        forget_after: float = 300.0,
        max_addresses: int = 10_000,
    ) -> None:
        self.base, self.max_delay, self.forget_after = base, max_delay, forget_after
        self.max_addresses = max_addresses
        self._failures: dict[str, tuple[int, float]] = {}

    def failed(self, address: str, now: float) -> float:
        """Record a failure; return how long to wait before answering it."""
        count, last = self._failures.get(address, (0, now))
        if now - last > self.forget_after:
            count = 0
        count += 1
        if len(self._failures) >= self.max_addresses and address not in self._failures:
            self._failures.pop(next(iter(self._failures)))  # bounded: forget the oldest
        self._failures[address] = (count, now)
        return float(min(self.base * 2 ** (count - 1), self.max_delay))

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
