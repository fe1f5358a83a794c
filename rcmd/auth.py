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

import os
import stat
from collections.abc import Mapping

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


# hmac is imported where it is used: OpenSSL's hashlib is a tenth of a one-shot `rcmd -c`'s
# start-up, which reads $RCMD_SECRET here but needs no proof from a server without a secret.


def client_proof(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    import hmac

    return hmac.digest(secret, CLIENT_LABEL + server_nonce + client_nonce, "sha256")


def server_proof(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    import hmac

    return hmac.digest(secret, SERVER_LABEL + server_nonce + client_nonce, "sha256")


def proofs_match(expected: bytes, received: bytes) -> bool:
    """Constant-time comparison, so timing tells an attacker nothing."""
    import hmac

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
        try:
            with open(path, "rb") as file:  # the mode checked is the mode of the file read
                data = file.read()
                mode = os.fstat(file.fileno()).st_mode
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


def throttle_key(host: str) -> str:
    """What the throttle counts failures by: an IPv4 address, or an IPv6 /64, since one
    machine is usually given a whole /64 and can send from any address in it."""
    import ipaddress  # only a server counts failures: not a cost of every `rcmd -c` (1 ms)

    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class FailureThrottle:
    """Slows authentication guesses from one address to a trickle, for ever.

    After a failure the address is *locked* for a delay: 0.25 s after the first, doubling
    with each further failure, at most ``max_delay``. While it is locked, ``wait()`` says how
    long until it is not, and the server checks no proof from that address, whatever
    connection it comes on: parallel connections queue behind the same lock, so the guess
    rate per address stays under one per delay (one per 8 s once it is reached), and a
    guess cannot be answered early by coming in on a fresh connection.

    A success does not clear the count (someone who knows the secret, or shares the address
    with someone who does, must not reset an attacker's count): failures are forgotten only
    after ``forget_after`` seconds with none. The exponent is capped, so no count overflows.
    At most ``max_addresses`` are remembered; beyond that the one quiet the longest goes.
    ``now`` is passed in, so this stays free of clocks and is testable with numbers.
    """

    #: 2 ** 64 * base is far past any max_delay: a larger exponent changes nothing, and
    #: would overflow a float after 1,024 failures.
    MAX_EXPONENT = 64

    def __init__(
        self,
        base: float = 0.25,
        max_delay: float = 8.0,
        forget_after: float = 300.0,
        max_addresses: int = 10_000,
    ) -> None:
        self.base, self.max_delay, self.forget_after = base, max_delay, forget_after
        self.max_addresses = max_addresses
        #: address -> (failures, time of the last one, locked until); oldest failure first.
        self._failures: dict[str, tuple[int, float, float]] = {}

    def delay(self, failures: int) -> float:
        """How long the *failures*-th failure in a row locks its address."""
        if failures <= 0:
            return 0.0
        return min(self.base * 2.0 ** min(failures - 1, self.MAX_EXPONENT), self.max_delay)

    def wait(self, address: str, now: float) -> float:
        """Seconds until a proof from *address* may be checked; 0.0: now."""
        entry = self._failures.get(address)
        return max(0.0, entry[2] - now) if entry is not None else 0.0

    def failed(self, address: str, now: float) -> float:
        """Record a failure; return how long it locks *address* (and how long to wait
        before answering it)."""
        count, last, _ = self._failures.pop(address, (0, now, now))
        if now - last > self.forget_after:
            count = 0
        count = min(count + 1, self.MAX_EXPONENT + 1)  # the delay stops growing long before
        while len(self._failures) >= self.max_addresses:
            self._failures.pop(next(iter(self._failures)))  # bounded: forget the quietest
        delay = self.delay(count)
        self._failures[address] = (count, now, now + delay)
        return delay
