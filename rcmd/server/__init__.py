"""The asyncio server: accepts connections and runs each one's commands.

A thin transport around :class:`rcmd.protocol.Connection` (prefixed framing) or the
deliberately broken tutorial loop (naive framing, see :mod:`rcmd.naive`). It owns the
processes it starts: every command runs in its own process group with a cookie in its
environment, and everything it started (the group, and whatever carries the cookie: see
:mod:`rcmd.process`) is killed when the command ends, times out, is cancelled, or its client
goes away.

Modules, one job each: ``config`` (options and their checks), ``listener`` (accepting,
limits, TLS), ``session`` (one connection's protocol driver), ``command`` (one running
command: kill, timeout, output), ``cd`` (the sticky ``cd`` builtin), ``lifecycle``
(``serve()`` until a signal, ``BackgroundServer`` in a thread).
"""

from .config import Framing, InsecureBindError, ServerConfig, is_loopback
from .lifecycle import BackgroundServer, serve
from .listener import Server

__all__ = [
    "BackgroundServer",
    "Framing",
    "InsecureBindError",
    "Server",
    "ServerConfig",
    "is_loopback",
    "serve",
]
