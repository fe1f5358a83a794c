"""The interactive prompt: ``rcmd`` or ``rcmd HOST[:PORT]`` on a terminal.

Line editing and history come from prompt_toolkit (as in pgcli and IPython); history is
kept across sessions in the user's data directory. Output is shown live, stderr in red;
a command that fails gets a note after its output. Ctrl-C while a command runs cancels it
on the server and returns here; at the prompt it clears the line. Ctrl-D, ``exit`` or
``quit`` leave.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .completion import RemoteCompleter, prompt_completer
from .console import ExitStatus, run_one, wants_color
from .errors import ConnectionClosed, RcmdError, RemoteProtocolError, ServerError
from .keepalive import KeepAlive

if TYPE_CHECKING:  # prompt_toolkit is imported only when the prompt starts
    from prompt_toolkit.formatted_text import StyleAndTextTuples
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.output import ColorDepth

    from .client import Client
    from .naive import NaiveClient

WELCOME = "rcmd {version}: connected to {where}. Ctrl-C interrupts a command, Ctrl-D leaves."


def history_path() -> Path:
    """$RCMD_HISTORY, else ``rcmd/history`` in the user's data directory (XDG on POSIX)."""
    if os.environ.get("RCMD_HISTORY"):
        return Path(os.environ["RCMD_HISTORY"])
    if os.name == "nt":  # pragma: no cover - untested here
        base = Path(os.environ.get("APPDATA", Path.home()))
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "rcmd" / "history"


def _prompt_text(client: Client | NaiveClient, where: str) -> StyleAndTextTuples:
    from .client import Client

    if not isinstance(client, Client):  # a naive server never says where it is
        return [("class:naive", "naive "), ("class:host", where), ("", "> ")]
    return [("class:host", where), ("", " "), ("class:cwd", client.cwd or "?"), ("", "> ")]


def interactive(
    client: Client | NaiveClient,
    where: str,
    timeout: float | None,
    *,
    pty: bool = False,
    reconnect: Callable[[], Client] | None = None,
) -> int:
    """Read commands at a prompt until Ctrl-D, exit or quit; return the last one's status.

    With *pty* every command runs on a remote pseudo-terminal, as in an ssh session:
    python3, vi, top and ``read`` work, ``ls`` has colours and columns, and Ctrl-C goes to
    the remote program; stderr is then merged into stdout (not shown in red).

    A prefixed connection is kept alive while idle (rcmd.keepalive). If it died anyway
    (server restarted, idle timeout, network), the next command first gets a new one from
    *reconnect*, back in the same directory, and one line says so; a command is never
    dropped without a word.
    """
    from .client import Client

    if not isinstance(client, Client):
        return _interactive(client, where, timeout, pty=False, reconnect=None)
    keepalive = KeepAlive()
    try:
        return _interactive(client, where, timeout, pty=pty, reconnect=reconnect, keepalive=keepalive)
    finally:
        keepalive.stop()


def _interactive(
    client: Client | NaiveClient,
    where: str,
    timeout: float | None,
    *,
    pty: bool,
    reconnect: Callable[[], Client] | None,
    keepalive: KeepAlive | None = None,
) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.shortcuts import CompleteStyle
    from prompt_toolkit.styles import Style

    from . import __version__
    from .client import Client

    path = history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    color = wants_color(sys.stdout)
    remote = _completer(client, keepalive)
    session: PromptSession[str] = PromptSession(
        history=_command_history(str(path)),
        style=Style.from_dict({"host": "ansigreen bold", "cwd": "ansiblue bold", "naive": "ansired bold"}),
        color_depth=None if color else _no_color_depth(),
        # Tab asks the server (rcmd/completion.py), as bash does: it inserts what all the
        # completions share, and a second Tab lists them. Never while typing: one question
        # per key press would be a round trip each.
        completer=prompt_completer(remote) if remote is not None else None,
        complete_while_typing=False,
        complete_style=CompleteStyle.READLINE_LIKE,
    )
    print(WELCOME.format(version=__version__, where=where), file=sys.stderr)
    status: int = ExitStatus.OK
    first = client
    if keepalive is not None and isinstance(client, Client):
        with keepalive.lock:
            keepalive.watch(client)
    while True:
        try:
            line = session.prompt(_prompt_text(client, where))
        except KeyboardInterrupt:
            continue  # Ctrl-C at the prompt clears the line
        except EOFError:
            break  # Ctrl-D
        command = line.strip()
        if not command:
            continue  # never sent: to a naive server an empty send looks like nothing
        if command in ("exit", "quit"):
            break
        command = cd_home(command)
        if (done := _file_command(client, command)) is not None:
            status = done  # put, get, quota; ls, cd... for a transfer-only user (rcmd/files_prompt.py)
            continue
        if keepalive is None or not isinstance(client, Client):
            status = run_one(client, command, timeout, sys.stdout, sys.stderr, color=color, show_status=True)
            continue
        with keepalive.lock:
            live = _alive(client, keepalive, reconnect, where)
            if live is None:
                print(f"rcmd: not run: {command}", file=sys.stderr)
                status = ExitStatus.CONNECTION_LOST
                continue
            if live is not client and client is not first:
                client.close()
            client = live
            keepalive.watch(client)
            if remote is not None:
                remote.client = client  # Tab asks the new connection
            try:
                status = run_one(
                    client,
                    command,
                    timeout,
                    sys.stdout,
                    sys.stderr,
                    color=color,
                    show_status=True,
                    stdin_fd=0 if pty and client.supports_pty else None,
                    pty=pty and client.supports_pty,
                )
            except (ConnectionClosed, ServerError, RemoteProtocolError) as exc:
                print(
                    f"rcmd: connection lost while the command ran ({exc}): its status is unknown",
                    file=sys.stderr,
                )
                keepalive.failure = exc  # the next command reconnects
                status = ExitStatus.CONNECTION_LOST
    if client is not first:
        client.close()
    return status


