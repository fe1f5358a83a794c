"""The command-line programs: ``rcmd`` (client) and ``rcmd-server``. Thin: the work is in the library.

As in httpie, ``main`` maps errors to exit codes and the functions below it do the work.
"""

from __future__ import annotations

import codecs
import enum
import errno
import math
import os
import shlex
import socket
import sys
from typing import TYPE_CHECKING, Any

import typer

from . import __version__
from .auth import SecretError, load_secret
from .client import DEFAULT_CONNECT_TIMEOUT, DEFAULT_HOST, DEFAULT_PORT, Client, connect, host_port
from .console import SCRIPT_COMMAND, ExitStatus, run_lines, run_one, wants_color
from .errors import (
    AuthenticationError,
    ConnectionClosed,
    FrameTooLarge,
    LocalWriteError,
    ProtocolMismatch,
    RemoteProtocolError,
    ServerError,
    TlsError,
)
from .trace import printer

if TYPE_CHECKING:
    from .naive import NaiveClient


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
    if not target:
        return DEFAULT_HOST, DEFAULT_PORT
    host, port = target, ""
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif target.count(":") == 1:
        host, port = target.split(":")
    if port and not port.isdigit():
        raise typer.BadParameter(f"port must be a number, got {port!r}", param_hint="HOST[:PORT]")
    if port and not 1 <= int(port) <= 65535:
        raise typer.BadParameter(f"port must be from 1 to 65535, got {port}", param_hint="HOST[:PORT]")
    if "@" in host:
        raise typer.BadParameter(
            f"{target!r} names a user: rcmd has none (commands run as the server's user); "
            "give HOST[:PORT], and a command with -c, as in: rcmd HOST -c 'uptime'",
            param_hint="HOST[:PORT]",
        )
    return host or DEFAULT_HOST, int(port) if port else DEFAULT_PORT


def _fail(status: ExitStatus, message: str) -> typer.Exit:
    typer.echo(f"rcmd: {message}", err=True)
    return typer.Exit(status)


