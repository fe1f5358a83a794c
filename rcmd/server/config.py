"""What a server is told: its address, framing, shell, secret, TLS and limits, checked at start."""

from __future__ import annotations

import enum
import ipaddress
import locale
import logging
import ssl
from dataclasses import dataclass, field

from ..decoding import normalize_encoding
from ..framing import DEFAULT_MAX_FRAME_SIZE
from ..process import DEFAULT_SHELL

log = logging.getLogger("rcmd.server")


#: Defaults for the limits, each an option of rcmd-server.
DEFAULT_MAX_CONNECTIONS = 128  # each costs a little memory and a file descriptor
#: Connections not through the handshake yet (TLS, HELLO, proof): they cost memory and cannot be
#: told apart from an attack, so past this many the oldest is closed (OpenSSH's MaxStartups).
DEFAULT_MAX_STARTUPS = 64
DEFAULT_MAX_COMMANDS = 64  # processes at once, server-wide; more wait for a slot
DEFAULT_HANDSHAKE_TIMEOUT = 10.0  # a client that connects and says nothing is dropped
DEFAULT_IDLE_TIMEOUT = 3600.0  # a connection with no command and no traffic for an hour


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

    *secret* turns on authentication (rcmd.auth). *command_timeout* applies to commands
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
    max_commands: int = DEFAULT_MAX_COMMANDS
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    command_timeout: float | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    def __post_init__(self) -> None:
        self.framing = Framing(self.framing)
        self.tls = None
        if self.tls_cert:
            if self.framing is Framing.NAIVE:
                raise ValueError("naive framing has no TLS: it is the tutorial's plain socket")
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                self.tls.load_cert_chain(self.tls_cert, self.tls_key)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"cannot load the TLS certificate and key: {exc}") from None
        self.encoding = normalize_encoding(self.encoding)
        if self.max_connections < 1 or self.max_commands < 1 or self.max_startups < 1:
            raise ValueError("max_connections, max_startups and max_commands must be at least 1")
        if is_loopback(self.host) or self.insecure_no_auth:
            return
        if self.framing is Framing.NAIVE:
            raise InsecureBindError(
                f"refusing to listen on {self.host}: naive framing is a teaching mode with no "
                "protection at all, so it listens on loopback only. Use --host 127.0.0.1, or "
                "--insecure-no-auth if every machine that can reach this address is trusted."
            )
        if self.secret is None:
            raise InsecureBindError(
                f"refusing to listen on {self.host} without authentication: rcmd runs any command "
                "it is sent. Give a shared secret (--secret-file FILE or $RCMD_SECRET) to clients "
                "and server, or use --host 127.0.0.1. (--insecure-no-auth overrides; don't.)"
            )
