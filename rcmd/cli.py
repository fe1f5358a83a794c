"""The command-line programs: ``rcmd`` (client) and ``rcmd-server``. Thin: the work is in the library.

As in httpie, ``main`` maps errors to exit codes and the functions below it do the work.
"""

from __future__ import annotations

import codecs
import enum
import math
import os
import shlex
import sys
from typing import TYPE_CHECKING, Any

import typer

from . import __version__
from .auth import SecretError, load_secret
from .client import DEFAULT_CONNECT_TIMEOUT, DEFAULT_HOST, DEFAULT_PORT
from .client_core import host_port
from .console import ExitStatus
from .oneshot import Failure, client_entry, is_open, run_client, split_target

__all__ = ["client_app", "client_entry", "server_app", "server_entry"]  # client_entry: its old home

if TYPE_CHECKING:
    pass


class Framing(str, enum.Enum):
    AUTO = "auto"  # kept for old scripts: the same as prefixed, it never guesses naive
    PREFIXED = "prefixed"
    NAIVE = "naive"


class ServerFraming(str, enum.Enum):
    """What rcmd-server speaks: no "auto", a server is one or the other."""

    PREFIXED = "prefixed"
    NAIVE = "naive"


def parse_target(target: str | None) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``:PORT``, ``[V6]:PORT`` or a bare IPv6 address -> (host, port)."""
    try:
        return split_target(target)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="HOST[:PORT]") from None


def _fail(status: ExitStatus, message: str) -> typer.Exit:
    typer.echo(f"rcmd: {message}", err=True)
    return typer.Exit(status)


client_app = typer.Typer(add_completion=False, rich_markup_mode=None)


@client_app.command(context_settings={"help_option_names": ["-h", "--help"]})
def rcmd_main(
    target: str | None = typer.Argument(
        None, metavar="[HOST[:PORT]]", help=f"Server to connect to (default {DEFAULT_HOST}:{DEFAULT_PORT})."
    ),
    command: str | None = typer.Option(
        None,
        "-c",
        "--command",
        help="Run this one command and exit with its exit status. Our stdin is its stdin.",
    ),
    no_stdin: bool = typer.Option(
        False, "-n", help="Give the command an empty stdin instead of ours (as ssh -n)."
    ),
    force_pty: bool = typer.Option(
        False,
        "-t",
        help="Run -c's command on a remote pseudo-terminal (term type $TERM, our size), our "
        "terminal raw: for python3, vi, top. stderr then comes merged into stdout.",
    ),
    no_pty: bool = typer.Option(
        False, "-T", help="Never a pseudo-terminal, not even at the prompt (where it is the default)."
    ),
    each_line: bool = typer.Option(
        False,
        "--each-line",
        help="With piped stdin and no -c: run each line as its own command (the old way), "
        "instead of the whole script in one remote shell.",
    ),
    framing: Framing = typer.Option(
        Framing.PREFIXED,
        help="Wire framing the server speaks. naive: the tutorial's broken mode, no exit status "
        "(rcmd then exits 246). auto: the same as prefixed.",
    ),
    encoding: str = typer.Option(
        "auto",
        help="Encoding of the server's output: auto (what the server announces), utf-8, gbk, or any codec.",
    ),
    timeout: float | None = typer.Option(
        None, help="Seconds each remote command may run before the server kills it."
    ),
    connect_timeout: float = typer.Option(DEFAULT_CONNECT_TIMEOUT, help="Seconds to connect and handshake."),
    secret_file: str | None = typer.Option(
        None, help="File holding the shared secret, for a server that requires it (else $RCMD_SECRET)."
    ),
    user: str | None = typer.Option(
        None, "--user", "-u", help="Log in as this user (a server with --users)."
    ),
    password_file: str | None = typer.Option(
        None, help="File holding the user's password (mode 600); else it is asked for."
    ),
    tls: bool = typer.Option(False, "--tls", help="Use TLS, trusting the system's certificate authorities."),
    tls_ca: str | None = typer.Option(None, help="Use TLS, trusting the CA certificates in this file."),
    trace: bool = typer.Option(
        False, "--trace", help="Show on stderr each recv() the client makes and each frame it completed."
    ),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
    hosts: list[str] | None = typer.Option(
        None,
        "-H",
        "--hosts",
        help="Run on many hosts at once: web[01-20]:9000,db1 or @FILE; repeatable (see rcmd.fanout).",
    ),
    gather: bool = typer.Option(
        False, "-b", "--gather", help="With -H: print each distinct output once, under its hosts."
    ),
    fanout: int = typer.Option(64, help="With -H: hosts worked on at once."),
    extra: list[str] | None = typer.Argument(None, hidden=True),
) -> None:
    """Run commands on an rcmd server: one with -c, an interactive prompt on a terminal,
    or a script from piped stdin (rcmd < script.sh), run whole by one remote shell.
    With -H HOSTS, on many servers at once.

    `rcmd demo` shows TCP's sticky packets and the length prefix that fixes them, side by side.
    """
    if version:
        typer.echo(f"rcmd {__version__}")
        raise typer.Exit()
    if extra:
        # ssh's `ssh host cmd args`: say how rcmd spells it rather than "unexpected argument".
        raise typer.BadParameter(
            f"unexpected {' '.join(extra)!r}: give the command with -c, as in: "
            f"rcmd {target or 'HOST'} -c {shlex.quote(' '.join(extra))}",
            param_hint="COMMAND",
        )
    if hosts:
        from .fanout import run_cli

        run_cli(
            hosts,
            target,
            command,
            framing.value,
            encoding,
            timeout,
            connect_timeout,
            secret_file,
            tls,
            tls_ca,
            gather,
            fanout,
            no_stdin=no_stdin,
            each_line=each_line,
            pty=force_pty,
            trace=trace,
            user=user,
            password_file=password_file,
        )
    host, port = parse_target(target)
    try:
        codecs.lookup(encoding if encoding != "auto" else "utf-8")
    except LookupError:
        raise typer.BadParameter(f"unknown encoding {encoding!r}", param_hint="--encoding") from None
    if timeout is not None and not (0 < timeout < math.inf):
        raise typer.BadParameter("must be positive", param_hint="--timeout")
    if framing is Framing.NAIVE and secret_file is not None:
        raise _fail(ExitStatus.USAGE, "naive framing has no handshake: a secret cannot be used with it")
    if no_stdin and command is None:
        raise typer.BadParameter("-n gives a command an empty stdin: use it with -c", param_hint="-n")
    stdin_fd = None if no_stdin or not is_open(0) else 0
    if force_pty and no_pty:
        raise typer.BadParameter("-t asks for a pseudo-terminal, -T refuses one: give one", param_hint="-t")
    try:
        status = run_client(
            host,
            port,
            command=command,
            stdin_fd=stdin_fd,
            force_pty=force_pty,
            no_pty=no_pty,
            each_line=each_line,
            framing=framing.value,
            encoding=encoding,
            timeout=timeout,
            connect_timeout=connect_timeout,
            secret_file=secret_file,
            tls=tls,
            tls_ca=tls_ca,
            trace=trace,
            user=user,
            password_file=password_file,
        )
    except Failure as exc:
        if exc.message is not None:
            typer.echo(exc.message, err=True)
        raise typer.Exit(exc.status) from None
    raise typer.Exit(status)


server_app = typer.Typer(add_completion=False, rich_markup_mode=None)


@server_app.command(context_settings={"help_option_names": ["-h", "--help"]})
def server_main(
    host: str = typer.Option(
        "127.0.0.1", help="Address to listen on. Loopback only unless --insecure-no-auth."
    ),
    port: int = typer.Option(9000, help="Port to listen on; 0 picks a free one."),
    framing: ServerFraming = typer.Option(
        ServerFraming.PREFIXED,
        help="prefixed: length-prefixed messages (correct). naive: the tutorial's bug, for teaching.",
    ),
    shell: str | None = typer.Option(
        None, help="Shell that runs commands, as SHELL -c COMMAND (default /bin/sh)."
    ),
    encoding: str | None = typer.Option(
        None, help="Encoding commands print in, announced to clients (default: the locale's)."
    ),
    max_frame_size: int | None = typer.Option(
        None,
        help="Largest frame accepted from a client, in bytes (default 1 MiB); announced in the HELLO, "
        "so clients send input and uploads in chunks that fit.",
        show_default=False,
    ),
    secret_file: str | None = typer.Option(
        None, help="File holding the shared secret clients must prove they know (else $RCMD_SECRET)."
    ),
    users: str | None = typer.Option(
        None, "--users", help="Users file (TOML, see rcmd-server adduser): log in by name and password."
    ),
    insecure_no_auth: bool = typer.Option(
        False, "--insecure-no-auth", help="Allow listening beyond loopback with no authentication. Dangerous."
    ),
    tls_cert: str | None = typer.Option(None, help="Serve TLS with this certificate (PEM; chain included)."),
    tls_key: str | None = typer.Option(
        None, help="The private key for --tls-cert (PEM), if not in that file."
    ),
    cwd: str | None = typer.Option(
        None, "--cwd", help="Directory commands start in (default: the directory the server starts in)."
    ),
    max_connections: int = typer.Option(
        128,
        help="Connections at once, counted from accept. When full, the oldest connection still in "
        "its handshake, else the one idle the longest, is closed (with a reason) to make room.",
    ),
    max_startups: int = typer.Option(
        64, help="Connections still in their handshake at once; past this the oldest is closed."
    ),
    startup_grace: float = typer.Option(
        1.0,
        help="Seconds a connection in its handshake is safe from being closed to make room; "
        "while all are younger, new connections wait to be accepted.",
    ),
    max_commands: int = typer.Option(64, help="Commands running at once, server-wide; more wait for a slot."),
    handshake_timeout: float = typer.Option(
        10.0, help="Seconds a new connection has to finish the handshake."
    ),
    idle_timeout: float = typer.Option(
        3600.0, help="Seconds a connection may sit with no command (0: no limit)."
    ),
    command_timeout: float = typer.Option(
        0.0, help="Seconds a command may run when it sets no timeout of its own (0: no limit)."
    ),
    cgroups: bool = typer.Option(
        False,
        "--cgroups",
        help="Run each command in a cgroup of its own (cgroup v2, where this server may create "
        "them), so that nothing it starts outlives it, even with a clean environment. Costs each "
        "command an extra exec (~0.7 ms), and ~8 ms after a quiet spell.",
    ),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    """Run commands sent by rcmd clients, each in its own process group."""
    if version:
        typer.echo(f"rcmd-server {__version__}")
        raise typer.Exit()
    if shell is not None and not (os.path.isfile(shell) and os.access(shell, os.X_OK)):
        raise typer.BadParameter(f"{shell} is not an executable file", param_hint="--shell")
    import asyncio
    import locale
    import logging

    from .framing import DEFAULT_MAX_FRAME_SIZE
    from .process import DEFAULT_SHELL
    from .server import Framing as ConfigFraming
    from .server import InsecureBindError, ServerConfig, is_loopback, serve

    levels = {
        "debug": logging.DEBUG,
        "info": logging.INFO,
        "warning": logging.WARNING,
        "error": logging.ERROR,
    }
    if log_level.lower() not in levels:
        raise typer.BadParameter(
            f"{log_level!r} is not one of debug, info, warning, error", param_hint="--log-level"
        )
    logging.basicConfig(
        level=levels[log_level.lower()],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        secret = load_secret(secret_file) if users is None or secret_file is not None else None
        accounts = _load_users(users) if users is not None else None
    except (SecretError, ValueError) as exc:
        typer.echo(f"rcmd-server: {exc}", err=True)
        raise typer.Exit(ExitStatus.USAGE) from None
    try:
        config = ServerConfig(
            host=host,
            port=port,
            framing=ConfigFraming(framing.value),
            shell=shell or DEFAULT_SHELL,
            encoding=encoding or locale.getpreferredencoding(False),
            max_frame_size=max_frame_size or DEFAULT_MAX_FRAME_SIZE,
            secret=secret,
            insecure_no_auth=insecure_no_auth,
            max_connections=max_connections,
            max_startups=max_startups,
            startup_grace=startup_grace,
            max_commands=max_commands,
            handshake_timeout=handshake_timeout or None,
            idle_timeout=idle_timeout or None,
            command_timeout=command_timeout or None,
            tls_cert=tls_cert,
            tls_key=tls_key,
            cwd=cwd,
            users=accounts,
            cgroups=cgroups,
        )
    except (InsecureBindError, ValueError) as exc:
        typer.echo(f"rcmd-server: {exc}", err=True)
        raise typer.Exit(ExitStatus.USAGE) from None
    except LookupError:
        raise typer.BadParameter(f"unknown encoding {encoding!r}", param_hint="--encoding") from None
    if insecure_no_auth and secret is None and not is_loopback(host):
        typer.echo("rcmd-server: WARNING: listening beyond loopback with NO authentication", err=True)
    if config.framing.value == "naive":
        typer.echo(
            "rcmd-server: naive framing: no message boundaries, deliberately broken (for teaching)", err=True
        )

    def ready(bound_host: str, bound_port: int) -> None:
        auth = ("hmac-sha256 auth" if config.secret else "no auth") + (", TLS" if config.tls else "")
        if config.users is not None:
            auth = f"scram-sha-256 auth, {len(config.users)} users" + (", TLS" if config.tls else "")
        print(
            f"rcmd-server {__version__} listening on {host_port(bound_host, bound_port)} "
            f"(framing {config.framing.value}, encoding {config.encoding}, {auth})",
            flush=True,
        )

    try:
        asyncio.run(serve(config, on_ready=ready))
    except OSError as exc:
        typer.echo(f"rcmd-server: cannot listen on {host_port(host, port)}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None


def _load_users(path: str) -> dict[str, Any]:
    """The accounts in *path*, which must exist and not be readable by others."""
    import os
    import stat

    from .server.accounts import load_users

    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ValueError(f"cannot read the users file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"the users file {path} is readable by others: chmod 600 {path}")
    return dict(load_users(path))


def server_entry() -> None:
    if sys.argv[1:2] in (["adduser"], ["passwd"]):  # the users file: rcmd/accounts_cli.py
        from .accounts_cli import main as accounts_main

        accounts_main(sys.argv[1:])
    server_app()