#: ``cd $HOME``, ``cd "${HOME}/src"``: the server's sticky cd takes ``~`` but leaves ``$`` to
#: the shell (whose cd lasts one command), so the prompt writes $HOME as ``~``, as a shell
#: would expand it, and the directory sticks.
_CD_HOME = re.compile(r"""cd[ \t]+("?)\$(?:HOME\b|\{HOME\})((?:/[^\s"'$`\\]*)?)\1[ \t]*""")


def cd_home(command: str) -> str:
    """*command* with a ``cd $HOME...`` written as ``cd ~...``; anything else unchanged."""
    match = _CD_HOME.fullmatch(command)
    return f"cd ~{match.group(2)}" if match else command


def _completer(client: Client | NaiveClient, keepalive: KeepAlive | None) -> RemoteCompleter | None:
    """Tab completion from the server, for a prefixed connection (naive framing has none),
    with the prompt's own commands (exit, put, get...) among the command names."""
    from .client import Client
    from .files_prompt import ALWAYS, TRANSFER_ONLY

    if not isinstance(client, Client):
        return None
    local = {"exit", "quit", *ALWAYS, *(TRANSFER_ONLY if client.transfer_only else ())}
    return RemoteCompleter(client, keepalive, local)


def _file_command(client: Client | NaiveClient, command: str) -> int | None:
    from .client import Client
    from .files_prompt import file_command

    return file_command(client, command, sys.stdout, sys.stderr) if isinstance(client, Client) else None


def _command_history(path: str) -> FileHistory:
    """FileHistory that keeps only lines that were commands: a line of spaces is never sent,
    so keeping it would only cost an extra Up press."""
    from prompt_toolkit.history import FileHistory

    class CommandHistory(FileHistory):
        def append_string(self, string: str) -> None:
            if string.strip():
                super().append_string(string)

    return CommandHistory(path)


def _alive(
    client: Client, keepalive: KeepAlive, reconnect: Callable[[], Client] | None, where: str
) -> Client | None:
    """*client* if its connection is alive, else a new one in the same directory (said in
    one line), else None (said too)."""
    problem = keepalive.failure
    if problem is None:
        try:
            client.check_alive()
            return client
        except (ConnectionClosed, ServerError, RemoteProtocolError, OSError) as exc:
            problem = exc
    reason = problem.reason if isinstance(problem, ServerError) else str(problem)
    if reconnect is None:
        print(f"rcmd: the connection to {where} is lost ({reason})", file=sys.stderr)
        return None
    cwd = client.cwd
    try:
        fresh = reconnect()
    except (RcmdError, OSError) as exc:
        print(
            f"rcmd: the connection to {where} is lost ({reason}); reconnecting failed: {exc}", file=sys.stderr
        )
        return None
    where_now = ""
    if cwd and fresh.cwd != cwd:
        moved = fresh.run(f"cd {shlex.quote(cwd)}")
        where_now = f", back in {cwd}" if moved.returncode == 0 else f"; {cwd} is gone, now in {fresh.cwd}"
    elif cwd:
        where_now = f", back in {cwd}"
    print(f"rcmd: the connection to {where} was lost ({reason}); reconnected{where_now}", file=sys.stderr)
    return fresh


def _no_color_depth() -> ColorDepth:
    from prompt_toolkit.output import ColorDepth

    return ColorDepth.DEPTH_1_BIT
