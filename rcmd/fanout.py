"""``rcmd -H HOSTS``: one command on many hosts, shown as clush shows it.

Live (the default): each line of output as it arrives, prefixed with its host (``web01: ...``;
a colour per host on a terminal). Output is buffered per host and stream until a newline, so
a line is never cut, nor two hosts' bytes mixed in one; a last line without a newline is
printed when its host finishes. ``-b/--gather``: each distinct stdout once, under the folded
set of hosts that printed it (as ``clubak -b``); stderr still comes live, prefixed.

Then a summary on stderr, a line per distinct failure: ``rcmd: web[03,07]: exited with status 1``,
``rcmd: db1: unreachable (connection refused)``. Exit code (:func:`fleet_status`): 255 if any
host could not be reached or failed before its command ran; else the largest of the hosts'
statuses, each as ``rcmd -c`` gives it (124 timed out, 128+N killed by signal N).
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterable, Sequence
from typing import NoReturn, TextIO

from .client import CompletedCommand
from .console import RESET, SCRIPT_COMMAND, ExitStatus, wants_color
from .errors import (
    AuthenticationError,
    ConnectionClosed,
    ProtocolMismatch,
    RemoteProtocolError,
    ServerError,
    TlsError,
)
from .group import Group, HostOutput
from .hostset import HostSetError, fold, read_host_file, unfold_all
from .messages import Stdout

__all__ = ["HOST_COLORS", "LinePrinter", "describe_failure", "fleet_status", "hosts_from_options", "main"]

#: A colour per host, in turn (green, yellow, blue, magenta, cyan and their bright forms); red
#: is left for errors.
HOST_COLORS = tuple(f"\x1b[{code}m" for code in (32, 33, 34, 35, 36, 92, 93, 94, 95, 96))
GATHER_RULE = "-" * 15


def hosts_from_options(specs: Iterable[str]) -> list[str]:
    """The hosts that -H options name: host sets, or ``@FILE`` (a host set a line, ``#``
    comments). Raises HostSetError or OSError (an unreadable file)."""
    expanded: list[str] = []
    for spec in specs:
        if spec.startswith("@"):
            expanded.extend(read_host_file(spec[1:]))
        else:
            expanded.append(spec)
    hosts = unfold_all(expanded)
    if not hosts:
        raise HostSetError("no hosts given")
    return hosts


class LinePrinter:
    """Whole lines of many hosts' output, each prefixed with its host.

    ``feed()`` keeps what follows the last newline of a host's stream until more comes;
    ``finish(host)`` prints that rest (a newline added). Lines are decoded in each host's
    encoding, undecodable bytes as U+FFFD.
    """

    def __init__(self, hosts: Sequence[str], stdout: TextIO, stderr: TextIO, *, color: bool) -> None:
        self.stdout, self.stderr = stdout, stderr
        self._prefix = {
            host: f"{HOST_COLORS[index % len(HOST_COLORS)]}{host}:{RESET} " if color else f"{host}: "
            for index, host in enumerate(hosts)
        }
        self._pending: dict[tuple[str, bool], tuple[bytearray, str]] = {}

    def feed(self, host: str, data: bytes, encoding: str, *, is_stdout: bool) -> None:
        key = (host, is_stdout)
        buffer, _ = self._pending.setdefault(key, (bytearray(), encoding))
        buffer += data
        end = buffer.rfind(b"\n")
        if end < 0:
            return
        lines = bytes(buffer[:end]).split(b"\n")
        del buffer[: end + 1]
        self._write(host, lines, encoding, is_stdout)

    def finish(self, host: str) -> None:
        for is_stdout in (True, False):
            pending = self._pending.pop((host, is_stdout), None)
            if pending is not None and pending[0]:
                self._write(host, [bytes(pending[0])], pending[1], is_stdout)

    def _write(self, host: str, lines: list[bytes], encoding: str, is_stdout: bool) -> None:
        target = self.stdout if is_stdout else self.stderr
        prefix = self._prefix[host]
        target.write("".join(f"{prefix}{line.decode(encoding, errors='replace')}\n" for line in lines))
        target.flush()


def describe_failure(result: CompletedCommand | Exception) -> str | None:
    """Why a host failed, without its name (so equal failures fold); None for success."""
    if isinstance(result, CompletedCommand):
        return None if result.returncode == 0 and not result.timed_out else result.describe_status()
    if isinstance(result, ConnectionRefusedError):
        return "unreachable (connection refused)"
    if isinstance(result, socket.gaierror):
        return f"unreachable (cannot resolve: {result.strerror})"
    if isinstance(result, AuthenticationError):
        return f"auth failed ({_without_where(str(result))})"
    if isinstance(result, TlsError):
        return f"TLS failed ({_without_where(str(result))})"
    if isinstance(result, ProtocolMismatch):
        return "not an rcmd server (no HELLO in time, or garbage)"
    if isinstance(result, TimeoutError):
        return f"timeout ({result})"
    if isinstance(result, (ConnectionClosed, ServerError, RemoteProtocolError)):
        return f"connection lost ({result})"
    if isinstance(result, OSError):
        return f"unreachable ({result.strerror or result})"
    return f"failed ({type(result).__name__}: {result})"


def _without_where(message: str) -> str:
    """'the server at h:p refused us: x' -> 'refused us: x'."""
    if message.startswith("the server at "):
        return message.split(" ", 4)[-1]
    return message


def host_status(result: CompletedCommand | Exception) -> int:
    """A host's exit code, as ``rcmd -c`` gives it; 255 when its command never ran."""
    if not isinstance(result, CompletedCommand):
        return ExitStatus.CONNECTION_FAILED
    if result.timed_out:
        return ExitStatus.TIMED_OUT
    if result.cancelled:
        return ExitStatus.CANCELLED
    if result.signal is not None:
        return ExitStatus.SIGNAL_BASE + result.signal
    return (result.returncode or 0) & 0xFF