def _pty_offered(client: Client | NaiveClient, *, quiet: bool = False) -> bool:
    """The server can run a command on a PTY; if not, say so (unless *quiet*)."""
    offered = isinstance(client, Client) and client.supports_pty
    if not offered and not quiet:
        typer.echo("rcmd: the server offers no pseudo-terminal: running without one", err=True)
    return offered


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _local_write_failure(exc: LocalWriteError) -> typer.Exit:
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
        return typer.Exit(ExitStatus.PIPE_CLOSED)
    return _fail(ExitStatus.WRITE_FAILED, str(exc))


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
    where = host_port(host, port)
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
    stdin_fd = None if no_stdin or not _is_open(0) else 0
    if force_pty and no_pty:
        raise typer.BadParameter("-t asks for a pseudo-terminal, -T refuses one: give one", param_hint="-t")
    try:
        # As connect() does: the file, else $RCMD_SECRET; naive framing ignores $RCMD_SECRET.
        secret = None if framing is Framing.NAIVE or user is not None else load_secret(secret_file)
        password = _password(user, password_file)
    except (SecretError, ValueError) as exc:
        raise _fail(ExitStatus.USAGE, str(exc)) from None
    try:
        with connect(
            host,
            port,
            framing=framing.value,
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
                typer.echo(
                    "rcmd: naive framing: each reply is whatever one recv(1024) returned; "
                    f"deliberately broken, for teaching; the exit status is unknown (rcmd exits "
                    f"{int(ExitStatus.STATUS_UNKNOWN)})",
                    err=True,
                )
            pty = force_pty and stdin_fd is not None and os.isatty(stdin_fd) and _pty_offered(client)
            if force_pty and not pty and stdin_fd is not None and not os.isatty(stdin_fd):
                # As ssh -t: a terminal with no keyboard behind it would only get in the way.
                typer.echo("rcmd: pseudo-terminal not used because stdin is not a terminal", err=True)
            if command is not None:
                color = wants_color(sys.stderr)  # red stderr, as at the prompt; piped lines get none
                status = run_one(
                    client, command, timeout, sys.stdout, sys.stderr, color=color, stdin_fd=stdin_fd, pty=pty
                )
            elif sys.stdin.isatty():
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

                status = interactive(
                    client,
                    where,
                    timeout,
                    pty=not no_pty and _pty_offered(client, quiet=True),
                    reconnect=reconnect,
                )
            elif each_line or client.framing == "naive":  # naive framing cannot carry stdin
                status = run_lines(client, sys.stdin, timeout, sys.stdout, sys.stderr)
            else:
                status = run_one(client, SCRIPT_COMMAND, timeout, sys.stdout, sys.stderr, stdin_fd=0)
    except KeyboardInterrupt:
        raise typer.Exit(ExitStatus.CANCELLED) from None
    except LocalWriteError as exc:
        raise _local_write_failure(exc) from None
    except AuthenticationError as exc:
        raise _fail(ExitStatus.AUTH_FAILED, str(exc)) from None
    except TlsError as exc:
        raise _fail(ExitStatus.TLS_FAILED, str(exc)) from None
    except ProtocolMismatch as exc:
        raise _fail(ExitStatus.PROTOCOL_MISMATCH, str(exc)) from None
    except FrameTooLarge as exc:
        raise _fail(ExitStatus.FRAME_TOO_LARGE, f"{where}: {exc}") from None
    except RemoteProtocolError as exc:
        raise _fail(ExitStatus.PROTOCOL_ERROR, f"{where}: protocol error: {exc}") from None
    except ServerError as exc:
        raise _fail(ExitStatus.CONNECTION_LOST, f"{where}: {exc}") from None
    except ConnectionClosed as exc:
        raise _fail(ExitStatus.CONNECTION_LOST, f"{where}: {exc}") from None
    except ConnectionRefusedError:
        raise _fail(
            ExitStatus.CONNECTION_FAILED,
            f"cannot connect to {where}: connection refused (is rcmd-server running?)",
        ) from None
    except OSError as exc:
        if isinstance(exc, socket.gaierror):
            raise _fail(ExitStatus.HOST_NOT_FOUND, f"cannot resolve host {host!r}: {exc.strerror}") from None
        if isinstance(exc, TimeoutError):
            raise _fail(
                ExitStatus.CONNECT_TIMEOUT,
                f"cannot connect to {where}: no answer within {connect_timeout:g}s",
            ) from None
        raise _fail(
            ExitStatus.CONNECTION_FAILED, f"cannot connect to {where}: {exc.strerror or exc}"
        ) from None
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
        None, help="Largest frame accepted from a client, in bytes (default 1 MiB).", show_default=False
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
            max_commands=max_commands,
            handshake_timeout=handshake_timeout or None,
            idle_timeout=idle_timeout or None,
            command_timeout=command_timeout or None,
            tls_cert=tls_cert,
            tls_key=tls_key,
            cwd=cwd,
            users=accounts,
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


def _password(user: str | None, password_file: str | None) -> str | None:
    """The password for *user*: from *password_file* (which others must not read), else
    asked for without echo. Raises rcmd.scram.PasswordError (a ValueError)."""
    if user is None:
        return None
    if password_file is not None:
        from .scram import load_password

        return load_password(password_file)
    import getpass

    return getpass.getpass(f"password for {user}: ")


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


def client_entry() -> None:
    if sys.argv[1:2] == ["demo"]:  # `rcmd demo`: a host called "demo" is still `demo:9000`
        from .demo import main

        raise SystemExit(main(sys.argv[2:]))
    if sys.argv[1:] == ["ansible-path"]:  # export ANSIBLE_CONNECTION_PLUGINS=$(rcmd ansible-path)
        from .ansible import PLUGIN_DIR

        print(PLUGIN_DIR)
        return
    if sys.argv[1:2] in (["put"], ["get"], ["df"]):  # file transfers: rcmd/files_cli.py
        from .files_cli import main as files_main

        files_main(sys.argv[1:])
    client_app()


def server_entry() -> None:
    if sys.argv[1:2] in (["adduser"], ["passwd"]):  # the users file: rcmd/accounts_cli.py
        from .accounts_cli import main as accounts_main

        accounts_main(sys.argv[1:])
    server_app()
