"""Many servers in one background thread, for fan-out tests and benchmarks on loopback.

    with ServerFarm(200, encoding="utf-8") as farm:
        rcmd.Group(farm.hosts).run("hostname")

One event loop serves them all: 200 servers cost 200 listening sockets, not 200 threads or
processes, so a 2-core machine can stand in for a fleet. Each is a full :class:`Server`
(its own port, limits and command slots); commands are real subprocesses.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from ..process import tracker
from .config import ServerConfig
from .listener import Server

__all__ = ["ServerFarm"]


class ServerFarm:
    """*count* servers on 127.0.0.1, each on a port of its own (*options*: ServerConfig fields;
    *per_server(index)* may add fields for one server, e.g. its own ``cwd``).

    ``addresses`` lists their (host, port), ``hosts`` the same as ``"127.0.0.1:PORT"``
    strings, once started (``with``, or ``start()``). Leaving the block closes them all.
    """

    def __init__(
        self, count: int, *, per_server: Callable[[int], dict[str, Any]] | None = None, **options: Any
    ) -> None:
        self.configs = [
            ServerConfig(
                **{"host": "127.0.0.1", "port": 0, **options, **(per_server(i) if per_server else {})}
            )
            for i in range(count)
        ]
        self._loop = asyncio.new_event_loop()
        self._servers: list[Server] = []
        self._thread: threading.Thread | None = None
        self.addresses: list[tuple[str, int]] = []

    @property
    def hosts(self) -> list[str]:
        return [f"{host}:{port}" for host, port in self.addresses]

    def start(self) -> ServerFarm:
        """Start every server; return self once all listen. Raises what listening raised."""
        ready = threading.Event()
        failure: list[BaseException] = []

        async def start_all() -> None:
            for config in self.configs:
                server = Server(config)
                await server.start()
                self._servers.append(server)
                self.addresses.append(server.address)

        def main() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(start_all())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
            finally:
                ready.set()
            if not failure:
                self._loop.run_forever()
            for server in reversed(self._servers):
                self._loop.run_until_complete(server.close())
            tracker.sweep()
            self._loop.close()

        self._thread = threading.Thread(target=main, name="rcmd-server-farm", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            raise failure[0]
        return self

    def close(self) -> None:
        """Stop every server (running commands are killed) and join the thread."""
        if self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()

    def __enter__(self) -> ServerFarm:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