def fleet_status(results: Iterable[CompletedCommand | Exception]) -> int:
    """255 if any host was not reached (or failed before its command ran), else the largest
    host status (0 when all succeeded)."""
    return max((host_status(result) for result in results), default=0)


async def run_on_hosts(
    group: Group,
    command: str,
    *,
    timeout: float | None,
    input: bytes | None,
    gather: bool,
    stdout: TextIO,
    stderr: TextIO,
    color: bool,
) -> dict[str, CompletedCommand | Exception]:
    """Run *command* on the group, printing as it goes; return each host's result."""
    printer = LinePrinter(group.hosts, stdout, stderr, color=color)
    results: dict[str, CompletedCommand | Exception] = {}
    async for item in group.stream(command, timeout=timeout, input=input):
        if isinstance(item, HostOutput):
            is_stdout = isinstance(item.event, Stdout)
            if not (gather and is_stdout):
                printer.feed(item.host, item.event.data, item.encoding, is_stdout=is_stdout)
        else:
            printer.finish(item.host)
            results[item.host] = item.result
    if gather:
        print_gathered(results, stdout, color=color)
    print_summary(results, stderr)
    return results


def print_gathered(results: dict[str, CompletedCommand | Exception], stdout: TextIO, *, color: bool) -> None:
    """Each distinct stdout once, under the folded set of its hosts (empty outputs left out)."""
    by_output: dict[tuple[bytes, str], list[str]] = {}
    for host, result in results.items():
        if isinstance(result, CompletedCommand) and result.stdout:
            by_output.setdefault((result.stdout, result.encoding), []).append(host)
    blocks = sorted(((fold(hosts), len(hosts), output) for output, hosts in by_output.items()))
    for hosts, count, (output, encoding) in blocks:
        header = f"{hosts} ({count})"
        if color:
            header = f"{HOST_COLORS[0]}{header}{RESET}"
        text = output.decode(encoding, errors="replace")
        stdout.write(f"{GATHER_RULE}\n{header}\n{GATHER_RULE}\n{text}")
        if not text.endswith("\n"):
            stdout.write("\n")
    stdout.flush()


def print_summary(results: dict[str, CompletedCommand | Exception], stderr: TextIO) -> None:
    """A line per distinct failure, under the folded set of hosts it happened to."""
    by_reason: dict[str, list[str]] = {}
    for host, result in results.items():
        reason = describe_failure(result)
        if reason is not None:
            by_reason.setdefault(reason, []).append(host)
    for reason, hosts in sorted(by_reason.items(), key=lambda item: fold(item[1])):
        stderr.write(f"rcmd: {fold(hosts)}: {reason}\n")
    stderr.flush()


