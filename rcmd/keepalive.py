"""Keeping an idle prompt's connection alive, and noticing when it died anyway.

While the user thinks at the prompt, a thread sends PING (PROTOCOL.md §4b) well within the
server's idle timeout, as ssh's ServerAliveInterval does. The client is not thread-safe, so
the thread and the prompt take turns with :attr:`KeepAlive.lock`: the prompt holds it while
a command runs. A failed ping is kept in :attr:`failure` for the prompt to act on.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .errors import RcmdError

if TYPE_CHECKING:
    from .client import Client

#: Ping at most this often, and at least this often (middleboxes forget idle flows).
MIN_INTERVAL = 0.2
MAX_INTERVAL = 60.0


def ping_interval(idle_timeout: float | None) -> float:
    """A third of the server's idle timeout (so one lost ping is not fatal), within bounds."""
    if not idle_timeout:
        return MAX_INTERVAL
    return max(MIN_INTERVAL, min(MAX_INTERVAL, idle_timeout / 3))


class KeepAlive:
    """Pings the watched client every *interval* seconds until :meth:`stop`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failure: BaseException | None = None
        self._client: Client | None = None
        self._interval = MAX_INTERVAL
        self._stopped = threading.Event()
        self._changed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rcmd-keepalive", daemon=True)
        self._thread.start()

    def watch(self, client: Client | None) -> None:
        """Keep *client* alive from now on (call with the lock held); None: nothing."""
        self._client = client
        self.failure = None
        if client is not None:
            self._interval = ping_interval(client.server_hello.idle_timeout)
        self._changed.set()

    def stop(self) -> None:
        self._stopped.set()
        self._changed.set()
        self._thread.join(MAX_INTERVAL)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._changed.clear()
            if self._changed.wait(self._interval):
                continue  # a new client, or stop: start the interval again
            with self.lock:
                client = self._client
                if client is None or self.failure is not None or not client.supports_ping:
                    continue
                try:
                    client.ping(timeout=max(5.0, self._interval))
                except (RcmdError, OSError, RuntimeError) as exc:
                    self.failure = exc  # the prompt reconnects before the next command
