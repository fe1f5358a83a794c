"""Many servers in one background thread, for fan-out tests and benchmarks on loopback.

    with ServerFarm(200, encoding="utf-8") as farm:
        rcmd.Group(farm.hosts).run("hostname")

One event loop serves them all: 200 servers cost 200 listening sockets, not 200 threads or
processes, so a 2-core machine can stand in for a fleet. Each is a full :class:`Server`
(its own port, limits and command slots); commands are real subprocesses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .config import ServerConfig
from .lifecycle import ServerThread

__all__ = ["ServerFarm"]


class ServerFarm(ServerThread):
    """*count* servers on 127.0.0.1, each on a port of its own (*options*: ServerConfig fields;
    *per_server(index)* may add fields for one server, e.g. its own ``cwd``).

    ``addresses`` lists their (host, port), ``hosts`` the same as ``"127.0.0.1:PORT"``
    strings, once started (``with``, or ``start()``). Leaving the block closes them all.
    """

    _thread_name = "rcmd-server-farm"

    def __init__(
        self, count: int, *, per_server: Callable[[int], dict[str, Any]] | None = None, **options: Any
    ) -> None:
        super().__init__(
            [
                ServerConfig(
                    **{"host": "127.0.0.1", "port": 0, **options, **(per_server(i) if per_server else {})}
                )
                for i in range(count)
            ]
        )

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return list(self._addresses)

    @property
    def hosts(self) -> list[str]:
        return [f"{host}:{port}" for host, port in self.addresses]
