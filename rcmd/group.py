"""One command on many hosts at once: :class:`Group`, over the asyncio client (rcmd.aio).

    results = rcmd.Group("web[01-20]:9000,db1").run("uptime", timeout=10)
    for host, result in results.items():
        print(host, result.stdout_text if isinstance(result, rcmd.CompletedCommand) else result)

Like Fabric's ThreadingGroup and asyncssh with ``asyncio.gather``, but on one thread: each
host is a connection on one event loop, at most *fanout* at a time. A host that is slow or
dead costs its own time, never the others': each host has its own deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass

from .auth import load_secret
from .client import DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT, CompletedCommand
from .hostset import split_port, unfold_all
from .messages import Exit, Stderr, Stdout

__all__ = ["DEFAULT_FANOUT", "KILL_GRACE", "Group", "HostDone", "HostOutput"]

#: Hosts worked on at once (clush's default is 64 too): each costs a socket and a little
#: memory here, and a command on the far side.
DEFAULT_FANOUT = 64
#: After its *timeout* the server kills a command (SIGTERM, 2 s, SIGKILL, then up to 1 s for
#: the pipes): a host gets this long past it to report the kill before it counts as hung.
KILL_GRACE = 5.0


@dataclass(frozen=True, slots=True)
class HostOutput:
    """A chunk of output from one host, as it arrives; *encoding* is that host's."""

    host: str
    event: Stdout | Stderr
    encoding: str


@dataclass(frozen=True, slots=True)
class HostDone:
    """One host finished: its CompletedCommand, or the exception that stopped it (OSError for
    an unreachable host, AuthenticationError, TimeoutError when it overran its deadline...)."""

    host: str
    result: CompletedCommand | Exception


class Group:
    """A set of hosts to run commands on.

    *hosts* is a host set (``"web[01-20]:9000,db1"``, see rcmd.hostset) or an iterable of
    them; a host without ``:PORT`` uses *port*. The other options are
    :func:`rcmd.aio.connect`'s, used for every host; *kill_grace* is how long past a command's
    timeout a host may take to report the kill; *user* and *password* log in to servers with
    user accounts. Raises HostSetError (a ValueError) for
    a host set it cannot read, and SecretError for a bad $RCMD_SECRET.
    """

    def __init__(
        self,
        hosts: str | Iterable[str],
        *,
        port: int = DEFAULT_PORT,
        fanout: int = DEFAULT_FANOUT,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        secret: bytes | str | None = None,
        tls: bool = False,
        tls_ca: str | None = None,
        encoding: str = "auto",
        kill_grace: float = KILL_GRACE,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        if fanout < 1:
            raise ValueError("fanout must be at least 1")
        self.hosts = unfold_all([hosts] if isinstance(hosts, str) else hosts)
        self._addresses = {host: split_port(host, port) for host in self.hosts}
        self.fanout = fanout
        self.connect_timeout = connect_timeout
        self.secret = secret.encode("utf-8") if isinstance(secret, str) else secret
        if self.secret is None and user is None:
            self.secret = load_secret()
        self.user = user
        self.password = password
        self.tls = tls
        self.tls_ca = tls_ca
        self.encoding = encoding
        self.kill_grace = kill_grace

    def deadline(self, timeout: float | None) -> float | None:
        """How long one host may take from its connect to its result, with this command
        *timeout*; None (no limit) when the command has none."""
        if timeout is None:
            return None
        return (self.connect_timeout or 0.0) + timeout + self.kill_grace

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        input: bytes | str | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> dict[str, CompletedCommand | Exception]:
        """Run *command* on every host; return ``{host: CompletedCommand or exception}`` in
        the order of ``hosts``. Blocks (on a new event loop); from async code use
        :meth:`run_async`. *timeout* is each command's, killed by its server; *input* is
        sent to every host's stdin."""
        return asyncio.run(self.run_async(command, timeout=timeout, input=input, cwd=cwd, env=env))

    async def run_async(
        self,
        command: str,
        *,
        timeout: float | None = None,
        input: bytes | str | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> dict[str, CompletedCommand | Exception]:
        """:meth:`run` on the running event loop."""
        results: dict[str, CompletedCommand | Exception] = {}
        async for item in self.stream(command, timeout=timeout, input=input, cwd=cwd, env=env, output=False):
            if isinstance(item, HostDone):
                results[item.host] = item.result
        return {host: results[host] for host in self.hosts}

    async def stream(
        self,
        command: str,
        *,
        timeout: float | None = None,
        input: bytes | str | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        output: bool = True,
    ) -> AsyncIterator[HostOutput | HostDone]:
        """Run *command* on every host; yield each :class:`HostOutput` as it arrives (unless
        *output* is false) and each host's :class:`HostDone` as it finishes, fastest first.

        Leaving the loop early closes every connection still open (their servers kill the
        commands).
        """
        queue: asyncio.Queue[HostOutput | HostDone] = asyncio.Queue()
        slots = asyncio.Semaphore(self.fanout)
        deadline = self.deadline(timeout)

        async def one(host: str) -> None:
            async with slots:
                try:
                    result: CompletedCommand | Exception = await asyncio.wait_for(
                        self._run_one(host, command, timeout, input, cwd, env, queue if output else None),
                        deadline,
                    )
                except asyncio.TimeoutError:
                    result = TimeoutError(f"no result within {deadline:g}s (connect, command and its kill)")
                except Exception as exc:
                    result = exc
            queue.put_nowait(HostDone(host, result))

        tasks = [asyncio.ensure_future(one(host)) for host in self.hosts]
        try:
            for _ in range(len(tasks)):
                while True:
                    item = await queue.get()
                    yield item
                    if isinstance(item, HostDone):
                        break
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run_one(
        self,
        host: str,
        command: str,
        timeout: float | None,
        input: bytes | str | None,
        cwd: str | None,
        env: Mapping[str, str] | None,
        queue: asyncio.Queue[HostOutput | HostDone] | None,
    ) -> CompletedCommand:
        from . import aio

        name, port = self._addresses[host]
        async with aio.connect(
            name,
            port,
            encoding=self.encoding,
            connect_timeout=self.connect_timeout,
            secret=self.secret,
            tls=self.tls,
            tls_ca=self.tls_ca,
            user=self.user,
            password=self.password,
        ) as client:
            stdout: list[bytes] = []
            stderr: list[bytes] = []
            async with client.stream(command, timeout=timeout, input=input, cwd=cwd, env=env) as events:
                async for event in events:
                    if isinstance(event, Exit):
                        break
                    (stdout if isinstance(event, Stdout) else stderr).append(event.data)
                    if queue is not None:
                        queue.put_nowait(HostOutput(host, event, client.encoding))
            exit = events.exit
            assert exit is not None
            return CompletedCommand(
                command=command,
                returncode=exit.returncode,
                stdout=b"".join(stdout),
                stderr=b"".join(stderr),
                signal=exit.signal,
                timed_out=exit.timed_out,
                cancelled=exit.cancelled,
                encoding=client.encoding,
            )
