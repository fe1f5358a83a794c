"""Running a server: until a signal (rcmd-server), or in a background thread (scripts, tests)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ..process import tracker
from .config import ServerConfig
from .listener import Server

log = logging.getLogger("rcmd.server")

_Thread = TypeVar("_Thread", bound="ServerThread")


async def serve(config: ServerConfig, *, on_ready: Callable[[str, int], None] | None = None) -> None:
    """Run a server until SIGINT or SIGTERM, then close it cleanly.

    *on_ready* is called with the bound (host, port) once it listens.
    """
    server = Server(config)
    # This process is the server's alone: it may become the subreaper of its commands, and
    # put them in cgroups of its own (--cgroups).
    log.info("%s", tracker.start(subreaper=True, cgroups=config.cgroups))
    await server.start()
    # What is loaded by now lives as long as the process: out of the cyclic GC's sight, so
    # that its full collections walk only what connections make (they walked some 30,000
    # objects, 6-8 ms each, during a flood of connections).
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            pass
    if on_ready is not None:
        on_ready(*server.address)
    await stop.wait()
    log.info("signal received: stopping")
    await server.close()
    tracker.close()  # what commands left outside their groups, and the watchdog


class ServerThread:
    """Servers on one event loop in a background thread: the part BackgroundServer (one
    server) and ServerFarm (many) share. ``start()`` returns once every server listens and
    raises what listening raised (the servers already started are closed again); ``close()``
    kills what runs, closes them all and joins the thread."""

    _thread_name = "rcmd-server"

    def __init__(self, configs: list[ServerConfig]) -> None:
        self.configs = configs
        self._loop = asyncio.new_event_loop()
        self._servers: list[Server] = []
        self._addresses: list[tuple[str, int]] = []  # bound, kept after close for messages
        self._thread: threading.Thread | None = None

    async def _start_all(self) -> None:
        for config in self.configs:
            server = Server(config)
            await server.start()
            self._servers.append(server)
            self._addresses.append(server.address)

    def start(self: _Thread) -> _Thread:
        """Start listening in a new thread; return self once every server is bound."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._start_all())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
            finally:
                ready.set()
            if not failure:
                self._loop.run_forever()
            for server in reversed(self._servers):
                self._loop.run_until_complete(server.close())
            tracker.sweep()  # now, not after a delay on a loop about to close
            self._loop.close()

        self._thread = threading.Thread(target=main, name=self._thread_name, daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            raise failure[0]
        return self

    def close(self) -> None:
        """Stop the servers (running commands are killed) and join the thread."""
        if self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()

    def __enter__(self: _Thread) -> _Thread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class BackgroundServer(ServerThread):
    """A server on its own event loop in a background thread, for demos, tests and scripts.

    ``with BackgroundServer(framing="naive", port=0) as server:`` then ``server.address``.
    Leaving the block closes it: running commands are killed, the thread joined.
    Constructing one starts nothing: ``address`` is ``("", 0)`` until ``start()`` (or
    ``with``). *options* are :class:`ServerConfig` fields; ``port`` defaults to 0 here.
    """

    def __init__(self, config: ServerConfig | None = None, **options: Any) -> None:
        self.config = config if config is not None else ServerConfig(**{"port": 0, **options})
        super().__init__([self.config])

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port) once started; ``("", 0)`` before."""
        return self._addresses[0] if self._addresses else ("", 0)
