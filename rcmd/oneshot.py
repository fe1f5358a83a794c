"""The client's work, without typer; and ``rcmd [HOST[:PORT]] -c COMMAND`` without typer.

Importing typer (and click with it) is most of a one-shot ``rcmd -c true``'s start-up. So
the work of the client, connecting, running and mapping errors to exit codes, lives here,
and rcmd.cli's typer command is what parses the options and checks them before calling
run_client(). client_entry(), the ``rcmd`` program, hands ``rcmd demo``, ``put``, ``get``,
``df`` and ``ansible-path`` to their own modules, and runs the plain one-shot form itself,
with the options' defaults, through the same run_client(): the results are the same. Any
other argv (another option, ``--help``, a target it cannot read, a command starting with
``-``) goes to the typer app, which says what the typer app says.
"""

from __future__ import annotations

import errno
import gc
import os
import sys
from collections.abc import Sequence

from .auth import SecretError, load_secret
from .client import DEFAULT_CONNECT_TIMEOUT, DEFAULT_HOST, DEFAULT_PORT, Client, connect
from .client_core import host_port
from .console import SCRIPT_COMMAND, ExitStatus, connection_failure, run_lines, run_one, wants_color
from .errors import LocalWriteError, RcmdError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (2 ms of `rcmd -c`)
if TYPE_CHECKING:
    from .naive import NaiveClient