def main(
    specs: Sequence[str],
    command: str | None,
    *,
    port: int,
    gather: bool,
    fanout: int,
    timeout: float | None,
    connect_timeout: float | None,
    secret: bytes | None,
    tls: bool,
    tls_ca: str | None,
    encoding: str,
    no_stdin: bool = False,
    each_line: bool = False,
    user: str | None = None,
    password: str | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``rcmd -H``: the exit code. With *command*, *stdin* (unless a terminal, or *no_stdin*)
    is every host's input. Without: on a terminal, a prompt whose each line runs on every
    host; piped, the script runs whole in one remote shell on every host (as ``rcmd <
    script``), or with *each_line* each line is a command for every host.
    Raises HostSetError, OSError (a host file), ValueError (fanout)."""
    stdin = stdin or sys.stdin  # looked up now: a test runner may have replaced them
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    group = Group(
        hosts_from_options(specs),
        port=port,
        fanout=fanout,
        connect_timeout=connect_timeout,
        secret=secret,
        tls=tls,
        tls_ca=tls_ca,
        encoding=encoding,
        user=user,
        password=password,
    )
    color = wants_color(stdout)

    def run(line: str, input: bytes | None) -> int:
        results = asyncio.run(
            run_on_hosts(
                group,
                line,
                timeout=timeout,
                input=input,
                gather=gather,
                stdout=stdout,
                stderr=stderr,
                color=color,
            )
        )
        return fleet_status(results.values())

    try:
        if command is not None:
            input = None if no_stdin or stdin.isatty() else _read_all(stdin)
            return run(command, input)
        interactive = stdin.isatty()
        if not interactive and not each_line:
            return run(SCRIPT_COMMAND, _read_all(stdin))
        status: int = ExitStatus.OK
        while True:
            if interactive:
                stderr.write(f"rcmd[{fold(group.hosts)}]> ")
                stderr.flush()
            line = stdin.readline()
            if not line:
                return status
            line = line.strip()
            if line in ("exit", "quit"):
                return status
            if line:
                status = run(line, None)
    except KeyboardInterrupt:
        return ExitStatus.CANCELLED


def _read_all(stdin: TextIO) -> bytes:
    buffer = getattr(stdin, "buffer", None)
    if buffer is not None:
        data: bytes = buffer.read()
        return data
    return stdin.read().encode("utf-8")


def run_cli(
    hosts: Sequence[str],
    target: str | None,
    command: str | None,
    framing: str,
    encoding: str,
    timeout: float | None,
    connect_timeout: float,
    secret_file: str | None,
    tls: bool,
    tls_ca: str | None,
    gather: bool,
    fanout: int,
    *,
    no_stdin: bool = False,
    each_line: bool = False,
    pty: bool = False,
    trace: bool = False,
    user: str | None = None,
    password_file: str | None = None,
) -> NoReturn:
    """``rcmd -H ...`` from the typer command in rcmd.cli: check its options, run, exit."""
    import codecs
    import math

    import typer

    from .auth import SecretError, load_secret
    from .client import DEFAULT_PORT

    def usage(message: str) -> typer.Exit:
        typer.echo(f"rcmd: {message}", err=True)
        return typer.Exit(ExitStatus.USAGE)

    if target is not None:
        raise usage(f"give the hosts with -H only (not also {target!r})")
    if framing == "naive":
        raise usage("-H speaks prefixed framing only (naive framing has no exit status to gather)")
    if pty:
        raise usage("-t with -H: one keyboard cannot drive many remote terminals")
    if trace:
        raise usage("--trace with -H: trace one host at a time (rcmd HOST --trace)")
    if no_stdin and command is None:
        raise typer.BadParameter("-n gives a command an empty stdin: use it with -c", param_hint="-n")
    if timeout is not None and not (0 < timeout < math.inf):
        raise typer.BadParameter("must be positive", param_hint="--timeout")
    if fanout < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--fanout")
    try:
        codecs.lookup(encoding if encoding != "auto" else "utf-8")
    except LookupError:
        raise typer.BadParameter(f"unknown encoding {encoding!r}", param_hint="--encoding") from None
    try:
        secret = None if user is not None else load_secret(secret_file)
        password = None
        if user is not None:  # asked once, for every host, as rcmd --user asks it
            from .oneshot import password_for

            password = password_for(user, password_file)
    except (SecretError, ValueError) as exc:
        raise usage(str(exc)) from None
    try:
        status = main(
            hosts,
            command,
            port=DEFAULT_PORT,
            gather=gather,
            fanout=fanout,
            timeout=timeout,
            connect_timeout=connect_timeout,
            secret=secret,
            tls=tls,
            tls_ca=tls_ca,
            encoding=encoding,
            no_stdin=no_stdin,
            each_line=each_line,
            user=user,
            password=password,
        )
    except HostSetError as exc:
        raise usage(str(exc)) from None
    except OSError as exc:
        raise usage(f"cannot read the host file: {exc.strerror or exc}") from None
    raise typer.Exit(status)
