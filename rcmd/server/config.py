"""What a server is told: its address, framing, shell, secret, TLS and limits, checked at start."""

from __future__ import annotations

import enum
import ipaddress
import locale
import logging
import math
import os
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..decoding import normalize_encoding
from ..framing import DEFAULT_MAX_FRAME_SIZE
from ..process import DEFAULT_SHELL

if TYPE_CHECKING:
    from .accounts import Account

log = logging.getLogger("rcmd.server")


#: Defaults for the limits, each an option of rcmd-server.
DEFAULT_MAX_CONNECTIONS = 128  # each costs a little memory and a file descriptor
#: Connections not through the handshake yet (TLS, HELLO, proof): they cost memory and cannot be
#: told apart from an attack, so past this many the oldest is closed (OpenSSH's MaxStartups).
DEFAULT_MAX_STARTUPS = 64
#: A connection in its handshake is not closed to make room before it is this old: under a
#: flood of connects, each new one would otherwise push out the oldest sooner than an honest
#: client far away can finish its handshake (and the flood would keep the server busy with
#: nothing but accepting and closing). While every one is younger, new ones wait to be accepted.
DEFAULT_STARTUP_GRACE = 1.0
DEFAULT_MAX_COMMANDS = 64  # processes at once, server-wide; more wait for a slot
DEFAULT_HANDSHAKE_TIMEOUT = 10.0  # a client that connects and says nothing is dropped
DEFAULT_IDLE_TIMEOUT = 3600.0  # a connection with no command and no traffic for an hour
#: The smallest --max-frame-size: a client's HELLO with authentication (a 64-digit nonce and
#: a 64-digit proof in JSON, ~190 bytes) must fit, or no client could ever log in.
MIN_FRAME_SIZE = 256
#: The largest: the length prefix is an unsigned 32-bit integer.
MAX_FRAME_SIZE = 2**32 - 1


def tls_handshake_cost(context: ssl.SSLContext, tries: int = 3) -> float:
    """Seconds of CPU the server's side of one TLS handshake with *context* takes, the best
    of *tries*: in memory, with a client that checks nothing. Mostly the signature with the
    certificate's key: RSA 4096 ~6 ms, RSA 2048 ~1.4 ms, ECDSA P-256 ~0.7 ms."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    best = float("inf")
    for _ in range(tries):
        to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
        ours = context.wrap_bio(to_server, to_client, server_side=True)
        client_in, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        theirs = client.wrap_bio(client_in, client_out)
        spent = 0.0
        for _ in range(8):  # a TLS 1.3 handshake takes 2 rounds, 1.2 takes 3
            try:
                theirs.do_handshake()
            except ssl.SSLWantReadError:
                pass
            to_server.write(client_out.read())
            started = time.thread_time()
            try:
                ours.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            spent += time.thread_time() - started
            client_in.write(to_client.read())
            if done:
                break
        best = min(best, spent)
    return best


class Framing(str, enum.Enum):
    PREFIXED = "prefixed"
    NAIVE = "naive"


def is_loopback(host: str) -> bool:
    """True when *host* names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class InsecureBindError(ValueError):
    """Refusing to listen beyond loopback with no authentication."""