class Failure(Exception):
    """rcmd ends with *status*, after *message* (if any) on stderr."""

    def __init__(self, status: int, message: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _fail(status: ExitStatus, message: str) -> Failure:
    return Failure(status, f"rcmd: {message}")


def say(message: str) -> None:
    """One line on stderr, as typer.echo(err=True) writes it."""
    print(message, file=sys.stderr, flush=True)


def split_target(target: str | None) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``:PORT``, ``[V6]:PORT`` or a bare IPv6 address -> (host, port).

    Raises ValueError saying what is wrong with *target*."""
    if not target:
        return DEFAULT_HOST, DEFAULT_PORT
    host, port = target, ""
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif target.count(":") == 1:
        host, port = target.split(":")
    if port and not port.isdigit():
        raise ValueError(f"port must be a number, got {port!r}")
    if port and not 1 <= int(port) <= 65535:
        raise ValueError(f"port must be from 1 to 65535, got {port}")
    if "@" in host:
        raise ValueError(
            f"{target!r} names a user: rcmd has none (commands run as the server's user); "
            "give HOST[:PORT], and a command with -c, as in: rcmd HOST -c 'uptime'"
        )
    return host or DEFAULT_HOST, int(port) if port else DEFAULT_PORT


def pty_offered(client: Client | NaiveClient, *, quiet: bool = False) -> bool:
    """The server can run a command on a PTY; if not, say so (unless *quiet*)."""
    offered = isinstance(client, Client) and client.supports_pty
    if not offered and not quiet:
        say("rcmd: the server offers no pseudo-terminal: running without one")
    return offered


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def run_client(
    host: str,
    port: int,
    *,
    command: str | None,
    stdin_fd: int | None,
    force_pty: bool = False,
    no_pty: bool = False,
    each_line: bool = False,
    framing: str = "prefixed",
    encoding: str = "auto",
    timeout: float | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    secret_file: str | None = None,
    tls: bool = False,
    tls_ca: str | None = None,
    trace: bool = False,
    user: str | None = None,
    password_file: str | None = None,
) -> int:
    """Connect and run *command* (None: the prompt on a terminal, else piped stdin as a
    script); the exit status. Options are as rcmd's, checked already. Raises Failure."""
    where = host_port(host, port)
    try:
        # As connect() does: the file, else $RCMD_SECRET; naive framing ignores $RCMD_SECRET.
        secret = None if framing == "naive" or user is not None else load_secret(secret_file)
        password = password_for(user, password_file)
    except (SecretError, ValueError) as exc:
        raise _fail(ExitStatus.USAGE, str(exc)) from None
    try:
        if trace:
            from .trace import printer

        with connect(
            host,
            port,
            framing=framing,
            encoding=encoding,
            connect_timeout=connect_timeout,
            secret=secret,
            tls=tls,
            tls_ca=tls_ca,
            trace=printer(sys.stderr, dim=wants_color(sys.stderr)) if trace else None,
            user=user,
            password=password,
        ) as client:
            if client.framing == "naive":
                say(
                    "rcmd: naive framing: each reply is whatever one recv(1024) returned; "
                    f"deliberately broken, for teaching; the exit status is unknown (rcmd exits "
                    f"{int(ExitStatus.STATUS_UNKNOWN)})"
                )
            pty = force_pty and stdin_fd is not None and os.isatty(stdin_fd) and pty_offered(client)
            if force_pty and not pty and stdin_fd is not None and not os.isatty(stdin_fd):
                # As ssh -t: a terminal with no keyboard behind it would only get in the way.
                say("rcmd: pseudo-terminal not used because stdin is not a terminal")
            if command is not None:
                color = wants_color(sys.stderr)  # red stderr, as at the prompt; piped lines get none
                return run_one(
                    client, command, timeout, sys.stdout, sys.stderr, color=color, stdin_fd=stdin_fd, pty=pty
                )
            if sys.stdin.isatty():
                from .prompt import interactive

                def reconnect() -> Client:
                    again = connect(
                        host,
                        port,
                        encoding=encoding,
                        connect_timeout=connect_timeout,
                        secret=secret,
                        tls=tls,
                        tls_ca=tls_ca,
                        user=user,
                        password=password,
                    )
                    assert isinstance(again, Client)
                    return again

                return interactive(
                    client,
                    where,
                    timeout,
                    pty=not no_pty and pty_offered(client, quiet=True),
                    reconnect=reconnect,
                )
            if each_line or client.framing == "naive":  # naive framing cannot carry stdin
                return run_lines(client, sys.stdin, timeout, sys.stdout, sys.stderr)
            return run_one(client, SCRIPT_COMMAND, timeout, sys.stdout, sys.stderr, stdin_fd=0)
    except KeyboardInterrupt:
        raise Failure(ExitStatus.CANCELLED) from None
    except LocalWriteError as exc:
        raise _local_write_failure(exc) from None
    except (RcmdError, OSError) as exc:
        failure = connection_failure(exc, where, host, connect_timeout)
        if failure is not None:
            raise _fail(*failure) from None
        if not isinstance(exc, OSError):
            raise
        raise _fail(
            ExitStatus.CONNECTION_FAILED, f"cannot connect to {where}: {exc.strerror or exc}"
        ) from None


def _local_write_failure(exc: LocalWriteError) -> Failure:
    """Our stdout failed. EPIPE (``rcmd -c 'seq 1 100000' | head -1``) ends quietly, as
    ``cat`` does; anything else (a full disk) is said once, as ``cat: write error: ...``."""
    # Python would report the broken stdout again when it flushes it at exit: point it at
    # /dev/null first, as the Python documentation's note on SIGPIPE advises.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    if exc.errno == errno.EPIPE:
        return Failure(ExitStatus.PIPE_CLOSED)
    return _fail(ExitStatus.WRITE_FAILED, str(exc))


def password_for(user: str | None, password_file: str | None) -> str | None:
    """The password for *user*: from *password_file* (which others must not read), else
    asked for without echo. Raises rcmd.scram.PasswordError (a ValueError)."""
    if user is None:
        return None
    if password_file is not None:
        from .scram import load_password

        return load_password(password_file)
    import getpass

    return getpass.getpass(f"password for {user}: ")


def plain_one_shot(args: Sequence[str]) -> tuple[str | None, str] | None:
    """(target or None, command) if *args* are exactly ``[TARGET] -c COMMAND`` (or
    ``--command``, either order), nothing starting with ``-`` but the option; else None."""
    rest = list(args)
    for flag in ("-c", "--command"):
        if flag in rest:
            at = rest.index(flag)
            if at + 1 >= len(rest):
                return None
            command = rest.pop(at + 1)
            rest.pop(at)
            break
    else:
        return None
    if len(rest) > 1 or command.startswith("-") or any(arg.startswith("-") for arg in rest):
        return None
    return (rest[0] if rest else None), command


def client_entry() -> None:
    """The ``rcmd`` program."""
    args = sys.argv[1:]
    if args[:1] == ["demo"]:  # `rcmd demo`: a host called "demo" is still `demo:9000`
        from .demo import main

        raise SystemExit(main(args[1:]))
    if args == ["ansible-path"]:  # export ANSIBLE_CONNECTION_PLUGINS=$(rcmd ansible-path)
        from .ansible import PLUGIN_DIR

        print(PLUGIN_DIR)
        return
    if args[:1] in (["put"], ["get"], ["df"]):  # file transfers: rcmd/files_cli.py
        from .files_cli import main as files_main

        files_main(args)
    plain = plain_one_shot(args)
    if plain is not None:
        target, command = plain
        try:
            host, port = split_target(target)
        except ValueError:
            plain = None  # the typer app says so, as it says it
    if plain is None:
        from .cli import client_app

        client_app()
        return
    try:
        status = run_client(host, port, command=command, stdin_fd=0 if is_open(0) else None)
    except Failure as exc:
        if exc.message is not None:
            say(exc.message)
        status = exc.status
    # The process ends here: what it made goes with it. Frozen, those objects are left out of
    # the interpreter's last garbage collections at exit, ~1.5 ms of a one-shot's 25.
    gc.freeze()
    raise SystemExit(status)
