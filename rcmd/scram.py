"""SCRAM-SHA-256 (RFC 5802, RFC 7677) for rcmd's user accounts. Sans-I/O: bytes in, bytes out.

The server stores, per user, a random salt, an iteration count, and two keys derived from
the password: ``StoredKey = H(HMAC(SaltedPassword, "Client Key"))`` and ``ServerKey =
HMAC(SaltedPassword, "Server Key")``, where ``SaltedPassword = PBKDF2-HMAC-SHA256(password,
salt, iterations)``. Neither lets a reader of the users file log in: the client must show
ClientKey, of which the file holds only a hash, and the server proves itself with ServerKey,
which the client derives from the password (docs/PROTOCOL.md, section 4c).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

SCHEME = "scram-sha-256"
#: PBKDF2 rounds for new verifiers. OWASP's 2023 figure for PBKDF2-HMAC-SHA256 is 600,000;
#: each login costs the client that many HMACs (~0.3 s here), the server nothing extra.
DEFAULT_ITERATIONS = 600_000
#: RFC 7677: a client must refuse fewer than 4096 (a fake server could ask for 1 to make
#: a captured proof cheap to brute-force).
MIN_ITERATIONS = 4096
SALT_SIZE = 16
#: Prefixes the AuthMessage: a proof made for rcmd is good for nothing else.
AUTH_LABEL = b"rcmd-scram-v1\0"


class PasswordError(ValueError):
    """The password could not be read, or is unusable."""


@dataclass(frozen=True)
class Verifier:
    """What the server keeps of a password: nothing that lets a reader log in."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    # RFC 7677 runs the password through SASLprep; we take its UTF-8 bytes in NFC as given.
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def client_key(salted: bytes) -> bytes:
    return _hmac(salted, b"Client Key")


def server_key(salted: bytes) -> bytes:
    return _hmac(salted, b"Server Key")


def make_verifier(
    password: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> Verifier:
    """A new verifier for *password*, with a fresh random salt unless one is given."""
    salt = os.urandom(SALT_SIZE) if salt is None else salt
    salted = salted_password(password, salt, iterations)
    return Verifier(salt, iterations, hashlib.sha256(client_key(salted)).digest(), server_key(salted))


def auth_message(user: str, server_nonce: bytes, client_nonce: bytes, salt: bytes, iterations: int) -> bytes:
    """What both proofs sign: label, both nonces (32 bytes each), the salt's length and the
    salt, the iteration count (uint32, big-endian), then the user name in UTF-8."""
    return b"".join(
        (
            AUTH_LABEL,
            server_nonce,
            client_nonce,
            struct.pack("!B", len(salt)),
            salt,
            struct.pack("!I", iterations),
            user.encode("utf-8"),
        )
    )


def client_proof(salted: bytes, message: bytes) -> bytes:
    """ClientKey XOR HMAC(StoredKey, AuthMessage)."""
    key = client_key(salted)
    signature = _hmac(hashlib.sha256(key).digest(), message)
    return bytes(a ^ b for a, b in zip(key, signature, strict=True))


def server_signature(server_key_: bytes, message: bytes) -> bytes:
    return _hmac(server_key_, message)


def verify_client_proof(verifier: Verifier, message: bytes, proof: bytes) -> bool:
    """Whether *proof* shows the ClientKey whose hash is the verifier's StoredKey (constant time)."""
    if len(proof) != len(verifier.stored_key):
        return False
    signature = _hmac(verifier.stored_key, message)
    key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
    return hmac.compare_digest(hashlib.sha256(key).digest(), verifier.stored_key)


def load_password(path: str | os.PathLike[str]) -> str:
    """The password in the file *path* (UTF-8; trailing CR and LF dropped). As for the
    secret file, others must not be able to read it (chmod 600). Raises PasswordError."""
    file = Path(path)
    try:
        data = file.read_bytes()
        mode = file.stat().st_mode
    except OSError as exc:
        raise PasswordError(f"cannot read the password file {path}: {exc.strerror}") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PasswordError(f"the password file {path} is readable by others: chmod 600 {path}")
    try:
        password = data.rstrip(b"\r\n").decode("utf-8")
    except UnicodeDecodeError:
        raise PasswordError(f"the password file {path} is not UTF-8") from None
    if not password:
        raise PasswordError(f"the password file {path} is empty")
    return password