@dataclass
class ServerConfig:
    """Everything a server needs to know; ``rcmd-server --help`` describes each option.

    *secret* turns on authentication (rcmd.auth); naive framing, which has no handshake,
    refuses a secret and a TLS certificate (ValueError). *command_timeout* applies to commands
    that give no timeout of their own; None means they may run for ever. A timeout of
    None or 0 turns that limit off.
    """

    host: str = "127.0.0.1"
    port: int = 9000
    framing: Framing = Framing.PREFIXED
    shell: str = DEFAULT_SHELL
    encoding: str = field(default_factory=lambda: locale.getpreferredencoding(False))
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    secret: bytes | None = field(default=None, repr=False)
    insecure_no_auth: bool = False
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_startups: int = DEFAULT_MAX_STARTUPS
    startup_grace: float = DEFAULT_STARTUP_GRACE
    max_commands: int = DEFAULT_MAX_COMMANDS
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    command_timeout: float | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    #: The directory commands start in (each connection's first working directory);
    #: None: the server's own working directory at start.
    cwd: str | None = None
    #: User accounts (rcmd.server.accounts.load_users): log in by name and password
    #: (SCRAM-SHA-256), each user in their home. None: the shared secret, or no login.
    users: dict[str, Account] | None = field(default=None, repr=False)
    #: A cgroup per command where the server may create one (rcmd.cgroup): nothing a command
    #: starts outlives it, a clean environment included. Off by default: each command then
    #: costs one more exec (~0.7 ms) and, after a quiet spell, ~8 ms while the kernel moves
    #: it into its cgroup (an RCU grace period); the cookie, subreaper and watchdog act always.
    cgroups: bool = False

    def __post_init__(self) -> None:
        self._check_limits()
        self.framing = Framing(self.framing)
        if self.cwd is not None:
            if not os.path.isdir(self.cwd):
                raise ValueError(f"the start directory {self.cwd!r} is not a directory")
            self.cwd = os.path.abspath(self.cwd)
        self.tls = None
        if self.users is not None and (self.secret is not None or self.framing is Framing.NAIVE):
            raise ValueError("user accounts (--users) replace the shared secret and need prefixed framing")
        # Naive framing has no handshake: a secret or a certificate would protect nothing while
        # the banner claimed otherwise, so both are refused rather than silently ignored.
        if self.framing is Framing.NAIVE and self.secret is not None:
            raise ValueError(
                "naive framing has no handshake, so a secret would protect nothing: drop the secret "
                "(--secret-file, $RCMD_SECRET) or use --framing prefixed"
            )
        if self.tls_cert:
            if self.framing is Framing.NAIVE:
                raise ValueError("naive framing has no TLS: it is the tutorial's plain socket")
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.minimum_version = ssl.TLSVersion.TLSv1_2
            # A renegotiation (TLS 1.2) would put a signature back on the event loop, where
            # records are handled (rcmd.server.tls): OpenSSL 3 refuses a client's by default;
            # said here for builds against older ones.
            self.tls.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
            try:
                self.tls.load_cert_chain(self.tls_cert, self.tls_key)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"cannot load the TLS certificate and key: {exc}") from None
        self.encoding = normalize_encoding(self.encoding)
        if is_loopback(self.host) or self.insecure_no_auth:
            return
        if self.framing is Framing.NAIVE:
            raise InsecureBindError(
                f"refusing to listen on {self.host}: naive framing is a teaching mode with no "
                "protection at all, so it listens on loopback only. Use --host 127.0.0.1, or "
                "--insecure-no-auth if every machine that can reach this address is trusted."
            )
        if self.secret is None and self.users is None:
            raise InsecureBindError(
                f"refusing to listen on {self.host} without authentication: rcmd runs any command "
                "it is sent. Give a shared secret (--secret-file FILE or $RCMD_SECRET) to clients "
                "and server, or use --host 127.0.0.1. (--insecure-no-auth overrides; don't.)"
            )

    def _check_limits(self) -> None:
        """Reject a value no connection could work with now, not on every connection later."""
        if not MIN_FRAME_SIZE <= self.max_frame_size <= MAX_FRAME_SIZE:
            raise ValueError(
                f"max frame size must be between {MIN_FRAME_SIZE} and {MAX_FRAME_SIZE} bytes, "
                f"not {self.max_frame_size}"
            )
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, not {self.port}")
        for name in ("handshake_timeout", "idle_timeout", "command_timeout"):
            seconds = getattr(self, name)
            if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
                raise ValueError(
                    f"{name.replace('_', ' ')} must be a finite number of seconds >= 0, not {seconds}"
                )
        if self.max_connections < 1:
            raise ValueError(f"max connections must be at least 1, not {self.max_connections}")
        if self.max_commands < 1:
            raise ValueError(f"max commands must be at least 1, not {self.max_commands}")
        if self.max_startups < 1:
            raise ValueError(f"max startups must be at least 1, not {self.max_startups}")
        if not (math.isfinite(self.startup_grace) and self.startup_grace >= 0):
            raise ValueError(
                f"startup grace must be a finite number of seconds >= 0, not {self.startup_grace}"
            )
